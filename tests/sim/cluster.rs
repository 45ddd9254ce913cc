//! Deterministic simulation of a cluster: 2 to 5 `Server`s on a simulated bus (one Redis:
//! publishes in one global order, each node's messages and command replies on two streams
//! with their own delays, so replies and messages interleave differently on every node),
//! clients signing in with clashing nicks, joining, talking, renaming and quitting, nodes
//! cut off from the bus and crashing (some restart as a new incarnation).
//!
//! Checked all along: no client receives a room message twice, and each sender's messages
//! reach each client in the order sent. Checked once healed and settled: nicks are unique,
//! every node's registry and room members match the live clients, topics agree, every nick
//! key belongs to a live user of a live node (a dead node's keys are released, no key
//! leaks), and a last round of messages reaches every live user once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use switchboard_core::name::fold;
use switchboard_core::{
    BusEvent, BusOp, Client, ClientEvent, CloseMode, ClusterOptions, Config, ConnId, ErrorCode,
    PlantedBug, Server,
};

use crate::rng::Rng;

const NICKS: [&str; 8] = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"];
const ROOMS: [&str; 3] = ["r1", "r2", "r3"];
/// Virtual time of random activity per seed, in ms.
const ACTIVE_MS: u64 = 20_000;

struct Node {
    server: Server,
    incarnation: u64,
    alive: bool,
    up: bool,
    subscribed: bool,
    /// When a cut-off node comes back, or a crashed one restarts (ms).
    back_at: Option<u64>,
    /// Periods it was alive and on the bus: closed ones, and the current one's start.
    stable: Vec<(u64, u64)>,
    stable_from: Option<u64>,
}

struct User {
    uid: usize,
    node: usize,
    incarnation: u64,
    id: ConnId,
    client: Client,
    welcomed: bool,
    /// Still a chat participant: welcomed or waiting for it, not closed, node alive.
    live: bool,
    /// The connection is open (a quitting user is not live but still sends its quit).
    open: bool,
    said: u64,
    /// Per sender uid: the last message number received.
    last_from: BTreeMap<usize, u64>,
    texts: BTreeSet<String>,
}

/// A nick key in the simulated Redis.
struct Key {
    owner: String,
    /// None while its node renews it; else when it expires (ms).
    expires: Option<u64>,
    /// When its owner last claimed it.
    since: u64,
}

struct Bus {
    keys: BTreeMap<String, Key>,
    /// Per node: (deliver at ms, event), FIFO; messages and replies apart.
    messages: Vec<VecDeque<(u64, BusEvent)>>,
    replies: Vec<VecDeque<(u64, BusEvent)>>,
}

struct World {
    rng: Rng,
    base: Instant,
    ms: u64,
    nodes: Vec<Node>,
    users: Vec<User>,
    bus: Bus,
    plant: Option<PlantedBug>,
    max_delay: u64,
    log: Vec<String>,
    /// When each crashed incarnation (`n{i}/{inc}`) crashed.
    crashes: BTreeMap<String, u64>,
}

fn config() -> Config {
    let mut c = Config::default();
    c.msg_rate = 10_000;
    c.msg_burst = 10_000;
    c
}

