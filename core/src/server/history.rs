//! Room history: the store effects the server emits and the answers it takes back.
//!
//! The rules, in one place:
//! - Every room message gets the next id of its room (the `seq` it is relayed with) and a
//!   wall-clock time; both survive restarts through [`Server::enable_history`].
//! - A connection waiting for a store answer is *held*: everything queued for it meanwhile
//!   waits behind the answer. A joiner is held until its replay is loaded, so the replay
//!   (ids up to the room's last id at the join) comes first and every live message after
//!   it, with no gap and no duplicate. A native sender is held until its message is
//!   committed, so a message echoed to its sender is in the store.
//! - The store executes ops in order, so an answer for op `n` finishes every op before it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::conn::Phase;
use super::fanout::{encode_one, Notice, Replay};
use super::outcome::{Fail, Outcome};
use super::{irc, Server};
use crate::history::{HistoryOptions, Range, RoomRecord, StoreOp, StoredMessage};
use crate::name::fold;
use crate::packet::ServerPacket;
use crate::{ConnId, ErrorCode};

/// The server's history state (present only while history is switched on).
#[derive(Debug)]
pub(crate) struct History {
    opts: HistoryOptions,
    /// An `Instant` and the Unix milliseconds it corresponds to: the core's wall clock.
    anchor: (Instant, u64),
    next_op: u64,
    /// Highest op answered.
    done: u64,
    ops: VecDeque<StoreOp>,
    /// Every room the store knows, by folded key; kept while the room is empty.
    rooms: HashMap<String, Stored>,
    loads: HashMap<u64, Load>,
    /// Held connections by the op they wait for, in op order.
    holds: VecDeque<(u64, ConnId)>,
    /// Room messages not yet committed, in op order, to tell their senders if storing fails.
    appends: VecDeque<(u64, ConnId, String, u64)>,
}

/// What history keeps of one room.
#[derive(Debug, Default)]
struct Stored {
    name: String,
    last_id: u64,
    /// Time of the newest message: times never go backwards within a room.
    last_ms: u64,
    created_ms: u64,
    topic: String,
    topic_by: String,
    topic_ms: u64,
}

/// A pending load: who asked, for which room, and how many rows it wants (the store is
/// asked for one more, to learn whether older ones exist).
#[derive(Debug)]
struct Load {
    conn: ConnId,
    room: String,
    limit: u32,
    reply: Reply,
}

/// What a load answers, which decides how its rows are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// The replay after a join.
    Join,
    /// A native `History` page.
    Page,
    /// An IRC `CHATHISTORY` query: a `chathistory` batch, with the command's label.
    Chathistory {
        /// The subcommand, for a failure's `FAIL`.
        sub: String,
        /// The command's label (labeled-response).
        label: Option<String>,
    },
}

impl Server {
    /// Switches history on: rooms the store knows come back with their ids and topics.
    ///
    /// `now` and `unix_ms` tie the core's `Instant`s to wall-clock time; the adapter may
    /// refresh the tie with [`Server::set_wall_clock`]. Call before serving.
    pub fn enable_history(
        &mut self,
        opts: HistoryOptions,
        now: Instant,
        unix_ms: u64,
        rooms: Vec<RoomRecord>,
    ) {
        let rooms = rooms
            .into_iter()
            .map(|r| {
                let stored = Stored {
                    last_ms: r.last_ms,
                    last_id: r.last_id,
                    created_ms: r.created_ms,
                    topic: r.topic,
                    topic_by: r.topic_by,
                    topic_ms: r.topic_ms,
                    name: r.name,
                };
                (fold(&stored.name), stored)
            })
            .collect();
        self.history = Some(Box::new(History {
            opts,
            anchor: (now, unix_ms),
            next_op: 1,
            done: 0,
            ops: VecDeque::new(),
            rooms,
            loads: HashMap::new(),
            holds: VecDeque::new(),
            appends: VecDeque::new(),
        }));
    }

