//! The chat operations, the same for every protocol: each checks its rule, changes the
//! registry and relays notices. Replies to the requester are the caller's (protocol's) job.

use std::time::Instant;

use super::conn::Phase;
use super::{Fanout, Server};
use crate::name::{fold, validate_nick, validate_reason, validate_room, validate_text};
use crate::packet::{RoomMode, ServerPacket};
use crate::{ConnId, ErrorCode};

/// Why an operation was refused: the code, what it was about (a nick or room, for
/// protocols whose errors name it), and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub code: ErrorCode,
    pub target: String,
    pub message: String,
}

pub(crate) type Outcome<T = ()> = Result<T, Fail>;

fn fail(code: ErrorCode, target: &str, message: String) -> Fail {
    Fail {
        code,
        target: target.to_owned(),
        message,
    }
}

/// Whether a request passes flood control.
pub(crate) enum Admit {
    Yes,
    /// Over the rate: drop it and say so.
    Limited,
    /// Over the rate too often: the connection is closed.
    Closed,
}

impl Server {
    /// Counts a request against the connection's rate.
    pub(crate) fn admit(&mut self, id: ConnId, now: Instant) -> Admit {
        let (rate, burst, strikes) = (
            self.config.msg_rate,
            self.config.msg_burst,
            self.config.flood_strikes,
        );
        let Some(conn) = self.conns.get_mut(&id) else {
            return Admit::Closed;
        };
        if conn.limiter.allow(now, rate, burst) {
            conn.strikes = 0;
            return Admit::Yes;
        }
        conn.strikes += 1;
        if conn.strikes >= strikes {
            self.close(id, ErrorCode::Flooding, "flooding", "flooding");
            Admit::Closed
        } else {
            Admit::Limited
        }
    }

    pub(crate) fn check_nick(&self, nick: &str) -> Outcome {
        validate_nick(nick, self.config.max_nick_len as usize).map_err(|code| {
            fail(
                code,
                nick,
                format!(
                    "invalid nick `{nick}`: 1 to {} bytes, a letter or one of []\\`^{{}}|_ first, \
                     then letters, digits, - or those",
                    self.config.max_nick_len
                ),
            )
        })
    }

    pub(crate) fn check_room(&self, room: &str) -> Outcome {
        validate_room(room, self.config.max_room_len as usize).map_err(|code| {
            fail(
                code,
                room,
                format!(
                    "invalid room `{room}`: 1 to {} bytes of letters, digits, -, _ or .",
                    self.config.max_room_len
                ),
            )
        })
    }

    fn check_reason(&self, reason: &str, max: u16) -> Outcome {
        validate_reason(reason, max as usize).map_err(|code| {
            fail(
                code,
                "",
                format!("longer than {max} bytes or holding NUL, CR or LF"),
            )
        })
    }

    fn check_text(&self, text: &str) -> Outcome {
        validate_text(text, self.config.max_text_len as usize).map_err(|code| {
            fail(
                code,
                "",
                format!(
                    "text must be 1 to {} bytes without NUL, CR or LF",
                    self.config.max_text_len
                ),
            )
        })
    }

    /// The folded key of a room the connection sits in, or `NotInRoom`.
    pub(crate) fn member_key(&self, id: ConnId, room: &str) -> Outcome<String> {
        let key = fold(room);
        match self.conns.get(&id) {
            Some(c) if c.rooms.contains(&key) => Ok(key),
            _ => Err(fail(ErrorCode::NotInRoom, room, format!("not in `{room}`"))),
        }
    }

    /// The folded key of an existing room, or `NoSuchRoom`.
    pub(crate) fn room_key(&self, room: &str) -> Outcome<String> {
        let key = fold(room);
        if self.registry.room(&key).is_some() {
            Ok(key)
        } else {
            Err(fail(
                ErrorCode::NoSuchRoom,
                room,
                format!("no room `{room}`"),
            ))
        }
    }

    /// Gives a connection its nickname and makes it a chat participant.
    pub(crate) fn register(
        &mut self,
        id: ConnId,
        nick: &str,
        user: &str,
        realname: &str,
    ) -> Outcome {
        self.check_nick(nick)?;
        self.registry
            .claim_nick(nick, id)
            .map_err(|code| fail(code, nick, format!("nick `{nick}` is taken")))?;
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.phase = Phase::Ready;
        conn.nick = nick.to_owned();
        conn.user = user.to_owned();
        conn.realname = realname.to_owned();
        self.events.push_back(super::Event::Registered {
            conn: id,
            nick: nick.to_owned(),
        });
        self.schedule(id);
        Ok(())
    }

