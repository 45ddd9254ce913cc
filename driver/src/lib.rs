//! The async driver of [`switchboard_core`]: one server on one thread over any runtime that
//! implements [`Runtime`].
//!
//! The driver moves bytes between sockets and the core and tells it the time; every
//! decision (what to send, when to read, when to close, every deadline) is the core's.
//! A runtime gives it three things: spawning a task on the current thread, a timer, and
//! non-blocking TCP sockets that report readiness. `switchboard-smol` implements it for
//! smol and async-std in a few dozen lines each; `examples/tokio-server` does for tokio.
//!
//! Readiness with `try_read`/`try_write` rather than `AsyncRead`/`AsyncWrite` is what lets
//! every connection read into one shared buffer (an idle connection holds none) and lets
//! the driver write a turn's output straight from the task that produced it.
//!
//! # Design
//!
//! The whole server runs on one thread. The core is one single-threaded state machine, so
//! threads would only add locking around it; one thread with non-blocking sockets is the
//! shape of the fastest C chat servers too. The core sits in an `Rc<RefCell<_>>` that no
//! task holds borrowed across an `.await`.
//!
//! - The accept loop opens each connection in the core, spawns one task for it and goes
//!   straight back to accepting; it never waits on a client. A server may listen on several
//!   sockets (`add_listener`, for a dedicated IRC port say): one accept loop each, all in one
//!   task, feeding the one core.
//! - A connection's task runs a reader and a writer side by side. The reader reads into one
//!   read buffer shared by every connection, never more than the core's `read_budget` for
//!   the connection, hands the bytes to the core and yields, so every connection gets one
//!   bounded read per turn. With no budget (the connection is over its rate and its inbound
//!   queue is full, or it is closing) the reader does not poll the socket at all until the
//!   core names it in `poll_readable`.
//! - After every input, write, timeout or close, the driver drains the core: it lists the
//!   connections with new output for the flusher task, which runs after the tasks woken
//!   with it and writes each once, non-blocking, with all it has (one wake-up for all the
//!   recipients, one write each), leaving to a connection's writer only what would block
//!   (and TLS output, which may need a flush that waits); it wakes the readers the core
//!   lets read again, marks closing connections, ends the ones the core says to close now,
//!   logs events and re-arms the timer when the core's next deadline moved earlier.
//! - Closing is the core's decision, lingering included: on `Close { Flush }` the reader
//!   stops (the core gives it no budget) and the writer flushes; on `Close { Now }` (output
//!   written, or `close_linger` over, a deadline the core keeps) the socket is dropped.
//! - [`Handle::shutdown`] stops accepting, says bye to every client through the core and
//!   returns from `serve` once every bye is written (bounded by `close_linger`).
//!
//! # Logging
//!
//! Connects, sign-ins, closes and errors go through the [`log`] facade, one line each
//! (connections and sign-ins at `info`, I/O errors at `debug`, accept failures at `warn`);
//! the program picks the backend and the filter.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_lite::future::or;
use switchboard_core::{CloseMode, ConnId, Event};
use switchboard_store::Worker;

use notify::Notify;
use tls::Stream;

mod accept;
mod conn;
mod handle;
mod notify;
mod server;
mod tasks;
mod tls;

pub use handle::Handle;
/// The TLS library the driver speaks through, for building a [`TlsConfig`].
pub use rustls;
pub use tls::TlsConfig;

pub use server::Server;

/// Size of the one read buffer all connections share; a read takes no more than the core's
/// read budget for the connection.
const READ_BUF: usize = 64 * 1024;

/// What the driver needs of an async runtime.
pub trait Runtime: 'static {
    /// A connected TCP socket.
    type Socket: Socket;
    /// A listening TCP socket.
    type Listener: Listener<Socket = Self::Socket>;
    /// Registers a bound, listening, non-blocking socket with the runtime.
    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener>;
    /// Runs `task` in the background on the current thread (tasks share `Rc`s).
    fn spawn(&self, task: impl Future<Output = ()> + 'static);
    /// A future that resolves at `at`.
    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static;
}

/// A runtime that can run a server on the calling thread by itself, for
/// [`Server::run_blocking`].
pub trait BlockOn: Runtime + Sized {
    /// Runs `server` on the calling thread until it is shut down.
    fn block_on(server: Server<Self>);
}

/// A non-blocking TCP socket that reports readiness.
pub trait Socket: 'static {
    /// Reads what is there: `WouldBlock` when nothing is, 0 at end of stream.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the socket takes: `WouldBlock` when it is full.
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;
    /// Ready when a read may make progress (wakes the task when it may).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress (wakes the task when it may).
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sets TCP_NODELAY.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
    /// Ends the sending side (a FIN after what was written).
    fn shutdown_write(&self) -> io::Result<()>;
}

/// A listening TCP socket.
pub trait Listener: 'static {
    /// The sockets it accepts.
    type Socket: Socket;
    /// Accepts a connection, or registers the task to be woken when one may be accepted.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Socket, SocketAddr)>>;
}

