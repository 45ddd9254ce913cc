//! Deterministic simulation of room history: clients join, leave, talk and page back while
//! a simulated store answers late, in random batches, and sometimes fails.
//!
//! The model is the room's message log (every Append the store was given, which carries
//! the id the core assigned) and the set of messages the store kept. Per client and per
//! stay in a room it checks: the replay is exactly the newest `on_join` kept messages up to
//! the room's last id at the join, nothing live comes before the replay's end, and the live
//! messages then run from that id + 1 to the room's last id at the leave (or the end) with
//! no gap, no duplicate and the logged text. Pages are the newest kept messages before
//! their cursor.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use switchboard_core::{
    Client, ClientEvent, Config, ConnId, ErrorCode, HistoryOptions, PlantedBug, Server, StoreOp,
    StoredMessage,
};

use crate::rng::Rng;

const ROOMS: [&str; 3] = ["a", "b", "c"];

/// One client and what the checker tracks of it.
struct Sim1 {
    id: ConnId,
    client: Client,
    nick: String,
    open: bool,
    /// Per room: the current stay, if the client is in it.
    stays: BTreeMap<&'static str, Stay>,
    /// Stays that ended, to check at the end.
    done: Vec<Stay>,
}

/// One stay of a client in a room, as the server processed it and as the client saw it.
#[derive(Debug, Default, Clone)]
struct Stay {
    room: &'static str,
    /// The room's last id when the join was processed.
    join_last: u64,
    /// The room's last id when the leave was processed (None: still in it).
    leave_last: Option<u64>,
    /// Cursors (before, limit) of page requests, in order; the join's answer comes first.
    pages: VecDeque<(u64, u16)>,
    /// Replays seen: rows and the end's (oldest, more), in order; the join's first.
    replays: Vec<(Vec<StoredMessage>, u64, bool)>,
    /// Rows of the replay being received.
    partial: Vec<StoredMessage>,
    /// Live messages seen: (id, from, text), and whether any came before the join's end.
    live: Vec<(u64, String, String)>,
    live_too_early: bool,
    /// The leave was sent; the client waits to see it.
    leaving: bool,
}

/// The store: ops wait in a queue; a step runs a random batch of them.
#[derive(Default)]
struct SimStore {
    queue: VecDeque<StoreOp>,
    /// Every message the core asked to store, by room and id.
    log: BTreeMap<String, BTreeMap<u64, StoredMessage>>,
    /// Ids the store kept, by room.
    kept: BTreeMap<String, BTreeSet<u64>>,
}

pub struct HistorySim {
    rng: Rng,
    server: Server,
    now: Instant,
    clients: Vec<Sim1>,
    store: SimStore,
    on_join: u16,
    next_nick: u32,
    /// Chances, in permille, that a batch's writes fail and that a load fails.
    write_fail: u32,
    load_fail: u32,
}

impl HistorySim {
    pub fn new(seed: u64, base: Instant, plant: Option<PlantedBug>) -> HistorySim {
        let mut rng = Rng::new(seed ^ 0x4849_5354);
        let on_join = [0, 1, 3, 5, 50][rng.index(5)];
        let mut config = Config::default();
        config.msg_rate = 0;
        let mut server = Server::new(config);
        if let Some(bug) = plant {
            server.plant_bug(bug);
        }
        server.enable_history(
            HistoryOptions {
                on_join,
                max_page: 10,
                max_pending_ops: 100_000,
            },
            base,
            1_700_000_000_000,
            Vec::new(),
        );
        let write_fail = [0, 0, 20, 100][rng.index(4)];
        let load_fail = [0, 0, 20, 100][rng.index(4)];
        let mut sim = HistorySim {
            rng,
            server,
            now: base,
            clients: Vec::new(),
            store: SimStore::default(),
            on_join,
            next_nick: 0,
            write_fail,
            load_fail,
        };
        for _ in 0..4 {
            sim.connect();
        }
        sim
    }

    fn connect(&mut self) {
        let nick = format!("n{}", self.next_nick);
        self.next_nick += 1;
        let id = self.server.open(self.now);
        let mut c = Sim1 {
            id,
            client: Client::new(&nick),
            nick,
            open: true,
            stays: BTreeMap::new(),
            done: Vec::new(),
        };
        if let Some(bytes) = c.client.poll_transmit() {
            self.server.handle_input(id, &bytes, self.now);
        }
        self.clients.push(c);
        self.drain_store_ops();
    }

