//! The client state machine: hello, requests, membership tracking and events, no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::frame::FrameDecoder;
use crate::name::fold;
use crate::packet::{ClientPacket, Limits, Packet, RoomInfo, ServerPacket, PROTOCOL_VERSION};
use crate::{DecodeError, ErrorCode};

/// What the server told the client, with list parts already put together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The hello was accepted.
    Welcome {
        /// The nickname now held.
        nick: String,
        /// The server's limits.
        limits: Limits,
    },
    /// Someone (perhaps this client) joined a room this client is in.
    Joined {
        /// The room.
        room: String,
        /// Who joined.
        nick: String,
    },
    /// Someone (perhaps this client) left a room this client is in.
    Left {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// Why.
        reason: String,
    },
    /// A room message.
    Message {
        /// The room.
        room: String,
        /// The sender.
        from: String,
        /// Its position in the room.
        seq: u64,
        /// The text.
        text: String,
    },
    /// A direct message to or from this client.
    Direct {
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// The whole room list.
    RoomList(Vec<RoomInfo>),
    /// A room's whole member list.
    Members {
        /// The room.
        room: String,
        /// Its members.
        nicks: Vec<String>,
    },
    /// Someone (perhaps this client) changed nickname.
    NickChanged {
        /// The former nickname.
        old: String,
        /// The new one.
        new: String,
    },
    /// The server answered a ping.
    Pong {
        /// The ping's token.
        token: u64,
    },
    /// A request failed.
    Error {
        /// The stable code.
        code: ErrorCode,
        /// Type code of the failed request (0 when none).
        request_type: u8,
        /// The number [`Client`] returned when that request was made (0 when none).
        request_seq: u32,
        /// The server's explanation.
        message: String,
    },
    /// The session is over: the server said bye, or it fell silent past its idle timeout.
    Bye {
        /// Why.
        code: ErrorCode,
        /// Why, for humans.
        reason: String,
    },
}

/// A room this client sits in, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// The room's name.
    pub name: String,
    /// Its members, as far as the server has told.
    pub members: Vec<String>,
}

/// A chat client session.
#[derive(Debug)]
pub struct Client {
    decoder: FrameDecoder,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    nick: String,
    registered: bool,
    closed: bool,
    limits: Option<Limits>,
    rooms: BTreeMap<String, RoomView>,
    partial_members: BTreeMap<String, Vec<String>>,
    partial_rooms: Vec<RoomInfo>,
    requests: u32,
    last_rx: Option<Instant>,
}

impl Client {
    /// A session that will ask for `nick`; its hello is queued at once.
    pub fn new(nick: &str) -> Self {
        Self::with_max_frame_len(nick, crate::Config::default().max_frame_len)
    }

    /// As [`Client::new`], accepting server frames of up to `max_frame_len` bytes.
    pub fn with_max_frame_len(nick: &str, max_frame_len: u32) -> Self {
        let mut client = Client {
            decoder: FrameDecoder::new(max_frame_len),
            out: BytesMut::new(),
            events: VecDeque::new(),
            nick: nick.to_owned(),
            registered: false,
            closed: false,
            limits: None,
            rooms: BTreeMap::new(),
            partial_members: BTreeMap::new(),
            partial_rooms: Vec::new(),
            requests: 0,
            last_rx: None,
        };
        client.hello(nick);
        client
    }

