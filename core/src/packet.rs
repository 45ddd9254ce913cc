//! The native wire packets: each has a type code, encodes itself and parses itself back.
//!
//! Layout of every field is in docs/PROTOCOL.md; this module is its one implementation.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{DecodeError, ErrorCode};

/// The four bytes every hello payload starts with.
pub const MAGIC: [u8; 4] = *b"SWBD";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes of frame header: the `u32` body length.
pub const LENGTH_PREFIX: usize = 4;

/// A packet of the native protocol.
pub trait Packet: Sized {
    /// The packet's type code.
    fn type_code(&self) -> u8;

    /// Appends the payload (everything after the type code).
    fn encode_payload(&self, buf: &mut BytesMut);

    /// Parses a payload that followed `type_code`.
    fn decode(type_code: u8, payload: &[u8]) -> Result<Self, DecodeError>;

    /// Appends one whole frame: length prefix, type code, payload.
    fn encode_frame(&self, buf: &mut BytesMut) {
        let start = buf.len();
        buf.put_u32(0);
        buf.put_u8(self.type_code());
        self.encode_payload(buf);
        // The body length is only known once the payload is written.
        let body = (buf.len() - start - LENGTH_PREFIX) as u32;
        buf[start..start + LENGTH_PREFIX].copy_from_slice(&body.to_be_bytes());
    }

    /// One whole frame as shared bytes.
    fn to_frame(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode_frame(&mut buf);
        buf.freeze()
    }
}

/// The limits a server announces in its welcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body (type code and payload) the server accepts, in bytes.
    pub max_frame_len: u32,
    /// Longest nickname, in bytes.
    pub max_nick_len: u16,
    /// Longest room name, in bytes.
    pub max_room_len: u16,
    /// Longest message text, in bytes.
    pub max_text_len: u16,
    /// Longest leave or quit reason, in bytes.
    pub max_reason_len: u16,
    /// Most rooms one connection may sit in.
    pub max_rooms: u16,
    /// Silence after which the server pings, in milliseconds.
    pub ping_interval_ms: u32,
    /// Silence after which the server closes the connection, in milliseconds.
    pub idle_timeout_ms: u32,
    /// Sustained requests per second allowed (0: unlimited).
    pub msg_rate: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub msg_burst: u32,
}

/// One room in a room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name.
    pub name: String,
    /// How many connections sit in it.
    pub members: u32,
}

/// One member in a member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's nickname.
    pub nick: String,
    /// Bit set of [`Member::OPERATOR`], [`Member::VOICE`] and [`Member::AWAY`].
    pub flags: u8,
}

impl Member {
    /// The member is an operator of the room.
    pub const OPERATOR: u8 = 1;
    /// The member has voice in the room.
    pub const VOICE: u8 = 2;
    /// The member is marked away.
    pub const AWAY: u8 = 4;

    /// Whether the member is an operator of the room.
    pub fn is_operator(&self) -> bool {
        self.flags & Member::OPERATOR != 0
    }
}

/// A room mode that operators set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomMode {
    /// `t`: only operators may set the topic.
    TopicLock,
    /// `o`: the named member is an operator.
    Operator,
    /// `v`: the named member has voice.
    Voice,
}

impl RoomMode {
    /// The mode's letter on the wire (and in IRC).
    pub fn letter(self) -> u8 {
        match self {
            RoomMode::TopicLock => b't',
            RoomMode::Operator => b'o',
            RoomMode::Voice => b'v',
        }
    }

    /// The mode for a letter.
    pub fn from_letter(letter: u8) -> Option<RoomMode> {
        match letter {
            b't' => Some(RoomMode::TopicLock),
            b'o' => Some(RoomMode::Operator),
            b'v' => Some(RoomMode::Voice),
            _ => None,
        }
    }

    /// Whether the mode applies to a member (and so takes a nick).
    pub fn takes_nick(self) -> bool {
        !matches!(self, RoomMode::TopicLock)
    }
}

/// A room rule that operators set: the room-wide modes beside [`RoomMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRule {
    /// `k`: joiners must give this key (the argument).
    Key,
    /// `l`: at most this many members (the argument, a decimal number).
    Limit,
    /// `i`: only invited users may join.
    InviteOnly,
    /// `m`: only operators and voiced members may speak.
    Moderated,
    /// `n`: only members may speak to the room (on when a room is made).
    NoOutside,
    /// `s`: the room is left out of room lists for non-members.
    Secret,
    /// `b`: users whose `nick!user@host` matches the mask (the argument) may not join or speak.
    Ban,
    /// `e`: users matching the mask (the argument) are exempt from bans.
    BanExempt,
    /// `I`: users matching the mask (the argument) may join under `i` without an invitation.
    InviteExempt,
}

