//! The IRC front: lines in, chat operations, IRC replies and numerics out.
//!
//! An IRC channel `#name` is the room `name`; nicknames are shared with native clients.
//! The supported subset is documented in docs/IRC.md.

use super::cluster::Replay;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::conn::{Phase, Proto};
use super::outcome::{Away, Fail};
use super::rooms::Change;
use super::Server;
use crate::line::{split_text, write_line, Line, LineDecoder, Message, MAX_LINE};
use crate::name::{fold, mask_matches};
use crate::packet::{Packet, RoomMode, RoomRule, ServerPacket};
use crate::rate::{Cost, Request};
use crate::{ConnId, ErrorCode};

/// The IRCv3 capabilities offered, as bits of `IrcSession::caps`.
pub(super) mod cap {
    pub const MULTI_PREFIX: u16 = 1;
    pub const USERHOST_IN_NAMES: u16 = 2;
    pub const AWAY_NOTIFY: u16 = 4;
    pub const ECHO_MESSAGE: u16 = 8;
    pub const EXTENDED_JOIN: u16 = 16;
    pub const INVITE_NOTIFY: u16 = 32;
    pub const CAP_NOTIFY: u16 = 64;
    pub const BATCH: u16 = 128;
    pub const LABELED_RESPONSE: u16 = 256;
    pub const SETNAME: u16 = 512;
    pub const SERVER_TIME: u16 = 1024;
    pub const MESSAGE_TAGS: u16 = 2048;
    /// `draft/chathistory`: offered only while history is on.
    pub const CHATHISTORY: u16 = 4096;
    /// Every capability with its name, in the order `CAP LS` lists them.
    pub const ALL: [(&str, u16); 13] = [
        ("away-notify", AWAY_NOTIFY),
        ("batch", BATCH),
        ("cap-notify", CAP_NOTIFY),
        ("draft/chathistory", CHATHISTORY),
        ("echo-message", ECHO_MESSAGE),
        ("extended-join", EXTENDED_JOIN),
        ("invite-notify", INVITE_NOTIFY),
        ("labeled-response", LABELED_RESPONSE),
        ("message-tags", MESSAGE_TAGS),
        ("multi-prefix", MULTI_PREFIX),
        ("server-time", SERVER_TIME),
        ("setname", SETNAME),
        ("userhost-in-names", USERHOST_IN_NAMES),
    ];
}

/// The version shown in `002`, `004` and `WHOIS`.
const VERSION: &str = concat!("switchboard-", env!("CARGO_PKG_VERSION"));

/// IRC-only state of one connection.
#[derive(Debug, Default)]
pub(crate) struct IrcSession {
    pub lines: LineDecoder,
    /// The nick asked for before registration.
    nick: Option<String>,
    /// User name and real name from `USER`.
    user: Option<(String, String)>,
    password: Option<String>,
    /// Registration waits while capability negotiation is open.
    negotiating: bool,
    /// User mode `i`: left out of `WHO` masks for users who share no channel with it.
    pub invisible: bool,
    /// User mode `o`: a server operator, after `OPER`.
    pub oper: bool,
    /// User mode `w`: receives WALLOPS.
    pub wallops: bool,
    /// Enabled IRCv3 capabilities ([`cap`] bits).
    pub caps: u16,
    /// Batches opened so far (labeled-response, chathistory), which names the next.
    pub batches: u64,
    /// The label of the command being handled, until its replies are labelled; a command
    /// answered later (CHATHISTORY, from the store) takes it along.
    pub label: Option<String>,
    /// The client-only tags of the command being handled, valid ones only, as sent.
    pub client_tags: Option<String>,
    /// Lines the command being handled sends after its answer (and its label).
    pub deferred: Vec<Bytes>,
}

/// The `msgid` of message `id` in the room with key `key`: unique per room and id, and as
/// stable as the id (history keeps ids across restarts).
pub(crate) fn msgid(key: &str, id: u64) -> String {
    format!("{key}~{id}")
}

/// The room key and id a `msgid` names, if it is one of ours.
pub(crate) fn parse_msgid(msgid: &str) -> Option<(&str, u64)> {
    let (key, id) = msgid.rsplit_once('~')?;
    let id: u64 = id.parse().ok().filter(|n| *n > 0)?;
    (!key.is_empty() && id.to_string().len() == msgid.len() - key.len() - 1).then_some((key, id))
}

/// `bytes` (whole IRC lines, none tagged) with IRCv3 tags: `time` on every line, `msgid`
/// and the sender's client-only tags on the first only (a native message split over several lines is one message, and a
/// client that drops repeated ids must not drop its continuation).
pub(crate) fn with_tags(
    bytes: &[u8],
    time_ms: Option<u64>,
    msgid: Option<&str>,
    client: Option<&str>,
) -> Bytes {
    let time = time_ms.map(|t| format!("time={}", crate::history::format_iso(t)));
    let mut out = BytesMut::with_capacity(bytes.len() + 64);
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let mut tags = time.clone().unwrap_or_default();
        let first = [msgid.map(|m| ("msgid=", m)), client.map(|c| ("", c))];
        for (name, value) in first.into_iter().flatten().filter(|_| i == 0) {
            if !tags.is_empty() {
                tags.push(';');
            }
            tags.push_str(name);
            tags.push_str(value);
        }
        if !tags.is_empty() {
            out.extend_from_slice(b"@");
            out.extend_from_slice(tags.as_bytes());
            out.extend_from_slice(b" ");
        }
        out.extend_from_slice(line);
    }
    out.freeze()
}

/// How a notice relayed to a room or a nick reads in IRC, or `None` if IRC has no form of it.
///
/// `cut`: the text came from an IRC line, so it is cut to one line (as other servers do)
/// rather than split, which is kept for native messages longer than a line.
pub(crate) fn relay(packet: &ServerPacket, source: &str, notice: bool, cut: bool) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    let src = Some(source);
    match packet {
        ServerPacket::Joined { room, .. } => {
            write_line(&mut buf, src, "JOIN", &[&chan(room)], false)
        }
        ServerPacket::Left { room, reason, .. } => {
            let chan = chan(room);
            if reason.is_empty() {
                write_line(&mut buf, src, "PART", &[&chan], false);
            } else {
                write_line(&mut buf, src, "PART", &[&chan, reason], true);
            }
        }
        ServerPacket::Message { room, text, .. } => {
            write_text(&mut buf, source, notice, &chan(room), text, cut);
        }
        ServerPacket::Direct { to, text, .. } => {
            write_text(&mut buf, source, notice, to, text, cut)
        }
        ServerPacket::RuleChanged {
            room,
            rule,
            on,
            arg,
            ..
        } => {
            let flag = format!("{}{}", if *on { '+' } else { '-' }, rule.letter() as char);
            let chan = chan(room);
            let arg = irc_rule_arg(*rule, *on, arg);
            if arg.is_empty() {
                write_line(&mut buf, src, "MODE", &[&chan, &flag], false);
            } else {
                write_line(&mut buf, src, "MODE", &[&chan, &flag, arg], false);
            }
        }
        ServerPacket::Invited { room, nick, .. } => {
            write_line(&mut buf, src, "INVITE", &[nick, &chan(room)], false)
        }
        ServerPacket::NickChanged { new, .. } => write_line(&mut buf, src, "NICK", &[new], false),
        ServerPacket::Topic { room, topic, .. } => {
            write_line(&mut buf, src, "TOPIC", &[&chan(room), topic], true);
        }
        ServerPacket::Kicked {
            room, nick, reason, ..
        } => write_line(&mut buf, src, "KICK", &[&chan(room), nick, reason], true),
        ServerPacket::ModeChanged {
            room,
            mode,
            on,
            nick,
            ..
        } => {
            let flag = format!("{}{}", if *on { '+' } else { '-' }, mode.letter() as char);
            let chan = chan(room);
            if mode.takes_nick() {
                write_line(&mut buf, src, "MODE", &[&chan, &flag, nick], false);
            } else {
                write_line(&mut buf, src, "MODE", &[&chan, &flag], false);
            }
        }
        _ => return None,
    }
    Some(buf.freeze())
}

/// `PRIVMSG` or `NOTICE` lines carrying `text`, split so each line fits 512 bytes.
fn write_text(buf: &mut BytesMut, source: &str, notice: bool, target: &str, text: &str, cut: bool) {
    let command = if notice { "NOTICE" } else { "PRIVMSG" };
    // ":" source " " command " " target " :" text CR LF
    let overhead = 1 + source.len() + 1 + command.len() + 1 + target.len() + 2 + 2;
    let room = MAX_LINE.saturating_sub(overhead);
    if cut {
        let part = crate::line::cut(text, room.max(4));
        return write_line(buf, Some(source), command, &[target, part], true);
    }
    for part in split_text(text, room) {
        write_line(buf, Some(source), command, &[target, part], true);
    }
}