    fn last_id(&self, room: &str) -> u64 {
        self.server.history_last_id(room).expect("history is on")
    }

    /// Sends what client `i` queued and lets the server handle it at once.
    fn send(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if let Some(bytes) = c.client.poll_transmit() {
            self.server.handle_input(c.id, &bytes, self.now);
        }
        self.drain_store_ops();
    }

    fn drain_store_ops(&mut self) {
        while let Some(op) = self.server.poll_store() {
            if let StoreOp::Append { key, message, .. } = &op {
                self.store
                    .log
                    .entry(key.clone())
                    .or_default()
                    .insert(message.id, message.clone());
            }
            self.store.queue.push_back(op);
        }
    }

    /// Runs the next random batch of store ops as the store thread would.
    fn store_step(&mut self) {
        let n = self.rng.range_usize(1, 8).min(self.store.queue.len());
        let batch: Vec<StoreOp> = self.store.queue.drain(..n).collect();
        let Some(last) = batch.last().map(StoreOp::op) else {
            return;
        };
        let writes_fail = self.rng.chance(self.write_fail);
        for op in &batch {
            match op {
                StoreOp::Append {
                    op, key, message, ..
                } => {
                    if writes_fail {
                        self.server
                            .handle_store_error(*op, "simulated write failure");
                    } else {
                        self.store
                            .kept
                            .entry(key.clone())
                            .or_default()
                            .insert(message.id);
                    }
                }
                StoreOp::SetTopic { .. } => {}
                StoreOp::Load {
                    op,
                    key,
                    before,
                    limit,
                } => {
                    if self.rng.chance(self.load_fail) {
                        self.server
                            .handle_store_error(*op, "simulated read failure");
                        continue;
                    }
                    let rows = self.kept_before(key, *before, *limit as usize);
                    self.server.handle_history(*op, rows);
                }
                StoreOp::Query {
                    op,
                    key,
                    range,
                    limit,
                } => {
                    if self.rng.chance(self.load_fail) {
                        self.server
                            .handle_store_error(*op, "simulated read failure");
                        continue;
                    }
                    let all = self.kept_before(key, u64::MAX, usize::MAX);
                    let rows = range.select(&all, *limit as usize);
                    self.server.handle_history(*op, rows);
                }
            }
        }
        self.server.handle_stored(last);
        self.drain_store_ops();
    }

    /// The newest `limit` kept messages of `key` below `before`, ascending.
    fn kept_before(&self, key: &str, before: u64, limit: usize) -> Vec<StoredMessage> {
        let Some(kept) = self.store.kept.get(key) else {
            return Vec::new();
        };
        let ids: Vec<u64> = kept.range(..before).rev().take(limit).copied().collect();
        ids.into_iter()
            .rev()
            .map(|id| self.store.log[key][&id].clone())
            .collect()
    }

