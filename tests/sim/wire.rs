//! What crosses the simulated wire, in the shapes the model compares: server output as
//! [`Out`] items, client input as [`Unit`]s, and the malformed frames clients may send.

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_core::packet::{client_type, ClientPacket, Packet, ServerPacket};
use switchboard_core::{
    ClientEvent, Config, ErrorCode, FrameDecoder, Member, RoomEvent, RoomMode, RoomRule,
};

/// One server packet as the model compares it, list parts already joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Welcome (its limits are checked where it is decoded).
    Welcome { nick: String },
    /// Someone joined.
    Joined { room: String, nick: String },
    /// Someone left; a `None` reason in an expectation matches any reason.
    Left {
        room: String,
        nick: String,
        reason: Option<String>,
    },
    /// A room message.
    Message {
        room: String,
        from: String,
        seq: u64,
        text: String,
    },
    /// A direct message.
    Direct {
        from: String,
        to: String,
        text: String,
    },
    /// A whole room list.
    RoomList(Vec<(String, u32)>),
    /// A whole member list: nicks with their flags.
    Members {
        room: String,
        nicks: Vec<(String, u8)>,
    },
    /// A room's topic.
    Topic {
        room: String,
        topic: String,
        by: String,
    },
    /// Someone was kicked from a room.
    Kicked {
        room: String,
        nick: String,
        by: String,
        reason: String,
    },
    /// Someone's away message.
    Away { nick: String, message: String },
    /// A whois answer (idle seconds left out: they depend on when the model looks).
    Whois {
        nick: String,
        away: String,
        rooms: Vec<(String, u8)>,
    },
    /// A room mode changed.
    ModeChanged {
        room: String,
        by: String,
        mode: RoomMode,
        on: bool,
        nick: String,
    },
    /// A room rule changed.
    RuleChanged {
        room: String,
        by: String,
        rule: RoomRule,
        on: bool,
        arg: String,
    },
    /// Someone was invited into a room.
    Invited {
        room: String,
        by: String,
        nick: String,
    },
    /// A room's rules.
    Rules {
        room: String,
        modes: String,
        key: String,
        limit: u32,
        bans: Vec<String>,
    },
    /// A nick change.
    NickChanged { old: String, new: String },
    /// A server ping (its token is the server's business).
    Ping,
    /// An answer to a client ping.
    Pong { token: u64 },
    /// A failed request.
    Error {
        code: ErrorCode,
        request_type: u8,
        request_seq: u32,
    },
    /// The last frame of a connection.
    Bye { code: ErrorCode },
    /// IRC: someone sharing a channel left the server (one `QUIT` for all channels).
    Quit { nick: String },
    /// IRC: the `ERROR` line that ends a connection.
    ErrorLine,
}

impl Out {
    /// Whether an observed item fulfils this expectation.
    pub fn matches(&self, seen: &Out) -> bool {
        match (self, seen) {
            (
                Out::Left { room, nick, reason },
                Out::Left {
                    room: r2,
                    nick: n2,
                    reason: reason2,
                },
            ) => room == r2 && nick == n2 && (reason.is_none() || reason == reason2),
            _ => self == seen,
        }
    }

    /// How many bytes more than [`Out::min_wire_len`] this item may take: the text of an
    /// error, or a reason the model leaves open.
    pub fn slack(&self) -> usize {
        match self {
            Out::Error { .. } => 1024,
            Out::Left { reason: None, .. } => 64,
            _ => 0,
        }
    }