    /// Ties `now` to `unix_ms` again (wall clocks drift from `Instant`s over long uptimes).
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        if let Some(h) = &mut self.history {
            h.anchor = (now, unix_ms);
        }
    }

    /// Whether history is switched on.
    pub fn history_enabled(&self) -> bool {
        self.history.is_some()
    }

    /// The next store op to run. Ops must be run in the order they are returned.
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.history.as_mut()?.ops.pop_front()
    }

    /// Reports that every op up to and including `op` is done (writes committed).
    pub fn handle_stored(&mut self, op: u64) {
        self.finish_ops(op);
    }

    /// Answers a load: `rows` in ascending id order. Finishes every op up to `op`.
    pub fn handle_history(&mut self, op: u64, mut rows: Vec<StoredMessage>) {
        // What the connection waited for before this load goes out first.
        self.finish_ops(op.saturating_sub(1));
        let Some(load) = self.history.as_mut().and_then(|h| h.loads.remove(&op)) else {
            self.finish_ops(op);
            return;
        };
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(super::PlantedBug::ReplaySkipsNewest) {
            rows.pop();
        }
        let more = rows.len() > load.limit as usize;
        if more {
            rows.drain(..rows.len() - load.limit as usize);
        }
        // The answer to its own request: out at once, not at the coalescing window.
        let conn = load.conn;
        self.as_actor(conn, |s| {
            s.send_replay(conn, &load.room, &rows, more, true, &load.reply)
        });
        self.finish_ops(op);
    }

    /// Reports that op `op` failed (and every op before it is done). Senders of messages
    /// that were not stored and connections whose load failed are told why.
    pub fn handle_store_error(&mut self, op: u64, message: &str) {
        self.finish_ops(op.saturating_sub(1));
        let Some(h) = self.history.as_mut() else {
            return;
        };
        let mut tell = Vec::new();
        let failed_load = h.loads.remove(&op);
        if let Some(i) = h.appends.iter().position(|a| a.0 == op) {
            if let Some((_, conn, room, id)) = h.appends.remove(i) {
                tell.push((
                    conn,
                    format!("message {id} in `{room}` was delivered but not stored: {message}"),
                ));
            }
        }
        for (conn, text) in tell {
            self.history_notice(conn, text, op);
        }
        // In the replay's place, ahead of what was held for it: the error, then the end
        // marker every replay has, an incomplete one saying there may be more.
        if let Some(Load {
            conn,
            room,
            reply: Reply::Chathistory { sub, label },
            ..
        }) = &failed_load
        {
            let why = format!("history of #{room} unavailable: {message}");
            let server = self.config.server_name.clone();
            let mut buf = bytes::BytesMut::new();
            if let Some(label) = label {
                buf.extend_from_slice(format!("@label={label} ").as_bytes());
            }
            let chan = format!("#{room}");
            let params = ["CHATHISTORY", "MESSAGE_ERROR", sub, &chan, &why];
            crate::line::write_line(&mut buf, Some(&server), "FAIL", &params, true);
            self.send_ahead(*conn, buf.freeze(), op - 1);
            self.finish_ops(op);
            return;
        }
        if let Some(load) = failed_load {
            let text = format!("history of `{}` unavailable: {message}", load.room);
            self.history_notice(load.conn, text, op - 1);
            self.send_replay(load.conn, &load.room, &[], true, true, &load.reply);
        }
        self.finish_ops(op);
    }

    /// Who set a room's topic and when (Unix seconds), and when the room was created (Unix
    /// seconds), as history knows them: IRC's `333` and `329`.
    pub(crate) fn history_times(&self, key: &str) -> Option<(String, u64, u64)> {
        let stored = self.history.as_ref()?.rooms.get(key)?;
        Some((
            stored.topic_by.clone(),
            stored.topic_ms / 1000,
            stored.created_ms / 1000,
        ))
    }

    /// The newest message id of a room (0: none), with history on.
    pub fn history_last_id(&self, room: &str) -> Option<u64> {
        self.history.as_ref()?;
        Some(self.registry.room(&fold(room)).map_or_else(
            || {
                self.history
                    .as_ref()
                    .and_then(|h| h.rooms.get(&fold(room)))
                    .map_or(0, |s| s.last_id)
            },
            |r| r.seq,
        ))
    }

    /// Wall-clock time of `now` in Unix milliseconds: history's clock, or else
    /// [`crate::Config::wall_clock`]'s; `None` without either.
    pub(crate) fn wall_ms(&self, now: Instant) -> Option<u64> {
        if let Some(h) = &self.history {
            return Some(Self::anchor_ms(h, now));
        }
        let (origin, since) = self.config.wall_clock?;
        let at = if now >= origin {
            since + (now - origin)
        } else {
            since.saturating_sub(origin - now)
        };
        Some(at.as_millis() as u64)
    }

    /// Wall-clock time of `now`, in Unix milliseconds, by history's anchor.
    fn anchor_ms(h: &History, now: Instant) -> u64 {
        let (at, ms) = h.anchor;
        let since = now.saturating_duration_since(at).as_millis() as u64;
        ms + since
    }

    /// A room the registry just created: its ids continue, its name and topic come back.
    pub(crate) fn history_restore(&mut self, key: &str) {
        let Some(stored) = self.history.as_ref().and_then(|h| h.rooms.get(key)) else {
            return;
        };
        if let Some(room) = self.registry.room_mut(key) {
            room.seq = stored.last_id;
            room.name.clone_from(&stored.name);
            room.topic.clone_from(&stored.topic);
            room.topic_by.clone_from(&stored.topic_by);
        }
    }

    /// Refuses a room message while the store is too far behind to keep it.
    pub(crate) fn history_ready(&self, room: &str) -> Outcome {
        match &self.history {
            Some(h) if self.pending_ops(h) >= h.opts.max_pending_ops => Err(Fail {
                code: ErrorCode::HistoryUnavailable,
                target: room.to_owned(),
                message: "the history store is behind; message refused, try again".into(),
            }),
            _ => Ok(()),
        }
    }

    fn pending_ops(&self, h: &History) -> usize {
        (h.next_op - 1 - h.done) as usize
    }

    /// Stores a room message just numbered `id`; holds a native sender until it is stored
    /// (its echo is the promise that it is). Call before relaying it. Returns the time it
    /// was stored with (`None` with history off).
    pub(crate) fn history_append(
        &mut self,
        sender: ConnId,
        key: &str,
        message: &ServerPacket,
        notice: bool,
        now: Instant,
    ) -> Option<u64> {
        let ServerPacket::Message {
            room,
            from,
            seq,
            text,
        } = message
        else {
            return None;
        };
        let wait = self.echo_waits_for_store(sender);
        let h = self.history.as_deref_mut()?;
        let wall = Self::anchor_ms(h, now);
        let stored = h.rooms.entry(key.to_owned()).or_insert_with(|| Stored {
            name: room.clone(),
            created_ms: wall,
            ..Stored::default()
        });
        stored.last_id = *seq;
        stored.last_ms = stored.last_ms.max(wall);
        let time_ms = stored.last_ms;
        let op = h.next_op;
        h.next_op += 1;
        h.ops.push_back(StoreOp::Append {
            op,
            key: key.to_owned(),
            room: room.clone(),
            created_ms: stored.created_ms,
            message: StoredMessage {
                id: *seq,
                time_ms: stored.last_ms,
                from: from.clone(),
                text: text.clone(),
                notice,
            },
        });
        h.appends.push_back((op, sender, room.clone(), *seq));
        if wait {
            self.hold(sender, op);
        }
        Some(time_ms)
    }

    /// Stores a room's new topic, set by `setter` in the input it last sent.
    pub(crate) fn history_topic(&mut self, key: &str, setter: ConnId) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let Some(now) = self.conns.get(&setter).map(|c| c.instant(c.last_rx)) else {
            return;
        };
        let (name, topic, by) = (room.name.clone(), room.topic.clone(), room.topic_by.clone());
        let Some(h) = self.history.as_deref_mut() else {
            return;
        };
        let wall = Self::anchor_ms(h, now);
        let stored = h.rooms.entry(key.to_owned()).or_insert_with(|| Stored {
            name: name.clone(),
            created_ms: wall,
            ..Stored::default()
        });
        stored.topic.clone_from(&topic);
        stored.topic_by.clone_from(&by);
        stored.topic_ms = wall;
        let op = h.next_op;
        h.next_op += 1;
        h.ops.push_back(StoreOp::SetTopic {
            op,
            key: key.to_owned(),
            room: name,
            created_ms: stored.created_ms,
            topic,
            by,
            time_ms: wall,
        });
    }

    /// The replay a joiner gets after the room's state: up to `on_join` messages, ending
    /// with the newest the room had at the join.
    pub(crate) fn history_on_join(&mut self, id: ConnId, key: &str) {
        // A client that asked for draft/chathistory fetches what it wants (the spec: no
        // automatic replay for it).
        if self.history.is_none() || self.irc_caps(id) & irc::cap::CHATHISTORY != 0 {
            return;
        }
        let on_join = self.history.as_ref().map_or(0, |h| h.opts.on_join);
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let (name, last_id) = (room.name.clone(), room.seq);
        if last_id == 0 || on_join == 0 {
            self.send_replay(id, &name, &[], last_id > 0, false, &Reply::Join);
            return;
        }
        self.load(id, key, &name, last_id + 1, u32::from(on_join), Reply::Join);
    }

    /// A History request: checks it, then asks the store for the page.
    ///
    /// Order of checks: history on, room name, membership, limit, cursor, store backlog.
    pub(crate) fn history_request(
        &mut self,
        id: ConnId,
        room: &str,
        before: u64,
        limit: u16,
    ) -> Outcome {
        let Some(max_page) = self.history.as_ref().map(|h| h.opts.max_page) else {
            return Err(Fail {
                code: ErrorCode::HistoryUnavailable,
                target: room.to_owned(),
                message: "this server keeps no history".into(),
            });
        };
        self.check_room(room)?;
        let key = self.member_key(id, room)?;
        if limit == 0 || limit > max_page {
            return Err(Fail {
                code: ErrorCode::InvalidLimit,
                target: room.to_owned(),
                message: format!("limit {limit} is outside 1 to {max_page}"),
            });
        }
        let Some(r) = self.registry.room(&key) else {
            return Ok(());
        };
        let (name, last_id) = (r.name.clone(), r.seq);
        if before > last_id + 1 {
            return Err(Fail {
                code: ErrorCode::InvalidCursor,
                target: room.to_owned(),
                message: format!(
                    "no message {before} in `{name}`: its newest is {last_id}; \
                     use 0 for the newest"
                ),
            });
        }
        self.history_ready(room)?;
        let before = if before == 0 { last_id + 1 } else { before };
        if before <= 1 {
            self.send_replay(id, &name, &[], false, false, &Reply::Page);
            return Ok(());
        }
        self.load(id, &key, &name, before, u32::from(limit), Reply::Page);
        Ok(())
    }

    /// Issues a load for `id` and holds its output until the answer.
    fn load(&mut self, id: ConnId, key: &str, name: &str, before: u64, limit: u32, reply: Reply) {
        let Some(h) = self.history.as_deref_mut() else {
            return;
        };
        let op = h.next_op;
        h.next_op += 1;
        h.ops.push_back(StoreOp::Load {
            op,
            key: key.to_owned(),
            before,
            limit: limit + 1,
        });
        h.loads.insert(
            op,
            Load {
                conn: id,
                room: name.to_owned(),
                limit,
                reply,
            },
        );
        self.hold(id, op);
    }

    /// An IRC `CHATHISTORY` query of a room `id` is in (the checks are the caller's):
    /// asks the store and holds `id`'s output until the batch is sent.
    pub(crate) fn history_query(
        &mut self,
        id: ConnId,
        key: &str,
        range: Range,
        limit: u32,
        sub: &str,
        label: Option<String>,
    ) {
        let sub = sub.to_owned();
        let Some(name) = self.registry.room(key).map(|r| r.name.clone()) else {
            return;
        };
        let Some(h) = self.history.as_deref_mut() else {
            return;
        };
        let op = h.next_op;
        h.next_op += 1;
        h.ops.push_back(StoreOp::Query {
            op,
            key: key.to_owned(),
            range,
            limit,
        });
        h.loads.insert(
            op,
            Load {
                conn: id,
                room: name,
                // Queries are exact: no extra row to learn whether there is more.
                limit: u32::MAX,
                reply: Reply::Chathistory { sub, label },
            },
        );
        self.hold(id, op);
    }

    /// `CHATHISTORY TARGETS`: the rooms `id` is in whose newest message is strictly
    /// between the two times (either order), oldest first, at most `limit`.
    pub(crate) fn history_targets(
        &self,
        id: ConnId,
        a_ms: u64,
        b_ms: u64,
        limit: usize,
    ) -> Vec<(String, u64)> {
        let Some(h) = &self.history else {
            return Vec::new();
        };
        let (low, high) = (a_ms.min(b_ms), a_ms.max(b_ms));
        let mut found: Vec<(String, u64)> = self
            .rooms_of(id)
            .iter()
            .filter_map(|room| {
                let stored = h.rooms.get(&fold(room))?;
                (stored.last_ms > low && stored.last_ms < high && stored.last_id > 0)
                    .then(|| (stored.name.clone(), stored.last_ms))
            })
            .collect();
        found.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        found.truncate(limit);
        found
    }

    /// Largest page a query may ask for (`CHATHISTORY=` in `005`), with history on.
    pub(crate) fn history_max_page(&self) -> Option<u16> {
        self.history.as_ref().map(|h| h.opts.max_page)
    }

    /// Queues everything for `id` from now on behind op `op`, until it is answered.
    fn hold(&mut self, id: ConnId, op: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.held.push_back((op, VecDeque::new()));
        if let Some(h) = self.history.as_deref_mut() {
            h.holds.push_back((op, id));
        }
    }

    fn rehold(&mut self, id: ConnId, held: VecDeque<(u64, VecDeque<Bytes>)>) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !held.is_empty() {
                *conn.held = held;
            }
        }
    }

    /// Marks every op up to `op` answered and lets the connections that waited for them go.
    fn finish_ops(&mut self, op: u64) {
        let Some(h) = self.history.as_deref_mut() else {
            return;
        };
        h.done = h.done.max(op);
        while h.appends.front().is_some_and(|a| a.0 <= op) {
            h.appends.pop_front();
        }
        let mut release = Vec::new();
        while let Some(&(at, id)) = h.holds.front() {
            if at > op {
                break;
            }
            h.holds.pop_front();
            release.push(id);
        }
        for id in release {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.release_held(op);
            // The answer to its own request (its replay, its message committed): at once,
            // as the store's answers carry no time to open a window from.
            if !conn.out.is_empty() && !conn.pending {
                conn.pending = true;
                self.conns.flush.pending.push_back(id);
            }
        }
    }

    /// Sends a replay to `id` in its protocol; with `ahead`, before anything held for it
    /// (the answer it was held for), else in turn.
    fn send_replay(
        &mut self,
        id: ConnId,
        room: &str,
        rows: &[StoredMessage],
        more: bool,
        ahead: bool,
        reply: &Reply,
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let held = if ahead {
            conn.held.take()
        } else {
            VecDeque::new()
        };
        let (label, chathistory) = match reply {
            Reply::Chathistory { label, .. } => (label.as_deref(), true),
            _ => (None, false),
        };
        // In a batch for IRC clients that take them: always a CHATHISTORY answer, a join's
        // replay only when it has rows.
        let batch = self.irc_replay_batch(id, chathistory || !rows.is_empty());
        let batch = batch.map(|n| format!("h{n}"));
        let replay = Replay {
            room,
            rows,
            more,
            batch: batch.as_deref(),
            label,
        };
        let caps = self.conns.get(&id).and_then(|c| c.proto.irc_caps());
        let server = &self.config.server_name;
        if let Some(bytes) = encode_one(Notice::Replay(&replay), server, caps) {
            self.conns.send(id, bytes);
        }
        if ahead {
            self.rehold(id, held);
        }
        self.close_overflowed();
    }

    /// Tells a connection something about history outside any request: behind what waited
    /// for ops up to `after`, ahead of what waits for later ones.
    fn history_notice(&mut self, id: ConnId, text: String, after: u64) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let notice = Notice::ServerError {
            code: ErrorCode::HistoryUnavailable,
            seq: 0,
            to: &conn.nick,
            text: &text,
        };
        let server = &self.config.server_name;
        if let Some(bytes) = encode_one(notice, server, conn.proto.irc_caps()) {
            self.send_ahead(id, bytes, after);
        }
    }

    /// Queues `bytes` for `id` behind what waited for ops up to `after`, ahead of what
    /// waits for later ones.
    fn send_ahead(&mut self, id: ConnId, bytes: Bytes, after: u64) {
        let later = self.conns.get_mut(&id).map(|c| {
            let i = c.held.iter().position(|(at, _)| *at > after);
            match (c.held.get_mut(), i) {
                (Some(held), Some(i)) => held.split_off(i),
                _ => VecDeque::new(),
            }
        });
        self.conns.send(id, bytes);
        if let (Some(mut later), Some(conn)) = (later, self.conns.get_mut(&id)) {
            if !later.is_empty() {
                conn.held.append(&mut later);
            }
        }
    }
}