    /// The nickname held (or asked for, before the welcome).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether the server accepted the hello.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The limits from the welcome.
    pub fn limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }

    /// The rooms this client sits in, sorted by folded name.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomView> {
        self.rooms.values()
    }

    /// One room this client sits in.
    pub fn room(&self, name: &str) -> Option<&RoomView> {
        self.rooms.get(&fold(name))
    }

    /// Queues a packet and returns its request number, which errors refer to.
    pub fn send(&mut self, packet: &ClientPacket) -> u32 {
        packet.encode_frame(&mut self.out);
        self.requests = self.requests.wrapping_add(1);
        self.requests
    }

    /// Asks for a nickname (again, after a refused hello).
    ///
    /// Once registered the server refuses a hello, so the nick held stays as it is; use
    /// [`Client::change_nick`] to change it.
    pub fn hello(&mut self, nick: &str) -> u32 {
        if !self.registered {
            self.nick = nick.to_owned();
        }
        self.send(&ClientPacket::Hello {
            version: PROTOCOL_VERSION,
            nick: nick.to_owned(),
        })
    }

    /// Joins a room.
    pub fn join(&mut self, room: &str) -> u32 {
        self.send(&ClientPacket::Join {
            room: room.to_owned(),
        })
    }

    /// Leaves a room.
    pub fn leave(&mut self, room: &str, reason: &str) -> u32 {
        self.send(&ClientPacket::Leave {
            room: room.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// Says text to a room.
    pub fn say(&mut self, room: &str, text: &str) -> u32 {
        self.send(&ClientPacket::Say {
            room: room.to_owned(),
            text: text.to_owned(),
        })
    }

    /// Sends a direct message.
    pub fn whisper(&mut self, to: &str, text: &str) -> u32 {
        self.send(&ClientPacket::Whisper {
            to: to.to_owned(),
            text: text.to_owned(),
        })
    }

    /// Asks to change nickname.
    pub fn change_nick(&mut self, nick: &str) -> u32 {
        self.send(&ClientPacket::Nick {
            nick: nick.to_owned(),
        })
    }

    /// Asks for the room list.
    pub fn list_rooms(&mut self) -> u32 {
        self.send(&ClientPacket::ListRooms)
    }

    /// Asks for a room's members.
    pub fn list_members(&mut self, room: &str) -> u32 {
        self.send(&ClientPacket::ListMembers {
            room: room.to_owned(),
        })
    }

    /// Pings the server.
    pub fn ping(&mut self, token: u64) -> u32 {
        self.send(&ClientPacket::Ping { token })
    }

    /// Ends the session; the server answers with a bye.
    pub fn quit(&mut self, reason: &str) -> u32 {
        self.send(&ClientPacket::Quit {
            reason: reason.to_owned(),
        })
    }

    /// Bytes to send to the server, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let data = self.out.split().freeze();
        if self.out.capacity() > 64 * 1024 {
            self.out = BytesMut::new();
        }
        Some(data)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called: the server's idle timeout
    /// after the last thing it sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limits = self.limits.as_ref()?;
        if self.closed {
            return None;
        }
        let timeout = std::time::Duration::from_millis(limits.idle_timeout_ms as u64);
        self.last_rx.map(|t| t + timeout)
    }

    /// Ends the session if the server has been silent past its own idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| now >= at) {
            self.closed = true;
            self.events.push_back(ClientEvent::Bye {
                code: ErrorCode::Timeout,
                reason: "the server fell silent".into(),
            });
        }
    }

    /// Feeds bytes from the server. An error means the server broke the protocol and the
    /// session is over.
    pub fn handle_input(&mut self, mut input: &[u8], now: Instant) -> Result<(), DecodeError> {
        if self.closed {
            return Ok(());
        }
        if !input.is_empty() {
            self.last_rx = Some(now);
        }
        loop {
            let packet = match self.decoder.decode(&mut input) {
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => ServerPacket::decode(frame.type_code, frame.payload),
                Err(e) => Err(e),
            };
            match packet {
                Ok(p) => self.handle_packet(p),
                Err(e) => {
                    self.closed = true;
                    return Err(e);
                }
            }
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    fn handle_packet(&mut self, packet: ServerPacket) {
        let event = match packet {
            ServerPacket::Welcome { nick, limits, .. } => {
                self.nick = nick.clone();
                self.registered = true;
                self.limits = Some(limits);
                ClientEvent::Welcome { nick, limits }
            }
            ServerPacket::Joined { room, nick } => {
                let key = fold(&room);
                if self.is_me(&nick) {
                    self.rooms.insert(
                        key,
                        RoomView {
                            name: room.clone(),
                            members: vec![nick.clone()],
                        },
                    );
                } else if let Some(view) = self.rooms.get_mut(&key) {
                    if !view.members.iter().any(|m| fold(m) == fold(&nick)) {
                        view.members.push(nick.clone());
                    }
                }
                ClientEvent::Joined { room, nick }
            }
            ServerPacket::Left { room, nick, reason } => {
                let key = fold(&room);
                if self.is_me(&nick) {
                    self.rooms.remove(&key);
                } else if let Some(view) = self.rooms.get_mut(&key) {
                    view.members.retain(|m| fold(m) != fold(&nick));
                }
                ClientEvent::Left { room, nick, reason }
            }
            ServerPacket::Message {
                room,
                from,
                seq,
                text,
            } => ClientEvent::Message {
                room,
                from,
                seq,
                text,
            },
            ServerPacket::Direct { from, to, text } => ClientEvent::Direct { from, to, text },
            ServerPacket::RoomList { rooms, last } => {
                self.partial_rooms.extend(rooms);
                if !last {
                    return;
                }
                ClientEvent::RoomList(std::mem::take(&mut self.partial_rooms))
            }
            ServerPacket::Members { room, nicks, last } => {
                let key = fold(&room);
                self.partial_members
                    .entry(key.clone())
                    .or_default()
                    .extend(nicks);
                if !last {
                    return;
                }
                let nicks = self.partial_members.remove(&key).unwrap_or_default();
                if let Some(view) = self.rooms.get_mut(&key) {
                    view.members = nicks.clone();
                }
                ClientEvent::Members { room, nicks }
            }
            ServerPacket::NickChanged { old, new } => {
                for view in self.rooms.values_mut() {
                    for m in view.members.iter_mut() {
                        if fold(m) == fold(&old) {
                            *m = new.clone();
                        }
                    }
                }
                if self.is_me(&old) {
                    self.nick = new.clone();
                }
                ClientEvent::NickChanged { old, new }
            }
            ServerPacket::Ping { token } => {
                self.send(&ClientPacket::Pong { token });
                return;
            }
            ServerPacket::Pong { token } => ClientEvent::Pong { token },
            ServerPacket::Error {
                code,
                request_type,
                request_seq,
                message,
            } => ClientEvent::Error {
                code,
                request_type,
                request_seq,
                message,
            },
            ServerPacket::Bye { code, reason } => {
                self.closed = true;
                ClientEvent::Bye { code, reason }
            }
        };
        self.events.push_back(event);
    }
}