impl RoomRule {
    /// The rule's letter on the wire (and in IRC).
    pub fn letter(self) -> u8 {
        match self {
            RoomRule::Key => b'k',
            RoomRule::Limit => b'l',
            RoomRule::InviteOnly => b'i',
            RoomRule::Moderated => b'm',
            RoomRule::NoOutside => b'n',
            RoomRule::Secret => b's',
            RoomRule::Ban => b'b',
            RoomRule::BanExempt => b'e',
            RoomRule::InviteExempt => b'I',
        }
    }

    /// The rule for a letter.
    pub fn from_letter(letter: u8) -> Option<RoomRule> {
        Some(match letter {
            b'k' => RoomRule::Key,
            b'l' => RoomRule::Limit,
            b'i' => RoomRule::InviteOnly,
            b'm' => RoomRule::Moderated,
            b'n' => RoomRule::NoOutside,
            b's' => RoomRule::Secret,
            b'b' => RoomRule::Ban,
            b'e' => RoomRule::BanExempt,
            b'I' => RoomRule::InviteExempt,
            _ => return None,
        })
    }

    /// Whether setting (`on`) or clearing the rule takes an argument.
    pub fn takes_arg(self, on: bool) -> bool {
        match self {
            RoomRule::Key | RoomRule::Limit => on,
            RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => true,
            _ => false,
        }
    }
}

/// A packet a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    /// Opens the session: protocol version and the wanted nickname (the magic is implied).
    Hello {
        /// Protocol version the client speaks.
        version: u16,
        /// The nickname wanted.
        nick: String,
        /// The server password (empty when the server has none).
        password: String,
    },
    /// Joins a room, creating it if it does not exist.
    Join {
        /// The room.
        room: String,
        /// The room's key, if it has one (mode `k`); empty otherwise.
        key: String,
    },
    /// Leaves a room.
    Leave {
        /// The room.
        room: String,
        /// Why, shown to the others (may be empty).
        reason: String,
    },
    /// Says text to a room the client is in.
    Say {
        /// The room.
        room: String,
        /// The message.
        text: String,
    },
    /// Sends a direct message to a nickname.
    Whisper {
        /// The recipient's nickname.
        to: String,
        /// The message.
        text: String,
    },
    /// Changes the client's nickname.
    Nick {
        /// The new nickname.
        nick: String,
    },
    /// Asks for the list of rooms.
    ListRooms,
    /// Asks for the members of a room.
    ListMembers {
        /// The room.
        room: String,
    },
    /// Asks the server to answer with a pong carrying the same token.
    Ping {
        /// Echoed back in the pong.
        token: u64,
    },
    /// Answers a server ping.
    Pong {
        /// The token of the ping answered.
        token: u64,
    },
    /// Ends the session.
    Quit {
        /// Why, shown to the client's rooms.
        reason: String,
    },
    /// Sets a room's topic (empty clears it).
    SetTopic {
        /// The room.
        room: String,
        /// The new topic.
        topic: String,
    },
    /// Removes a member from a room (operators only).
    Kick {
        /// The room.
        room: String,
        /// Who to remove.
        nick: String,
        /// Why.
        reason: String,
    },
    /// Sets an away message (empty: back again).
    Away {
        /// The away message.
        message: String,
    },
    /// Asks about a nickname.
    Whois {
        /// The nickname.
        nick: String,
    },
    /// Sets or clears a room rule (operators only).
    SetRule {
        /// The room.
        room: String,
        /// The rule.
        rule: RoomRule,
        /// Set (true) or clear (false).
        on: bool,
        /// The key, limit or mask (empty for the others).
        arg: String,
    },
    /// Invites a user into a room (members; operators only under `i`).
    Invite {
        /// The room.
        room: String,
        /// Who is invited.
        nick: String,
    },
    /// Asks for a room's rules and ban list.
    ListRules {
        /// The room.
        room: String,
    },
    /// Sets or clears a room mode (operators only).
    SetMode {
        /// The room.
        room: String,
        /// The mode.
        mode: RoomMode,
        /// Set (true) or clear (false).
        on: bool,
        /// The member it applies to (empty for `TopicLock`).
        nick: String,
    },
    /// Asks for a room's stored messages older than `before` (docs/PROTOCOL.md, History).
    History {
        /// The room (the client must be in it).
        room: String,
        /// Only messages with a smaller id; 0 for the newest.
        before: u64,
        /// At most this many, 1 to the server's page limit.
        limit: u16,
    },
}

