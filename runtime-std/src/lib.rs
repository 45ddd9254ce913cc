//! Blocking adapter for [`switchboard_core`]: moves bytes between `std::net` sockets and the
//! core with plain threads.
//!
//! # Design
//!
//! - The core sits behind one mutex, held to feed or drain it, never across a blocking
//!   read or write. A thread per listener only accepts; a timer thread runs the core's
//!   deadlines (`poll_timeout`); closing is the core's decision (`poll_close`).
//! - Each connection has a reader thread: it reads at most the core's `read_budget` (64 KiB
//!   stack, 8 KiB heap buffer) and, with no budget, sleeps without reading until the core
//!   names it in `poll_readable`.
//! - Output is written by the thread whose turn (input, timeout, store answer) queued it:
//!   once the lock is released, each touched connection's batch goes out in one send that
//!   does not wait. A delivery costs one system call and no thread wake-up. What the socket
//!   does not take is left to that connection's writer thread (started the first time it is
//!   needed), which writes blocking, so a slow client blocks only its own thread. TLS
//!   connections are always written by their writer thread (rustls is shared with the
//!   reader), as before.
//!
//! Connects, sign-ins, closes and errors go through the [`log`] facade, one line each.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod handle;
mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_bus::Cluster;
use switchboard_core::{CloseMode, Config, ConnId, Event, Refused, Server as Core};
use switchboard_store::History;

pub use handle::Handle;
/// The TLS library the adapter speaks through, for building a [`TlsConfig`].
pub use rustls;
use tls::Stream;
pub use tls::TlsConfig;

/// Stack size of connection and timer threads: they hold no buffers on the stack.
const THREAD_STACK: usize = 64 * 1024;
/// Each reader's buffer; a read takes no more than the core's read budget.
const READ_BUF: usize = 8 * 1024;
/// Pause after an accept error that means resources ran out (EMFILE, ENOMEM).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Most refused connections waiting at once, each on a thread, for their first byte (to
/// be refused in their protocol); past it a refused connection is closed at once.
const MAX_REFUSING: usize = 256;
/// Memory mappings one connection's two threads may take (stack, guard page, signal stack
/// and its guard page each).
const MAPS_PER_CONNECTION: usize = 8;

/// A chat server bound to a socket, ready to run on threads.
pub struct Server {
    /// All serve the same core; those with a TLS configuration speak TLS.
    listeners: Vec<(TcpListener, Option<TlsConfig>)>,
    config: Config,
    handle: Handle,
    max_connections: Option<usize>,
    history: Option<History>,
    cluster: Option<Cluster>,
}

/// Connections the system can give threads to, leaving room for everything else: a thread
/// that cannot get its mappings aborts the process inside std, so the server refuses
/// connections before `vm.max_map_count` or `kernel.threads-max` is reached.
fn thread_budget() -> usize {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<usize>()
            .ok()
    };
    let maps = read("/proc/sys/vm/max_map_count").unwrap_or(65_530);
    let threads = read("/proc/sys/kernel/threads-max").unwrap_or(usize::MAX);
    (maps / MAPS_PER_CONNECTION)
        .min(threads / 2)
        .saturating_sub(256)
        .max(1)
}

