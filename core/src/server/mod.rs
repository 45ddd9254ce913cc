//! The server state machine: connections in, frames and events out.
//!
//! Feed it with [`Server::handle_input`] (no more than [`Server::read_budget`] allows),
//! [`Server::handle_eof`], [`Server::handle_close`], [`Server::handle_written`] and
//! [`Server::handle_timeout`]; drain it with [`Server::poll_transmit`] (or
//! [`Server::poll_pending`] and [`Server::take_transmit`]), [`Server::poll_readable`],
//! [`Server::poll_close`], [`Server::poll_event`] and [`Server::poll_timeout`].
//!
//! Layout: `chat.rs` holds the protocol-independent operations (join, say, kick, ...) and
//! the session rules, answering with `outcome.rs` types; `native.rs` and `irc/` turn each
//! protocol's requests into those operations and render the answers; `fanout.rs` renders
//! what an operation tells others, per recipient; this file owns connections, output
//! queues and timers.

mod census;
mod chat;
mod chathistory;
mod cluster;
mod conn;
mod fanout;
mod history;
pub(crate) mod irc;
mod limits;
mod native;
mod outcome;
#[cfg(feature = "planted-bugs")]
mod planted;
mod rooms;
mod tagmsg;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;

use bytes::{Buf, BytesMut};

use crate::frame::FrameDecoder;
use crate::name::fold;
use crate::packet::{Member, Packet, RoomInfo, ServerPacket};
use crate::rate::Cost;
use crate::{Config, ConnId, ErrorCode};
use census::Census;
pub use cluster::ClusterStats;
use conn::{Conn, Phase, Proto};
use fanout::{Fanout, MsgId, Notice, Sent, Source};
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

/// How the adapter must treat a connection the core is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// Stop reading it at once and keep writing what [`Server::take_transmit`] yields (its
    /// last output, ending with a bye). A [`CloseMode::Now`] for it follows.
    Flush,
    /// Close the socket now, then call [`Server::handle_close`]: its output is written, or
    /// `close_linger` ran out.
    Now,
}

/// A close the core asks of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The connection.
    pub conn: ConnId,
    /// What to do with it.
    pub mode: CloseMode,
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
    /// A signed-in connection took another nickname.
    NickChanged {
        /// The connection.
        conn: ConnId,
        /// The nickname it had.
        old: String,
        /// The nickname it has now.
        new: String,
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
    /// The welcome burst's constant lines, built at the first IRC registration.
    irc_constants: Option<Box<irc::Constants>>,
    /// Closes asked of the adapter, not yet polled.
    closing: VecDeque<Close>,
    /// Connections that may be read again, not yet polled.
    readable: VecDeque<ConnId>,
    events: VecDeque<Event>,
    /// Connection deadlines (keepalive, rate wake-up, partial input, close linger); an
    /// entry is live only while it equals its connection's `timer`.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Everyone is being closed: departures are not announced to peers about to go too.
    shutting_down: bool,
    /// Room history, when switched on (`history.rs`).
    history: Option<Box<history::History>>,
    /// The cluster's state, when this node is one of several.
    cluster: Option<Box<cluster::Cluster>>,
    /// Open connections per client address (`open_from`).
    peers: limits::Peers,
    /// Direct messages given a msgid so far (message-tags), which numbers the next.
    direct_msgids: u64,
    /// The deliberate bug switched on by the simulation tests, if any.
    #[cfg(feature = "planted-bugs")]
    planted: Option<PlantedBug>,
}

/// Connections and their output queues.
#[derive(Debug)]
struct Conns {
    /// Boxed: the map's spare capacity then costs a pointer per slot, not a whole `Conn`.
    map: HashMap<ConnId, Box<Conn>, BuildHasherDefault<IdHasher>>,
    /// Which connections have output for the adapter, now or at the flush deadline.
    flush: Flush,
    /// Connections that overflowed their output limit during the current operation.
    overflowed: Vec<ConnId>,
    max_outbound: usize,
    /// The server's name, the host part of IRC sources.
    host: String,
    /// Output pacing's record of the current request.
    touched: Touched,
    /// What LUSERS counts, kept by the methods that add, remove and change connections
    /// (census.rs).
    census: Census,
}