    /// Delivers the server's output to the clients and feeds the checker.
    fn deliver(&mut self) -> Result<(), String> {
        // The deadlines passed, as an adapter's timer runs them: here only the coalescing
        // window's (a run is shorter than the first keepalive).
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        while let Some(t) = self.server.poll_transmit() {
            self.server.handle_written(t.conn, t.data.len());
            let Some(i) = self.clients.iter().position(|c| c.id == t.conn) else {
                continue;
            };
            self.clients[i]
                .client
                .handle_input(&t.data, self.now)
                .map_err(|e| format!("bad frame: {e}"))?;
            while let Some(e) = self.clients[i].client.poll_event() {
                observe(&mut self.clients[i], e)?;
            }
        }
        // Everything queued was just written: a flush is over as soon as it is asked for.
        while let Some(close) = self.server.poll_close() {
            self.server.handle_close(close.conn, self.now);
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += Duration::from_millis(self.rng.range(0, 20));
        let open: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.clients[i].open)
            .collect();
        let i = open[self.rng.index(open.len())];
        let room = ROOMS[self.rng.index(ROOMS.len())];
        match self.rng.weighted(&[30, 10, 6, 8, 25, 15, 1]) {
            Some(0) => {
                let in_room = self.clients[i].stays.get(room).is_some_and(|s| !s.leaving);
                if in_room {
                    let text = format!("t{}", self.rng.next_u64() % 1000);
                    self.clients[i].client.say(room, &text);
                    self.send(i);
                }
            }
            Some(1) => {
                if !self.clients[i].stays.contains_key(room) {
                    self.clients[i].client.join(room);
                    self.send(i);
                    let stay = Stay {
                        room,
                        join_last: self.last_id(room),
                        ..Stay::default()
                    };
                    self.clients[i].stays.insert(room, stay);
                }
            }
            Some(2) => {
                if self.clients[i].stays.get(room).is_some_and(|s| !s.leaving) {
                    self.clients[i].client.leave(room, "");
                    self.send(i);
                    let last = self.last_id(room);
                    if let Some(stay) = self.clients[i].stays.get_mut(room) {
                        stay.leave_last = Some(last);
                        stay.leaving = true;
                    }
                }
            }
            Some(3) => {
                // Pages back from the oldest message this stay has seen, or the join.
                if let Some(stay) = self.clients[i].stays.get(room).filter(|s| !s.leaving) {
                    let oldest_seen = stay
                        .replays
                        .iter()
                        .filter(|r| r.1 > 0)
                        .map(|r| r.1)
                        .min()
                        .unwrap_or(stay.join_last + 1);
                    let before = if self.rng.chance(300) {
                        stay.join_last + 1
                    } else {
                        oldest_seen
                    };
                    let limit = self.rng.range(1, 10) as u16;
                    self.clients[i].client.history(room, before, limit);
                    self.send(i);
                    if let Some(stay) = self.clients[i].stays.get_mut(room) {
                        stay.pages.push_back((before, limit));
                    }
                }
            }
            Some(4) => self.store_step(),
            Some(5) => self.deliver()?,
            _ => {
                // A client drops; a new one comes. What it saw is not checked.
                let id = self.clients[i].id;
                self.clients[i].open = false;
                self.server.handle_close(id, self.now);
                self.drain_store_ops();
                self.connect();
            }
        }
        Ok(())
    }

    pub fn run(&mut self, steps: usize) -> Result<(), String> {
        for _ in 0..steps {
            self.step()?;
        }
        // Let everything settle: the store answers all, the clients read all.
        while !self.store.queue.is_empty() {
            self.store_step();
            self.deliver()?;
        }
        // Past the last coalescing window.
        self.now += self.server.config().flush_delay;
        self.deliver()?;
        self.check()
    }

    fn check(&mut self) -> Result<(), String> {
        let finals: BTreeMap<&str, u64> = ROOMS.iter().map(|r| (*r, self.last_id(r))).collect();
        for c in &mut self.clients {
            if !c.open {
                continue;
            }
            let open: Vec<Stay> = std::mem::take(&mut c.stays).into_values().collect();
            for mut stay in open.into_iter().chain(std::mem::take(&mut c.done)) {
                stay.leave_last.get_or_insert(finals[stay.room]);
                check_stay(&self.store, self.on_join, &c.nick, &stay)?;
            }
        }
        Ok(())
    }

    pub fn summary(&self) -> String {
        let messages: usize = self.store.log.values().map(BTreeMap::len).sum();
        let kept: usize = self.store.kept.values().map(BTreeSet::len).sum();
        format!(
            "on_join {}, write failures {}‰, load failures {}‰, {} messages, {} kept, {} clients",
            self.on_join,
            self.write_fail,
            self.load_fail,
            messages,
            kept,
            self.clients.len()
        )
    }
}

/// Feeds one client event to the checker.
fn observe(c: &mut Sim1, e: ClientEvent) -> Result<(), String> {
    let room_of = |r: &str| ROOMS.iter().copied().find(|x| *x == r);
    match e {
        ClientEvent::Left { room, nick, .. } if nick == c.nick => {
            let room = room_of(&room).ok_or("left an unknown room")?;
            let stay = c.stays.remove(room).ok_or("left a room it was not in")?;
            c.done.push(stay);
        }
        ClientEvent::Replayed {
            room,
            from,
            id,
            time_ms,
            text,
        } => {
            let room = room_of(&room).ok_or("replay of an unknown room")?;
            let stay = c
                .stays
                .get_mut(room)
                .ok_or(format!("{}: replay of {room} outside a stay", c.nick))?;
            stay.partial.push(StoredMessage {
                id,
                time_ms,
                from,
                text,
                notice: false,
            });
        }
        ClientEvent::HistoryEnd { room, oldest, more } => {
            let room = room_of(&room).ok_or("history end of an unknown room")?;
            let stay = c
                .stays
                .get_mut(room)
                .ok_or(format!("{}: history end of {room} outside a stay", c.nick))?;
            let rows = std::mem::take(&mut stay.partial);
            stay.replays.push((rows, oldest, more));
        }
        ClientEvent::Message {
            room,
            from,
            seq,
            text,
        } => {
            let room = room_of(&room).ok_or("message of an unknown room")?;
            let stay = c
                .stays
                .get_mut(room)
                .ok_or(format!("{}: message of {room} outside a stay", c.nick))?;
            if stay.replays.is_empty() {
                stay.live_too_early = true;
            }
            stay.live.push((seq, from, text));
        }
        ClientEvent::Error { code, message, .. } if code != ErrorCode::HistoryUnavailable => {
            return Err(format!("{}: unexpected error {code:?}: {message}", c.nick));
        }
        _ => {}
    }
    Ok(())
}