fn invalid(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Server {
    /// Binds the listening socket; serving starts with [`Server::run`]. A `config` that
    /// [`Config::validate`] refuses is an `InvalidInput` error.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Server> {
        invalid(&config)?;
        Server::from_listener(TcpListener::bind(addr)?, config)
    }

    /// Serves on a socket already bound and listening (with SO_REUSEPORT, say).
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Server> {
        invalid(&config)?;
        let handle = Handle::new(&listener)?;
        let listeners = vec![(listener, None)];
        Ok(Server {
            listeners,
            config,
            handle,
            max_connections: None,
            history: None,
            cluster: None,
        })
    }

    /// Refuses connections past `max` at once (by closing them). Without it the limit is
    /// what the system's thread and memory-mapping limits allow, less some headroom.
    pub fn with_max_connections(mut self, max: usize) -> Server {
        self.max_connections = Some(max);
        self
    }

    /// The address bound by [`Server::bind`] (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].0.local_addr()
    }

    /// Also accepts connections on `addr` (an IRC port, say), into the same rooms: the
    /// protocol is told per connection. Returns the address actually bound.
    pub fn add_listener(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, None)
    }

    /// Also accepts TLS connections on `addr`, into the same rooms, with `tls`'s
    /// certificate (replaceable while serving). Returns the address actually bound.
    pub fn add_tls_listener(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: TlsConfig,
    ) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, Some(tls))
    }

    /// Also accepts connections on a socket already bound and listening, speaking TLS with
    /// `tls` if given. Returns its address.
    pub fn add_tcp_listener(
        &mut self,
        listener: TcpListener,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        let local = listener.local_addr()?;
        self.handle.add_listener(&listener)?;
        self.listeners.push((listener, tls));
        Ok(local)
    }

    /// A handle that shuts the server down from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Keeps room history in `history`'s store (run on a thread of its own).
    pub fn with_history(mut self, history: History) -> Server {
        self.history = Some(history);
        self
    }

    /// Joins a cluster: shares chat with the other nodes on `cluster`'s Redis (through
    /// threads of its own).
    pub fn with_cluster(mut self, cluster: Cluster) -> Server {
        self.cluster = Some(cluster);
        self
    }

    /// Accepts on the calling thread until [`Handle::shutdown`], then says bye to every
    /// client and returns once every bye is written (each within `close_linger`).
    ///
    /// Fails only if the timer, store, bus or an accept thread cannot be started (in the
    /// last case after shutting down, as if [`Handle::shutdown`] had been called).
    pub fn run(self) -> io::Result<()> {
        let state = State {
            server: Core::new(self.config),
            conns: HashMap::new(),
            timer_at: None,
            stopping: false,
            store: None,
            bus: None,
            out: Vec::new(),
            spawn: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            timer: Condvar::new(),
            idle: Condvar::new(),
            max_connections: self.max_connections.unwrap_or_else(thread_budget),
            handle: self.handle,
            refusing: AtomicUsize::new(0),
        });
        // The store and bus threads hand their answers to the core themselves, under the
        // lock like any reader, and write what those cause.
        if let Some(history) = self.history {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            st.store = Some(history.start(&mut st.server, move |answers| {
                if let Some(shared) = weak.upgrade() {
                    shared.turn(|core| {
                        if let Some(why) = switchboard_store::apply(answers, core) {
                            log::error!("history store failed: {why}");
                        }
                    });
                }
            })?);
        }
        if let Some(cluster) = self.cluster {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            st.bus = Some(cluster.start(&mut st.server, move |event| {
                if let Some(shared) = weak.upgrade() {
                    shared.turn(|core| core.handle_bus(event, Instant::now()));
                }
            })?);
        }
        let timer = spawn("switchboard-timer".into(), {
            let shared = shared.clone();
            move || timer_thread(&shared)
        })?;
        let mut listeners = self.listeners.into_iter();
        let first = listeners.next();
        let mut accepters = Vec::new();
        let mut failed = None;
        for (i, (listener, tls)) in listeners.enumerate() {
            let theirs = shared.clone();
            match spawn(format!("switchboard-accept-{}", i + 1), move || {
                accept_loop(&listener, tls, &theirs)
            }) {
                Ok(thread) => accepters.push(thread),
                Err(e) => {
                    log::error!("cannot start an accept thread: {e}");
                    failed = Some(e);
                    shared.handle.shutdown();
                    break;
                }
            }
        }
        if let Some((listener, tls)) = first {
            accept_loop(&listener, tls, &shared);
        }
        // No connection may be opened once the core is shutting down.
        for thread in accepters {
            let _ = thread.join();
        }
        let mut st = shared.lock();
        st.server.shutdown(Instant::now());
        shared.drain(&mut st);
        st = shared.flush(st);
        // The core closes every connection once its bye is written or its linger is over.
        while !st.conns.is_empty() {
            st = shared.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.stopping = true;
        let (store, bus) = (st.store.take(), st.bus.take());
        drop(st);
        shared.timer.notify_one();
        let _ = timer.join();
        // The last ops (a shutdown's releases, the last appends) run before `run` returns;
        // the lock is free for the threads' last answers.
        if let Some(bus) = bus {
            bus.finish();
        }
        if let Some(store) = store {
            store.finish();
        }
        failed.map_or(Ok(()), Err)
    }
}

