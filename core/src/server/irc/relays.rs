//! What other users see, in IRC: the one IRC encoder of fan-out notices (`render`, in the
//! form the recipient's capabilities choose, `caps_for`), their IRCv3 tags, and the forms
//! only IRC has (away-notify, extended-join, invite-notify, SETNAME, WALLOPS, TAGMSG, QUIT,
//! one MODE line for several changes); and what one connection alone is sent the same way
//! (`encode_one`): its bye, pings, server notices and history replays (`replay`).

use bytes::{Bytes, BytesMut};

use super::cap;
use super::chan;
use crate::history::{format_iso, format_utc, StoredMessage};
use crate::line::{split_text, write_line, Message, MAX_LINE};
use crate::name::fold;
use crate::packet::{RoomRule, ServerPacket};
use crate::server::fanout::Replay;
use crate::server::{Fanout, Notice, Server};
use crate::ConnId;

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

/// The IRC form of a notice for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// The line every IRC recipient gets (IRCv3 tags are added per recipient).
    Plain,
    /// extended-join's JOIN, with account and real name.
    Extended,
}

/// The capabilities an IRC client needs to get `what` at all (the notices only some
/// capabilities show), and those that give it [`Form::Extended`] instead of the plain one.
pub(crate) fn caps_for(what: Notice<'_>) -> (u16, u16) {
    match what {
        Notice::Join(..) => (0, cap::EXTENDED_JOIN),
        Notice::Away(_) => (cap::AWAY_NOTIFY, 0),
        Notice::RealName(_) => (cap::SETNAME, 0),
        Notice::InviteNotify(_) => (cap::INVITE_NOTIFY, 0),
        Notice::TagMsg(_) => (cap::MESSAGE_TAGS, 0),
        _ => (0, 0),
    }
}

/// The one IRC encoder: how a notice reads in IRC (whole lines, untagged), in form `form`,
/// from `source`, or `None` if IRC has no form of it. `notice` and `cut` as for `relay`.
pub(crate) fn render(
    what: Notice<'_>,
    source: &str,
    form: Form,
    notice: bool,
    cut: bool,
) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    let src = Some(source);
    match what {
        Notice::Packet(packet) | Notice::InviteNotify(packet) => {
            return relay(packet, source, notice, cut)
        }
        Notice::Join(ServerPacket::Joined { room, .. }, real) if form == Form::Extended => {
            // No accounts exist: `*`.
            write_line(&mut buf, src, "JOIN", &[&chan(room), "*", real], true);
        }
        Notice::Join(packet, _) => return relay(packet, source, notice, cut),
        Notice::Modes(changes) => return mode_line(source, changes),
        Notice::Departed(_) => return None,
        Notice::Quit(reason) => write_line(&mut buf, src, "QUIT", &[reason], true),
        Notice::Away("") => write_line(&mut buf, src, "AWAY", &[], false),
        Notice::Away(away) => write_line(&mut buf, src, "AWAY", &[away], true),
        Notice::RealName(name) => write_line(&mut buf, src, "SETNAME", &[name], true),
        Notice::Wallops(text) => write_line(&mut buf, src, "WALLOPS", &[text], true),
        Notice::TagMsg(target) => write_line(&mut buf, src, "TAGMSG", &[target], false),
        Notice::Bye(_, reason) => {
            let reason = format!("Closing Link: {reason}");
            write_line(&mut buf, None, "ERROR", &[&reason], true);
        }
        Notice::ServerError { to, text, .. } => {
            let to = if to.is_empty() { "*" } else { to };
            write_text(&mut buf, source, true, to, text, false);
        }
        Notice::Ping(token) => return Some(ping(token)),
        // Its lines depend on every capability of its one recipient: `replay`, through
        // `encode_one`, never a fan-out.
        Notice::Replay(_) => return None,
    }
    Some(buf.freeze())
}

/// One MODE line for the changes one request made in one room (`+it-n key`), as IRC
/// clients expect; `None` if there are none.
fn mode_line(source: &str, changes: &[ServerPacket]) -> Option<Bytes> {
    let (mut flags, mut args, mut sign) = (String::new(), Vec::<&str>::new(), ' ');
    let mut room_name = None;
    for change in changes {
        let (room, letter, on, arg) = match change {
            ServerPacket::ModeChanged {
                room,
                mode,
                on,
                nick,
                ..
            } => {
                let nick = if mode.takes_nick() { nick.as_str() } else { "" };
                (room, mode.letter(), *on, nick)
            }
            ServerPacket::RuleChanged {
                room,
                rule,
                on,
                arg,
                ..
            } => (room, rule.letter(), *on, irc_rule_arg(*rule, *on, arg)),
            _ => continue,
        };
        room_name = Some(room);
        let s = if on { '+' } else { '-' };
        if s != sign {
            flags.push(s);
            sign = s;
        }
        flags.push(letter as char);
        if !arg.is_empty() {
            args.push(arg);
        }
    }
    let ch = chan(room_name?);
    let mut params = vec![ch.as_str(), flags.as_str()];
    params.extend(args);
    let mut buf = BytesMut::new();
    write_line(&mut buf, Some(source), "MODE", &params, false);
    Some(buf.freeze())
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
        ServerPacket::RuleChanged { .. } | ServerPacket::ModeChanged { .. } => {
            return mode_line(source, std::slice::from_ref(packet));
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
        _ => return None,
    }
    Some(buf.freeze())
}