/// A rule change's parameter in a MODE line: `k` is a type B mode in CHANMODES, so
/// `-k` carries one too (`*`, the key is not repeated) or clients take the next.
fn irc_rule_arg(rule: RoomRule, on: bool, arg: &str) -> &str {
    if rule == RoomRule::Key && !on {
        "*"
    } else {
        arg
    }
}

/// Appends `line` (without its CR LF) with one more tag, merged into its tags if it has
/// some, and CR LF.
fn add_tag(out: &mut BytesMut, tag: &str, line: &[u8]) {
    out.extend_from_slice(b"@");
    out.extend_from_slice(tag.as_bytes());
    match line.strip_prefix(b"@") {
        Some(tagged) => {
            out.extend_from_slice(b";");
            out.extend_from_slice(tagged);
        }
        None => {
            out.extend_from_slice(b" ");
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The server's keepalive ping.
pub(crate) fn ping(token: u64) -> Bytes {
    Message::new("PING", &[&token.to_string()]).to_bytes()
}

/// The last line before the server closes an IRC connection.
pub(crate) fn error_line(reason: &str) -> Bytes {
    let mut buf = BytesMut::new();
    write_line(
        &mut buf,
        None,
        "ERROR",
        &[&format!("Closing Link: {reason}")],
        true,
    );
    buf.freeze()
}

/// What IRC peers see when someone leaves the server.
pub(crate) fn quit_line(source: &str, reason: &str) -> Bytes {
    let mut buf = BytesMut::new();
    write_line(&mut buf, Some(source), "QUIT", &[reason], true);
    buf.freeze()
}

/// What a command costs against the rate (see [`Cost::of`]).
fn irc_cost(command: &str) -> Cost {
    Cost::of(match command {
        "PING" | "PONG" => Request::Keepalive,
        "QUIT" => Request::Quit,
        _ => Request::Other,
    })
}

/// The IRC channel name of a room.
fn chan(room: &str) -> String {
    format!("#{room}")
}

/// Every prefix of a member, highest first (`multi-prefix`).
fn all_prefixes(flags: u8) -> &'static str {
    use crate::packet::Member;
    match (flags & Member::OPERATOR != 0, flags & Member::VOICE != 0) {
        (true, true) => "@+",
        (true, false) => "@",
        (false, true) => "+",
        (false, false) => "",
    }
}

/// A member's prefix in NAMES and WHO: `@` for operators, `+` for voice.
fn prefix(flags: u8) -> &'static str {
    use crate::packet::Member;
    if flags & Member::OPERATOR != 0 {
        "@"
    } else if flags & Member::VOICE != 0 {
        "+"
    } else {
        ""
    }
}

impl Server {
    /// Takes one line from the front of `input` and handles it; false if `input` held no
    /// whole line (its bytes are then buffered by the decoder).
    pub(super) fn irc_step(&mut self, id: ConnId, input: &mut &[u8], now: Instant) -> bool {
        let Some(Proto::Irc(session)) = self.conns.get_mut(&id).map(|c| &mut c.proto) else {
            return false;
        };
        match session.lines.decode(input) {
            None => return false,
            Some(Line::TooLong) => {
                self.charge(id, Cost::Full, now);
                self.numeric(id, "417", &["Input line was too long"]);
            }
            Some(Line::Text(line)) => match Message::parse(&line) {
                Some(msg) => {
                    // UTF8ONLY: text meant for others must be UTF-8 as sent; other
                    // commands (a real name, say) are read lossily.
                    let text = matches!(msg.command.as_str(), "PRIVMSG" | "NOTICE");
                    let label = crate::line::label_tag(&line)
                        .filter(|_| self.irc_caps(id) & cap::LABELED_RESPONSE != 0);
                    let start = self.conns.get(&id).map_or(0, |c| c.out.len());
                    let client_tags = crate::line::client_tags(&line);
                    if let Some(s) = self.session(id) {
                        s.label.clone_from(&label);
                        s.client_tags = client_tags;
                    }
                    if text && std::str::from_utf8(&line).is_err() {
                        self.charge(id, Cost::Full, now);
                        let server = self.config.server_name.clone();
                        let why = "Message rejected: it is not valid UTF-8";
                        self.line(
                            id,
                            Some(&server),
                            "FAIL",
                            &[&msg.command, "INVALID_UTF8", why],
                        );
                    } else {
                        self.irc_command(id, msg, now);
                    }
                    if let Some(s) = self.session(id) {
                        s.client_tags = None;
                    }
                    // A command answered later (CHATHISTORY) took its label along.
                    if let Some(label) = self.session(id).and_then(|s| s.label.take()) {
                        self.irc_label(id, start, &label);
                    }
                    let deferred = self.session(id).map(|s| std::mem::take(&mut s.deferred));
                    for bytes in deferred.into_iter().flatten() {
                        self.conns.send(id, bytes);
                    }
                }
                // Even an empty line costs something.
                None => self.charge(id, Cost::Cheap, now),
            },
        }
        true
    }

    fn session(&mut self, id: ConnId) -> Option<&mut IrcSession> {
        match &mut self.conns.get_mut(&id)?.proto {
            Proto::Irc(s) => Some(s),
            _ => None,
        }
    }

    /// Queues one line to a connection; its last parameter is text (`:`-prefixed).
    fn line(&mut self, id: ConnId, source: Option<&str>, command: &str, params: &[&str]) {
        let mut buf = BytesMut::new();
        write_line(&mut buf, source, command, params, true);
        self.conns.send(id, buf.freeze());
    }

    /// Queues a numeric reply: `:server NNN <nick or *> params...`.
    fn numeric(&mut self, id: ConnId, code: &str, params: &[&str]) {
        let nick = match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        };
        let server = self.config.server_name.clone();
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(nick.as_str());
        all.extend_from_slice(params);
        self.line(id, Some(&server), code, &all);
    }

    fn irc_command(&mut self, id: ConnId, msg: Message, now: Instant) {
        let cmd = msg.command.as_str();
        // The one admission point: every command counts against the rate.
        self.charge(id, irc_cost(cmd), now);
        let registered = self.conns.get(&id).is_some_and(|c| c.phase == Phase::Ready);
        let p: Vec<&str> = msg.params.iter().map(String::as_str).collect();
        match cmd {
            "CAP" => self.irc_cap(id, &p),
            "PASS" => self.irc_pass(id, &p, registered),
            "NICK" => self.irc_nick(id, &p, registered),
            "USER" => self.irc_user(id, &p, registered),
            "PING" => match p.first() {
                Some(token) => {
                    let server = self.config.server_name.clone();
                    self.line(id, Some(&server), "PONG", &[&server, token]);
                }
                None => self.numeric(id, "461", &["PING", "Not enough parameters"]),
            },
            "PONG" => {}
            "QUIT" => self.quit(id, p.first().copied().unwrap_or("")),
            _ if !registered => self.numeric(id, "451", &["You have not registered"]),
            "JOIN" => self.irc_join(id, &p, now),
            "PART" => self.irc_part(id, &p),
            "PRIVMSG" => self.irc_privmsg(id, &p, false, now),
            "NOTICE" => self.irc_privmsg(id, &p, true, now),
            "NAMES" => self.irc_names(id, &p),
            "LIST" => self.irc_list(id, &p),
            "TOPIC" => self.irc_topic(id, &p, now),
            "WHO" => self.irc_who(id, &p),
            "WHOIS" => self.irc_whois(id, &p, now),
            "AWAY" => self.irc_away(id, &p),
            "KICK" => self.irc_kick(id, &p),
            "MODE" => self.irc_mode(id, &p),
            "INVITE" => self.irc_invite(id, &p),
            "ISON" => self.irc_ison(id, &p),
            "USERHOST" => self.irc_userhost(id, &p),
            "LUSERS" => self.irc_lusers(id),
            "MOTD" => self.irc_motd(id),
            "VERSION" => self.irc_version(id),
            "TIME" => self.irc_time(id, now),
            "ADMIN" => self.irc_admin(id),
            "INFO" => self.irc_info(id),
            "HELP" | "HELPOP" => self.irc_help(id, &p),
            "OPER" => self.irc_oper(id, &p),
            "KILL" => self.irc_kill(id, &p),
            "WHOWAS" => self.irc_whowas(id, &p),
            "LINKS" => {
                let server = self.config.server_name.clone();
                self.numeric(id, "364", &[&server, &server, "0 Switchboard chat server"]);
                self.numeric(id, "365", &["*", "End of /LINKS list"]);
            }
            "WALLOPS" => self.irc_wallops(id, &p),
            "SETNAME" => self.irc_setname(id, &p),
            "CHATHISTORY" => self.irc_chathistory(id, &p),
            "TAGMSG" => self.irc_tagmsg(id, &p, now),
            _ => {
                // Never echo control bytes back.
                let shown: String = cmd.chars().filter(|c| !c.is_control()).take(32).collect();
                self.numeric(id, "421", &[&shown, "Unknown command"])
            }
        }
    }

    fn irc_cap(&mut self, id: ConnId, p: &[&str]) {
        let server = self.config.server_name.clone();
        let nick = match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        };
        let sub = p
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let registered = self.conns.get(&id).is_some_and(|c| c.phase == Phase::Ready);
        match sub.as_str() {
            "LS" => {
                let v302 = p.get(1).and_then(|v| v.parse::<u32>().ok()) >= Some(302);
                if let Some(s) = self.session(id) {
                    s.negotiating = !registered;
                    // Version 302 implies cap-notify.
                    if v302 {
                        s.caps |= cap::CAP_NOTIFY;
                    }
                }
                let offered = self.irc_offered();
                let all: Vec<&str> = cap::ALL
                    .iter()
                    .filter(|(_, bit)| offered & bit != 0)
                    .map(|(name, _)| *name)
                    .collect();
                self.line(id, Some(&server), "CAP", &[&nick, "LS", &all.join(" ")]);
            }
            "LIST" => {
                let caps = self.irc_caps(id);
                let on: Vec<&str> = cap::ALL
                    .iter()
                    .filter(|(_, bit)| caps & bit != 0)
                    .map(|(name, _)| *name)
                    .collect();
                self.line(id, Some(&server), "CAP", &[&nick, "LIST", &on.join(" ")]);
            }
            "REQ" => {
                let asked = p.get(1).copied().unwrap_or("");
                // All or nothing: one unknown name refuses the whole request.
                let mut add = 0;
                let mut remove = 0;
                let mut known = true;
                let offered = self.irc_offered();
                for name in asked.split(' ').filter(|n| !n.is_empty()) {
                    let (off, name) = match name.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    match cap::ALL
                        .iter()
                        .find(|(n, bit)| *n == name && offered & bit != 0)
                    {
                        Some((_, bit)) if off => remove |= bit,
                        Some((_, bit)) => add |= bit,
                        None => known = false,
                    }
                }
                let answer = if known && !asked.trim().is_empty() {
                    if let Some(s) = self.session(id) {
                        s.negotiating = !registered;
                        s.caps = (s.caps | add) & !remove;
                    }
                    "ACK"
                } else {
                    "NAK"
                };
                self.line(id, Some(&server), "CAP", &[&nick, answer, asked]);
            }
            "END" => {
                if let Some(s) = self.session(id) {
                    s.negotiating = false;
                }
                self.irc_try_register(id);
            }
            _ => self.numeric(id, "410", &[&sub, "Invalid CAP command"]),
        }
    }

    /// labeled-response: wraps what the labelled command queued for its sender (output
    /// entries from `start` on): nothing becomes `ACK`, one line gets the label tag, more
    /// become a `labeled-response` batch.
    fn irc_label(&mut self, id: ConnId, start: usize, label: &str) {
        let server = self.config.server_name.clone();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing || conn.out.len() < start {
            return;
        }
        let taken: Vec<Bytes> = conn.out.drain(start..).collect();
        let bytes: usize = taken.iter().map(Bytes::len).sum();
        conn.queued -= bytes;
        let text: Vec<u8> = taken.concat();
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        let mut out = BytesMut::new();
        match lines.as_slice() {
            [] => {
                out.extend_from_slice(format!("@label={label} :{server} ACK\r\n").as_bytes());
            }
            [one] => {
                add_tag(&mut out, &format!("label={label}"), one);
            }
            many => {
                let n = self.irc_next_batch(id);
                let head = format!("@label={label} :{server} BATCH +lr{n} labeled-response\r\n");
                out.extend_from_slice(head.as_bytes());
                for line in many {
                    add_tag(&mut out, &format!("batch=lr{n}"), line);
                }
                out.extend_from_slice(format!(":{server} BATCH -lr{n}\r\n").as_bytes());
            }
        }
        self.conns.send(id, out.freeze());
    }

    /// echo-message to oneself: the delivery already queued is the echo (the answer a
    /// label goes on) and a second copy, the delivery, follows the answer. Native
    /// connections have no session and get the one copy.
    pub(super) fn irc_echo_to_self(&mut self, id: ConnId, fan: &mut super::Fanout<'_>) {
        let Some(caps) = self.session(id).map(|s| s.caps) else {
            return;
        };
        if let Some(bytes) = fan.encoded(Some(caps)) {
            self.irc_defer(id, bytes);
        }
    }

    /// Queues `bytes` for `id` after the answer to the command it is sending.
    pub(super) fn irc_defer(&mut self, id: ConnId, bytes: Bytes) {
        if let Some(s) = self.session(id) {
            s.deferred.push(bytes);
        }
    }

    /// The number of the connection's next batch.
    pub(super) fn irc_next_batch(&mut self, id: ConnId) -> u64 {
        match self.session(id) {
            Some(s) => {
                s.batches += 1;
                s.batches
            }
            None => 0,
        }
    }

    /// The IRCv3 capabilities a connection enabled (none for native ones).
    pub(super) fn irc_caps(&self, id: ConnId) -> u16 {
        match self.conns.get(&id).map(|c| &c.proto) {
            Some(Proto::Irc(s)) => s.caps,
            _ => 0,
        }
    }

    /// Tells IRC members sharing a room with `id` (or only room `key`'s members) that have
    /// `away-notify` its away status.
    pub(super) fn irc_away_notify(&mut self, id: ConnId, key: Option<&str>) {
        let source = self.source(id);
        let away = self
            .conns
            .get(&id)
            .map(|c| c.away.clone())
            .unwrap_or_default();
        let mut buf = BytesMut::new();
        if away.is_empty() {
            write_line(&mut buf, Some(&source), "AWAY", &[], false);
        } else {
            write_line(&mut buf, Some(&source), "AWAY", &[&away], true);
        }
        let line = buf.freeze();
        let peers = match key {
            Some(k) => self
                .registry
                .room(k)
                .map(|r| r.members.clone())
                .unwrap_or_default(),
            None => self.peers(id),
        };
        for peer in peers {
            if peer != id && self.irc_caps(peer) & cap::AWAY_NOTIFY != 0 {
                self.conns.send(peer, line.clone());
            }
        }
    }

    /// Everyone sharing a room with `id`, in id order, once each.
    fn peers(&self, id: ConnId) -> Vec<ConnId> {
        let mut peers: Vec<ConnId> = self
            .conns
            .get(&id)
            .map(|c| {
                c.rooms
                    .iter()
                    .filter_map(|k| self.registry.room(k))
                    .flat_map(|r| r.members.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        peers.sort();
        peers.dedup();
        peers
    }

    /// The JOIN an IRC member with `extended-join` sees: account (`*`, none exist) and
    /// real name added. `None` for members without it, who get the plain relay.
    pub(super) fn irc_extended_join(
        &self,
        member: ConnId,
        joiner: ConnId,
        room: &str,
    ) -> Option<Bytes> {
        if self.irc_caps(member) & cap::EXTENDED_JOIN == 0 {
            return None;
        }
        let real = self
            .conns
            .get(&joiner)
            .map(|c| c.realname.clone())
            .unwrap_or_default();
        let mut buf = BytesMut::new();
        write_line(
            &mut buf,
            Some(&self.source(joiner)),
            "JOIN",
            &[&chan(room), "*", &real],
            true,
        );
        Some(buf.freeze())
    }

    /// `invite-notify`: the room's other operators with the capability see the INVITE.
    pub(super) fn irc_invite_notify(&mut self, key: &str, by: ConnId, target: ConnId) {
        let Some(r) = self.registry.room(key) else {
            return;
        };
        let (ch, ops) = (chan(&r.name), r.operators.clone());
        let mut buf = BytesMut::new();
        write_line(
            &mut buf,
            Some(&self.source(by)),
            "INVITE",
            &[&self.nick(target), &ch],
            false,
        );
        let line = buf.freeze();
        for op in ops {
            if op != by && op != target && self.irc_caps(op) & cap::INVITE_NOTIFY != 0 {
                self.conns.send(op, line.clone());
            }
        }
    }

    fn irc_pass(&mut self, id: ConnId, p: &[&str], registered: bool) {
        if registered {
            return self.numeric(id, "462", &["You may not reregister"]);
        }
        match p.first() {
            Some(pass) => {
                let pass = (*pass).to_owned();
                if let Some(s) = self.session(id) {
                    s.password = Some(pass);
                }
            }
            None => self.numeric(id, "461", &["PASS", "Not enough parameters"]),
        }
    }

    pub(super) fn irc_nick(&mut self, id: ConnId, p: &[&str], registered: bool) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        if registered {
            if let Err(fail) = self.change_nick(id, nick) {
                if !self.cluster_park(id, || Replay::IrcNick(nick.to_owned())) {
                    self.irc_fail(id, &fail, "NICK");
                }
            }
            return;
        }
        if let Err(fail) = self.nick_free(id, nick) {
            return self.irc_fail(id, &fail, "NICK");
        }
        let nick = nick.to_owned();
        if let Some(s) = self.session(id) {
            s.nick = Some(nick);
        }
        self.irc_try_register(id);
    }

    fn irc_user(&mut self, id: ConnId, p: &[&str], registered: bool) {
        if registered {
            return self.numeric(id, "462", &["You may not reregister"]);
        }
        if p.len() < 4 || p[0].is_empty() || p[3].is_empty() {
            return self.numeric(id, "461", &["USER", "Not enough parameters"]);
        }
        // User names reach other clients in sources, so only plain characters are kept.
        let user: String = p[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(16)
            .collect();
        let user = if user.is_empty() {
            "user".to_owned()
        } else {
            user
        };
        let realname = crate::line::cut(p[3], self.config.max_reason_len as usize).to_owned();
        if let Some(s) = self.session(id) {
            s.user = Some((format!("~{user}"), realname));
        }
        self.irc_try_register(id);
    }

    /// Completes registration once NICK and USER are in and no CAP negotiation is open.
    pub(super) fn irc_try_register(&mut self, id: ConnId) {
        // Only once: a late CAP END must not register again (and claim the nick the
        // session started with, which may no longer be the connection's).
        if self.conns.get(&id).is_none_or(|c| c.phase != Phase::Hello) {
            return;
        }
        let Some(s) = self.session(id) else {
            return;
        };
        let (Some(nick), Some((user, realname))) = (s.nick.clone(), s.user.clone()) else {
            return;
        };
        if s.negotiating {
            return;
        }
        let given = s.password.clone();
        if self.check_password(given.as_deref()).is_err() {
            self.numeric(id, "464", &["Password incorrect"]);
            self.close(id, ErrorCode::BadPassword, "bad password", "");
            return;
        }
        if let Err(fail) = self.register(id, &nick, &user, &realname) {
            if self.cluster_park(id, || Replay::IrcRegister) {
                return;
            }
            if let Some(s) = self.session(id) {
                s.nick = None;
            }
            return self.irc_fail(id, &fail, "NICK");
        }
        self.irc_welcome(id);
    }

    fn irc_welcome(&mut self, id: ConnId) {
        let source = self.source(id);
        let server = self.config.server_name.clone();
        self.numeric(
            id,
            "001",
            &[&format!("Welcome to the Switchboard network, {source}")],
        );
        self.numeric(
            id,
            "002",
            &[&format!("Your host is {server}, running version {VERSION}")],
        );
        self.numeric(id, "003", &[&format!("This server runs {VERSION}")]);
        self.numeric(
            id,
            "004",
            &[&server, VERSION, "iow", "Ibeiklmnostv", "Ibeklov"],
        );
        self.irc_isupport(id);
        self.irc_lusers(id);
        self.irc_motd(id);
    }

    /// `005`: what this server supports, each token true of it.
    fn irc_isupport(&mut self, id: ConnId) {
        let c = &self.config;
        let isupport = [
            "AWAYLEN".to_owned() + &format!("={}", c.max_reason_len),
            "CASEMAPPING=ascii".to_owned(),
            format!("CHANLIMIT=#:{}", c.max_rooms_per_conn),
            "CHANMODES=beI,k,l,imnst".to_owned(),
            format!("CHANNELLEN={}", c.max_room_len as usize + 1),
            "CHANTYPES=#".to_owned(),
            "ELIST=MNU".to_owned(),
            "WHOX".to_owned(),
            "EXCEPTS=e".to_owned(),
            "INVEX=I".to_owned(),
            format!("KICKLEN={}", c.max_reason_len),
            "MAXLIST=b:100,e:100,I:100".to_owned(),
            "MODES=4".to_owned(),
            "NETWORK=Switchboard".to_owned(),
            format!("NICKLEN={}", c.max_nick_len),
            "PREFIX=(ov)@+".to_owned(),
            "TARGMAX=JOIN:,PART:,PRIVMSG:,NOTICE:,NAMES:,LIST:,KICK:,WHOIS:1,ISON:,USERHOST:5"
                .to_owned(),
            format!("TOPICLEN={}", c.max_topic_len),
            "UTF8ONLY".to_owned(),
        ];
        let mut isupport = isupport.to_vec();
        if let Some(max) = self.history_max_page() {
            isupport.push(format!("CHATHISTORY={max}"));
            isupport.push("MSGREFTYPES=msgid,timestamp".to_owned());
        }
        // At most 13 tokens a line, as clients expect.
        for part in isupport.chunks(13) {
            let mut tokens: Vec<&str> = part.iter().map(String::as_str).collect();
            tokens.push("are supported by this server");
            self.numeric(id, "005", &tokens);
        }
    }

    fn irc_motd(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        match self.config.motd.clone() {
            Some(text) => {
                self.numeric(id, "375", &[&format!("- {server} Message of the day -")]);
                for line in text.lines() {
                    self.numeric(id, "372", &[&format!("- {line}")]);
                }
                self.numeric(id, "376", &["End of /MOTD command."]);
            }
            None => self.numeric(id, "422", &["MOTD File is missing"]),
        }
    }

    /// Replies to a refused operation with the numeric IRC clients expect.
    fn irc_fail(&mut self, id: ConnId, fail: &Fail, command: &str) {
        let t = fail.target.as_str();
        let ch = chan(t);
        match fail.code {
            ErrorCode::InvalidNick => self.numeric(id, "432", &[t, "Erroneous nickname"]),
            ErrorCode::NickTaken => self.numeric(id, "433", &[t, "Nickname is already in use"]),
            ErrorCode::NoSuchNick => self.numeric(id, "401", &[t, "No such nick/channel"]),
            ErrorCode::InvalidRoom | ErrorCode::NoSuchRoom => {
                self.numeric(id, "403", &[&ch, "No such channel"])
            }
            ErrorCode::NotInRoom => self.numeric(id, "442", &[&ch, "You're not on that channel"]),
            ErrorCode::TooManyRooms => {
                self.numeric(id, "405", &[&ch, "You have joined too many channels"])
            }
            ErrorCode::NotOperator => {
                self.numeric(id, "482", &[&ch, "You're not channel operator"])
            }
            ErrorCode::InvalidText => self.numeric(id, "412", &["No text to send"]),
            ErrorCode::AlreadyInRoom => {}
            ErrorCode::BadRoomKey => self.numeric(id, "475", &[&ch, "Cannot join channel (+k)"]),
            ErrorCode::RoomFull => self.numeric(id, "471", &[&ch, "Cannot join channel (+l)"]),
            ErrorCode::InviteOnlyRoom => {
                self.numeric(id, "473", &[&ch, "Cannot join channel (+i)"])
            }
            ErrorCode::Banned => self.numeric(id, "474", &[&ch, "Cannot join channel (+b)"]),
            ErrorCode::CannotSpeak => self.numeric(id, "404", &[&ch, "Cannot send to channel"]),
            ErrorCode::TargetInRoom => {
                self.numeric(id, "443", &[t, command, "is already on channel"])
            }
            _ => self.numeric(id, "400", &[command, &fail.message]),
        }
    }

    /// The room name of an IRC channel parameter, or a `403` for one without `#`.
    fn channel<'a>(&mut self, id: ConnId, param: &'a str) -> Option<&'a str> {
        let room = param.strip_prefix('#');
        if room.is_none() {
            self.numeric(id, "403", &[param, "No such channel"]);
        }
        room
    }

    fn irc_join(&mut self, id: ConnId, p: &[&str], now: Instant) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["JOIN", "Not enough parameters"]);
        };
        if *list == "0" {
            let rooms = self.rooms_of(id);
            for room in rooms {
                let _ = self.leave(id, &room, "");
            }
            return;
        }
        let mut keys = p.get(1).map(|k| k.split(',')).into_iter().flatten();
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let given = keys.next().unwrap_or("");
            let Some(room) = self.channel(id, param) else {
                continue;
            };
            match self.join(id, room, given, now) {
                Ok(key) => {
                    self.irc_topic_reply(id, &key, false);
                    self.irc_names_reply(id, &key);
                    self.history_on_join(id, &key);
                }
                Err(fail) => self.irc_fail(id, &fail, "JOIN"),
            }
        }
    }

    fn irc_part(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["PART", "Not enough parameters"]);
        };
        let reason = p.get(1).copied().unwrap_or("");
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let Some(room) = self.channel(id, param) else {
                continue;
            };
            if let Err(fail) = self.leave(id, room, reason) {
                let fail = self.room_fail(room, fail);
                self.irc_fail(id, &fail, "PART");
            }
        }
    }

    /// `NotInRoom` for a room that does not exist reads better as `NoSuchRoom`.
    fn room_fail(&self, room: &str, fail: Fail) -> Fail {
        if fail.code == ErrorCode::NotInRoom && self.room_key(room).is_err() {
            Fail {
                code: ErrorCode::NoSuchRoom,
                ..fail
            }
        } else {
            fail
        }
    }

    fn irc_privmsg(&mut self, id: ConnId, p: &[&str], notice: bool, now: Instant) {
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        // A NOTICE never triggers an error reply.
        let Some(targets) = p.first() else {
            if !notice {
                self.numeric(id, "411", &[&format!("No recipient given ({command})")]);
            }
            return;
        };
        let text = p.get(1).copied().unwrap_or("");
        if text.is_empty() {
            if !notice {
                self.numeric(id, "412", &["No text to send"]);
            }
            return;
        }
        if text.contains(['\0', '\r']) {
            if !notice {
                let why = format!("{command} text may not hold a NUL or a bare CR; not sent");
                self.numeric(id, "400", &[command, &why]);
            }
            return;
        }
        for target in targets.split(',').filter(|s| !s.is_empty()) {
            let result = match target.strip_prefix('#') {
                Some(room) => self
                    .say(id, room, text.to_owned(), notice, now)
                    .map_err(|f| self.room_fail(room, f)),
                None => self
                    .whisper(id, target, text.to_owned(), notice, now)
                    .map(|reached| self.irc_away_reply(id, reached.away)),
            };
            match result {
                Ok(()) => {}
                Err(_) if notice => {}
                Err(fail) if fail.code == ErrorCode::NotInRoom => {
                    self.numeric(id, "404", &[target, "Cannot send to channel"]);
                }
                Err(fail) => self.irc_fail(id, &fail, command),
            }
        }
    }

    /// `301`: the user reached is away.
    fn irc_away_reply(&mut self, id: ConnId, away: Option<Away>) {
        if let Some(away) = away {
            self.numeric(id, "301", &[&away.nick, &away.message]);
        }
    }

    fn irc_topic_reply(&mut self, id: ConnId, key: &str, always: bool) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let (ch, topic) = (chan(&room.name), room.topic.clone());
        let by = room.topic_by.clone();
        let at = self.config.unix_time(room.topic_at).to_string();
        if !topic.is_empty() {
            self.numeric(id, "332", &[&ch, &topic]);
            // Who set it and when: history knows the time across restarts (history.rs).
            let at = self
                .history_times(key)
                .filter(|t| t.1 > 0)
                .map_or(at, |t| t.1.to_string());
            self.numeric(id, "333", &[&ch, &by, &at]);
        } else if always {
            self.numeric(id, "331", &[&ch, "No topic is set"]);
        }
    }

    /// `353` lines for a room, then `366` unless `end` is false (a NAMES of several
    /// channels ends with one `366` naming them all).
    fn irc_names_reply(&mut self, id: ConnId, key: &str) {
        self.irc_names_lines(id, key, true);
    }

    fn irc_names_lines(&mut self, id: ConnId, key: &str, end: bool) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let ch = chan(&room.name);
        let kind = if room.secret { "@" } else { "=" };
        let caps = self.irc_caps(id);
        let server = &self.config.server_name;
        let names: Vec<String> = room
            .members
            .iter()
            .filter_map(|&m| self.conns.get(&m).map(|c| (c, room.flags(m))))
            .map(|(c, flags)| {
                let pre = if caps & cap::MULTI_PREFIX != 0 {
                    all_prefixes(flags)
                } else {
                    prefix(flags)
                };
                if caps & cap::USERHOST_IN_NAMES != 0 {
                    format!("{pre}{}!{}@{server}", c.nick, c.user())
                } else {
                    format!("{pre}{}", c.nick)
                }
            })
            .collect();
        // Keep each 353 well inside one line.
        let budget = MAX_LINE - 2 - self.config.server_name.len() - ch.len() - 80;
        let mut line = String::new();
        for name in names {
            if !line.is_empty() && line.len() + 1 + name.len() > budget {
                self.numeric(id, "353", &[kind, &ch, &line]);
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&name);
        }
        if !line.is_empty() {
            self.numeric(id, "353", &[kind, &ch, &line]);
        }
        if end {
            self.numeric(id, "366", &[&ch, "End of /NAMES list"]);
        }
    }

    /// Whether `viewer` may see `whom` in WHO replies: itself, anyone visible, or an
    /// invisible user who shares a channel with it.
    fn visible_to(&self, viewer: ConnId, whom: ConnId) -> bool {
        if viewer == whom {
            return true;
        }
        !self.is_invisible(whom) || self.share_room(viewer, whom)
    }

    fn is_invisible(&self, id: ConnId) -> bool {
        matches!(self.conns.get(&id).map(|c| &c.proto), Some(Proto::Irc(s)) if s.invisible)
    }

    fn share_room(&self, a: ConnId, b: ConnId) -> bool {
        self.conns.get(&a).is_some_and(|c| {
            c.rooms
                .iter()
                .any(|k| self.registry.room(k).is_some_and(|r| r.is_member(b)))
        })
    }

    pub(super) fn is_oper(&self, id: ConnId) -> bool {
        matches!(self.conns.get(&id).map(|c| &c.proto), Some(Proto::Irc(s)) if s.oper)
    }

    fn irc_names(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "366", &["*", "End of /NAMES list"]);
        };
        let params: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
        let several = params.len() > 1;
        for param in &params {
            let key = fold(param.strip_prefix('#').unwrap_or(param));
            let visible = self
                .registry
                .room(&key)
                .is_some_and(|r| !r.secret || r.is_member(id));
            if visible && param.starts_with('#') {
                self.irc_names_lines(id, &key, !several);
            } else if !several {
                self.numeric(id, "366", &[param, "End of /NAMES list"]);
            }
        }
        if several {
            self.numeric(id, "366", &[list, "End of /NAMES list"]);
        }
    }

    /// `LIST [targets]`: each target a channel name, a mask (`*x*`), a negated mask
    /// (`!*x*`) or a member count bound (`>N`, `<N`); a room is listed if it passes every
    /// mask and bound and, when names are given, is one of them. Secret rooms are listed
    /// only to their members.
    fn irc_list(&mut self, id: ConnId, p: &[&str]) {
        let mut names: Vec<String> = Vec::new();
        let mut masks: Vec<(bool, String)> = Vec::new();
        let (mut more, mut less) = (None::<usize>, None::<usize>);
        for t in p.first().map(|l| l.split(',')).into_iter().flatten() {
            if let Some(n) = t.strip_prefix('>') {
                more = n.parse().ok().or(more);
            } else if let Some(n) = t.strip_prefix('<') {
                less = n.parse().ok().or(less);
            } else if let Some(m) = t.strip_prefix('!') {
                masks.push((false, m.to_owned()));
            } else if t.contains(['*', '?']) {
                masks.push((true, t.to_owned()));
            } else if !t.is_empty() {
                names.push(fold(t.strip_prefix('#').unwrap_or(t)));
            }
        }
        let rows: Vec<(String, String, String)> = self
            .registry
            .sorted()
            .filter(|r| !r.secret || r.is_member(id))
            .filter(|r| names.is_empty() || names.contains(&fold(&r.name)))
            .filter(|r| {
                masks
                    .iter()
                    .all(|(want, m)| mask_matches(m, &chan(&r.name)) == *want)
            })
            .filter(|r| more.is_none_or(|n| r.members.len() > n))
            .filter(|r| less.is_none_or(|n| r.members.len() < n))
            .map(|r| (chan(&r.name), r.members.len().to_string(), r.topic.clone()))
            .collect();
        self.numeric(id, "321", &["Channel", "Users  Name"]);
        for (ch, count, topic) in rows {
            self.numeric(id, "322", &[&ch, &count, &topic]);
        }
        self.numeric(id, "323", &["End of /LIST"]);
    }

    fn irc_topic(&mut self, id: ConnId, p: &[&str], now: Instant) {
        let Some(param) = p.first() else {
            return self.numeric(id, "461", &["TOPIC", "Not enough parameters"]);
        };
        let Some(room) = self.channel(id, param) else {
            return;
        };
        match p.get(1) {
            None => match self.room_key(room) {
                Ok(key) => self.irc_topic_reply(id, &key, true),
                Err(fail) => self.irc_fail(id, &fail, "TOPIC"),
            },
            Some(topic) => {
                if let Err(fail) = self.set_topic(id, room, topic, now) {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "TOPIC");
                }
            }
        }
    }

    /// One `352` line for `whom`, seen in `channel` (or `*`) with room flags `flags`.
    fn who_line(&mut self, id: ConnId, channel: &str, whom: ConnId, flags: u8) {
        let server = self.config.server_name.clone();
        let oper = self.is_oper(whom);
        let multi = self.irc_caps(id) & cap::MULTI_PREFIX != 0;
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        let state = format!(
            "{}{}{}",
            if c.away.is_empty() { 'H' } else { 'G' },
            if oper { "*" } else { "" },
            if multi {
                all_prefixes(flags)
            } else {
                prefix(flags)
            }
        );
        let (user, nick, real) = (
            c.user().to_owned(),
            c.nick.clone(),
            format!("0 {}", c.realname),
        );
        self.numeric(
            id,
            "352",
            &[channel, &user, &server, &server, &nick, &state, &real],
        );
    }

    /// One WHOX `354` line: the fields asked for, in the fixed order `tcuihsnfdlaor`.
    fn whox_line(&mut self, id: ConnId, channel: &str, whom: ConnId, flags: u8, spec: &str) {
        let (fields, token) = spec.split_once(',').unwrap_or((spec, ""));
        let server = self.config.server_name.clone();
        let oper = self.is_oper(whom);
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        let state = format!(
            "{}{}{}",
            if c.away.is_empty() { 'H' } else { 'G' },
            if oper { "*" } else { "" },
            prefix(flags)
        );
        let mut out: Vec<String> = Vec::new();
        for f in "tcuihsnfdlaor".chars().filter(|f| fields.contains(*f)) {
            out.push(match f {
                't' => match token
                    .chars()
                    .filter(|c| c.is_ascii_digit())
                    .take(3)
                    .collect()
                {
                    t if String::is_empty(&t) => "0".to_owned(),
                    t => t,
                },
                'c' => channel.to_owned(),
                'u' => c.user().to_owned(),
                // No addresses are shown, as everywhere else.
                'i' => "255.255.255.255".to_owned(),
                'h' | 's' => server.clone(),
                'n' => c.nick.clone(),
                'f' => state.clone(),
                'd' => "0".to_owned(),
                // Idle time is shown only in WHOIS.
                'l' => "0".to_owned(),
                // No accounts exist.
                'a' => "0".to_owned(),
                'o' => "n/a".to_owned(),
                _ => c.realname.clone(),
            });
        }
        if out.is_empty() {
            return;
        }
        let params: Vec<&str> = out.iter().map(String::as_str).collect();
        // The real name is last and may hold spaces, so it alone may be trailing.
        let mut buf = BytesMut::new();
        let nick = self.nick(id);
        let mut all = vec![nick.as_str()];
        all.extend_from_slice(&params);
        write_line(&mut buf, Some(&server), "354", &all, fields.contains('r'));
        self.conns.send(id, buf.freeze());
    }

    /// `WHO #chan [o]` lists a channel's members (invisible ones only to members; a secret
    /// channel only to members); `WHO mask [o]` lists the users whose nick, user name, host
    /// or real name match the mask (`*` or `0`: everyone), leaving out invisible users who
    /// share no channel with the asker. Flag `o`: server operators only.
    fn irc_who(&mut self, id: ConnId, p: &[&str]) {
        let mask = p.first().copied().unwrap_or("*");
        // `o` before any `%`: operators only; after `%`: WHOX fields, then `,token`.
        let (flags, whox) = match p.get(1).map(|f| f.split_once('%')) {
            Some(Some((flags, fields))) => (flags, Some(fields)),
            Some(None) => (p[1], None),
            None => ("", None),
        };
        let opers_only = flags.contains('o');
        let mut lines: Vec<(String, ConnId, u8)> = Vec::new();
        if let Some(room) = mask.strip_prefix('#') {
            if let Some(r) = self.registry.room(&fold(room)) {
                let member = r.is_member(id);
                if !r.secret || member {
                    let ch = chan(&r.name);
                    for &m in &r.members {
                        lines.push((ch.clone(), m, r.flags(m)));
                    }
                    lines.retain(|(_, m, _)| member || self.visible_to(id, *m));
                }
            }
        } else {
            let m = if mask == "0" { "*" } else { mask };
            let server = self.config.server_name.clone();
            for whom in self.registry.holders() {
                let Some(c) = self.conns.get(&whom) else {
                    continue;
                };
                let hit = mask_matches(m, &c.nick)
                    || mask_matches(m, c.user())
                    || mask_matches(m, &server)
                    || mask_matches(m, &c.realname);
                // Invisibility hides users from masks only, not from their exact nick.
                let exact = !m.contains(['*', '?']);
                if hit && (exact || self.visible_to(id, whom)) {
                    lines.push(("*".to_owned(), whom, 0));
                }
            }
        }
        for (ch, whom, flags) in lines {
            if opers_only && !self.is_oper(whom) {
                continue;
            }
            match whox {
                Some(fields) => self.whox_line(id, &ch, whom, flags, fields),
                None => self.who_line(id, &ch, whom, flags),
            }
        }
        self.numeric(id, "315", &[mask, "End of WHO list"]);
    }

    fn irc_whois(&mut self, id: ConnId, p: &[&str], now: Instant) {
        // `WHOIS server nick` names a server first; only the nick matters here.
        let Some(&nick) = p.last() else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        let server = self.config.server_name.clone();
        let w = match self.whois(id, nick, now) {
            Ok(w) => w,
            Err(fail) => {
                self.irc_fail(id, &fail, "WHOIS");
                return self.numeric(id, "318", &[nick, "End of /WHOIS list"]);
            }
        };
        let n = w.nick.as_str();
        let chans: Vec<String> = w
            .rooms
            .iter()
            .map(|(name, flags)| format!("{}{}", prefix(*flags), chan(name)))
            .collect();
        self.numeric(id, "311", &[n, &w.user, &server, "*", &w.realname]);
        if !chans.is_empty() {
            self.numeric(id, "319", &[n, &chans.join(" ")]);
        }
        self.numeric(id, "312", &[n, &server, VERSION]);
        if w.oper {
            self.numeric(id, "313", &[n, "is an IRC operator"]);
        }
        if !w.away.is_empty() {
            self.numeric(id, "301", &[n, &w.away]);
        }
        let (idle, signon) = (w.idle_secs, self.config.unix_time(w.signon));
        self.numeric(
            id,
            "317",
            &[
                n,
                &idle.to_string(),
                &signon.to_string(),
                "seconds idle, signon time",
            ],
        );
        self.numeric(id, "318", &[n, "End of /WHOIS list"]);
    }

    fn irc_away(&mut self, id: ConnId, p: &[&str]) {
        let message = p.first().copied().unwrap_or("");
        match self.set_away(id, message) {
            Ok(()) if message.is_empty() => {
                self.numeric(id, "305", &["You are no longer marked as being away"])
            }
            Ok(()) => self.numeric(id, "306", &["You have been marked as being away"]),
            Err(fail) => self.irc_fail(id, &fail, "AWAY"),
        }
    }

    fn irc_kick(&mut self, id: ConnId, p: &[&str]) {
        if p.len() < 2 {
            return self.numeric(id, "461", &["KICK", "Not enough parameters"]);
        }
        let kicker = self.nick(id);
        let reason = p.get(2).copied().unwrap_or(&kicker).to_owned();
        // One channel: every nick is kicked from it. Several: channels and nicks pair up.
        let chans: Vec<&str> = p[0].split(',').filter(|s| !s.is_empty()).collect();
        let nicks: Vec<&str> = p[1].split(',').filter(|s| !s.is_empty()).collect();
        for (i, nick) in nicks.into_iter().enumerate() {
            let target = match chans.as_slice() {
                [one] => *one,
                many => match many.get(i) {
                    Some(c) => *c,
                    None => break,
                },
            };
            let Some(room) = self.channel(id, target) else {
                continue;
            };
            match self.kick(id, room, nick, &reason) {
                Ok(()) => {}
                Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                    self.numeric(id, "441", &[nick, target, "They aren't on that channel"]);
                }
                Err(fail) => {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "KICK");
                }
            }
        }
    }

    fn irc_mode(&mut self, id: ConnId, p: &[&str]) {
        let Some(&target) = p.first() else {
            return self.numeric(id, "461", &["MODE", "Not enough parameters"]);
        };
        if let Some(room) = target.strip_prefix('#') {
            return self.irc_room_mode(id, target, room, &p[1..]);
        }
        // User modes: only one's own, and only `i`.
        if self.registry.find_nick(target) != Some(id) {
            if self.registry.find_nick(target).is_none() {
                return self.numeric(id, "401", &[target, "No such nick/channel"]);
            }
            return self.numeric(id, "502", &["Can't change mode for other users"]);
        }
        let Some(change) = p.get(1) else {
            let (i, o, w) = self
                .session(id)
                .map_or((false, false, false), |s| (s.invisible, s.oper, s.wallops));
            let modes: String = [(i, 'i'), (o, 'o'), (w, 'w')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
            let modes = format!("+{modes}");
            return self.numeric(id, "221", &[&modes]);
        };
        let mut on = true;
        let mut applied = String::new();
        let mut unknown = false;
        for c in change.chars() {
            let Some(s) = self.session(id) else {
                return;
            };
            let flag = match c {
                '+' => {
                    on = true;
                    continue;
                }
                '-' => {
                    on = false;
                    continue;
                }
                'i' => &mut s.invisible,
                'w' => &mut s.wallops,
                // `+o` comes only from OPER; anyone may drop it.
                'o' if !on => &mut s.oper,
                'o' => continue,
                _ => {
                    unknown = true;
                    continue;
                }
            };
            if *flag != on {
                *flag = on;
                applied.push(if on { '+' } else { '-' });
                applied.push(c);
            }
        }
        if unknown {
            self.numeric(id, "501", &["Unknown MODE flag"]);
        }
        if !applied.is_empty() {
            let nick = self.nick(id);
            self.line(id, Some(&nick), "MODE", &[&nick, &applied]);
        }
    }

    /// `MODE #chan`: `324` with the flag modes and, to members, the key and limit, then
    /// `329`. `MODE #chan b` or `e` (or `+b`/`+e` alone): the list. Otherwise each letter
    /// is applied in order, taking arguments in order, by the same rules as native
    /// SetMode and SetRule; a missing argument skips that letter.
    fn irc_room_mode(&mut self, id: ConnId, target: &str, room: &str, p: &[&str]) {
        let key = match self.room_key(room) {
            Ok(key) => key,
            Err(fail) => return self.irc_fail(id, &fail, "MODE"),
        };
        let Some(&change) = p.first() else {
            let Some(r) = self.registry.room(&key) else {
                return;
            };
            let mut modes = format!("+{}", r.flag_letters());
            let mut args: Vec<String> = Vec::new();
            if r.is_member(id) {
                if !r.key.is_empty() {
                    args.push(r.key.clone());
                }
                if r.limit > 0 {
                    args.push(r.limit.to_string());
                }
            } else {
                modes.retain(|c| c != 'k' && c != 'l');
            }
            // A room history restored may be older than this run (history.rs).
            let mut created = self.config.unix_time(r.created);
            if let Some(t) = self.history_times(&key).filter(|t| t.2 > 0) {
                created = created.min(t.2);
            }
            let created = created.to_string();
            let mut params = vec![target, modes.as_str()];
            params.extend(args.iter().map(String::as_str));
            self.numeric(id, "324", &params);
            return self.numeric(id, "329", &[target, &created]);
        };
        if p.len() == 1 && matches!(change, "b" | "+b" | "e" | "+e" | "I" | "+I") {
            let which = change.trim_start_matches('+');
            let list = self
                .registry
                .room(&key)
                .map(|r| match which {
                    "b" => r.bans.clone(),
                    "e" => r.exempts.clone(),
                    _ => r.invexes.clone(),
                })
                .unwrap_or_default();
            let (item, end, text) = match which {
                "b" => ("367", "368", "End of channel ban list"),
                "e" => ("348", "349", "End of channel exception list"),
                _ => ("346", "347", "End of channel invite list"),
            };
            for mask in list {
                self.numeric(id, item, &[target, &mask]);
            }
            return self.numeric(id, end, &[target, text]);
        }
        let mut args = p[1..].iter();
        let mut on = true;
        let mut changes: Vec<ServerPacket> = Vec::new();
        for c in change.chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                _ => {
                    let letter = if c.is_ascii() { c as u8 } else { 0 };
                    if let Some(mode) = RoomMode::from_letter(letter) {
                        let nick = if mode.takes_nick() {
                            match args.next() {
                                Some(n) => *n,
                                None => {
                                    self.numeric(id, "461", &["MODE", "Not enough parameters"]);
                                    continue;
                                }
                            }
                        } else {
                            ""
                        };
                        match self.apply_room_mode(id, room, Change::mode(mode, nick), on) {
                            Ok(change) => changes.extend(change.map(|(_, n)| n)),
                            Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                                self.numeric(
                                    id,
                                    "441",
                                    &[nick, target, "They aren't on that channel"],
                                );
                            }
                            Err(fail) => self.irc_fail(id, &fail, "MODE"),
                        }
                    } else if let Some(rule) = RoomRule::from_letter(letter) {
                        let arg = if rule.takes_arg(on) {
                            match args.next() {
                                Some(a) => *a,
                                // `MODE #c +b` with other letters: the list is not shown.
                                None => continue,
                            }
                        } else {
                            // `-k key` carries the old key; it is not needed.
                            if rule == RoomRule::Key && !on {
                                args.next();
                            }
                            ""
                        };
                        match self.apply_room_mode(id, room, Change::rule(rule, arg), on) {
                            Ok(change) => changes.extend(change.map(|(_, n)| n)),
                            Err(fail) if fail.code == ErrorCode::InvalidText => {
                                let letter = (letter as char).to_string();
                                let shown =
                                    if arg.is_empty() || arg.contains(' ') || rule == RoomRule::Key
                                    {
                                        "*"
                                    } else {
                                        crate::line::cut(arg, 100)
                                    };
                                self.numeric(id, "696", &[target, &letter, shown, &fail.message]);
                            }
                            Err(fail) => self.irc_fail(id, &fail, "MODE"),
                        }
                    } else {
                        let shown = if c.is_control() { '?' } else { c };
                        let shown = shown.to_string();
                        self.numeric(id, "472", &[&shown, "is unknown mode char to me"]);
                    }
                }
            }
        }
        self.relay_mode_changes(id, &key, &changes);
    }

    /// Relays the changes one MODE request made: native members get a packet per change,
    /// IRC members one MODE line with all of them (`+it-n key`), as IRC clients expect.
    fn relay_mode_changes(&mut self, id: ConnId, key: &str, changes: &[ServerPacket]) {
        if changes.is_empty() {
            return;
        }
        let source = self.source(id);
        let (mut flags, mut args, mut sign) = (String::new(), Vec::<String>::new(), ' ');
        let mut room_name = String::new();
        for change in changes {
            let (room, letter, on, arg) = match change {
                ServerPacket::ModeChanged {
                    room,
                    mode,
                    on,
                    nick,
                    ..
                } => (room, mode.letter(), *on, nick.as_str()),
                ServerPacket::RuleChanged {
                    room,
                    rule,
                    on,
                    arg,
                    ..
                } => (room, rule.letter(), *on, irc_rule_arg(*rule, *on, arg)),
                _ => continue,
            };
            room_name.clone_from(room);
            let s = if on { '+' } else { '-' };
            if s != sign {
                flags.push(s);
                sign = s;
            }
            flags.push(letter as char);
            if !arg.is_empty() {
                args.push(arg.to_owned());
            }
        }
        let ch = chan(&room_name);
        let mut params = vec![ch.as_str(), flags.as_str()];
        params.extend(args.iter().map(String::as_str));
        let mut buf = BytesMut::new();
        write_line(&mut buf, Some(&source), "MODE", &params, false);
        let line = buf.freeze();
        let frames: Vec<Bytes> = changes.iter().map(|c| c.to_frame()).collect();
        let members = self
            .registry
            .room(key)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for m in members {
            if self.conns.get(&m).is_some_and(|c| c.proto.is_irc()) {
                self.conns.send(m, line.clone());
            } else {
                for f in &frames {
                    self.conns.send(m, f.clone());
                }
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time.
fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Server {
    fn irc_invite(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            // The channels this user is invited to.
            let rooms: Vec<String> = self
                .registry
                .sorted()
                .filter(|r| r.invited.contains(&id))
                .map(|r| chan(&r.name))
                .collect();
            for ch in rooms {
                self.numeric(id, "336", &[&ch]);
            }
            return self.numeric(id, "337", &["End of /INVITE list"]);
        }
        if p.len() < 2 {
            return self.numeric(id, "461", &["INVITE", "Not enough parameters"]);
        }
        let (nick, target) = (p[0], p[1]);
        let Some(room) = self.channel(id, target) else {
            return;
        };
        match self.invite(id, room, nick) {
            Ok(reached) => {
                let n = self.nick(reached.target);
                let ch = chan(&self.room_name(room));
                self.numeric(id, "341", &[&n, &ch]);
                self.irc_away_reply(id, reached.away);
            }
            Err(fail) => {
                let fail = self.room_fail(room, fail);
                match fail.code {
                    ErrorCode::TargetInRoom => {
                        self.numeric(id, "443", &[nick, target, "is already on channel"])
                    }
                    _ => self.irc_fail(id, &fail, "INVITE"),
                }
            }
        }
    }

    fn irc_ison(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["ISON", "Not enough parameters"]);
        }
        let online: Vec<String> = p
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|n| self.registry.find_nick(n))
            .map(|c| self.nick(c))
            .collect();
        self.numeric(id, "303", &[&online.join(" ")]);
    }

    fn irc_userhost(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["USERHOST", "Not enough parameters"]);
        }
        let server = self.config.server_name.clone();
        let mut replies = Vec::new();
        for n in p.iter().take(5) {
            let Some(whom) = self.registry.find_nick(n) else {
                continue;
            };
            let oper = if self.is_oper(whom) { "*" } else { "" };
            if let Some(c) = self.conns.get(&whom) {
                let away = if c.away.is_empty() { '+' } else { '-' };
                replies.push(format!("{}{oper}={away}{}@{server}", c.nick, c.user()));
            }
        }
        self.numeric(id, "302", &[&replies.join(" ")]);
    }

    fn irc_lusers(&mut self, id: ConnId) {
        let users = self.registry.nick_count();
        let invisible = self
            .registry
            .holders()
            .into_iter()
            .filter(|&c| self.is_invisible(c))
            .count();
        let opers = self
            .registry
            .holders()
            .into_iter()
            .filter(|&c| self.is_oper(c))
            .count();
        let rooms = self.registry.room_count();
        // Connections still registering; closing ones are gone already for this count.
        let unknown = self
            .conns
            .map
            .values()
            .filter(|c| c.phase == Phase::Hello)
            .count();
        let text = format!(
            "There are {} users and {invisible} invisible on 1 servers",
            users - invisible
        );
        self.numeric(id, "251", &[&text]);
        self.numeric(id, "252", &[&opers.to_string(), "operator(s) online"]);
        self.numeric(id, "253", &[&unknown.to_string(), "unknown connection(s)"]);
        self.numeric(id, "254", &[&rooms.to_string(), "channels formed"]);
        let text = format!("I have {users} clients and 0 servers");
        self.numeric(id, "255", &[&text]);
        // The short form (no count parameters): clients read the text.
        let max = self.registry.max_nicks();
        let text = format!("Current local users {users}, max {max}");
        self.numeric(id, "265", &[&text]);
        let text = format!("Current global users {users}, max {max}");
        self.numeric(id, "266", &[&text]);
    }

    fn irc_version(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        self.numeric(id, "351", &[VERSION, &server, "Switchboard chat server"]);
        self.irc_isupport(id);
    }

    fn irc_time(&mut self, id: ConnId, now: Instant) {
        let server = self.config.server_name.clone();
        let unix = self.config.unix_time(now);
        self.numeric(
            id,
            "391",
            &[&server, &unix.to_string(), "0", &format_utc(unix)],
        );
    }

    fn irc_admin(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        self.numeric(id, "256", &[&server, "Administrative info"]);
        self.numeric(id, "257", &["Switchboard chat server"]);
        self.numeric(id, "258", &["No administrator is configured"]);
        self.numeric(id, "259", &["-"]);
    }

    fn irc_info(&mut self, id: ConnId) {
        self.numeric(
            id,
            "371",
            &[&format!(
                "{VERSION}: a chat server for native and IRC clients"
            )],
        );
        self.numeric(id, "374", &["End of INFO list"]);
    }

    fn irc_help(&mut self, id: ConnId, p: &[&str]) {
        let topic = p.first().map_or("*".to_owned(), |t| t.to_ascii_lowercase());
        let lines: &[&str] = &[
            "Switchboard speaks the IRC subset in its docs/IRC.md.",
            "Channels: JOIN PART TOPIC NAMES LIST INVITE KICK MODE",
            "Messages: PRIVMSG NOTICE AWAY",
            "Users: NICK WHO WHOIS WHOWAS ISON USERHOST",
            "Server: MOTD LUSERS VERSION TIME ADMIN INFO PING OPER KILL QUIT",
        ];
        self.numeric(id, "704", &[&topic, lines[0]]);
        for line in &lines[1..] {
            self.numeric(id, "705", &[&topic, line]);
        }
        self.numeric(id, "706", &[&topic, "End of /HELP"]);
    }

    /// `OPER name password`: `381` and user mode `+o` if the name is configured and the
    /// password's SHA-256 matches; `464` otherwise (the same reply for an unknown name).
    fn irc_oper(&mut self, id: ConnId, p: &[&str]) {
        if p.len() < 2 {
            return self.numeric(id, "461", &["OPER", "Not enough parameters"]);
        }
        let hash = crate::sha256::hex_digest(p[1].as_bytes());
        let ok = self
            .config
            .operators
            .iter()
            .any(|(name, h)| name == p[0] && h.eq_ignore_ascii_case(&hash));
        if !ok {
            return self.numeric(id, "464", &["Password incorrect"]);
        }
        let newly = self
            .session(id)
            .is_some_and(|s| !std::mem::replace(&mut s.oper, true));
        self.numeric(id, "381", &["You are now an IRC operator"]);
        if newly {
            let nick = self.nick(id);
            self.line(id, Some(&nick), "MODE", &[&nick, "+o"]);
        }
    }

    /// `KILL nick [:reason]`: server operators only (`481`); the target is closed with the
    /// reason and its peers see it quit.
    fn irc_kill(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["KILL", "Not enough parameters"]);
        }
        if !self.is_oper(id) {
            return self.numeric(
                id,
                "481",
                &["Permission Denied- You're not an IRC operator"],
            );
        }
        let Some(whom) = self.registry.find_nick(p[0]) else {
            return self.numeric(id, "401", &[p[0], "No such nick/channel"]);
        };
        let killer = self.nick(id);
        let reason: String = p
            .get(1)
            .copied()
            .unwrap_or("no reason")
            .chars()
            .filter(|c| !c.is_control())
            .take(self.config.max_reason_len as usize)
            .collect();
        let why = format!("Killed ({killer} ({reason}))");
        if self.conns.get(&whom).is_some_and(|c| c.remote) {
            // A user of another node: its own node closes it (cluster.rs).
            let nick = self.nick(whom);
            return self.cluster_emit(id, |user| super::cluster::Kind::Kill { user, nick, why });
        }
        self.close(whom, ErrorCode::Quit, &why, &why);
    }

    /// `SETNAME :realname` (IRCv3 setname): changes the real name (the reason rules, or
    /// `FAIL SETNAME INVALID_REALNAME`); the sender and everyone sharing a channel with it
    /// who enabled `setname` get `SETNAME :realname`.
    fn irc_setname(&mut self, id: ConnId, p: &[&str]) {
        let Some(&name) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "461", &["SETNAME", "Not enough parameters"]);
        };
        let max = self.config.max_reason_len as usize;
        if crate::name::validate_reason(name, max).is_err() {
            let server = self.config.server_name.clone();
            let why = format!("A real name is at most {max} bytes without NUL, CR or LF");
            return self.line(
                id,
                Some(&server),
                "FAIL",
                &["SETNAME", "INVALID_REALNAME", &why],
            );
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.realname = name.to_owned();
        }
        let mut buf = BytesMut::new();
        write_line(&mut buf, Some(&self.source(id)), "SETNAME", &[name], true);
        let line = buf.freeze();
        let mut peers = self.peers(id);
        if !peers.contains(&id) {
            peers.push(id);
        }
        for peer in peers {
            if self.irc_caps(peer) & cap::SETNAME != 0 {
                self.conns.send(peer, line.clone());
            }
        }
    }

    /// `WALLOPS :text`: server operators only (`481`); every user with mode `w`, and the
    /// sender, gets it.
    fn irc_wallops(&mut self, id: ConnId, p: &[&str]) {
        let Some(text) = p.first().filter(|t| !t.is_empty()) else {
            return self.numeric(id, "461", &["WALLOPS", "Not enough parameters"]);
        };
        if !self.is_oper(id) {
            return self.numeric(
                id,
                "481",
                &["Permission Denied- You're not an IRC operator"],
            );
        }
        let mut buf = BytesMut::new();
        write_line(&mut buf, Some(&self.source(id)), "WALLOPS", &[text], true);
        let line = buf.freeze();
        for whom in self.registry.holders() {
            let wants = matches!(
                self.conns.get(&whom).map(|c| &c.proto),
                Some(Proto::Irc(s)) if s.wallops
            );
            if wants || whom == id {
                self.conns.send(whom, line.clone());
            }
        }
    }

    fn irc_whowas(&mut self, id: ConnId, p: &[&str]) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        let max = p
            .get(1)
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|&c| c > 0)
            .unwrap_or(usize::MAX);
        let server = self.config.server_name.clone();
        let was = self.registry.was(nick);
        if was.is_empty() {
            self.numeric(id, "406", &[nick, "There was no such nickname"]);
        }
        for (n, user, real) in was.into_iter().take(max) {
            self.numeric(id, "314", &[&n, &user, &server, "*", &real]);
            self.numeric(id, "312", &[&n, &server, VERSION]);
        }
        self.numeric(id, "369", &[nick, "End of WHOWAS"]);
    }
}