/// What every thread of one server shares.
struct Shared {
    state: Mutex<State>,
    /// Wakes the timer thread when a deadline moved earlier.
    timer: Condvar,
    /// Wakes `run` when the last connection is gone.
    idle: Condvar,
    max_connections: usize,
    handle: Handle,
    /// Refused connections waiting for their first byte.
    refusing: AtomicUsize,
}

/// The core and the adapter's bookkeeping, behind the one mutex.
struct State {
    server: Core,
    conns: HashMap<ConnId, Entry>,
    /// The deadline the timer thread sleeps until; `stopping` ends it.
    timer_at: Option<Instant>,
    stopping: bool,
    store: Option<switchboard_store::Worker>,
    bus: Option<switchboard_bus::Worker>,
    /// Batches taken from the core, to send without waiting once the lock is released.
    out: Vec<(ConnId, Arc<Stream>, Bytes)>,
    /// Connections whose writer thread is to be started.
    spawn: Vec<ConnId>,
}

/// The adapter's side of one connection.
struct Entry {
    stream: Arc<Stream>,
    wakes: Arc<Wakes>,
    /// Who writes it now.
    writing: Writing,
    /// Its writer thread was started.
    writer: bool,
    /// The core is closing it: errors are expected, not worth a log line.
    closing: bool,
}

/// A connection's sleeping threads' wake-ups.
#[derive(Default)]
struct Wakes {
    /// The core lets the reader read again, or the connection is gone.
    read: Condvar,
    /// The writer thread has something to write, or the connection is gone.
    write: Condvar,
}

/// Who writes a connection: one thread at a time, so its bytes stay in order.
enum Writing {
    /// Nobody: the next turn that queues output sends it.
    Idle,
    /// A batch is being sent without waiting, outside the lock (`State::out`).
    Direct,
    /// The writer thread, starting with the rest of a batch the socket did not take.
    Thread(Option<Bytes>),
}

impl State {
    /// Sends a connection's output from this turn, unless someone writes it already (they
    /// take it when done).
    fn start_write(&mut self, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        if !matches!(entry.writing, Writing::Idle) {
            return;
        }
        if entry.stream.is_tls() {
            return self.hand_off(id, None);
        }
        if let Some(t) = self.server.take_transmit(id) {
            entry.writing = Writing::Direct;
            self.out.push((id, entry.stream.clone(), t.data));
        }
    }