/// A packet the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPacket {
    /// Accepts a hello.
    Welcome {
        /// Protocol version the server speaks.
        version: u16,
        /// The nickname the connection now holds.
        nick: String,
        /// The server's limits.
        limits: Limits,
    },
    /// Someone (perhaps the receiver) joined a room the receiver is in.
    Joined {
        /// The room.
        room: String,
        /// Who joined.
        nick: String,
    },
    /// Someone (perhaps the receiver) left a room the receiver is in.
    Left {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// Why (may be empty).
        reason: String,
    },
    /// A message said in a room.
    Message {
        /// The room.
        room: String,
        /// The sender's nickname, stamped by the server.
        from: String,
        /// Position of this message in the room, from 1, assigned by the server.
        seq: u64,
        /// The message.
        text: String,
    },
    /// A direct message (sent to the recipient and echoed to the sender).
    Direct {
        /// The sender's nickname, stamped by the server.
        from: String,
        /// The recipient's nickname.
        to: String,
        /// The message.
        text: String,
    },
    /// A part of the room list.
    RoomList {
        /// Rooms in this part.
        rooms: Vec<RoomInfo>,
        /// Whether this is the final part.
        last: bool,
    },
    /// A part of a room's member list.
    Members {
        /// The room.
        room: String,
        /// Members in this part.
        members: Vec<Member>,
        /// Whether this is the final part.
        last: bool,
    },
    /// Someone (perhaps the receiver) changed nickname.
    NickChanged {
        /// The former nickname.
        old: String,
        /// The new nickname.
        new: String,
    },
    /// Asks the client to answer with a pong.
    Ping {
        /// Echo this in the pong.
        token: u64,
    },
    /// Answers a client ping.
    Pong {
        /// The token of the ping answered.
        token: u64,
    },
    /// A request failed.
    Error {
        /// The stable error code.
        code: ErrorCode,
        /// Type code of the request that caused it (0 when none).
        request_type: u8,
        /// Position of that request on the connection, from 1 (0 when none).
        request_seq: u32,
        /// A human-readable explanation.
        message: String,
    },
    /// The server is about to close the connection.
    Bye {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, for humans.
        reason: String,
    },
    /// A room's topic: on join, and to every member when it changes.
    Topic {
        /// The room.
        room: String,
        /// The topic (empty: none).
        topic: String,
        /// Who set it (empty when unknown or on join).
        by: String,
    },
    /// A member was removed from a room by an operator.
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
    /// Someone's away status: the answer to one's own Away request, or the recipient's
    /// status when a direct message reached someone away.
    Away {
        /// Whose status.
        nick: String,
        /// The away message (empty: not away).
        message: String,
    },
    /// The answer to a whois.
    WhoisReply {
        /// The nickname.
        nick: String,
        /// Its away message (empty: not away).
        away: String,
        /// Seconds since it last sent a message.
        idle_secs: u32,
        /// Its rooms, each as a member entry naming the room.
        rooms: Vec<Member>,
    },
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
    /// Someone was invited into a room: sent to the invitee and, as confirmation, the inviter.
    Invited {
        /// The room.
        room: String,
        /// Who invited.
        by: String,
        /// Who is invited.
        nick: String,
    },
    /// A room's rules, on join and on request.
    Rules {
        /// The room.
        room: String,
        /// The flag rules and modes set, as letters (`i`, `k`, `l`, `m`, `n`, `s`, `t`).
        modes: String,
        /// The key (empty if none, or if the asker is not a member).
        key: String,
        /// The member limit, 0 for none.
        limit: u32,
        /// The ban masks.
        bans: Vec<String>,
    },
    /// A room mode was set or cleared.
    ModeChanged {
        /// The room.
        room: String,
        /// The operator who did it (empty: the server, as for a room's creator).
        by: String,
        /// The mode.
        mode: RoomMode,
        /// Set or cleared.
        on: bool,
        /// The member it applies to (empty for `TopicLock`).
        nick: String,
    },
    /// A stored room message, replayed on join or in answer to a History request.
    Replay {
        /// The room.
        room: String,
        /// The sender's nickname when it was said.
        from: String,
        /// The message's id in the room (the `seq` it had when live).
        id: u64,
        /// When it was said, in milliseconds since the Unix epoch (server time).
        time_ms: u64,
        /// The message.
        text: String,
    },
    /// Ends a replay: every Replay of this room before it belongs to one answer.
    HistoryEnd {
        /// The room.
        room: String,
        /// The id of the oldest message replayed (0: none), the cursor for the next page.
        oldest: u64,
        /// Whether older messages are stored.
        more: bool,
    },
}