/// Checks one stay against the store's log.
fn check_stay(store: &SimStore, on_join: u16, nick: &str, stay: &Stay) -> Result<(), String> {
    let room = stay.room;
    let who = format!("{nick} in {room} (joined at {})", stay.join_last);
    let log = store.log.get(room);
    let empty = BTreeSet::new();
    let kept = store.kept.get(room).unwrap_or(&empty);
    if stay.live_too_early {
        return Err(format!(
            "{who}: a live message came before the replay's end"
        ));
    }
    let Some((join_rows, _, join_more)) = stay.replays.first() else {
        return Err(format!("{who}: no replay end after the join"));
    };
    // The replay: the newest `on_join` kept messages up to the join, or nothing if its
    // load failed (then `more` says so).
    let upto: Vec<u64> = kept.range(..=stay.join_last).copied().collect();
    let want: Vec<u64> = upto[upto.len().saturating_sub(on_join as usize)..].to_vec();
    let got: Vec<u64> = join_rows.iter().map(|m| m.id).collect();
    let load_failed = got.is_empty() && !want.is_empty() && *join_more;
    if got != want && !load_failed {
        return Err(format!("{who}: replayed {got:?}, expected {want:?}"));
    }
    for m in join_rows {
        let logged = log.and_then(|l| l.get(&m.id));
        if logged.is_none_or(|l| l.text != m.text || l.from != m.from || l.time_ms != m.time_ms) {
            return Err(format!("{who}: replayed {m:?}, logged {logged:?}"));
        }
    }
    // Live: every message from the join to the leave, once, in order.
    let leave = stay.leave_last.unwrap_or(stay.join_last);
    let ids: Vec<u64> = stay.live.iter().map(|l| l.0).collect();
    let expected: Vec<u64> = (stay.join_last + 1..=leave).collect();
    if ids != expected {
        return Err(format!("{who}: live ids {ids:?}, expected {expected:?}"));
    }
    for (id, from, text) in &stay.live {
        let logged = log.and_then(|l| l.get(id));
        if logged.is_none_or(|l| l.text != *text || l.from != *from) {
            return Err(format!(
                "{who}: live {id} {from}: {text}, logged {logged:?}"
            ));
        }
    }
    // Pages: the newest kept messages before each cursor.
    for ((rows, _, more), (before, limit)) in stay.replays[1..].iter().zip(&stay.pages) {
        let below: Vec<u64> = kept.range(..*before).copied().collect();
        let want = &below[below.len().saturating_sub(*limit as usize)..];
        let got: Vec<u64> = rows.iter().map(|m| m.id).collect();
        let failed = got.is_empty() && !want.is_empty() && *more;
        if got != want && !failed {
            return Err(format!(
                "{who}: page before {before} limit {limit}: {got:?}, expected {want:?}"
            ));
        }
    }
    if stay.replays.len() != stay.pages.len() + 1 {
        return Err(format!(
            "{who}: {} replay ends for {} pages and the join",
            stay.replays.len(),
            stay.pages.len()
        ));
    }
    Ok(())
}

/// Runs `seeds` history simulations; the first failure, with its seed.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    base: Instant,
    plant: Option<PlantedBug>,
) -> Result<usize, String> {
    let mut checked = 0;
    for seed in seeds {
        let mut sim = HistorySim::new(seed, base, plant);
        sim.run(400)
            .map_err(|e| format!("history seed {seed} ({}): {e}", sim.summary()))?;
        checked += 1;
    }
    Ok(checked)
}