    /// The fewest bytes this item can take on the wire (an error's message may be empty).
    pub fn min_wire_len(&self) -> usize {
        let packet = match self.clone() {
            Out::Quit { nick } => return nick.len() + 8,
            Out::ErrorLine => return 8,
            Out::Welcome { nick } => ServerPacket::Welcome {
                version: 1,
                nick,
                limits: Config::default().limits(),
            },
            Out::Joined { room, nick } => ServerPacket::Joined { room, nick },
            Out::Left { room, nick, reason } => ServerPacket::Left {
                room,
                nick,
                reason: reason.unwrap_or_default(),
            },
            Out::Message {
                room,
                from,
                seq,
                text,
            } => ServerPacket::Message {
                room,
                from,
                seq,
                text,
            },
            Out::Direct { from, to, text } => ServerPacket::Direct { from, to, text },
            Out::RoomList(_) => ServerPacket::RoomList {
                rooms: Vec::new(),
                last: true,
            },
            Out::Members { room, .. } => ServerPacket::Members {
                room,
                members: Vec::new(),
                last: true,
            },
            Out::Topic { room, topic, by } => ServerPacket::Topic { room, topic, by },
            Out::Kicked {
                room,
                nick,
                by,
                reason,
            } => ServerPacket::Kicked {
                room,
                nick,
                by,
                reason,
            },
            Out::Away { nick, message } => ServerPacket::Away { nick, message },
            Out::Whois { nick, away, .. } => ServerPacket::WhoisReply {
                nick,
                away,
                idle_secs: 0,
                rooms: Vec::new(),
            },
            Out::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            } => ServerPacket::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            },
            Out::Invited { room, by, nick } => ServerPacket::Invited { room, by, nick },
            Out::Rules {
                room,
                modes,
                key,
                limit,
                bans,
            } => ServerPacket::Rules {
                room,
                modes,
                key,
                limit,
                bans,
            },
            Out::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            } => ServerPacket::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            },
            Out::NickChanged { old, new } => ServerPacket::NickChanged { old, new },
            Out::Ping => ServerPacket::Ping { token: 0 },
            Out::Pong { token } => ServerPacket::Pong { token },
            Out::Error {
                code,
                request_type,
                request_seq,
            } => ServerPacket::Error {
                code,
                request_type,
                request_seq,
                message: String::new(),
            },
            Out::Bye { code } => ServerPacket::Bye {
                code,
                reason: String::new(),
            },
        };
        packet.to_frame().len()
    }

    /// Whether the client reports this item as a [`RoomEvent`] rather than a [`ClientEvent`].
    pub fn is_room_event(&self) -> bool {
        matches!(
            self,
            Out::RuleChanged { .. } | Out::Invited { .. } | Out::Rules { .. }
        )
    }

    /// Whether a client's room event is this item.
    pub fn matches_room_event(&self, ev: &RoomEvent) -> bool {
        match (self, ev) {
            (
                Out::RuleChanged {
                    room,
                    by,
                    rule,
                    on,
                    arg,
                },
                RoomEvent::RuleChanged {
                    room: r,
                    by: b,
                    rule: u,
                    on: o,
                    arg: a,
                },
            ) => room == r && by == b && rule == u && on == o && arg == a,
            (
                Out::Invited { room, by, nick },
                RoomEvent::Invited {
                    room: r,
                    by: b,
                    nick: n,
                },
            ) => room == r && by == b && nick == n,
            (
                Out::Rules {
                    room,
                    modes,
                    key,
                    limit,
                    bans,
                },
                RoomEvent::Rules {
                    room: r,
                    modes: m,
                    key: k,
                    limit: l,
                    bans: b,
                },
            ) => room == r && modes == m && key == k && limit == l && bans == b,
            _ => false,
        }
    }

    /// The client event this item becomes, or `None` for what the client consumes itself.
    pub fn matches_event(&self, ev: &ClientEvent) -> bool {
        match (self, ev) {
            (Out::Welcome { nick }, ClientEvent::Welcome { nick: n, .. }) => nick == n,
            (Out::Joined { room, nick }, ClientEvent::Joined { room: r, nick: n }) => {
                room == r && nick == n
            }
            (
                Out::Left { room, nick, reason },
                ClientEvent::Left {
                    room: r,
                    nick: n,
                    reason: why,
                },
            ) => room == r && nick == n && reason.as_ref().is_none_or(|x| x == why),
            (
                Out::Message {
                    room,
                    from,
                    seq,
                    text,
                },
                ClientEvent::Message {
                    room: r,
                    from: f,
                    seq: s,
                    text: t,
                },
            ) => room == r && from == f && seq == s && text == t,
            (
                Out::Direct { from, to, text },
                ClientEvent::Direct {
                    from: f,
                    to: t,
                    text: x,
                },
            ) => from == f && to == t && text == x,
            (Out::RoomList(list), ClientEvent::RoomList(rooms)) => {
                list.len() == rooms.len()
                    && list
                        .iter()
                        .zip(rooms)
                        .all(|((n, c), r)| *n == r.name && *c == r.members)
            }
            (Out::Members { room, nicks }, ClientEvent::Members { room: r, members }) => {
                room == r && *nicks == members_of(members)
            }
            (
                Out::Topic { room, topic, by },
                ClientEvent::Topic {
                    room: r,
                    topic: t,
                    by: b,
                },
            ) => room == r && topic == t && by == b,
            (
                Out::Kicked {
                    room,
                    nick,
                    by,
                    reason,
                },
                ClientEvent::Kicked {
                    room: r,
                    nick: n,
                    by: b,
                    reason: why,
                },
            ) => room == r && nick == n && by == b && reason == why,
            (
                Out::Away { nick, message },
                ClientEvent::Away {
                    nick: n,
                    message: m,
                },
            ) => nick == n && message == m,
            (
                Out::Whois { nick, away, rooms },
                ClientEvent::Whois {
                    nick: n,
                    away: a,
                    rooms: r,
                    ..
                },
            ) => nick == n && away == a && *rooms == members_of(r),
            (
                Out::ModeChanged {
                    room,
                    by,
                    mode,
                    on,
                    nick,
                },
                ClientEvent::ModeChanged {
                    room: r,
                    by: b,
                    mode: m,
                    on: o,
                    nick: n,
                },
            ) => room == r && by == b && mode == m && on == o && nick == n,
            (Out::NickChanged { old, new }, ClientEvent::NickChanged { old: o, new: n }) => {
                old == o && new == n
            }
            (Out::Pong { token }, ClientEvent::Pong { token: t }) => token == t,
            (
                Out::Error {
                    code,
                    request_type,
                    request_seq,
                },
                ClientEvent::Error {
                    code: c,
                    request_type: rt,
                    request_seq: rs,
                    ..
                },
            ) => code == c && request_type == rt && request_seq == rs,
            (Out::Bye { code }, ClientEvent::Bye { code: c, .. }) => code == c,
            _ => false,
        }
    }
}