/// Type codes of client packets.
pub mod client_type {
    /// Hello.
    pub const HELLO: u8 = 0x01;
    /// Join.
    pub const JOIN: u8 = 0x02;
    /// Leave.
    pub const LEAVE: u8 = 0x03;
    /// Say.
    pub const SAY: u8 = 0x04;
    /// Whisper.
    pub const WHISPER: u8 = 0x05;
    /// Nick.
    pub const NICK: u8 = 0x06;
    /// List rooms.
    pub const LIST_ROOMS: u8 = 0x07;
    /// List members.
    pub const LIST_MEMBERS: u8 = 0x08;
    /// Ping.
    pub const PING: u8 = 0x09;
    /// Pong.
    pub const PONG: u8 = 0x0A;
    /// Quit.
    pub const QUIT: u8 = 0x0B;
    /// Set topic.
    pub const SET_TOPIC: u8 = 0x0C;
    /// Kick.
    pub const KICK: u8 = 0x0D;
    /// Away.
    pub const AWAY: u8 = 0x0E;
    /// Whois.
    pub const WHOIS: u8 = 0x0F;
    /// Set mode.
    pub const SET_MODE: u8 = 0x10;
    /// [`ClientPacket::SetRule`]
    pub const SET_RULE: u8 = 0x11;
    /// [`ClientPacket::Invite`]
    pub const INVITE: u8 = 0x12;
    /// [`ClientPacket::ListRules`]
    pub const LIST_RULES: u8 = 0x13;
    /// [`ClientPacket::History`]
    pub const HISTORY: u8 = 0x14;
}

/// Type codes of server packets.
pub mod server_type {
    /// Welcome.
    pub const WELCOME: u8 = 0x81;
    /// Joined.
    pub const JOINED: u8 = 0x82;
    /// Left.
    pub const LEFT: u8 = 0x83;
    /// Room message.
    pub const MESSAGE: u8 = 0x84;
    /// Direct message.
    pub const DIRECT: u8 = 0x85;
    /// Room list.
    pub const ROOM_LIST: u8 = 0x86;
    /// Member list.
    pub const MEMBERS: u8 = 0x87;
    /// Nick changed.
    pub const NICK_CHANGED: u8 = 0x88;
    /// Ping.
    pub const PING: u8 = 0x89;
    /// Pong.
    pub const PONG: u8 = 0x8A;
    /// Error.
    pub const ERROR: u8 = 0x8B;
    /// Bye.
    pub const BYE: u8 = 0x8C;
    /// Topic.
    pub const TOPIC: u8 = 0x8D;
    /// Kicked.
    pub const KICKED: u8 = 0x8E;
    /// Away.
    pub const AWAY: u8 = 0x8F;
    /// Whois reply.
    pub const WHOIS_REPLY: u8 = 0x90;
    /// Mode changed.
    pub const MODE_CHANGED: u8 = 0x91;
    /// [`ServerPacket::RuleChanged`]
    pub const RULE_CHANGED: u8 = 0x92;
    /// [`ServerPacket::Invited`]
    pub const INVITED: u8 = 0x93;
    /// [`ServerPacket::Rules`]
    pub const RULES: u8 = 0x94;
    /// [`ServerPacket::Replay`]
    pub const REPLAY: u8 = 0x95;
    /// [`ServerPacket::HistoryEnd`]
    pub const HISTORY_END: u8 = 0x96;
}

/// Appends a string: `u16` byte length, then UTF-8.
///
/// Longer strings are cut at the last char boundary within 65,535 bytes rather than panic;
/// every protocol limit is far below that, so only a caller that skipped validation sees it.
pub(crate) fn put_str(buf: &mut BytesMut, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_u16(end as u16);
    buf.put_slice(&s.as_bytes()[..end]);
}

/// Appends a member list: `u16` count, then each nick and its flag byte.
fn put_members(buf: &mut BytesMut, members: &[Member]) {
    buf.put_u16(members.len().min(u16::MAX as usize) as u16);
    for m in members.iter().take(u16::MAX as usize) {
        put_str(buf, &m.nick);
        buf.put_u8(m.flags);
    }
}

/// Bytes a string takes on the wire.
pub(crate) fn str_wire_len(s: &str) -> usize {
    2 + s.len().min(u16::MAX as usize)
}

/// A cursor over a payload that turns short reads into [`DecodeError`]s.
struct Reader<'a> {
    buf: &'a [u8],
    type_code: u8,
}

