//! The simulated world: one core `Server`, many core `Client`s, the byte pipes between
//! them and the adapter logic a runtime would run, all on one virtual clock.
//!
//! Everything is driven from a queue of timed events; the clock jumps to the next one.
//! Every server call goes through [`Sim::call`], which asks the [`Model`] to predict it and
//! hands it the server's events afterwards. An eager adapter then takes all output at once
//! and compares it; a lazy one takes output when the client's socket has room and compares
//! it then.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::packet::{client_type, ClientPacket, Packet};
use switchboard_core::server::Event;
use switchboard_core::{
    Client, ClientEvent, Close, CloseMode, Config, ConnId, ErrorCode, RoomEvent, RoomMode,
    RoomRule, Server, Transmit,
};

use crate::irc::{Cmd, IrcPeer, IrcTap};
use crate::mix::{Act, Fault, Mix, ACTS, FAULTS};
use crate::model::{frame_name, message_id, Model, Order, Phase};
use crate::rng::Rng;
use crate::trace::{fnv, Ev, Trace};
use crate::wire::{fold, malformed, Frame, Out, Piece, Tap, Unit, MALFORMED_KINDS};

/// The largest bye frame: it may exceed the outbound limit by this much.
const BYE_MAX: usize = 80;
/// Most events the heal-and-drain phase may take to reach quiescence.
const DRAIN_STEPS: u64 = 200_000;

/// A bug the simulator may switch on in the server.
pub type Plant = Option<switchboard_core::PlantedBug>;

/// Something scheduled to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sched {
    /// A client slot acts.
    Act(usize),
    /// A client slot (re)connects.
    Connect(usize),
    /// The client-to-server pipe of a connection delivers.
    ToServer(ConnId),
    /// The server-to-client pipe of a connection delivers.
    ToClient(ConnId),
    /// The server's keepalive deadline.
    ServerTimer,
    /// A client's check for a silent server.
    ClientTimer(usize),
    /// The adapter notices the peer is gone (reset, or end of stream).
    PeerGone(ConnId),
    /// A client's silence or deafness may have ended.
    Resume(usize),
    /// A network fault.
    Fault,
    /// The fault phase ends.
    Heal,
}

impl Sched {
    /// Whether this event still moves bytes once faults are off.
    fn active(&self) -> bool {
        matches!(
            self,
            Sched::ToServer(_) | Sched::ToClient(_) | Sched::PeerGone(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Fault,
    Heal,
    Shutdown,
}

/// The server end of a connection, as the adapter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerSide {
    Open,
    /// The core asked to close it (`Flush`): no more reading, flush until it says `Now`.
    Closing,
    /// `handle_close` was called.
    Gone,
}

/// One connection: two pipes, the adapter's write buffer and bookkeeping.
#[derive(Debug)]
struct Link {
    slot: usize,
    // client -> server
    c2s: VecDeque<u8>,
    units: VecDeque<Unit>,
    sent: u64,
    delivered: u64,
    /// The client closed its end: after the buffered bytes the server reads end of stream.
    c2s_eof: bool,
    c2s_sched: bool,
    c2s_stall: u64,
    // server -> client
    /// Output the adapter took from the core but could not write yet.
    wbuf: VecDeque<Bytes>,
    wbuf_len: usize,
    s2c: VecDeque<u8>,
    s2c_eof: bool,
    s2c_sched: bool,
    s2c_stall: u64,
    server: ServerSide,
    attached: bool,
    tap: Tap,
    /// The client speaks IRC: its output is read by `itap`.
    irc: bool,
    itap: IrcTap,
    /// What the server sent that the client has not yet turned into events.
    deliver: VecDeque<Out>,
    /// Lazy adapter: the server reported output for this connection.
    ready: bool,
    /// Lazy adapter: what the server queued and the adapter has not taken yet.
    expect: VecDeque<Group>,
}

/// What one server call queued for one connection, checked as the lazy adapter takes it.
#[derive(Debug)]
struct Group {
    items: VecDeque<Out>,
    order: Order,
    /// The connection was closed in that call: its limit may have refused items.
    lossy: bool,
}

/// Matches one taken item against the oldest expected group.
fn take_expected(expect: &mut VecDeque<Group>, item: &Out) -> Result<(), String> {
    loop {
        let Some(g) = expect.front_mut() else {
            return Err(format!("unexpected {item:?}"));
        };
        match (g.items.iter().position(|w| w.matches(item)), g.order) {
            (Some(0), _) => {
                g.items.pop_front();
            }
            (Some(p), Order::Any) => {
                g.items.remove(p);
            }
            (Some(p), Order::Exact) if g.lossy => {
                g.items.drain(..=p);
            }
            (None, _) if g.lossy => {
                // The rest of that call's output was refused by the limit.
                expect.pop_front();
                continue;
            }
            _ => {
                let want = g.items.front().map_or(String::new(), |w| format!("{w:?}"));
                return Err(format!("missing {want} before {item:?}"));
            }
        }
        if g.items.is_empty() {
            expect.pop_front();
        }
        return Ok(());
    }
}

/// One simulated user, who may connect many times.
#[derive(Debug, Default)]
struct Slot {
    conn: Option<ConnId>,
    client: Option<Client>,
    /// The slot's client when it speaks IRC (then `client` is `None`).
    irc: Option<IrcPeer>,
    /// Bytes written while silent.
    held: Vec<Piece>,
    silent_until: u64,
    deaf_until: u64,
    /// Sent a quit or garbage: waits for the end.
    done: bool,
    /// Room message ids received on the current connection.
    received: BTreeSet<u64>,
    /// Per (room, incarnation, sender): the last message id received.
    last_from: BTreeMap<(String, u64, ConnId), u64>,
    client_timer: Option<u64>,
    hellos: u32,
}

/// Statistics of one run, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub connects: u64,
    pub said: u64,
    pub delivered: u64,
    pub slow_closes: u64,
    pub bad_frames: u64,
    pub resets: u64,
    pub virtual_ms: u64,
    /// Input calls that handled more than one frame at once.
    pub multi_frame_calls: u64,
    /// Deliveries cut to one frame because an output limit was near.
    pub split_calls: u64,
    /// Input calls after which requests waited for the rate in the server's queue.
    pub delayed_calls: u64,
    /// Deliveries the adapter did not make because the server paused the connection.
    pub paused_reads: u64,
    pub client_timeouts: u64,
    pub linger_expired: u64,
    /// Server closes by code.
    pub closes: BTreeMap<String, u64>,
    /// Refusals clients received, by code.
    pub refused: BTreeMap<String, u64>,
    /// Room rule changes and invitations clients saw.
    pub rule_events: u64,
}

impl Stats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.connects += o.connects;
        self.said += o.said;
        self.delivered += o.delivered;
        self.slow_closes += o.slow_closes;
        self.bad_frames += o.bad_frames;
        self.resets += o.resets;
        self.virtual_ms += o.virtual_ms;
        self.multi_frame_calls += o.multi_frame_calls;
        self.split_calls += o.split_calls;
        self.delayed_calls += o.delayed_calls;
        self.paused_reads += o.paused_reads;
        self.client_timeouts += o.client_timeouts;
        self.linger_expired += o.linger_expired;
        for (k, v) in &o.closes {
            *self.closes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.refused {
            *self.refused.entry(k.clone()).or_default() += v;
        }
        self.rule_events += o.rule_events;
    }
}

/// One seeded run.
pub struct Sim {
    pub mix: Mix,
    pub trace: Trace,
    pub stats: Stats,
    plant: Plant,
    cfg: Config,
    base: Instant,
    now: u64,
    queue: BTreeMap<(u64, u64), Sched>,
    qseq: u64,
    server: Server,
    model: Model,
    links: BTreeMap<ConnId, Link>,
    slots: Vec<Slot>,
    net: Rng,
    work: Rng,
    faults: Rng,
    stage: Stage,
    server_timer: Option<u64>,
    next_id: u64,
    /// When the core asked to flush and close each closing connection.
    closing_since: BTreeMap<ConnId, u64>,
}

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX / 4)) as u64
}

impl Sim {
    /// A world for `seed`; `base` is the one real instant all virtual time counts from.
    pub fn new(seed: u64, plant: Plant, base: Instant) -> Sim {
        let mut root = Rng::new(seed);
        let mut mix_rng = root.split();
        let net = root.split();
        let work = root.split();
        let faults = root.split();
        let mix = Mix::draw(&mut mix_rng);
        let cfg = mix.config.clone();
        let mut server = Server::new(cfg.clone());
        if let Some(bug) = plant {
            server.plant_bug(bug);
        }
        Sim {
            trace: Trace::default(),
            stats: Stats::default(),
            plant,
            model: Model::new(cfg.clone()),
            cfg,
            base,
            now: 0,
            queue: BTreeMap::new(),
            qseq: 0,
            server,
            links: BTreeMap::new(),
            slots: (0..mix.clients).map(|_| Slot::default()).collect(),
            net,
            work,
            faults,
            stage: Stage::Fault,
            server_timer: None,
            next_id: 1,
            closing_since: BTreeMap::new(),
            mix,
        }
    }

    /// Room messages the server accepted.
    pub fn accepted(&self) -> usize {
        self.model.msgs.len()
    }

    /// The bug planted in the server, if any.
    pub fn plant(&self) -> Plant {
        self.plant
    }

