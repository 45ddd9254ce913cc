//! IRCv3 message-tags on the way through: client-only tags, msgids of direct messages, and
//! `TAGMSG` (tags without text, for IRC clients that enabled message-tags only).

use std::time::Instant;

use bytes::BytesMut;

use super::conn::Proto;
use super::irc::cap;
use super::Server;
use crate::history::format_iso;
use crate::line::write_line;
use crate::{ConnId, ErrorCode};

impl Server {
    /// The client-only tags of the IRC command `id` is sending, if any.
    pub(crate) fn irc_client_tags(&self, id: ConnId) -> Option<String> {
        match &self.conns.get(&id)?.proto {
            Proto::Irc(s) => s.command.as_ref()?.client_tags.clone(),
            _ => None,
        }
    }

    /// A msgid for a message that is not stored (a direct message, a TAGMSG): `d` and a
    /// counter, with the time (when known) so that ids stay unique across restarts.
    pub(crate) fn direct_msgid(&mut self, time_ms: Option<u64>) -> String {
        self.direct_msgids += 1;
        match time_ms {
            Some(t) => format!("d{}.{t}", self.direct_msgids),
            None => format!("d{}", self.direct_msgids),
        }
    }

    /// `TAGMSG target[,target...]`: the sender's client-only tags, with a time and msgid,
    /// to the recipients that enabled message-tags (and to the sender with echo-message).
    /// A channel takes the same rules as PRIVMSG (`404`, `403`); a nick must exist (`401`).
    pub(super) fn irc_tagmsg(&mut self, id: ConnId, p: &[&str], now: Instant) {
        let server = self.config.server_name.clone();
        let Some(targets) = p.first().filter(|t| !t.is_empty()) else {
            let nick = self.nick(id);
            let params = [nick.as_str(), "TAGMSG", "Not enough parameters"];
            let mut buf = BytesMut::new();
            write_line(&mut buf, Some(&server), "461", &params, true);
            self.conns.send(id, buf.freeze());
            return;
        };
        let source = self.source(id);
        let client = self.irc_client_tags(id);
        let time_ms = self.wall_ms(now);
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let mut to_self = false;
            let recipients: Vec<ConnId> = match target.strip_prefix('#') {
                Some(room) => match self.speak_check(id, room) {
                    Ok(key) => self
                        .registry
                        .room(&key)
                        .map(|r| r.members.iter().copied().filter(|m| *m != id).collect())
                        .unwrap_or_default(),
                    Err(fail) => {
                        let nick = self.nick(id);
                        // `speak_check` refuses a room that does not exist with
                        // `NotInRoom` under the default mode `n`: IRC says 403 for it,
                        // as PRIVMSG does (`room_fail` in server/irc/).
                        let missing =
                            fail.code == ErrorCode::NoSuchRoom || self.room_key(room).is_err();
                        let (code, why) = if missing {
                            ("403", "No such channel")
                        } else {
                            ("404", "Cannot send to channel")
                        };
                        let mut buf = BytesMut::new();
                        write_line(&mut buf, Some(&server), code, &[&nick, target, why], true);
                        self.conns.send(id, buf.freeze());
                        continue;
                    }
                },
                None => match self.registry.find_nick(target) {
                    Some(to) if to != id => vec![to],
                    Some(_) => {
                        to_self = true;
                        Vec::new()
                    }
                    None => {
                        let nick = self.nick(id);
                        let mut buf = BytesMut::new();
                        let params = [nick.as_str(), target, "No such nick/channel"];
                        write_line(&mut buf, Some(&server), "401", &params, true);
                        self.conns.send(id, buf.freeze());
                        continue;
                    }
                },
            };
            let msgid = self.direct_msgid(time_ms);
            let echo = self.irc_caps(id) & cap::ECHO_MESSAGE != 0;
            let everyone = recipients.into_iter().chain(echo.then_some(id));
            for to in everyone {
                let caps = self.irc_caps(to);
                if caps & cap::MESSAGE_TAGS == 0 {
                    continue;
                }
                let mut tags = Vec::new();
                if let Some(t) = time_ms.filter(|_| caps & cap::SERVER_TIME != 0) {
                    tags.push(format!("time={}", format_iso(t)));
                }
                tags.push(format!("msgid={msgid}"));
                if let Some(c) = &client {
                    tags.push(c.clone());
                }
                let mut buf = BytesMut::new();
                buf.extend_from_slice(format!("@{} ", tags.join(";")).as_bytes());
                write_line(&mut buf, Some(&source), "TAGMSG", &[target], false);
                let bytes = buf.freeze();
                if to == id && to_self {
                    // To oneself: the echo answers, the delivery follows (as PRIVMSG).
                    self.irc_defer(id, bytes.clone());
                }
                self.conns.send(to, bytes);
            }
        }
    }
}

#[cfg(test)]
#[path = "tests_tagmsg.rs"]
mod tests;