/// Connections with output for the adapter: at once (`pending`), or when the coalescing
/// window closes (`deferred`).
///
/// Output a connection's own input caused (replies, its echo, errors) goes out at the end
/// of that turn, with whatever else it has queued. Output others caused (room messages,
/// joins and parts, cluster relays, pings) waits up to `flush_delay`, so that several
/// messages reach an idle reader in one write instead of one write each: at moderate load
/// every message is its own turn, and the kernel's cost per write dominates. One deadline
/// for all: the first deferred output opens the window, and every deferred connection
/// goes out together when it closes.
#[derive(Debug)]
struct Flush {
    /// Connections with output queued since they were last reported.
    pending: VecDeque<ConnId>,
    /// Connections with output waiting for `flush_at`, each once (`Conn::deferred`).
    deferred: Vec<ConnId>,
    /// When the deferred connections go out; `None` while none waits.
    flush_at: Option<Instant>,
    /// The connection whose input is being handled: its output is not deferred.
    actor: Option<ConnId>,
    /// The latest time any call brought: the window opens from it, and deadlines set by
    /// calls that carry no time count from it (`Server::now`).
    now: Option<Instant>,
    /// `Config::flush_delay`; zero defers nothing.
    delay: Duration,
    /// Queued bytes at which a connection goes out at once: holding more saves no write.
    threshold: usize,
}

impl Flush {
    /// Notes that `conn` has new output: pending at once if its own input caused it, it
    /// holds enough for a full write, or coalescing is off; else deferred.
    fn note(&mut self, conn: &mut Conn, id: ConnId) {
        if conn.pending {
            return;
        }
        let at_once = self.delay.is_zero()
            || self.actor == Some(id)
            || conn.queued >= self.threshold
            || self.now.is_none();
        if at_once {
            conn.pending = true;
            self.pending.push_back(id);
        } else if !conn.deferred {
            conn.deferred = true;
            self.deferred.push(id);
            if self.flush_at.is_none() {
                self.flush_at = self.now.map(|t| t + self.delay);
            }
        }
    }

    /// Drops deferred connections gone since, from the end of the list; none left, no
    /// window: a deadline is not reported for nobody.
    fn forget_gone(&mut self, map: &HashMap<ConnId, Box<Conn>, BuildHasherDefault<IdHasher>>) {
        while self.deferred.last().is_some_and(|id| !map.contains_key(id)) {
            self.deferred.pop();
        }
        if self.deferred.is_empty() {
            self.flush_at = None;
        }
    }

    /// Closes the window: every deferred connection with output left becomes pending.
    fn release(&mut self, map: &mut HashMap<ConnId, Box<Conn>, BuildHasherDefault<IdHasher>>) {
        self.flush_at = None;
        for id in self.deferred.drain(..) {
            let Some(conn) = map.get_mut(&id) else {
                continue;
            };
            conn.deferred = false;
            // Its own turn may have taken it all already.
            if !conn.out.is_empty() && !conn.pending {
                conn.pending = true;
                self.pending.push_back(id);
            }
        }
    }
}

/// The connections the current request left above the high-water mark, each once.
#[derive(Debug)]
struct Touched {
    ids: Vec<ConnId>,
    high_water: usize,
}

impl Conns {
    fn get(&self, id: &ConnId) -> Option<&Conn> {
        self.map.get(id).map(|c| &**c)
    }

    fn get_mut(&mut self, id: &ConnId) -> Option<&mut Conn> {
        self.map.get_mut(id).map(|c| &mut **c)
    }

    /// Connection `id` and, beside it, what queueing bytes on it also changes.
    fn queue(&mut self, id: ConnId) -> Option<(&mut Conn, Queue<'_>)> {
        let conn = self.map.get_mut(&id)?;
        let queue = Queue {
            max_outbound: self.max_outbound,
            flush: &mut self.flush,
            overflowed: &mut self.overflowed,
            touched: &mut self.touched,
        };
        Some((conn, queue))
    }

    /// Queues bytes for one connection unless that would pass its outbound limit, in which
    /// case the connection is marked to be closed as a slow consumer.
    fn send(&mut self, id: ConnId, bytes: Bytes) {
        if let Some((conn, mut queue)) = self.queue(id) {
            queue.push(conn, id, bytes);
        }
    }