    /// Virtual time now, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    fn at(&mut self, t: u64, what: Sched) {
        self.qseq += 1;
        self.queue.insert((t.max(self.now), self.qseq), what);
    }

    fn log(&mut self, ev: Ev) {
        self.trace.push(self.stats.steps, self.now, ev);
    }

    /// Runs both phases and the shutdown, checking invariants throughout.
    pub fn run(&mut self) -> Result<(), String> {
        self.log(Ev::Phase("fault"));
        for slot in 0..self.slots.len() {
            let t = self.work.below(ms(50));
            self.at(t, Sched::Connect(slot));
            let t = self.work.below(ms(self.mix.act_gap_ms) + 1);
            self.at(t, Sched::Act(slot));
        }
        if self.mix.faults.iter().any(|w| *w > 0) {
            let t = self.faults.below(ms(self.mix.fault_gap_ms));
            self.at(t, Sched::Fault);
        }
        self.at(ms(self.mix.fault_ms), Sched::Heal);
        let mut drain_steps = 0u64;
        loop {
            if self.stage != Stage::Fault && self.quiet() {
                // Only timers are left and no byte moves: quiescent.
                if self.stage == Stage::Heal {
                    self.check_drained()?;
                    self.start_shutdown()?;
                    continue;
                }
                break;
            }
            let Some(((t, _), what)) = self.queue.pop_first() else {
                break;
            };
            self.now = t;
            self.stats.steps += 1;
            if self.stage == Stage::Fault && self.stats.steps > self.mix.fault_steps {
                self.heal()?;
            }
            if self.stage != Stage::Fault {
                drain_steps += 1;
                if drain_steps > DRAIN_STEPS {
                    return Err(format!(
                        "no quiescence after {DRAIN_STEPS} drain steps: {what:?}"
                    ));
                }
            }
            self.handle(what)?;
        }
        self.check_shut()?;
        self.stats.virtual_ms = self.now / 1_000_000;
        Ok(())
    }

    fn handle(&mut self, what: Sched) -> Result<(), String> {
        match what {
            Sched::Act(slot) => self.act(slot)?,
            Sched::Connect(slot) => {
                if self.stage == Stage::Fault && self.slots[slot].conn.is_none() {
                    self.connect(slot)?;
                }
            }
            Sched::ToServer(id) => self.deliver_to_server(id)?,
            Sched::ToClient(id) => self.deliver_to_client(id)?,
            Sched::ServerTimer => {
                if self.server_timer == Some(self.now) {
                    self.server_timer = None;
                    self.log(Ev::Timeout);
                    self.call(Call::Timeout)?;
                }
            }
            Sched::ClientTimer(slot) => self.client_timer(slot)?,
            Sched::PeerGone(id) => {
                if self
                    .links
                    .get(&id)
                    .is_some_and(|l| l.server != ServerSide::Gone)
                {
                    self.server_gone(id, "peer gone")?;
                }
            }
            Sched::Resume(slot) => self.resume(slot),
            Sched::Fault => {
                if self.stage == Stage::Fault {
                    self.fault()?;
                }
            }
            Sched::Heal => {
                if self.stage == Stage::Fault {
                    self.heal()?;
                }
            }
        }
        self.settle()
    }

    // ---- server calls -------------------------------------------------------------------

    /// Makes one server call with its model prediction, drains the server and checks.
    fn call(&mut self, call: Call) -> Result<Option<ConnId>, String> {
        let now = self.instant();
        let before: BTreeMap<ConnId, usize> = self
            .links
            .keys()
            .map(|id| (*id, self.server.outbound_bytes(*id)))
            .collect();
        let mut opened = None;
        let order = match call {
            Call::Open => {
                let id = self.server.open(now);
                if id.0 != self.next_id {
                    return Err(format!("server opened {id}, expected #{}", self.next_id));
                }
                self.next_id += 1;
                self.model.open(id, now);
                opened = Some(id);
                Order::Exact
            }
            Call::Input(x, ref bytes, ref frames) => {
                let open = self
                    .links
                    .get(&x)
                    .is_some_and(|l| l.server == ServerSide::Open);
                if open && bytes.len() > self.server.read_budget(x) {
                    return Err(format!(
                        "sim: {} bytes handed to {x} past its read budget {}",
                        bytes.len(),
                        self.server.read_budget(x)
                    ));
                }
                let irc = self.links.get(&x).is_some_and(|l| l.irc);
                self.model.input(x, bytes.len(), frames, now, irc);
                if self.model.conns.get(&x).is_some_and(|c| c.inbox > 0) {
                    self.stats.delayed_calls += 1;
                }
                self.server.handle_input(x, bytes, now);
                Order::Exact
            }
            Call::Close(y) => {
                self.model.gone(y);
                self.server.handle_close(y, now);
                Order::Exact
            }
            Call::Timeout => {
                self.model.timeout(now);
                self.server.handle_timeout(now);
                Order::Any
            }
            Call::Shutdown => {
                self.model.shutdown();
                self.server.shutdown(now);
                Order::Exact
            }
        };
        let events: Vec<Event> = std::iter::from_fn(|| self.server.poll_event()).collect();
        if !events.is_empty() {
            let text: Vec<String> = events
                .iter()
                .map(|e| match e {
                    Event::Registered { conn, nick } => format!("registered {conn} {nick}"),
                    Event::NickChanged { conn, old, new } => format!("nick {conn} {old} {new}"),
                    Event::Closed { conn, code, .. } => {
                        *self.stats.closes.entry(code.to_string()).or_default() += 1;
                        format!("closed {conn} {code}")
                    }
                })
                .collect();
            self.log(Ev::ServerEvent(text.join(", ")));
        }
        let mut seen: BTreeMap<ConnId, Vec<(Out, usize)>> = BTreeMap::new();
        if self.mix.lazy {
            // The writer of each connection with output wakes; it takes when it can write.
            while let Some(id) = self.server.poll_pending() {
                if let Some(link) = self.links.get_mut(&id) {
                    link.ready = true;
                }
            }
        } else {
            // Both ways of draining: poll_transmit, or poll_pending then take_transmit.
            let by_pending = self.net.chance(500);
            let mut current = None;
            while let Some(t) = self.next_transmit(by_pending, &mut current) {
                let (id, items) = self.took(t)?;
                seen.entry(id).or_default().extend(items);
            }
        }
        // Closes the core wants now come after the checks below.
        let closes: Vec<Close> = std::iter::from_fn(|| self.server.poll_close()).collect();
        let mut now_closes = Vec::new();
        for close in closes {
            let id = close.conn;
            self.log(Ev::CloseAsked { conn: id.0 });
            let Some(link) = self.links.get_mut(&id) else {
                return Err(format!("server asked to close unknown connection {id}"));
            };
            match close.mode {
                CloseMode::Flush if link.server == ServerSide::Open => {
                    link.server = ServerSide::Closing;
                    self.closing_since.insert(id, self.now);
                }
                CloseMode::Flush => {
                    return Err(format!("server asked twice to flush and close {id}"));
                }
                CloseMode::Now => now_closes.push(id),
            }
        }
        while let Some(id) = self.server.poll_readable() {
            self.kick_server(id);
        }
        let predicted = self.model.finish(&events)?;
        self.stats.slow_closes += predicted.slow.len() as u64;
        if self.mix.lazy {
            // Checked as the adapter takes it; a slow consumer's untaken output is gone.
            for (id, items) in predicted.expect {
                let Some(link) = self.links.get_mut(&id) else {
                    continue;
                };
                if predicted.slow.contains(&id) {
                    link.expect.clear();
                }
                if !items.is_empty() {
                    link.expect.push_back(Group {
                        items: items.into(),
                        order,
                        lossy: predicted.lossy.contains(&id),
                    });
                }
            }
        } else {
            self.model.compare(order, &predicted, &seen, &before)?;
            for (id, items) in seen {
                let link = self.links.get_mut(&id).expect("link");
                link.deliver.extend(
                    items
                        .into_iter()
                        .map(|(o, _)| o)
                        .filter(|o| *o != Out::Ping),
                );
            }
        }
        self.check_state()?;
        self.schedule_server_timer()?;
        for id in now_closes {
            self.close_now(id)?;
        }
        Ok(opened)
    }

    /// The core says to close the socket now: its output is written, or the linger ran out.
    fn close_now(&mut self, id: ConnId) -> Result<(), String> {
        let Some(link) = self.links.get_mut(&id) else {
            return Err(format!("server asked to close unknown connection {id}"));
        };
        match link.server {
            ServerSide::Gone => return Ok(()),
            ServerSide::Open => return Err(format!("{id} closed now without a flush first")),
            ServerSide::Closing => {}
        }
        if link.wbuf.is_empty() && self.server.outbound_bytes(id) == 0 {
            self.server_gone(id, "flushed and closed")
        } else if self.now_closing_is_early(id) {
            Err(format!(
                "{id} closed before its output was written or its linger ran out"
            ))
        } else {
            // Linger ran out: drop what could not be written, close hard.
            self.stats.linger_expired += 1;
            let l = self.links.get_mut(&id).expect("link");
            l.wbuf.clear();
            l.wbuf_len = 0;
            l.s2c.clear();
            self.server_gone(id, "linger expired")
        }
    }

    /// Whether a connection still holding output was told to close before its linger.
    fn now_closing_is_early(&self, id: ConnId) -> bool {
        self.closing_since
            .get(&id)
            .is_some_and(|t| self.now < t + nanos(self.cfg.close_linger))
    }

    /// The next transmit of an eager drain, through `poll_transmit` or through
    /// `poll_pending` (remembered in `current`) and `take_transmit`.
    fn next_transmit(
        &mut self,
        by_pending: bool,
        current: &mut Option<ConnId>,
    ) -> Option<Transmit> {
        if !by_pending {
            return self.server.poll_transmit();
        }
        loop {
            if let Some(t) = current.and_then(|id| self.server.take_transmit(id)) {
                return Some(t);
            }
            *current = Some(self.server.poll_pending()?);
        }
    }

    /// The adapter took a transmit: decode it for the checks and buffer it for writing.
    fn took(&mut self, t: Transmit) -> Result<(ConnId, Vec<(Out, usize)>), String> {
        let Some(link) = self.links.get_mut(&t.conn) else {
            return Err(format!("server output for unknown connection {}", t.conn));
        };
        if t.data.len() > self.cfg.max_transmit_bytes && t.data.len() > first_frame_len(&t.data) {
            return Err(format!(
                "transmit of {} bytes for {} exceeds max_transmit_bytes with more than one frame",
                t.data.len(),
                t.conn
            ));
        }
        let mut items = Vec::new();
        if link.irc {
            link.itap.feed(&t.data, &mut items)?;
        } else {
            link.tap.feed(&t.data, &mut items)?;
        }
        link.wbuf_len += t.data.len();
        let (bytes, digest) = (t.data.len(), fnv(&t.data));
        link.wbuf.push_back(t.data);
        self.log(Ev::Output {
            conn: t.conn.0,
            frames: items.len(),
            bytes,
            digest,
        });
        Ok((t.conn, items))
    }

    /// Lazy adapter: takes output for `id` while its socket has room, checking each item
    /// against what earlier calls queued for it.
    fn take_lazily(&mut self, id: ConnId) -> Result<(), String> {
        loop {
            let link = &self.links[&id];
            if !link.ready || !link.wbuf.is_empty() || link.s2c.len() >= self.mix.sock_buf {
                return Ok(());
            }
            let Some(t) = self.server.take_transmit(id) else {
                self.links.get_mut(&id).expect("link").ready = false;
                return Ok(());
            };
            let (_, items) = self.took(t)?;
            let link = self.links.get_mut(&id).expect("link");
            for (item, _) in items {
                if let Err(e) = take_expected(&mut link.expect, &item) {
                    return Err(format!(
                        "output to {id} differs from the model: {e}\n    expected: {:?}",
                        link.expect
                    ));
                }
                if item != Out::Ping {
                    link.deliver.push_back(item);
                }
            }
            self.write_out(id);
            self.closes_after_write()?;
            if self
                .links
                .get(&id)
                .is_none_or(|l| l.server == ServerSide::Gone)
            {
                return Ok(());
            }
        }
    }

    /// Moves the adapter's write buffer into the socket as far as it has room.
    fn write_out(&mut self, id: ConnId) {
        let link = self.links.get_mut(&id).expect("link");
        let room = self.mix.sock_buf.saturating_sub(link.s2c.len());
        let mut moved = 0;
        while moved < room {
            let Some(front) = link.wbuf.front_mut() else {
                break;
            };
            let n = front.len().min(room - moved);
            link.s2c.extend(&front[..n]);
            let _ = front.split_to(n);
            if front.is_empty() {
                link.wbuf.pop_front();
            }
            moved += n;
        }
        if moved > 0 {
            link.wbuf_len -= moved;
            self.server.handle_written(id, moved);
            self.kick_client(id);
        }
    }

    /// Acts on the closes the core asked for outside a call (after `handle_written`).
    fn closes_after_write(&mut self) -> Result<(), String> {
        while let Some(close) = self.server.poll_close() {
            self.log(Ev::CloseAsked { conn: close.conn.0 });
            if close.mode != CloseMode::Now {
                return Err(format!("{} asked to flush outside a call", close.conn));
            }
            self.close_now(close.conn)?;
        }
        Ok(())
    }

    /// The server end of `id` is done: the adapter closes the socket and reports it.
    fn server_gone(&mut self, id: ConnId, why: &'static str) -> Result<(), String> {
        self.closing_since.remove(&id);
        let link = self.links.get_mut(&id).expect("link");
        link.server = ServerSide::Gone;
        link.s2c_eof = true;
        link.wbuf.clear();
        link.wbuf_len = 0;
        link.c2s.clear();
        link.units.clear();
        self.log(Ev::Gone { conn: id.0, why });
        self.call(Call::Close(id))?;
        self.kick_client(id);
        self.reap(id);
        Ok(())
    }

    fn reap(&mut self, id: ConnId) {
        if self
            .links
            .get(&id)
            .is_some_and(|l| !l.attached && l.server == ServerSide::Gone)
        {
            self.links.remove(&id);
        }
    }

    /// Moves the adapter's write buffers into the pipes; the core says which closes are done.
    fn settle(&mut self) -> Result<(), String> {
        let ids: Vec<ConnId> = self.links.keys().copied().collect();
        for id in ids {
            if self
                .links
                .get(&id)
                .is_none_or(|l| l.server == ServerSide::Gone)
            {
                continue;
            }
            self.write_out(id);
            self.closes_after_write()?;
            if self.mix.lazy
                && self
                    .links
                    .get(&id)
                    .is_some_and(|l| l.server != ServerSide::Gone)
            {
                self.take_lazily(id)?;
            }
        }
        Ok(())
    }

    fn schedule_server_timer(&mut self) -> Result<(), String> {
        let server_next = self.server.poll_timeout();
        if let Some(model_next) = self.model.next_deadline() {
            match server_next {
                Some(t) if t <= model_next => {}
                other => {
                    return Err(format!(
                        "server keepalive timer late: next at {:?}, a deadline falls at {:?}",
                        other.map(|t| t.saturating_duration_since(self.base)),
                        model_next.saturating_duration_since(self.base)
                    ))
                }
            }
        }
        if let Some(t) = server_next {
            let t = nanos(t.saturating_duration_since(self.base)).max(self.now);
            if self.server_timer != Some(t) {
                self.server_timer = Some(t);
                self.at(t, Sched::ServerTimer);
            }
        }
        Ok(())
    }

    // ---- pipes --------------------------------------------------------------------------

    fn latency(&mut self) -> u64 {
        if self.mix.latency_us == 0 || self.net.chance(150) {
            0
        } else {
            self.net.below(self.mix.latency_us * 1000) + 1
        }
    }

    fn chunk(&mut self, len: usize) -> usize {
        if self.net.chance(self.mix.tiny_chunks) {
            self.net.range_usize(1, len.min(8))
        } else if self.net.chance(400) {
            len
        } else {
            self.net.range_usize(1, len)
        }
    }

    fn kick_server(&mut self, id: ConnId) {
        let lat = self.latency();
        if let Some(link) = self.links.get_mut(&id) {
            if !link.c2s_sched {
                link.c2s_sched = true;
                let t = self.now + lat;
                self.at(t, Sched::ToServer(id));
            }
        }
    }

    fn kick_client(&mut self, id: ConnId) {
        let lat = self.latency();
        if let Some(link) = self.links.get_mut(&id) {
            if !link.s2c_sched && link.attached {
                link.s2c_sched = true;
                let t = self.now + lat;
                self.at(t, Sched::ToClient(id));
            }
        }
    }

    fn deliver_to_server(&mut self, id: ConnId) -> Result<(), String> {
        let Some(link) = self.links.get_mut(&id) else {
            return Ok(());
        };
        link.c2s_sched = false;
        if link.server == ServerSide::Gone {
            let late: Vec<u8> = link.c2s.drain(..).collect();
            link.units.clear();
            if !late.is_empty() && self.net.chance(250) {
                // A sloppy adapter hands over bytes read after it reported the close;
                // the server must ignore them.
                self.call(Call::Input(id, late, Vec::new()))?;
            }
            return Ok(());
        }
        if link.c2s_stall > self.now {
            link.c2s_sched = true;
            let t = link.c2s_stall;
            self.at(t, Sched::ToServer(id));
            return Ok(());
        }
        if link.c2s.is_empty() {
            if link.c2s_eof {
                self.server_gone(id, "end of stream")?;
            }
            return Ok(());
        }
        // As an adapter must: no more than the read budget; none at all while paused (the
        // core names the connection in `poll_readable` when it may be read again).
        let budget = self.server.read_budget(id);
        if budget == 0 {
            self.stats.paused_reads += 1;
            return Ok(());
        }
        let len = link.c2s.len().min(budget);
        let mut n = self.chunk(len);
        let link = &self.links[&id];
        let end = link.delivered + n as u64;
        let completing = link.units.iter().take_while(|u| u.at <= end).count();
        if completing > 1 && self.overflow_possible(id, completing) {
            // One frame per call, so a slow-consumer close has a known place.
            n = (link.units[0].at - link.delivered) as usize;
            self.stats.split_calls += 1;
        } else if completing > 1 {
            self.stats.multi_frame_calls += 1;
        }
        let link = self.links.get_mut(&id).expect("link");
        let bytes: Vec<u8> = link.c2s.drain(..n).collect();
        link.delivered += n as u64;
        let mut frames = Vec::new();
        while link.units.front().is_some_and(|u| u.at <= link.delivered) {
            let unit = link.units.pop_front().expect("unit");
            frames.push((unit.frame, unit.at));
        }
        let more = !link.c2s.is_empty() || link.c2s_eof;
        self.log(Ev::ToServer {
            conn: id.0,
            bytes: n,
            frames: frames.len(),
        });
        self.call(Call::Input(id, bytes, frames))?;
        if more {
            self.kick_server(id);
        }
        Ok(())
    }

    /// Whether handling `frames` frames of `x` at once could overflow anyone's output limit.
    fn overflow_possible(&self, x: ConnId, frames: usize) -> bool {
        let c = &self.cfg;
        let worst = self
            .links
            .keys()
            .map(|id| self.server.outbound_bytes(*id))
            .max()
            .unwrap_or(0);
        let (nick, room, reason) = (
            c.max_nick_len as usize,
            c.max_room_len as usize,
            c.max_reason_len as usize,
        );
        let rooms_list: usize = self
            .model
            .rooms
            .values()
            .map(|r| r.name.len() + 14)
            .sum::<usize>()
            + 8;
        let members_list = (self.model.conns.len() + 1) * (nick + room + 14);
        let depart = self
            .model
            .conns
            .get(&x)
            .map_or(0, |m| m.rooms.len() * (24 + room + nick + reason));
        let units = &self.links[&x].units;
        let bound: usize = units
            .iter()
            .take(frames)
            .map(|u| {
                // Replies may add a topic (after a join) or an away message (after a whisper).
                let extra = c.max_topic_len as usize + reason;
                600 + extra + 3 * u.len + 2 * nick + rooms_list + members_list + depart
            })
            .sum();
        // IRC lines carry full sources and a registration is a burst of lines.
        let bound = if self.mix.irc.contains(&true) {
            bound * 4 + 2048
        } else {
            bound
        };
        worst + bound > c.max_outbound_bytes
    }

    fn deliver_to_client(&mut self, id: ConnId) -> Result<(), String> {
        let Some(link) = self.links.get_mut(&id) else {
            return Ok(());
        };
        link.s2c_sched = false;
        if !link.attached {
            link.s2c.clear();
            return Ok(());
        }
        let slot = link.slot;
        if self.slots[slot].deaf_until > self.now {
            return Ok(()); // Resume kicks it.
        }
        if link.s2c_stall > self.now {
            link.s2c_sched = true;
            let t = link.s2c_stall;
            self.at(t, Sched::ToClient(id));
            return Ok(());
        }
        if link.s2c.is_empty() {
            if link.s2c_eof {
                self.detach(slot, "end of stream");
            }
            return Ok(());
        }
        let len = link.s2c.len();
        let n = self.chunk(len);
        let link = self.links.get_mut(&id).expect("link");
        let bytes: Vec<u8> = link.s2c.drain(..n).collect();
        let more = !link.s2c.is_empty() || link.s2c_eof;
        self.log(Ev::ToClient {
            conn: id.0,
            bytes: n,
        });
        let now = self.instant();
        if self.slots[slot].irc.is_some() {
            self.irc_events(slot, id, &bytes)?;
            self.flush_client(slot);
            if more {
                self.kick_client(id);
            }
            return Ok(());
        }
        let client = self.slots[slot].client.as_mut().expect("attached client");
        if let Err(e) = client.handle_input(&bytes, now) {
            return Err(format!(
                "client of {id} could not decode server output: {e}"
            ));
        }
        self.client_events(slot, id)?;
        self.flush_client(slot);
        self.arm_client_timer(slot);
        if more {
            self.kick_client(id);
        }
        Ok(())
    }

    // ---- clients ------------------------------------------------------------------------

    fn connect(&mut self, slot: usize) -> Result<(), String> {
        let id = self.call(Call::Open)?.expect("opened");
        let nick = self.pick_nick(slot);
        self.stats.connects += 1;
        self.log(Ev::Connect {
            slot,
            conn: id.0,
            nick: nick.clone(),
        });
        self.links.insert(
            id,
            Link {
                slot,
                c2s: VecDeque::new(),
                units: VecDeque::new(),
                sent: 0,
                delivered: 0,
                c2s_eof: false,
                c2s_sched: false,
                c2s_stall: 0,
                wbuf: VecDeque::new(),
                wbuf_len: 0,
                s2c: VecDeque::new(),
                s2c_eof: false,
                s2c_sched: false,
                s2c_stall: 0,
                server: ServerSide::Open,
                attached: true,
                tap: Tap::new(&self.cfg),
                irc: self.mix.irc[slot],
                itap: IrcTap::new(&self.cfg),
                deliver: VecDeque::new(),
                ready: false,
                expect: VecDeque::new(),
            },
        );
        if self.mix.irc[slot] {
            let pw = match &self.cfg.password {
                Some(pw) if !self.work.chance(50) => Some(pw.clone()),
                Some(_) => Some("guess".to_owned()),
                None => None,
            };
            let s = &mut self.slots[slot];
            s.conn = Some(id);
            s.irc = Some(IrcPeer::new(&self.cfg, &nick, pw.as_deref()));
            s.client = None;
            s.done = false;
            s.hellos = 1;
            s.received.clear();
            s.last_from.clear();
            s.held.clear();
            s.silent_until = 0;
            s.deaf_until = 0;
            self.flush_client(slot);
            return Ok(());
        }
        let s = &mut self.slots[slot];
        s.conn = Some(id);
        s.irc = None;
        let mut client = match &self.cfg.password {
            // Now and then a client does not know the password.
            Some(pw) if !self.work.chance(50) => Client::with_password(&nick, pw),
            Some(_) => Client::with_password(&nick, "guess"),
            None => Client::new(&nick),
        };
        // Half the clients pace themselves to the announced rate; the others flood, so
        // the server's backpressure is what holds them.
        client.set_paced(self.work.chance(500));
        s.client = Some(client);
        s.done = false;
        s.hellos = 1;
        s.received.clear();
        s.last_from.clear();
        s.held.clear();
        s.silent_until = 0;
        s.deaf_until = 0;
        if self.stage == Stage::Fault && self.work.chance(30) {
            // A client from the future: its hello asks for a version the server lacks.
            let hello = ClientPacket::Hello {
                version: 2,
                nick,
                password: String::new(),
            };
            let piece = Piece::from_client(hello.to_frame(), self.cfg.max_frame_len);
            self.write(slot, piece);
        }
        self.flush_client(slot);
        Ok(())
    }

    /// A nick for a hello or a change: from the pool, or (sometimes) one someone holds.
    fn pick_nick(&mut self, slot: usize) -> String {
        if self.stage != Stage::Fault || self.slots[slot].hellos > 3 {
            return format!("u{slot}x{}", self.slots[slot].hellos);
        }
        if self.work.chance(self.mix.taken_nick) && !self.model.nicks.is_empty() {
            let i = self.work.index(self.model.nicks.len());
            let holder = *self.model.nicks.values().nth(i).expect("nick");
            let nick = self.model.conns[&holder].nick.clone();
            return self.recase(&nick);
        }
        let n = format!("n{}", self.work.below(self.mix.nicks as u64));
        self.recase(&n)
    }

    fn recase(&mut self, s: &str) -> String {
        if self.work.chance(800) {
            return s.to_owned();
        }
        s.chars()
            .map(|c| {
                if self.work.chance(500) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    fn pool_room(&mut self) -> String {
        let r = format!("r{}", self.work.below(self.mix.rooms as u64));
        self.recase(&r)
    }

    /// A room this client believes it is in, or a pool room.
    fn my_room(&mut self, slot: usize, permille: u32) -> String {
        let rooms: Vec<String> = match (&self.slots[slot].client, &self.slots[slot].irc) {
            (Some(c), _) => c.rooms().map(|v| v.name.clone()).collect(),
            (None, Some(p)) => p.room_names(),
            _ => Vec::new(),
        };
        if !rooms.is_empty() && self.work.chance(permille) {
            let i = self.work.index(rooms.len());
            let r = rooms[i].clone();
            return self.recase(&r);
        }
        self.pool_room()
    }

    fn text(&mut self, prefix: char, room_len: usize) -> String {
        self.stats.said += 1;
        let id = self.stats.said;
        let mut text = format!("{prefix}{id}");
        let c = &self.cfg;
        // Keep the frame within the server's limit so the padding is not a violation.
        let fits = (c.max_frame_len as usize).saturating_sub(1 + 2 + room_len.max(32) + 2 + 8);
        // With IRC clients about, a native message must fit one IRC line (longer ones
        // reach IRC split in several, which the model does not restate).
        let irc_line = if self.mix.irc.contains(&true) {
            300
        } else {
            usize::MAX
        };
        let max = (c.max_text_len as usize)
            .min(fits)
            .min(irc_line)
            .saturating_sub(text.len() + 1);
        let pad = self.work.range_usize(0, self.mix.pad.min(max));
        if pad > 0 {
            text.push(' ');
            let ch = if self.work.chance(100) { 'ü' } else { 'x' };
            let mut n = 0;
            while n + ch.len_utf8() <= pad {
                text.push(ch);
                n += ch.len_utf8();
            }
        }
        text
    }

    fn act(&mut self, slot: usize) -> Result<(), String> {
        if self.stage != Stage::Fault {
            return Ok(());
        }
        let gap = self.work.range(1, ms(self.mix.act_gap_ms) + 1);
        self.at(self.now + gap, Sched::Act(slot));
        let s = &self.slots[slot];
        let (closed, registered) = match (&s.client, &s.irc) {
            (Some(c), _) => (c.is_closed(), c.is_registered()),
            (None, Some(p)) => (p.closed, p.registered),
            _ => return Ok(()),
        };
        let Some(id) = s.conn else {
            return Ok(());
        };
        if s.done || closed {
            return Ok(());
        }
        if !registered && self.work.chance(800) {
            return Ok(());
        }
        let Some(i) = self.work.weighted(&self.mix.acts) else {
            return Ok(());
        };
        let what = if self.slots[slot].irc.is_some() {
            self.do_irc_act(slot, ACTS[i])
        } else {
            self.do_act(slot, ACTS[i])?
        };
        self.log(Ev::Act {
            slot,
            conn: id.0,
            what,
        });
        self.flush_client(slot);
        Ok(())
    }

    fn client(&mut self, slot: usize) -> &mut Client {
        self.slots[slot].client.as_mut().expect("client")
    }

    fn do_act(&mut self, slot: usize, act: Act) -> Result<String, String> {
        let what = match act {
            Act::Join => {
                let room = self.pool_room();
                let key = self.pool_key();
                self.client(slot).join_with_key(&room, &key);
                format!("join {room} {key:?}")
            }
            Act::Leave => {
                let room = self.my_room(slot, 900);
                let reason = if self.work.chance(500) {
                    String::new()
                } else {
                    format!("bye{}", self.work.below(100))
                };
                self.client(slot).leave(&room, &reason);
                format!("leave {room}")
            }
            Act::Say => {
                let room = self.my_room(slot, 950);
                let text = self.text('m', room.len());
                self.client(slot).say(&room, &text);
                format!("say {room} {}", text.split(' ').next().unwrap_or(""))
            }
            Act::Whisper => {
                let to = if self.work.chance(700) && !self.model.nicks.is_empty() {
                    let i = self.work.index(self.model.nicks.len());
                    let holder = *self.model.nicks.values().nth(i).expect("nick");
                    self.model.conns[&holder].nick.clone()
                } else {
                    format!("n{}", self.work.below(self.mix.nicks as u64))
                };
                let to = self.recase(&to);
                let text = self.text('d', to.len());
                self.client(slot).whisper(&to, &text);
                format!("whisper {to}")
            }
            Act::Nick => {
                let own = self.client(slot).nick().to_owned();
                let nick = match self.work.below(4) {
                    0 => own.clone(),
                    1 => self.recase(&own),
                    _ => self.pick_nick(slot),
                };
                self.client(slot).change_nick(&nick);
                format!("nick {nick}")
            }
            Act::ListRooms => {
                self.client(slot).list_rooms();
                "list rooms".into()
            }
            Act::ListMembers => {
                let room = self.my_room(slot, 500);
                self.client(slot).list_members(&room);
                format!("members {room}")
            }
            Act::Ping => {
                let token = self.work.next_u64();
                self.client(slot).ping(token);
                "ping".into()
            }
            Act::Quit => {
                let reason = if self.work.chance(500) { "" } else { "done" };
                self.client(slot).quit(reason);
                self.slots[slot].done = true;
                "quit".into()
            }
            Act::Silent => {
                let d = self.pause_len();
                self.slots[slot].silent_until = self.now + d;
                self.at(self.now + d, Sched::Resume(slot));
                format!("silent {}ms", d / 1_000_000)
            }
            Act::Deaf => {
                let d = self.pause_len();
                self.slots[slot].deaf_until = self.now + d;
                self.at(self.now + d, Sched::Resume(slot));
                format!("deaf {}ms", d / 1_000_000)
            }
            Act::Disconnect => {
                let rst = self.work.chance(500);
                self.flush_client(slot);
                self.disconnect(slot, rst);
                if rst { "reset" } else { "close" }.into()
            }
            Act::Malformed => {
                self.flush_client(slot);
                let kind = self.work.below(MALFORMED_KINDS);
                let filler = self.work.below(256) as u8;
                let piece = malformed(kind, self.cfg.max_frame_len, filler);
                let what = format!("malformed {}", frame_name(&piece.units[0].frame));
                self.write(slot, piece);
                self.stats.bad_frames += 1;
                self.slots[slot].done = self.work.chance(700);
                what
            }
            Act::Invalid => self.invalid(slot),
            Act::Topic => {
                let room = self.my_room(slot, 900);
                let topic = if self.work.chance(200) {
                    String::new()
                } else {
                    format!("t{}", self.work.below(1000))
                };
                self.client(slot).set_topic(&room, &topic);
                format!("topic {room} {topic:?}")
            }
            Act::Kick => {
                let room = self.my_room(slot, 900);
                let nick = self.some_nick(slot);
                self.client(slot).kick(&room, &nick, "out");
                format!("kick {room} {nick}")
            }
            Act::Mode => {
                let room = self.my_room(slot, 900);
                let mode =
                    [RoomMode::TopicLock, RoomMode::Operator, RoomMode::Voice][self.work.index(3)];
                let on = self.work.chance(600);
                let nick = if mode.takes_nick() {
                    self.some_nick(slot)
                } else {
                    String::new()
                };
                self.client(slot).set_mode(&room, mode, on, &nick);
                format!(
                    "mode {room} {}{} {nick}",
                    if on { '+' } else { '-' },
                    mode.letter() as char
                )
            }
            Act::Away => {
                let message = if self.work.chance(400) {
                    String::new()
                } else {
                    "brb".to_owned()
                };
                self.client(slot).away(&message);
                format!("away {message:?}")
            }
            Act::Whois => {
                let nick = self.some_nick(slot);
                self.client(slot).whois(&nick);
                format!("whois {nick}")
            }
            Act::Rule => {
                let room = self.my_room(slot, 900);
                let (rule, on, arg) = self.pick_rule(slot);
                self.client(slot).set_rule(&room, rule, on, &arg);
                format!(
                    "rule {room} {}{} {arg:?}",
                    if on { '+' } else { '-' },
                    rule.letter() as char
                )
            }
            Act::Invite => {
                let room = self.my_room(slot, 900);
                let nick = self.some_nick(slot);
                self.client(slot).invite(&room, &nick);
                format!("invite {room} {nick}")
            }
            Act::ListRules => {
                let room = self.my_room(slot, 700);
                self.client(slot).list_rules(&room);
                format!("rules {room}")
            }
        };
        Ok(what)
    }

    fn peer(&mut self, slot: usize) -> &mut IrcPeer {
        self.slots[slot].irc.as_mut().expect("irc peer")
    }

    /// What an IRC client does for `act`: the commands it shares with the native protocol
    /// as IRC lines; the native-only ones (lists, whois, away, pings) it skips.
    fn do_irc_act(&mut self, slot: usize, act: Act) -> String {
        let cmd = match act {
            Act::Join => {
                let chan = format!("#{}", self.pool_room());
                let key = self.pool_key();
                Cmd::Join { chan, key }
            }
            Act::Leave => {
                let chan = format!("#{}", self.my_room(slot, 900));
                let reason = if self.work.chance(500) {
                    String::new()
                } else {
                    format!("bye{}", self.work.below(100))
                };
                Cmd::Part { chan, reason }
            }
            Act::Say => {
                let room = self.my_room(slot, 950);
                let text = self.text('m', room.len());
                Cmd::Privmsg {
                    target: format!("#{room}"),
                    text,
                }
            }
            Act::Whisper => {
                let to = self.some_nick(slot);
                let text = self.text('d', to.len());
                Cmd::Privmsg { target: to, text }
            }
            Act::Nick => {
                let nick = self.pick_nick(slot);
                Cmd::Nick(nick)
            }
            Act::Quit => {
                self.slots[slot].done = true;
                let reason = if self.work.chance(500) { "" } else { "done" };
                Cmd::Quit(reason.into())
            }
            Act::Topic => Cmd::Topic {
                chan: format!("#{}", self.my_room(slot, 900)),
                topic: format!("t{}", self.work.below(1000)),
            },
            Act::Kick => Cmd::Kick {
                chan: format!("#{}", self.my_room(slot, 900)),
                nick: self.some_nick(slot),
                reason: "out".into(),
            },
            Act::Mode => {
                let chan = format!("#{}", self.my_room(slot, 900));
                let letter = ['t', 'o', 'v'][self.work.index(3)];
                let arg = if letter == 't' {
                    String::new()
                } else {
                    self.some_nick(slot)
                };
                let on = self.work.chance(600);
                Cmd::Mode {
                    chan,
                    on,
                    letter,
                    arg,
                }
            }
            Act::Rule => {
                let chan = format!("#{}", self.my_room(slot, 900));
                let (rule, on, arg) = self.pick_rule(slot);
                // A space would split the argument in two; the model reads the line as sent.
                // An empty one would ask for a mask list (`MODE #r +b`), another command.
                let arg = match arg.replace(' ', "") {
                    a if a.is_empty() && rule.takes_arg(true) && rule.takes_arg(false) => {
                        "n?".to_owned()
                    }
                    a => a,
                };
                Cmd::Mode {
                    chan,
                    on,
                    letter: rule.letter() as char,
                    arg,
                }
            }
            Act::Invite => Cmd::Invite {
                nick: self.some_nick(slot),
                chan: format!("#{}", self.my_room(slot, 900)),
            },
            Act::Invalid => match self.work.below(3) {
                0 => Cmd::Join {
                    chan: self.pool_room(),
                    key: String::new(),
                },
                1 => Cmd::Privmsg {
                    target: "nobody".into(),
                    text: "hi".into(),
                },
                _ => Cmd::User("again".into()),
            },
            Act::Silent | Act::Deaf | Act::Disconnect => {
                return self.do_act(slot, act).unwrap_or_default()
            }
            _ => return format!("irc: no {act:?}"),
        };
        let what = format!("irc {}", cmd.line().trim_end());
        self.peer(slot).send(cmd);
        what
    }

    /// A room key from a small pool, often none.
    fn pool_key(&mut self) -> String {
        match self.work.below(6) {
            0 => "k1".into(),
            1 => "k2".into(),
            _ => String::new(),
        }
    }

    /// A rule change to ask for, with its argument: mostly valid, sometimes not.
    fn pick_rule(&mut self, slot: usize) -> (RoomRule, bool, String) {
        let rule = [
            RoomRule::Key,
            RoomRule::Limit,
            RoomRule::InviteOnly,
            RoomRule::Moderated,
            RoomRule::Secret,
            RoomRule::Ban,
            RoomRule::Ban,
            RoomRule::BanExempt,
            RoomRule::InviteExempt,
        ][self.work.index(9)];
        let on = self.work.chance(600);
        let arg = match rule {
            RoomRule::Key => ["k1", "k2", "k1", "", "a,b", "kkkkkkkkkkkkkkkkkkkkkkkk"]
                [self.work.index(6)]
            .to_owned(),
            RoomRule::Limit => {
                ["1", "2", "3", "5", "0", "70000", "x"][self.work.index(7)].to_owned()
            }
            RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => {
                let nick = self.some_nick(slot);
                match self.work.below(8) {
                    0 | 1 => nick,
                    2 => format!("{}*", &nick[..1]),
                    3 => format!("*!~{nick}@*"),
                    4 => format!("{nick}!*"),
                    5 => format!("~{nick}@*"),
                    6 => "*!*@*".into(),
                    _ => ["", "a b", "n?"][self.work.index(3)].to_owned(),
                }
            }
            _ => String::new(),
        };
        (rule, on, arg)
    }

    /// A nick someone holds (often someone in a room with this client), or a pool nick.
    fn some_nick(&mut self, slot: usize) -> String {
        let peers: Vec<String> = match (&self.slots[slot].client, &self.slots[slot].irc) {
            (Some(c), _) => c.rooms().flat_map(|v| v.members.clone()).collect(),
            (None, Some(p)) => p.peers(),
            _ => Vec::new(),
        };
        let nick = if !peers.is_empty() && self.work.chance(700) {
            peers[self.work.index(peers.len())].clone()
        } else if !self.model.nicks.is_empty() && self.work.chance(700) {
            let i = self.work.index(self.model.nicks.len());
            let holder = *self.model.nicks.values().nth(i).expect("nick");
            self.model.conns[&holder].nick.clone()
        } else {
            format!("n{}", self.work.below(self.mix.nicks as u64))
        };
        self.recase(&nick)
    }

    fn pause_len(&mut self) -> u64 {
        let idle = nanos(self.cfg.idle_timeout);
        if self.work.chance(300) {
            self.work.range(idle / 2, idle * 2)
        } else {
            self.work.range(ms(10), ms(2000))
        }
    }

    /// A well-formed request the server must refuse (or, sometimes, accept oddly).
    fn invalid(&mut self, slot: usize) -> String {
        let room = self.my_room(slot, 800);
        let long = |n: usize| "y".repeat(n + 1);
        let (c_reason, c_text) = (
            self.cfg.max_reason_len as usize,
            self.cfg.max_text_len as usize,
        );
        let nick = self.client(slot).nick().to_owned();
        let (p, what) = match self.work.below(10) {
            0 => (
                ClientPacket::Join {
                    room: "no room!".into(),
                    key: String::new(),
                },
                "join bad name",
            ),
            1 => (
                ClientPacket::Say {
                    room,
                    text: String::new(),
                },
                "say empty",
            ),
            2 => (
                ClientPacket::Say {
                    room,
                    text: "two\nlines".into(),
                },
                "say newline",
            ),
            3 => (
                ClientPacket::Nick {
                    nick: "9lives".into(),
                },
                "nick bad",
            ),
            4 => (
                ClientPacket::Leave {
                    room,
                    reason: long(c_reason),
                },
                "leave long reason",
            ),
            5 => (
                ClientPacket::Say {
                    room,
                    text: long(c_text),
                },
                "say long",
            ),
            6 => {
                // Through the client API: a refused second hello must not change its nick.
                let nick = self.pick_nick(slot);
                self.client(slot).hello(&nick);
                return format!("invalid: hello again as {nick}");
            }
            7 => (
                ClientPacket::Hello {
                    version: 2,
                    nick,
                    password: String::new(),
                },
                "hello v2",
            ),
            8 => (
                ClientPacket::ListMembers {
                    room: "nowhere".into(),
                },
                "members unknown",
            ),
            _ => (
                ClientPacket::Whisper {
                    to: "nobody".into(),
                    text: "hi".into(),
                },
                "whisper nobody",
            ),
        };
        self.client(slot).send(&p);
        format!("invalid: {what}")
    }

    /// Writes what the client queued (requests, pongs) to its connection.
    fn flush_client(&mut self, slot: usize) {
        if let Some(peer) = self.slots[slot].irc.as_mut() {
            if let Some(piece) = peer.poll_transmit() {
                self.write(slot, piece);
            }
            return;
        }
        let Some(client) = self.slots[slot].client.as_mut() else {
            return;
        };
        if let Some(bytes) = client.poll_transmit() {
            let piece = Piece::from_client(bytes, self.cfg.max_frame_len);
            self.write(slot, piece);
        }
    }

    /// Client bytes go to the pipe, or are held while the client is silent.
    fn write(&mut self, slot: usize, piece: Piece) {
        if self.slots[slot].silent_until > self.now {
            self.slots[slot].held.push(piece);
            return;
        }
        let Some(id) = self.slots[slot].conn else {
            return;
        };
        let link = self.links.get_mut(&id).expect("link");
        if link.c2s_eof {
            return;
        }
        for mut u in piece.units {
            u.at += link.sent;
            link.units.push_back(u);
        }
        link.sent += piece.bytes.len() as u64;
        link.c2s.extend(&piece.bytes[..]);
        self.kick_server(id);
    }

    fn resume(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if s.silent_until <= self.now && !s.held.is_empty() {
            let held = std::mem::take(&mut s.held);
            for piece in held {
                self.write(slot, piece);
            }
        }
        if let Some(id) = self.slots[slot].conn {
            if self.slots[slot].deaf_until <= self.now {
                self.kick_client(id);
                self.arm_client_timer(slot);
            }
        }
    }

    /// The client closes its end: a reset loses what is in flight, a close delivers it
    /// first. Either way the client is gone at once.
    fn disconnect(&mut self, slot: usize, rst: bool) {
        let Some(id) = self.slots[slot].conn else {
            return;
        };
        let link = self.links.get_mut(&id).expect("link");
        if rst {
            link.c2s.clear();
            link.units.clear();
            self.stats.resets += 1;
            let lat = self.latency();
            self.at(self.now + lat, Sched::PeerGone(id));
        } else {
            link.c2s_eof = true;
            self.kick_server(id);
        }
        self.detach(slot, if rst { "reset" } else { "closed" });
    }

    /// The slot lets go of its connection.
    fn detach(&mut self, slot: usize, why: &'static str) {
        let Some(id) = self.slots[slot].conn.take() else {
            return;
        };
        let s = &mut self.slots[slot];
        s.client = None;
        s.irc = None;
        s.held.clear();
        s.client_timer = None;
        if let Some(link) = self.links.get_mut(&id) {
            link.attached = false;
            link.s2c.clear();
        }
        self.log(Ev::Gone { conn: id.0, why });
        self.reap(id);
        if self.stage == Stage::Fault && self.mix.reconnect {
            let d = self.work.range(ms(1), ms(2000));
            self.at(self.now + d, Sched::Connect(slot));
        }
    }

    fn arm_client_timer(&mut self, slot: usize) {
        let Some(client) = self.slots[slot].client.as_ref() else {
            return;
        };
        let Some(t) = client.poll_timeout() else {
            return;
        };
        let t = nanos(t.saturating_duration_since(self.base)).max(self.now);
        if self.slots[slot].client_timer != Some(t) {
            self.slots[slot].client_timer = Some(t);
            self.at(t, Sched::ClientTimer(slot));
        }
    }

    fn client_timer(&mut self, slot: usize) -> Result<(), String> {
        if self.slots[slot].client_timer != Some(self.now) {
            return Ok(());
        }
        self.slots[slot].client_timer = None;
        let Some(id) = self.slots[slot].conn else {
            return Ok(());
        };
        if self.slots[slot].deaf_until > self.now {
            return Ok(()); // Not reading, so not judging the server either.
        }
        let now = self.instant();
        let client = self.client(slot);
        if client.is_closed() {
            return Ok(()); // Said bye already; the end of stream follows.
        }
        client.handle_timeout(now);
        if client.is_closed() {
            match client.poll_event() {
                Some(ClientEvent::Bye {
                    code: ErrorCode::Timeout,
                    ..
                }) => {}
                other => return Err(format!("client timeout gave {other:?}")),
            }
            self.log(Ev::ClientTimeout { slot, conn: id.0 });
            self.stats.client_timeouts += 1;
            self.disconnect(slot, true);
        } else {
            // Pacing may have let held requests go.
            self.flush_client(slot);
            self.arm_client_timer(slot);
        }
        Ok(())
    }

    /// Turns a client's events into checks and reactions.
    fn client_events(&mut self, slot: usize, id: ConnId) -> Result<(), String> {
        loop {
            self.room_events(slot, id)?;
            let Some(ev) = self.slots[slot]
                .client
                .as_mut()
                .and_then(|c| c.poll_event())
            else {
                break;
            };
            let link = self.links.get_mut(&id).expect("link");
            let Some(want) = link.deliver.pop_front() else {
                return Err(format!(
                    "client of {id} got {ev:?}, which the server never sent"
                ));
            };
            if !want.matches_event(&ev) {
                return Err(format!(
                    "client of {id} got {ev:?}, but the server sent {want:?}"
                ));
            }
            if let ClientEvent::Error { code, .. } = &ev {
                *self.stats.refused.entry(code.to_string()).or_default() += 1;
            }
            match ev {
                ClientEvent::Message {
                    room,
                    from,
                    seq,
                    text,
                } => self.check_delivery(slot, id, &room, &from, Some(seq), &text)?,
                ClientEvent::Error {
                    code, request_type, ..
                } if request_type == client_type::HELLO
                    && code != ErrorCode::UnsupportedVersion
                    && code != ErrorCode::AlreadyRegistered
                    && !self.client(slot).is_registered() =>
                {
                    self.slots[slot].hellos += 1;
                    let nick = self.pick_nick(slot);
                    self.client(slot).hello(&nick);
                    self.log(Ev::Act {
                        slot,
                        conn: id.0,
                        what: format!("hello again as {nick}"),
                    });
                }
                _ => {}
            }
        }
        if let Some(ev) = self.slots[slot]
            .client
            .as_mut()
            .and_then(|c| c.poll_room_event())
        {
            return Err(format!(
                "client of {id} got {ev:?}, but the server sent {:?} next",
                self.links[&id].deliver.front()
            ));
        }
        // Caught up: nothing the server queued is still queued, in flight or unread.
        let caught_up = self.links[&id].deliver.is_empty() && self.server.outbound_bytes(id) == 0;
        if caught_up && self.model.phase(id) == Some(Phase::Ready) {
            self.check_view(slot, id)?;
        }
        Ok(())
    }

    /// An IRC client reads server bytes: each line it parses must be the next item the
    /// server sent; it reacts as a person would (another nick when its own is taken,
    /// joining when invited).
    fn irc_events(&mut self, slot: usize, id: ConnId, bytes: &[u8]) -> Result<(), String> {
        let items = match self.peer(slot).handle_input(bytes) {
            Ok(items) => items,
            Err(e) => return Err(format!("IRC client of {id} could not read: {e}")),
        };
        for item in items {
            if item == Out::Ping {
                continue;
            }
            let want = self.links.get_mut(&id).and_then(|l| l.deliver.pop_front());
            if want.as_ref() != Some(&item) {
                return Err(format!(
                    "IRC client of {id} read {item:?}, but the server sent {want:?}"
                ));
            }
            match item {
                Out::Message {
                    room, from, text, ..
                } => self.check_delivery(slot, id, &room, &from, None, &text)?,
                Out::Error { code, .. } => {
                    *self.stats.refused.entry(code.to_string()).or_default() += 1;
                    let peer = self.peer(slot);
                    if !peer.registered
                        && !peer.closed
                        && matches!(code, ErrorCode::NickTaken | ErrorCode::InvalidNick)
                    {
                        self.slots[slot].hellos += 1;
                        let nick = self.pick_nick(slot);
                        self.peer(slot).nick.clone_from(&nick);
                        self.peer(slot).send(Cmd::Nick(nick.clone()));
                        self.log(Ev::Act {
                            slot,
                            conn: id.0,
                            what: format!("irc NICK {nick} after a refusal"),
                        });
                    }
                }
                Out::Invited { room, nick, .. } => {
                    self.stats.rule_events += 1;
                    let me = self.peer(slot).nick.eq_ignore_ascii_case(&nick);
                    if me && self.stage == Stage::Fault && self.work.chance(700) {
                        self.peer(slot).send(Cmd::Join {
                            chan: format!("#{room}"),
                            key: String::new(),
                        });
                    }
                }
                Out::RuleChanged { .. } => self.stats.rule_events += 1,
                _ => {}
            }
        }
        let caught_up = self.links[&id].deliver.is_empty() && self.server.outbound_bytes(id) == 0;
        if caught_up && self.model.phase(id) == Some(Phase::Ready) {
            self.check_irc_view(slot, id)?;
        }
        Ok(())
    }

    /// A caught-up IRC client sees its nick, channels and their members as the server does.
    fn check_irc_view(&self, slot: usize, id: ConnId) -> Result<(), String> {
        let Some(peer) = self.slots[slot].irc.as_ref() else {
            return Ok(());
        };
        if peer.closed {
            return Ok(());
        }
        let s = &self.server;
        if Some(peer.nick.as_str()) != s.nick_of(id) {
            return Err(format!(
                "IRC client of {id} thinks it is {}, server says {:?}",
                peer.nick,
                s.nick_of(id)
            ));
        }
        let mine: BTreeSet<String> = peer.rooms.keys().cloned().collect();
        let theirs: BTreeSet<String> = s.rooms_of(id).iter().map(|r| fold(r)).collect();
        if mine != theirs {
            return Err(format!(
                "IRC client of {id} thinks it is in {mine:?}, server says {theirs:?}"
            ));
        }
        for (name, members) in peer.rooms.values() {
            let theirs: BTreeSet<String> = s
                .room_members(name)
                .unwrap_or_default()
                .into_iter()
                .collect();
            if *members != theirs {
                return Err(format!(
                    "IRC client of {id} sees {name} as {members:?}, server has {theirs:?}"
                ));
            }
        }
        Ok(())
    }

    /// The room events (rules, invitations) a client reports apart from its other events,
    /// each checked where it stands in what the server sent. An invited client often
    /// accepts.
    fn room_events(&mut self, slot: usize, id: ConnId) -> Result<(), String> {
        while self.links[&id]
            .deliver
            .front()
            .is_some_and(Out::is_room_event)
        {
            let Some(ev) = self.client(slot).poll_room_event() else {
                return Ok(());
            };
            let want = self
                .links
                .get_mut(&id)
                .and_then(|l| l.deliver.pop_front())
                .expect("front");
            if !want.matches_room_event(&ev) {
                return Err(format!(
                    "client of {id} got {ev:?}, but the server sent {want:?}"
                ));
            }
            self.stats.rule_events += 1;
            if let RoomEvent::Invited { room, nick, .. } = ev {
                let me = self.client(slot).nick().eq_ignore_ascii_case(&nick);
                if me && self.stage == Stage::Fault && self.work.chance(700) {
                    self.client(slot).join(&room);
                    self.log(Ev::Act {
                        slot,
                        conn: id.0,
                        what: format!("join {room} as invited"),
                    });
                }
            }
        }
        Ok(())
    }

    // ---- faults and phases --------------------------------------------------------------

    fn fault(&mut self) -> Result<(), String> {
        let gap = self.faults.range(1, ms(self.mix.fault_gap_ms) * 2);
        self.at(self.now + gap, Sched::Fault);
        let Some(i) = self.faults.weighted(&self.mix.faults) else {
            return Ok(());
        };
        let ids: Vec<ConnId> = self.links.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let id = ids[self.faults.index(ids.len())];
        let idle = nanos(self.cfg.idle_timeout);
        let d = if self.faults.chance(200) {
            self.faults.range(idle / 2, idle + idle / 2)
        } else {
            self.faults.range(ms(1), ms(1500))
        };
        let what = match FAULTS[i] {
            Fault::Stall => {
                let link = self.links.get_mut(&id).expect("link");
                if self.faults.chance(500) {
                    link.c2s_stall = self.now + d;
                    format!("stall {id} to server for {}ms", d / 1_000_000)
                } else {
                    link.s2c_stall = self.now + d;
                    format!("stall {id} to client for {}ms", d / 1_000_000)
                }
            }
            Fault::Freeze => {
                let d = d.min(ms(800));
                for link in self.links.values_mut() {
                    link.c2s_stall = link.c2s_stall.max(self.now + d);
                    link.s2c_stall = link.s2c_stall.max(self.now + d);
                }
                format!("freeze all for {}ms", d / 1_000_000)
            }
            Fault::Reset => {
                let link = self.links.get_mut(&id).expect("link");
                if !link.attached || link.server == ServerSide::Gone {
                    return Ok(());
                }
                let slot = link.slot;
                self.slots[slot].held.clear();
                self.disconnect(slot, true);
                format!("reset {id}")
            }
        };
        self.log(Ev::Fault(what));
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        self.stage = Stage::Heal;
        self.log(Ev::Phase("heal"));
        for slot in 0..self.slots.len() {
            self.slots[slot].silent_until = 0;
            self.slots[slot].deaf_until = 0;
            self.resume(slot);
        }
        let ids: Vec<ConnId> = self.links.keys().copied().collect();
        for id in ids {
            let link = self.links.get_mut(&id).expect("link");
            link.c2s_stall = 0;
            link.s2c_stall = 0;
            // Stalled deliveries were scheduled for later: deliver now instead.
            link.c2s_sched = false;
            link.s2c_sched = false;
            let (c2s, s2c) = (!link.c2s.is_empty() || link.c2s_eof, true);
            if c2s {
                self.kick_server(id);
            }
            if s2c {
                self.kick_client(id);
            }
        }
        Ok(())
    }

    fn quiet(&self) -> bool {
        self.queue.values().all(|s| !s.active())
            && self.links.iter().all(|(id, l)| {
                // Requests waiting for the rate are still to be handled.
                self.server.inbound_bytes(*id) == 0
                    // Output held for the coalescing window is still to go.
                    && self.server.outbound_bytes(*id) == 0
                    && l.c2s.is_empty()
                    && l.s2c.is_empty()
                    && l.wbuf.is_empty()
                    && l.server == ServerSide::Open
                    && l.attached
                    && !l.c2s_eof
                    && !l.s2c_eof
            })
            // Requests a pacing client still holds are still to be sent.
            && self
                .slots
                .iter()
                .all(|s| s.client.as_ref().is_none_or(|c| c.held_requests() == 0))
    }

    fn start_shutdown(&mut self) -> Result<(), String> {
        self.stage = Stage::Shutdown;
        self.log(Ev::Shutdown);
        self.call(Call::Shutdown)?;
        self.settle()
    }

    // ---- invariants ---------------------------------------------------------------------

    /// Server state equals the model's after every call; memory stays within limits.
    fn check_state(&self) -> Result<(), String> {
        let s = &self.server;
        let m = &self.model;
        if s.connection_count() != m.conns.len()
            || s.room_count() != m.rooms.len()
            || s.nick_count() != m.nicks.len()
        {
            return Err(format!(
                "server counts conns/rooms/nicks {}/{}/{}, model {}/{}/{}",
                s.connection_count(),
                s.room_count(),
                s.nick_count(),
                m.conns.len(),
                m.rooms.len(),
                m.nicks.len()
            ));
        }
        let rooms: Vec<(String, u32)> =
            s.rooms().into_iter().map(|r| (r.name, r.members)).collect();
        let want: Vec<(String, u32)> = m
            .rooms
            .values()
            .map(|r| (r.name.clone(), r.members.len() as u32))
            .collect();
        if rooms != want {
            return Err(format!("server rooms {rooms:?}, model {want:?}"));
        }
        for r in m.rooms.values() {
            if s.room_topic(&r.name) != Some(r.topic.as_str()) {
                return Err(format!(
                    "topic of {}: server {:?}, model {:?}",
                    r.name,
                    s.room_topic(&r.name),
                    r.topic
                ));
            }
            let want: Vec<String> = r.members.iter().map(|c| m.conns[c].nick.clone()).collect();
            if s.room_members(&r.name) != Some(want.clone()) {
                return Err(format!(
                    "members of {}: server {:?}, model {want:?}",
                    r.name,
                    s.room_members(&r.name)
                ));
            }
        }
        for (id, c) in &m.conns {
            let nick = (c.phase == Phase::Ready).then_some(c.nick.as_str());
            if s.nick_of(*id) != nick {
                return Err(format!(
                    "nick of {id}: server {:?}, model {nick:?}",
                    s.nick_of(*id)
                ));
            }
            let want: Vec<String> = c.rooms.iter().map(|k| m.rooms[k].name.clone()).collect();
            if s.rooms_of(*id) != want {
                return Err(format!(
                    "rooms of {id}: server {:?}, model {want:?}",
                    s.rooms_of(*id)
                ));
            }
            let out = s.outbound_bytes(*id);
            if out > self.cfg.max_outbound_bytes + BYE_MAX {
                return Err(format!(
                    "{id} holds {out} outbound bytes, limit {}",
                    self.cfg.max_outbound_bytes
                ));
            }
            let inb = s.inbound_bytes(*id);
            if inb > self.cfg.max_inbound_bytes + self.cfg.max_frame_len as usize + 4 {
                return Err(format!("{id} holds {inb} inbound bytes"));
            }
            // Paused exactly when the model says its queue is full; closing, never read.
            if s.read_budget(*id) != m.read_budget(*id) {
                return Err(format!(
                    "read budget of {id}: server {}, model {}",
                    s.read_budget(*id),
                    m.read_budget(*id)
                ));
            }
        }
        for (key, id) in &m.nicks {
            if s.conn_of(key) != Some(*id) {
                return Err(format!(
                    "nick {key}: server {:?}, model {id}",
                    s.conn_of(key)
                ));
            }
        }
        Ok(())
    }

    /// A room message arrived at a client: it was accepted, for a room this connection
    /// was in then, once, and after the sender's earlier messages to that room.
    fn check_delivery(
        &mut self,
        slot: usize,
        id: ConnId,
        room: &str,
        from: &str,
        seq: Option<u64>,
        text: &str,
    ) -> Result<(), String> {
        let Some(mid) = message_id(text) else {
            return Err(format!("{id} got a fabricated message {text:?}"));
        };
        let Some(rec) = self.model.msgs.get(&mid) else {
            return Err(format!(
                "{id} got message m{mid}, which the server never accepted"
            ));
        };
        // IRC has no sequence numbers.
        if fold(room) != rec.room_key || from != rec.from || seq.is_some_and(|s| s != rec.seq) {
            return Err(format!(
                "{id} got m{mid} as ({room}, {from}, {seq:?}), accepted as ({}, {}, {})",
                rec.room_key, rec.from, rec.seq
            ));
        }
        if !rec.recipients.contains(&id) {
            return Err(format!(
                "{id} got m{mid} but was not in {room} when it was accepted"
            ));
        }
        let s = &mut self.slots[slot];
        if !s.received.insert(mid) {
            return Err(format!("{id} got m{mid} twice"));
        }
        let key = (rec.room_key.clone(), rec.inc, rec.sender);
        let last = s.last_from.insert(key, mid);
        if last.is_some_and(|l| l > mid) {
            return Err(format!(
                "{id} got m{mid} from {} after m{}: out of order",
                rec.sender,
                last.unwrap_or(0)
            ));
        }
        self.stats.delivered += 1;
        Ok(())
    }

    /// A caught-up client sees its rooms and their members as the server does.
    fn check_view(&self, slot: usize, id: ConnId) -> Result<(), String> {
        let client = self.slots[slot].client.as_ref().expect("client");
        if client.is_closed() {
            return Ok(());
        }
        let s = &self.server;
        if Some(client.nick()) != s.nick_of(id) {
            return Err(format!(
                "client of {id} thinks it is {}, server says {:?}",
                client.nick(),
                s.nick_of(id)
            ));
        }
        let mine: BTreeSet<String> = client.rooms().map(|v| fold(&v.name)).collect();
        let theirs: BTreeSet<String> = s.rooms_of(id).iter().map(|r| fold(r)).collect();
        if mine != theirs {
            return Err(format!(
                "client of {id} thinks it is in {mine:?}, server says {theirs:?}"
            ));
        }
        for v in client.rooms() {
            let topic = s.room_topic(&v.name).unwrap_or_default();
            if v.topic != topic {
                return Err(format!(
                    "client of {id} sees the topic of {} as {:?}, server has {topic:?}",
                    v.name, v.topic
                ));
            }
            if let Some(r) = self.model.rooms.get(&fold(&v.name)) {
                for m in &r.members {
                    let nick = &self.model.conns[m].nick;
                    if v.is_operator(nick) != r.operators.contains(m) {
                        return Err(format!(
                            "client of {id} sees {nick} in {} as operator: {}, server: {}",
                            v.name,
                            v.is_operator(nick),
                            r.operators.contains(m)
                        ));
                    }
                }
            }
            let mine: BTreeSet<&String> = v.members.iter().collect();
            let members = s.room_members(&v.name).unwrap_or_default();
            let theirs: BTreeSet<&String> = members.iter().collect();
            if mine != theirs {
                return Err(format!(
                    "client of {id} sees {} as {mine:?}, server has {theirs:?}",
                    v.name
                ));
            }
        }
        Ok(())
    }

    /// After the heal: everything sent arrived, views agree, queues are empty.
    fn check_drained(&mut self) -> Result<(), String> {
        self.log(Ev::Phase("drained"));
        if let Some(t) = self.server.poll_transmit() {
            return Err(format!("output left for {} after the drain", t.conn));
        }
        for (id, link) in &self.links {
            let (out, inb) = (
                self.server.outbound_bytes(*id),
                self.server.inbound_bytes(*id),
            );
            if out != 0 || inb != 0 || !link.deliver.is_empty() || !link.expect.is_empty() {
                return Err(format!(
                    "{id} still holds {out} bytes out, {inb} in, {} undelivered items after the drain",
                    link.deliver.len()
                ));
            }
            if self.model.phase(*id) == Some(Phase::Ready) {
                if link.irc {
                    self.check_irc_view(link.slot, *id)?;
                } else {
                    self.check_view(link.slot, *id)?;
                }
            }
        }
        for (mid, rec) in &self.model.msgs {
            for r in &rec.recipients {
                let Some(link) = self.links.get(r) else {
                    continue;
                };
                if self.model.phase(*r) != Some(Phase::Ready) || !link.attached {
                    continue;
                }
                if !self.slots[link.slot].received.contains(mid) {
                    return Err(format!(
                        "m{mid} in {} never reached {r}, a member then and connected still",
                        rec.room_key
                    ));
                }
            }
        }
        let live: usize = self
            .links
            .values()
            .filter(|l| l.server != ServerSide::Gone)
            .count();
        if live != self.server.connection_count() {
            return Err(format!(
                "{} connections open in the server, {live} in the network",
                self.server.connection_count()
            ));
        }
        Ok(())
    }

    /// After the shutdown: everyone got a bye, nothing outlives its owner.
    fn check_shut(&mut self) -> Result<(), String> {
        if self.stage != Stage::Shutdown {
            return Err("the run ended before the shutdown".into());
        }
        let s = &self.server;
        if s.connection_count() + s.room_count() + s.nick_count() != 0 || !self.links.is_empty() {
            return Err(format!(
                "after shutdown: {} conns, {} rooms, {} nicks, {} links",
                s.connection_count(),
                s.room_count(),
                s.nick_count(),
                self.links.len()
            ));
        }
        Ok(())
    }
}

/// One call into the server.
enum Call {
    Open,
    Input(ConnId, Vec<u8>, Vec<(Frame, u64)>),
    Close(ConnId),
    Timeout,
    Shutdown,
}

fn first_frame_len(data: &[u8]) -> usize {
    if data.len() < 4 {
        return data.len();
    }
    4 + u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize
}