/// Decodes one connection's server output into [`Out`] items, joining list parts.
#[derive(Debug)]
pub struct Tap {
    decoder: FrameDecoder,
    rooms: Option<(Vec<(String, u32)>, usize)>,
    members: Option<(String, Vec<Entry>, usize)>,
    limits: switchboard_core::Limits,
    /// A bye was seen: nothing may follow it.
    pub saw_bye: bool,
}

impl Tap {
    /// A tap expecting welcomes to announce the limits of `config`.
    pub fn new(config: &Config) -> Self {
        Tap {
            decoder: FrameDecoder::new(u32::MAX),
            rooms: None,
            members: None,
            limits: config.limits(),
            saw_bye: false,
        }
    }

    /// Decodes `data`; each finished item comes with its size in bytes.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<(Out, usize)>) -> Result<(), String> {
        loop {
            let (code, payload_len, packet) = match self.decoder.decode(&mut data) {
                Ok(None) => return Ok(()),
                Ok(Some(f)) => (
                    f.type_code,
                    f.payload.len(),
                    ServerPacket::decode(f.type_code, f.payload),
                ),
                Err(e) => return Err(format!("server output does not frame: {e}")),
            };
            let packet =
                packet.map_err(|e| format!("server sent an undecodable 0x{code:02x}: {e}"))?;
            let size = payload_len + 5;
            if self.saw_bye {
                return Err(format!("server sent {packet:?} after its bye"));
            }
            let in_list = self.rooms.is_some() || self.members.is_some();
            let item = match packet {
                ServerPacket::RoomList { rooms, last } => {
                    if self.members.is_some() {
                        return Err("room list part inside a member list".into());
                    }
                    let acc = self.rooms.get_or_insert_with(|| (Vec::new(), 0));
                    acc.0.extend(rooms.into_iter().map(|r| (r.name, r.members)));
                    acc.1 += size;
                    if !last {
                        continue;
                    }
                    let (list, bytes) = self.rooms.take().unwrap_or_default();
                    out.push((Out::RoomList(list), bytes));
                    continue;
                }
                ServerPacket::Members {
                    room,
                    members: nicks,
                    last,
                } => {
                    if self.rooms.is_some() {
                        return Err("member list part inside a room list".into());
                    }
                    let acc = self
                        .members
                        .get_or_insert_with(|| (room.clone(), Vec::new(), 0));
                    if acc.0 != room {
                        return Err(format!("member list of `{}` continued as `{room}`", acc.0));
                    }
                    acc.1.extend(nicks.into_iter().map(|m| (m.nick, m.flags)));
                    acc.2 += size;
                    if !last {
                        continue;
                    }
                    let (room, nicks, bytes) = self.members.take().unwrap_or_default();
                    out.push((Out::Members { room, nicks }, bytes));
                    continue;
                }
                _ if in_list => return Err(format!("{packet:?} inside a list")),
                ServerPacket::RuleChanged {
                    room,
                    by,
                    rule,
                    on,
                    arg,
                } => Out::RuleChanged {
                    room,
                    by,
                    rule,
                    on,
                    arg,
                },
                ServerPacket::Invited { room, by, nick } => Out::Invited { room, by, nick },
                ServerPacket::Rules {
                    room,
                    modes,
                    key,
                    limit,
                    bans,
                } => Out::Rules {
                    room,
                    modes,
                    key,
                    limit,
                    bans,
                },
                ServerPacket::Welcome {
                    version,
                    nick,
                    limits,
                } => {
                    if version != 1 || limits != self.limits {
                        return Err(format!("welcome with version {version}, limits {limits:?}"));
                    }
                    Out::Welcome { nick }
                }
                ServerPacket::Joined { room, nick } => Out::Joined { room, nick },
                ServerPacket::Left { room, nick, reason } => Out::Left {
                    room,
                    nick,
                    reason: Some(reason),
                },
                ServerPacket::Message {
                    room,
                    from,
                    seq,
                    text,
                } => Out::Message {
                    room,
                    from,
                    seq,
                    text,
                },
                ServerPacket::Direct { from, to, text } => Out::Direct { from, to, text },
                ServerPacket::NickChanged { old, new } => Out::NickChanged { old, new },
                ServerPacket::Ping { .. } => Out::Ping,
                ServerPacket::Pong { token } => Out::Pong { token },
                ServerPacket::Error {
                    code,
                    request_type,
                    request_seq,
                    ..
                } => Out::Error {
                    code,
                    request_type,
                    request_seq,
                },
                ServerPacket::Bye { code, .. } => {
                    self.saw_bye = true;
                    Out::Bye { code }
                }
                ServerPacket::Topic { room, topic, by } => Out::Topic { room, topic, by },
                ServerPacket::Kicked {
                    room,
                    nick,
                    by,
                    reason,
                } => Out::Kicked {
                    room,
                    nick,
                    by,
                    reason,
                },
                ServerPacket::Away { nick, message } => Out::Away { nick, message },
                ServerPacket::Replay { .. } | ServerPacket::HistoryEnd { .. } => {
                    return Err(format!("server sent {packet:?} with history off"));
                }
                ServerPacket::WhoisReply {
                    nick, away, rooms, ..
                } => Out::Whois {
                    nick,
                    away,
                    rooms: members_of(&rooms),
                },
                ServerPacket::ModeChanged {
                    room,
                    by,
                    mode,
                    on,
                    nick,
                } => Out::ModeChanged {
                    room,
                    by,
                    mode,
                    on,
                    nick,
                },
            };
            out.push((item, size));
        }
    }
}

