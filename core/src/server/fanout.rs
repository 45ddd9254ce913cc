//! Fan-out: what the chat operations decided others must hear (a [`Notice`], data), and
//! its rendering per recipient by the one native encoder (`Packet::to_frame`) and the one
//! IRC encoder (`irc::render`, the form chosen by each recipient's capabilities).
//!
//! Each form is encoded at most once per fan-out and shared, as `Bytes`, by every
//! recipient that gets it; a message's IRC source and msgid are built only when an IRC
//! recipient gets it.

use bytes::{Bytes, BytesMut};

use super::irc;
use crate::history::StoredMessage;
use crate::packet::{Packet, ServerPacket};
use crate::{ConnId, ErrorCode};

/// How a room or direct message was sent, which its relays show (the same for senders
/// on this node and on others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// A NOTICE rather than a PRIVMSG (IRC).
    pub notice: bool,
    /// The text came from an IRC line: IRC relays cut it to one line rather than split it.
    pub from_irc: bool,
}

impl Sent {
    pub(crate) fn new(notice: bool, from_irc: bool) -> Self {
        Sent { notice, from_irc }
    }
}

/// What a fan-out tells its recipients: decided once by the operation, rendered per
/// recipient. A recipient for whose protocol (or capabilities) a notice has no form gets
/// nothing of it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Notice<'a> {
    /// A packet: native clients get it as is, IRC clients its line (`irc::relay`), if IRC
    /// has one.
    Packet(&'a ServerPacket),
    /// Someone joined (a `Joined`), with the joiner's real name: IRC clients with
    /// extended-join get it in their JOIN.
    Join(&'a ServerPacket, &'a str),
    /// The changes one mode request made in one room (`ModeChanged`, `RuleChanged`):
    /// native clients get a packet each, IRC clients one MODE line with all of them.
    Modes(&'a [ServerPacket]),
    /// The `Left` of a room for someone who left the server: native clients only (IRC
    /// clients get one [`Notice::Quit`], however many rooms they shared).
    Departed(&'a ServerPacket),
    /// Someone left the server, with this reason: IRC's `QUIT` (native clients get a
    /// [`Notice::Departed`] per room instead).
    Quit(&'a str),
    /// Someone's away message is now this (empty: back): IRC clients with away-notify.
    Away(&'a str),
    /// Someone's real name is now this: IRC clients with setname.
    RealName(&'a str),
    /// An `Invited`, shown to the room's other operators: IRC clients with invite-notify.
    InviteNotify(&'a ServerPacket),
    /// An operator's message to users with mode `w`: IRC's `WALLOPS`.
    Wallops(&'a str),
    /// Client-only tags without text, to this target (as the sender named it): IRC's
    /// `TAGMSG`, for clients with message-tags.
    TagMsg(&'a str),
    /// The server closes the connection, with this code and reason: the native `Bye`, or
    /// IRC's `ERROR` line. The last thing a connection is sent.
    Bye(ErrorCode, &'a str),
    /// A problem the server tells one connection outside any answer: a native `Error`,
    /// or an IRC `NOTICE` from the server.
    ServerError {
        /// The native error code.
        code: ErrorCode,
        /// The native request number it concerns (0: none).
        seq: u32,
        /// The recipient's nick, the IRC target (`*` if it has none yet).
        to: &'a str,
        /// What happened, for humans.
        text: &'a str,
    },
    /// The server's keepalive ping with this token.
    Ping(u64),
    /// A room's stored messages, replayed to one connection (`encode_one` only: their IRC
    /// form depends on all of its capabilities).
    Replay(&'a Replay<'a>),
}

/// A room's stored messages replayed to one connection: after it joined, or a page (or
/// CHATHISTORY answer) it asked for.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    /// The room's name.
    pub room: &'a str,
    /// The messages, oldest first.
    pub rows: &'a [StoredMessage],
    /// Older messages remain.
    pub more: bool,
    /// For IRC: the `chathistory` batch the messages go in, if any.
    pub batch: Option<&'a str>,
    /// For IRC: the label of the CHATHISTORY request this answers (labeled-response).
    pub label: Option<&'a str>,
}

impl Notice<'_> {
    /// The native encoding: frames, concatenated; `None` if native clients get nothing.
    fn native(self) -> Option<Bytes> {
        match self {
            Notice::Packet(p) | Notice::Join(p, _) | Notice::Departed(p) => Some(p.to_frame()),
            Notice::Modes(changes) => {
                let mut out = BytesMut::new();
                for change in changes {
                    out.extend_from_slice(&change.to_frame());
                }
                Some(out.freeze())
            }
            Notice::Bye(code, reason) => Some(
                ServerPacket::Bye {
                    code,
                    reason: reason.to_owned(),
                }
                .to_frame(),
            ),
            Notice::ServerError {
                code, seq, text, ..
            } => Some(
                ServerPacket::Error {
                    code,
                    request_type: 0,
                    request_seq: seq,
                    message: text.to_owned(),
                }
                .to_frame(),
            ),
            Notice::Ping(token) => Some(ServerPacket::Ping { token }.to_frame()),
            Notice::Replay(replay) => {
                let mut out = BytesMut::new();
                for row in replay.rows {
                    let frame = ServerPacket::Replay {
                        room: replay.room.to_owned(),
                        from: row.from.clone(),
                        id: row.id,
                        time_ms: row.time_ms,
                        text: row.text.clone(),
                    };
                    out.extend_from_slice(&frame.to_frame());
                }
                let end = ServerPacket::HistoryEnd {
                    room: replay.room.to_owned(),
                    oldest: replay.rows.first().map_or(0, |r| r.id),
                    more: replay.more,
                };
                out.extend_from_slice(&end.to_frame());
                Some(out.freeze())
            }
            Notice::Quit(_)
            | Notice::Away(_)
            | Notice::RealName(_)
            | Notice::InviteNotify(_)
            | Notice::Wallops(_)
            | Notice::TagMsg(_) => None,
        }
    }
}

/// `what` for one recipient, native (`irc_caps` `None`) or IRC with these capabilities,
/// from `source` (for IRC); `None` if it has no form there. For what one connection is
/// told outside a fan-out, so that its bytes too come from the two encoders.
pub(super) fn encode_one(what: Notice<'_>, source: &str, irc_caps: Option<u16>) -> Option<Bytes> {
    match (what, irc_caps) {
        (Notice::Replay(replay), Some(caps)) => irc::replay(replay, source, caps),
        _ => Fanout::of_text(what, source).encoded(irc_caps),
    }
}

/// A notice relayed to many connections, encoded at most once per form.
pub(crate) struct Fanout<'a> {
    what: Notice<'a>,
    /// `nick!user@host` of whoever caused it, for IRC.
    pub(super) source: Source<'a>,
    /// For IRC: relay a message as NOTICE rather than PRIVMSG.
    pub(super) notice: bool,
    /// For IRC: the text came from an IRC line, so it is cut to one line rather than split.
    pub(super) from_irc: bool,
    /// For IRC: the message's `time` tag (server-time), in Unix milliseconds.
    pub(super) time_ms: Option<u64>,
    /// For IRC: the message's `msgid` tag (message-tags).
    pub(super) msgid: Option<MsgId<'a>>,
    /// For IRC: the sender's client-only tags, as sent (message-tags).
    pub(super) client_tags: Option<String>,
    native: Option<Option<Bytes>>,
    irc: Option<Option<Bytes>>,
    /// The IRC line with tags, for recipients with server-time only, message-tags only,
    /// and both.
    irc_tagged: [Option<Option<Bytes>>; 3],
    /// The IRC line in its extended form (extended-join).
    irc_extended: Option<Option<Bytes>>,
    /// The capabilities an IRC recipient needs to get it, and those that extend it
    /// (`irc::caps_for`), looked up once rather than per recipient.
    irc_caps: (u16, u16),
}

/// The IRC source of a fan-out: given, or built from a connection when first needed.
pub(super) enum Source<'a> {
    Text(&'a str),
    /// `nick!user@host` of this connection, built for the first IRC recipient (it must
    /// not change nick before the fan-out ends).
    Conn(ConnId),
    Built(String),
}

impl Source<'_> {
    fn text(&self) -> &str {
        match self {
            Source::Text(s) => s,
            Source::Built(s) => s,
            Source::Conn(_) => "",
        }
    }
}

/// A message's `msgid` tag, formatted only for recipients with message-tags.
pub(crate) enum MsgId<'a> {
    /// Message `seq` of the room with key `key` (see `irc::msgid`).
    Room(&'a str, u64),
    Text(String),
}

impl<'a> Fanout<'a> {
    /// A packet's fan-out, with the IRC source given.
    pub(super) fn new(packet: &'a ServerPacket, source: &'a str) -> Self {
        Self::with_source(Notice::Packet(packet), Source::Text(source))
    }

    /// A packet's fan-out whose IRC source is `conn`'s, built only if an IRC connection
    /// gets it.
    pub(super) fn from_conn(packet: &'a ServerPacket, conn: ConnId) -> Self {
        Self::with_source(Notice::Packet(packet), Source::Conn(conn))
    }

    /// A notice's fan-out whose IRC source is `conn`'s, built only if needed.
    pub(super) fn of(what: Notice<'a>, conn: ConnId) -> Self {
        Self::with_source(what, Source::Conn(conn))
    }

    /// A notice's fan-out with the IRC source given.
    pub(super) fn of_text(what: Notice<'a>, source: &'a str) -> Self {
        Self::with_source(what, Source::Text(source))
    }

    fn with_source(what: Notice<'a>, source: Source<'a>) -> Self {
        Fanout {
            what,
            source,
            notice: false,
            from_irc: false,
            time_ms: None,
            msgid: None,
            client_tags: None,
            native: None,
            irc: None,
            irc_tagged: [None, None, None],
            irc_extended: None,
            irc_caps: irc::caps_for(what),
        }
    }

    /// The notice for a connection: native (`None`) or IRC with these capabilities;
    /// `None` if it has no form for that connection.
    ///
    /// Each form is encoded once and shared; the one `Bytes` clone per recipient is
    /// the handle its queue keeps.
    pub(crate) fn encoded(&mut self, irc_caps: Option<u16>) -> Option<Bytes> {
        let Some(caps) = irc_caps else {
            // Work only when a form is first needed: this runs once per recipient.
            if let Some(native) = &self.native {
                return native.clone();
            }
            let native = self.what.native();
            self.native = Some(native.clone());
            return native;
        };
        let (needs, extends) = self.irc_caps;
        if caps & needs != needs {
            return None;
        }
        if caps & extends != 0 {
            if self.irc_extended.is_none() {
                self.irc_extended = Some(self.render(irc::Form::Extended));
            }
            return self.irc_extended.clone().flatten();
        }
        if self.irc.is_none() {
            self.irc = Some(self.render(irc::Form::Plain));
        }
        let time = self.time_ms.filter(|_| caps & irc::cap::SERVER_TIME != 0);
        let tags = caps & irc::cap::MESSAGE_TAGS != 0;
        let tagged = tags && (self.msgid.is_some() || self.client_tags.is_some());
        let variant = match (time.is_some(), tagged) {
            (false, false) => return self.irc.clone().flatten(),
            (true, false) => 0,
            (false, true) => 1,
            (true, true) => 2,
        };
        if self.irc_tagged[variant].is_none() {
            if let (true, Some(MsgId::Room(key, seq))) = (tags, &self.msgid) {
                self.msgid = Some(MsgId::Text(irc::msgid(key, *seq)));
            }
            let msgid = match &self.msgid {
                Some(MsgId::Text(m)) if tags => Some(m.as_str()),
                _ => None,
            };
            let client = self.client_tags.as_deref().filter(|_| tags);
            let line = self.irc.as_ref().and_then(|p| p.as_ref());
            self.irc_tagged[variant] = Some(line.map(|l| irc::with_tags(l, time, msgid, client)));
        }
        self.irc_tagged[variant].clone().flatten()
    }

    /// The IRC encoding in form `form` (see `irc::render`).
    fn render(&self, form: irc::Form) -> Option<Bytes> {
        let (source, notice, cut) = (self.source.text(), self.notice, self.from_irc);
        irc::render(self.what, source, form, notice, cut)
    }
}