impl<'a> Reader<'a> {
    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            Err(DecodeError::Truncated {
                type_code: self.type_code,
                field,
            })
        } else {
            Ok(())
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue {
                type_code: self.type_code,
                field,
            }),
        }
    }

    fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u16(field)? as usize;
        self.need(len, field)?;
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        match std::str::from_utf8(head) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 {
                type_code: self.type_code,
                field,
            }),
        }
    }

    fn mode(&mut self, field: &'static str) -> Result<RoomMode, DecodeError> {
        let letter = self.u8(field)?;
        RoomMode::from_letter(letter).ok_or(DecodeError::InvalidValue {
            type_code: self.type_code,
            field,
        })
    }

    fn rule(&mut self, field: &'static str) -> Result<RoomRule, DecodeError> {
        let letter = self.u8(field)?;
        RoomRule::from_letter(letter).ok_or(DecodeError::InvalidValue {
            type_code: self.type_code,
            field,
        })
    }

    fn strs(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let count = self.u16(field)?;
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(self.str(field)?);
        }
        Ok(out)
    }

    fn members(&mut self) -> Result<Vec<Member>, DecodeError> {
        let count = self.u16("count")?;
        // No reservation from the declared count: a lying count must not allocate.
        let mut members = Vec::new();
        for _ in 0..count {
            members.push(Member {
                nick: self.str("nick")?,
                flags: self.u8("flags")?,
            });
        }
        Ok(members)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                type_code: self.type_code,
                extra: self.buf.len(),
            })
        }
    }
}

impl Packet for ClientPacket {
    fn type_code(&self) -> u8 {
        use client_type::*;
        match self {
            ClientPacket::Hello { .. } => HELLO,
            ClientPacket::Join { .. } => JOIN,
            ClientPacket::Leave { .. } => LEAVE,
            ClientPacket::Say { .. } => SAY,
            ClientPacket::Whisper { .. } => WHISPER,
            ClientPacket::Nick { .. } => NICK,
            ClientPacket::ListRooms => LIST_ROOMS,
            ClientPacket::ListMembers { .. } => LIST_MEMBERS,
            ClientPacket::Ping { .. } => PING,
            ClientPacket::Pong { .. } => PONG,
            ClientPacket::Quit { .. } => QUIT,
            ClientPacket::SetTopic { .. } => SET_TOPIC,
            ClientPacket::Kick { .. } => KICK,
            ClientPacket::Away { .. } => AWAY,
            ClientPacket::Whois { .. } => WHOIS,
            ClientPacket::SetMode { .. } => SET_MODE,
            ClientPacket::SetRule { .. } => SET_RULE,
            ClientPacket::Invite { .. } => INVITE,
            ClientPacket::ListRules { .. } => LIST_RULES,
            ClientPacket::History { .. } => HISTORY,
        }
    }

    fn encode_payload(&self, buf: &mut BytesMut) {
        match self {
            ClientPacket::Hello {
                version,
                nick,
                password,
            } => {
                buf.put_slice(&MAGIC);
                buf.put_u16(*version);
                put_str(buf, nick);
                put_str(buf, password);
            }
            ClientPacket::Join { room, key } => {
                put_str(buf, room);
                put_str(buf, key);
            }
            ClientPacket::ListMembers { room } | ClientPacket::ListRules { room } => {
                put_str(buf, room)
            }
            ClientPacket::SetRule {
                room,
                rule,
                on,
                arg,
            } => {
                put_str(buf, room);
                buf.put_u8(rule.letter());
                buf.put_u8(u8::from(*on));
                put_str(buf, arg);
            }
            ClientPacket::Invite { room, nick } => {
                put_str(buf, room);
                put_str(buf, nick);
            }
            ClientPacket::Leave { room, reason } => {
                put_str(buf, room);
                put_str(buf, reason);
            }
            ClientPacket::Say { room, text } => {
                put_str(buf, room);
                put_str(buf, text);
            }
            ClientPacket::Whisper { to, text } => {
                put_str(buf, to);
                put_str(buf, text);
            }
            ClientPacket::Nick { nick } => put_str(buf, nick),
            ClientPacket::ListRooms => {}
            ClientPacket::Ping { token } | ClientPacket::Pong { token } => buf.put_u64(*token),
            ClientPacket::Quit { reason } => put_str(buf, reason),
            ClientPacket::SetTopic { room, topic } => {
                put_str(buf, room);
                put_str(buf, topic);
            }
            ClientPacket::Kick { room, nick, reason } => {
                put_str(buf, room);
                put_str(buf, nick);
                put_str(buf, reason);
            }
            ClientPacket::Away { message } => put_str(buf, message),
            ClientPacket::Whois { nick } => put_str(buf, nick),
            ClientPacket::SetMode {
                room,
                mode,
                on,
                nick,
            } => {
                put_str(buf, room);
                buf.put_u8(mode.letter());
                buf.put_u8(u8::from(*on));
                put_str(buf, nick);
            }
            ClientPacket::History {
                room,
                before,
                limit,
            } => {
                put_str(buf, room);
                buf.put_u64(*before);
                buf.put_u16(*limit);
            }
        }
    }