impl World {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ms)
    }

    fn owner(&self, i: usize) -> String {
        format!("n{i}/{}", self.nodes[i].incarnation)
    }

    fn start_node(&mut self, i: usize) {
        let now = self.now();
        let mut server = Server::new(config());
        if let Some(bug) = self.plant {
            server.plant_bug(bug);
        }
        let n = &mut self.nodes[i];
        n.incarnation += 1;
        server.enable_cluster(ClusterOptions::new(format!("n{i}"), n.incarnation), now);
        server.handle_bus(BusEvent::Up, now);
        n.server = server;
        n.alive = true;
        n.up = true;
        n.subscribed = false;
        n.back_at = None;
        n.stable_from = Some(self.ms);
    }

    /// Node `i` leaves the bus (cut off or crashed).
    fn unstable(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if let Some(from) = n.stable_from.take() {
            n.stable.push((from, self.ms));
        }
    }

    /// Whether node `i` was alive and on the bus all through `a..=b`.
    fn was_stable(&self, i: usize, a: u64, b: u64) -> bool {
        let n = &self.nodes[i];
        n.stable.iter().any(|&(f, t)| f <= a && b <= t)
            || n.stable_from.is_some_and(|f| f <= a && b <= self.ms)
    }

    /// A key of crashed incarnation `owner` that some node saw announced and saw die, long
    /// enough ago to have released it.
    fn should_be_freed(&self, owner: &str, since: u64) -> bool {
        let Some(&crash) = self.crashes.get(owner) else {
            return false;
        };
        let (node, _) = owner.split_once('/').unwrap_or(("", ""));
        let Ok(i) = node.trim_start_matches('n').parse::<usize>() else {
            return false;
        };
        let announced = since + 1_000 <= crash && self.was_stable(i, since, since + 1_000);
        announced
            && self.ms >= crash + 6_000
            && (0..self.nodes.len()).any(|j| j != i && self.was_stable(j, since, crash + 6_000))
    }

    /// The bus stops renewing node `i`'s keys: they expire a lease from now.
    fn stop_renewing(&mut self, i: usize) {
        let prefix = format!("n{i}/");
        let at = self.ms + 15_000;
        for k in self.bus.keys.values_mut() {
            if k.owner.starts_with(&prefix) && k.expires.is_none() {
                k.expires = Some(at);
            }
        }
        self.bus.messages[i].clear();
        self.bus.replies[i].clear();
        self.nodes[i].subscribed = false;
    }

    fn delay(&mut self) -> u64 {
        self.rng.range(1, self.max_delay)
    }

    fn push(queue: &mut VecDeque<(u64, BusEvent)>, at: u64, e: BusEvent) {
        let at = queue.back().map_or(at, |(t, _)| at.max(*t));
        queue.push_back((at, e));
    }

    /// Runs node `i`'s ops on the bus, as Redis would, in order.
    fn run_ops(&mut self, i: usize) {
        while let Some(op) = self.nodes[i].server.poll_bus() {
            if !self.nodes[i].up {
                continue;
            }
            match op {
                BusOp::Subscribe { .. } => self.nodes[i].subscribed = true,
                BusOp::Unsubscribe { .. } => self.nodes[i].subscribed = false,
                BusOp::Publish { channel, payload } => {
                    for j in 0..self.nodes.len() {
                        let n = &self.nodes[j];
                        if n.alive && n.up && n.subscribed {
                            let at = self.ms + self.delay();
                            let e = BusEvent::Message {
                                channel: channel.clone(),
                                payload: payload.clone(),
                            };
                            Self::push(&mut self.bus.messages[j], at, e);
                        }
                    }
                }
                BusOp::Claim { id, key, owner, .. } => {
                    let ms = self.ms;
                    let ok = match self.bus.keys.get_mut(&key) {
                        Some(k) if k.expires.is_none_or(|t| t > ms) => {
                            if k.owner == owner {
                                k.expires = None;
                                k.since = ms;
                            }
                            k.owner == owner
                        }
                        _ => {
                            self.bus.keys.insert(
                                key,
                                Key {
                                    owner,
                                    expires: None,
                                    since: ms,
                                },
                            );
                            true
                        }
                    };
                    let at = self.ms + self.delay();
                    Self::push(&mut self.bus.replies[i], at, BusEvent::Claimed { id, ok });
                }
                BusOp::Release { key, owner }
                    if self.bus.keys.get(&key).is_some_and(|k| k.owner == owner) =>
                {
                    self.bus.keys.remove(&key);
                }
                _ => {}
            }
        }
    }

    /// Hands node `i` what is due on its two streams, earliest first.
    fn deliver(&mut self, i: usize) {
        loop {
            let m = self.bus.messages[i]
                .front()
                .map(|(t, _)| *t)
                .filter(|t| *t <= self.ms);
            let r = self.bus.replies[i]
                .front()
                .map(|(t, _)| *t)
                .filter(|t| *t <= self.ms);
            let from_messages = match (m, r) {
                (None, None) => return,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) if a == b => self.rng.chance(500),
                (Some(a), Some(b)) => a < b,
            };
            let q = if from_messages {
                &mut self.bus.messages[i]
            } else {
                &mut self.bus.replies[i]
            };
            let Some((_, e)) = q.pop_front() else {
                return;
            };
            let now = self.now();
            self.nodes[i].server.handle_bus(e, now);
            self.run_ops(i);
        }
    }

    /// Moves bytes between clients and servers and checks what clients receive.
    fn io(&mut self) -> Result<(), String> {
        let now = self.now();
        for round in 0..50 {
            let mut moved = false;
            for u in &mut self.users {
                let n = &mut self.nodes[u.node];
                if !u.open || !n.alive || n.incarnation != u.incarnation {
                    continue;
                }
                if let Some(bytes) = u.client.poll_transmit() {
                    n.server.handle_input(u.id, &bytes, now);
                    moved = true;
                }
            }
            for i in 0..self.nodes.len() {
                if !self.nodes[i].alive {
                    continue;
                }
                self.run_ops(i);
                while let Some(t) = self.nodes[i].server.poll_transmit() {
                    self.nodes[i].server.handle_written(t.conn, t.data.len());
                    moved = true;
                    let inc = self.nodes[i].incarnation;
                    let Some(u) = self
                        .users
                        .iter_mut()
                        .find(|u| u.node == i && u.incarnation == inc && u.id == t.conn)
                    else {
                        continue;
                    };
                    if u.open {
                        u.client
                            .handle_input(&t.data, now)
                            .map_err(|e| format!("user {} got a bad frame: {e}", u.uid))?;
                    }
                }
                while let Some(c) = self.nodes[i].server.poll_close() {
                    if c.mode == CloseMode::Now {
                        self.nodes[i].server.handle_close(c.conn, now);
                    }
                    moved = true;
                }
            }
            for k in 0..self.users.len() {
                self.check_events(k)?;
            }
            if !moved {
                return Ok(());
            }
            if round == 49 {
                return Err("sim: input and output never settled".into());
            }
        }
        Ok(())
    }

    fn check_events(&mut self, k: usize) -> Result<(), String> {
        while let Some(e) = self.users[k].client.poll_event() {
            let u = &mut self.users[k];
            match e {
                ClientEvent::Welcome { .. } => {
                    u.welcomed = true;
                    self.log.push(format!(
                        "{} user {} welcome {}",
                        self.ms,
                        u.uid,
                        u.client.nick()
                    ));
                }
                ClientEvent::NickChanged { old, new }
                    if old == u.client.nick() || new == u.client.nick() =>
                {
                    self.log
                        .push(format!("{} user {} nick {old} -> {new}", self.ms, u.uid));
                }
                ClientEvent::Error {
                    code: ErrorCode::NickTaken,
                    ..
                } if !u.welcomed => u.live = false,
                ClientEvent::Bye { code, reason } => {
                    u.live = false;
                    u.open = false;
                    self.log
                        .push(format!("{} user {} bye {code:?} {reason}", self.ms, u.uid));
                }
                ClientEvent::Message {
                    room, from, text, ..
                } => {
                    if !u.texts.insert(text.clone()) {
                        return Err(format!(
                            "user {} ({}) got `{text}` from {from} in {room} twice",
                            u.uid,
                            u.client.nick()
                        ));
                    }
                    let Some((sender, n)) = text.split_once(':') else {
                        continue;
                    };
                    let (Ok(sender), Ok(n)) = (sender.parse::<usize>(), n.parse::<u64>()) else {
                        continue;
                    };
                    let last = u.last_from.entry(sender).or_insert(0);
                    if n <= *last {
                        return Err(format!(
                            "user {} got message {n} of user {sender} after message {last}",
                            u.uid
                        ));
                    }
                    *last = n;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn step_time(&mut self, dt: u64) -> Result<(), String> {
        self.ms += dt;
        let now = self.now();
        for i in 0..self.nodes.len() {
            if self.nodes[i].back_at.is_some_and(|t| t <= self.ms) {
                if self.nodes[i].alive {
                    self.log.push(format!("{} n{i} up", self.ms));
                    self.nodes[i].up = true;
                    self.nodes[i].back_at = None;
                    self.nodes[i].stable_from = Some(self.ms);
                    self.nodes[i].server.handle_bus(BusEvent::Up, now);
                } else {
                    self.log.push(format!("{} n{i} restarts", self.ms));
                    self.start_node(i);
                }
            }
            if self.nodes[i].alive {
                self.nodes[i].server.handle_timeout(now);
                self.run_ops(i);
                self.deliver(i);
            }
        }
        self.io()
    }

    fn live_users(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&k| {
                let u = &self.users[k];
                let n = &self.nodes[u.node];
                u.live && u.welcomed && n.alive && n.incarnation == u.incarnation
            })
            .collect()
    }

    fn act(&mut self) {
        let pick = self
            .rng
            .weighted(&[12, 15, 6, 30, 5, 5, 4, 3, 2, 2])
            .unwrap_or(0);
        let live = self.live_users();
        let user = (!live.is_empty()).then(|| live[self.rng.index(live.len())]);
        let now = self.now();
        match (pick, user) {
            (0, _) | (1..=7, None) => {
                let alive: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| self.nodes[i].alive)
                    .collect();
                if alive.is_empty() || self.users.len() > 60 {
                    return;
                }
                let i = alive[self.rng.index(alive.len())];
                let nick = NICKS[self.rng.index(NICKS.len())];
                let id = self.nodes[i].server.open(now);
                let mut client = Client::new(nick);
                client.set_paced(false);
                self.log.push(format!(
                    "{} user {} opens on n{i} as {nick}",
                    self.ms,
                    self.users.len()
                ));
                self.users.push(User {
                    uid: self.users.len(),
                    node: i,
                    incarnation: self.nodes[i].incarnation,
                    id,
                    client,
                    welcomed: false,
                    live: true,
                    open: true,
                    said: 0,
                    last_from: BTreeMap::new(),
                    texts: BTreeSet::new(),
                });
            }
            (1, Some(k)) => {
                let room = ROOMS[self.rng.index(ROOMS.len())];
                self.users[k].client.join(room);
            }
            (2, Some(k)) => {
                let room = ROOMS[self.rng.index(ROOMS.len())];
                if self.users[k].client.room(room).is_some() {
                    self.users[k].client.leave(room, "bye");
                }
            }
            (3, Some(k)) => {
                let rooms: Vec<String> = self.users[k]
                    .client
                    .rooms()
                    .map(|r| r.name.clone())
                    .collect();
                if rooms.is_empty() {
                    return;
                }
                let room = rooms[self.rng.index(rooms.len())].clone();
                let u = &mut self.users[k];
                u.said += 1;
                let text = format!("{}:{}", u.uid, u.said);
                u.client.say(&room, &text);
            }
            (4, Some(k)) => {
                let nick = NICKS[self.rng.index(NICKS.len())];
                self.users[k].client.change_nick(nick);
            }
            (5, Some(k)) => {
                let rooms: Vec<String> = self.users[k]
                    .client
                    .rooms()
                    .map(|r| r.name.clone())
                    .collect();
                if let Some(room) = rooms.first() {
                    let topic = format!("topic {} at {}", k, self.ms);
                    self.users[k].client.set_topic(room, &topic);
                }
            }
            (6, Some(k)) => {
                self.users[k].client.quit("done");
                self.users[k].live = false;
            }
            (7, Some(k)) => {
                let away = if self.rng.chance(500) { "away" } else { "" };
                self.users[k].client.away(away);
            }
            (8, _) => {
                // Cut a node off the bus for a while.
                let i = self.rng.index(self.nodes.len());
                if self.nodes[i].alive && self.nodes[i].up {
                    self.log.push(format!("{} n{i} down", self.ms));
                    self.nodes[i].up = false;
                    self.nodes[i].back_at = Some(self.ms + self.rng.range(500, 6000));
                    self.stop_renewing(i);
                    self.unstable(i);
                    self.nodes[i].server.handle_bus(BusEvent::Down, now);
                }
            }
            (9, _) => {
                // Crash a node; it may restart later as a new incarnation.
                let i = self.rng.index(self.nodes.len());
                let others = (0..self.nodes.len())
                    .filter(|&j| j != i && self.nodes[j].alive)
                    .count();
                if self.nodes[i].alive && others > 0 {
                    self.log.push(format!("{} n{i} crashes", self.ms));
                    self.nodes[i].alive = false;
                    self.nodes[i].up = false;
                    self.nodes[i].back_at = self
                        .rng
                        .chance(500)
                        .then(|| self.ms + self.rng.range(1000, 8000));
                    self.stop_renewing(i);
                    self.unstable(i);
                    let owner = self.owner(i);
                    self.crashes.insert(owner, self.ms);
                }
            }
            _ => {}
        }
    }

    fn run(&mut self) -> Result<(), String> {
        while self.ms < ACTIVE_MS {
            let dt = self.rng.range(1, 120);
            self.step_time(dt)?;
            self.act();
            self.io()?;
        }
        // Heal: every cut-off node comes back; crashed ones stay down or restart.
        for i in 0..self.nodes.len() {
            if self.nodes[i].alive && !self.nodes[i].up {
                self.nodes[i].back_at = Some(self.ms);
            }
        }
        self.settle(8_000)?;
        self.check_state()?;
        self.final_round()
    }

    fn settle(&mut self, ms: u64) -> Result<(), String> {
        let end = self.ms + ms;
        while self.ms < end {
            let dt = self.rng.range(1, 120);
            self.step_time(dt)?;
        }
        Ok(())
    }

    fn check_state(&mut self) -> Result<(), String> {
        let live = self.live_users();
        let nicks: Vec<String> = live
            .iter()
            .map(|&k| self.users[k].client.nick().to_owned())
            .collect();
        let unique: BTreeSet<String> = nicks.iter().map(|n| fold(n)).collect();
        if unique.len() != nicks.len() {
            return Err(format!("two live users hold one nick: {nicks:?}"));
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            let s = &self.nodes[i].server;
            if s.nick_count() != nicks.len() {
                let states: Vec<String> = self
                    .users
                    .iter()
                    .filter(|u| u.node == i)
                    .map(|u| {
                        format!(
                            "{}={}:{}:{}{}{}",
                            u.uid,
                            u.id,
                            u.client.nick(),
                            u.live as u8,
                            u.welcomed as u8,
                            u.incarnation
                        )
                    })
                    .collect();
                let known: Vec<String> = NICKS
                    .iter()
                    .filter_map(|n| s.conn_of(n).map(|c| format!("{n}={c}")))
                    .collect();
                return Err(format!(
                    "n{i} knows {} nicks {known:?}, {} users are live: {nicks:?}; n{i}'s users: {states:?}",
                    s.nick_count(),
                    nicks.len()
                ));
            }
            for room in ROOMS {
                let mut want: Vec<String> = live
                    .iter()
                    .filter(|&&k| self.users[k].client.room(room).is_some())
                    .map(|&k| self.users[k].client.nick().to_owned())
                    .collect();
                want.sort();
                let mut got = s.room_members(room).unwrap_or_default();
                got.sort();
                if got != want {
                    return Err(format!(
                        "n{i} has {room} = {got:?}, the clients say {want:?}"
                    ));
                }
            }
        }
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        for room in ROOMS {
            let topics: BTreeSet<Option<String>> = alive
                .iter()
                .map(|&i| self.nodes[i].server.room_topic(room).map(str::to_owned))
                .collect();
            if topics.len() > 1 {
                let each: Vec<String> = alive
                    .iter()
                    .map(|&i| {
                        let s = &self.nodes[i].server;
                        format!("n{i}: {:?} {:?}", s.room_topic(room), s.room_members(room))
                    })
                    .collect();
                return Err(format!("nodes disagree on the topic of {room}: {each:?}"));
            }
        }
        // Nick keys: every live (renewed or not yet expired) key is a live user's.
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        for &k in &live {
            let u = &self.users[k];
            want.insert(
                format!("sb:nick:{}", fold(u.client.nick())),
                self.owner(u.node),
            );
        }
        for (key, k) in &self.bus.keys {
            if k.expires.is_some_and(|t| t <= self.ms) {
                continue;
            }
            match want.get(key) {
                Some(owner) if *owner == k.owner => {}
                _ if k.expires.is_some() && self.owned_by_live_node(&k.owner) => {
                    // Left while its node was cut off: the lease frees it.
                }
                _ if !self.owned_by_live_node(&k.owner)
                    && !self.should_be_freed(&k.owner, k.since) =>
                {
                    // No live node saw both the user and its node's death: the lease frees it.
                }
                _ => {
                    let states: Vec<String> = self
                        .users
                        .iter()
                        .map(|u| {
                            format!(
                                "{}:n{}/{}:{}:{}{}",
                                u.uid,
                                u.node,
                                u.incarnation,
                                u.client.nick(),
                                u.live as u8,
                                u.welcomed as u8
                            )
                        })
                        .collect();
                    let holders: Vec<String> = alive
                        .iter()
                        .map(|&i| format!("n{i}: {:?}", self.nodes[i].server.conn_of(&key[8..])))
                        .collect();
                    return Err(format!(
                        "key {key} is held by {} and no live user of it; {holders:?} {states:?}",
                        k.owner
                    ));
                }
            }
        }
        for (key, owner) in &want {
            if self
                .bus
                .keys
                .get(key)
                .is_none_or(|k| k.owner != *owner || k.expires.is_some())
            {
                return Err(format!("live user's key {key} is not held by {owner}"));
            }
        }
        Ok(())
    }

    fn owned_by_live_node(&self, owner: &str) -> bool {
        (0..self.nodes.len()).any(|i| self.nodes[i].alive && self.owner(i) == owner)
    }

    fn final_round(&mut self) -> Result<(), String> {
        let live = self.live_users();
        for &k in &live {
            self.users[k].client.join("final");
        }
        self.settle(1_000)?;
        let mut sent = Vec::new();
        for &k in &live {
            let u = &mut self.users[k];
            u.said += 1;
            let text = format!("{}:{}", u.uid, u.said);
            u.client.say("final", &text);
            sent.push(text);
        }
        self.settle(1_000)?;
        for &k in &live {
            let u = &self.users[k];
            if !u.live {
                return Err(format!("user {} was closed in the final round", u.uid));
            }
            for text in &sent {
                if !u.texts.contains(text) {
                    return Err(format!(
                        "user {} never got `{text}` in the final round",
                        u.uid
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs one seed; panics are failures too.
pub fn run_one(seed: u64, base: Instant, plant: Option<PlantedBug>) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0xC1A5_7E12);
    let n = rng.range_usize(2, 5);
    let max_delay = rng.range(1, 60);
    let mut world = World {
        rng,
        base,
        ms: 0,
        nodes: Vec::new(),
        users: Vec::new(),
        bus: Bus {
            keys: BTreeMap::new(),
            messages: vec![VecDeque::new(); n],
            replies: vec![VecDeque::new(); n],
        },
        plant,
        max_delay,
        log: Vec::new(),
        crashes: BTreeMap::new(),
    };
    for _ in 0..n {
        world.nodes.push(Node {
            server: Server::new(config()),
            incarnation: 0,
            alive: false,
            up: false,
            subscribed: false,
            back_at: None,
            stable: Vec::new(),
            stable_from: None,
        });
    }
    for i in 0..n {
        world.start_node(i);
    }
    let result = catch_unwind(AssertUnwindSafe(|| world.run()));
    let outcome = match result {
        Ok(r) => r,
        Err(p) => Err(format!(
            "PANIC: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )),
    };
    outcome.map_err(|e| {
        let keep = if std::env::var("SWITCHBOARD_CLUSTER_LOG").is_ok() { usize::MAX } else { 12 };
        let tail: Vec<&String> = world.log.iter().rev().take(keep).collect();
        format!(
            "cluster seed {seed} ({n} nodes, delay ≤ {max_delay} ms) failed at {} ms: {e}\n  last topology events, newest first: {tail:?}\n  replay: SWITCHBOARD_CLUSTER_SEED={seed} cargo test --test sim -- cluster_swarm --nocapture",
            world.ms
        )
    })
}

/// Runs `seeds`; the number that passed, or the first failure.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    base: Instant,
    plant: Option<PlantedBug>,
) -> Result<u64, String> {
    let mut n = 0;
    for seed in seeds {
        run_one(seed, base, plant)?;
        n += 1;
    }
    Ok(n)
}
