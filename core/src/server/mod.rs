//! The server state machine: connections in, frames and events out.
//!
//! Feed it with [`Server::handle_input`], [`Server::handle_close`],
//! [`Server::handle_written`] and [`Server::handle_timeout`]; drain it with
//! [`Server::poll_transmit`] (or [`Server::poll_pending`] and [`Server::take_transmit`]),
//! [`Server::poll_close`], [`Server::poll_event`] and [`Server::poll_timeout`].
//!
//! Layout: `chat.rs` holds the protocol-independent operations (join, say, kick, ...);
//! `native.rs` and `irc.rs` turn each protocol's requests into those operations and render
//! replies; this file owns connections, output queues, fan-out encoding and timers.

mod chat;
mod conn;
pub(crate) mod irc;
mod limits;
mod native;
#[cfg(feature = "planted-bugs")]
mod planted;
mod rooms;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use bytes::Bytes;

use crate::frame::FrameDecoder;
use crate::name::fold;
use crate::packet::{Member, Packet, RoomInfo, ServerPacket};
use crate::{Config, ConnId, ErrorCode};
use conn::{Conn, Phase, Proto};
pub use limits::Refused;
#[cfg(feature = "planted-bugs")]
pub use planted::PlantedBug;
use rooms::Registry;

/// Output for one connection: whole frames (or lines), concatenated.
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
    /// A connection completed its hello (or IRC registration).
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
    conns: Conns,
    registry: Registry,
    /// Connections the core has decided to close, not yet polled.
    closing: VecDeque<ConnId>,
    events: VecDeque<Event>,
    /// Keepalive deadlines; an entry is live only while it equals its connection's `timer`.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Everyone is being closed: departures are not announced to peers about to go too.
    shutting_down: bool,
    /// Open connections per client address (`open_from`).
    peers: limits::Peers,
    /// The deliberate bug switched on by the simulation tests, if any.
    #[cfg(feature = "planted-bugs")]
    planted: Option<PlantedBug>,
}

/// Connections and their output queues.
#[derive(Debug)]
struct Conns {
    /// Boxed: the map's spare capacity then costs a pointer per slot, not a whole `Conn`.
    map: HashMap<ConnId, Box<Conn>, BuildHasherDefault<IdHasher>>,
    /// Connections with output queued since they were last reported.
    pending: VecDeque<ConnId>,
    /// Connections that overflowed their output limit during the current operation.
    overflowed: Vec<ConnId>,
    max_outbound: usize,
}

impl Conns {
    fn get(&self, id: &ConnId) -> Option<&Conn> {
        self.map.get(id).map(|c| &**c)
    }

    fn get_mut(&mut self, id: &ConnId) -> Option<&mut Conn> {
        self.map.get_mut(id).map(|c| &mut **c)
    }

    /// Queues bytes for one connection unless that would pass its outbound limit, in which
    /// case the connection is marked to be closed as a slow consumer.
    fn send(&mut self, id: ConnId, bytes: Bytes) {
        if let Some(conn) = self.map.get_mut(&id) {
            push(
                conn,
                id,
                bytes,
                self.max_outbound,
                &mut self.pending,
                &mut self.overflowed,
            );
        }
    }

    /// Queues a relayed notice in the connection's own protocol.
    fn deliver(&mut self, id: ConnId, fan: &mut Fanout<'_>) {
        // One lookup per recipient: this is the fan-out hot path.
        let Some(conn) = self.map.get_mut(&id) else {
            return;
        };
        if let Some(bytes) = fan.encoded(conn.proto.is_irc()) {
            push(
                conn,
                id,
                bytes,
                self.max_outbound,
                &mut self.pending,
                &mut self.overflowed,
            );
        }
    }
}

/// Queues bytes on a connection, or marks it overflowed if they would pass `max_outbound`.
fn push(
    conn: &mut Conn,
    id: ConnId,
    bytes: Bytes,
    max_outbound: usize,
    pending: &mut VecDeque<ConnId>,
    overflowed: &mut Vec<ConnId>,
) {
    if conn.phase == Phase::Closing {
        return;
    }
    if conn.queued + conn.in_flight + bytes.len() > max_outbound {
        if !overflowed.contains(&id) {
            overflowed.push(id);
        }
        return;
    }
    conn.queued += bytes.len();
    conn.out.push_back(bytes);
    if !conn.pending {
        conn.pending = true;
        pending.push_back(id);
    }
}

