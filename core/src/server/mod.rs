//! The server state machine: connections in, frames and events out.
//!
//! Feed it with [`Server::handle_input`], [`Server::handle_close`] and
//! [`Server::handle_timeout`]; drain it with [`Server::poll_transmit`] (or
//! [`Server::poll_pending`] and [`Server::take_transmit`]), [`Server::poll_close`],
//! [`Server::poll_event`] and [`Server::poll_timeout`].

mod conn;
#[cfg(feature = "planted-bugs")]
mod planted;
mod rooms;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::name::{fold, validate_nick, validate_reason, validate_room, validate_text};
use crate::packet::{ClientPacket, Packet, RoomInfo, ServerPacket, PROTOCOL_VERSION};
use crate::{Config, ConnId, DecodeError, ErrorCode};
use conn::{Conn, Phase};
#[cfg(feature = "planted-bugs")]
pub use planted::PlantedBug;
use rooms::Registry;

/// Output for one connection: whole frames, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection to write to.
    pub conn: ConnId,
    /// The bytes to write, in order.
    pub data: Bytes,
}

/// Something that happened, for logging and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection completed its hello.
    Registered {
        /// The connection.
        conn: ConnId,
        /// Its nickname.
        nick: String,
    },
    /// A connection ended: the core closed it or the adapter reported it gone.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        code: ErrorCode,
        /// Why, for humans.
        reason: String,
    },
}

/// The chat server: every protocol rule, no I/O.
#[derive(Debug)]
pub struct Server {
    config: Config,
    next_id: u64,
    next_ping: u64,
    conns: HashMap<ConnId, Conn>,
    registry: Registry,
    /// Connections with output queued since they were last reported.
    pending: VecDeque<ConnId>,
    /// Connections that overflowed their output limit during the current operation.
    overflowed: Vec<ConnId>,
    /// Connections the core has decided to close, not yet polled.
    closing: VecDeque<ConnId>,
    events: VecDeque<Event>,
    /// Keepalive deadlines; an entry is live only while it equals its connection's `timer`.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// The deliberate bug switched on by the simulation tests, if any.
    #[cfg(feature = "planted-bugs")]
    planted: Option<PlantedBug>,
}