    /// Queues a relayed notice in the connection's own protocol; whether the notice has a
    /// form for it.
    fn deliver(&mut self, id: ConnId, fan: &mut Fanout<'_>) -> bool {
        // One lookup per recipient: this is the fan-out hot path.
        let Some((conn, mut queue)) = self.queue(id) else {
            return false;
        };
        let irc = conn.proto.irc_caps();
        if let (Some(_), Source::Conn(from)) = (irc, &fan.source) {
            // The first IRC recipient: only now is the IRC source built, so a message to
            // a room without IRC members never builds it. Once per fan-out.
            let built = self
                .map
                .get(from)
                .map_or_else(String::new, |c| irc_source(c, &self.host));
            fan.source = Source::Built(built);
            return self.deliver(id, fan);
        }
        let Some(bytes) = fan.encoded(irc) else {
            return false;
        };
        queue.push(conn, id, bytes);
        true
    }
}

/// `nick!user@host` of a connection on server `host`: the source IRC shows.
fn irc_source(c: &Conn, host: &str) -> String {
    format!("{}!{}@{}", c.nick, c.user(), host)
}

/// What queueing bytes on a connection changes besides the connection, borrowed from
/// `Conns` beside it (`Conns::queue`).
struct Queue<'a> {
    max_outbound: usize,
    flush: &'a mut Flush,
    overflowed: &'a mut Vec<ConnId>,
    touched: &'a mut Touched,
}

