//! The model: the protocol's rules written out again, fed the same frames as the server,
//! predicting every frame the server must queue for every connection.
//!
//! The simulator calls one `Model` method before each server call and [`Model::finish`]
//! after it, with everything the server queued during that call. Two things the model does
//! not predict but checks once they happen: which connections the server closes as slow
//! consumers (that depends on byte counts), and in what order keepalive closes ran.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use switchboard_core::packet::{ClientPacket, Packet};
use switchboard_core::server::Event;
use switchboard_core::{Config, ConnId, ErrorCode, Member, RoomMode, RoomRule};

use crate::irc::Cmd;
use crate::wire::{fold, nick_ok, reason_ok, room_ok, text_ok, Frame, Out};

/// Where a connection is in its life, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Hello,
    Ready,
    Closing,
}

/// One connection.
#[derive(Debug, Clone)]
pub struct MConn {
    pub phase: Phase,
    pub nick: String,
    /// The user name bans see: a native client's is `~` and its nick at hello.
    pub user: String,
    /// It speaks IRC (known from its first byte).
    pub irc: bool,
    /// IRC registration so far: `PASS`, `NICK`, `USER`.
    irc_pass: Option<String>,
    irc_nick: Option<String>,
    irc_user: Option<String>,
    /// Folded room keys in join order.
    pub rooms: Vec<String>,
    tat: Option<Instant>,
    frames: u32,
    /// Frames received whole and not yet handled (they wait for the rate), each with the
    /// stream offset where it ends.
    waiting: VecDeque<(Frame, u64)>,
    /// Bytes received on the connection.
    received: u64,
    /// Stream offset where the last handled frame ends.
    handled_end: u64,
    /// Bytes the server holds unhandled in its inbound queue (not in its decoder).
    pub inbox: u64,
    pub opened: Instant,
    pub last_rx: Instant,
    pub ping_sent: bool,
    pub away: String,
    pub last_said: Instant,
}

/// One room incarnation.
#[derive(Debug, Clone)]
pub struct MRoom {
    pub name: String,
    pub seq: u64,
    pub members: Vec<ConnId>,
    /// Which incarnation of this name (rooms restart their seq when re-created).
    pub inc: u64,
    /// Sets, not lists: who holds a flag has no order the protocol shows.
    pub operators: BTreeSet<ConnId>,
    pub voiced: BTreeSet<ConnId>,
    pub topic: String,
    pub topic_by: String,
    pub topic_lock: bool,
    /// Rule `k` (empty: none), `l` (0: none), `i`, `m`, `s`.
    pub key: String,
    pub limit: u32,
    pub invite_only: bool,
    pub moderated: bool,
    pub secret: bool,
    /// Invited since they last joined, oldest first (the room keeps the latest 100).
    pub invited: Vec<ConnId>,
    /// Masks of rules `b`, `e` and `I`, in the order set.
    pub bans: Vec<String>,
    pub exempts: Vec<String>,
    pub invexes: Vec<String>,
}

impl MRoom {
    /// Whether `source` (`nick!user@host`) is kept out by rule `b` and not let in by `e`.
    pub fn bans(&self, source: &str) -> bool {
        let any = |list: &[String]| list.iter().any(|m| glob(m.as_bytes(), source.as_bytes()));
        any(&self.bans) && !any(&self.exempts)
    }

    /// The flag rules as the protocol lists them: letters in `iklmnst` order (`n` is
    /// never cleared by the simulator, so always on).
    pub fn letters(&self) -> String {
        [
            ('i', self.invite_only),
            ('k', !self.key.is_empty()),
            ('l', self.limit != 0),
            ('m', self.moderated),
            ('n', true),
            ('s', self.secret),
            ('t', self.topic_lock),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(c, _)| *c)
        .collect()
    }

    /// Operator and voice flags of a member.
    pub fn flags(&self, id: ConnId) -> u8 {
        let mut f = 0;
        if self.operators.contains(&id) {
            f |= Member::OPERATOR;
        }
        if self.voiced.contains(&id) {
            f |= Member::VOICE;
        }
        f
    }
}

/// A room message the server accepted.
#[derive(Debug, Clone)]
pub struct MsgRec {
    pub room_key: String,
    pub inc: u64,
    pub seq: u64,
    pub sender: ConnId,
    pub from: String,
    /// Members when it was accepted, the sender included.
    pub recipients: BTreeSet<ConnId>,
}

/// How observed output is compared with the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Exactly, in order.
    Exact,
    /// As a multiset per connection (keepalive: pings and closes interleave by timer order).
    Any,
}

/// An event the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Registered(ConnId, String),
    NickChanged(ConnId, String, String),
    Closed(ConnId, ErrorCode),
}

/// The model of the whole server.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    pub conns: BTreeMap<ConnId, MConn>,
    pub rooms: BTreeMap<String, MRoom>,
    pub nicks: BTreeMap<String, ConnId>,
    pub msgs: BTreeMap<u64, MsgRec>,
    incarnations: u64,
    /// What the current call must queue, per connection.
    expect: BTreeMap<ConnId, Vec<Out>>,
    events: Vec<Expected>,
    /// Connections the keepalive must close in the current call.
    due_closes: BTreeSet<ConnId>,
    /// Connections closed during this call, and with what.
    closed_now: BTreeMap<ConnId, ErrorCode>,
    /// How many frames of input the current call handles.
    frames_now: usize,
    /// Departures are no longer announced.
    shutting_down: bool,
    /// The time of the current call.
    now: Option<Instant>,
}

/// What one server call had to queue, settled once its events are known.
#[derive(Debug)]
pub struct Predicted {
    /// Connections the server closed as slow consumers during the call.
    pub slow: Vec<ConnId>,
    /// Connections closed otherwise during the call: their limit may have refused items.
    pub lossy: BTreeSet<ConnId>,
    /// The frames each connection must have been queued, in order.
    pub expect: BTreeMap<ConnId, Vec<Out>>,
}

impl Model {
    /// A model of a server with `cfg`.
    pub fn new(cfg: Config) -> Self {
        Model {
            cfg,
            conns: BTreeMap::new(),
            rooms: BTreeMap::new(),
            nicks: BTreeMap::new(),
            msgs: BTreeMap::new(),
            incarnations: 0,
            expect: BTreeMap::new(),
            events: Vec::new(),
            due_closes: BTreeSet::new(),
            closed_now: BTreeMap::new(),
            frames_now: 0,
            shutting_down: false,
            now: None,
        }
    }

    fn begin(&mut self) {
        self.expect.clear();
        self.events.clear();
        self.due_closes.clear();
        self.closed_now.clear();
        self.frames_now = 0;
    }

