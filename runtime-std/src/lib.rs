//! Blocking adapter for [`switchboard_core`]: moves bytes between `std::net` sockets and the
//! core with plain threads.
//!
//! # Design
//!
//! - The thread that calls [`Server::run`] only accepts: it opens each connection in the core,
//!   starts that connection's threads and goes back to accepting. Each further listener
//!   ([`Server::add_listener`], for a dedicated IRC port say) has an accept thread of its own
//!   feeding the same core.
//! - Each connection has a reader thread, which reads no more than the core's `read_budget`
//!   and hands the bytes to the core, and a writer thread, which sleeps on the connection's
//!   condition variable until the core queues output for it and then writes the core's
//!   batches of whole frames. Their stacks are small (64 KiB) and their buffers on the heap.
//!   A slow client blocks only its own threads. A reader with no budget (its connection is
//!   over its rate with a full inbound queue) sleeps on its own condition variable, without
//!   reading, until the core names it in `poll_readable`.
//! - The core sits behind one mutex. It is held to feed or drain the core, never across a
//!   socket read or write.
//! - A timer thread calls `handle_timeout` at the core's `poll_timeout`: keepalive, requests
//!   waiting for the rate, and close lingers are all the core's deadlines.
//! - Closing is the core's decision: on `Close { Flush }` the reading half is shut (the
//!   reader stops at once) and the writer flushes; on `Close { Now }` the socket is shut
//!   down, which also unblocks a writer stuck on a peer that stopped reading.
//!
//! Connects, sign-ins, closes and errors go through the [`log`] facade, one line each
//! (connections and sign-ins at `info`, I/O errors at `debug`, accept failures at `warn`);
//! the program picks the backend and the filter.

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

use switchboard_bus::Cluster;
use switchboard_core::{CloseMode, Config, ConnId, Event, Refused};
use switchboard_store::{History, Worker};

pub use handle::Handle;
/// The TLS library the adapter speaks through, for building a [`TlsConfig`].
pub use rustls;
use tls::Stream;
pub use tls::TlsConfig;

/// Stack size of connection and timer threads: they hold no buffers on the stack.
const THREAD_STACK: usize = 64 * 1024;

/// Each reader's buffer; a read takes no more than the core's read budget.
const READ_BUF: usize = 8 * 1024;

/// Pause after an accept error that means resources ran out (too many open files, no
/// memory): accepting again at once would only fail again, in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Most refused connections waiting at once, each on a thread, for their first byte (to
/// be refused in their protocol); past it a refused connection is closed at once.
const MAX_REFUSING: usize = 256;

/// A chat server bound to a socket, ready to run on threads.
pub struct Server {
    /// The first is the one bound by `bind`; all serve the same core. Those with a TLS
    /// configuration speak TLS.
    listeners: Vec<(TcpListener, Option<TlsConfig>)>,
    config: Config,
    handle: Handle,
    max_connections: Option<usize>,
    history: Option<History>,
    cluster: Option<Cluster>,
}

/// Memory mappings one connection's two threads take: each thread's stack and guard page,
/// and the signal stack and guard page std sets up for it.
const MAPS_PER_CONNECTION: usize = 8;

/// Connections the system can give threads to, leaving room for everything else.
///
/// A thread that cannot get its mappings aborts the whole process inside std (it cannot be
/// caught), so the server refuses connections before the system's limits are reached:
/// `vm.max_map_count` and `kernel.threads-max`.
fn thread_budget() -> usize {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    };
    let maps = read("/proc/sys/vm/max_map_count").unwrap_or(65_530);
    let threads = read("/proc/sys/kernel/threads-max").unwrap_or(usize::MAX);
    (maps / MAPS_PER_CONNECTION)
        .min(threads / 2)
        .saturating_sub(256)
        .max(1)
}