    fn decode(type_code: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        use client_type::*;
        let mut r = Reader {
            buf: payload,
            type_code,
        };
        let packet = match type_code {
            HELLO => {
                r.need(MAGIC.len(), "magic")?;
                if r.buf[..MAGIC.len()] != MAGIC {
                    return Err(DecodeError::BadMagic);
                }
                r.buf.advance(MAGIC.len());
                ClientPacket::Hello {
                    version: r.u16("version")?,
                    nick: r.str("nick")?,
                    password: r.str("password")?,
                }
            }
            JOIN => ClientPacket::Join {
                room: r.str("room")?,
                key: r.str("key")?,
            },
            SET_RULE => ClientPacket::SetRule {
                room: r.str("room")?,
                rule: r.rule("rule")?,
                on: r.flag("on")?,
                arg: r.str("arg")?,
            },
            INVITE => ClientPacket::Invite {
                room: r.str("room")?,
                nick: r.str("nick")?,
            },
            LIST_RULES => ClientPacket::ListRules {
                room: r.str("room")?,
            },
            LEAVE => ClientPacket::Leave {
                room: r.str("room")?,
                reason: r.str("reason")?,
            },
            SAY => ClientPacket::Say {
                room: r.str("room")?,
                text: r.str("text")?,
            },
            WHISPER => ClientPacket::Whisper {
                to: r.str("to")?,
                text: r.str("text")?,
            },
            NICK => ClientPacket::Nick {
                nick: r.str("nick")?,
            },
            LIST_ROOMS => ClientPacket::ListRooms,
            LIST_MEMBERS => ClientPacket::ListMembers {
                room: r.str("room")?,
            },
            PING => ClientPacket::Ping {
                token: r.u64("token")?,
            },
            PONG => ClientPacket::Pong {
                token: r.u64("token")?,
            },
            QUIT => ClientPacket::Quit {
                reason: r.str("reason")?,
            },
            SET_TOPIC => ClientPacket::SetTopic {
                room: r.str("room")?,
                topic: r.str("topic")?,
            },
            KICK => ClientPacket::Kick {
                room: r.str("room")?,
                nick: r.str("nick")?,
                reason: r.str("reason")?,
            },
            AWAY => ClientPacket::Away {
                message: r.str("message")?,
            },
            WHOIS => ClientPacket::Whois {
                nick: r.str("nick")?,
            },
            SET_MODE => ClientPacket::SetMode {
                room: r.str("room")?,
                mode: r.mode("mode")?,
                on: r.flag("on")?,
                nick: r.str("nick")?,
            },
            HISTORY => ClientPacket::History {
                room: r.str("room")?,
                before: r.u64("before")?,
                limit: r.u16("limit")?,
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(packet)
    }
}

impl Packet for ServerPacket {
    fn type_code(&self) -> u8 {
        use server_type::*;
        match self {
            ServerPacket::Welcome { .. } => WELCOME,
            ServerPacket::Joined { .. } => JOINED,
            ServerPacket::Left { .. } => LEFT,
            ServerPacket::Message { .. } => MESSAGE,
            ServerPacket::Direct { .. } => DIRECT,
            ServerPacket::RoomList { .. } => ROOM_LIST,
            ServerPacket::Members { .. } => MEMBERS,
            ServerPacket::NickChanged { .. } => NICK_CHANGED,
            ServerPacket::Ping { .. } => PING,
            ServerPacket::Pong { .. } => PONG,
            ServerPacket::Error { .. } => ERROR,
            ServerPacket::Bye { .. } => BYE,
            ServerPacket::Topic { .. } => TOPIC,
            ServerPacket::Kicked { .. } => KICKED,
            ServerPacket::Away { .. } => AWAY,
            ServerPacket::WhoisReply { .. } => WHOIS_REPLY,
            ServerPacket::ModeChanged { .. } => MODE_CHANGED,
            ServerPacket::RuleChanged { .. } => RULE_CHANGED,
            ServerPacket::Invited { .. } => INVITED,
            ServerPacket::Rules { .. } => RULES,
            ServerPacket::Replay { .. } => REPLAY,
            ServerPacket::HistoryEnd { .. } => HISTORY_END,
        }
    }

    fn encode_payload(&self, buf: &mut BytesMut) {
        match self {
            ServerPacket::Welcome {
                version,
                nick,
                limits,
            } => {
                buf.put_u16(*version);
                put_str(buf, nick);
                buf.put_u32(limits.max_frame_len);
                buf.put_u16(limits.max_nick_len);
                buf.put_u16(limits.max_room_len);
                buf.put_u16(limits.max_text_len);
                buf.put_u16(limits.max_reason_len);
                buf.put_u16(limits.max_rooms);
                buf.put_u32(limits.ping_interval_ms);
                buf.put_u32(limits.idle_timeout_ms);
                buf.put_u32(limits.msg_rate);
                buf.put_u32(limits.msg_burst);
            }
            ServerPacket::Joined { room, nick } => {
                put_str(buf, room);
                put_str(buf, nick);
            }
            ServerPacket::Left { room, nick, reason } => {
                put_str(buf, room);
                put_str(buf, nick);
                put_str(buf, reason);
            }
            ServerPacket::Message {
                room,
                from,
                seq,
                text,
            } => {
                put_str(buf, room);
                put_str(buf, from);
                buf.put_u64(*seq);
                put_str(buf, text);
            }
            ServerPacket::Direct { from, to, text } => {
                put_str(buf, from);
                put_str(buf, to);
                put_str(buf, text);
            }
            ServerPacket::RoomList { rooms, last } => {
                buf.put_u8(u8::from(*last));
                buf.put_u16(rooms.len().min(u16::MAX as usize) as u16);
                for info in rooms.iter().take(u16::MAX as usize) {
                    put_str(buf, &info.name);
                    buf.put_u32(info.members);
                }
            }
            ServerPacket::Members {
                room,
                members,
                last,
            } => {
                put_str(buf, room);
                buf.put_u8(u8::from(*last));
                put_members(buf, members);
            }
            ServerPacket::NickChanged { old, new } => {
                put_str(buf, old);
                put_str(buf, new);
            }
            ServerPacket::Ping { token } | ServerPacket::Pong { token } => buf.put_u64(*token),
            ServerPacket::Error {
                code,
                request_type,
                request_seq,
                message,
            } => {
                buf.put_u16(code.to_u16());
                buf.put_u8(*request_type);
                buf.put_u32(*request_seq);
                put_str(buf, message);
            }
            ServerPacket::Bye { code, reason } => {
                buf.put_u16(code.to_u16());
                put_str(buf, reason);
            }
            ServerPacket::Topic { room, topic, by } => {
                put_str(buf, room);
                put_str(buf, topic);
                put_str(buf, by);
            }
            ServerPacket::Kicked {
                room,
                nick,
                by,
                reason,
            } => {
                put_str(buf, room);
                put_str(buf, nick);
                put_str(buf, by);
                put_str(buf, reason);
            }
            ServerPacket::Away { nick, message } => {
                put_str(buf, nick);
                put_str(buf, message);
            }
            ServerPacket::WhoisReply {
                nick,
                away,
                idle_secs,
                rooms,
            } => {
                put_str(buf, nick);
                put_str(buf, away);
                buf.put_u32(*idle_secs);
                put_members(buf, rooms);
            }
            ServerPacket::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            } => {
                put_str(buf, room);
                put_str(buf, by);
                buf.put_u8(rule.letter());
                buf.put_u8(u8::from(*on));
                put_str(buf, arg);
            }
            ServerPacket::Invited { room, by, nick } => {
                put_str(buf, room);
                put_str(buf, by);
                put_str(buf, nick);
            }
            ServerPacket::Rules {
                room,
                modes,
                key,
                limit,
                bans,
            } => {
                put_str(buf, room);
                put_str(buf, modes);
                put_str(buf, key);
                buf.put_u32(*limit);
                buf.put_u16(bans.len().min(u16::MAX as usize) as u16);
                for b in bans.iter().take(u16::MAX as usize) {
                    put_str(buf, b);
                }
            }
            ServerPacket::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            } => {
                put_str(buf, room);
                put_str(buf, by);
                buf.put_u8(mode.letter());
                buf.put_u8(u8::from(*on));
                put_str(buf, nick);
            }
            ServerPacket::Replay {
                room,
                from,
                id,
                time_ms,
                text,
            } => {
                put_str(buf, room);
                put_str(buf, from);
                buf.put_u64(*id);
                buf.put_u64(*time_ms);
                put_str(buf, text);
            }
            ServerPacket::HistoryEnd { room, oldest, more } => {
                put_str(buf, room);
                buf.put_u64(*oldest);
                buf.put_u8(u8::from(*more));
            }
        }
    }