/// Hashes connection ids with one multiplication.
///
/// The ids are assigned by the server, counting up, so no peer can choose them to collide:
/// SipHash's protection is not needed on the fan-out path, where it cost 7 percent of the
/// server's time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `ConnId`'s hash changes shape; still a fine hash.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits hashbrown uses.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A notice relayed to many connections, encoded at most once per protocol.
pub(crate) struct Fanout<'a> {
    packet: &'a ServerPacket,
    /// `nick!user@host` of whoever caused it, for IRC.
    source: &'a str,
    /// For IRC: relay a message as NOTICE rather than PRIVMSG.
    notice: bool,
    native: Option<Bytes>,
    irc: Option<Option<Bytes>>,
}

impl<'a> Fanout<'a> {
    fn new(packet: &'a ServerPacket, source: &'a str) -> Self {
        Fanout {
            packet,
            source,
            notice: false,
            native: None,
            irc: None,
        }
    }

    fn encoded(&mut self, irc: bool) -> Option<Bytes> {
        if irc {
            let (packet, source, notice) = (self.packet, self.source, self.notice);
            self.irc
                .get_or_insert_with(|| irc::relay(packet, source, notice))
                .clone()
        } else {
            Some(
                self.native
                    .get_or_insert_with(|| self.packet.to_frame())
                    .clone(),
            )
        }
    }
}