    /// Joins a room (creating it, with the joiner as operator); returns its key.
    pub(crate) fn join(&mut self, id: ConnId, room: &str) -> Outcome<String> {
        self.check_room(room)?;
        let key = fold(room);
        let max_rooms = self.config.max_rooms_per_conn as usize;
        let source = self.source(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(key);
        };
        if conn.rooms.contains(&key) {
            return Err(fail(
                ErrorCode::AlreadyInRoom,
                room,
                format!("already in `{room}`"),
            ));
        }
        if conn.rooms.len() >= max_rooms {
            return Err(fail(
                ErrorCode::TooManyRooms,
                room,
                format!("already in {max_rooms} rooms, the most allowed"),
            ));
        }
        conn.rooms.push(key.clone());
        let nick = conn.nick.clone();
        let created = self.registry.room(&key).is_none();
        self.registry.join(&key, room, id);
        if created {
            self.history_restore(&key);
        }
        let name = self
            .registry
            .room(&key)
            .map_or_else(String::new, |r| r.name.clone());
        let joined = ServerPacket::Joined { room: name, nick };
        self.relay_room(&key, &mut Fanout::new(&joined, &source), None);
        Ok(key)
    }

    /// Leaves a room; everyone in it, the leaver included, is told first.
    pub(crate) fn leave(&mut self, id: ConnId, room: &str, reason: &str) -> Outcome {
        self.check_reason(reason, self.config.max_reason_len)?;
        let key = self.member_key(id, room)?;
        let source = self.source(id);
        let nick = self.nick(id);
        if let Some(r) = self.registry.room(&key) {
            let left = ServerPacket::Left {
                room: r.name.clone(),
                nick,
                reason: reason.to_owned(),
            };
            #[cfg(feature = "planted-bugs")]
            if self.planted == Some(super::PlantedBug::SkipLeaveNotice) {
                self.conns.deliver(id, &mut Fanout::new(&left, &source));
                self.registry.leave(&key, id);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.rooms.retain(|k| *k != key);
                }
                return Ok(());
            }
            self.relay_room(&key, &mut Fanout::new(&left, &source), None);
        }
        self.registry.leave(&key, id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rooms.retain(|k| *k != key);
        }
        Ok(())
    }

    /// Says text to a room: numbered, stamped with the sender, encoded once per protocol.
    pub(crate) fn say(
        &mut self,
        id: ConnId,
        room: &str,
        text: String,
        notice: bool,
        now: Instant,
    ) -> Outcome {
        self.check_text(&text)?;
        let key = self.member_key(id, room)?;
        self.history_ready(room)?;
        let source = self.source(id);
        let from = self.nick(id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_said = now;
        }
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(());
        };
        r.seq += 1;
        let message = ServerPacket::Message {
            room: r.name.clone(),
            from,
            seq: r.seq,
            text,
        };
        self.history_append(id, &key, &message, notice, now);
        let mut fan = Fanout::new(&message, &source);
        fan.notice = notice;
        self.relay_room(&key, &mut fan, Some(id));
        #[cfg(feature = "planted-bugs")]
        self.planted_say(id, &key, &mut fan);
        Ok(())
    }

    /// Sends a direct message; returns the recipient. Native senders get it echoed.
    pub(crate) fn whisper(
        &mut self,
        id: ConnId,
        to: &str,
        text: String,
        notice: bool,
        now: Instant,
    ) -> Outcome<ConnId> {
        self.check_text(&text)?;
        let Some(target) = self.registry.find_nick(to) else {
            return Err(fail(
                ErrorCode::NoSuchNick,
                to,
                format!("no one is called `{to}`"),
            ));
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_said = now;
        }
        let source = self.source(id);
        let direct = ServerPacket::Direct {
            from: self.nick(id),
            to: self.nick(target),
            text,
        };
        let mut fan = Fanout::new(&direct, &source);
        fan.notice = notice;
        self.conns.deliver(target, &mut fan);
        let sender_is_native = self.conns.get(&id).is_some_and(|c| !c.proto.is_irc());
        if target != id && sender_is_native {
            self.conns.deliver(id, &mut fan);
        }
        Ok(target)
    }

    /// Changes nickname; the changer and everyone sharing a room with it hear once.
    pub(crate) fn change_nick(&mut self, id: ConnId, nick: &str) -> Outcome {
        self.check_nick(nick)?;
        let old = self.nick(id);
        if old == nick {
            return Ok(());
        }
        self.registry
            .claim_nick(nick, id)
            .map_err(|code| fail(code, nick, format!("nick `{nick}` is taken")))?;
        if fold(&old) != fold(nick) {
            self.registry.release_nick(&old, id);
        }
        let source = self.source(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.nick = nick.to_owned();
        let mut recipients = vec![id];
        for key in &conn.rooms {
            if let Some(room) = self.registry.room(key) {
                recipients.extend_from_slice(&room.members);
            }
        }
        recipients.sort();
        recipients.dedup();
        let changed = ServerPacket::NickChanged {
            old,
            new: nick.to_owned(),
        };
        let mut fan = Fanout::new(&changed, &source);
        for r in recipients {
            self.conns.deliver(r, &mut fan);
        }
        Ok(())
    }

    /// Sets a room's topic: any member, or only operators while the topic is locked.
    pub(crate) fn set_topic(&mut self, id: ConnId, room: &str, topic: &str) -> Outcome {
        self.check_reason(topic, self.config.max_topic_len)?;
        let key = self.member_key(id, room)?;
        let source = self.source(id);
        let by = self.nick(id);
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(());
        };
        if r.topic_lock && !r.is_operator(id) {
            return Err(fail(
                ErrorCode::NotOperator,
                room,
                format!("only operators may set the topic of `{}`", r.name),
            ));
        }
        r.topic = topic.to_owned();
        r.topic_by = by.clone();
        let notice = ServerPacket::Topic {
            room: r.name.clone(),
            topic: topic.to_owned(),
            by,
        };
        self.relay_room(&key, &mut Fanout::new(&notice, &source), None);
        self.history_topic(&key, id);
        Ok(())
    }

    /// The room and member checks shared by kick and mode: the room exists, the requester
    /// is in it and is its operator.
    fn operator_key(&self, id: ConnId, room: &str) -> Outcome<String> {
        let key = self.room_key(room)?;
        let key = self.member_key(id, room).map(|_| key)?;
        match self.registry.room(&key) {
            Some(r) if r.is_operator(id) => Ok(key),
            _ => Err(fail(
                ErrorCode::NotOperator,
                room,
                format!("not an operator of `{room}`"),
            )),
        }
    }

    /// The connection of `nick` if it sits in room `key`.
    fn target_in(&self, key: &str, room: &str, nick: &str) -> Outcome<ConnId> {
        let Some(target) = self.registry.find_nick(nick) else {
            return Err(fail(
                ErrorCode::NoSuchNick,
                nick,
                format!("no one is called `{nick}`"),
            ));
        };
        match self.registry.room(key) {
            Some(r) if r.is_member(target) => Ok(target),
            _ => Err(fail(
                ErrorCode::TargetNotInRoom,
                nick,
                format!("`{nick}` is not in `{room}`"),
            )),
        }
    }

    /// Removes a member from a room; operators only. Everyone, the kicked included, hears.
    pub(crate) fn kick(&mut self, id: ConnId, room: &str, nick: &str, reason: &str) -> Outcome {
        self.check_reason(reason, self.config.max_reason_len)?;
        let key = self.operator_key(id, room)?;
        let target = self.target_in(&key, room, nick)?;
        let source = self.source(id);
        let Some(r) = self.registry.room(&key) else {
            return Ok(());
        };
        let kicked = ServerPacket::Kicked {
            room: r.name.clone(),
            nick: self.nick(target),
            by: self.nick(id),
            reason: reason.to_owned(),
        };
        self.relay_room(&key, &mut Fanout::new(&kicked, &source), None);
        self.registry.leave(&key, target);
        if let Some(conn) = self.conns.get_mut(&target) {
            conn.rooms.retain(|k| *k != key);
        }
        Ok(())
    }

    /// Sets or clears a room mode; operators only. A change that changes nothing is quiet.
    pub(crate) fn set_mode(
        &mut self,
        id: ConnId,
        room: &str,
        mode: RoomMode,
        on: bool,
        nick: &str,
    ) -> Outcome {
        let key = self.operator_key(id, room)?;
        let target = if mode.takes_nick() {
            Some(self.target_in(&key, room, nick)?)
        } else {
            None
        };
        let target_nick = target.map(|t| self.nick(t)).unwrap_or_default();
        let source = self.source(id);
        let by = self.nick(id);
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(());
        };
        let changed = match (mode, target) {
            (RoomMode::TopicLock, _) => std::mem::replace(&mut r.topic_lock, on) != on,
            (RoomMode::Operator, Some(t)) => toggle(&mut r.operators, t, on),
            (RoomMode::Voice, Some(t)) => toggle(&mut r.voiced, t, on),
            _ => false,
        };
        if changed {
            let notice = ServerPacket::ModeChanged {
                room: r.name.clone(),
                by,
                mode,
                on,
                nick: target_nick,
            };
            self.relay_room(&key, &mut Fanout::new(&notice, &source), None);
        }
        Ok(())
    }

    /// Sets (or, with an empty message, clears) the connection's away message.
    pub(crate) fn set_away(&mut self, id: ConnId, message: &str) -> Outcome {
        self.check_reason(message, self.config.max_reason_len)?;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.away = message.to_owned();
        }
        Ok(())
    }

    /// Ends the session at the client's request.
    pub(crate) fn quit(&mut self, id: ConnId, reason: &str) {
        let reason = crate::irc::cut(reason, self.config.max_reason_len as usize);
        let reason: String = reason
            .chars()
            .filter(|c| !matches!(c, '\0' | '\r' | '\n'))
            .collect();
        let left = if reason.is_empty() {
            "quit".to_owned()
        } else {
            format!("quit: {reason}")
        };
        self.close(id, ErrorCode::Quit, "goodbye", &left);
    }
}

/// Adds or removes `id` in a set kept as a Vec; whether anything changed.
fn toggle(set: &mut Vec<ConnId>, id: ConnId, on: bool) -> bool {
    let has = set.contains(&id);
    if on && !has {
        set.push(id);
    } else if !on && has {
        set.retain(|m| *m != id);
    }
    has != on
}
