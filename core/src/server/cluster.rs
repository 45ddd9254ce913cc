//! The server's peer side: what it tells the other nodes of a cluster and what it learns
//! from them. Every effect leaves as a [`BusOp`] and every answer comes back as a
//! [`BusEvent`]; docs/CLUSTER.md is the design.
//!
//! Other nodes' users are *ghosts*: entries in `conns` with `remote` set and no socket, so
//! the registry, member lists, WHO and WHOIS treat them as any user, and nothing is ever
//! queued for them. Local changes are published by small hooks in `chat.rs` and `mod.rs`
//! (`cluster_emit`); what comes from the bus is applied here.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use super::conn::{Conn, Phase};
use super::outcome::Fail;
use super::rooms::Change;
use super::{Fanout, MsgId, Sent, Server};
use crate::bus::{BusEvent, BusOp, ClusterOptions};
use crate::name::fold;
use crate::packet::{ClientPacket, Member, RoomMode, RoomRule, ServerPacket};
use crate::{ConnId, ErrorCode};

/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which a node is declared dead.
const DEAD_AFTER: Duration = Duration::from_secs(3);
/// The lease of a nick key; the bus renews it every third of this.
const LEASE_MS: u64 = 15_000;
/// The payload format version.
const VERSION: u8 = 2;

/// Counters of what the bus brought that could not be used, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Payloads that did not parse (wrong version, truncated, bad text).
    pub bad_payloads: u64,
    /// Events seen twice (same node, incarnation and sequence number), dropped.
    pub duplicates: u64,
    /// Times a node's sequence numbers skipped (events lost on the bus).
    pub gaps: u64,
    /// Events about a user or room this node does not know, dropped.
    pub unknown: u64,
    /// Remote users whose nick a local user held (only after the bus was down), not shown.
    pub conflicts: u64,
    /// Nodes declared dead (by any node) as seen here.
    pub deaths: u64,
}

/// A request parked until its nick claim is answered, replayed then.
#[derive(Debug)]
pub(super) enum Replay {
    /// A native request (hello or nick change) and its request number.
    Native(u32, ClientPacket),
    /// IRC registration (the session keeps its NICK and USER).
    IrcRegister,
    /// An IRC nick change.
    IrcNick(String),
}

/// A claim sent and not yet answered.
#[derive(Debug)]
struct Pending {
    conn: ConnId,
    key: String,
    folded: String,
    /// Re-claiming a nick the user already has (after `Up` or `Lost`), not a new one.
    again: bool,
}

/// A snapshot under way: users not yet re-announced, and each user's rooms not yet
/// re-joined.
type Stale = (BTreeSet<u64>, BTreeMap<u64, Vec<String>>);

/// What this node knows of another.
#[derive(Debug)]
struct Node {
    incarnation: u64,
    last_seq: u64,
    last_heard: Instant,
    /// Declared dead (its users are gone) until it speaks again.
    dead: bool,
    /// We published its death and wait for the echo.
    dead_sent: bool,
    /// Its users by their id on that node.
    users: BTreeMap<u64, ConnId>,
    /// During a snapshot: users not yet re-announced, and rooms not yet re-joined.
    stale: Option<Stale>,
    /// Nick keys of its users dropped because another node's user took the nick (after a
    /// cut-off one of the two may hold the key unseen): released with the others if the
    /// node dies.
    evicted: BTreeSet<String>,
}

/// The cluster state of one node.
#[derive(Debug)]
pub(super) struct Cluster {
    /// How this node joined.
    pub(super) opts: ClusterOptions,
    /// Ops waiting for the adapter, oldest first.
    pub(super) ops: VecDeque<BusOp>,
    channel: String,
    owner: String,
    up: bool,
    seq: u64,
    next_claim: u64,
    pending: HashMap<u64, Pending>,
    /// The connection whose request just asked for a claim (taken by `cluster_park`).
    parking: Option<ConnId>,
    parked: HashMap<ConnId, Replay>,
    /// Answers waiting for the replayed request: folded nick and whether it was granted.
    grants: HashMap<ConnId, (String, bool)>,
    /// Nick keys this node holds, with the local user holding each.
    held: BTreeMap<String, ConnId>,
    /// Keys let go while the bus was down, to release once it is back.
    unreleased: BTreeSet<String>,
    nodes: BTreeMap<String, Node>,
    next_beat: Option<Instant>,
    /// When to claim every local nick again after hearing ourselves declared dead.
    reclaim_at: Option<Instant>,
    /// Remote users in `conns`.
    pub(super) ghosts: usize,
    /// The Lamport clock of topic stamps: the highest seen or given.
    clock: u64,
    stats: ClusterStats,
}

impl Cluster {
    fn nick_key(&self, folded: &str) -> String {
        format!("{}nick:{folded}", self.opts.prefix)
    }

    fn claim(&mut self, conn: ConnId, folded: String, again: bool) {
        let id = self.next_claim;
        self.next_claim += 1;
        let key = self.nick_key(&folded);
        self.ops.push_back(BusOp::Claim {
            id,
            key: key.clone(),
            owner: self.owner.clone(),
            lease_ms: LEASE_MS,
        });
        self.pending.insert(
            id,
            Pending {
                conn,
                key,
                folded,
                again,
            },
        );
    }

    /// Claims every key held for a local user again (after `Up`, or being declared dead).
    fn reclaim_all(&mut self) {
        let held: Vec<(String, ConnId)> = self.held.iter().map(|(k, c)| (k.clone(), *c)).collect();
        let skip = self.opts.prefix.len() + "nick:".len();
        for (key, conn) in held {
            self.claim(conn, key[skip..].to_owned(), true);
        }
    }

    fn release(&mut self, key: String) {
        if self.held.remove(&key).is_none() {
            return;
        }
        if self.up {
            self.ops.push_back(BusOp::Release {
                key,
                owner: self.owner.clone(),
            });
        } else {
            // The key may outlive the bus outage: released when the bus is back.
            self.unreleased.insert(key);
        }
    }

    fn publish(&mut self, kind: Kind) {
        if !self.up {
            // Nobody hears it; the snapshot after `Up` carries the state instead.
            return;
        }
        self.seq += 1;
        let wire = Wire {
            node: self.opts.node.clone(),
            incarnation: self.opts.incarnation,
            seq: self.seq,
            kind,
        };
        self.ops.push_back(BusOp::Publish {
            channel: self.channel.clone(),
            payload: wire.encode(),
        });
    }
}

fn taken(nick: &str) -> Fail {
    Fail {
        code: ErrorCode::NickTaken,
        target: nick.to_owned(),
        message: format!("nick `{nick}` is taken"),
    }
}