impl Server {
    /// A server with the given limits.
    pub fn new(config: Config) -> Self {
        let max_outbound = config.max_outbound_bytes;
        Server {
            config,
            next_id: 1,
            next_ping: 1,
            conns: Conns {
                map: HashMap::default(),
                pending: VecDeque::new(),
                overflowed: Vec::new(),
                max_outbound,
            },
            registry: Registry::default(),
            closing: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            shutting_down: false,
            peers: limits::Peers::default(),
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

    /// Registers a new connection; it must say hello within `hello_timeout`.
    pub fn open(&mut self, now: Instant) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.map.insert(id, Box::new(Conn::new(now)));
        self.schedule(id);
        id
    }

    /// Feeds bytes received from a connection. Its protocol is decided by the first byte:
    /// `0x00` (the high byte of a native frame length) is native, anything else IRC.
    pub fn handle_input(&mut self, id: ConnId, input: &[u8], now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing || input.is_empty() {
            return;
        }
        conn.last_rx = now;
        // An answered ping moves the deadline from the idle timeout back to the next ping,
        // which can be earlier than the timer now armed.
        let rearm = std::mem::take(&mut conn.ping_sent);
        if matches!(conn.proto, Proto::Unknown) {
            conn.proto = if input[0] == 0 {
                Proto::Native(FrameDecoder::new(self.config.max_frame_len))
            } else {
                Proto::Irc(Box::default())
            };
        }
        let irc = conn.proto.is_irc();
        if rearm {
            self.schedule(id);
        }
        if irc {
            self.irc_input(id, input, now);
        } else {
            self.native_input(id, input, now);
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
        self.conns.map.remove(&id);
        self.peers.release(id);
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
                        let irc = conn.proto.is_irc();
                        let token = self.next_ping;
                        self.next_ping += 1;
                        let ping = if irc {
                            irc::ping(token)
                        } else {
                            ServerPacket::Ping { token }.to_frame()
                        };
                        self.conns.send(id, ping);
                    }
                }
            }
            self.schedule(id);
        }
        self.close_overflowed();
    }

    /// Closes every connection with a bye; the adapter should stop accepting.
    pub fn shutdown(&mut self, _now: Instant) {
        self.shutting_down = true;
        let mut ids: Vec<ConnId> = self.conns.map.keys().copied().collect();
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
        while let Some(id) = self.conns.pending.pop_front() {
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
            self.conns.pending.push_back(id);
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
            if self.conns.map.contains_key(&id) {
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
        self.conns.map.len()
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

    /// A room's topic.
    pub fn room_topic(&self, room: &str) -> Option<&str> {
        self.registry.room(&fold(room)).map(|r| r.topic.as_str())
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

    /// Bytes of a partial input frame or line a connection holds.
    pub fn inbound_bytes(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.proto.buffered())
    }

    fn nick(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map(|c| c.nick.clone())
            .unwrap_or_default()
    }

    /// `nick!user@host` of a connection, the source IRC shows for what it does.
    fn source(&self, id: ConnId) -> String {
        match self.conns.get(&id) {
            Some(c) => format!("{}!{}@{}", c.nick, c.user(), self.config.server_name),
            None => String::new(),
        }
    }

    /// A room's members with their flags, in join order.
    fn members(&self, key: &str) -> Vec<Member> {
        let Some(room) = self.registry.room(key) else {
            return Vec::new();
        };
        room.members
            .iter()
            .map(|&m| {
                let away = self.conns.get(&m).is_some_and(|c| !c.away.is_empty());
                Member {
                    nick: self.nick(m),
                    flags: room.flags(m) | if away { Member::AWAY } else { 0 },
                }
            })
            .collect()
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

    /// Queues a native packet for one connection.
    fn send_packet(&mut self, id: ConnId, packet: &ServerPacket) {
        self.conns.send(id, packet.to_frame());
    }

    /// Relays a notice to every member of a room, each in its own protocol.
    ///
    /// `skip_irc` is left out if it speaks IRC: IRC clients do not get their own messages
    /// echoed, native clients do (it is their confirmation).
    fn relay_room(&mut self, key: &str, fan: &mut Fanout<'_>, skip_irc: Option<ConnId>) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        for &member in &room.members {
            if Some(member) == skip_irc && self.conns.get(&member).is_some_and(|c| c.proto.is_irc())
            {
                continue;
            }
            self.conns.deliver(member, fan);
        }
    }

    /// Closes connections that exceeded their outbound limit; closing may overflow others.
    fn close_overflowed(&mut self) {
        while let Some(id) = self.conns.overflowed.pop() {
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
        let bye = if conn.proto.is_irc() {
            irc::error_line(reason)
        } else {
            ServerPacket::Bye {
                code,
                reason: reason.to_owned(),
            }
            .to_frame()
        };
        // The bye bypasses the limit: it is one small frame and the last.
        conn.queued += bye.len();
        conn.out.push_back(bye);
        if !conn.pending {
            conn.pending = true;
            self.conns.pending.push_back(id);
        }
        self.closing.push_back(id);
        self.events.push_back(Event::Closed {
            conn: id,
            code,
            reason: reason.to_owned(),
        });
    }

    /// Removes a connection from every room (telling the others) and frees its nick.
    ///
    /// Native members get a Left per room; IRC members get one QUIT however many rooms
    /// they share, as IRC clients expect.
    fn depart(&mut self, id: ConnId, reason: &str) {
        let source = self.source(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase != Phase::Ready {
            return;
        }
        let rooms = std::mem::take(&mut conn.rooms);
        let nick = std::mem::take(&mut conn.nick);
        conn.phase = Phase::Hello;
        let mut irc_peers = Vec::new();
        for key in rooms {
            self.registry.leave(&key, id);
            let Some(room) = self.registry.room(&key) else {
                continue;
            };
            if self.shutting_down {
                continue;
            }
            let left = ServerPacket::Left {
                room: room.name.clone(),
                nick: nick.clone(),
                reason: reason.to_owned(),
            };
            let mut fan = Fanout::new(&left, &source);
            for &member in &room.members {
                match self.conns.get(&member) {
                    Some(c) if c.proto.is_irc() => irc_peers.push(member),
                    Some(_) => self.conns.deliver(member, &mut fan),
                    None => {}
                }
            }
        }
        irc_peers.sort();
        irc_peers.dedup();
        if !irc_peers.is_empty() {
            let quit = irc::quit_line(&source, reason);
            for peer in irc_peers {
                self.conns.send(peer, quit.clone());
            }
        }
        self.registry.release_nick(&nick, id);
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

#[cfg(test)]
mod tests_irc;
