//! What other users see, in IRC: notices relayed as lines, their IRCv3 tags, and the
//! relays only IRC has (away-notify, extended-join, invite-notify, one MODE line for
//! several changes).

use bytes::{Bytes, BytesMut};

use super::cap;
use super::chan;
use crate::line::{split_text, write_line, Message, MAX_LINE};
use crate::packet::{Packet, RoomRule, ServerPacket};
use crate::server::{Fanout, Server};
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

    /// Tells IRC members sharing a room with `id` (or only room `key`'s members) that have
    /// `away-notify` its away status.
    pub(crate) fn irc_away_notify(&mut self, id: ConnId, key: Option<&str>) {
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
    pub(super) fn peers(&self, id: ConnId) -> Vec<ConnId> {
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
    /// real name added. `None` for members without it, who get the plain relay. The line is
    /// the same for every member, so it is built once per join, in `built`.
    pub(crate) fn irc_extended_join(
        &self,
        member: ConnId,
        joiner: ConnId,
        room: &str,
        built: &mut Option<Bytes>,
    ) -> Option<Bytes> {
        if self.irc_caps(member) & cap::EXTENDED_JOIN == 0 {
            return None;
        }
        let line = built.get_or_insert_with(|| {
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
            buf.freeze()
        });
        Some(line.clone())
    }

    /// `invite-notify`: the room's other operators with the capability see the INVITE.
    pub(crate) fn irc_invite_notify(&mut self, key: &str, by: ConnId, target: ConnId) {
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

    /// Relays the changes one MODE request made: native members get a packet per change,
    /// IRC members one MODE line with all of them (`+it-n key`), as IRC clients expect.
    pub(super) fn relay_mode_changes(&mut self, id: ConnId, key: &str, changes: &[ServerPacket]) {
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