/// One frame a client sent, as the server will see it.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A well-formed packet.
    Packet(ClientPacket),
    /// An IRC command line.
    Irc(crate::irc::Cmd),
    /// Bytes the server must refuse with `code`, closing the connection.
    Bad {
        code: ErrorCode,
        /// The type code the error names (0 when the frame never got that far).
        request_type: u8,
        /// Whether the server counted a frame (it did when the framing was fine).
        counted: bool,
        /// What was sent, for the trace.
        what: &'static str,
    },
}

/// A frame at a stream offset: the server acts on it once that many bytes arrived.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Offset at which the server acts on it.
    pub at: u64,
    /// Its size on the wire.
    pub len: usize,
    pub frame: Frame,
}

/// Bytes a client writes, with the frames they hold (offsets relative to their start).
#[derive(Debug, Clone)]
pub struct Piece {
    pub bytes: Bytes,
    pub units: Vec<Unit>,
}

impl Piece {
    /// Splits bytes a core client produced (whole frames) into units, marking frames over
    /// the server's length limit as the violations they are.
    pub fn from_client(bytes: Bytes, max_frame_len: u32) -> Piece {
        let mut units = Vec::new();
        let mut offset = 0u64;
        let mut rest = &bytes[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let total = 4 + len as usize;
            if len > max_frame_len {
                units.push(Unit {
                    at: offset + 4,
                    len: rest.len(),
                    frame: Frame::Bad {
                        code: ErrorCode::FrameTooLarge,
                        request_type: 0,
                        counted: false,
                        what: "oversized frame",
                    },
                });
                break;
            }
            let mut dec = FrameDecoder::new(u32::MAX);
            let mut input = &rest[..total];
            let packet = match dec.decode(&mut input) {
                Ok(Some(f)) => ClientPacket::decode(f.type_code, f.payload),
                _ => panic!("core client wrote a broken frame"),
            };
            let packet = packet.unwrap_or_else(|e| panic!("core client wrote a bad packet: {e}"));
            offset += total as u64;
            units.push(Unit {
                at: offset,
                len: total,
                frame: Frame::Packet(packet),
            });
            rest = &rest[total..];
        }
        Piece { bytes, units }
    }
}

/// A member list entry: a nick (or, in a whois, a room) and its flags.
pub type Entry = (String, u8);

