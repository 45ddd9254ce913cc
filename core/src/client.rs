//! The client state machine: hello, requests, membership tracking and events, no I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::frame::FrameDecoder;
use crate::name::fold;
use crate::packet::{
    ClientPacket, Limits, Member, Packet, RoomInfo, RoomMode, RoomRule, ServerPacket,
    PROTOCOL_VERSION,
};
use crate::rate::{cost_of, Cost, RateLimiter};
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
        /// Its members, with their flags.
        members: Vec<Member>,
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
    /// A room's topic, on join or when it changes.
    Topic {
        /// The room.
        room: String,
        /// The topic (empty: none).
        topic: String,
        /// Who set it.
        by: String,
    },
    /// Someone (perhaps this client) was removed from a room.
    Kicked {
        /// The room.
        room: String,
        /// Who was removed.
        nick: String,
        /// The operator who did it.
        by: String,
        /// Why.
        reason: String,
    },
    /// Someone's away status (this client's own after setting it, or a whisper's recipient).
    Away {
        /// Whose.
        nick: String,
        /// The away message (empty: not away).
        message: String,
    },
    /// The answer to a whois.
    Whois {
        /// The nickname.
        nick: String,
        /// Its away message (empty: not away).
        away: String,
        /// Seconds since it last said something.
        idle_secs: u32,
        /// Its rooms, with its flags in each.
        rooms: Vec<Member>,
    },
    /// A room mode was set or cleared.
    ModeChanged {
        /// The room.
        room: String,
        /// The operator who did it.
        by: String,
        /// The mode.
        mode: RoomMode,
        /// Set or cleared.
        on: bool,
        /// The member it applies to (empty for the topic lock).
        nick: String,
    },
    /// A stored room message, replayed on join or for a history request.
    Replayed {
        /// The room.
        room: String,
        /// The sender.
        from: String,
        /// Its id in the room (the `seq` it had live).
        id: u64,
        /// When it was said, in Unix milliseconds.
        time_ms: u64,
        /// The text.
        text: String,
    },
    /// A replay is complete.
    HistoryEnd {
        /// The room.
        room: String,
        /// Id of the oldest message replayed (0: none): the cursor for the next page.
        oldest: u64,
        /// Whether older messages are stored.
        more: bool,
    },
}

/// What the server told about room rules and invitations: kept apart from [`ClientEvent`]
/// (see [`Client::poll_room_event`]) so existing exhaustive matches on it stay valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A room rule was set or cleared.
    RuleChanged {
        /// The room.
        room: String,
        /// The operator who did it.
        by: String,
        /// The rule.
        rule: RoomRule,
        /// Set or cleared.
        on: bool,
        /// The key, limit or mask (empty for the others).
        arg: String,
    },
    /// Someone (perhaps this client) was invited into a room.
    Invited {
        /// The room.
        room: String,
        /// Who invited.
        by: String,
        /// Who is invited.
        nick: String,
    },
    /// A room's rules, as asked for with [`Client::list_rules`].
    Rules {
        /// The room.
        room: String,
        /// The flag modes set, as letters.
        modes: String,
        /// The key (shown to members only).
        key: String,
        /// The member limit, 0 for none.
        limit: u32,
        /// The ban masks.
        bans: Vec<String>,
    },
}

/// A room this client sits in, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomView {
    /// The room's name.
    pub name: String,
    /// Its members, as far as the server has told.
    pub members: Vec<String>,
    /// Its topic (empty: none).
    pub topic: String,
    /// Its flag modes as letters (`i`, `k`, `l`, `m`, `n`, `s`, `t`), as far as told:
    /// by [`RoomEvent::Rules`] and every rule change since.
    pub modes: String,
    /// Member flags ([`Member::OPERATOR`], [`Member::VOICE`]) by folded nick.
    flags: BTreeMap<String, u8>,
    /// Folded nicks of `members`, so a join in a large room is not a scan of it.
    index: BTreeSet<String>,
}

impl RoomView {
    /// The room flags of a member (away status is not tracked here).
    pub fn flags(&self, nick: &str) -> u8 {
        self.flags.get(&fold(nick)).copied().unwrap_or(0)
    }