impl Server {
    /// Binds the listening socket; serving starts with [`Server::run`].
    ///
    /// A `config` that [`Config::validate`] refuses is an `InvalidInput` error.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Server::from_listener(TcpListener::bind(addr)?, config)
    }

    /// Serves on a socket already bound and listening (with SO_REUSEPORT, say).
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let handle = Handle::new(&listener)?;
        Ok(Server {
            listeners: vec![(listener, None)],
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
        self.listen(addr, None)
    }

    /// Also accepts TLS connections on `addr`, into the same rooms, with `tls`'s
    /// certificate (replaceable while serving). Returns the address actually bound.
    pub fn add_tls_listener(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: TlsConfig,
    ) -> io::Result<SocketAddr> {
        self.listen(addr, Some(tls))
    }

    fn listen(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, tls)
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
    /// Fails only if the keepalive timer thread or an accept thread cannot be started; in the
    /// latter case it shuts down first, as if [`Handle::shutdown`] had been called.
    pub fn run(self) -> io::Result<()> {
        let Server {
            listeners,
            config,
            handle,
            max_connections,
            history,
            cluster,
        } = self;
        let max_connections = max_connections.unwrap_or_else(thread_budget);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                server: switchboard_core::Server::new(config),
                conns: HashMap::new(),
                timer_at: None,
                stopping: false,
                store: None,
                bus: None,
            }),
            timer: Condvar::new(),
            idle: Condvar::new(),
            max_connections,
            handle,
            refusing: AtomicUsize::new(0),
        });
        if let Some(history) = history {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            // The store thread applies its answers itself, under the lock like any reader.
            let worker = history.start(&mut st.server, move |batch| {
                if let Some(shared) = weak.upgrade() {
                    let mut st = shared.lock();
                    if let Some(why) = switchboard_store::apply(batch, &mut st.server) {
                        log::error!("history store failed: {why}");
                    }
                    shared.drain(&mut st);
                }
            })?;
            st.store = Some(worker);
        }
        if let Some(cluster) = cluster {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            // The bus threads apply their events themselves, under the lock like any reader.
            let worker = cluster.start(&mut st.server, move |event| {
                if let Some(shared) = weak.upgrade() {
                    let mut st = shared.lock();
                    st.server.handle_bus(event, Instant::now());
                    shared.drain(&mut st);
                }
            })?;
            st.bus = Some(worker);
        }
        let timer = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("switchboard-timer".into())
                .stack_size(THREAD_STACK)
                .spawn(move || timer_thread(&shared))?
        };
        let mut listeners = listeners.into_iter();
        let first = listeners.next();
        let mut accepters = Vec::new();
        let mut failed = None;
        for (i, listener) in listeners.enumerate() {
            let theirs = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("switchboard-accept-{}", i + 1))
                .stack_size(THREAD_STACK)
                .spawn(move || accept_loop(&listener.0, listener.1, &theirs));
            match spawned {
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
        // The core closes every connection once its bye is written or its linger is over.
        while !st.conns.is_empty() {
            st = shared.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.stopping = true;
        let store = st.store.take();
        let bus = st.bus.take();
        drop(st);
        shared.timer.notify_one();
        let _ = timer.join();
        // The last ops (the releases of a shutdown) run before `run` returns (the lock is
        // free for the bus threads' last events).
        if let Some(bus) = bus {
            bus.finish();
        }
        // What was submitted is written before `run` returns (the lock is free for the
        // store thread's last answers).
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
    /// Connections past this many are refused.
    max_connections: usize,
    handle: Handle,
    /// Refused connections waiting for their first byte.
    refusing: AtomicUsize,
}

/// The core and the adapter's bookkeeping, behind the one mutex.
struct State {
    server: switchboard_core::Server,
    conns: HashMap<ConnId, Entry>,
    /// The deadline the timer thread sleeps until.
    timer_at: Option<Instant>,
    /// Ends the timer thread.
    stopping: bool,
    /// The history store thread, when history is on.
    store: Option<Worker>,
    /// The cluster's bus, when the cluster is on.
    bus: Option<switchboard_bus::Worker>,
}

/// The adapter's side of one connection.
struct Entry {
    stream: Arc<Stream>,
    /// Wakes the writer: output is queued or the connection is gone.
    wake: Arc<Condvar>,
    /// Wakes the reader: the core lets it read again, or the connection is gone.
    read_wake: Arc<Condvar>,
    /// The core is closing it: errors are expected, not worth a log line.
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every other connection down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Acts on everything the core has to say after an input, timeout or close.
    ///
    /// Closes the core wants now are torn down after each round, and what their departures
    /// cause is drained in the next: a loop, not recursion, however many close at once.
    fn drain(&self, st: &mut State) {
        loop {
            while let Some(id) = st.server.poll_pending() {
                if let Some(entry) = st.conns.get(&id) {
                    entry.wake.notify_one();
                }
            }
            while let Some(id) = st.server.poll_readable() {
                if let Some(entry) = st.conns.get(&id) {
                    entry.read_wake.notify_one();
                }
            }
            let mut now = Vec::new();
            while let Some(close) = st.server.poll_close() {
                match close.mode {
                    CloseMode::Flush => {
                        if let Some(entry) = st.conns.get_mut(&close.conn) {
                            entry.closing = true;
                            // Stops the reader at once, even inside a blocking read.
                            let _ = entry.stream.shutdown(Shutdown::Read);
                            entry.read_wake.notify_one();
                        }
                    }
                    CloseMode::Now => now.push(close.conn),
                }
            }
            while let Some(event) = st.server.poll_event() {
                match event {
                    Event::Registered { conn, nick } => {
                        let peer = st.conns.get(&conn).and_then(|e| e.stream.peer_addr().ok());
                        match peer {
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
            while let Some(op) = st.server.poll_store() {
                store.submit(op);
            }
        }
        if let Some(bus) = &st.bus {
            while let Some(op) = st.server.poll_bus() {
                bus.submit(op);
            }
        }
        if let Some(next) = st.server.poll_timeout() {
            if st.timer_at.is_none_or(|t| next < t) {
                self.timer.notify_one();
            }
        }
    }

    /// Tears a connection down and drains what that causes. Whoever gets here first does
    /// it; the others find the entry gone.
    fn finish(&self, st: &mut State, id: ConnId) {
        self.teardown(st, id);
        self.drain(st);
    }

    /// Shuts a connection's socket (unblocking its threads), tells the core and drops the
    /// entry.
    fn teardown(&self, st: &mut State, id: ConnId) {
        let Some(entry) = st.conns.remove(&id) else {
            return;
        };
        let _ = entry.stream.shutdown(Shutdown::Both);
        entry.wake.notify_one();
        entry.read_wake.notify_one();
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
            // It may be the handle's own wake-up connection; the loop condition decides.
            Ok(_) if shared.handle.is_shutdown() => break,
            // Shutdown shut the listener itself.
            Err(_) if shared.handle.is_shutdown() => break,
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
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// Opens a connection in the core and starts its reader and writer threads.
fn start_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsConfig>,
) {
    if shared.lock().conns.len() >= shared.max_connections {
        log::warn!(
            "{peer} refused: {} connections, the most this server takes",
            shared.max_connections
        );
        return;
    }
    if let Err(e) = stream.set_nodelay(true) {
        log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
    }
    let stream = match tls {
        None => Stream::Plain(stream),
        Some(tls) => match Stream::tls(stream, tls) {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("{peer}: cannot start TLS: {e}");
                return;
            }
        },
    };
    let stream = Arc::new(stream);
    let wake = Arc::new(Condvar::new());
    let read_wake = Arc::new(Condvar::new());
    let id = {
        let mut st = shared.lock();
        let id = match st.server.open_from(peer.ip(), Instant::now()) {
            Ok(id) => id,
            Err(refused) => {
                let hello_timeout = st.server.config().hello_timeout;
                drop(st);
                refuse(shared, stream, peer, refused, hello_timeout);
                return;
            }
        };
        st.conns.insert(
            id,
            Entry {
                stream: stream.clone(),
                wake: wake.clone(),
                read_wake: read_wake.clone(),
                closing: false,
            },
        );
        shared.handle.opened();
        // open_from() may have made the core's next deadline earlier.
        shared.drain(&mut st);
        id
    };
    log::info!("{id} connected from {peer}");
    let reader = {
        let (shared, stream) = (shared.clone(), stream.clone());
        spawn(format!("switchboard-read-{}", id.0), move || {
            read_side(&shared, id, &stream, &read_wake)
        })
    };
    let writer = reader.and_then(|_| {
        let shared = shared.clone();
        spawn(format!("switchboard-write-{}", id.0), move || {
            write_side(&shared, id, &stream, &wake)
        })
    });
    if let Err(e) = writer {
        log::error!("{id} cannot start a thread: {e}");
        let mut st = shared.lock();
        shared.finish(&mut st, id);
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Reads into the core, no more than its read budget at a time, until the peer closes or
/// the core closes the connection. With no budget it sleeps without reading.
fn read_side(shared: &Shared, id: ConnId, stream: &Stream, wake: &Condvar) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let budget = {
            let mut st = shared.lock();
            loop {
                let Some(entry) = st.conns.get(&id) else {
                    return;
                };
                if entry.closing {
                    return;
                }
                let budget = st.server.read_budget(id);
                if budget > 0 {
                    break budget.min(READ_BUF);
                }
                st = wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let read = stream.read(&mut buf[..budget]);
        let mut st = shared.lock();
        let Some(entry) = st.conns.get(&id) else {
            // Torn down elsewhere.
            return;
        };
        if entry.closing {
            // Whatever came is not the core's any more: closing means closing.
            return;
        }
        match read {
            Ok(0) => {
                // The writer flushes what the core still says; the core then closes it.
                st.server.handle_eof(id, Instant::now());
                shared.drain(&mut st);
                return;
            }
            Ok(n) => {
                st.server.handle_input(id, &buf[..n], Instant::now());
                shared.drain(&mut st);
                drop(st);
                // One slice per turn, as the async adapter does: the writers this input
                // woke get the lock before this reader takes it again.
                thread::yield_now();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{id} I/O error: {e}");
                shared.finish(&mut st, id);
                return;
            }
        }
    }
}

/// Writes what the core queues for the connection and reports it; the core says when the
/// connection is to be closed.
fn write_side(shared: &Shared, id: ConnId, stream: &Stream, wake: &Condvar) {
    let mut st = shared.lock();
    loop {
        if !st.conns.contains_key(&id) {
            return;
        }
        let Some(transmit) = st.server.take_transmit(id) else {
            st = wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        drop(st);
        // Whole frames, batched by the core: one write for all of it when the socket takes
        // it. The lock is not held while writing.
        let mut data = &transmit.data[..];
        let mut failed = None;
        while !data.is_empty() {
            match stream.write(data) {
                Ok(0) => failed = Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    let mut st = shared.lock();
                    st.server.handle_written(id, n);
                    // A closing connection's last write makes the core say to close it.
                    shared.drain(&mut st);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => failed = Some(e),
            }
            break;
        }
        st = shared.lock();
        if let Some(e) = failed {
            if st.conns.get(&id).is_some_and(|entry| !entry.closing) {
                log::debug!("{id} I/O error: {e}");
            }
            shared.finish(&mut st, id);
            return;
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
        log::info!("{peer} refused at once: {refused}");
        return;
    }
    log::info!("{peer} refused: {refused}");
    let theirs = shared.clone();
    let linger = hello_timeout.max(Duration::from_millis(1));
    let spawned = spawn(format!("switchboard-refuse-{peer}"), move || {
        let tcp = stream.tcp();
        let mut buf = [0u8; 512];
        // The deadline covers the TLS handshake too; writes are bounded the same way.
        let _ = tcp.set_read_timeout(Some(linger));
        let _ = tcp.set_write_timeout(Some(linger));
        if let Ok(1..) = stream.read(&mut buf) {
            let reply = refused.reply(buf[0]);
            let mut data = &reply[..];
            while !data.is_empty() {
                match stream.write(data) {
                    Ok(n) if n > 0 => data = &data[n..],
                    _ => break,
                }
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
fn timer_thread(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stopping {
            return;
        }
        let now = Instant::now();
        if st.server.poll_timeout().is_some_and(|at| at <= now) {
            st.server.handle_timeout(now);
            shared.drain(&mut st);
        }
        let next = st.server.poll_timeout();
        st.timer_at = next;
        st = match next {
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