    /// Leaves a connection's writing (starting with `rest`) to its writer thread.
    fn hand_off(&mut self, id: ConnId, rest: Option<Bytes>) {
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.writing = Writing::Thread(rest);
            if !std::mem::replace(&mut entry.writer, true) {
                self.spawn.push(id);
            }
            entry.wakes.write.notify_one();
        }
    }

    /// What a writer thread writes next; `None` once the connection is gone.
    fn writer_next(&mut self, id: ConnId) -> Option<Option<Bytes>> {
        let entry = self.conns.get_mut(&id)?;
        let Writing::Thread(rest) = &mut entry.writing else {
            return Some(None);
        };
        let next = rest
            .take()
            .or_else(|| self.server.take_transmit(id).map(|t| t.data));
        if next.is_none() {
            entry.writing = Writing::Idle;
        }
        Some(next)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every other connection down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the core, then acts on what it says and writes what it queued.
    fn turn(self: &Arc<Self>, f: impl FnOnce(&mut Core)) {
        let mut st = self.lock();
        f(&mut st.server);
        self.drain(&mut st);
        drop(self.flush(st));
    }

    /// Acts on everything the core has to say after an input, timeout or close. Closes the
    /// core wants now are torn down after each round, and what their departures cause is
    /// drained in the next: a loop, not recursion, however many close at once.
    fn drain(&self, st: &mut State) {
        loop {
            while let Some(id) = st.server.poll_pending() {
                st.start_write(id);
            }
            while let Some(id) = st.server.poll_readable() {
                if let Some(entry) = st.conns.get(&id) {
                    entry.wakes.read.notify_one();
                }
            }
            let mut now = Vec::new();
            while let Some(close) = st.server.poll_close() {
                match (close.mode, st.conns.get_mut(&close.conn)) {
                    (CloseMode::Flush, Some(entry)) => {
                        entry.closing = true;
                        // Stops the reader at once, even inside a blocking read.
                        let _ = entry.stream.shutdown(Shutdown::Read);
                        entry.wakes.read.notify_one();
                    }
                    (CloseMode::Flush, None) => {}
                    (CloseMode::Now, _) => now.push(close.conn),
                }
            }
            while let Some(event) = st.server.poll_event() {
                match event {
                    Event::Registered { conn, nick } => {
                        match st.conns.get(&conn).and_then(|e| e.stream.peer_addr().ok()) {
                            Some(peer) => log::info!("{conn} signed in as {nick} from {peer}"),
                            None => log::info!("{conn} signed in as {nick}"),
                        }
                    }
                    Event::NickChanged { conn, old, new } => {
                        log::info!("{conn} is now known as {new} (was {old})")
                    }
                    Event::Closed { conn, code, reason } => {
                        log::info!("{conn} closed: {code}: {reason}")
                    }
                }
            }
            if now.is_empty() {
                break;
            }
            for id in now {
                self.teardown(st, id);
            }
        }
        if let Some(store) = &st.store {
            store.submit_from(&mut st.server);
        }
        if let Some(bus) = &st.bus {
            bus.submit_from(&mut st.server);
        }
        if let Some(next) = st.server.poll_timeout() {
            if st.timer_at.is_none_or(|t| next < t) {
                self.timer.notify_one();
            }
        }
    }

    /// Sends the batches drained so far, each once and without waiting, outside the lock,
    /// reports them and repeats for what that causes; starts the writer threads asked for.
    /// Returns the lock with nothing left to send.
    fn flush<'a>(self: &'a Arc<Self>, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        loop {
            for id in std::mem::take(&mut st.spawn) {
                let Some(entry) = st.conns.get(&id) else {
                    continue;
                };
                let (shared, stream, wakes) =
                    (self.clone(), entry.stream.clone(), entry.wakes.clone());
                if let Err(e) = spawn(format!("switchboard-write-{}", id.0), move || {
                    write_side(&shared, id, &stream, &wakes)
                }) {
                    log::error!("{id} cannot start a thread: {e}");
                    self.teardown(&mut st, id);
                    self.drain(&mut st);
                }
            }
            if st.out.is_empty() {
                return st;
            }
            let mut out = std::mem::take(&mut st.out);
            drop(st);
            let sent: Vec<io::Result<usize>> = out
                .iter()
                .map(|(_, stream, data)| stream.send_now(data))
                .collect();
            st = self.lock();
            for ((id, _, data), sent) in out.drain(..).zip(sent) {
                self.sent(&mut st, id, data, sent);
            }
            self.drain(&mut st);
        }
    }

    /// Reports a send of `data`: the rest, if any, goes to the writer thread.
    fn sent(&self, st: &mut State, id: ConnId, data: Bytes, sent: io::Result<usize>) {
        let Some(entry) = st.conns.get_mut(&id) else {
            return;
        };
        match sent {
            Ok(n) if n == data.len() => {
                entry.writing = Writing::Idle;
                st.server.handle_written(id, n);
                st.start_write(id);
            }
            Ok(n) => {
                st.server.handle_written(id, n);
                st.hand_off(id, Some(data.slice(n..)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                st.hand_off(id, Some(data))
            }
            Err(e) => {
                if !entry.closing {
                    log::debug!("{id} I/O error: {e}");
                }
                self.teardown(st, id);
            }
        }
    }

    /// Tears a connection down, drains what that causes, writes and releases the lock.
    fn finish(self: &Arc<Self>, mut st: MutexGuard<'_, State>, id: ConnId) {
        self.teardown(&mut st, id);
        self.drain(&mut st);
        drop(self.flush(st));
    }

    /// Shuts a connection's socket (unblocking its threads), tells the core and drops the
    /// entry. Whoever gets here first does it; the others find the entry gone.
    fn teardown(&self, st: &mut State, id: ConnId) {
        let Some(entry) = st.conns.remove(&id) else {
            return;
        };
        let _ = entry.stream.shutdown(Shutdown::Both);
        entry.wakes.write.notify_one();
        entry.wakes.read.notify_one();
        self.handle.closed();
        // Announces the departure unless the core closed it itself; frees everything.
        st.server.handle_close(id, Instant::now());
        if st.conns.is_empty() {
            self.idle.notify_all();
        }
    }
}

/// Accepts connections until shutdown.
fn accept_loop(listener: &TcpListener, tls: Option<TlsConfig>, shared: &Arc<Shared>) {
    while !shared.handle.is_shutdown() {
        match listener.accept() {
            // It may be the handle's own wake-up connection, or shutdown shut the listener.
            _ if shared.handle.is_shutdown() => break,
            Ok((stream, peer)) => start_connection(shared, stream, peer, tls.as_ref()),
            Err(e) if is_transient(&e) => log::warn!("accept failed: {e}"),
            Err(e) => {
                log::warn!(
                    "accept failed: {e}; pausing {} ms",
                    ACCEPT_BACKOFF.as_millis()
                );
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Whether an accept error concerns only the one connection (so accepting again at once is
/// right), rather than exhausted resources such as EMFILE or ENOMEM.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | TimedOut
    )
}

/// Opens a connection in the core and starts its reader thread.
fn start_connection(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsConfig>,
) {
    if shared.lock().conns.len() >= shared.max_connections {
        let max = shared.max_connections;
        return log::warn!("{peer} refused: {max} connections, the most this server takes");
    }
    if let Err(e) = tcp.set_nodelay(true) {
        log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
    }
    let stream = Arc::new(match tls {
        None => Stream::Plain(tcp),
        Some(tls) => match Stream::tls(tcp, tls) {
            Ok(stream) => stream,
            Err(e) => return log::warn!("{peer}: cannot start TLS: {e}"),
        },
    });
    let wakes = Arc::new(Wakes::default());
    let mut st = shared.lock();
    let id = match st.server.open_from(peer.ip(), Instant::now()) {
        Ok(id) => id,
        Err(refused) => {
            let hello_timeout = st.server.config().hello_timeout;
            drop(st);
            return refuse(shared, stream, peer, refused, hello_timeout);
        }
    };
    let entry = Entry {
        stream: stream.clone(),
        wakes: wakes.clone(),
        writing: Writing::Idle,
        writer: false,
        closing: false,
    };
    st.conns.insert(id, entry);
    shared.handle.opened();
    // open_from() may have made the core's next deadline earlier.
    shared.drain(&mut st);
    drop(shared.flush(st));
    log::info!("{id} connected from {peer}");
    let theirs = shared.clone();
    if let Err(e) = spawn(format!("switchboard-read-{}", id.0), move || {
        read_side(&theirs, id, &stream, &wakes)
    }) {
        log::error!("{id} cannot start a thread: {e}");
        shared.finish(shared.lock(), id);
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(f)
}

/// Reads into the core, no more than its read budget at a time, until the peer closes or
/// the core closes the connection. With no budget it sleeps without reading.
fn read_side(shared: &Arc<Shared>, id: ConnId, stream: &Stream, wakes: &Wakes) {
    let mut buf = vec![0u8; READ_BUF];
    let mut st = shared.lock();
    loop {
        // Once closing, whatever comes is not the core's any more.
        if st.conns.get(&id).is_none_or(|entry| entry.closing) {
            return;
        }
        let budget = st.server.read_budget(id).min(READ_BUF);
        if budget == 0 {
            st = wakes.read.wait(st).unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        drop(st);
        let read = stream.read(&mut buf[..budget]);
        st = shared.lock();
        if st.conns.get(&id).is_none_or(|entry| entry.closing) {
            return;
        }
        match read {
            Ok(0) => {
                // What the core still says is written; the core then closes it.
                st.server.handle_eof(id, Instant::now());
                shared.drain(&mut st);
                return drop(shared.flush(st));
            }
            Ok(n) => {
                st.server.handle_input(id, &buf[..n], Instant::now());
                shared.drain(&mut st);
                st = shared.flush(st);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{id} I/O error: {e}");
                return shared.finish(st, id);
            }
        }
    }
}

/// Writes, waiting for the socket, what a send that could not wait left over and what the
/// core queues meanwhile, until nothing is left; then sleeps until the next hand-off.
fn write_side(shared: &Arc<Shared>, id: ConnId, stream: &Stream, wakes: &Wakes) {
    let mut st = shared.lock();
    loop {
        let data = match st.writer_next(id) {
            None => return,
            Some(None) => {
                st = wakes.write.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            Some(Some(data)) => data,
        };
        drop(st);
        let mut data = &data[..];
        let failed = loop {
            match stream.write(data) {
                Ok(0) => break Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    // A closing connection's last write makes the core say to close it.
                    shared.turn(|core| core.handle_written(id, n));
                    if data.is_empty() {
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        st = shared.lock();
        if let Some(e) = failed {
            if st.conns.get(&id).is_some_and(|entry| !entry.closing) {
                log::debug!("{id} I/O error: {e}");
            }
            return shared.finish(st, id);
        }
    }
}

/// Refuses a connection in its protocol, told by its first byte, within `hello_timeout`,
/// on a thread of its own (at most [`MAX_REFUSING`] at once). The core keeps nothing of it.
fn refuse(
    shared: &Arc<Shared>,
    stream: Arc<Stream>,
    peer: SocketAddr,
    refused: Refused,
    hello_timeout: Duration,
) {
    if shared.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        shared.refusing.fetch_sub(1, Ordering::Relaxed);
        return log::info!("{peer} refused at once: {refused}");
    }
    log::info!("{peer} refused: {refused}");
    let theirs = shared.clone();
    let linger = hello_timeout.max(Duration::from_millis(1));
    let spawned = spawn(format!("switchboard-refuse-{peer}"), move || {
        let mut buf = [0u8; 512];
        // The deadline covers the TLS handshake too; writes are bounded the same way.
        let _ = stream.tcp().set_read_timeout(Some(linger));
        let _ = stream.tcp().set_write_timeout(Some(linger));
        if let Ok(1..) = stream.read(&mut buf) {
            let reply = refused.reply(buf[0]);
            let mut data = &reply[..];
            while let Ok(n @ 1..) = stream.write(data) {
                data = &data[n..];
            }
            let _ = stream.shutdown(Shutdown::Write);
            // Reads to the peer's close, so that closing does not reset the connection
            // and lose the refusal.
            while matches!(stream.read(&mut buf), Ok(1..)) {}
        }
        theirs.refusing.fetch_sub(1, Ordering::Relaxed);
    });
    if spawned.is_err() {
        shared.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Calls the core's `handle_timeout` whenever its next deadline passes.
fn timer_thread(shared: &Arc<Shared>) {
    let mut st = shared.lock();
    while !st.stopping {
        let now = Instant::now();
        if st.server.poll_timeout().is_some_and(|at| at <= now) {
            st.server.handle_timeout(now);
            shared.drain(&mut st);
            st = shared.flush(st);
        }
        st.timer_at = st.server.poll_timeout();
        st = match st.timer_at {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                shared
                    .timer
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .timer
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}