    /// Whether a member is an operator of the room.
    pub fn is_operator(&self, nick: &str) -> bool {
        self.flags(nick) & Member::OPERATOR != 0
    }
}

impl RoomView {
    fn new(name: String) -> Self {
        RoomView {
            name,
            ..RoomView::default()
        }
    }

    fn add(&mut self, nick: &str) {
        if self.index.insert(fold(nick)) {
            self.members.push(nick.to_owned());
        }
    }

    fn remove(&mut self, nick: &str) {
        let key = fold(nick);
        if self.index.remove(&key) {
            self.members.retain(|m| !m.eq_ignore_ascii_case(nick));
        }
        self.flags.remove(&key);
    }

    fn set_members(&mut self, members: &[Member]) {
        self.members = members.iter().map(|m| m.nick.clone()).collect();
        self.index = members.iter().map(|m| fold(&m.nick)).collect();
        self.flags = members
            .iter()
            .filter(|m| m.flags & (Member::OPERATOR | Member::VOICE) != 0)
            .map(|m| (fold(&m.nick), m.flags & (Member::OPERATOR | Member::VOICE)))
            .collect();
    }

    fn rename(&mut self, old: &str, new: &str) {
        let key = fold(old);
        if !self.index.remove(&key) {
            return;
        }
        self.index.insert(fold(new));
        for m in self.members.iter_mut() {
            if m.eq_ignore_ascii_case(old) {
                *m = new.to_owned();
            }
        }
        if let Some(flags) = self.flags.remove(&key) {
            self.flags.insert(fold(new), flags);
        }
    }
}

/// A chat client session.
#[derive(Debug)]
pub struct Client {
    decoder: FrameDecoder,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    room_events: VecDeque<RoomEvent>,
    nick: String,
    registered: bool,
    closed: bool,
    limits: Option<Limits>,
    rooms: BTreeMap<String, RoomView>,
    partial_members: BTreeMap<String, Vec<Member>>,
    partial_rooms: Vec<RoomInfo>,
    requests: u32,
    last_rx: Option<Instant>,
    password: String,
    /// Requests wait for the server's announced rate before they are sent.
    paced: bool,
    /// Requests held back by pacing, whole frames with their cost, in order.
    held: VecDeque<(Bytes, Cost)>,
    limiter: RateLimiter,
    /// The latest time given to `handle_input` or `handle_timeout`.
    clock: Option<Instant>,
    /// Costs of what was sent before the welcome told the rate.
    early: Vec<Cost>,
}

impl Client {
    /// A session that will ask for `nick`; its hello is queued at once.
    pub fn new(nick: &str) -> Self {
        Self::with_max_frame_len(nick, crate::Config::default().max_frame_len)
    }

    /// As [`Client::new`], giving the server's password in the hello.
    pub fn with_password(nick: &str, password: &str) -> Self {
        let mut client = Self::without_hello(crate::Config::default().max_frame_len);
        client.password = password.to_owned();
        client.hello(nick);
        client
    }

    /// As [`Client::new`], accepting server frames of up to `max_frame_len` bytes.
    pub fn with_max_frame_len(nick: &str, max_frame_len: u32) -> Self {
        let mut client = Self::without_hello(max_frame_len);
        client.hello(nick);
        client
    }