    fn decode(type_code: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        use server_type::*;
        let mut r = Reader {
            buf: payload,
            type_code,
        };
        let packet = match type_code {
            WELCOME => ServerPacket::Welcome {
                version: r.u16("version")?,
                nick: r.str("nick")?,
                limits: Limits {
                    max_frame_len: r.u32("max_frame_len")?,
                    max_nick_len: r.u16("max_nick_len")?,
                    max_room_len: r.u16("max_room_len")?,
                    max_text_len: r.u16("max_text_len")?,
                    max_reason_len: r.u16("max_reason_len")?,
                    max_rooms: r.u16("max_rooms")?,
                    ping_interval_ms: r.u32("ping_interval_ms")?,
                    idle_timeout_ms: r.u32("idle_timeout_ms")?,
                    msg_rate: r.u32("msg_rate")?,
                    msg_burst: r.u32("msg_burst")?,
                },
            },
            JOINED => ServerPacket::Joined {
                room: r.str("room")?,
                nick: r.str("nick")?,
            },
            LEFT => ServerPacket::Left {
                room: r.str("room")?,
                nick: r.str("nick")?,
                reason: r.str("reason")?,
            },
            MESSAGE => ServerPacket::Message {
                room: r.str("room")?,
                from: r.str("from")?,
                seq: r.u64("seq")?,
                text: r.str("text")?,
            },
            DIRECT => ServerPacket::Direct {
                from: r.str("from")?,
                to: r.str("to")?,
                text: r.str("text")?,
            },
            ROOM_LIST => {
                let last = r.flag("last")?;
                let count = r.u16("count")?;
                // No reservation from the declared count: a lying count must not allocate.
                let mut rooms = Vec::new();
                for _ in 0..count {
                    rooms.push(RoomInfo {
                        name: r.str("name")?,
                        members: r.u32("members")?,
                    });
                }
                ServerPacket::RoomList { rooms, last }
            }
            MEMBERS => ServerPacket::Members {
                room: r.str("room")?,
                last: r.flag("last")?,
                members: r.members()?,
            },
            NICK_CHANGED => ServerPacket::NickChanged {
                old: r.str("old")?,
                new: r.str("new")?,
            },
            PING => ServerPacket::Ping {
                token: r.u64("token")?,
            },
            PONG => ServerPacket::Pong {
                token: r.u64("token")?,
            },
            ERROR => ServerPacket::Error {
                code: ErrorCode::from_u16(r.u16("code")?),
                request_type: r.u8("request_type")?,
                request_seq: r.u32("request_seq")?,
                message: r.str("message")?,
            },
            BYE => ServerPacket::Bye {
                code: ErrorCode::from_u16(r.u16("code")?),
                reason: r.str("reason")?,
            },
            TOPIC => ServerPacket::Topic {
                room: r.str("room")?,
                topic: r.str("topic")?,
                by: r.str("by")?,
            },
            KICKED => ServerPacket::Kicked {
                room: r.str("room")?,
                nick: r.str("nick")?,
                by: r.str("by")?,
                reason: r.str("reason")?,
            },
            AWAY => ServerPacket::Away {
                nick: r.str("nick")?,
                message: r.str("message")?,
            },
            WHOIS_REPLY => ServerPacket::WhoisReply {
                nick: r.str("nick")?,
                away: r.str("away")?,
                idle_secs: r.u32("idle_secs")?,
                rooms: r.members()?,
            },
            RULE_CHANGED => ServerPacket::RuleChanged {
                room: r.str("room")?,
                by: r.str("by")?,
                rule: r.rule("rule")?,
                on: r.flag("on")?,
                arg: r.str("arg")?,
            },
            INVITED => ServerPacket::Invited {
                room: r.str("room")?,
                by: r.str("by")?,
                nick: r.str("nick")?,
            },
            RULES => ServerPacket::Rules {
                room: r.str("room")?,
                modes: r.str("modes")?,
                key: r.str("key")?,
                limit: r.u32("limit")?,
                bans: r.strs("bans")?,
            },
            MODE_CHANGED => ServerPacket::ModeChanged {
                room: r.str("room")?,
                by: r.str("by")?,
                mode: r.mode("mode")?,
                on: r.flag("on")?,
                nick: r.str("nick")?,
            },
            REPLAY => ServerPacket::Replay {
                room: r.str("room")?,
                from: r.str("from")?,
                id: r.u64("id")?,
                time_ms: r.u64("time_ms")?,
                text: r.str("text")?,
            },
            HISTORY_END => ServerPacket::HistoryEnd {
                room: r.str("room")?,
                oldest: r.u64("oldest")?,
                more: r.flag("more")?,
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(packet)
    }
}