impl Server {
    /// A server with the given limits.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            next_id: 1,
            next_ping: 1,
            conns: HashMap::new(),
            registry: Registry::default(),
            pending: VecDeque::new(),
            overflowed: Vec::new(),
            closing: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            #[cfg(feature = "planted-bugs")]
            planted: None,
        }
    }

    /// Switches on a deliberately wrong behaviour (test builds with `planted-bugs` only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Registers a new connection; it must send a hello within `hello_timeout`.
    pub fn open(&mut self, now: Instant) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns
            .insert(id, Conn::new(now, self.config.max_frame_len));
        self.schedule(id);
        id
    }

    /// Feeds bytes received from a connection.
    pub fn handle_input(&mut self, id: ConnId, mut input: &[u8], now: Instant) {
        match self.conns.get_mut(&id) {
            Some(conn) if conn.phase != Phase::Closing => {
                if !input.is_empty() {
                    conn.last_rx = now;
                    // An answered ping moves the deadline from the idle timeout back to the
                    // next ping, which can be earlier than the timer now armed.
                    if std::mem::take(&mut conn.ping_sent) {
                        self.schedule(id);
                    }
                }
            }
            _ => return,
        }
        // Every whole frame of this input is handled before returning.
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.phase == Phase::Closing {
                return;
            }
            let seq = conn.requests.wrapping_add(1);
            let decoded = match conn.decoder.decode(&mut input) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    conn.requests = seq;
                    ClientPacket::decode(frame.type_code, frame.payload)
                        .map_err(|e| (frame.type_code, e))
                }
                Err(e) => Err((0, e)),
            };
            match decoded {
                Ok(packet) => self.handle_packet(id, seq, packet, now),
                Err((request_type, e)) => self.violation(id, request_type, seq, e),
            }
            self.close_overflowed();
        }
    }

    /// Reports that a connection's transport is gone (peer closed, I/O error, or the adapter
    /// finished closing it). Frees everything the connection held.
    pub fn handle_close(&mut self, id: ConnId, _now: Instant) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.phase != Phase::Closing {
            self.depart(id, "connection lost");
            self.events.push_back(Event::Closed {
                conn: id,
                code: ErrorCode::ConnectionLost,
                reason: "connection lost".into(),
            });
        }
        self.conns.remove(&id);
        self.close_overflowed();
    }

    /// Reports that `bytes` of handed-out output reached the socket.
    pub fn handle_written(&mut self, id: ConnId, bytes: usize) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.in_flight = conn.in_flight.saturating_sub(bytes);
        }
    }

    /// Runs keepalive: pings silent connections and closes those silent too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.timer != Some(at) {
                continue;
            }
            conn.timer = None;
            let silent = now.saturating_duration_since(conn.last_rx);
            match conn.phase {
                Phase::Closing => continue,
                Phase::Hello => {
                    if now.saturating_duration_since(conn.opened) >= self.config.hello_timeout {
                        self.close(id, ErrorCode::Timeout, "no hello in time", "");
                        continue;
                    }
                }
                Phase::Ready => {
                    if silent >= self.config.idle_timeout {
                        self.close(id, ErrorCode::Timeout, "idle timeout", "ping timeout");
                        continue;
                    }
                    if silent >= self.config.ping_interval && !conn.ping_sent {
                        conn.ping_sent = true;
                        let token = self.next_ping;
                        self.next_ping += 1;
                        self.send_packet(id, &ServerPacket::Ping { token });
                    }
                }
            }
            self.schedule(id);
        }
        self.close_overflowed();
    }

    /// Closes every connection with a bye; the adapter should stop accepting.
    pub fn shutdown(&mut self, _now: Instant) {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.close(
                id,
                ErrorCode::Shutdown,
                "server shutting down",
                "server shutting down",
            );
        }
        self.close_overflowed();
    }

    /// The next connection with output queued since it was last returned here.
    ///
    /// It may have no output left if [`Server::take_transmit`] already took it.
    pub fn poll_pending(&mut self) -> Option<ConnId> {
        while let Some(id) = self.pending.pop_front() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.pending = false;
                return Some(id);
            }
        }
        None
    }

    /// Takes the queued output of one connection (up to `max_transmit_bytes`).
    ///
    /// The bytes count against the connection's outbound limit until reported with
    /// [`Server::handle_written`].
    pub fn take_transmit(&mut self, id: ConnId) -> Option<Transmit> {
        let max = self.config.max_transmit_bytes;
        let conn = self.conns.get_mut(&id)?;
        let data = conn.take_batch(max)?;
        if !conn.out.is_empty() && !conn.pending {
            conn.pending = true;
            self.pending.push_back(id);
        }
        Some(Transmit { conn: id, data })
    }

    /// The next batch of output for any connection.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(id) = self.poll_pending() {
            if let Some(t) = self.take_transmit(id) {
                return Some(t);
            }
        }
        None
    }

    /// The next connection the core wants closed.
    ///
    /// The adapter writes what [`Server::take_transmit`] still yields for it (ending with
    /// a bye), within `close_linger`, closes the socket and calls [`Server::handle_close`].
    pub fn poll_close(&mut self) -> Option<ConnId> {
        while let Some(id) = self.closing.pop_front() {
            if self.conns.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The next event for logging.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop dead entries on top so the answer is a real deadline.
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.conns.get(&id).is_some_and(|c| c.timer == Some(at)) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Open connections, including those closing.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.registry.room_count()
    }

    /// Nicknames held.
    pub fn nick_count(&self) -> usize {
        self.registry.nick_count()
    }

    /// Every room and its member count, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.registry.list()
    }

    /// The nicknames in a room, in join order.
    pub fn room_members(&self, room: &str) -> Option<Vec<String>> {
        let room = self.registry.room(&fold(room))?;
        Some(room.members.iter().map(|m| self.nick(*m)).collect())
    }

    /// The nickname a connection holds.
    pub fn nick_of(&self, id: ConnId) -> Option<&str> {
        self.conns
            .get(&id)
            .filter(|c| c.phase == Phase::Ready)
            .map(|c| c.nick.as_str())
    }

    /// The connection holding a nickname.
    pub fn conn_of(&self, nick: &str) -> Option<ConnId> {
        self.registry.find_nick(nick)
    }

    /// The display names of the rooms a connection sits in, in join order.
    pub fn rooms_of(&self, id: ConnId) -> Vec<String> {
        let Some(conn) = self.conns.get(&id) else {
            return Vec::new();
        };
        conn.rooms
            .iter()
            .filter_map(|k| self.registry.room(k).map(|r| r.name.clone()))
            .collect()
    }

    /// Output bytes a connection holds: queued plus handed out and not yet written.
    pub fn outbound_bytes(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.queued + c.in_flight)
    }

    /// Bytes of a partial input frame a connection holds.
    pub fn inbound_bytes(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.decoder.buffered())
    }

    fn nick(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map(|c| c.nick.clone())
            .unwrap_or_default()
    }

    /// Puts the connection's keepalive deadline in the heap if it is earlier than its entry.
    fn schedule(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let deadline = match conn.phase {
            Phase::Closing => return,
            Phase::Hello => conn.opened + self.config.hello_timeout,
            Phase::Ready if conn.ping_sent => conn.last_rx + self.config.idle_timeout,
            Phase::Ready => conn.last_rx + self.config.ping_interval,
        };
        if conn.timer.is_none_or(|t| deadline < t) {
            conn.timer = Some(deadline);
            self.timers.push(Reverse((deadline, id)));
        }
    }

    /// Queues a frame for one connection, enforcing its outbound limit.
    fn send(&mut self, id: ConnId, frame: Bytes) {
        enqueue(
            &mut self.conns,
            &mut self.pending,
            &mut self.overflowed,
            self.config.max_outbound_bytes,
            id,
            frame,
        );
    }

    fn send_packet(&mut self, id: ConnId, packet: &ServerPacket) {
        self.send(id, packet.to_frame());
    }

    /// Queues one encoded frame to every member of a room.
    fn broadcast(&mut self, room_key: &str, frame: &Bytes) {
        let Some(room) = self.registry.room(room_key) else {
            return;
        };
        for &member in &room.members {
            enqueue(
                &mut self.conns,
                &mut self.pending,
                &mut self.overflowed,
                self.config.max_outbound_bytes,
                member,
                frame.clone(),
            );
        }
    }

    fn error(&mut self, id: ConnId, code: ErrorCode, request_type: u8, seq: u32, msg: String) {
        self.send_packet(
            id,
            &ServerPacket::Error {
                code,
                request_type,
                request_seq: seq,
                message: msg,
            },
        );
    }

    /// A peer broke the framing or packet rules: tell it why and close it.
    fn violation(&mut self, id: ConnId, request_type: u8, seq: u32, e: DecodeError) {
        let msg = e.to_string();
        self.error(id, e.code(), request_type, seq, msg.clone());
        self.close(id, e.code(), &msg, "protocol error");
    }

    /// Closes connections that exceeded their outbound limit; closing may overflow others.
    fn close_overflowed(&mut self) {
        while let Some(id) = self.overflowed.pop() {
            self.close(
                id,
                ErrorCode::SlowConsumer,
                "output limit exceeded",
                "slow consumer",
            );
        }
    }

    /// Decides to close a connection: it leaves every room, its nick is freed and a bye is
    /// its last output. `left_reason` is what its rooms are told.
    fn close(&mut self, id: ConnId, code: ErrorCode, reason: &str, left_reason: &str) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        if code == ErrorCode::SlowConsumer {
            // What it did not read is stale; only the bye is worth sending.
            conn.out.clear();
            conn.queued = 0;
        }
        self.depart(id, left_reason);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.phase = Phase::Closing;
        conn.timer = None;
        // The bye bypasses the limit: it is one small frame and the last.
        let bye = ServerPacket::Bye {
            code,
            reason: reason.to_owned(),
        }
        .to_frame();
        conn.queued += bye.len();
        conn.out.push_back(bye);
        if !conn.pending {
            conn.pending = true;
            self.pending.push_back(id);
        }
        self.closing.push_back(id);
        self.events.push_back(Event::Closed {
            conn: id,
            code,
            reason: reason.to_owned(),
        });
    }

    /// Removes a connection from every room (telling the others) and frees its nick.
    fn depart(&mut self, id: ConnId, reason: &str) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase != Phase::Ready {
            return;
        }
        let rooms = std::mem::take(&mut conn.rooms);
        let nick = std::mem::take(&mut conn.nick);
        conn.phase = Phase::Hello;
        for key in rooms {
            self.registry.leave(&key, id);
            if let Some(room) = self.registry.room(&key) {
                let frame = ServerPacket::Left {
                    room: room.name.clone(),
                    nick: nick.clone(),
                    reason: reason.to_owned(),
                }
                .to_frame();
                self.broadcast(&key, &frame);
            }
        }
        self.registry.release_nick(&nick, id);
    }

    fn handle_packet(&mut self, id: ConnId, seq: u32, packet: ClientPacket, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let request_type = packet.type_code();
        // Flood control counts every request but pongs and quits, which only end things.
        if !matches!(
            packet,
            ClientPacket::Pong { .. } | ClientPacket::Quit { .. }
        ) {
            if conn
                .limiter
                .allow(now, self.config.msg_rate, self.config.msg_burst)
            {
                conn.strikes = 0;
            } else {
                conn.strikes += 1;
                if conn.strikes >= self.config.flood_strikes {
                    self.close(id, ErrorCode::Flooding, "flooding", "flooding");
                } else {
                    self.error(
                        id,
                        ErrorCode::RateLimited,
                        request_type,
                        seq,
                        "rate limit exceeded; request dropped".into(),
                    );
                }
                return;
            }
        }
        let phase = conn.phase;
        let result = match (phase, packet) {
            (Phase::Hello, ClientPacket::Hello { version, nick }) => {
                self.hello(id, version, nick, now)
            }
            (Phase::Hello, ClientPacket::Quit { reason }) => self.quit(id, &reason),
            (Phase::Hello, ClientPacket::Pong { .. }) => Ok(()),
            (Phase::Hello, _) => Err((ErrorCode::HelloRequired, "say hello first".to_owned())),
            (_, ClientPacket::Hello { .. }) => Err((
                ErrorCode::AlreadyRegistered,
                "hello was already accepted".to_owned(),
            )),
            (_, ClientPacket::Join { room }) => self.join(id, &room),
            (_, ClientPacket::Leave { room, reason }) => self.leave(id, &room, &reason),
            (_, ClientPacket::Say { room, text }) => self.say(id, &room, text),
            (_, ClientPacket::Whisper { to, text }) => self.whisper(id, &to, text),
            (_, ClientPacket::Nick { nick }) => self.change_nick(id, nick),
            (_, ClientPacket::ListRooms) => {
                self.list_rooms(id);
                Ok(())
            }
            (_, ClientPacket::ListMembers { room }) => self.list_members(id, &room),
            (_, ClientPacket::Ping { token }) => {
                self.send_packet(id, &ServerPacket::Pong { token });
                Ok(())
            }
            (_, ClientPacket::Pong { .. }) => Ok(()),
            (_, ClientPacket::Quit { reason }) => self.quit(id, &reason),
        };
        if let Err((code, msg)) = result {
            self.error(id, code, request_type, seq, msg);
            if code == ErrorCode::UnsupportedVersion {
                self.close(id, code, "unsupported protocol version", "");
            }
        }
    }

    fn hello(&mut self, id: ConnId, version: u16, nick: String, now: Instant) -> Outcome {
        if version != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!(
                    "version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
        self.check_nick(&nick)?;
        self.registry
            .claim_nick(&nick, id)
            .map_err(|code| (code, format!("nick `{nick}` is taken")))?;
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.phase = Phase::Ready;
        conn.nick = nick.clone();
        conn.last_rx = now;
        self.send_packet(
            id,
            &ServerPacket::Welcome {
                version: PROTOCOL_VERSION,
                nick: nick.clone(),
                limits: self.config.limits(),
            },
        );
        self.events.push_back(Event::Registered { conn: id, nick });
        self.schedule(id);
        Ok(())
    }

    fn check_nick(&self, nick: &str) -> Outcome {
        validate_nick(nick, self.config.max_nick_len as usize).map_err(|code| {
            (
                code,
                format!(
                    "invalid nick `{nick}`: 1 to {} bytes, a letter or one of []\\`^{{}}|_ first, \
                     then letters, digits, - or those",
                    self.config.max_nick_len
                ),
            )
        })
    }

    fn check_room(&self, room: &str) -> Outcome {
        validate_room(room, self.config.max_room_len as usize).map_err(|code| {
            (
                code,
                format!(
                    "invalid room `{room}`: 1 to {} bytes of letters, digits, -, _ or .",
                    self.config.max_room_len
                ),
            )
        })
    }

    fn join(&mut self, id: ConnId, room: &str) -> Outcome {
        self.check_room(room)?;
        let key = fold(room);
        let max_rooms = self.config.max_rooms_per_conn as usize;
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        if conn.rooms.contains(&key) {
            return Err((ErrorCode::AlreadyInRoom, format!("already in `{room}`")));
        }
        if conn.rooms.len() >= max_rooms {
            return Err((
                ErrorCode::TooManyRooms,
                format!("already in {max_rooms} rooms, the most allowed"),
            ));
        }
        conn.rooms.push(key.clone());
        let nick = conn.nick.clone();
        let name = self.registry.join(&key, room, id).name.clone();
        let frame = ServerPacket::Joined {
            room: name.clone(),
            nick,
        }
        .to_frame();
        self.broadcast(&key, &frame);
        self.send_members(id, &key);
        Ok(())
    }

    fn leave(&mut self, id: ConnId, room: &str, reason: &str) -> Outcome {
        self.check_reason(reason)?;
        let key = fold(room);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        let Some(pos) = conn.rooms.iter().position(|k| *k == key) else {
            return Err((ErrorCode::NotInRoom, format!("not in `{room}`")));
        };
        conn.rooms.remove(pos);
        let nick = conn.nick.clone();
        if let Some(r) = self.registry.room(&key) {
            let frame = ServerPacket::Left {
                room: r.name.clone(),
                nick,
                reason: reason.to_owned(),
            }
            .to_frame();
            // Everyone, the leaver included, sees the notice before the membership changes.
            #[cfg(feature = "planted-bugs")]
            if self.planted == Some(PlantedBug::SkipLeaveNotice) {
                self.send(id, frame);
                self.registry.leave(&key, id);
                return Ok(());
            }
            self.broadcast(&key, &frame);
        }
        self.registry.leave(&key, id);
        Ok(())
    }

    fn check_reason(&self, reason: &str) -> Outcome {
        validate_reason(reason, self.config.max_reason_len as usize).map_err(|code| {
            (
                code,
                format!(
                    "reason longer than {} bytes or holding NUL, CR or LF",
                    self.config.max_reason_len
                ),
            )
        })
    }

    fn check_text(&self, text: &str) -> Outcome {
        validate_text(text, self.config.max_text_len as usize).map_err(|code| {
            (
                code,
                format!(
                    "text must be 1 to {} bytes without NUL, CR or LF",
                    self.config.max_text_len
                ),
            )
        })
    }

    fn say(&mut self, id: ConnId, room: &str, text: String) -> Outcome {
        self.check_text(&text)?;
        let key = fold(room);
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        if !conn.rooms.contains(&key) {
            return Err((ErrorCode::NotInRoom, format!("not in `{room}`")));
        }
        let from = conn.nick.clone();
        let Some(r) = self.registry.room_mut(&key) else {
            return Ok(());
        };
        r.seq += 1;
        // Encoded once; every member's queue shares these bytes.
        let frame = ServerPacket::Message {
            room: r.name.clone(),
            from,
            seq: r.seq,
            text,
        }
        .to_frame();
        self.broadcast(&key, &frame);
        #[cfg(feature = "planted-bugs")]
        self.planted_say(id, &key, &frame);
        Ok(())
    }

    /// The planted bugs that act on a room message just broadcast.
    #[cfg(feature = "planted-bugs")]
    fn planted_say(&mut self, sender: ConnId, key: &str, frame: &Bytes) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        match self.planted {
            Some(PlantedBug::DeliverToNonMember) => {
                // The lowest id, so the choice does not depend on hash order.
                let victim = self
                    .conns
                    .iter()
                    .filter(|(id, c)| c.phase == Phase::Ready && !room.members.contains(id))
                    .map(|(id, _)| *id)
                    .min();
                if let Some(victim) = victim {
                    self.send(victim, frame.clone());
                }
            }
            Some(PlantedBug::ReorderMessages) => {
                let is_message = |f: &Bytes| {
                    f.get(crate::packet::LENGTH_PREFIX)
                        == Some(&crate::packet::server_type::MESSAGE)
                };
                for member in room.members.clone().into_iter().chain([sender]) {
                    let Some(conn) = self.conns.get_mut(&member) else {
                        continue;
                    };
                    let n = conn.out.len();
                    if n >= 2 && is_message(&conn.out[n - 1]) && is_message(&conn.out[n - 2]) {
                        conn.out.swap(n - 1, n - 2);
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    fn whisper(&mut self, id: ConnId, to: &str, text: String) -> Outcome {
        self.check_text(&text)?;
        let Some(target) = self.registry.find_nick(to) else {
            return Err((ErrorCode::NoSuchNick, format!("no one is called `{to}`")));
        };
        let frame = ServerPacket::Direct {
            from: self.nick(id),
            to: self.nick(target),
            text,
        }
        .to_frame();
        self.send(target, frame.clone());
        if target != id {
            self.send(id, frame);
        }
        Ok(())
    }

    fn change_nick(&mut self, id: ConnId, nick: String) -> Outcome {
        self.check_nick(&nick)?;
        let old = self.nick(id);
        if old == nick {
            return Ok(());
        }
        self.registry
            .claim_nick(&nick, id)
            .map_err(|code| (code, format!("nick `{nick}` is taken")))?;
        if fold(&old) != fold(&nick) {
            self.registry.release_nick(&old, id);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        conn.nick = nick.clone();
        // Tell each connection that shares a room once, and the changer itself.
        let mut recipients = vec![id];
        for key in &conn.rooms {
            if let Some(room) = self.registry.room(key) {
                recipients.extend_from_slice(&room.members);
            }
        }
        recipients.sort();
        recipients.dedup();
        let frame = ServerPacket::NickChanged { old, new: nick }.to_frame();
        for r in recipients {
            self.send(r, frame.clone());
        }
        Ok(())
    }

    fn list_rooms(&mut self, id: ConnId) {
        let rooms = self.registry.list();
        let budget = self.list_budget(0);
        for (part, last) in chunks(rooms, budget, |r| crate::packet::str_wire_len(&r.name) + 4) {
            self.send_packet(id, &ServerPacket::RoomList { rooms: part, last });
        }
    }

    fn list_members(&mut self, id: ConnId, room: &str) -> Outcome {
        let key = fold(room);
        if self.registry.room(&key).is_none() {
            return Err((ErrorCode::NoSuchRoom, format!("no room `{room}`")));
        }
        self.send_members(id, &key);
        Ok(())
    }

    /// Sends a room's member list to one connection, split to fit the frame limit.
    fn send_members(&mut self, id: ConnId, key: &str) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let name = room.name.clone();
        let nicks: Vec<String> = room.members.iter().map(|m| self.nick(*m)).collect();
        let budget = self.list_budget(crate::packet::str_wire_len(&name));
        for (part, last) in chunks(nicks, budget, |n| crate::packet::str_wire_len(n)) {
            self.send_packet(
                id,
                &ServerPacket::Members {
                    room: name.clone(),
                    nicks: part,
                    last,
                },
            );
        }
    }

    /// Bytes left for list entries in one frame body after the type code, flag, count and
    /// `fixed` bytes of other fields.
    fn list_budget(&self, fixed: usize) -> usize {
        (self.config.max_frame_len as usize).saturating_sub(1 + 1 + 2 + fixed)
    }

    fn quit(&mut self, id: ConnId, reason: &str) -> Outcome {
        self.check_reason(reason)?;
        let left = if reason.is_empty() {
            "quit".to_owned()
        } else {
            format!("quit: {reason}")
        };
        self.close(id, ErrorCode::Quit, "goodbye", &left);
        Ok(())
    }
}

/// A request's failure: the code and a human message.
type Outcome = Result<(), (ErrorCode, String)>;

/// Queues `frame` for `id` unless that would pass the outbound limit, in which case the
/// connection is marked to be closed as a slow consumer.
fn enqueue(
    conns: &mut HashMap<ConnId, Conn>,
    pending: &mut VecDeque<ConnId>,
    overflowed: &mut Vec<ConnId>,
    max_outbound: usize,
    id: ConnId,
    frame: Bytes,
) {
    let Some(conn) = conns.get_mut(&id) else {
        return;
    };
    if conn.phase == Phase::Closing {
        return;
    }
    if conn.queued + conn.in_flight + frame.len() > max_outbound {
        if !overflowed.contains(&id) {
            overflowed.push(id);
        }
        return;
    }
    conn.queued += frame.len();
    conn.out.push_back(frame);
    if !conn.pending {
        conn.pending = true;
        pending.push_back(id);
    }
}

/// Splits `items` into parts whose encoded sizes fit `budget`, each flagged whether last.
/// Always yields at least one part, so an empty list is still answered.
fn chunks<T>(items: Vec<T>, budget: usize, size: impl Fn(&T) -> usize) -> Vec<(Vec<T>, bool)> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut used = 0;
    for item in items {
        let s = size(&item);
        if !part.is_empty() && (used + s > budget || part.len() == u16::MAX as usize) {
            parts.push((std::mem::take(&mut part), false));
            used = 0;
        }
        used += s;
        part.push(item);
    }
    parts.push((part, true));
    parts
}

#[cfg(test)]
mod tests;