impl Queue<'_> {
    /// Queues bytes on connection `id`, or marks it overflowed if they would pass
    /// `max_outbound`; notes it in `touched` if they leave it above the high-water mark.
    fn push(&mut self, conn: &mut Conn, id: ConnId, bytes: Bytes) {
        if conn.phase == Phase::Closing || conn.remote {
            return;
        }
        if conn.queued + conn.in_flight + bytes.len() > self.max_outbound {
            if !self.overflowed.contains(&id) {
                self.overflowed.push(id);
            }
            return;
        }
        conn.queued += bytes.len();
        if conn.queued + conn.in_flight > self.touched.high_water
            && !conn.pacing.touched
            && !conn.pacing.stalled
        {
            conn.pacing.touched = true;
            self.touched.ids.push(id);
        }
        if let Some((_, segment)) = conn.held.get_mut().and_then(|h| h.back_mut()) {
            // Waiting for a history answer that must go out first (history.rs).
            segment.push_back(bytes);
            return;
        }
        conn.out.push_back(bytes);
        self.flush.note(conn, id);
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

impl Server {
    /// A server with the given limits (check them first with [`Config::validate`]).
    pub fn new(config: Config) -> Self {
        let max_outbound = config.max_outbound_bytes;
        let high_water = config.outbound_high_water;
        let host = config.server_name.clone();
        // A connection with a full transmit queued gains nothing by waiting, and one above
        // the high-water mark holds its senders back while it waits: either goes at once.
        let threshold = config.max_transmit_bytes.min(high_water);
        let delay = config.flush_delay;
        Server {
            config,
            next_id: 1,
            next_ping: 1,
            conns: Conns {
                map: HashMap::default(),
                flush: Flush {
                    pending: VecDeque::new(),
                    deferred: Vec::new(),
                    flush_at: None,
                    actor: None,
                    now: None,
                    delay,
                    threshold,
                },
                overflowed: Vec::new(),
                max_outbound,
                host,
                touched: Touched {
                    ids: Vec::new(),
                    high_water,
                },
                census: Census::default(),
            },
            registry: Registry::default(),
            irc_constants: None,
            closing: VecDeque::new(),
            readable: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            shutting_down: false,
            history: None,
            cluster: None,
            peers: limits::Peers::default(),
            direct_msgids: 0,
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
        self.set_now(now);
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.insert(id, Box::new(Conn::new(now)));
        self.schedule(id);
        id
    }

    /// How many bytes the adapter may read from a connection now and hand to
    /// [`Server::handle_input`]; 0 means do not read it until [`Server::poll_readable`]
    /// names it. Never more than `max_inbound_bytes`; 0 while its inbound queue is full,
    /// while its output is held back by output pacing, and once it is closing.
    pub fn read_budget(&self, id: ConnId) -> usize {
        match self.conns.get(&id) {
            Some(c) if c.phase != Phase::Closing && !c.eof && c.pacing.blocked == 0 => {
                self.config.max_inbound_bytes.saturating_sub(c.inbox.len())
            }
            _ => 0,
        }
    }

    /// Feeds bytes received from a connection, at most its [`Server::read_budget`]. Its
    /// protocol is decided by the first byte: `0x00` (the high byte of a native frame
    /// length) is native, anything else IRC.
    ///
    /// Requests are handled in order as far as the connection's rate allows; the rest wait
    /// in its inbound queue and are handled by [`Server::handle_timeout`] as the rate
    /// refills. Bytes past the budget overflow the queue: the connection is closed as a
    /// flooder.
    pub fn handle_input(&mut self, id: ConnId, input: &[u8], now: Instant) {
        self.set_now(now);
        let max_inbound = self.config.max_inbound_bytes;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing || conn.eof || input.is_empty() {
            return;
        }
        conn.last_rx = conn.stamp(now);
        // An answered ping moves the deadline from the idle timeout back to the next ping,
        // which can be earlier than the timer now armed.
        let rearm = std::mem::take(&mut conn.ping_sent);
        if matches!(conn.proto, Proto::Unknown) {
            conn.proto = if Proto::native_first_byte(input[0]) {
                Proto::Native(FrameDecoder::new(self.config.max_frame_len))
            } else {
                Proto::Irc(Box::default())
            };
        }
        if conn.inbox.len() + input.len() > max_inbound {
            self.overflow(id, input.len());
            return;
        }
        if rearm {
            self.schedule(id);
        }
        self.pump(id, input, now);
    }

    /// Reports that the peer will send nothing more (it closed its sending side). What it
    /// sent before is still handled, then the connection is closed.
    pub fn handle_eof(&mut self, id: ConnId, now: Instant) {
        self.set_now(now);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.eof = true;
        if conn.inbox.is_empty() {
            self.close(
                id,
                ErrorCode::ConnectionLost,
                "connection lost",
                "connection lost",
            );
            self.close_overflowed();
        }
    }

    /// Reports that a connection's transport is gone (peer closed, I/O error, or the adapter
    /// finished closing it). Frees everything the connection held.
    pub fn handle_close(&mut self, id: ConnId, now: Instant) {
        self.set_now(now);
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
        self.release_waiters(id);
        self.conns.remove(id);
        self.peers.release(id);
        self.close_overflowed();
    }

    /// Reports that `bytes` of handed-out output reached the socket. A connection that
    /// drains to `outbound_high_water` releases the senders it held back.
    pub fn handle_written(&mut self, id: ConnId, bytes: usize) {
        let high_water = self.conns.touched.high_water;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.in_flight = conn.in_flight.saturating_sub(bytes);
        if conn.phase == Phase::Closing && conn.queued == 0 && conn.in_flight == 0 {
            self.finish(id);
        } else if conn.queued + conn.in_flight <= high_water
            && (conn.pacing.stalled || conn.pacing.holding_since.is_some())
        {
            conn.pacing.stalled = false;
            conn.pacing.holding_since = None;
            self.release_waiters(id);
        }
    }

    /// Runs every deadline that has passed: requests waiting for the rate, keepalive pings
    /// and timeouts, partial input that took too long, close lingers, and the coalescing
    /// window (`Config::flush_delay`), which makes [`Server::poll_pending`] name every
    /// connection whose output waited for it.
    ///
    /// Connections due at once are served in id order, so the outcome does not depend on
    /// how their deadlines were stored.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.timer == Some(conn.stamp(at)) {
                    conn.timer = None;
                    due.push(id);
                }
            }
        }
        due.sort();
        for id in due {
            self.on_timer(id, now);
        }
        self.cluster_timeout(now);
        self.close_overflowed();
        // Last, so that what the deadlines above queued for others goes out with it.
        if self.conns.flush.flush_at.is_some_and(|at| at <= now) {
            self.conns.flush.release(&mut self.conns.map);
        }
    }

    /// Notes the time a call brought.
    fn set_now(&mut self, now: Instant) {
        self.conns.flush.now = Some(now);
    }

    /// The latest time any call brought.
    fn now(&self) -> Option<Instant> {
        self.conns.flush.now
    }

    /// One connection's passed deadlines.
    fn on_timer(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            if !conn.finished && conn.close_at.is_some_and(|t| conn.instant(t) <= now) {
                self.finish(id);
            } else {
                self.schedule(id);
            }
            return;
        }
        if !conn.pacing.waiters.is_empty()
            && !conn.pacing.stalled
            && conn.pacing.holding_since.is_some_and(|t| {
                now.saturating_duration_since(conn.instant(t)) >= self.config.outbound_stall_timeout
            })
        {
            // It held its senders back too long: they go on without it.
            conn.pacing.stalled = true;
            self.release_waiters(id);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Requests waiting for the rate were received before any deadline now due.
        if !conn.inbox.is_empty() {
            self.pump(id, &[], now);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        // The pump scheduled from the state before the checks below (a keepalive already
        // due, say), and `schedule` keeps an earlier timer: forget it, the checks schedule
        // again once done.
        conn.timer = None;
        if conn.partial_since.is_some_and(|t| {
            now.saturating_duration_since(conn.instant(t)) >= self.config.request_timeout
        }) {
            self.close(
                id,
                ErrorCode::Timeout,
                "request not completed in time",
                "request timeout",
            );
            return;
        }
        let silent = now.saturating_duration_since(conn.instant(conn.last_rx));
        match conn.phase {
            Phase::Closing => return,
            Phase::Hello => {
                if now.saturating_duration_since(conn.opened) >= self.config.hello_timeout {
                    self.close(id, ErrorCode::Timeout, "no hello in time", "");
                    return;
                }
            }
            Phase::Ready => {
                if silent >= self.config.idle_timeout {
                    self.close(id, ErrorCode::Timeout, "idle timeout", "ping timeout");
                    return;
                }
                if silent >= self.config.ping_interval && !conn.ping_sent {
                    conn.ping_sent = true;
                    let token = self.next_ping;
                    self.next_ping += 1;
                    let ping = Notice::Ping(token);
                    let server = &self.config.server_name;
                    if let Some(ping) = fanout::encode_one(ping, server, conn.proto.irc_caps()) {
                        self.conns.send(id, ping);
                    }
                }
            }
        }
        self.schedule(id);
    }

    /// Handles the requests in the connection's inbound queue and then `fresh`, in order,
    /// while its rate allows; keeps the rest queued. Then settles what depends on the queue:
    /// the partial-input clock, the end of input, read interest and the next deadline.
    fn pump(&mut self, id: ConnId, fresh: &[u8], now: Instant) {
        self.as_actor(id, |s| s.pump_as_actor(id, fresh, now));
    }

    /// Runs `f` as a turn of `id`'s own requests: what it queues for `id` goes out at the
    /// end of the turn, not when the coalescing window closes.
    fn as_actor<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = self.conns.flush.actor.replace(id);
        let r = f(self);
        self.conns.flush.actor = outer;
        r
    }

    /// `pump`, with `id` noted as the connection whose input is handled.
    fn pump_as_actor(&mut self, id: ConnId, fresh: &[u8], now: Instant) {
        let (rate, burst) = (self.config.msg_rate, self.config.msg_burst);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Taken out so requests can be handled while it is read; put back below.
        let mut inbox = std::mem::take(&mut conn.inbox);
        let queued = !inbox.is_empty();
        if queued {
            inbox.extend_from_slice(fresh);
        }
        let mut input: &[u8] = if queued { &inbox } else { fresh };
        let mut handled_any = false;
        loop {
            // A request waiting for a cluster nick claim holds back the ones behind it.
            if self.cluster_parked(id) {
                break;
            }
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.phase == Phase::Closing || input.is_empty() || conn.pacing.blocked > 0 {
                break;
            }
            if !conn.limiter.ready(now, rate, burst) {
                #[cfg(feature = "planted-bugs")]
                self.planted_drop(id, &mut input);
                break;
            }
            let irc = conn.proto.is_irc();
            self.clear_touched();
            let handled = if irc {
                self.irc_step(id, &mut input, now)
            } else {
                self.native_step(id, &mut input, now)
            };
            self.close_overflowed();
            self.hold_back(id, now);
            if !handled {
                // The rest was a partial frame or line, now held by the decoder.
                break;
            }
            handled_any = true;
        }
        let rest = input.len();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        if queued {
            let used = inbox.len() - rest;
            inbox.advance(used);
            conn.inbox = inbox;
        } else if rest > 0 {
            conn.inbox = BytesMut::from(&fresh[fresh.len() - rest..]);
        }
        if conn.inbox.is_empty() {
            // An idle connection holds no queue memory.
            conn.inbox = BytesMut::new();
        }
        // The partial clock runs only while the server waits on the peer, never while the
        // peer's bytes wait for the rate.
        if conn.inbox.is_empty() && conn.proto.buffered() > 0 {
            if handled_any || conn.partial_since.is_none() {
                // A new frame or line began with these bytes.
                conn.partial_since = Some(conn.stamp(now));
            }
        } else {
            conn.partial_since = None;
        }
        if conn.eof && conn.inbox.is_empty() {
            self.close(
                id,
                ErrorCode::ConnectionLost,
                "connection lost",
                "connection lost",
            );
            self.close_overflowed();
            return;
        }
        if self.read_budget(id) == 0 {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.paused = true;
            }
        } else if let Some(conn) = self.conns.get_mut(&id) {
            if std::mem::take(&mut conn.paused) {
                self.readable.push_back(id);
            }
        }
        self.schedule(id);
    }

    /// The adapter handed over more than the read budget: the inbound queue overflowed.
    fn overflow(&mut self, id: ConnId, len: usize) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (waiting, seq) = (conn.inbox.len(), conn.requests.wrapping_add(1));
        let message = format!(
            "input queue overflow: {} bytes waiting and {len} more, past the {} allowed; \
             requests from number {seq} on were dropped",
            waiting, self.config.max_inbound_bytes
        );
        let notice = Notice::ServerError {
            code: ErrorCode::RateLimited,
            seq,
            to: &conn.nick,
            text: &message,
        };
        let server = &self.config.server_name;
        if let Some(bytes) = fanout::encode_one(notice, server, conn.proto.irc_caps()) {
            self.conns.send(id, bytes);
        }
        self.close(id, ErrorCode::Flooding, "flooding", "flooding");
        self.close_overflowed();
    }

    /// Counts a request against its connection's rate; every request is charged.
    pub(crate) fn charge(&mut self, id: ConnId, cost: Cost, now: Instant) {
        let rate = self.config.msg_rate;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.limiter.charge(now, rate, cost);
        }
    }

    /// Tells the adapter to close the socket now.
    fn finish(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.finished {
                conn.finished = true;
                self.closing.push_back(Close {
                    conn: id,
                    mode: CloseMode::Now,
                });
            }
        }
    }

    /// Closes every connection with a bye; the adapter should stop accepting.
    pub fn shutdown(&mut self, now: Instant) {
        self.set_now(now);
        self.shutting_down = true;
        let mut ids: Vec<ConnId> = self.conns.map.keys().copied().collect();
        ids.sort();
        for id in ids {
            // Remote users (cluster.rs) have no socket here; their nodes close them.
            self.close(
                id,
                ErrorCode::Shutdown,
                "server shutting down",
                "server shutting down",
            );
        }
        self.close_overflowed();
    }

    /// The next connection with output queued since it was last returned here: output its
    /// own requests caused at once, output others caused once the coalescing window
    /// (`Config::flush_delay`, its deadline in [`Server::poll_timeout`]) has closed or its
    /// queue is full enough for a write of its own.
    ///
    /// It may have no output left if [`Server::take_transmit`] already took it.
    pub fn poll_pending(&mut self) -> Option<ConnId> {
        while let Some(id) = self.conns.flush.pending.pop_front() {
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
            self.conns.flush.pending.push_back(id);
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

    /// The next close the core asks for.
    ///
    /// [`CloseMode::Flush`]: stop reading the connection, write what
    /// [`Server::take_transmit`] still yields for it (ending with a bye). [`CloseMode::Now`]
    /// follows once that is reported written or `close_linger` has passed (the deadline is
    /// in [`Server::poll_timeout`]): close the socket and call [`Server::handle_close`].
    pub fn poll_close(&mut self) -> Option<Close> {
        while let Some(close) = self.closing.pop_front() {
            if self.conns.map.contains_key(&close.conn) {
                return Some(close);
            }
        }
        None
    }

    /// The next connection that may be read again: its [`Server::read_budget`] was 0 and
    /// is not any more.
    pub fn poll_readable(&mut self) -> Option<ConnId> {
        while let Some(id) = self.readable.pop_front() {
            if self.read_budget(id) > 0 {
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
        self.conns.flush.forget_gone(&self.conns.map);
        // The cluster's deadlines and the coalescing window's, then the connections'.
        let other = match (self.cluster_deadline(), self.conns.flush.flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Drop dead entries on top so the answer is a real deadline.
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self
                .conns
                .get(&id)
                .is_some_and(|c| c.timer == Some(c.stamp(at)))
            {
                return Some(other.map_or(at, |t| t.min(at)));
            }
            self.timers.pop();
        }
        other
    }

    /// Open connections, including those closing.
    pub fn connection_count(&self) -> usize {
        self.conns.map.len() - self.cluster.as_ref().map_or(0, |c| c.ghosts)
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

    /// Input bytes a connection holds: its inbound queue and a partial frame or line.
    /// At most `max_inbound_bytes` plus one frame (`max_frame_len` + 4).
    pub fn inbound_bytes(&self, id: ConnId) -> usize {
        self.conns
            .get(&id)
            .map_or(0, |c| c.inbox.len() + c.proto.buffered())
    }

    fn nick(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map(|c| c.nick.clone())
            .unwrap_or_default()
    }

    /// `nick!user@host` of a connection, the source IRC shows for what it does.
    fn source(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map_or_else(String::new, |c| irc_source(c, &self.config.server_name))
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

    /// Puts the connection's earliest deadline in the heap if it is earlier than its entry.
    fn schedule(&mut self, id: ConnId) {
        let now = self.now();
        // A request parked on a cluster claim holds the queue; the claim's answer pumps it.
        let parked = self.cluster_parked(id);
        let c = &self.config;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.remote {
            return;
        }
        let keepalive = match conn.phase {
            Phase::Closing => None,
            Phase::Hello => Some(conn.opened + c.hello_timeout),
            Phase::Ready if conn.ping_sent => Some(conn.instant(conn.last_rx) + c.idle_timeout),
            Phase::Ready => Some(conn.instant(conn.last_rx) + c.ping_interval),
        };
        // Waiting requests are handled once the rate allows, unless output pacing holds
        // them (its release schedules again); with no rate, at once.
        let wake = if conn.phase != Phase::Closing
            && !conn.inbox.is_empty()
            && conn.pacing.blocked == 0
            && !parked
        {
            conn.limiter.wake_at(c.msg_rate, c.msg_burst).or(now)
        } else {
            None
        };
        let stall = match &conn.pacing {
            p if !p.waiters.is_empty() && !p.stalled => p
                .holding_since
                .map(|t| conn.instant(t) + c.outbound_stall_timeout),
            _ => None,
        };
        let partial = conn
            .partial_since
            .map(|t| conn.instant(t) + c.request_timeout);
        let linger = conn
            .close_at
            .filter(|_| !conn.finished)
            .map(|t| conn.instant(t));
        let Some(deadline) = [keepalive, wake, stall, partial, linger]
            .into_iter()
            .flatten()
            .min()
        else {
            return;
        };
        if conn.timer.is_none_or(|t| deadline < conn.instant(t)) {
            conn.timer = Some(conn.stamp(deadline));
            self.timers.push(Reverse((deadline, id)));
        }
    }

    /// Queues a native packet for one connection.
    fn send_packet(&mut self, id: ConnId, packet: &ServerPacket) {
        self.conns.send(id, packet.to_frame());
    }

    /// Relays a notice to every member of a room but `except`, each in its own protocol.
    fn relay_room(&mut self, key: &str, fan: &mut Fanout<'_>, except: Option<ConnId>) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        for &member in &room.members {
            if Some(member) != except {
                self.conns.deliver(member, fan);
            }
        }
    }

    /// Forgets which connections the previous operation left above the high-water mark.
    fn clear_touched(&mut self) {
        let Touched { ids, .. } = &mut self.conns.touched;
        for id in ids.drain(..) {
            if let Some(c) = self.conns.map.get_mut(&id) {
                c.pacing.touched = false;
            }
        }
    }

    /// Output pacing, after each request of `sender`: every connection the request left
    /// above `outbound_high_water` (the sender included, and not stalled or closing) holds
    /// the sender back. A held-back sender handles no further request and is not read
    /// until each of them has drained to the mark, stalled (held senders back for
    /// `outbound_stall_timeout`) or closed. So a sender fills others' queues no faster
    /// than they drain, and no pause lasts longer than the stall timeout.
    fn hold_back(&mut self, sender: ConnId, now: Instant) {
        let mut ids = std::mem::take(&mut self.conns.touched.ids);
        let high_water = self.conns.touched.high_water;
        let sender_open = self
            .conns
            .get(&sender)
            .is_some_and(|c| c.phase != Phase::Closing);
        let mut holders = 0;
        for id in ids.drain(..) {
            let Some(c) = self.conns.map.get_mut(&id) else {
                continue;
            };
            c.pacing.touched = false;
            if !sender_open
                || c.phase == Phase::Closing
                || c.pacing.stalled
                || c.queued + c.in_flight <= high_water
            {
                continue;
            }
            c.pacing.waiters.push(sender);
            holders += 1;
            if c.pacing.holding_since.is_none() {
                c.pacing.holding_since = Some(c.stamp(now));
                // Its stall deadline.
                self.schedule(id);
            }
        }
        self.conns.touched.ids = ids;
        match self.conns.get_mut(&sender) {
            Some(c) if holders > 0 => c.pacing.blocked += holders,
            _ => {}
        }
    }

    /// Lets go of every sender `id` held back; those held by nobody else go on: their
    /// waiting requests are handled (at the timer) and they may be read again.
    fn release_waiters(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.pacing.waiters.is_empty() {
            return;
        }
        for sender in std::mem::take(&mut conn.pacing.waiters) {
            let Some(s) = self.conns.get_mut(&sender) else {
                continue;
            };
            s.pacing.blocked = s.pacing.blocked.saturating_sub(1);
            if s.pacing.blocked > 0 || s.phase == Phase::Closing {
                continue;
            }
            if !s.inbox.is_empty() {
                self.schedule(sender);
            }
            if self.read_budget(sender) > 0 {
                if let Some(s) = self.conns.get_mut(&sender) {
                    if std::mem::take(&mut s.paused) {
                        self.readable.push_back(sender);
                    }
                }
            }
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
        // A remote user is closed by its own node (cluster.rs), never here.
        if conn.phase == Phase::Closing || conn.remote {
            return;
        }
        if code == ErrorCode::SlowConsumer {
            // What it did not read is stale; only the bye is worth sending.
            conn.out.clear();
            conn.held.clear();
            conn.queued = 0;
        }
        // A pending history answer will not come in time: what was held goes first.
        conn.release_held(u64::MAX);
        self.depart(id, left_reason);
        let now = self.now();
        if self
            .conns
            .change(id, |c| c.phase = Phase::Closing)
            .is_none()
        {
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.timer = None;
        if let Some(p) = conn.pacing.get_mut() {
            p.holding_since = None;
        }
        // Nothing more is read: what waits unread is dropped with the connection.
        conn.inbox = BytesMut::new();
        conn.partial_since = None;
        conn.close_at = now.map(|t| conn.stamp(t + self.config.close_linger));
        let bye = Notice::Bye(code, reason);
        if let Some(bye) = fanout::encode_one(bye, &self.config.server_name, conn.proto.irc_caps())
        {
            // The bye bypasses the limit: it is one small frame and the last.
            conn.queued += bye.len();
            conn.out.push_back(bye);
        }
        if !conn.pending {
            conn.pending = true;
            self.conns.flush.pending.push_back(id);
        }
        self.closing.push_back(Close {
            conn: id,
            mode: CloseMode::Flush,
        });
        // Nothing more is queued for it: it holds nobody back.
        self.release_waiters(id);
        self.schedule(id);
        self.events.push_back(Event::Closed {
            conn: id,
            code,
            reason: reason.to_owned(),
        });
    }

    /// Removes a connection from every room (telling the others) and frees its nick.
    ///
    /// Each room's members hear a `Left` (native) and whoever has no form of it (IRC)
    /// hears one QUIT however many rooms they share, as IRC clients expect.
    fn depart(&mut self, id: ConnId, reason: &str) {
        self.cluster_departing(id, reason);
        let source = self.source(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase != Phase::Ready {
            return;
        }
        let rooms = std::mem::take(&mut conn.rooms);
        let nick = std::mem::take(&mut conn.nick);
        self.conns.change(id, |c| c.phase = Phase::Hello);
        let mut quit_peers = Vec::new();
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
            let mut fan = Fanout::of_text(Notice::Departed(&left), &source);
            for &member in &room.members {
                if !self.conns.deliver(member, &mut fan) {
                    quit_peers.push(member);
                }
            }
        }
        quit_peers.sort();
        quit_peers.dedup();
        let mut fan = Fanout::of_text(Notice::Quit(reason), &source);
        for peer in quit_peers {
            self.conns.deliver(peer, &mut fan);
        }
        if let Some(c) = self.conns.get(&id) {
            let (user, realname) = (c.user().to_owned(), c.realname.clone());
            self.registry.remember(&nick, &user, &realname);
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
#[path = "tests_irc_harness.rs"]
mod irc_harness;
#[cfg(test)]
mod tests_irc;

#[cfg(test)]
mod tests_chathistory;
#[cfg(test)]
mod tests_history;

#[cfg(test)]
#[path = "tests_output_harness.rs"]
mod output_harness;
#[cfg(test)]
mod tests_pacing;

#[cfg(test)]
mod tests_cluster;

#[cfg(test)]
mod tests_census;

#[cfg(test)]
mod tests_flush;