/// Everything the tasks of one server share, behind one `RefCell`.
struct State<S> {
    server: switchboard_core::Server,
    /// The adapter's side of each open connection.
    conns: HashMap<ConnId, Rc<Slot<S>>>,
    /// The one read buffer: a read's bytes are handed to the core before anyone reads again.
    buf: Box<[u8]>,
    /// The deadline the keepalive task sleeps until.
    timer_at: Option<Instant>,
    /// Wakes the keepalive task when the core's next deadline moves earlier.
    timer: Rc<Notify>,
    /// Woken when the last connection is gone.
    idle: Rc<Notify>,
    /// The history store thread, when history is on.
    store: Option<Worker>,
    /// The cluster's bus, when the cluster is on.
    bus: Option<switchboard_bus::Worker>,
    /// Refused connections waiting for their first byte.
    refusing: usize,
    /// Connections with new output since the flusher last ran.
    dirty: Vec<ConnId>,
    /// Wakes the flusher task: `dirty` is not empty, or the server has stopped.
    flusher: Rc<Notify>,
    /// The server has stopped: the flusher ends.
    stopped: bool,
    /// Counts the open sockets for `Handle::connection_count`.
    handle: Handle,
}

/// The adapter's side of one connection, shared by its task and the state.
///
/// Every idle connection holds one (issue 16: memory per connection), so its signals to
/// the task are bits of one byte with one waker: the reader and writer are one task.
struct Slot<S> {
    stream: Stream<S>,
    /// Output taken from the core and not yet written: while there is some, only the
    /// connection's writer writes (so bytes keep their order).
    out: Cell<Option<Bytes>>,
    /// The connection task's waker while it waits for a signal.
    waker: Cell<Option<Waker>>,
    /// Signals (`READ`, `WRITE`, `DONE`) not yet seen by the task, and `CLOSING`.
    flags: Cell<u8>,
}

/// Signal to the reader: the core lets it read again.
const READ: u8 = 1;
/// Signal to the writer: output is queued.
const WRITE: u8 = 2;
/// The core said to close the socket now.
const DONE: u8 = 4;
/// The core is closing the connection: errors are expected, not worth a log line.
const CLOSING: u8 = 8;

impl<S> Slot<S> {
    /// A slot with no output and no signal.
    fn new(stream: Stream<S>) -> Self {
        Slot {
            stream,
            out: Cell::new(None),
            waker: Cell::new(None),
            flags: Cell::new(0),
        }
    }

