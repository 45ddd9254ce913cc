//! IRCv3 message-tags on the way through: client-only tags, msgids of direct messages, and
//! `TAGMSG` (tags without text, for IRC clients that enabled message-tags only).

use std::time::Instant;

use super::conn::Proto;
use super::{Fanout, MsgId, Notice, Server};
use crate::ConnId;

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
    /// A channel takes the same rules and errors as PRIVMSG (`404`, `403`); a nick must
    /// exist (`401`).
    pub(super) fn irc_tagmsg(&mut self, id: ConnId, p: &[&str], now: Instant) {
        let Some(targets) = p.first().filter(|t| !t.is_empty()) else {
            return self.numeric(id, "461", &["TAGMSG", "Not enough parameters"]);
        };
        let time_ms = self.wall_ms(now);
        let echo = self.echoes(id);
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let to = match target.strip_prefix('#') {
                Some(room) => match self.speak_check(id, room) {
                    Ok(key) => Err(key),
                    Err(fail) => {
                        let fail = self.room_fail(room, fail);
                        self.irc_message_fail(id, target, &fail, "TAGMSG");
                        continue;
                    }
                },
                None => match self.registry.find_nick(target) {
                    Some(to) => Ok(to),
                    None => {
                        self.numeric(id, "401", &[target, "No such nick/channel"]);
                        continue;
                    }
                },
            };
            let mut fan = Fanout::of(Notice::TagMsg(target), id);
            fan.time_ms = time_ms;
            fan.msgid = Some(MsgId::Text(self.direct_msgid(time_ms)));
            fan.client_tags = self.irc_client_tags(id);
            match to {
                Err(key) => {
                    let member = self.registry.room(&key).is_some_and(|r| r.is_member(id));
                    self.relay_message(&key, &mut fan, id, member);
                }
                Ok(to) if to != id => self.deliver_direct(to, &mut fan, id),
                // To oneself, only as the echo: it answers, the delivery follows.
                Ok(_) if echo => self.deliver_direct(id, &mut fan, id),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "tests_tagmsg.rs"]
mod tests;