/// Member entries as (name, flags) pairs.
pub fn members_of(members: &[Member]) -> Vec<(String, u8)> {
    members.iter().map(|m| (m.nick.clone(), m.flags)).collect()
}

fn frame(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(code);
    v.extend_from_slice(payload);
    v
}

/// How many kinds [`malformed`] can make.
pub const MALFORMED_KINDS: u64 = 10;

/// A malformed frame of kind `kind` (mod [`MALFORMED_KINDS`]), and what the server must say.
pub fn malformed(kind: u64, max_frame_len: u32, filler: u8) -> Piece {
    use ErrorCode::*;
    let bad = |code, request_type, counted, what| Frame::Bad {
        code,
        request_type,
        counted,
        what,
    };
    let (bytes, at, f) = match kind % MALFORMED_KINDS {
        0 => {
            let code = [0x00, 0x15, 0x42, 0x81, 0xff][filler as usize % 5];
            let b = frame(code, &[filler; 3]);
            let n = b.len();
            (b, n, bad(UnknownType, code, true, "unknown type"))
        }
        1 => {
            // A room string that claims more bytes than follow.
            let b = frame(client_type::JOIN, &[0, 10, b'a']);
            let n = b.len();
            (
                b,
                n,
                bad(Malformed, client_type::JOIN, true, "truncated join"),
            )
        }
        2 => {
            let b = frame(client_type::PING, &[filler; 9]);
            let n = b.len();
            (
                b,
                n,
                bad(
                    Malformed,
                    client_type::PING,
                    true,
                    "ping with a trailing byte",
                ),
            )
        }
        3 => {
            let mut p = BytesMut::new();
            p.put_u16(1);
            p.put_u8(b'r');
            p.put_u16(2);
            p.put_slice(&[0xff, 0xfe]);
            let b = frame(client_type::SAY, &p);
            let n = b.len();
            (
                b,
                n,
                bad(InvalidUtf8, client_type::SAY, true, "say with bad utf-8"),
            )
        }
        4 => {
            let b = frame(client_type::HELLO, b"SWBX\0\x01\0\x01a");
            let n = b.len();
            (
                b,
                n,
                bad(BadMagic, client_type::HELLO, true, "hello with bad magic"),
            )
        }
        5 => {
            let mut b = (max_frame_len.saturating_add(1 + u32::from(filler)))
                .to_be_bytes()
                .to_vec();
            b.extend_from_slice(&[client_type::SAY, filler, filler]);
            (b, 4, bad(FrameTooLarge, 0, false, "oversized length"))
        }
        6 => (vec![0, 0, 0, 0], 4, bad(Malformed, 0, false, "empty frame")),
        7 => {
            let b = frame(client_type::LIST_ROOMS, &[filler]);
            let n = b.len();
            (
                b,
                n,
                bad(
                    Malformed,
                    client_type::LIST_ROOMS,
                    true,
                    "list rooms with payload",
                ),
            )
        }
        8 => {
            // A room mode letter that does not exist.
            let b = frame(client_type::SET_MODE, &[0, 1, b'r', b'x', 1, 0, 0]);
            let n = b.len();
            (
                b,
                n,
                bad(Malformed, client_type::SET_MODE, true, "set mode x"),
            )
        }
        _ => {
            let b = frame(client_type::JOIN, &[0, 2, b'a', 0xc3]);
            let n = b.len();
            (
                b,
                n,
                bad(InvalidUtf8, client_type::JOIN, true, "join with cut utf-8"),
            )
        }
    };
    Piece {
        units: vec![Unit {
            at: at as u64,
            len: bytes.len(),
            frame: f,
        }],
        bytes: Bytes::from(bytes),
    }
}

/// ASCII case folding, as the protocol compares nicks and room names.
pub fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

const NICK_SPECIAL: &[u8] = b"[]\\`^{}|_";

/// The nickname rule, written out again so the model does not trust the code it checks.
pub fn nick_ok(nick: &str, max: usize) -> bool {
    let b = nick.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && (b[0].is_ascii_alphabetic() || NICK_SPECIAL.contains(&b[0]))
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || NICK_SPECIAL.contains(c))
}

/// The room name rule.
pub fn room_ok(room: &str, max: usize) -> bool {
    let b = room.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The reason rule (may be empty).
pub fn reason_ok(text: &str, max: usize) -> bool {
    text.len() <= max && !text.bytes().any(|c| matches!(c, 0 | b'\r' | b'\n'))
}

/// The message text rule.
pub fn text_ok(text: &str, max: usize) -> bool {
    !text.is_empty() && reason_ok(text, max)
}