    /// The earliest keepalive deadline of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().filter_map(|c| self.deadline(c)).min()
    }

    fn deadline(&self, c: &MConn) -> Option<Instant> {
        let keepalive = match c.phase {
            Phase::Closing => return None,
            Phase::Hello => c.opened + self.cfg.hello_timeout,
            Phase::Ready if c.ping_sent => c.last_rx + self.cfg.idle_timeout,
            Phase::Ready => c.last_rx + self.cfg.ping_interval,
        };
        // Requests waiting for the rate are handled the moment it allows.
        match self.wake(c) {
            Some(wake) if c.inbox > 0 => Some(keepalive.min(wake)),
            _ => Some(keepalive),
        }
    }

    /// When the rate next lets a request of `c` be handled.
    fn wake(&self, c: &MConn) -> Option<Instant> {
        let rate = self.cfg.msg_rate;
        if rate == 0 {
            return None;
        }
        let tolerance = Duration::from_secs(1) / rate * self.cfg.msg_burst.saturating_sub(1);
        c.tat.map(|t| t.checked_sub(tolerance).unwrap_or(t))
    }

    /// The read budget the server must give `x`: the room left in its inbound queue.
    pub fn read_budget(&self, x: ConnId) -> usize {
        match self.conns.get(&x) {
            Some(c) if c.phase != Phase::Closing => {
                self.cfg.max_inbound_bytes.saturating_sub(c.inbox as usize)
            }
            _ => 0,
        }
    }

    /// Before `Server::open`.
    pub fn open(&mut self, id: ConnId, now: Instant) {
        self.begin();
        self.conns.insert(
            id,
            MConn {
                phase: Phase::Hello,
                nick: String::new(),
                user: String::new(),
                irc: false,
                irc_pass: None,
                irc_nick: None,
                irc_user: None,
                rooms: Vec::new(),
                tat: None,
                frames: 0,
                waiting: VecDeque::new(),
                received: 0,
                handled_end: 0,
                inbox: 0,
                opened: now,
                last_rx: now,
                ping_sent: false,
                away: String::new(),
                last_said: now,
            },
        );
    }

    /// Before `Server::handle_input` of `bytes` bytes that complete `frames` (each with the
    /// stream offset where it ends).
    /// `irc`: the connection's client speaks IRC (the server tells by the first byte).
    pub fn input(
        &mut self,
        x: ConnId,
        bytes: usize,
        frames: &[(Frame, u64)],
        now: Instant,
        irc: bool,
    ) {
        self.begin();
        self.now = Some(now);
        let Some(c) = self.conns.get_mut(&x) else {
            return;
        };
        if c.phase == Phase::Closing || bytes == 0 {
            return;
        }
        c.last_rx = now;
        c.ping_sent = false;
        if c.received == 0 {
            c.irc = irc;
        }
        c.received += bytes as u64;
        c.waiting.extend(frames.iter().cloned());
        self.pump(x, now);
    }

    /// Handles `x`'s waiting frames, in order, while the rate allows; then settles what the
    /// server holds unhandled.
    fn pump(&mut self, x: ConnId, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(&x) else {
                return;
            };
            if c.phase == Phase::Closing || c.waiting.is_empty() || !self.ready(x, now) {
                break;
            }
            let c = self.conns.get_mut(&x).expect("conn");
            let (f, end) = c.waiting.pop_front().expect("frame");
            c.handled_end = end;
            self.frames_now += 1;
            self.frame(x, &f, now);
        }
        let ready = self.ready(x, now);
        let c = self.conns.get_mut(&x).expect("conn");
        c.inbox = if c.phase == Phase::Closing || ready {
            0
        } else {
            c.received - c.handled_end
        };
    }

    /// Before `Server::handle_close`.
    pub fn gone(&mut self, y: ConnId) {
        self.begin();
        let Some(c) = self.conns.get(&y) else {
            return;
        };
        if c.phase != Phase::Closing {
            self.depart(y, Some("connection lost"));
            self.events
                .push(Expected::Closed(y, ErrorCode::ConnectionLost));
        }
        self.conns.remove(&y);
    }

    /// Before `Server::handle_timeout`: connection by connection in id order, the requests
    /// the rate now allows, then pings and keepalive closes.
    pub fn timeout(&mut self, now: Instant) {
        self.begin();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if self.conns[&id].inbox > 0 {
                self.pump(id, now);
            }
            let c = &self.conns[&id];
            match c.phase {
                Phase::Closing => {}
                Phase::Hello => {
                    if now.saturating_duration_since(c.opened) >= self.cfg.hello_timeout {
                        self.due_closes.insert(id);
                        self.close(id, ErrorCode::Timeout, Some(""));
                    }
                }
                Phase::Ready => {
                    let silent = now.saturating_duration_since(c.last_rx);
                    if silent >= self.cfg.idle_timeout {
                        self.due_closes.insert(id);
                        self.close(id, ErrorCode::Timeout, Some("ping timeout"));
                    } else if silent >= self.cfg.ping_interval && !c.ping_sent {
                        if let Some(c) = self.conns.get_mut(&id) {
                            c.ping_sent = true;
                        }
                        self.push(id, Out::Ping);
                    }
                }
            }
        }
    }

    /// Before `Server::shutdown`.
    pub fn shutdown(&mut self) {
        self.begin();
        self.shutting_down = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, ErrorCode::Shutdown, Some("server shutting down"));
        }
    }

    /// After the server call: checks the server's events and settles what it had to
    /// queue, which the caller compares with what it queued.
    pub fn finish(&mut self, events: &[Event]) -> Result<Predicted, String> {
        let mut predicted = std::mem::take(&mut self.events).into_iter().peekable();
        let mut slow = Vec::new();
        for ev in events {
            match ev {
                Event::Registered { conn, nick } => {
                    let want = predicted.next();
                    if want != Some(Expected::Registered(*conn, nick.clone())) {
                        return Err(format!(
                            "server event Registered({conn}, {nick}), model expected {want:?}"
                        ));
                    }
                }
                Event::NickChanged { conn, old, new } => {
                    let want = predicted.next();
                    let got = Expected::NickChanged(*conn, old.clone(), new.clone());
                    if want.as_ref() != Some(&got) {
                        return Err(format!("server event {got:?}, model expected {want:?}"));
                    }
                }
                Event::Closed { conn, code, .. } => {
                    if predicted.peek() == Some(&Expected::Closed(*conn, *code)) {
                        predicted.next();
                    } else if *code == ErrorCode::SlowConsumer {
                        if self.frames_now > 1 {
                            return Err(format!(
                                "sim: {conn} overflowed in a call of {} frames; the overflow \
                                 bound in world.rs is too small",
                                self.frames_now
                            ));
                        }
                        if self
                            .conns
                            .get(conn)
                            .is_none_or(|c| c.phase == Phase::Closing)
                        {
                            return Err(format!("slow-consumer close of closed {conn}"));
                        }
                        self.expect.insert(*conn, Vec::new());
                        self.close(*conn, ErrorCode::SlowConsumer, Some("slow consumer"));
                        slow.push(*conn);
                    } else if *code == ErrorCode::Timeout && self.due_closes.remove(conn) {
                        // Closed by `timeout` already, in the server's order.
                    } else {
                        return Err(format!(
                            "server event Closed({conn}, {code}), model expected {:?}",
                            predicted.peek()
                        ));
                    }
                }
            }
        }
        if let Some(want) = predicted.next() {
            return Err(format!("model expected server event {want:?}, none came"));
        }
        if let Some(id) = self.due_closes.iter().next() {
            return Err(format!(
                "{id} is past its keepalive deadline but was not closed"
            ));
        }
        let lossy = self
            .closed_now
            .iter()
            .filter(|(_, c)| **c != ErrorCode::SlowConsumer)
            .map(|(id, _)| *id)
            .collect();
        Ok(Predicted {
            slow,
            lossy,
            expect: std::mem::take(&mut self.expect),
        })
    }

    /// Compares what one call queued with the prediction, connection by connection.
    pub fn compare(
        &self,
        order: Order,
        p: &Predicted,
        seen: &BTreeMap<ConnId, Vec<(Out, usize)>>,
        outbound_before: &BTreeMap<ConnId, usize>,
    ) -> Result<(), String> {
        let ids: BTreeSet<ConnId> = p.expect.keys().chain(seen.keys()).copied().collect();
        for id in ids {
            let want = p.expect.get(&id).map_or(&[][..], |v| &v[..]);
            let got = seen.get(&id).map_or(&[][..], |v| &v[..]);
            let lossy = p.lossy.contains(&id);
            // IRC lines are longer than the frames `Out::min_wire_len` measures.
            let lossy_slack = if self.conns.get(&id).is_some_and(|c| c.irc) {
                4096
            } else {
                0
            };
            let before = outbound_before.get(&id).copied().unwrap_or(0) + lossy_slack;
            let ok = match order {
                Order::Exact => self.compare_exact(want, got, lossy, before),
                Order::Any => self.compare_any(want, got, lossy, before),
            };
            if let Err(e) = ok {
                return Err(format!(
                    "output to {id} differs from the model: {e}\n    expected: {want:?}\n    \
                     server:   {:?}",
                    got.iter().map(|(o, _)| o).collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }

    /// In order; a connection closed in this call may miss items its limit refused.
    fn compare_exact(
        &self,
        want: &[Out],
        got: &[(Out, usize)],
        lossy: bool,
        before: usize,
    ) -> Result<(), String> {
        let mut g = 0;
        let mut bytes = before;
        for w in want {
            if g < got.len() && w.matches(&got[g].0) {
                bytes += got[g].1;
                g += 1;
                continue;
            }
            self.may_drop(w, lossy, bytes)?;
        }
        if g < got.len() {
            return Err(format!("unexpected {:?}", got[g].0));
        }
        Ok(())
    }

    fn compare_any(
        &self,
        want: &[Out],
        got: &[(Out, usize)],
        lossy: bool,
        before: usize,
    ) -> Result<(), String> {
        let mut left: Vec<Option<&(Out, usize)>> = got.iter().map(Some).collect();
        let total: usize = before + got.iter().map(|(_, n)| n).sum::<usize>();
        for w in want {
            match left
                .iter_mut()
                .find(|s| s.is_some_and(|(o, _)| w.matches(o)))
            {
                Some(slot) => *slot = None,
                None => self.may_drop(w, lossy, total)?,
            }
        }
        if let Some((o, _)) = left.into_iter().flatten().next() {
            return Err(format!("unexpected {o:?}"));
        }
        Ok(())
    }

    /// An expected item may be missing only where the outbound limit refused it.
    fn may_drop(&self, w: &Out, lossy: bool, bytes: usize) -> Result<(), String> {
        if lossy && bytes + w.min_wire_len() + w.slack() > self.cfg.max_outbound_bytes {
            Ok(())
        } else {
            Err(format!("missing {w:?}"))
        }
    }

    fn push(&mut self, id: ConnId, item: Out) {
        let Some(c) = self.conns.get(&id).filter(|c| c.phase != Phase::Closing) else {
            return;
        };
        let item = if c.irc { irc_view(item) } else { Some(item) };
        if let Some(item) = item {
            self.expect.entry(id).or_default().push(item);
        }
    }

    fn is_irc(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.irc)
    }

    fn broadcast(&mut self, key: &str, item: &Out) {
        let members = self
            .rooms
            .get(key)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for m in members {
            self.push(m, item.clone());
        }
    }

    fn error(&mut self, x: ConnId, code: ErrorCode, request_type: u8, request_seq: u32) {
        self.push(
            x,
            Out::Error {
                code,
                request_type,
                request_seq,
            },
        );
    }

    /// The server decides to close `x`; `left` is what its rooms hear (`None`: any reason).
    fn close(&mut self, x: ConnId, code: ErrorCode, left: Option<&str>) {
        if self.conns.get(&x).is_none_or(|c| c.phase == Phase::Closing) {
            return;
        }
        self.depart(x, left);
        self.push(x, Out::Bye { code });
        if let Some(c) = self.conns.get_mut(&x) {
            c.phase = Phase::Closing;
        }
        self.closed_now.insert(x, code);
        if code != ErrorCode::SlowConsumer && code != ErrorCode::Timeout {
            self.events.push(Expected::Closed(x, code));
        }
    }

    /// `x` leaves the server: it is taken out of every room it sat in; in each, the
    /// native members who stay hear it left; the IRC members who shared any of them hear
    /// one `QUIT`. Its nick is free again.
    fn depart(&mut self, x: ConnId, reason: Option<&str>) {
        let Some(c) = self.conns.get_mut(&x).filter(|c| c.phase == Phase::Ready) else {
            return;
        };
        c.phase = Phase::Hello;
        let nick = std::mem::take(&mut c.nick);
        let mut quit_to = BTreeSet::new();
        for key in std::mem::take(&mut c.rooms) {
            self.remove_member(&key, x);
            let Some(r) = self.rooms.get(&key).filter(|_| !self.shutting_down) else {
                continue;
            };
            let left = Out::Left {
                room: r.name.clone(),
                nick: nick.clone(),
                reason: reason.map(str::to_owned),
            };
            let (irc, native): (Vec<ConnId>, Vec<ConnId>) =
                r.members.iter().partition(|m| self.is_irc(**m));
            quit_to.extend(irc);
            for m in native {
                self.push(m, left.clone());
            }
        }
        for m in quit_to {
            self.push(m, Out::Quit { nick: nick.clone() });
        }
        if self.nicks.get(&fold(&nick)) == Some(&x) {
            self.nicks.remove(&fold(&nick));
        }
    }

    fn remove_member(&mut self, key: &str, x: ConnId) {
        if let Some(r) = self.rooms.get_mut(key) {
            r.members.retain(|m| *m != x);
            r.operators.remove(&x);
            r.voiced.remove(&x);
            r.invited.retain(|m| *m != x);
            if r.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    fn frame(&mut self, x: ConnId, f: &Frame, now: Instant) {
        let Some(c) = self.conns.get_mut(&x) else {
            return;
        };
        let seq = c.frames.wrapping_add(1);
        match f {
            Frame::Bad {
                code,
                request_type,
                counted,
                ..
            } => {
                if *counted {
                    c.frames = seq;
                }
                self.error(x, *code, *request_type, seq);
                self.close(x, *code, None);
            }
            Frame::Packet(p) => {
                c.frames = seq;
                self.packet(x, seq, p, now);
            }
            Frame::Irc(cmd) => self.irc(x, cmd, now),
        }
    }

    /// Whether the server's generic cell rate limiter, restated, lets `x` handle a request.
    fn ready(&self, x: ConnId, now: Instant) -> bool {
        let rate = self.cfg.msg_rate;
        if rate == 0 {
            return true;
        }
        let tolerance = Duration::from_secs(1) / rate * self.cfg.msg_burst.saturating_sub(1);
        self.conns[&x].tat.is_none_or(|t| t <= now + tolerance)
    }

    /// Charges a handled request: pings, pongs and quits a tenth, the rest a whole one.
    fn charge(&mut self, x: ConnId, cheap: bool, now: Instant) {
        let rate = self.cfg.msg_rate;
        if rate == 0 {
            return;
        }
        let tenths = if cheap { 1 } else { 10 };
        let c = self.conns.get_mut(&x).expect("conn");
        let tat = c.tat.map_or(now, |t| t.max(now));
        c.tat = Some(tat + Duration::from_secs(1) * tenths / (rate * 10));
    }

    fn packet(&mut self, x: ConnId, seq: u32, p: &ClientPacket, now: Instant) {
        let rt = p.type_code();
        // Never refused for the rate: it waited for it, and now counts against it.
        let cheap = matches!(
            p,
            ClientPacket::Ping { .. } | ClientPacket::Pong { .. } | ClientPacket::Quit { .. }
        );
        self.charge(x, cheap, now);
        let phase = self.conns[&x].phase;
        use ClientPacket as P;
        let result = match (phase, p) {
            (_, P::Quit { reason }) => self.quit(x, reason),
            (_, P::Pong { .. }) => Ok(()),
            (
                Phase::Hello,
                P::Hello {
                    version,
                    nick,
                    password,
                },
            ) => self.hello(x, *version, nick, password),
            (Phase::Hello, _) => Err(ErrorCode::HelloRequired),
            (_, P::Hello { .. }) => Err(ErrorCode::AlreadyRegistered),
            (_, P::Join { room, key }) => self.join(x, room, key),
            (_, P::Leave { room, reason }) => self.leave(x, room, reason),
            (_, P::Say { room, text }) => self.say(x, room, text),
            (_, P::Whisper { to, text }) => self.whisper(x, to, text),
            (_, P::Nick { nick }) => self.nick(x, nick),
            (_, P::ListRooms) => {
                // Secret rooms are listed to their members only.
                let list = self
                    .rooms
                    .values()
                    .filter(|r| !r.secret || r.members.contains(&x))
                    .map(|r| (r.name.clone(), r.members.len() as u32))
                    .collect();
                self.push(x, Out::RoomList(list));
                Ok(())
            }
            (_, P::ListMembers { room }) => {
                let key = fold(room);
                if self.rooms.contains_key(&key) {
                    self.members(x, &key);
                    Ok(())
                } else {
                    Err(ErrorCode::NoSuchRoom)
                }
            }
            (_, P::Ping { token }) => {
                self.push(x, Out::Pong { token: *token });
                Ok(())
            }
            (_, P::SetTopic { room, topic }) => self.set_topic(x, room, topic),
            (_, P::Kick { room, nick, reason }) => self.kick(x, room, nick, reason),
            (_, P::Away { message }) => {
                if reason_ok(message, self.cfg.max_reason_len as usize) {
                    let c = self.conns.get_mut(&x).expect("conn");
                    c.away = message.clone();
                    let item = Out::Away {
                        nick: c.nick.clone(),
                        message: message.clone(),
                    };
                    self.push(x, item);
                    Ok(())
                } else {
                    Err(ErrorCode::InvalidText)
                }
            }
            (_, P::Whois { nick }) => self.whois(x, nick),
            // This model's server keeps no history (tests/sim/history.rs covers it).
            (_, P::History { .. }) => Err(ErrorCode::HistoryUnavailable),
            (
                _,
                P::SetMode {
                    room,
                    mode,
                    on,
                    nick,
                },
            ) => self.set_mode(x, room, *mode, *on, nick),
            (
                _,
                P::SetRule {
                    room,
                    rule,
                    on,
                    arg,
                },
            ) => self.set_rule(x, room, *rule, *on, arg),
            (_, P::Invite { room, nick }) => self.invite(x, room, nick),
            (_, P::ListRules { room }) => {
                let key = fold(room);
                match self.rooms.get(&key) {
                    Some(r) => {
                        let item = Out::Rules {
                            room: r.name.clone(),
                            modes: r.letters(),
                            key: if r.members.contains(&x) {
                                r.key.clone()
                            } else {
                                String::new()
                            },
                            limit: r.limit,
                            bans: r.bans.clone(),
                        };
                        self.push(x, item);
                        Ok(())
                    }
                    None => Err(ErrorCode::NoSuchRoom),
                }
            }
        };
        if let Err(code) = result {
            self.error(x, code, rt, seq);
            if matches!(code, ErrorCode::UnsupportedVersion | ErrorCode::BadPassword) {
                self.close(x, code, Some(""));
            }
        }
    }

    /// One IRC command, as docs/IRC.md describes its effect and its numerics.
    fn irc(&mut self, x: ConnId, cmd: &Cmd, now: Instant) {
        self.charge(x, cmd.cheap(), now);
        let ready = self.conns[&x].phase == Phase::Ready;
        // `#room`, or the channel is refused as no such channel.
        let room_of = |chan: &str| chan.strip_prefix('#').map(str::to_owned);
        let result = match cmd {
            Cmd::Pong(_) => Ok(()),
            Cmd::Quit(reason) => self.quit(x, reason),
            Cmd::Pass(_) | Cmd::User(_) if ready => Err(ErrorCode::AlreadyRegistered),
            Cmd::Pass(p) => {
                self.conns.get_mut(&x).expect("conn").irc_pass = Some(p.clone());
                Ok(())
            }
            Cmd::User(u) => {
                let user: String = u
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .take(16)
                    .collect();
                self.conns.get_mut(&x).expect("conn").irc_user = Some(format!("~{user}"));
                self.irc_register(x)
            }
            Cmd::Nick(n) if ready => self.nick(x, n),
            Cmd::Nick(n) => {
                if !nick_ok(n, self.cfg.max_nick_len as usize) {
                    Err(ErrorCode::InvalidNick)
                } else if self.nicks.contains_key(&fold(n)) {
                    Err(ErrorCode::NickTaken)
                } else {
                    self.conns.get_mut(&x).expect("conn").irc_nick = Some(n.clone());
                    self.irc_register(x)
                }
            }
            _ if !ready => Err(ErrorCode::HelloRequired),
            Cmd::Join { chan, key } => match room_of(chan) {
                Some(room) => match self.join(x, &room, key) {
                    Err(ErrorCode::InvalidRoom) => Err(ErrorCode::NoSuchRoom),
                    Err(ErrorCode::AlreadyInRoom) => Ok(()),
                    other => other,
                },
                None => Err(ErrorCode::NoSuchRoom),
            },
            Cmd::Part { chan, reason } => match room_of(chan) {
                Some(room) => {
                    let r = self.leave(x, &room, reason);
                    self.no_such_room(&room, r)
                }
                None => Err(ErrorCode::NoSuchRoom),
            },
            Cmd::Privmsg { target, text } if text.is_empty() => {
                let _ = target;
                Err(ErrorCode::InvalidText)
            }
            Cmd::Privmsg { target, text } => match room_of(target) {
                Some(room) => {
                    let r = self.say(x, &room, text);
                    match self.no_such_room(&room, r) {
                        // Not being in a channel is "cannot send to channel" in IRC.
                        Err(ErrorCode::NotInRoom) => Err(ErrorCode::CannotSpeak),
                        other => other,
                    }
                }
                None => self.whisper(x, target, text),
            },
            Cmd::Mode {
                chan,
                on,
                letter,
                arg,
            } => match room_of(chan) {
                Some(room) if !self.rooms.contains_key(&fold(&room)) => Err(ErrorCode::NoSuchRoom),
                Some(room) => {
                    let b = *letter as u8;
                    if let Some(mode) = RoomMode::from_letter(b) {
                        self.set_mode(x, &room, mode, *on, arg)
                    } else if let Some(rule) = RoomRule::from_letter(b) {
                        let takes = match rule {
                            RoomRule::Key | RoomRule::Limit => *on,
                            RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => true,
                            _ => false,
                        };
                        match (takes, arg.is_empty()) {
                            // A rule that needs an argument and has none is not applied.
                            (true, true) => Ok(()),
                            (true, false) => self.set_rule(x, &room, rule, *on, arg),
                            (false, _) => self.set_rule(x, &room, rule, *on, ""),
                        }
                    } else {
                        panic!("the simulator sent an unknown mode letter {letter}")
                    }
                }
                None => Err(ErrorCode::NoSuchRoom),
            },
            Cmd::Invite { nick, chan } => match room_of(chan) {
                Some(room) => self.invite(x, &room, nick),
                None => Err(ErrorCode::NoSuchRoom),
            },
            Cmd::Kick { chan, nick, reason } => match room_of(chan) {
                Some(room) => self.kick(x, &room, nick, reason),
                None => Err(ErrorCode::NoSuchRoom),
            },
            Cmd::Topic { chan, topic } => match room_of(chan) {
                Some(room) => {
                    let r = self.set_topic(x, &room, topic);
                    self.no_such_room(&room, r)
                }
                None => Err(ErrorCode::NoSuchRoom),
            },
        };
        if let Err(code) = result {
            self.error(x, code, 0, 0);
        }
    }

    /// IRC reads "not in that room" of a room that does not exist as "no such room".
    fn no_such_room(&self, room: &str, r: Result<(), ErrorCode>) -> Result<(), ErrorCode> {
        match r {
            Err(ErrorCode::NotInRoom) if !self.rooms.contains_key(&fold(room)) => {
                Err(ErrorCode::NoSuchRoom)
            }
            other => other,
        }
    }

    /// IRC registration once both `NICK` and `USER` came: the password, then the nick.
    fn irc_register(&mut self, x: ConnId) -> Result<(), ErrorCode> {
        let c = &self.conns[&x];
        let (Some(nick), Some(user)) = (c.irc_nick.clone(), c.irc_user.clone()) else {
            return Ok(());
        };
        if c.phase != Phase::Hello {
            return Ok(());
        }
        if let Some(pw) = &self.cfg.password {
            if c.irc_pass.as_ref() != Some(pw) {
                self.error(x, ErrorCode::BadPassword, 0, 0);
                self.close(x, ErrorCode::BadPassword, Some(""));
                return Ok(());
            }
        }
        if self.nicks.get(&fold(&nick)).is_some_and(|h| *h != x) {
            self.conns.get_mut(&x).expect("conn").irc_nick = None;
            return Err(ErrorCode::NickTaken);
        }
        self.nicks.insert(fold(&nick), x);
        let c = self.conns.get_mut(&x).expect("conn");
        c.phase = Phase::Ready;
        c.nick.clone_from(&nick);
        c.user = user;
        self.push(x, Out::Welcome { nick: nick.clone() });
        self.events.push(Expected::Registered(x, nick));
        Ok(())
    }

    fn hello(
        &mut self,
        x: ConnId,
        version: u16,
        nick: &str,
        password: &str,
    ) -> Result<(), ErrorCode> {
        if version != switchboard_core::packet::PROTOCOL_VERSION {
            return Err(ErrorCode::UnsupportedVersion);
        }
        if self.cfg.password.as_deref().is_some_and(|p| p != password) {
            return Err(ErrorCode::BadPassword);
        }
        if !nick_ok(nick, self.cfg.max_nick_len as usize) {
            return Err(ErrorCode::InvalidNick);
        }
        if self.nicks.get(&fold(nick)).is_some_and(|h| *h != x) {
            return Err(ErrorCode::NickTaken);
        }
        self.nicks.insert(fold(nick), x);
        let c = self.conns.get_mut(&x).expect("conn");
        c.phase = Phase::Ready;
        c.nick = nick.to_owned();
        // Nicks are ASCII, so the first 16 bytes are whole characters.
        c.user = format!("~{}", &nick[..nick.len().min(16)]);
        self.push(
            x,
            Out::Welcome {
                nick: nick.to_owned(),
            },
        );
        self.events.push(Expected::Registered(x, nick.to_owned()));
        Ok(())
    }

    /// `nick!user@host` of a connection, what masks are matched against.
    fn source(&self, x: ConnId) -> String {
        let c = &self.conns[&x];
        format!("{}!{}@{}", c.nick, c.user, self.cfg.server_name)
    }

    fn join(&mut self, x: ConnId, room: &str, given: &str) -> Result<(), ErrorCode> {
        if !room_ok(room, self.cfg.max_room_len as usize) {
            return Err(ErrorCode::InvalidRoom);
        }
        let key = fold(room);
        let source = self.source(x);
        if let Some(r) = self.rooms.get(&key) {
            // An invitation opens every rule; a member is not refused for them.
            if !r.members.contains(&x) && !r.invited.contains(&x) {
                let invex = r
                    .invexes
                    .iter()
                    .any(|m| glob(m.as_bytes(), source.as_bytes()));
                if r.bans(&source) {
                    return Err(ErrorCode::Banned);
                } else if r.invite_only && !invex {
                    return Err(ErrorCode::InviteOnlyRoom);
                } else if !r.key.is_empty() && r.key != given {
                    return Err(ErrorCode::BadRoomKey);
                } else if r.limit != 0 && r.members.len() as u64 >= u64::from(r.limit) {
                    return Err(ErrorCode::RoomFull);
                }
            }
        }
        let c = &self.conns[&x];
        if c.rooms.contains(&key) {
            return Err(ErrorCode::AlreadyInRoom);
        }
        if c.rooms.len() >= self.cfg.max_rooms_per_conn as usize {
            return Err(ErrorCode::TooManyRooms);
        }
        let nick = c.nick.clone();
        self.conns
            .get_mut(&x)
            .expect("conn")
            .rooms
            .push(key.clone());
        if !self.rooms.contains_key(&key) {
            self.incarnations += 1;
            self.rooms.insert(
                key.clone(),
                MRoom {
                    name: room.to_owned(),
                    seq: 0,
                    members: Vec::new(),
                    inc: self.incarnations,
                    operators: BTreeSet::from([x]),
                    voiced: BTreeSet::new(),
                    topic: String::new(),
                    topic_by: String::new(),
                    topic_lock: false,
                    key: String::new(),
                    limit: 0,
                    invite_only: false,
                    moderated: false,
                    secret: false,
                    invited: Vec::new(),
                    bans: Vec::new(),
                    exempts: Vec::new(),
                    invexes: Vec::new(),
                },
            );
        }
        let r = self.rooms.get_mut(&key).expect("room");
        r.members.push(x);
        r.invited.retain(|i| *i != x);
        let item = Out::Joined {
            room: r.name.clone(),
            nick,
        };
        self.broadcast(&key, &item);
        let r = &self.rooms[&key];
        // A native joiner learns the members, then the topic; an IRC one the topic (`332`,
        // without who set it) and then the names.
        let irc = self.is_irc(x);
        let topic = (!r.topic.is_empty()).then(|| Out::Topic {
            room: r.name.clone(),
            topic: r.topic.clone(),
            by: if irc {
                String::new()
            } else {
                r.topic_by.clone()
            },
        });
        if !irc {
            self.members(x, &key);
        }
        if let Some(topic) = topic {
            self.push(x, topic);
        }
        if irc {
            self.members(x, &key);
        }
        Ok(())
    }

    fn members(&mut self, x: ConnId, key: &str) {
        let r = &self.rooms[key];
        let nicks = r
            .members
            .iter()
            .map(|m| {
                let c = &self.conns[m];
                let away = if c.away.is_empty() { 0 } else { Member::AWAY };
                (c.nick.clone(), r.flags(*m) | away)
            })
            .collect();
        let item = Out::Members {
            room: r.name.clone(),
            nicks,
        };
        self.push(x, item);
    }

    fn leave(&mut self, x: ConnId, room: &str, reason: &str) -> Result<(), ErrorCode> {
        if !reason_ok(reason, self.cfg.max_reason_len as usize) {
            return Err(ErrorCode::InvalidText);
        }
        let key = fold(room);
        let c = self.conns.get_mut(&x).expect("conn");
        let Some(pos) = c.rooms.iter().position(|k| *k == key) else {
            return Err(ErrorCode::NotInRoom);
        };
        c.rooms.remove(pos);
        let nick = c.nick.clone();
        if let Some(r) = self.rooms.get(&key) {
            let item = Out::Left {
                room: r.name.clone(),
                nick,
                reason: Some(reason.to_owned()),
            };
            self.broadcast(&key, &item);
        }
        self.remove_member(&key, x);
        Ok(())
    }

    fn say(&mut self, x: ConnId, room: &str, text: &str) -> Result<(), ErrorCode> {
        if !text_ok(text, self.cfg.max_text_len as usize) {
            return Err(ErrorCode::InvalidText);
        }
        let key = fold(room);
        let c = &self.conns[&x];
        if !c.rooms.contains(&key) {
            return Err(ErrorCode::NotInRoom);
        }
        let from = c.nick.clone();
        let source = self.source(x);
        let r = &self.rooms[&key];
        // Operators always speak; a voice lets one speak past `m` and past a ban.
        let heard =
            r.operators.contains(&x) || r.voiced.contains(&x) || (!r.moderated && !r.bans(&source));
        if !heard {
            return Err(ErrorCode::CannotSpeak);
        }
        self.said(x);
        let r = self.rooms.get_mut(&key).expect("member of a missing room");
        r.seq += 1;
        let item = Out::Message {
            room: r.name.clone(),
            from: from.clone(),
            seq: r.seq,
            text: text.to_owned(),
        };
        // IRC senders get no copy of their own message.
        let irc = self.conns[&x].irc;
        let recipients: Vec<ConnId> = r
            .members
            .iter()
            .copied()
            .filter(|m| !(irc && *m == x))
            .collect();
        if let Some(id) = message_id(text) {
            self.msgs.insert(
                id,
                MsgRec {
                    room_key: key.clone(),
                    inc: r.inc,
                    seq: r.seq,
                    sender: x,
                    from,
                    recipients: recipients.iter().copied().collect(),
                },
            );
        }
        for m in recipients {
            self.push(m, item.clone());
        }
        Ok(())
    }

    fn whisper(&mut self, x: ConnId, to: &str, text: &str) -> Result<(), ErrorCode> {
        if !text_ok(text, self.cfg.max_text_len as usize) {
            return Err(ErrorCode::InvalidText);
        }
        let Some(&target) = self.nicks.get(&fold(to)) else {
            return Err(ErrorCode::NoSuchNick);
        };
        self.said(x);
        let t = &self.conns[&target];
        let item = Out::Direct {
            from: self.conns[&x].nick.clone(),
            to: t.nick.clone(),
            text: text.to_owned(),
        };
        // Whispering to someone away is answered with their away message (never to oneself).
        let away = (target != x && !t.away.is_empty()).then(|| Out::Away {
            nick: t.nick.clone(),
            message: t.away.clone(),
        });
        self.push(target, item.clone());
        if target != x && !self.is_irc(x) {
            self.push(x, item);
        }
        if let Some(away) = away {
            self.push(x, away);
        }
        Ok(())
    }

    fn nick(&mut self, x: ConnId, nick: &str) -> Result<(), ErrorCode> {
        if !nick_ok(nick, self.cfg.max_nick_len as usize) {
            return Err(ErrorCode::InvalidNick);
        }
        let old = self.conns[&x].nick.clone();
        if old == nick {
            return Ok(());
        }
        if self.nicks.get(&fold(nick)).is_some_and(|h| *h != x) {
            return Err(ErrorCode::NickTaken);
        }
        if fold(&old) != fold(nick) {
            self.nicks.remove(&fold(&old));
        }
        self.nicks.insert(fold(nick), x);
        let c = self.conns.get_mut(&x).expect("conn");
        c.nick = nick.to_owned();
        let mut to: BTreeSet<ConnId> = BTreeSet::from([x]);
        for key in &c.rooms {
            to.extend(self.rooms[key].members.iter().copied());
        }
        self.events
            .push(Expected::NickChanged(x, old.clone(), nick.to_owned()));
        let item = Out::NickChanged {
            old,
            new: nick.to_owned(),
        };
        for r in to {
            self.push(r, item.clone());
        }
        Ok(())
    }

    fn quit(&mut self, x: ConnId, reason: &str) -> Result<(), ErrorCode> {
        // Quit reasons are cut and cleaned rather than refused.
        let mut end = reason.len().min(self.cfg.max_reason_len as usize);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason: String = reason[..end]
            .chars()
            .filter(|c| !matches!(c, '\0' | '\r' | '\n'))
            .collect();
        let left = if reason.is_empty() {
            "quit".to_owned()
        } else {
            format!("quit: {reason}")
        };
        self.close(x, ErrorCode::Quit, Some(&left));
        Ok(())
    }

    /// Saying something resets a connection's whois idle time.
    fn said(&mut self, x: ConnId) {
        if let (Some(now), Some(c)) = (self.now, self.conns.get_mut(&x)) {
            c.last_said = now;
        }
    }

    fn set_topic(&mut self, x: ConnId, room: &str, topic: &str) -> Result<(), ErrorCode> {
        if !reason_ok(topic, self.cfg.max_topic_len as usize) {
            return Err(ErrorCode::InvalidText);
        }
        let key = self.member_key(x, room)?;
        let by = self.conns[&x].nick.clone();
        let r = self.rooms.get_mut(&key).expect("room");
        if r.topic_lock && !r.operators.contains(&x) {
            return Err(ErrorCode::NotOperator);
        }
        r.topic = topic.to_owned();
        r.topic_by = by.clone();
        let item = Out::Topic {
            room: r.name.clone(),
            topic: topic.to_owned(),
            by,
        };
        self.broadcast(&key, &item);
        Ok(())
    }

    fn member_key(&self, x: ConnId, room: &str) -> Result<String, ErrorCode> {
        let key = fold(room);
        if self.conns[&x].rooms.contains(&key) {
            Ok(key)
        } else {
            Err(ErrorCode::NotInRoom)
        }
    }

    fn operator_key(&self, x: ConnId, room: &str) -> Result<String, ErrorCode> {
        let key = fold(room);
        if !self.rooms.contains_key(&key) {
            return Err(ErrorCode::NoSuchRoom);
        }
        self.member_key(x, room)?;
        if self.rooms[&key].operators.contains(&x) {
            Ok(key)
        } else {
            Err(ErrorCode::NotOperator)
        }
    }

    fn target_in(&self, key: &str, nick: &str) -> Result<ConnId, ErrorCode> {
        let Some(&target) = self.nicks.get(&fold(nick)) else {
            return Err(ErrorCode::NoSuchNick);
        };
        if self.rooms[key].members.contains(&target) {
            Ok(target)
        } else {
            Err(ErrorCode::TargetNotInRoom)
        }
    }

    fn kick(&mut self, x: ConnId, room: &str, nick: &str, reason: &str) -> Result<(), ErrorCode> {
        if !reason_ok(reason, self.cfg.max_reason_len as usize) {
            return Err(ErrorCode::InvalidText);
        }
        let key = self.operator_key(x, room)?;
        let target = self.target_in(&key, nick)?;
        let item = Out::Kicked {
            room: self.rooms[&key].name.clone(),
            nick: self.conns[&target].nick.clone(),
            by: self.conns[&x].nick.clone(),
            reason: reason.to_owned(),
        };
        self.broadcast(&key, &item);
        self.remove_member(&key, target);
        if let Some(c) = self.conns.get_mut(&target) {
            c.rooms.retain(|k| *k != key);
        }
        Ok(())
    }

    fn set_mode(
        &mut self,
        x: ConnId,
        room: &str,
        mode: RoomMode,
        on: bool,
        nick: &str,
    ) -> Result<(), ErrorCode> {
        let key = self.operator_key(x, room)?;
        let target = if mode.takes_nick() {
            Some(self.target_in(&key, nick)?)
        } else {
            None
        };
        let target_nick = target
            .map(|t| self.conns[&t].nick.clone())
            .unwrap_or_default();
        let by = self.conns[&x].nick.clone();
        let r = self.rooms.get_mut(&key).expect("room");
        // A change is announced only when it changes something.
        let changed = match (mode, target) {
            (RoomMode::TopicLock, _) => {
                let was = r.topic_lock;
                r.topic_lock = on;
                was != on
            }
            (RoomMode::Operator, Some(t)) if on => r.operators.insert(t),
            (RoomMode::Operator, Some(t)) => r.operators.remove(&t),
            (RoomMode::Voice, Some(t)) if on => r.voiced.insert(t),
            (RoomMode::Voice, Some(t)) => r.voiced.remove(&t),
            _ => false,
        };
        if changed {
            let item = Out::ModeChanged {
                room: r.name.clone(),
                by,
                mode,
                on,
                nick: target_nick,
            };
            self.broadcast(&key, &item);
        }
        Ok(())
    }

    fn set_rule(
        &mut self,
        x: ConnId,
        room: &str,
        rule: RoomRule,
        on: bool,
        arg: &str,
    ) -> Result<(), ErrorCode> {
        let key = self.operator_key(x, room)?;
        let is_list = matches!(
            rule,
            RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt
        );
        // The argument, as the rule keeps and announces it.
        let arg = if is_list {
            let b = arg.as_bytes();
            if b.is_empty() || b.len() > 100 || b.iter().any(|c| *c <= b' ') {
                return Err(ErrorCode::InvalidText);
            }
            // A mask lacking parts matches any nick, user or host there.
            let mask = match (arg.contains('!'), arg.contains('@')) {
                (false, false) => format!("{arg}!*@*"),
                (true, false) => format!("{arg}@*"),
                (false, true) => format!("*!{arg}"),
                (true, true) => arg.to_owned(),
            };
            mask
        } else if on && rule == RoomRule::Key {
            let b = arg.as_bytes();
            if b.is_empty()
                || b.len() > 23
                || b.iter().any(|c| *c <= b' ' || *c == b',' || *c == 0x7f)
            {
                return Err(ErrorCode::InvalidText);
            }
            arg.to_owned()
        } else if on && rule == RoomRule::Limit {
            match arg.parse::<u32>() {
                Ok(n @ 1..=65_535) => n.to_string(),
                _ => return Err(ErrorCode::InvalidText),
            }
        } else {
            String::new()
        };
        let by = self.conns[&x].nick.clone();
        let r = self.rooms.get_mut(&key).expect("room");
        let flag = |f: &mut bool| std::mem::replace(f, on) != on;
        let changed = match rule {
            RoomRule::Key => {
                let was = std::mem::replace(&mut r.key, arg.clone());
                was != arg
            }
            RoomRule::Limit => {
                let n = arg.parse().unwrap_or(0);
                std::mem::replace(&mut r.limit, n) != n
            }
            RoomRule::InviteOnly => flag(&mut r.invite_only),
            RoomRule::Moderated => flag(&mut r.moderated),
            RoomRule::Secret => flag(&mut r.secret),
            RoomRule::NoOutside => panic!("the simulator does not clear rule n"),
            RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => {
                let list = match rule {
                    RoomRule::Ban => &mut r.bans,
                    RoomRule::BanExempt => &mut r.exempts,
                    _ => &mut r.invexes,
                };
                let had = list.len();
                if on {
                    if !list.iter().any(|m| m.eq_ignore_ascii_case(&arg)) {
                        list.push(arg.clone());
                    }
                } else {
                    list.retain(|m| !m.eq_ignore_ascii_case(&arg));
                }
                had != list.len()
            }
        };
        if changed {
            let item = Out::RuleChanged {
                room: r.name.clone(),
                by,
                rule,
                on,
                arg,
            };
            self.broadcast(&key, &item);
        }
        Ok(())
    }

    fn invite(&mut self, x: ConnId, room: &str, nick: &str) -> Result<(), ErrorCode> {
        let Some(&target) = self.nicks.get(&fold(nick)) else {
            return Err(ErrorCode::NoSuchNick);
        };
        let key = fold(room);
        if !self.rooms.contains_key(&key) {
            return Err(ErrorCode::NoSuchRoom);
        }
        self.member_key(x, room)?;
        let r = self.rooms.get_mut(&key).expect("room");
        if r.invite_only && !r.operators.contains(&x) {
            return Err(ErrorCode::NotOperator);
        }
        if r.members.contains(&target) {
            return Err(ErrorCode::TargetInRoom);
        }
        if !r.invited.contains(&target) {
            if r.invited.len() == 100 {
                r.invited.remove(0);
            }
            r.invited.push(target);
        }
        let item = Out::Invited {
            room: r.name.clone(),
            by: self.conns[&x].nick.clone(),
            nick: self.conns[&target].nick.clone(),
        };
        self.push(target, item.clone());
        self.push(x, item);
        // The invitee's away status follows the answer, in either protocol (PROTOCOL.md).
        let t = &self.conns[&target];
        if !t.away.is_empty() {
            let away = Out::Away {
                nick: t.nick.clone(),
                message: t.away.clone(),
            };
            self.push(x, away);
        }
        Ok(())
    }

    fn whois(&mut self, x: ConnId, nick: &str) -> Result<(), ErrorCode> {
        let Some(&target) = self.nicks.get(&fold(nick)) else {
            return Err(ErrorCode::NoSuchNick);
        };
        let c = &self.conns[&target];
        // Secret rooms show only to their members (PROTOCOL.md, room rule `s`).
        let rooms = c
            .rooms
            .iter()
            .map(|k| &self.rooms[k])
            .filter(|r| !r.secret || r.members.contains(&x))
            .map(|r| (r.name.clone(), r.flags(target)))
            .collect();
        let item = Out::Whois {
            nick: c.nick.clone(),
            away: c.away.clone(),
            rooms,
        };
        self.push(x, item);
        Ok(())
    }

    /// The phase the model gives `id`, if it is open.
    pub fn phase(&self, id: ConnId) -> Option<Phase> {
        self.conns.get(&id).map(|c| c.phase)
    }
}

/// The message id in a text the simulator wrote: `m<id>` up to the first space.
pub fn message_id(text: &str) -> Option<u64> {
    text.split(' ').next()?.strip_prefix('m')?.parse().ok()
}

/// The type code a [`Frame`] carries, for traces.
pub fn frame_name(f: &Frame) -> String {
    match f {
        Frame::Packet(p) => match p {
            ClientPacket::Hello { nick, version, .. } => format!("hello({nick},v{version})"),
            ClientPacket::Join { room, .. } => format!("join({room})"),
            ClientPacket::Leave { room, .. } => format!("leave({room})"),
            ClientPacket::Say { room, text } => {
                format!("say({room},{})", text.split(' ').next().unwrap_or(""))
            }
            ClientPacket::Whisper { to, .. } => format!("whisper({to})"),
            ClientPacket::Nick { nick } => format!("nick({nick})"),
            ClientPacket::ListRooms => "list".into(),
            ClientPacket::ListMembers { room } => format!("members({room})"),
            ClientPacket::Ping { .. } => "ping".into(),
            ClientPacket::Pong { .. } => "pong".into(),
            ClientPacket::Quit { .. } => "quit".into(),
            ClientPacket::SetTopic { room, .. } => format!("topic({room})"),
            ClientPacket::Kick { room, nick, .. } => format!("kick({room},{nick})"),
            ClientPacket::Away { .. } => "away".into(),
            ClientPacket::Whois { nick } => format!("whois({nick})"),
            ClientPacket::History {
                room,
                before,
                limit,
            } => {
                format!("history({room},{before},{limit})")
            }
            ClientPacket::SetMode {
                room,
                mode,
                on,
                nick,
            } => format!(
                "mode({room},{}{},{nick})",
                if *on { '+' } else { '-' },
                mode.letter() as char
            ),
            ClientPacket::SetRule { room, rule, on, .. } => format!(
                "rule({room},{}{})",
                if *on { '+' } else { '-' },
                rule.letter() as char
            ),
            ClientPacket::Invite { room, nick } => format!("invite({room},{nick})"),
            ClientPacket::ListRules { room } => format!("rules({room})"),
        },
        Frame::Bad { what, .. } => format!("BAD:{what}"),
        Frame::Irc(cmd) => format!("irc:{}", cmd.line().trim_end()),
    }
}

/// Glob matching as the protocol defines it for masks (`*` any run, `?` one character,
/// ASCII case ignored), written as the plain recursive definition.
pub fn glob(mask: &[u8], text: &[u8]) -> bool {
    match mask.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case(c) && glob(rest, &text[1..])),
    }
}

/// What an item the model predicts looks like to an IRC client, as the IRC reader in
/// `irc.rs` reports it; `None` for what IRC does not say at all.
fn irc_view(item: Out) -> Option<Out> {
    Some(match item {
        // IRC has no sequence numbers.
        Out::Message {
            room, from, text, ..
        } => Out::Message {
            room,
            from,
            seq: 0,
            text,
        },
        // One prefix, the highest; away is not shown in NAMES.
        Out::Members { room, nicks } => Out::Members {
            room,
            nicks: nicks
                .into_iter()
                .map(|(n, f)| {
                    let f = if f & Member::OPERATOR != 0 {
                        Member::OPERATOR
                    } else {
                        f & Member::VOICE
                    };
                    (n, f)
                })
                .collect(),
        },
        // Joining a channel one is in says nothing; a bad name is no such channel.
        Out::Error {
            code: ErrorCode::AlreadyInRoom,
            ..
        } => return None,
        Out::Error { code, .. } => Out::Error {
            code: match code {
                ErrorCode::InvalidRoom => ErrorCode::NoSuchRoom,
                c => c,
            },
            request_type: 0,
            request_seq: 0,
        },
        Out::Bye { .. } => Out::ErrorLine,
        // `k` is a type B mode: cleared, it carries `*`.
        Out::RuleChanged {
            room,
            by,
            rule: RoomRule::Key,
            on: false,
            ..
        } => Out::RuleChanged {
            room,
            by,
            rule: RoomRule::Key,
            on: false,
            arg: "*".into(),
        },
        other => other,
    })
}
