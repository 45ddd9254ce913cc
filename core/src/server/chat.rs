//! The chat operations, the same for every protocol: each checks its rule, changes the
//! registry and relays notices. Replies to the requester are the caller's (protocol's) job.

use std::time::Instant;

use super::cluster::Kind;
use super::conn::{Phase, Proto};
use super::outcome::{fail, Away, Fail, Outcome, Reached, Whois};
use super::rooms::Change;
use super::{Fanout, MsgId, Notice, Sent, Server};
use crate::name::{fold, validate_nick, validate_reason, validate_room, validate_text};
use crate::packet::{RoomRule, ServerPacket};
use crate::{ConnId, ErrorCode};

impl Server {
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

    /// The display name of a room, or `room` itself if there is no such room.
    pub(crate) fn room_name(&self, room: &str) -> String {
        self.registry
            .room(&fold(room))
            .map_or_else(|| room.to_owned(), |r| r.name.clone())
    }

    /// The server password rule: with one configured, a session must give exactly it
    /// (`None`: it gave none).
    pub(crate) fn check_password(&self, given: Option<&str>) -> Outcome {
        match &self.config.password {
            Some(password) if given != Some(password.as_str()) => Err(fail(
                ErrorCode::BadPassword,
                "",
                "wrong server password".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `id` may take `nick` (on this node): a valid nick no one else holds.
    pub(crate) fn nick_free(&self, id: ConnId, nick: &str) -> Outcome {
        self.check_nick(nick)?;
        if self.registry.find_nick(nick).is_some_and(|h| h != id) {
            return Err(fail(
                ErrorCode::NickTaken,
                nick,
                format!("nick `{nick}` is taken"),
            ));
        }
        Ok(())
    }

    /// What `asker` learns of the holder of `nick`: rooms it may see it in (secret ones
    /// only as a member), its flags there, away status, idle time and signon.
    pub(crate) fn whois(&self, asker: ConnId, nick: &str, now: Instant) -> Outcome<Whois> {
        let found = self
            .registry
            .find_nick(nick)
            .and_then(|id| Some((id, self.conns.get(&id)?)));
        let Some((whom, c)) = found else {
            return Err(fail(
                ErrorCode::NoSuchNick,
                nick,
                format!("no one is called `{nick}`"),
            ));
        };
        let rooms = c
            .rooms
            .iter()
            .filter_map(|k| self.registry.room(k))
            .filter(|r| !r.secret || r.is_member(asker))
            .map(|r| (r.name.clone(), r.flags(whom)))
            .collect();
        Ok(Whois {
            nick: c.nick.clone(),
            user: c.user().to_owned(),
            realname: c.realname.clone(),
            away: c.away.clone(),
            idle_secs: now
                .saturating_duration_since(c.instant(c.last_said))
                .as_secs(),
            signon: c.opened,
            oper: self.is_oper(whom),
            rooms,
        })
    }

    /// Whether `sender` must be told, having reached `recipient`, that it is away: if it
    /// is, unless it is the sender itself.
    fn away_reply(&self, sender: ConnId, recipient: ConnId) -> Option<Away> {
        let c = self.conns.get(&recipient)?;
        (recipient != sender && !c.away.is_empty()).then(|| Away {
            nick: c.nick.clone(),
            message: c.away.clone(),
        })
    }

    /// How `id` sent a message: as a notice or not, and whether from an IRC line (which
    /// IRC relays cut to one line rather than split).
    fn sent_by(&self, id: ConnId, notice: bool) -> Sent {
        let from_irc = self.conns.get(&id).is_some_and(|c| c.proto.is_irc());
        Sent::new(notice, from_irc)
    }

    /// Whether, with history on, `id`'s output from its room message on waits until the
    /// store has the message: native clients' echo promises it is stored (PROTOCOL.md,
    /// Durability); IRC promises nothing of the kind, so its clients wait for nothing.
    pub(crate) fn echo_waits_for_store(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| !c.proto.is_irc())
    }

    /// Whether `id` gets a copy of what it says: native clients always (it is their
    /// confirmation), IRC clients only with `echo-message`.
    pub(crate) fn echoes(&self, id: ConnId) -> bool {
        match self.conns.get(&id).map(|c| &c.proto) {
            Some(Proto::Irc(s)) => s.caps & super::irc::session::cap::ECHO_MESSAGE != 0,
            _ => true,
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
        self.nick_free(id, nick)?;
        self.cluster_claim(id, nick)?;
        self.registry
            .claim_nick(nick, id)
            .map_err(|code| fail(code, nick, format!("nick `{nick}` is taken")))?;
        if self.conns.change(id, |c| c.phase = Phase::Ready).is_none() {
            return Ok(());
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.nick = nick.to_owned();
        conn.user = user.to_owned();
        conn.realname = realname.to_owned();
        self.events.push_back(super::Event::Registered {
            conn: id,
            nick: nick.to_owned(),
        });
        self.schedule(id);
        self.cluster_signed_in(id);
        Ok(())
    }

    /// Joins a room (creating it, with the joiner as operator); returns its key.
    ///
    /// Checks, first failure wins: the name, already in it, the per-connection room limit,
    /// then the room's rules: ban (`b`), invite-only (`i`), key (`k`), member limit (`l`).
    /// An invitation passes all four rule checks.
    pub(crate) fn join(
        &mut self,
        id: ConnId,
        room: &str,
        given_key: &str,
        now: Instant,
    ) -> Outcome<String> {
        self.check_room(room)?;
        let key = fold(room);
        let max_rooms = self.config.max_rooms_per_conn as usize;
        let source = self.source(id);
        let in_room = self.conns.get(&id).is_some_and(|c| c.rooms.contains(&key));
        #[cfg(feature = "planted-bugs")]
        let key_checked = !self.planted_skips_key(id);
        #[cfg(not(feature = "planted-bugs"))]
        let key_checked = true;
        if let (Some(r), false) = (self.registry.room(&key), in_room) {
            let name = r.name.clone();
            if !r.invited.contains(&id) {
                let refused = if r.is_banned(&source) {
                    Some((ErrorCode::Banned, "you are banned from"))
                } else if r.invite_only && !r.is_invite_exempt(&source) {
                    Some((ErrorCode::InviteOnlyRoom, "an invitation is needed to join"))
                } else if !r.key.is_empty() && r.key != given_key && key_checked {
                    Some((ErrorCode::BadRoomKey, "the right key is needed to join"))
                } else if r.limit > 0 && r.members.len() >= r.limit as usize {
                    Some((ErrorCode::RoomFull, "no room left in"))
                } else {
                    None
                };
                if let Some((code, why)) = refused {
                    return Err(fail(code, room, format!("{why} `{name}`")));
                }
            }
        }
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
        conn.add_room(key.clone());
        let nick = conn.nick.clone();
        let away = !conn.away.is_empty();
        let created = self.registry.room(&key).is_none();
        self.registry.join(&key, room, id, now);
        if created {
            self.history_restore(&key);
        }
        let Some(r) = self.registry.room(&key) else {
            return Ok(key);
        };
        let (name, flags) = (r.name.clone(), r.flags(id));
        let (stamp, stamp_node) = r.topic_stamp.clone();
        self.cluster_emit(id, |user| Kind::Join {
            user,
            room: name.clone(),
            flags,
            stamp,
            stamp_node,
        });
        let joined = ServerPacket::Joined { room: name, nick };
        self.relay_join(id, &key, &joined, &source);
        if away {
            // away-notify: members learn at once that the joiner is away.
            self.relay_away(id, Some(&key));
        }
        Ok(key)
    }

    /// Tells room `key`'s members, the joiner `id` included, that it joined (local or
    /// remote joiner alike).
    pub(crate) fn relay_join(
        &mut self,
        id: ConnId,
        key: &str,
        joined: &ServerPacket,
        source: &str,
    ) {
        let real = self
            .conns
            .get(&id)
            .map(|c| c.realname.clone())
            .unwrap_or_default();
        let mut fan = Fanout::of_text(Notice::Join(joined, &real), source);
        self.relay_room(key, &mut fan, None);
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
                    conn.remove_room(&key);
                }
                return Ok(());
            }
            self.relay_room(&key, &mut Fanout::new(&left, &source), None);
            self.cluster_emit(id, |user| Kind::Part {
                user,
                room: room.to_owned(),
                reason: reason.to_owned(),
            });
        }
        self.registry.leave(&key, id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.remove_room(&key);
        }
        Ok(())
    }

    /// Whether `id` may speak in `room`: its key if so.
    pub(crate) fn speak_check(&self, id: ConnId, room: &str) -> Outcome<String> {
        // Without mode `n` non-members may speak to a room, so the room must exist; with
        // it (the default) a non-member gets `NotInRoom`, as it always did.
        let key = match self.room_key(room) {
            Ok(key) => key,
            Err(_) => self.member_key(id, room)?,
        };
        let member = self.registry.room(&key).is_some_and(|r| r.is_member(id));
        let Some(r) = self.registry.room(&key) else {
            return Err(fail(
                ErrorCode::NoSuchRoom,
                room,
                format!("no room `{room}`"),
            ));
        };
        if !member && r.no_outside {
            self.member_key(id, room)?;
        }
        // Only ban masks need the source: a room without them does not build it.
        let source = if r.bans.is_empty() {
            String::new()
        } else {
            self.source(id)
        };
        let source = source.as_str();
        #[cfg(feature = "planted-bugs")]
        let heard = r.may_speak(id, source) || self.planted_ban_ignored(id, r);
        #[cfg(not(feature = "planted-bugs"))]
        let heard = r.may_speak(id, source);
        if !heard {
            return Err(fail(
                ErrorCode::CannotSpeak,
                room,
                format!("the rules of `{}` do not let you speak there", r.name),
            ));
        }
        Ok(key)
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
        let key = self.speak_check(id, room)?;
        let member = self.registry.room(&key).is_some_and(|r| r.is_member(id));
        self.history_ready(room)?;
        let from = self.nick(id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_said = conn.stamp(now);
        }
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(());
        };
        r.seq += 1;
        let seq = r.seq;
        let message = ServerPacket::Message {
            room: r.name.clone(),
            from,
            seq: r.seq,
            text,
        };
        let time_ms = self
            .history_append(id, &key, &message, notice, now)
            .or_else(|| self.wall_ms(now));
        let sent = self.sent_by(id, notice);
        if let ServerPacket::Message { room, text, .. } = &message {
            self.cluster_emit(id, |user| Kind::Say {
                user,
                room: room.clone(),
                text: text.clone(),
                notice,
                from_irc: sent.from_irc,
            });
        }
        let msgid = MsgId::Room(&key, seq);
        let mut fan = self.message_fan(&message, id, sent, time_ms, msgid);
        self.relay_message(&key, &mut fan, id, member);
        #[cfg(feature = "planted-bugs")]
        self.planted_say(id, &key, &mut fan);
        Ok(())
    }

    /// Sends a direct message; returns the recipient and, unless it is a notice (which
    /// never triggers an automatic reply), whether to tell the sender it is away.
    pub(crate) fn whisper(
        &mut self,
        id: ConnId,
        to: &str,
        text: String,
        notice: bool,
        now: Instant,
    ) -> Outcome<Reached> {
        self.check_text(&text)?;
        let Some(target) = self.registry.find_nick(to) else {
            return Err(fail(
                ErrorCode::NoSuchNick,
                to,
                format!("no one is called `{to}`"),
            ));
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_said = conn.stamp(now);
        }
        let direct = ServerPacket::Direct {
            from: self.nick(id),
            to: self.nick(target),
            text,
        };
        let sent = self.sent_by(id, notice);
        if self.conns.get(&target).is_some_and(|c| c.remote) {
            if let ServerPacket::Direct { to, text, .. } = &direct {
                self.cluster_emit(id, |user| Kind::Whisper {
                    user,
                    to: to.clone(),
                    text: text.clone(),
                    notice,
                    from_irc: sent.from_irc,
                });
            }
        }
        let time_ms = self.wall_ms(now);
        let msgid = MsgId::Text(self.direct_msgid(time_ms));
        let mut fan = self.message_fan(&direct, id, sent, time_ms, msgid);
        self.deliver_direct(target, &mut fan, id);
        let away = if notice {
            None
        } else {
            self.away_reply(id, target)
        };
        Ok(Reached { target, away })
    }

    /// The fan-out of a room or direct message from `sender`, on this node or another:
    /// shown as it was sent, stamped with its time and msgid, with the sender's client
    /// tags (IRC). The one builder for local and remote messages.
    ///
    /// Its IRC source and msgid are built only if an IRC connection gets it.
    pub(crate) fn message_fan<'a>(
        &self,
        message: &'a ServerPacket,
        sender: ConnId,
        sent: Sent,
        time_ms: Option<u64>,
        msgid: MsgId<'a>,
    ) -> Fanout<'a> {
        let mut fan = Fanout::from_conn(message, sender);
        fan.notice = sent.notice;
        fan.from_irc = sent.from_irc;
        fan.time_ms = time_ms;
        fan.msgid = Some(msgid);
        fan.client_tags = self.irc_client_tags(sender);
        fan
    }

    /// Relays a room message to the members of room `key`, and to its sender if it gets
    /// an echo (see `echoes`); `member`: the sender sits in the room.
    pub(crate) fn relay_message(
        &mut self,
        key: &str,
        fan: &mut Fanout<'_>,
        sender: ConnId,
        member: bool,
    ) {
        let echo = self.echoes(sender);
        self.relay_room(key, fan, (!echo).then_some(sender));
        if echo && !member {
            // Members get their copy from the relay.
            self.conns.deliver(sender, fan);
        }
    }

    /// Delivers a direct message to `target`, and to its sender if it gets an echo.
    pub(crate) fn deliver_direct(&mut self, target: ConnId, fan: &mut Fanout<'_>, sender: ConnId) {
        self.conns.deliver(target, fan);
        if self.echoes(sender) {
            if target != sender {
                self.conns.deliver(sender, fan);
            } else {
                self.irc_echo_to_self(sender, fan);
            }
        }
    }

    /// Changes nickname; the changer and everyone sharing a room with it hear once.
    pub(crate) fn change_nick(&mut self, id: ConnId, nick: &str) -> Outcome {
        self.check_nick(nick)?;
        let old = self.nick(id);
        if old == nick {
            return Ok(());
        }
        self.nick_free(id, nick)?;
        self.cluster_claim(id, nick)?;
        self.registry
            .claim_nick(nick, id)
            .map_err(|code| fail(code, nick, format!("nick `{nick}` is taken")))?;
        if fold(&old) != fold(nick) {
            self.registry.release_nick(&old, id);
            if let Some(c) = self.conns.get(&id) {
                let (user, realname) = (c.user().to_owned(), c.realname.clone());
                self.registry.remember(&old, &user, &realname);
            }
        }
        let source = self.source(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.nick = nick.to_owned();
        self.cluster_renamed(id, &old, nick);
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        let mut recipients = vec![id];
        for key in &conn.rooms {
            if let Some(room) = self.registry.room(key) {
                recipients.extend_from_slice(&room.members);
            }
        }
        recipients.sort();
        recipients.dedup();
        self.events.push_back(super::Event::NickChanged {
            conn: id,
            old: old.clone(),
            new: nick.to_owned(),
        });
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
    pub(crate) fn set_topic(
        &mut self,
        id: ConnId,
        room: &str,
        topic: &str,
        now: Instant,
    ) -> Outcome {
        self.check_reason(topic, self.config.max_topic_len)?;
        let key = self.member_key(id, room)?;
        let source = self.source(id);
        let by = self.nick(id);
        let stamp = self.cluster_topic_stamp();
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
        r.topic_at = now;
        let version = stamp.0;
        r.topic_stamp = stamp;
        let notice = ServerPacket::Topic {
            room: r.name.clone(),
            topic: topic.to_owned(),
            by,
        };
        self.relay_room(&key, &mut Fanout::new(&notice, &source), None);
        self.cluster_emit(id, |user| Kind::Topic {
            user,
            room: room.to_owned(),
            topic: topic.to_owned(),
            stamp: version,
        });
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
        if let ServerPacket::Kicked { nick, .. } = &kicked {
            self.cluster_emit(id, |user| Kind::Kick {
                user,
                room: room.to_owned(),
                nick: nick.clone(),
                reason: reason.to_owned(),
            });
        }
        self.registry.leave(&key, target);
        if let Some(conn) = self.conns.get_mut(&target) {
            conn.remove_room(&key);
        }
        Ok(())
    }

    /// Sets or clears a room mode or rule; operators only. A change that changes nothing
    /// is quiet.
    pub(crate) fn set_room_mode(
        &mut self,
        id: ConnId,
        room: &str,
        change: Change,
        on: bool,
    ) -> Outcome {
        if let Some((key, notice)) = self.apply_room_mode(id, room, change, on)? {
            self.relay_changes(id, &key, std::slice::from_ref(&notice));
        }
        Ok(())
    }

    /// Tells room `key`'s members the changes one mode request of `id` made (from
    /// [`Server::apply_room_mode`]).
    pub(crate) fn relay_changes(&mut self, id: ConnId, key: &str, changes: &[ServerPacket]) {
        if !changes.is_empty() {
            self.relay_room(key, &mut Fanout::of(Notice::Modes(changes), id), None);
        }
    }

    /// The rule of [`Server::set_room_mode`] without the relay: the room key and the
    /// notice to relay, if anything changed (IRC relays several changes as one MODE line).
    ///
    /// Checks: the room exists, the requester is its operator, then a mode's member
    /// (`NoSuchNick`, `TargetNotInRoom`) or a rule's argument: a key is 1 to 23 bytes
    /// without spaces, commas or control characters; a limit is a number from 1 to
    /// 65,535; a mask is 1 to 100 bytes without spaces or control characters and gets
    /// `!*@*` or `@*` added when it lacks them. At most 100 bans and 100 exemptions.
    pub(crate) fn apply_room_mode(
        &mut self,
        id: ConnId,
        room: &str,
        change: Change,
        on: bool,
    ) -> Outcome<Option<(String, ServerPacket)>> {
        let key = self.operator_key(id, room)?;
        let change = self.check_change(&key, room, change, on)?;
        let by = self.nick(id);
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(None);
        };
        if !change.apply(r, on)? {
            return Ok(None);
        }
        let name = r.name.clone();
        let (room, letter) = (name.clone(), change.letter());
        match &change {
            Change::Mode { nick, .. } => {
                let nick = nick.clone();
                self.cluster_emit(id, |user| Kind::Mode {
                    user,
                    room,
                    letter,
                    on,
                    nick,
                })
            }
            Change::Rule { arg, .. } => {
                let arg = arg.clone();
                self.cluster_emit(id, |user| Kind::Rule {
                    user,
                    room,
                    letter,
                    on,
                    arg,
                })
            }
        }
        Ok(Some((key, change.notice(name, by, on))))
    }

    /// A change as asked, checked against room `key`: a mode's member found (and named as
    /// it holds its nick), a rule's argument valid and completed (see
    /// [`Server::apply_room_mode`]).
    fn check_change(&self, key: &str, room: &str, change: Change, on: bool) -> Outcome<Change> {
        match change {
            Change::Mode { mode, nick, .. } if mode.takes_nick() => {
                let target = self.target_in(key, room, &nick)?;
                Ok(Change::Mode {
                    mode,
                    nick: self.nick(target),
                    target: Some(target),
                })
            }
            Change::Mode { mode, .. } => Ok(Change::Mode {
                mode,
                nick: String::new(),
                target: None,
            }),
            Change::Rule { rule, arg } => {
                let bad = |what: &str| {
                    Err(fail(
                        ErrorCode::InvalidText,
                        &arg,
                        format!("invalid {what} `{arg}`"),
                    ))
                };
                let arg = match rule {
                    RoomRule::Key if on => {
                        if arg.is_empty()
                            || arg.len() > 23
                            || arg.bytes().any(|b| b <= b' ' || b == b',' || b == 0x7f)
                        {
                            return bad("key: 1 to 23 bytes, no spaces or commas");
                        }
                        arg
                    }
                    RoomRule::Limit if on => match arg.parse::<u32>() {
                        Ok(n) if (1..=65_535).contains(&n) => n.to_string(),
                        _ => return bad("limit: a number from 1 to 65535"),
                    },
                    RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => {
                        if arg.is_empty() || arg.len() > 100 || arg.bytes().any(|b| b <= b' ') {
                            return bad("mask: 1 to 100 bytes, no spaces");
                        }
                        full_mask(&arg)
                    }
                    _ => String::new(),
                };
                Ok(Change::Rule { rule, arg })
            }
        }
    }

    /// Invites a user into a room: the inviter must be in it (and its operator under `i`),
    /// the invitee must exist and not be in it. The invitation lasts until it joins.
    pub(crate) fn invite(&mut self, id: ConnId, room: &str, nick: &str) -> Outcome<Reached> {
        let Some(target) = self.registry.find_nick(nick) else {
            return Err(fail(
                ErrorCode::NoSuchNick,
                nick,
                format!("no one is called `{nick}`"),
            ));
        };
        let key = self.room_key(room)?;
        self.member_key(id, room)?;
        let source = self.source(id);
        let by = self.nick(id);
        let target_nick = self.nick(target);
        let away = self.away_reply(id, target);
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(Reached { target, away });
        };
        if r.invite_only && !r.is_operator(id) {
            return Err(fail(
                ErrorCode::NotOperator,
                room,
                format!("only operators may invite to `{}`", r.name),
            ));
        }
        if r.is_member(target) {
            return Err(fail(
                ErrorCode::TargetInRoom,
                nick,
                format!("`{target_nick}` is already in `{}`", r.name),
            ));
        }
        if !r.invited.contains(&target) {
            // Invitees who never join (or leave the server) are not removed one by one:
            // the list keeps the latest 100.
            if r.invited.len() >= 100 {
                r.invited.remove(0);
            }
            r.invited.push(target);
        }
        let invited = ServerPacket::Invited {
            room: r.name.clone(),
            by,
            nick: target_nick,
        };
        self.conns
            .deliver(target, &mut Fanout::new(&invited, &source));
        // The room's other operators see it too (IRC's invite-notify).
        let mut fan = Fanout::of_text(Notice::InviteNotify(&invited), &source);
        let ops = self.registry.room(&key).map(|r| r.operators.clone());
        for op in ops.unwrap_or_default() {
            if op != id && op != target {
                self.conns.deliver(op, &mut fan);
            }
        }
        Ok(Reached { target, away })
    }

    /// Sets (or, with an empty message, clears) the connection's away message.
    pub(crate) fn set_away(&mut self, id: ConnId, message: &str) -> Outcome {
        self.check_reason(message, self.config.max_reason_len)?;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.away = message.to_owned();
        }
        self.cluster_emit(id, |user| Kind::Away {
            user,
            message: message.to_owned(),
        });
        self.relay_away(id, None);
        Ok(())
    }

    /// Tells those sharing a room with `id` (or only room `key`'s members) its away status.
    pub(crate) fn relay_away(&mut self, id: ConnId, key: Option<&str>) {
        let away = self
            .conns
            .get(&id)
            .map(|c| c.away.clone())
            .unwrap_or_default();
        let mut fan = Fanout::of(Notice::Away(&away), id);
        match key {
            Some(key) => self.relay_room(key, &mut fan, Some(id)),
            None => {
                for peer in self.peers(id) {
                    if peer != id {
                        self.conns.deliver(peer, &mut fan);
                    }
                }
            }
        }
    }

    /// Everyone sharing a room with `id`, in id order, once each.
    pub(crate) fn peers(&self, id: ConnId) -> Vec<ConnId> {
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

    /// Sets the connection's real name (the reason rules); it and everyone sharing a room
    /// with it are told.
    pub(crate) fn set_realname(&mut self, id: ConnId, name: &str) -> Outcome {
        let max = self.config.max_reason_len;
        self.check_reason(name, max).map_err(|f| Fail {
            message: format!("A real name is at most {max} bytes without NUL, CR or LF"),
            ..f
        })?;
        if let Some(c) = self.conns.get_mut(&id) {
            c.realname = name.to_owned();
        }
        let mut fan = Fanout::of(Notice::RealName(name), id);
        let mut peers = self.peers(id);
        if !peers.contains(&id) {
            peers.push(id);
        }
        for peer in peers {
            self.conns.deliver(peer, &mut fan);
        }
        Ok(())
    }

    /// Ends the session at the client's request.
    pub(crate) fn quit(&mut self, id: ConnId, reason: &str) {
        let reason = crate::line::cut(reason, self.config.max_reason_len as usize);
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

/// A ban mask completed to `nick!user@host` form: `bob` is `bob!*@*`, `bob!x` is `bob!x@*`.
fn full_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.to_owned(),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("{mask}!*@*"),
    }
}
