//! The command thread: ops in through a channel, run in order on one connection (so
//! publishes keep their order), pipelined; leases renewed; the connection watched, and
//! remade with a backoff when it breaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Script, Value};

use crate::emit::{Emitter, Sink};
use crate::sub::{Req, Subscriber};
use crate::{BusEvent, BusOp, Cluster};

/// Longest wait between two connection attempts while Redis is away: a node that comes
/// back resyncs within about this long.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// First wait after a failure; doubled each time up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// How long a connection attempt (TCP and the handshake) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long Redis may take to answer a command before the connection is taken for broken.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// An idle connection is pinged this often, so a Redis that vanished without closing the
/// connection is noticed within `PING_EVERY + IO_TIMEOUT`.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Most ops taken into one pipeline.
const MAX_BATCH: usize = 1024;

/// Most keys renewed by one script call (a call blocks Redis while it runs).
const MAX_RENEW: usize = 256;

/// Renewals are never closer together than this, whatever the lease.
const MIN_RENEW_EVERY: Duration = Duration::from_millis(10);

/// Takes a key that is free or already this owner's (so a claim made again after a
/// reconnect, while the old lease runs, succeeds), with a fresh lease.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes a key only if it still holds the owner.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Extends each key's lease if it still holds its owner (ARGV: owner, lease, owner, ...);
/// answers 1 (renewed) or 0 (lost) per key.
const RENEW: &str = r"
local kept = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2 * i - 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
";

/// Tells workers in one process apart on the wake channel.
static WORKERS: AtomicU64 = AtomicU64::new(0);

/// What the command thread is told.
pub(crate) enum Msg {
    /// An op from the core.
    Op(BusOp),
    /// The subscriber's connection of session `session` broke.
    SubBroken { session: u64, why: String },
    /// Run what came before, then end.
    Stop,
}

/// A Redis bus running on threads of its own.
pub struct Worker {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the threads without a server (the core side calls [`Cluster::start`]).
    /// `sink` gets each event, in order, from the worker's threads.
    pub fn start(
        cluster: Cluster,
        sink: impl Fn(BusEvent) + Send + Sync + 'static,
    ) -> std::io::Result<Worker> {
        Worker::spawn(cluster.client, &cluster.options, Box::new(sink))
    }