impl Server {
    /// Switches the cluster on: this node shares nicknames, rooms and messages with the
    /// other nodes on the bus. Call before serving.
    pub fn enable_cluster(&mut self, opts: ClusterOptions, now: Instant) {
        self.conns.flush.now.get_or_insert(now);
        self.cluster = Some(Box::new(Cluster {
            channel: format!("{}events", opts.prefix),
            owner: format!("{}/{}", opts.node, opts.incarnation),
            opts,
            ops: VecDeque::new(),
            up: false,
            seq: 0,
            next_claim: 1,
            pending: HashMap::new(),
            parking: None,
            parked: HashMap::new(),
            grants: HashMap::new(),
            held: BTreeMap::new(),
            unreleased: BTreeSet::new(),
            nodes: BTreeMap::new(),
            next_beat: None,
            reclaim_at: None,
            ghosts: 0,
            clock: 0,
            stats: ClusterStats::default(),
        }));
    }

    /// This node's name, when the cluster is switched on.
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.opts.node.as_str())
    }

    /// What the bus brought that could not be used, when the cluster is switched on.
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster.as_ref().map(|c| c.stats)
    }

    /// The other nodes this node counts as alive, sorted.
    pub fn cluster_peers(&self) -> Vec<String> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| {
            c.nodes
                .iter()
                .filter(|(_, n)| !n.dead)
                .map(|(name, _)| name.clone())
                .collect()
        })
    }

    /// The next bus op to run. Ops must be run in the order they are returned.
    pub fn poll_bus(&mut self) -> Option<BusOp> {
        self.cluster.as_mut()?.ops.pop_front()
    }

    /// Takes what the bus reports: a message from another node, a claim's answer, the bus
    /// going down or coming back.
    pub fn handle_bus(&mut self, event: BusEvent, now: Instant) {
        self.set_now(now);
        if self.cluster.is_none() {
            return;
        }
        match event {
            BusEvent::Up => self.bus_up(now),
            BusEvent::Down => self.bus_down(now),
            BusEvent::Message { channel, payload } => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                if channel != c.channel {
                    c.stats.unknown += 1;
                    return;
                }
                match Wire::decode(&payload) {
                    Ok(wire) => self.receive(wire, now),
                    Err(_) => c.stats.bad_payloads += 1,
                }
            }
            BusEvent::Claimed { id, ok } => self.claimed(id, ok, now),
            BusEvent::Lost { key } => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                if let Some(&conn) = c.held.get(&key) {
                    let folded = key[c.opts.prefix.len() + "nick:".len()..].to_owned();
                    c.claim(conn, folded, true);
                }
            }
        }
        self.close_overflowed();
    }

    /// The cluster's next deadline: a heartbeat or a node's death.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        let c = self.cluster.as_ref().filter(|c| c.up)?;
        let deaths = c
            .nodes
            .values()
            .filter(|n| !n.dead && !n.dead_sent)
            .map(|n| n.last_heard + DEAD_AFTER);
        c.next_beat
            .into_iter()
            .chain(c.reclaim_at)
            .chain(deaths)
            .min()
    }

    /// Sends the heartbeat when due and declares silent nodes dead.
    pub(super) fn cluster_timeout(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut().filter(|c| c.up) else {
            return;
        };
        if c.next_beat.is_some_and(|t| t <= now) {
            c.publish(Kind::Heartbeat);
            c.next_beat = Some(now + HEARTBEAT);
        }
        if c.reclaim_at.is_some_and(|t| t <= now) {
            c.reclaim_at = None;
            c.reclaim_all();
        }
        let silent: Vec<(String, u64)> = c
            .nodes
            .iter_mut()
            .filter(|(_, n)| !n.dead && !n.dead_sent && n.last_heard + DEAD_AFTER <= now)
            .map(|(name, n)| {
                n.dead_sent = true;
                (name.clone(), n.incarnation)
            })
            .collect();
        for (node, incarnation) in silent {
            c.publish(Kind::Dead { node, incarnation });
        }
    }

    fn bus_up(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.up = true;
        c.ops.push_back(BusOp::Subscribe {
            channel: c.channel.clone(),
        });
        c.next_beat = Some(now + HEARTBEAT);
        // A node that declared us dead while we were away may release our keys just after
        // we claim them below: claim them once more a heartbeat later.
        c.reclaim_at = Some(now + HEARTBEAT);
        for n in c.nodes.values_mut() {
            // Silence while we were away says nothing about them.
            n.last_heard = now;
            n.dead_sent = false;
        }
        for key in std::mem::take(&mut c.unreleased) {
            if !c.held.contains_key(&key) {
                c.ops.push_back(BusOp::Release {
                    key,
                    owner: c.owner.clone(),
                });
            }
        }
        self.resync(true);
    }

    /// Claims every local nick again and publishes this node's snapshot.
    fn resync(&mut self, want: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.reclaim_all();
        self.publish_snapshot(want);
    }

    fn bus_down(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.up = false;
        c.next_beat = None;
        // No answer will come: parked requests go on with local uniqueness only.
        let pending: Vec<Pending> = std::mem::take(&mut c.pending).into_values().collect();
        let mut resume = Vec::new();
        for p in pending {
            if !p.again && c.parked.contains_key(&p.conn) {
                c.grants.insert(p.conn, (p.folded, true));
                resume.push(p.conn);
            }
        }
        resume.sort();
        for conn in resume {
            self.resume(conn, now);
        }
    }

    fn claimed(&mut self, id: u64, ok: bool, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(p) = c.pending.remove(&id) else {
            return;
        };
        if p.again {
            if !ok && c.held.get(&p.key) == Some(&p.conn) {
                c.held.remove(&p.key);
                let nick = self.nick(p.conn);
                self.close(
                    p.conn,
                    ErrorCode::NickTaken,
                    &format!("nick `{nick}` was taken on another node while this one was cut off"),
                    "nick taken on another node",
                );
                // Other nodes may have dropped the winner's entry for ours: everyone
                // sends its state again.
                self.publish_snapshot(true);
            }
            return;
        }
        if c.parked.contains_key(&p.conn) {
            c.grants.insert(p.conn, (p.folded, ok));
            self.resume(p.conn, now);
        }
        // A grant no local user took (the user left, or asked for another nick) is freed.
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if ok && c.up && !c.held.contains_key(&p.key) {
            c.ops.push_back(BusOp::Release {
                key: p.key,
                owner: c.owner.clone(),
            });
        }
    }

    /// Replays a parked request now that its claim is answered, then the input behind it.
    fn resume(&mut self, conn: ConnId, now: Instant) {
        // Its own request: the answers go out at once.
        self.as_actor(conn, |s| s.resume_as_actor(conn, now));
    }

    /// `resume`, with `conn` noted as the connection whose request is handled.
    fn resume_as_actor(&mut self, conn: ConnId, now: Instant) {
        let Some(replay) = self.cluster.as_mut().and_then(|c| c.parked.remove(&conn)) else {
            return;
        };
        if self
            .conns
            .get(&conn)
            .is_none_or(|c| c.phase == Phase::Closing)
        {
            // Closed while it waited: nothing to replay (an unused grant is released).
            return;
        }
        match replay {
            Replay::Native(seq, packet) => self.native_packet(conn, seq, packet, now),
            Replay::IrcRegister => self.irc_try_register(conn),
            Replay::IrcNick(nick) => self.irc_nick(conn, &[&nick], true),
        }
        if let Some(c) = self.cluster.as_mut() {
            if !c.parked.contains_key(&conn) {
                c.grants.remove(&conn);
            }
        }
        self.close_overflowed();
        if self
            .conns
            .get(&conn)
            .is_some_and(|c| c.phase != Phase::Closing)
        {
            self.pump(conn, &[], now);
        }
    }

    /// Whether a connection waits for a claim's answer (its input waits behind it).
    pub(super) fn cluster_parked(&self, id: ConnId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.parked.contains_key(&id))
    }

    /// After a front saw its request fail: if the failure was a claim sent to the bus, the
    /// request is parked for replay and the front must say nothing.
    pub(super) fn cluster_park(&mut self, id: ConnId, replay: impl FnOnce() -> Replay) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        if c.parking != Some(id) {
            return false;
        }
        c.parking = None;
        c.parked.insert(id, replay());
        true
    }

    /// The cluster's say on taking `nick` for `id`: go on, taken, or (an error the front
    /// turns into parking, see [`Server::cluster_park`]) wait for the bus.
    pub(super) fn cluster_claim(&mut self, id: ConnId, nick: &str) -> Result<(), Fail> {
        let Some(c) = self.cluster.as_mut() else {
            return Ok(());
        };
        let folded = fold(nick);
        if let Some((f, ok)) = c.grants.remove(&id) {
            if f == folded {
                return if ok { Ok(()) } else { Err(taken(nick)) };
            }
        }
        if !c.up {
            return Ok(());
        }
        let key = c.nick_key(&folded);
        if c.held.get(&key) == Some(&id) {
            return Ok(());
        }
        c.claim(id, folded, false);
        c.parking = Some(id);
        Err(taken(nick))
    }

    /// Publishes what a local user did; `make` gets the user's id on this node.
    pub(super) fn cluster_emit(&mut self, id: ConnId, make: impl FnOnce(u64) -> Kind) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.up || self.conns.get(&id).is_none_or(|conn| conn.remote) {
            return;
        }
        c.publish(make(id.0));
    }

    /// A local user signed in: its nick key is held, the others learn of it.
    pub(super) fn cluster_signed_in(&mut self, id: ConnId) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(conn) = self.conns.get(&id).filter(|conn| !conn.remote) else {
            return;
        };
        let key = c.nick_key(&fold(&conn.nick));
        c.held.insert(key, id);
        c.publish(Kind::User {
            user: id.0,
            nick: conn.nick.clone(),
            name: conn.user.clone(),
            real: conn.realname.clone(),
            away: conn.away.clone(),
        });
    }

    /// A local user changed nick: the new key is held (claimed before), the old freed.
    pub(super) fn cluster_renamed(&mut self, id: ConnId, old: &str, new: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if self.conns.get(&id).is_none_or(|conn| conn.remote) {
            return;
        }
        let (old_key, new_key) = (c.nick_key(&fold(old)), c.nick_key(&fold(new)));
        if old_key != new_key {
            c.held.insert(new_key, id);
            c.release(old_key);
        }
        c.publish(Kind::Nick {
            user: id.0,
            nick: new.to_owned(),
        });
    }

    /// A local user is leaving the server: the others hear, its nick key is freed.
    pub(super) fn cluster_departing(&mut self, id: ConnId, reason: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.remote || conn.phase != Phase::Ready {
            return;
        }
        let key = c.nick_key(&fold(&conn.nick));
        c.publish(Kind::Quit {
            user: id.0,
            reason: reason.to_owned(),
        });
        if c.held.get(&key) == Some(&id) {
            c.release(key);
        }
    }

    /// The version of a topic set here: a Lamport stamp after every one seen, and this
    /// node; `(0, "")` without a cluster.
    pub(super) fn cluster_topic_stamp(&mut self) -> (u64, String) {
        match self.cluster.as_mut() {
            Some(c) => {
                c.clock += 1;
                (c.clock, c.opts.node.clone())
            }
            None => (0, String::new()),
        }
    }

    /// Everything other nodes must know of this one: its users, their rooms, those rooms'
    /// state, and the topics it set last (of rooms it may have no member in any more),
    /// between a Reset and a Synced.
    fn publish_snapshot(&mut self, want: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.publish(Kind::Reset { want });
        let mut ids: Vec<ConnId> = self
            .conns
            .map
            .iter()
            .filter(|(_, conn)| !conn.remote && conn.phase == Phase::Ready)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        let mut rooms = BTreeSet::new();
        for id in ids {
            let Some(conn) = self.conns.get(&id) else {
                continue;
            };
            c.publish(Kind::User {
                user: id.0,
                nick: conn.nick.clone(),
                name: conn.user.clone(),
                real: conn.realname.clone(),
                away: conn.away.clone(),
            });
            for key in &conn.rooms {
                if let Some(r) = self.registry.room(key) {
                    rooms.insert(key.clone());
                    c.publish(Kind::Join {
                        user: id.0,
                        room: r.name.clone(),
                        flags: r.flags(id),
                        stamp: r.topic_stamp.0,
                        stamp_node: r.topic_stamp.1.clone(),
                    });
                }
            }
        }
        // A topic set here while cut off must reach the others even when its setter has
        // left since: the topic's version decides, so re-sending it is always safe.
        let set_here: Vec<String> = self
            .registry
            .sorted()
            .filter(|r| r.topic_stamp.1 == c.opts.node)
            .map(|r| fold(&r.name))
            .collect();
        let mut topic_only = BTreeSet::new();
        for key in set_here {
            if !rooms.contains(&key) {
                topic_only.insert(key.clone());
                rooms.insert(key);
            }
        }
        for key in rooms {
            if let Some(r) = self.registry.room(&key) {
                let only = if topic_only.contains(&key) {
                    TOPIC_ONLY
                } else {
                    0
                };
                c.publish(Kind::Room {
                    room: r.name.clone(),
                    topic: r.topic.clone(),
                    by: r.topic_by.clone(),
                    stamp: r.topic_stamp.0,
                    stamp_node: r.topic_stamp.1.clone(),
                    flags: room_flags(r) | only,
                    key: r.key.clone(),
                    limit: r.limit,
                });
                if only != 0 {
                    continue;
                }
                // The lists, entry by entry as Rule events (no author): one a node
                // already holds changes nothing there; one it missed is added.
                let lists = [
                    (RoomRule::Ban, &r.bans),
                    (RoomRule::BanExempt, &r.exempts),
                    (RoomRule::InviteExempt, &r.invexes),
                ];
                for (rule, list) in lists {
                    for mask in list {
                        c.publish(Kind::Rule {
                            user: NO_USER,
                            room: r.name.clone(),
                            letter: rule.letter(),
                            on: true,
                            arg: mask.clone(),
                        });
                    }
                }
            }
        }
        c.publish(Kind::Synced);
    }

    /// Applies one event from the bus, this node's own included.
    fn receive(&mut self, wire: Wire, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let mine = wire.node == c.opts.node;
        if mine {
            if wire.incarnation != c.opts.incarnation {
                // Another process under our name (an old one still draining): not ours.
                c.stats.unknown += 1;
                return;
            }
        } else {
            let restarted = match c.nodes.get(&wire.node) {
                Some(n) if wire.incarnation < n.incarnation => {
                    c.stats.unknown += 1;
                    return;
                }
                Some(n) => wire.incarnation > n.incarnation,
                None => false,
            };
            if restarted {
                self.drop_node(&wire.node, "node restarted", true);
            }
            let Some(c) = self.cluster.as_mut() else {
                return;
            };
            let n = c.nodes.entry(wire.node.clone()).or_insert(Node {
                incarnation: wire.incarnation,
                last_seq: 0,
                last_heard: now,
                dead: false,
                dead_sent: false,
                users: BTreeMap::new(),
                stale: None,
                evicted: BTreeSet::new(),
            });
            if restarted {
                n.incarnation = wire.incarnation;
                n.last_seq = 0;
            }
            if wire.seq <= n.last_seq {
                c.stats.duplicates += 1;
                return;
            }
            if n.last_seq != 0 && wire.seq != n.last_seq + 1 {
                c.stats.gaps += 1;
            }
            n.last_seq = wire.seq;
            n.last_heard = now;
            n.dead_sent = false;
            n.dead = false;
        }
        let node = wire.node;
        match wire.kind {
            Kind::Heartbeat => {}
            Kind::User {
                user,
                nick,
                name,
                real,
                away,
            } if !mine => self.remote_user(&node, user, nick, name, real, away, now),
            Kind::Nick { user, nick } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remote_nick(g, &nick);
                }
            }
            Kind::Quit { user, reason } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remove_ghost(&node, user, g, &reason);
                }
            }
            Kind::Join {
                user,
                room,
                flags,
                stamp,
                stamp_node,
            } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remote_join(&node, user, g, &room, flags, now);
                    self.compare_topic(&room, (stamp, stamp_node));
                }
            }
            Kind::Part { user, room, reason } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remote_leave(g, &fold(&room), &reason);
                }
            }
            Kind::Say {
                user,
                room,
                text,
                notice,
                from_irc,
            } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remote_say(g, &room, text, Sent::new(notice, from_irc), now);
                }
            }
            Kind::Away { user, message } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    if let Some(conn) = self.conns.get_mut(&g) {
                        conn.away = message;
                    }
                    self.relay_away(g, None);
                }
            }
            Kind::Whisper {
                user,
                to,
                text,
                notice,
                from_irc,
            } if !mine => {
                if let Some(g) = self.ghost(&node, user) {
                    self.remote_whisper(g, &to, text, Sent::new(notice, from_irc), now);
                }
            }
            Kind::Kill { nick, why, .. } if !mine => {
                // Only the node that holds the socket can close it; the others hear the
                // user's Quit as usual.
                if let Some(target) = self.registry.find_nick(&nick) {
                    if self.conns.get(&target).is_some_and(|c| !c.remote) {
                        self.close(target, ErrorCode::Quit, &why, &why);
                    }
                }
            }
            Kind::Topic {
                user,
                room,
                topic,
                stamp,
            } => {
                let by = self.author(&node, user);
                let version = (stamp, node.clone());
                self.remote_topic(by, &room, &topic, None, version, now);
            }
            Kind::Kick {
                user,
                room,
                nick,
                reason,
            } => {
                let by = self.author(&node, user);
                self.remote_kick(by, &room, &nick, &reason);
            }
            Kind::Mode {
                user,
                room,
                letter,
                on,
                nick,
            } => {
                let by = self.author(&node, user);
                match RoomMode::from_letter(letter) {
                    Some(mode) => self.remote_change(by, &room, Change::mode(mode, &nick), on),
                    None => self.bad_payload(),
                }
            }
            Kind::Rule {
                user,
                room,
                letter,
                on,
                arg,
            } => {
                let by = self.author(&node, user);
                match RoomRule::from_letter(letter) {
                    Some(rule) => self.remote_change(by, &room, Change::rule(rule, &arg), on),
                    None => self.bad_payload(),
                }
            }
            Kind::Room {
                room,
                topic,
                by,
                stamp,
                stamp_node,
                flags,
                key,
                limit,
            } => {
                let version = (stamp, stamp_node);
                self.remote_room(&room, &topic, &by, version, flags, &key, limit, now);
            }
            Kind::Reset { want } if !mine => {
                self.snapshot_begins(&node);
                if want {
                    self.publish_snapshot(false);
                }
            }
            Kind::Synced if !mine => self.snapshot_ends(&node),
            Kind::Dead {
                node: dead,
                incarnation,
            } => self.declared_dead(&dead, incarnation, mine),
            // Our own echo of what only its author's node applies.
            _ => {}
        }
    }

    /// The local entry of user `user` of `node`, or `None` (counted) if unknown.
    fn ghost(&mut self, node: &str, user: u64) -> Option<ConnId> {
        let c = self.cluster.as_mut()?;
        let found = c.nodes.get(node).and_then(|n| n.users.get(&user)).copied();
        if found.is_none() {
            c.stats.unknown += 1;
        }
        found
    }

    /// Who did a room change: a ghost, a local user (our own echo), or nobody left.
    fn author(&self, node: &str, user: u64) -> Option<ConnId> {
        let c = self.cluster.as_ref()?;
        if node == c.opts.node {
            let id = ConnId(user);
            return self
                .conns
                .get(&id)
                .filter(|conn| !conn.remote && conn.phase == Phase::Ready)
                .map(|_| id);
        }
        c.nodes.get(node).and_then(|n| n.users.get(&user)).copied()
    }

    /// The IRC source of an author, or the server's name if it is gone.
    fn author_source(&self, by: Option<ConnId>) -> String {
        match by {
            Some(id) => self.source(id),
            None => self.config.server_name.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remote_user(
        &mut self,
        node: &str,
        user: u64,
        nick: String,
        name: String,
        real: String,
        away: String,
        now: Instant,
    ) {
        let existing = self.cluster.as_mut().and_then(|c| {
            let n = c.nodes.get_mut(node)?;
            if let Some((users, _)) = &mut n.stale {
                users.remove(&user);
            }
            n.users.get(&user).copied()
        });
        if let Some(g) = existing {
            if self.nick(g) != nick {
                self.remote_nick(g, &nick);
            }
            if let Some(conn) = self.conns.get_mut(&g) {
                if conn.away != away {
                    conn.away = away;
                    self.relay_away(g, None);
                }
            }
            return;
        }
        let max_nick = self.config.max_nick_len.max(64) as usize;
        if crate::name::validate_nick(&nick, max_nick).is_err() {
            if let Some(c) = self.cluster.as_mut() {
                c.stats.bad_payloads += 1;
            }
            return;
        }
        self.evict_stale(&nick);
        let id = ConnId(self.next_id);
        if self.registry.claim_nick(&nick, id).is_err() {
            if let Some(c) = self.cluster.as_mut() {
                c.stats.conflicts += 1;
            }
            return;
        }
        self.next_id += 1;
        let mut conn = Conn::new(now);
        conn.remote = true;
        conn.phase = Phase::Ready;
        conn.nick = nick;
        conn.user = name;
        conn.realname = real;
        conn.away = away;
        self.conns.insert(id, Box::new(conn));
        if let Some(c) = self.cluster.as_mut() {
            c.ghosts += 1;
            if let Some(n) = c.nodes.get_mut(node) {
                n.users.insert(user, id);
            }
        }
    }

    /// A remote user now holds `nick` (its node claimed the key, and the bus orders that
    /// after any release): a remote entry still holding it is stale (its Quit or its
    /// node's death was missed while this node was cut off), so it goes. A local holder
    /// stays: the two are sorted out when this node re-claims its nicks.
    fn evict_stale(&mut self, nick: &str) {
        let Some(holder) = self.registry.find_nick(nick) else {
            return;
        };
        if self.conns.get(&holder).is_none_or(|c| !c.remote) {
            return;
        }
        let found = self.cluster.as_ref().and_then(|c| {
            c.nodes.iter().find_map(|(name, n)| {
                n.users
                    .iter()
                    .find(|(_, g)| **g == holder)
                    .map(|(u, _)| (name.clone(), *u))
            })
        });
        if let Some((node, user)) = found {
            if let Some(c) = self.cluster.as_mut() {
                let key = c.nick_key(&fold(nick));
                if let Some(n) = c.nodes.get_mut(&node) {
                    n.evicted.insert(key);
                }
            }
            self.remove_ghost(&node, user, holder, "left while the cluster was apart");
        }
    }

    fn remote_nick(&mut self, g: ConnId, nick: &str) {
        let old = self.nick(g);
        if fold(&old) != fold(nick) {
            if self.registry.find_nick(nick).is_some_and(|h| h != g) {
                self.evict_stale(nick);
            }
            if self.registry.claim_nick(nick, g).is_err() {
                if let Some(c) = self.cluster.as_mut() {
                    c.stats.conflicts += 1;
                }
                return;
            }
            self.registry.release_nick(&old, g);
            if let Some(c) = self.conns.get(&g) {
                let (user, realname) = (c.user().to_owned(), c.realname.clone());
                self.registry.remember(&old, &user, &realname);
            }
        }
        let source = self.source(g);
        let Some(conn) = self.conns.get_mut(&g) else {
            return;
        };
        conn.nick = nick.to_owned();
        let mut recipients = Vec::new();
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
    }

    /// Drops a remote user, telling local members of its rooms.
    fn remove_ghost(&mut self, node: &str, user: u64, g: ConnId, reason: &str) {
        self.depart(g, reason);
        self.conns.remove(g);
        if let Some(c) = self.cluster.as_mut() {
            c.ghosts = c.ghosts.saturating_sub(1);
            if let Some(n) = c.nodes.get_mut(node) {
                n.users.remove(&user);
            }
        }
    }

    fn remote_join(
        &mut self,
        node: &str,
        user: u64,
        g: ConnId,
        room: &str,
        flags: u8,
        now: Instant,
    ) {
        let max_room = self.config.max_room_len.max(64) as usize;
        if crate::name::validate_room(room, max_room).is_err() {
            if let Some(c) = self.cluster.as_mut() {
                c.stats.bad_payloads += 1;
            }
            return;
        }
        let key = fold(room);
        if let Some((_, rooms)) = self
            .cluster
            .as_mut()
            .and_then(|c| c.nodes.get_mut(node))
            .and_then(|n| n.stale.as_mut())
        {
            if let Some(list) = rooms.get_mut(&user) {
                list.retain(|k| *k != key);
            }
        }
        let Some(conn) = self.conns.get_mut(&g) else {
            return;
        };
        let already = conn.rooms.contains(&key);
        if !already {
            conn.add_room(key.clone());
            self.registry.join(&key, room, g, now);
        }
        let Some(r) = self.registry.room_mut(&key) else {
            return;
        };
        set_member(&mut r.operators, g, flags & Member::OPERATOR != 0);
        set_member(&mut r.voiced, g, flags & Member::VOICE != 0);
        if already {
            return;
        }
        let name = r.name.clone();
        let source = self.source(g);
        let joined = ServerPacket::Joined {
            room: name,
            nick: self.nick(g),
        };
        self.relay_join(g, &key, &joined, &source);
        if self.conns.get(&g).is_some_and(|c| !c.away.is_empty()) {
            self.relay_away(g, Some(&key));
        }
    }

    /// A joiner's node holds the room's topic at `version`: if ours differs, one of the two
    /// rooms missed a topic (it was made again while the other lived on); ours is
    /// published so the node with the higher version answers and every node takes it.
    fn compare_topic(&mut self, room: &str, version: (u64, String)) {
        if let Some(c) = self.cluster.as_mut() {
            c.clock = c.clock.max(version.0);
        }
        let Some(r) = self.registry.room(&fold(room)) else {
            return;
        };
        if r.topic_stamp == version {
            return;
        }
        let ours = topic_only(r);
        if let Some(c) = self.cluster.as_mut() {
            c.publish(ours);
        }
    }

    /// A member leaves a room (part, kick or resync), everyone in it told.
    fn remote_leave(&mut self, g: ConnId, key: &str, reason: &str) {
        if self
            .conns
            .get(&g)
            .is_none_or(|c| !c.rooms.iter().any(|k| k == key))
        {
            return;
        }
        let source = self.source(g);
        if let Some(r) = self.registry.room(key) {
            let left = ServerPacket::Left {
                room: r.name.clone(),
                nick: self.nick(g),
                reason: reason.to_owned(),
            };
            self.relay_room(key, &mut Fanout::new(&left, &source), None);
        }
        self.registry.leave(key, g);
        if let Some(conn) = self.conns.get_mut(&g) {
            conn.remove_room(key);
        }
    }

    fn remote_say(&mut self, g: ConnId, room: &str, text: String, sent: Sent, now: Instant) {
        let key = fold(room);
        let from = self.nick(g);
        let Some(r) = self.registry.room_mut(&key) else {
            if let Some(c) = self.cluster.as_mut() {
                c.stats.unknown += 1;
            }
            return;
        };
        r.seq += 1;
        let seq = r.seq;
        let message = ServerPacket::Message {
            room: r.name.clone(),
            from,
            seq,
            text,
        };
        // Stamped and relayed as a local message is, so that no client can tell senders
        // here from senders on other nodes.
        let time_ms = self.wall_ms(now);
        let mut fan = self.message_fan(&message, g, sent, time_ms, MsgId::Room(&key, seq));
        self.relay_message(&key, &mut fan, g, true);
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(super::PlantedBug::DuplicateRemoteMessage) {
            self.relay_room(&key, &mut fan, None);
        }
    }

    fn remote_whisper(&mut self, g: ConnId, to: &str, text: String, sent: Sent, now: Instant) {
        let Some(target) = self.registry.find_nick(to) else {
            return;
        };
        if self.conns.get(&target).is_none_or(|c| c.remote) {
            return;
        }
        let direct = ServerPacket::Direct {
            from: self.nick(g),
            to: self.nick(target),
            text,
        };
        let time_ms = self.wall_ms(now);
        let msgid = MsgId::Text(self.direct_msgid(time_ms));
        let mut fan = self.message_fan(&direct, g, sent, time_ms, msgid);
        self.deliver_direct(target, &mut fan, g);
    }

    /// Takes a topic from the bus if its version is above the room's (the highest version
    /// wins, so every node settles on the same topic whatever order it hears them in).
    fn remote_topic(
        &mut self,
        by: Option<ConnId>,
        room: &str,
        topic: &str,
        by_nick: Option<&str>,
        version: (u64, String),
        now: Instant,
    ) {
        if let Some(c) = self.cluster.as_mut() {
            c.clock = c.clock.max(version.0);
        }
        let key = fold(room);
        let source = self.author_source(by);
        let by_nick = match by_nick {
            Some(n) => n.to_owned(),
            None => by.map(|b| self.nick(b)).unwrap_or_default(),
        };
        let Some(r) = self.registry.room_mut(&key) else {
            return;
        };
        if version < r.topic_stamp {
            // The sender has not seen ours (its room was made again, or it was cut off):
            // answer with ours, so it and every node settle on the highest.
            let answer = topic_only(r);
            if let Some(c) = self.cluster.as_mut() {
                c.publish(answer);
            }
            return;
        }
        if version == r.topic_stamp {
            return;
        }
        r.topic_stamp = version;
        if r.topic == topic {
            r.topic_by.clone_from(&by_nick);
            return;
        }
        r.topic = topic.to_owned();
        r.topic_by = by_nick.clone();
        r.topic_at = now;
        let notice = ServerPacket::Topic {
            room: r.name.clone(),
            topic: topic.to_owned(),
            by: by_nick,
        };
        self.relay_room(&key, &mut Fanout::new(&notice, &source), None);
    }

    fn remote_kick(&mut self, by: Option<ConnId>, room: &str, nick: &str, reason: &str) {
        let key = fold(room);
        let Some(target) = self.registry.find_nick(nick) else {
            return;
        };
        let Some(r) = self.registry.room(&key).filter(|r| r.is_member(target)) else {
            return;
        };
        let source = self.author_source(by);
        let kicked = ServerPacket::Kicked {
            room: r.name.clone(),
            nick: self.nick(target),
            by: by.map(|b| self.nick(b)).unwrap_or_default(),
            reason: reason.to_owned(),
        };
        self.relay_room(&key, &mut Fanout::new(&kicked, &source), None);
        self.registry.leave(&key, target);
        if let Some(conn) = self.conns.get_mut(&target) {
            conn.remove_room(&key);
        }
    }

    fn bad_payload(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.stats.bad_payloads += 1;
        }
    }

    /// A mode or rule change from another node (checked there): applied by the same
    /// `Change::apply` as a local one; a mode's member must sit in the room here.
    fn remote_change(&mut self, by: Option<ConnId>, room: &str, mut change: Change, on: bool) {
        let key = fold(room);
        let source = self.author_source(by);
        let by_nick = by.map(|b| self.nick(b)).unwrap_or_default();
        if let Change::Mode {
            mode, nick, target, ..
        } = &mut change
        {
            if mode.takes_nick() {
                *target = self.registry.find_nick(nick);
            } else {
                nick.clear();
            }
        }
        let Some(r) = self.registry.room_mut(&key) else {
            return;
        };
        if let Change::Mode { mode, target, .. } = &mut change {
            *target = target.filter(|t| r.is_member(*t));
            if mode.takes_nick() && target.is_none() {
                return;
            }
        }
        if !matches!(change.apply(r, on), Ok(true)) {
            return;
        }
        let notice = change.notice(r.name.clone(), by_nick, on);
        self.relay_room(&key, &mut Fanout::new(&notice, &source), None);
    }

    #[allow(clippy::too_many_arguments)]
    fn remote_room(
        &mut self,
        room: &str,
        topic: &str,
        by: &str,
        version: (u64, String),
        flags: u8,
        key: &str,
        limit: u32,
        now: Instant,
    ) {
        self.remote_topic(None, room, topic, Some(by), version, now);
        if flags & TOPIC_ONLY != 0 {
            return;
        }
        let Some(r) = self.registry.room_mut(&fold(room)) else {
            return;
        };
        r.topic_lock = flags & 1 != 0;
        r.moderated = flags & 2 != 0;
        r.no_outside = flags & 4 != 0;
        r.secret = flags & 8 != 0;
        r.invite_only = flags & 16 != 0;
        r.key = key.to_owned();
        r.limit = limit;
    }

    /// A node starts its snapshot: what it does not re-announce before Synced is gone.
    fn snapshot_begins(&mut self, node: &str) {
        let rooms: Vec<(u64, Vec<String>)> = {
            let Some(n) = self.cluster.as_ref().and_then(|c| c.nodes.get(node)) else {
                return;
            };
            n.users
                .iter()
                .map(|(u, g)| {
                    (
                        *u,
                        self.conns
                            .get(g)
                            .map(|c| c.rooms.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        };
        let Some(n) = self.cluster.as_mut().and_then(|c| c.nodes.get_mut(node)) else {
            return;
        };
        let users = rooms.iter().map(|(u, _)| *u).collect();
        n.stale = Some((users, rooms.into_iter().collect()));
    }

    fn snapshot_ends(&mut self, node: &str) {
        let Some((users, rooms)) = self
            .cluster
            .as_mut()
            .and_then(|c| c.nodes.get_mut(node))
            .and_then(|n| n.stale.take())
        else {
            return;
        };
        for (user, keys) in rooms {
            if users.contains(&user) {
                continue;
            }
            let Some(g) = self.ghost(node, user) else {
                continue;
            };
            for key in keys {
                self.remote_leave(g, &key, "left while the cluster was apart");
            }
        }
        for user in users {
            if let Some(g) = self.ghost(node, user) {
                self.remove_ghost(node, user, g, "left while the cluster was apart");
            }
        }
    }

    /// Every user of `node` is gone; its nick keys are released if `release`.
    fn drop_node(&mut self, node: &str, reason: &str, release: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(n) = c.nodes.get_mut(node) else {
            return;
        };
        let owner = format!("{node}/{}", n.incarnation);
        let users: Vec<(u64, ConnId)> = std::mem::take(&mut n.users).into_iter().collect();
        n.stale = None;
        let evicted = std::mem::take(&mut n.evicted);
        let mut keys: BTreeSet<String> = users
            .iter()
            .map(|(_, g)| c.nick_key(&fold(self.conns.get(g).map_or("", |x| x.nick.as_str()))))
            .collect();
        keys.extend(evicted);
        for (user, g) in users {
            self.remove_ghost(node, user, g, reason);
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        #[cfg(feature = "planted-bugs")]
        let release = release && self.planted != Some(super::PlantedBug::KeepDeadNicks);
        if release && c.up {
            for key in keys {
                c.ops.push_back(BusOp::Release {
                    key,
                    owner: owner.clone(),
                });
            }
        }
    }

    fn declared_dead(&mut self, node: &str, incarnation: u64, by_me: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if node == c.opts.node {
            if incarnation == c.opts.incarnation && c.up {
                // We were silent too long but are alive: the others dropped us. The node
                // that declared us dead releases our keys when it hears its own notice;
                // claiming them again a heartbeat later keeps that release from undoing
                // the claim.
                c.reclaim_at = self.conns.flush.now.map(|t| t + HEARTBEAT);
                self.publish_snapshot(false);
            }
            return;
        }
        let Some(n) = c.nodes.get_mut(node) else {
            return;
        };
        if n.incarnation != incarnation || n.dead {
            return;
        }
        n.dead = true;
        c.stats.deaths += 1;
        // Every node releases the keys of the users it knew there: the first to declare
        // the death may not have known them all (it may have been cut off when they came).
        let _ = by_me;
        self.drop_node(node, "node lost", true);
    }
}

/// Room flags in a Room snapshot: t, m, n, s, i as bits 0 to 4.
/// The `user` of an event no user made (a snapshot's list entries).
const NO_USER: u64 = u64::MAX;

/// A `Room` flag: only its topic counts (the sender has no member there, so its modes may
/// be out of date).
const TOPIC_ONLY: u8 = 32;

/// A room's topic and its version, alone.
fn topic_only(r: &super::rooms::Room) -> Kind {
    Kind::Room {
        room: r.name.clone(),
        topic: r.topic.clone(),
        by: r.topic_by.clone(),
        stamp: r.topic_stamp.0,
        stamp_node: r.topic_stamp.1.clone(),
        flags: TOPIC_ONLY,
        key: String::new(),
        limit: 0,
    }
}

fn room_flags(r: &super::rooms::Room) -> u8 {
    u8::from(r.topic_lock)
        | u8::from(r.moderated) << 1
        | u8::from(r.no_outside) << 2
        | u8::from(r.secret) << 3
        | u8::from(r.invite_only) << 4
}

fn set_member(set: &mut Vec<ConnId>, id: ConnId, on: bool) {
    let has = set.contains(&id);
    if on && !has {
        set.push(id);
    } else if !on && has {
        set.retain(|m| *m != id);
    }
}

/// One event on the bus: who sent it, its place in the sender's order, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wire {
    pub node: String,
    pub incarnation: u64,
    pub seq: u64,
    pub kind: Kind,
}

/// What an event says; docs/CLUSTER.md has the table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub(super) enum Kind {
    Heartbeat,
    User {
        user: u64,
        nick: String,
        name: String,
        real: String,
        away: String,
    },
    Nick {
        user: u64,
        nick: String,
    },
    Quit {
        user: u64,
        reason: String,
    },
    Join {
        user: u64,
        room: String,
        flags: u8,
        /// The version of the room's topic on the joiner's node.
        stamp: u64,
        stamp_node: String,
    },
    Part {
        user: u64,
        room: String,
        reason: String,
    },
    Say {
        user: u64,
        room: String,
        text: String,
        notice: bool,
        /// The text came from an IRC line (IRC relays cut it to one line).
        from_irc: bool,
    },
    Topic {
        user: u64,
        room: String,
        topic: String,
        /// The setter's Lamport stamp; with the sender's node name it orders topics.
        stamp: u64,
    },
    Kick {
        user: u64,
        room: String,
        nick: String,
        reason: String,
    },
    Mode {
        user: u64,
        room: String,
        letter: u8,
        on: bool,
        nick: String,
    },
    Rule {
        user: u64,
        room: String,
        letter: u8,
        on: bool,
        arg: String,
    },
    Away {
        user: u64,
        message: String,
    },
    Whisper {
        user: u64,
        to: String,
        text: String,
        notice: bool,
        /// The text came from an IRC line (IRC relays cut it to one line).
        from_irc: bool,
    },
    Reset {
        want: bool,
    },
    /// A server operator killed `nick`, a user of the node that must close it.
    Kill {
        user: u64,
        nick: String,
        why: String,
    },
    Synced,
    Dead {
        node: String,
        incarnation: u64,
    },
    Room {
        room: String,
        topic: String,
        by: String,
        /// The topic's version: Lamport stamp and the node that set it.
        stamp: u64,
        stamp_node: String,
        flags: u8,
        key: String,
        limit: u32,
    },
}

/// A message's flag byte (see `Reader::text_flags`).
fn text_flags(notice: bool, from_irc: bool) -> u8 {
    u8::from(notice) | u8::from(from_irc) << 1
}

fn put_str(buf: &mut BytesMut, s: &str) {
    let s = crate::line::cut(s, u16::MAX as usize);
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

impl Wire {
    /// The payload, in format version 1.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u8(VERSION);
        put_str(&mut b, &self.node);
        b.put_u64(self.incarnation);
        b.put_u64(self.seq);
        match &self.kind {
            Kind::Heartbeat => b.put_u8(1),
            Kind::User {
                user,
                nick,
                name,
                real,
                away,
            } => {
                b.put_u8(2);
                b.put_u64(*user);
                for s in [nick, name, real, away] {
                    put_str(&mut b, s);
                }
            }
            Kind::Nick { user, nick } => {
                b.put_u8(3);
                b.put_u64(*user);
                put_str(&mut b, nick);
            }
            Kind::Quit { user, reason } => {
                b.put_u8(4);
                b.put_u64(*user);
                put_str(&mut b, reason);
            }
            Kind::Join {
                user,
                room,
                flags,
                stamp,
                stamp_node,
            } => {
                b.put_u8(5);
                b.put_u64(*user);
                put_str(&mut b, room);
                b.put_u8(*flags);
                b.put_u64(*stamp);
                put_str(&mut b, stamp_node);
            }
            Kind::Part { user, room, reason } => {
                b.put_u8(6);
                b.put_u64(*user);
                put_str(&mut b, room);
                put_str(&mut b, reason);
            }
            Kind::Say {
                user,
                room,
                text,
                notice,
                from_irc,
            } => {
                b.put_u8(7);
                b.put_u64(*user);
                put_str(&mut b, room);
                put_str(&mut b, text);
                b.put_u8(text_flags(*notice, *from_irc));
            }
            Kind::Topic {
                user,
                room,
                topic,
                stamp,
            } => {
                b.put_u8(8);
                b.put_u64(*user);
                put_str(&mut b, room);
                put_str(&mut b, topic);
                b.put_u64(*stamp);
            }
            Kind::Kick {
                user,
                room,
                nick,
                reason,
            } => {
                b.put_u8(9);
                b.put_u64(*user);
                put_str(&mut b, room);
                put_str(&mut b, nick);
                put_str(&mut b, reason);
            }
            Kind::Mode {
                user,
                room,
                letter,
                on,
                nick,
            } => {
                b.put_u8(10);
                b.put_u64(*user);
                put_str(&mut b, room);
                b.put_u8(*letter);
                b.put_u8(u8::from(*on));
                put_str(&mut b, nick);
            }
            Kind::Rule {
                user,
                room,
                letter,
                on,
                arg,
            } => {
                b.put_u8(11);
                b.put_u64(*user);
                put_str(&mut b, room);
                b.put_u8(*letter);
                b.put_u8(u8::from(*on));
                put_str(&mut b, arg);
            }
            Kind::Away { user, message } => {
                b.put_u8(12);
                b.put_u64(*user);
                put_str(&mut b, message);
            }
            Kind::Whisper {
                user,
                to,
                text,
                notice,
                from_irc,
            } => {
                b.put_u8(13);
                b.put_u64(*user);
                put_str(&mut b, to);
                put_str(&mut b, text);
                b.put_u8(text_flags(*notice, *from_irc));
            }
            Kind::Kill { user, nick, why } => {
                b.put_u8(18);
                b.put_u64(*user);
                put_str(&mut b, nick);
                put_str(&mut b, why);
            }
            Kind::Reset { want } => {
                b.put_u8(14);
                b.put_u8(u8::from(*want));
            }
            Kind::Synced => b.put_u8(15),
            Kind::Dead { node, incarnation } => {
                b.put_u8(16);
                put_str(&mut b, node);
                b.put_u64(*incarnation);
            }
            Kind::Room {
                room,
                topic,
                by,
                stamp,
                stamp_node,
                flags,
                key,
                limit,
            } => {
                b.put_u8(17);
                put_str(&mut b, room);
                put_str(&mut b, topic);
                put_str(&mut b, by);
                b.put_u64(*stamp);
                put_str(&mut b, stamp_node);
                b.put_u8(*flags);
                put_str(&mut b, key);
                b.put_u32(*limit);
            }
        }
        b.freeze()
    }

    /// Parses a payload; says what is wrong with a bad one.
    pub fn decode(payload: &[u8]) -> Result<Wire, String> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!("payload version {version}, expected {VERSION}"));
        }
        let node = r.str()?;
        if node.is_empty() {
            return Err("empty node name".into());
        }
        let incarnation = r.u64()?;
        let seq = r.u64()?;
        let kind = match r.u8()? {
            1 => Kind::Heartbeat,
            2 => Kind::User {
                user: r.u64()?,
                nick: r.str()?,
                name: r.str()?,
                real: r.str()?,
                away: r.str()?,
            },
            3 => Kind::Nick {
                user: r.u64()?,
                nick: r.str()?,
            },
            4 => Kind::Quit {
                user: r.u64()?,
                reason: r.str()?,
            },
            5 => Kind::Join {
                user: r.u64()?,
                room: r.str()?,
                flags: r.u8()?,
                stamp: r.u64()?,
                stamp_node: r.str()?,
            },
            6 => Kind::Part {
                user: r.u64()?,
                room: r.str()?,
                reason: r.str()?,
            },
            7 => {
                let (user, room, text) = (r.u64()?, r.str()?, r.str()?);
                let (notice, from_irc) = r.text_flags()?;
                Kind::Say {
                    user,
                    room,
                    text,
                    notice,
                    from_irc,
                }
            }
            8 => Kind::Topic {
                user: r.u64()?,
                room: r.str()?,
                topic: r.str()?,
                stamp: r.u64()?,
            },
            9 => Kind::Kick {
                user: r.u64()?,
                room: r.str()?,
                nick: r.str()?,
                reason: r.str()?,
            },
            10 => Kind::Mode {
                user: r.u64()?,
                room: r.str()?,
                letter: r.u8()?,
                on: r.flag()?,
                nick: r.str()?,
            },
            11 => Kind::Rule {
                user: r.u64()?,
                room: r.str()?,
                letter: r.u8()?,
                on: r.flag()?,
                arg: r.str()?,
            },
            12 => Kind::Away {
                user: r.u64()?,
                message: r.str()?,
            },
            13 => {
                let (user, to, text) = (r.u64()?, r.str()?, r.str()?);
                let (notice, from_irc) = r.text_flags()?;
                Kind::Whisper {
                    user,
                    to,
                    text,
                    notice,
                    from_irc,
                }
            }
            14 => Kind::Reset { want: r.flag()? },
            15 => Kind::Synced,
            18 => Kind::Kill {
                user: r.u64()?,
                nick: r.str()?,
                why: r.str()?,
            },
            16 => Kind::Dead {
                node: r.str()?,
                incarnation: r.u64()?,
            },
            17 => Kind::Room {
                room: r.str()?,
                topic: r.str()?,
                by: r.str()?,
                stamp: r.u64()?,
                stamp_node: r.str()?,
                flags: r.u8()?,
                key: r.str()?,
                limit: r.u32()?,
            },
            k => return Err(format!("unknown event kind {k}")),
        };
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the event", r.0.len()));
        }
        Ok(Wire {
            node,
            incarnation,
            seq,
            kind,
        })
    }
}

/// Reads a payload front to back; every read says what was short.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "payload cut short: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("flag byte {b}, expected 0 or 1")),
        }
    }

    /// A message's flag byte: bit 0 notice, bit 1 the text came from IRC.
    fn text_flags(&mut self) -> Result<(bool, bool), String> {
        match self.u8()? {
            b if b <= 3 => Ok((b & 1 != 0, b & 2 != 0)),
            b => Err(format!("message flags {b}, expected 0 to 3")),
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn str(&mut self) -> Result<String, String> {
        let mut a = [0; 2];
        a.copy_from_slice(self.take(2)?);
        let bytes = self.take(u16::from_be_bytes(a) as usize)?;
        let s = std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8".to_owned())?;
        // Nothing we send holds these; one that did could forge IRC lines.
        if s.contains(['\0', '\r', '\n']) {
            return Err("text holds NUL, CR or LF".into());
        }
        Ok(s.to_owned())
    }
}