/// `PRIVMSG` or `NOTICE` lines carrying `text`, split so each line fits 512 bytes.
pub(super) fn write_text(
    buf: &mut BytesMut,
    source: &str,
    notice: bool,
    target: &str,
    text: &str,
    cut: bool,
) {
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
pub(super) fn irc_rule_arg(rule: RoomRule, on: bool, arg: &str) -> &str {
    if rule == RoomRule::Key && !on {
        "*"
    } else {
        arg
    }
}

/// The IRC encoder of a replay (`Notice::Replay`) for a client with capabilities `caps`,
/// from server `server`: in its `chathistory` batch if it has one, else labelled by an
/// `ACK` if it is an empty answer to a labelled request, each message tagged with `time`
/// (server-time; else the time starts the text) and `msgid` (message-tags). `None` if
/// that is nothing at all.
pub(crate) fn replay(r: &Replay<'_>, server: &str, caps: u16) -> Option<Bytes> {
    let key = fold(r.room);
    let chan = format!("#{}", r.room);
    let mut out = BytesMut::new();
    if let Some(batch) = r.batch {
        if let Some(label) = r.label {
            out.extend_from_slice(format!("@label={label} ").as_bytes());
        }
        let open = format!("+{batch}");
        write_line(
            &mut out,
            Some(server),
            "BATCH",
            &[&open, "chathistory", &chan],
            false,
        );
    } else if let Some(label) = r.label.filter(|_| r.rows.is_empty()) {
        // Nothing to label but the acknowledgement.
        out.extend_from_slice(format!("@label={label} :{server} ACK\r\n").as_bytes());
    }
    for row in r.rows {
        irc_replay_line(&mut out, &chan, &key, row, server, caps, r.batch);
    }
    if let Some(batch) = r.batch {
        let close = format!("-{batch}");
        write_line(&mut out, Some(server), "BATCH", &[&close], false);
    }
    (!out.is_empty()).then(|| out.freeze())
}

/// A replayed message as a line from its sender: tagged as the client's capabilities
/// allow; without server-time its time (UTC) starts the text, as bouncers do.
fn irc_replay_line(
    out: &mut BytesMut,
    chan: &str,
    key: &str,
    row: &StoredMessage,
    server: &str,
    caps: u16,
    batch: Option<&str>,
) {
    let mut tags = Vec::new();
    if let Some(batch) = batch {
        tags.push(format!("batch={batch}"));
    }
    if caps & cap::SERVER_TIME != 0 {
        tags.push(format!("time={}", format_iso(row.time_ms)));
    }
    let text = if caps & cap::SERVER_TIME != 0 {
        row.text.clone()
    } else {
        let stamp = format!("[{}]", format_utc(row.time_ms));
        // A CTCP action keeps its form: the stamp goes inside it.
        match row.text.strip_prefix("\u{1}ACTION ") {
            Some(rest) => format!("\u{1}ACTION {stamp} {rest}"),
            None => format!("{stamp} {}", row.text),
        }
    };
    let source = format!("{}!history@{server}", row.from);
    let command = if row.notice { "NOTICE" } else { "PRIVMSG" };
    // A stored native message longer than a line is split as when it was relayed; the
    // msgid goes on its first line only.
    let overhead = 1 + source.len() + 1 + command.len() + 1 + chan.len() + 2 + 2;
    let room = MAX_LINE.saturating_sub(overhead);
    let msgid = format!("msgid={}", msgid(key, row.id));
    for (i, part) in split_text(&text, room).into_iter().enumerate() {
        let mut line_tags = tags.clone();
        if caps & cap::MESSAGE_TAGS != 0 && i == 0 {
            line_tags.push(msgid.clone());
        }
        if !line_tags.is_empty() {
            out.extend_from_slice(b"@");
            out.extend_from_slice(line_tags.join(";").as_bytes());
            out.extend_from_slice(b" ");
        }
        write_line(out, Some(&source), command, &[chan, part], true);
    }
}

/// The server's keepalive ping.
fn ping(token: u64) -> Bytes {
    Message::new("PING", &[&token.to_string()]).to_bytes()
}

impl Server {
    /// echo-message to oneself: the delivery already queued is the echo (the answer a
    /// label goes on) and a second copy, the delivery, follows the answer. Native
    /// connections have no session and get the one copy.
    pub(crate) fn irc_echo_to_self(&mut self, id: ConnId, fan: &mut Fanout<'_>) {
        let Some(caps) = self.session(id).map(|s| s.caps) else {
            return;
        };
        if let Some(bytes) = fan.encoded(Some(caps)) {
            self.irc_defer(id, bytes);
        }
    }
}