    pub(crate) fn spawn(
        client: redis::Client,
        options: &crate::ClusterOptions,
        sink: Sink,
    ) -> std::io::Result<Worker> {
        let emit = Arc::new(Emitter::new(sink));
        let (tx, rx) = mpsc::channel();
        let (sub_tx, sub_rx) = mpsc::channel();
        let wake = format!(
            "{}bus-wake:{}:{}:{}:{}",
            options.prefix,
            options.node,
            options.incarnation,
            std::process::id(),
            WORKERS.fetch_add(1, Ordering::Relaxed)
        );
        let address = client.get_connection_info().addr().to_string();
        let subscriber = Subscriber {
            client: client.clone(),
            wake: wake.clone(),
            reqs: sub_rx,
            broken: tx.clone(),
            emit: emit.clone(),
        };
        let sub_thread = std::thread::Builder::new()
            .name("redis-bus-sub".into())
            .spawn(move || subscriber.run())?;
        let mut commands = Commands {
            client,
            address,
            wake,
            emit,
            sub: sub_tx,
            sub_thread: Some(sub_thread),
            con: None,
            session: 0,
            claims: HashMap::new(),
            earliest: None,
            backoff: MIN_BACKOFF,
            retry_at: Instant::now(),
            outage: false,
            last_io: Instant::now(),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            renew: Script::new(RENEW),
        };
        let thread = std::thread::Builder::new()
            .name("redis-bus".into())
            .spawn(move || commands.run(rx));
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                // The subscriber thread ends once its request channel is gone.
                return Err(e);
            }
        };
        Ok(Worker {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues an op; ops run in the order submitted (or are dropped while Redis is down).
    pub fn submit(&self, op: BusOp) {
        // Fails only once the thread has ended, after a panic; the core then hears nothing
        // more from the bus, as if it were down.
        let _ = self.tx.send(Msg::Op(op));
    }

    /// Queues every op the core has for the bus ([`switchboard_core::Server::poll_bus`]), in order.
    pub fn submit_from(&self, server: &mut switchboard_core::Server) {
        while let Some(op) = server.poll_bus() {
            self.submit(op);
        }
    }

    /// Runs what was submitted and stops the threads.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Msg::Stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A key this node holds, renewed while the bus is up.
struct Claim {
    owner: String,
    lease_ms: u64,
    renew_at: Instant,
}

impl Claim {
    fn every(&self) -> Duration {
        (Duration::from_millis(self.lease_ms) / 3).max(MIN_RENEW_EVERY)
    }
}

/// An op in a pipeline, waiting for its reply.
enum Sent {
    Publish {
        channel: String,
    },
    Claim {
        id: u64,
        key: String,
        owner: String,
        lease_ms: u64,
    },
    Release {
        key: String,
        owner: String,
    },
}

/// The command thread's state.
struct Commands {
    client: redis::Client,
    /// `HOST:PORT`, for log lines.
    address: String,
    wake: String,
    emit: Arc<Emitter>,
    sub: mpsc::Sender<Req>,
    sub_thread: Option<JoinHandle<()>>,
    /// The connection, while the bus is up.
    con: Option<redis::Connection>,
    /// Counts connections; the subscriber's messages carry it.
    session: u64,
    claims: HashMap<String, Claim>,
    /// No claim is due for renewal before this (so the claims are not scanned on every
    /// batch); `None` without claims.
    earliest: Option<Instant>,
    backoff: Duration,
    /// When to try connecting again, while down.
    retry_at: Instant,
    /// Whether the outage was logged (so it is logged once, and its end too).
    outage: bool,
    /// When Redis last answered.
    last_io: Instant,
    claim: Script,
    release: Script,
    renew: Script,
}

impl Commands {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut next: Option<Msg> = None;
        loop {
            if self.con.is_none() && Instant::now() >= self.retry_at {
                self.connect();
            }
            if self.con.is_some() {
                self.renew_due();
            }
            if self.con.is_some() && self.last_io.elapsed() >= PING_EVERY {
                if let Err(e) = self.ping() {
                    self.down(&e);
                }
            }
            let msg = match next.take() {
                Some(msg) => msg,
                None => match rx.recv_timeout(self.wait()) {
                    Ok(msg) => msg,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            match msg {
                Msg::Op(op) => {
                    // Takes whatever else is waiting: the pipeline grows with the load.
                    let mut batch = vec![op];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Msg::Op(op)) => batch.push(op),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if self.con.is_none() {
                        log::debug!("redis down: {} bus ops dropped", batch.len());
                        continue;
                    }
                    if let Err(e) = self.run_batch(batch) {
                        self.down(&e);
                    }
                }
                Msg::SubBroken { session, why } => {
                    if session == self.session && self.con.is_some() {
                        self.down(&why);
                    }
                }
                Msg::Stop => break,
            }
        }
        let _ = self.sub.send(Req::Stop);
        if self.con.is_some() {
            // Cuts the subscriber's read short.
            let _ = self.publish_wake();
        }
        if let Some(thread) = self.sub_thread.take() {
            let _ = thread.join();
        }
    }

    /// How long to wait for an op before there is something else to do.
    fn wait(&self) -> Duration {
        let now = Instant::now();
        let at = match &self.con {
            None => self.retry_at,
            Some(_) => {
                let ping = self.last_io + PING_EVERY;
                self.earliest.map_or(ping, |renew| renew.min(ping))
            }
        };
        at.saturating_duration_since(now)
    }

    /// Opens the command connection and has the subscriber open its own; reports `Up`
    /// only once both are ready.
    fn connect(&mut self) {
        match self.open() {
            Ok(con) => {
                self.con = Some(con);
                self.backoff = MIN_BACKOFF;
                self.last_io = Instant::now();
                if self.outage {
                    log::info!("redis back at {}", self.address);
                } else {
                    log::info!("connected to redis at {}", self.address);
                }
                self.outage = false;
                self.emit.up(self.session);
            }
            Err(e) => {
                let _ = self.sub.send(Req::Disconnect);
                self.emit.down();
                if !self.outage {
                    log::warn!("redis at {} unavailable: {e}", self.address);
                    self.outage = true;
                }
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn open(&mut self) -> Result<redis::Connection, String> {
        let mut con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let timeouts = con
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)));
        timeouts.map_err(|e| e.to_string())?;
        for script in [&self.claim, &self.release, &self.renew] {
            script.load(&mut con).map_err(|e| e.to_string())?;
        }
        self.session += 1;
        let (ack, done) = mpsc::channel();
        self.sub
            .send(Req::Connect {
                session: self.session,
                ack,
            })
            .map_err(|_| "the subscriber thread is gone".to_string())?;
        match done.recv_timeout(CONNECT_TIMEOUT + IO_TIMEOUT * 2) {
            Ok(Ok(())) => Ok(con),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the subscriber did not connect in time".into()),
        }
    }

    /// The session is over: claims are gone, the subscriber drops its connection, the
    /// core hears `Down` (once), and a new connection is tried after the backoff.
    fn down(&mut self, why: &str) {
        self.con = None;
        self.claims.clear();
        self.earliest = None;
        let _ = self.sub.send(Req::Disconnect);
        self.emit.down();
        if !self.outage {
            log::warn!("redis at {} unavailable: {why}", self.address);
            self.outage = true;
        }
        self.backoff = MIN_BACKOFF;
        self.retry_at = Instant::now() + self.backoff;
    }

    fn con(&mut self) -> Result<&mut redis::Connection, String> {
        self.con.as_mut().ok_or_else(|| "not connected".to_string())
    }

    fn ping(&mut self) -> Result<(), String> {
        let con = self.con()?;
        redis::cmd("PING")
            .query::<Value>(con)
            .map_err(|e| e.to_string())?;
        self.last_io = Instant::now();
        Ok(())
    }

    fn publish_wake(&mut self) -> Result<(), String> {
        let wake = self.wake.clone();
        let con = self.con()?;
        redis::cmd("PUBLISH")
            .arg(&wake)
            .arg("")
            .query::<Value>(con)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Runs a batch in order: runs of publishes, claims and releases as one pipeline each,
    /// runs of (un)subscriptions as one request to the subscriber. An `Err` means the
    /// connection is broken.
    fn run_batch(&mut self, batch: Vec<BusOp>) -> Result<(), String> {
        let mut pipe = redis::pipe();
        let mut sent = Vec::new();
        let mut changes = Vec::new();
        for op in batch {
            match op {
                BusOp::Subscribe { channel } => {
                    self.flush_pipe(&mut pipe, &mut sent)?;
                    changes.push((true, channel));
                }
                BusOp::Unsubscribe { channel } => {
                    self.flush_pipe(&mut pipe, &mut sent)?;
                    changes.push((false, channel));
                }
                BusOp::Publish { channel, payload } => {
                    self.flush_changes(&mut changes)?;
                    pipe.cmd("PUBLISH").arg(&channel).arg(payload.as_ref());
                    sent.push(Sent::Publish { channel });
                }
                BusOp::Claim {
                    id,
                    key,
                    owner,
                    lease_ms,
                } => {
                    self.flush_changes(&mut changes)?;
                    pipe.cmd("EVALSHA")
                        .arg(self.claim.get_hash())
                        .arg(1)
                        .arg(&key)
                        .arg(&owner)
                        .arg(lease_ms);
                    sent.push(Sent::Claim {
                        id,
                        key,
                        owner,
                        lease_ms,
                    });
                }
                BusOp::Release { key, owner } => {
                    self.flush_changes(&mut changes)?;
                    pipe.cmd("EVALSHA")
                        .arg(self.release.get_hash())
                        .arg(1)
                        .arg(&key)
                        .arg(&owner);
                    sent.push(Sent::Release { key, owner });
                }
                // A newer core's op this bus does not know: nothing to run.
                _ => {}
            }
        }
        self.flush_pipe(&mut pipe, &mut sent)?;
        self.flush_changes(&mut changes)
    }

    /// Sends the pipeline and acts on each reply.
    fn flush_pipe(
        &mut self,
        pipe: &mut redis::Pipeline,
        sent: &mut Vec<Sent>,
    ) -> Result<(), String> {
        if sent.is_empty() {
            return Ok(());
        }
        let con = self.con()?;
        let replies: Vec<Value> = pipe.ignore_errors().query(con).map_err(|e| e.to_string())?;
        pipe.clear();
        self.last_io = Instant::now();
        if replies.len() != sent.len() {
            return Err(format!(
                "{} replies to a pipeline of {}",
                replies.len(),
                sent.len()
            ));
        }
        for (op, reply) in sent.drain(..).zip(replies) {
            self.on_reply(op, reply)?;
        }
        Ok(())
    }

    /// Acts on one reply; a script Redis forgot (SCRIPT FLUSH) is run again by source.
    fn on_reply(&mut self, op: Sent, reply: Value) -> Result<(), String> {
        let reply = match (&reply, &op) {
            (
                Value::ServerError(e),
                Sent::Claim {
                    key,
                    owner,
                    lease_ms,
                    ..
                },
            ) if e.kind() == Some(redis::ServerErrorKind::NoScript) => {
                let (script, key, owner, lease) = (&self.claim, key, owner, *lease_ms);
                let con = self.con.as_mut().ok_or("not connected")?;
                script
                    .key(key)
                    .arg(owner)
                    .arg(lease)
                    .invoke::<Value>(con)
                    .unwrap_or_else(server_error)
            }
            (Value::ServerError(e), Sent::Release { key, owner })
                if e.kind() == Some(redis::ServerErrorKind::NoScript) =>
            {
                let (script, key, owner) = (&self.release, key, owner);
                let con = self.con.as_mut().ok_or("not connected")?;
                script
                    .key(key)
                    .arg(owner)
                    .invoke::<Value>(con)
                    .unwrap_or_else(server_error)
            }
            _ => reply,
        };
        match op {
            Sent::Publish { channel } => {
                if let Value::ServerError(e) = reply {
                    log::warn!("redis refused a publish on {channel}: {e}");
                }
            }
            Sent::Claim {
                id,
                key,
                owner,
                lease_ms,
            } => {
                let ok = match reply {
                    Value::Int(1) => true,
                    Value::Int(0) => false,
                    other => {
                        log::warn!("redis answered a claim of {key} with {other:?}");
                        false
                    }
                };
                if ok {
                    let claim = Claim {
                        owner,
                        lease_ms,
                        renew_at: Instant::now(),
                    };
                    let renew_at = Instant::now() + claim.every();
                    self.earliest = Some(self.earliest.map_or(renew_at, |e| e.min(renew_at)));
                    self.claims.insert(key, Claim { renew_at, ..claim });
                }
                self.emit.event(BusEvent::Claimed { id, ok });
            }
            Sent::Release { key, owner } => {
                // Not renewed from now on, whatever Redis answers (removed here, in reply
                // order, so a claim earlier in the same pipeline cannot undo it). A release
                // for another owner (a dead node's key, say) leaves this node's claim be.
                if self.claims.get(&key).is_some_and(|c| c.owner == owner) {
                    self.claims.remove(&key);
                }
                if !matches!(reply, Value::Int(_)) {
                    log::warn!("redis answered the release of {key} by {owner} with {reply:?}");
                }
            }
        }
        Ok(())
    }

    /// Hands a run of (un)subscriptions to the subscriber and waits until they are in
    /// force, so the ops after them see them.
    fn flush_changes(&mut self, changes: &mut Vec<(bool, String)>) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let (ack, done) = mpsc::channel();
        self.sub
            .send(Req::Change {
                session: self.session,
                changes: std::mem::take(changes),
                ack,
            })
            .map_err(|_| "the subscriber thread is gone".to_string())?;
        self.publish_wake()?;
        match done.recv_timeout(IO_TIMEOUT * 2) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("subscribing failed: {e}")),
            Err(_) => Err("the subscriber did not answer in time".into()),
        }
    }

    /// Renews every lease that is due (or nearly: one call covers them all), reporting the
    /// keys that are no longer this node's.
    fn renew_due(&mut self) {
        let now = Instant::now();
        if self.earliest.is_none_or(|at| at > now) {
            return;
        }
        let mut due: Vec<String> = self
            .claims
            .iter()
            .filter(|(_, c)| c.renew_at <= now + c.every() / 4)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            // The claim that was due has been released.
            self.earliest = self.claims.values().map(|c| c.renew_at).min();
            return;
        }
        due.sort();
        for chunk in due.chunks(MAX_RENEW) {
            if let Err(e) = self.renew_chunk(chunk) {
                self.down(&e);
                return;
            }
        }
        self.earliest = self.claims.values().map(|c| c.renew_at).min();
    }

    fn renew_chunk(&mut self, keys: &[String]) -> Result<(), String> {
        let mut call = self.renew.prepare_invoke();
        for key in keys {
            if let Some(claim) = self.claims.get(key) {
                call.key(key).arg(&claim.owner).arg(claim.lease_ms);
            }
        }
        let con = self.con.as_mut().ok_or("not connected")?;
        let reply = call.invoke::<Value>(con).map_err(|e| e.to_string())?;
        self.last_io = Instant::now();
        let Value::Array(kept) = reply else {
            return Err(format!("odd answer to a lease renewal: {reply:?}"));
        };
        if kept.len() != keys.len() {
            return Err(format!(
                "{} answers to the renewal of {} leases",
                kept.len(),
                keys.len()
            ));
        }
        let now = Instant::now();
        for (key, kept) in keys.iter().zip(kept) {
            if kept == Value::Int(1) {
                if let Some(claim) = self.claims.get_mut(key) {
                    claim.renew_at = now + claim.every();
                }
            } else {
                self.claims.remove(key);
                log::warn!("lost the lease on {key}");
                self.emit.event(BusEvent::Lost { key: key.clone() });
            }
        }
        Ok(())
    }
}

/// A failed script call as a reply, so it is handled like the pipeline's.
fn server_error(e: redis::RedisError) -> Value {
    log::warn!("redis script failed: {e}");
    Value::Nil
}