    /// Raises `bits` and wakes the task if it waits; a signal sent while it does not
    /// wait is kept for its next look.
    fn signal(&self, bits: u8) {
        self.flags.set(self.flags.get() | bits);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Whether `bit` is raised.
    fn has(&self, bit: u8) -> bool {
        self.flags.get() & bit != 0
    }

    /// Lowers `bits`: the task is about to look at what they signal.
    fn lower(&self, bits: u8) {
        self.flags.set(self.flags.get() & !bits);
    }

    /// Keeps the task's waker for the next signal (the same task's waker is kept once).
    fn park(&self, cx: &Context<'_>) {
        let waker = match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.waker.set(Some(waker));
    }
}

impl<S: Socket> State<S> {
    /// Acts on everything the core has to say after an input, write, timeout or close.
    fn drain(&mut self) {
        // Written by the flusher once the tasks woken with this one have had their turn,
        // so that what they produce goes out in the same write.
        while let Some(id) = self.server.poll_pending() {
            if self.dirty.is_empty() {
                self.flusher.notify();
            }
            self.dirty.push(id);
        }
        while let Some(id) = self.server.poll_readable() {
            if let Some(slot) = self.conns.get(&id) {
                slot.signal(READ);
            }
        }
        while let Some(close) = self.server.poll_close() {
            if let Some(slot) = self.conns.get(&close.conn) {
                match close.mode {
                    // The reader stops by itself: the core gives it no budget any more.
                    CloseMode::Flush => slot.flags.set(slot.flags.get() | CLOSING),
                    CloseMode::Now => slot.signal(DONE),
                }
            }
        }
        while let Some(event) = self.server.poll_event() {
            match event {
                // The peer's address is in the connection's first line ("connected from").
                Event::Registered { conn, nick } => log::info!("{conn} signed in as {nick}"),
                Event::NickChanged { conn, old, new } => {
                    log::info!("{conn} is now known as {new} (was {old})")
                }
                Event::Closed { conn, code, reason } => {
                    log::info!("{conn} closed: {code}: {reason}")
                }
            }
        }
        if let Some(store) = &self.store {
            while let Some(op) = self.server.poll_store() {
                store.submit(op);
            }
        }
        if let Some(bus) = &self.bus {
            while let Some(op) = self.server.poll_bus() {
                bus.submit(op);
            }
        }
        if let Some(next) = self.server.poll_timeout() {
            if self.timer_at.is_none_or(|at| next < at) {
                self.timer_at = Some(next);
                self.timer.notify();
            }
        }
    }
}

/// Writes every connection with new output, each with one non-blocking write of all it
/// has, from one task: one wake-up for a turn's recipients, not one per recipient, and
/// one write per recipient for what all the tasks run before it produced.
async fn flusher<S: Socket>(state: Rc<RefCell<State<S>>>, wake: Rc<Notify>) {
    let mut ids = Vec::new();
    loop {
        wake.wait().await;
        let mut st = state.borrow_mut();
        let st = &mut *st;
        if st.stopped {
            return;
        }
        // Swapped, so that both vectors keep their capacity.
        std::mem::swap(&mut ids, &mut st.dirty);
        for id in ids.drain(..) {
            if let Some(slot) = st.conns.get(&id) {
                write_now(&mut st.server, id, slot);
            }
        }
        // What the writes released (closes, readers); new output wakes this task again.
        st.drain();
    }
}

/// Writes a connection's output at once when the socket takes it without waiting. What
/// would wait (the socket is full, or the rest of a partial write) is left to the
/// connection's writer, as is all TLS output (its records may need a flush that waits).
fn write_now<S: Socket>(server: &mut switchboard_core::Server, id: ConnId, slot: &Slot<S>) {
    let rest = slot.out.take();
    let busy = rest.is_some();
    slot.out.set(rest);
    if busy || slot.has(DONE) || !slot.stream.is_plain() {
        slot.signal(WRITE);
        return;
    }
    let Some(transmit) = server.take_transmit(id) else {
        return;
    };
    let mut data = transmit.data;
    if let Ok(n) = slot.stream.try_write(&data) {
        if n > 0 {
            data.advance(n);
            server.handle_written(id, n);
        }
    }
    // An error is met again, and reported, by the writer.
    if !data.is_empty() {
        slot.out.set(Some(data));
        slot.signal(WRITE);
    }
}

/// Serves until the handle asks for shutdown, then closes every connection and returns.
async fn serve<R: Runtime>(bound: Server<R>, runtime: &R) {
    let server::Parts {
        listeners,
        config,
        handle,
        history,
        cluster,
    } = bound.into_parts();
    let mut registered = Vec::with_capacity(listeners.len());
    for (listener, tls) in listeners {
        match runtime.listener(listener) {
            Ok(listener) => registered.push((listener, tls)),
            Err(e) => {
                log::error!("cannot register a listener with the runtime: {e}");
                return;
            }
        }
    }
    let timer = Rc::new(Notify::default());
    let idle = Rc::new(Notify::default());
    let flush = Rc::new(Notify::default());
    let state = Rc::new(RefCell::new(State::<R::Socket> {
        server: switchboard_core::Server::new(config),
        conns: HashMap::new(),
        buf: vec![0; READ_BUF].into_boxed_slice(),
        timer_at: None,
        timer: timer.clone(),
        idle: idle.clone(),
        store: None,
        bus: None,
        refusing: 0,
        dirty: Vec::new(),
        flusher: flush.clone(),
        stopped: false,
        handle: handle.clone(),
    }));
    let (answers_tx, answers) = async_channel::unbounded();
    if let Some(history) = history {
        let mut st = state.borrow_mut();
        // The store thread only sends; this thread applies the answers (`store_answers`).
        let started = history.start(&mut st.server, move |batch| {
            let _ = answers_tx.send_blocking(batch);
        });
        match started {
            Ok(worker) => st.store = Some(worker),
            Err(e) => {
                log::error!("cannot start the history store thread: {e}");
                return;
            }
        }
    }
    let (events_tx, events) = async_channel::unbounded();
    if let Some(cluster) = cluster {
        let mut st = state.borrow_mut();
        // The bus threads only send; this thread applies the events (`bus_events`).
        let started = cluster.start(&mut st.server, move |event| {
            let _ = events_tx.send_blocking(event);
        });
        match started {
            Ok(worker) => st.bus = Some(worker),
            Err(e) => {
                log::error!("cannot start the cluster bus threads: {e}");
                return;
            }
        }
    }
    runtime.spawn(flusher(state.clone(), flush.clone()));
    let main = async {
        accept::accept_all(registered, &state, &handle, runtime).await;
        {
            let mut st = state.borrow_mut();
            st.server.shutdown(Instant::now());
            st.drain();
        }
        // The core closes every connection once its bye is written, or its linger is over.
        while !state.borrow().conns.is_empty() {
            idle.wait().await;
        }
    };
    // The keepalive timer and the store's answers run beside the accept loop, so they end
    // with it.
    or(
        main,
        or(
            tasks::keepalive::<R, _>(&state, &timer),
            or(
                tasks::store_answers(&state, answers),
                tasks::bus_events(&state, events),
            ),
        ),
    )
    .await;
    // The flusher task ends (on a runtime whose tasks outlive `serve`, it would linger).
    state.borrow_mut().stopped = true;
    flush.notify();
    // The last ops (the releases of a shutdown) run before `serve` returns.
    let bus = state.borrow_mut().bus.take();
    if let Some(bus) = bus {
        bus.finish();
    }
    // What was submitted is written before `serve` returns.
    let store = state.borrow_mut().store.take();
    if let Some(store) = store {
        store.finish();
    }
}