    fn without_hello(max_frame_len: u32) -> Self {
        Client {
            decoder: FrameDecoder::new(max_frame_len),
            out: BytesMut::new(),
            events: VecDeque::new(),
            room_events: VecDeque::new(),
            nick: String::new(),
            registered: false,
            closed: false,
            limits: None,
            rooms: BTreeMap::new(),
            partial_members: BTreeMap::new(),
            partial_rooms: Vec::new(),
            requests: 0,
            last_rx: None,
            password: String::new(),
            paced: true,
            held: VecDeque::new(),
            limiter: RateLimiter::default(),
            clock: None,
            early: Vec::new(),
        }
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
    ///
    /// While pacing is on (the default) and the server announced a rate, requests over
    /// that rate wait here, in order, and leave through [`Client::poll_transmit`] as the
    /// rate allows; [`Client::poll_timeout`] says when the next one may go.
    pub fn send(&mut self, packet: &ClientPacket) -> u32 {
        let cost = cost_of(packet);
        if self.rate().is_some() || !self.held.is_empty() {
            let mut frame = BytesMut::new();
            packet.encode_frame(&mut frame);
            self.held.push_back((frame.freeze(), cost));
        } else {
            packet.encode_frame(&mut self.out);
            if self.limits.is_none() {
                self.early.push(cost);
            }
        }
        self.requests = self.requests.wrapping_add(1);
        self.requests
    }

    /// Turns pacing on or off (on by default). Off, every request is sent at once, which
    /// may take longer in the end: the server delays what is over its rate.
    pub fn set_paced(&mut self, paced: bool) {
        self.paced = paced;
        if !paced {
            for (frame, _) in self.held.drain(..) {
                self.out.extend_from_slice(&frame);
            }
        }
    }

    /// Requests held back by pacing, not yet sent.
    pub fn held_requests(&self) -> usize {
        self.held.len()
    }

    /// The announced rate and burst, when pacing applies.
    fn rate(&self) -> Option<(u32, u32)> {
        let limits = self.limits.as_ref()?;
        (self.paced && limits.msg_rate > 0).then_some((limits.msg_rate, limits.msg_burst))
    }

    /// Moves held requests the rate now allows to the output.
    fn release(&mut self) {
        let (Some((rate, burst)), Some(now)) = (self.rate(), self.clock) else {
            return;
        };
        while !self.held.is_empty() && self.limiter.ready(now, rate, burst) {
            if let Some((frame, cost)) = self.held.pop_front() {
                self.limiter.charge(now, rate, cost);
                self.out.extend_from_slice(&frame);
            }
        }
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
            password: self.password.clone(),
        })
    }

    /// Joins a room.
    pub fn join(&mut self, room: &str) -> u32 {
        self.join_with_key(room, "")
    }

    /// Joins a room that has a key (mode `k`).
    pub fn join_with_key(&mut self, room: &str, key: &str) -> u32 {
        self.send(&ClientPacket::Join {
            room: room.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Sets or clears a room rule (operators only); `arg` is the key, limit or mask.
    pub fn set_rule(&mut self, room: &str, rule: RoomRule, on: bool, arg: &str) -> u32 {
        self.send(&ClientPacket::SetRule {
            room: room.to_owned(),
            rule,
            on,
            arg: arg.to_owned(),
        })
    }

    /// Invites a user into a room.
    pub fn invite(&mut self, room: &str, nick: &str) -> u32 {
        self.send(&ClientPacket::Invite {
            room: room.to_owned(),
            nick: nick.to_owned(),
        })
    }

    /// Asks for a room's rules and bans (answered with [`RoomEvent::Rules`]).
    pub fn list_rules(&mut self, room: &str) -> u32 {
        self.send(&ClientPacket::ListRules {
            room: room.to_owned(),
        })
    }

    /// The next room-rule or invitation event, if any.
    pub fn poll_room_event(&mut self) -> Option<RoomEvent> {
        self.room_events.pop_front()
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

    /// Sets (or, with empty text, clears) a room's topic.
    pub fn set_topic(&mut self, room: &str, topic: &str) -> u32 {
        self.send(&ClientPacket::SetTopic {
            room: room.to_owned(),
            topic: topic.to_owned(),
        })
    }

    /// Removes a member from a room (operators only).
    pub fn kick(&mut self, room: &str, nick: &str, reason: &str) -> u32 {
        self.send(&ClientPacket::Kick {
            room: room.to_owned(),
            nick: nick.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// Sets an away message; empty means back.
    pub fn away(&mut self, message: &str) -> u32 {
        self.send(&ClientPacket::Away {
            message: message.to_owned(),
        })
    }

    /// Asks about a nickname.
    pub fn whois(&mut self, nick: &str) -> u32 {
        self.send(&ClientPacket::Whois {
            nick: nick.to_owned(),
        })
    }

    /// Asks for up to `limit` stored messages of a room older than `before` (0: newest).
    pub fn history(&mut self, room: &str, before: u64, limit: u16) -> u32 {
        self.send(&ClientPacket::History {
            room: room.to_owned(),
            before,
            limit,
        })
    }

    /// Sets or clears a room mode (operators only); `nick` is empty for the topic lock.
    pub fn set_mode(&mut self, room: &str, mode: RoomMode, on: bool, nick: &str) -> u32 {
        self.send(&ClientPacket::SetMode {
            room: room.to_owned(),
            mode,
            on,
            nick: nick.to_owned(),
        })
    }

    /// Bytes to send to the server, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.release();
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

    /// When [`Client::handle_timeout`] should next be called: when the rate lets the next
    /// held request go, or the server's idle timeout after the last thing it sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let release = match self.rate() {
            Some((rate, burst)) if !self.held.is_empty() => self.limiter.wake_at(rate, burst),
            _ => None,
        };
        match (release, self.idle_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The server's idle timeout after the last thing it sent.
    fn idle_deadline(&self) -> Option<Instant> {
        let limits = self.limits.as_ref()?;
        let timeout = std::time::Duration::from_millis(limits.idle_timeout_ms as u64);
        self.last_rx.map(|t| t + timeout)
    }

    /// Lets held requests go as the rate allows (take them with
    /// [`Client::poll_transmit`]); ends the session if the server has been silent past its
    /// own idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if self.closed {
            return;
        }
        if self.idle_deadline().is_some_and(|at| now >= at) {
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
        self.tick(now);
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

    /// Moves the pacing clock forward.
    fn tick(&mut self, now: Instant) {
        if self.clock.is_none_or(|c| c < now) {
            self.clock = Some(now);
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        // ASCII case folding, the protocol's, without allocating: this runs per event.
        nick.eq_ignore_ascii_case(&self.nick)
    }

    fn handle_packet(&mut self, packet: ServerPacket) {
        let event = match packet {
            ServerPacket::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            } => {
                if let Some(view) = self.rooms.get_mut(&fold(&room)) {
                    let letter = rule.letter() as char;
                    if !matches!(
                        rule,
                        RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt
                    ) {
                        view.modes.retain(|c| c != letter);
                        if on {
                            view.modes.push(letter);
                        }
                    }
                }
                self.room_events.push_back(RoomEvent::RuleChanged {
                    room,
                    by,
                    rule,
                    on,
                    arg,
                });
                return;
            }
            ServerPacket::Invited { room, by, nick } => {
                self.room_events
                    .push_back(RoomEvent::Invited { room, by, nick });
                return;
            }
            ServerPacket::Rules {
                room,
                modes,
                key,
                limit,
                bans,
            } => {
                if let Some(view) = self.rooms.get_mut(&fold(&room)) {
                    view.modes = modes.clone();
                }
                self.room_events.push_back(RoomEvent::Rules {
                    room,
                    modes,
                    key,
                    limit,
                    bans,
                });
                return;
            }
            ServerPacket::Welcome { nick, limits, .. } => {
                self.nick = nick.clone();
                self.registered = true;
                self.limits = Some(limits);
                // What went out before the rate was known counts against it.
                let early = std::mem::take(&mut self.early);
                if let (Some((rate, _)), Some(now)) = (self.rate(), self.clock) {
                    for cost in early {
                        self.limiter.charge(now, rate, cost);
                    }
                }
                ClientEvent::Welcome { nick, limits }
            }
            ServerPacket::Joined { room, nick } => {
                let key = fold(&room);
                if self.is_me(&nick) {
                    let mut view = RoomView::new(room.clone());
                    view.add(&nick);
                    self.rooms.insert(key, view);
                } else if let Some(view) = self.rooms.get_mut(&key) {
                    view.add(&nick);
                }
                ClientEvent::Joined { room, nick }
            }
            ServerPacket::Left { room, nick, reason } => {
                let key = fold(&room);
                if self.is_me(&nick) {
                    self.rooms.remove(&key);
                } else if let Some(view) = self.rooms.get_mut(&key) {
                    view.remove(&nick);
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
            ServerPacket::Members {
                room,
                members,
                last,
            } => {
                let key = fold(&room);
                self.partial_members
                    .entry(key.clone())
                    .or_default()
                    .extend(members);
                if !last {
                    return;
                }
                let members = self.partial_members.remove(&key).unwrap_or_default();
                if let Some(view) = self.rooms.get_mut(&key) {
                    view.set_members(&members);
                }
                ClientEvent::Members { room, members }
            }
            ServerPacket::NickChanged { old, new } => {
                for view in self.rooms.values_mut() {
                    view.rename(&old, &new);
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
            ServerPacket::Topic { room, topic, by } => {
                if let Some(view) = self.rooms.get_mut(&fold(&room)) {
                    view.topic = topic.clone();
                }
                ClientEvent::Topic { room, topic, by }
            }
            ServerPacket::Kicked {
                room,
                nick,
                by,
                reason,
            } => {
                let key = fold(&room);
                if self.is_me(&nick) {
                    self.rooms.remove(&key);
                } else if let Some(view) = self.rooms.get_mut(&key) {
                    view.remove(&nick);
                }
                ClientEvent::Kicked {
                    room,
                    nick,
                    by,
                    reason,
                }
            }
            ServerPacket::Away { nick, message } => ClientEvent::Away { nick, message },
            ServerPacket::Replay {
                room,
                from,
                id,
                time_ms,
                text,
            } => ClientEvent::Replayed {
                room,
                from,
                id,
                time_ms,
                text,
            },
            ServerPacket::HistoryEnd { room, oldest, more } => {
                ClientEvent::HistoryEnd { room, oldest, more }
            }
            ServerPacket::WhoisReply {
                nick,
                away,
                idle_secs,
                rooms,
            } => ClientEvent::Whois {
                nick,
                away,
                idle_secs,
                rooms,
            },
            ServerPacket::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            } => {
                if let Some(view) = self.rooms.get_mut(&fold(&room)) {
                    let bit = match mode {
                        RoomMode::Operator => Member::OPERATOR,
                        RoomMode::Voice => Member::VOICE,
                        RoomMode::TopicLock => 0,
                    };
                    if bit != 0 {
                        let flags = view.flags.entry(fold(&nick)).or_default();
                        if on {
                            *flags |= bit;
                        } else {
                            *flags &= !bit;
                        }
                    }
                }
                ClientEvent::ModeChanged {
                    room,
                    by,
                    mode,
                    on,
                    nick,
                }
            }
        };
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    //! The client alone, fed the server's frames by hand: what it tracks of its rooms and
    //! when its session ends. (`server::tests` drive it against a real server.)

    use std::time::Duration;

    use super::*;

    fn welcomed(nick: &str) -> Client {
        welcomed_with(nick, limits())
    }

    fn welcomed_with(nick: &str, limits: Limits) -> Client {
        let mut c = Client::new(nick);
        feed(
            &mut c,
            ServerPacket::Welcome {
                version: PROTOCOL_VERSION,
                nick: nick.into(),
                limits,
            },
        );
        c
    }

    fn limits() -> Limits {
        Limits {
            max_frame_len: 65_536,
            max_nick_len: 32,
            max_room_len: 64,
            max_text_len: 1_024,
            max_reason_len: 256,
            max_rooms: 16,
            ping_interval_ms: 30_000,
            idle_timeout_ms: 60_000,
            msg_rate: 0,
            msg_burst: 0,
        }
    }

    fn feed(c: &mut Client, packet: ServerPacket) {
        feed_at(c, packet, crate::test_clock::start());
    }

    fn feed_at(c: &mut Client, packet: ServerPacket, now: Instant) {
        let mut frame = BytesMut::new();
        packet.encode_frame(&mut frame);
        c.handle_input(&frame, now).expect("a well-formed frame");
    }

    fn member(nick: &str, flags: u8) -> Member {
        Member {
            nick: nick.into(),
            flags,
        }
    }

    #[test]
    fn a_member_who_leaves_or_is_kicked_is_gone_from_the_view() {
        let mut c = welcomed("me");
        for nick in ["me", "Bob", "carol"] {
            feed(
                &mut c,
                ServerPacket::Joined {
                    room: "#r".into(),
                    nick: nick.into(),
                },
            );
        }
        assert_eq!(c.room("#r").unwrap().members, ["me", "Bob", "carol"]);
        feed(
            &mut c,
            ServerPacket::Left {
                room: "#r".into(),
                nick: "bob".into(),
                reason: String::new(),
            },
        );
        assert_eq!(c.room("#r").unwrap().members, ["me", "carol"]);
        feed(
            &mut c,
            ServerPacket::Kicked {
                room: "#r".into(),
                nick: "carol".into(),
                by: "me".into(),
                reason: String::new(),
            },
        );
        assert_eq!(c.room("#r").unwrap().members, ["me"]);
        // Back again: the index forgot them too, so they are listed once more.
        feed(
            &mut c,
            ServerPacket::Joined {
                room: "#r".into(),
                nick: "bob".into(),
            },
        );
        assert_eq!(c.room("#r").unwrap().members, ["me", "bob"]);
    }

    #[test]
    fn a_member_list_keeps_operator_and_voice_flags_and_drops_the_rest() {
        let mut c = welcomed("me");
        feed(
            &mut c,
            ServerPacket::Joined {
                room: "#r".into(),
                nick: "me".into(),
            },
        );
        let op = Member::OPERATOR;
        let voice = Member::VOICE;
        let away = Member::AWAY;
        feed(
            &mut c,
            ServerPacket::Members {
                room: "#r".into(),
                members: vec![
                    member("me", op),
                    member("both", op | voice),
                    member("voiced", voice),
                    member("away_op", op | away),
                    member("all", op | voice | away),
                    member("plain", 0),
                    member("away", away),
                ],
                last: true,
            },
        );
        let view = c.room("#r").unwrap();
        let flags: Vec<u8> = view.members.iter().map(|m| view.flags(m)).collect();
        assert_eq!(flags, [op, op | voice, voice, op, op | voice, 0, 0]);
        let ops: Vec<bool> = view.members.iter().map(|m| view.is_operator(m)).collect();
        assert_eq!(ops, [true, true, false, true, true, false, false]);
        // Only members with a flag take room in the map: a large room is mostly neither.
        assert_eq!(view.flags.len(), 5);
    }

    #[test]
    fn the_session_is_closed_after_a_bye_and_not_before() {
        let mut c = welcomed("me");
        assert!(!c.is_closed());
        feed(
            &mut c,
            ServerPacket::Bye {
                code: ErrorCode::Timeout,
                reason: "bye".into(),
            },
        );
        assert!(c.is_closed());
    }

    #[test]
    fn the_welcome_gives_the_limits_and_joins_give_the_rooms_in_folded_order() {
        let mut c = Client::new("me");
        assert_eq!(c.limits(), None);
        let mut c2 = welcomed("me");
        assert_eq!(c2.limits(), Some(&limits()));
        for room in ["#b", "#A", "#c"] {
            feed(
                &mut c2,
                ServerPacket::Joined {
                    room: room.into(),
                    nick: "ME".into(),
                },
            );
        }
        let names: Vec<&str> = c2.rooms().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["#A", "#b", "#c"]);
        assert!(c.poll_transmit().is_some(), "the hello is queued at once");
    }

    /// Frames in `bytes`, decoded.
    fn frames(bytes: &[u8]) -> Vec<ClientPacket> {
        let mut decoder = FrameDecoder::new(65_536);
        let mut input = bytes;
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut input).expect("whole frames") {
            out.push(ClientPacket::decode(frame.type_code, frame.payload).expect("a packet"));
        }
        out
    }

    #[test]
    fn turning_pacing_off_sends_what_it_held_at_once() {
        let mut c = welcomed_with(
            "me",
            Limits {
                msg_rate: 1,
                msg_burst: 1,
                ..limits()
            },
        );
        // The hello used the one request a second already.
        assert_eq!(frames(&c.poll_transmit().unwrap_or_default()).len(), 1);
        // Nothing held: the next wake-up is the server's idle timeout, not the rate's.
        assert_eq!(c.held_requests(), 0);
        assert_eq!(c.poll_timeout(), c.idle_deadline());
        for text in ["a", "b", "c"] {
            c.say("#r", text);
        }
        assert_eq!(c.poll_transmit(), None);
        assert_eq!(c.held_requests(), 3);
        c.set_paced(false);
        assert_eq!(c.held_requests(), 0);
        let texts: Vec<String> = frames(&c.poll_transmit().unwrap_or_default())
            .into_iter()
            .filter_map(|p| match p {
                ClientPacket::Say { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    #[test]
    fn with_no_rate_announced_nothing_is_held() {
        let mut c = welcomed("me");
        c.say("#r", "a");
        assert_eq!(c.held_requests(), 0);
        assert_eq!(c.poll_timeout(), c.idle_deadline());
        assert_eq!(frames(&c.poll_transmit().unwrap_or_default()).len(), 2);
    }

    #[test]
    fn every_request_gets_the_next_number() {
        let mut c = Client::with_password("me", "secret");
        let numbers = [
            c.join("#r"),
            c.join_with_key("#k", "key"),
            c.set_rule("#r", RoomRule::Moderated, true, ""),
            c.invite("#r", "bob"),
            c.list_rules("#r"),
            c.leave("#r", "bye"),
            c.say("#r", "hi"),
            c.whisper("bob", "hi"),
            c.change_nick("me2"),
            c.list_rooms(),
            c.list_members("#r"),
            c.ping(7),
            c.set_topic("#r", "topic"),
            c.kick("#r", "bob", "out"),
            c.away("gone"),
            c.whois("bob"),
            c.history("#r", 0, 10),
            c.set_mode("#r", RoomMode::Voice, true, "bob"),
            c.hello("again"),
            c.quit("done"),
        ];
        // The hello queued by `with_password` was request 1.
        assert_eq!(numbers.to_vec(), (2..22).collect::<Vec<u32>>());
        let sent = frames(&c.poll_transmit().unwrap_or_default());
        assert_eq!(sent.len(), 21);
        assert!(
            matches!(&sent[0], ClientPacket::Hello { nick, password, .. }
            if nick == "me" && password == "secret")
        );
        // Not registered yet: the second hello's nick is the one asked for now.
        assert_eq!(c.nick(), "again");
    }

    #[test]
    fn a_large_output_buffer_is_let_go_once_sent_and_a_small_one_kept() {
        let mut c = Client::new("me");
        assert!(c.poll_transmit().is_some(), "the hello");
        let mut frame = BytesMut::new();
        ClientPacket::Ping { token: 1 }.encode_frame(&mut frame);
        // Left with exactly 64 KiB after the ping goes: kept, for the next requests.
        c.out = BytesMut::with_capacity(64 * 1024 + frame.len());
        c.ping(1);
        assert_eq!(c.poll_transmit().map(|b| b.len()), Some(frame.len()));
        assert_eq!(c.out.capacity(), 64 * 1024);
        // One byte more: let go.
        c.out = BytesMut::with_capacity(64 * 1024 + 1 + frame.len());
        c.ping(1);
        assert_eq!(c.poll_transmit().map(|b| b.len()), Some(frame.len()));
        assert_eq!(c.out.capacity(), 0);
    }

    #[test]
    fn the_session_ends_when_the_server_is_silent_for_its_idle_timeout() {
        let t0 = crate::test_clock::start();
        let mut c = Client::new("me");
        assert_eq!(
            c.poll_timeout(),
            None,
            "no timeout known before the welcome"
        );
        let welcome = ServerPacket::Welcome {
            version: PROTOCOL_VERSION,
            nick: "me".into(),
            limits: limits(),
        };
        feed_at(&mut c, welcome, t0);
        let idle = Duration::from_millis(60_000);
        assert_eq!(c.poll_timeout(), Some(t0 + idle));
        // Anything from the server starts the wait again.
        let t1 = t0 + Duration::from_secs(10);
        feed_at(&mut c, ServerPacket::Ping { token: 1 }, t1);
        assert_eq!(c.poll_timeout(), Some(t1 + idle));
        c.handle_timeout(t1 + idle - Duration::from_nanos(1));
        assert!(!c.is_closed());
        assert_eq!(
            c.poll_event()
                .map(|e| matches!(e, ClientEvent::Welcome { .. })),
            Some(true)
        );
        assert_eq!(c.poll_event(), None);
        c.handle_timeout(t1 + idle);
        assert!(c.is_closed());
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Bye {
                code: ErrorCode::Timeout,
                ..
            })
        ));
        assert_eq!(c.poll_timeout(), None, "closed: nothing more to wait for");
    }
}
