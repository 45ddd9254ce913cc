//! The server shared by both executors: accept loop, connection tasks and keepalive timer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::Buf;
use std::task::Poll;

use futures_lite::future::{or, poll_fn, poll_once, try_zip, yield_now};
use futures_lite::ready;
use switchboard_bus::{BusEvent, Cluster};
use switchboard_core::{CloseMode, Config, ConnId, Event, Refused, Server};
use switchboard_store::{Answer, History, Worker};

use crate::notify::Notify;
use crate::tls::{Stream, TlsConfig};
use crate::Handle;

/// Size of the one read buffer all connections share; a read takes no more than the core's
/// read budget for the connection.
const READ_BUF: usize = 64 * 1024;

/// Pause after an accept error that means resources ran out (too many open files, no
/// memory): accepting again at once would only fail again, in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Most refused connections waiting at once for their first byte (to be refused in their
/// protocol); past it a refused connection is closed at once, so refusals cannot use up
/// the open-file limit.
const MAX_REFUSING: usize = 256;

/// Most bus events applied before the output is drained and other tasks get a turn.
const BUS_BATCH: usize = 256;

/// Spawns a task on the current thread's executor.
pub(crate) trait Spawn {
    /// Runs `task` to completion in the background.
    fn spawn<F: Future<Output = ()> + 'static>(&self, task: F);
}

/// Bound listening sockets and what running them needs; the part both executors share.
pub(crate) struct Bound {
    /// The first is the one bound by `bind`; all serve the same core. Those with a TLS
    /// configuration speak TLS.
    listeners: Vec<(Async<TcpListener>, Option<TlsConfig>)>,
    config: Config,
    handle: Handle,
    history: Option<History>,
    cluster: Option<Cluster>,
}

impl Bound {
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Bound> {
        // Limits that cannot work together are refused before anything is bound.
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Bound::from_listener(TcpListener::bind(addr)?, config)
    }

    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Bound> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Bound {
            listeners: vec![(Async::new(listener)?, None)],
            config,
            handle: Handle::new(),
            history: None,
            cluster: None,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].0.get_ref().local_addr()
    }

    pub fn add_listener(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, tls)
    }

    pub fn add_tcp_listener(
        &mut self,
        listener: TcpListener,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        let listener = Async::new(listener)?;
        let local = listener.get_ref().local_addr()?;
        self.listeners.push((listener, tls));
        Ok(local)
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    pub fn set_history(&mut self, history: History) {
        self.history = Some(history);
    }

    pub fn set_cluster(&mut self, cluster: Cluster) {
        self.cluster = Some(cluster);
    }
}

/// Everything the tasks of one server share, behind one `RefCell`.
struct State {
    server: Server,
    /// The adapter's side of each open connection.
    conns: HashMap<ConnId, Rc<Slot>>,
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
}

/// The adapter's side of one connection, shared by its task and the state.
#[derive(Default)]
struct Slot {
    /// The peer's address, for log lines.
    peer: Option<SocketAddr>,
    /// Wakes the writer: output is queued.
    writer: Notify,
    /// Wakes the reader: the core lets it read again.
    reader: Notify,
    /// Wakes the task when the core says to close the socket now.
    closer: Notify,
    /// The core is closing the connection: errors are expected, not worth a log line.
    closing: Cell<bool>,
    /// The core said to close the socket now.
    done: Cell<bool>,
}

/// Why a connection's task ended.
enum End {
    /// The core said to close it.
    Closed,
    /// Reading or writing failed.
    Io(io::Error),
}

impl State {
    /// Acts on everything the core has to say after an input, timeout or close.
    fn drain(&mut self) {
        while let Some(id) = self.server.poll_pending() {
            if let Some(slot) = self.conns.get(&id) {
                slot.writer.notify();
            }
        }
        while let Some(id) = self.server.poll_readable() {
            if let Some(slot) = self.conns.get(&id) {
                slot.reader.notify();
            }
        }
        while let Some(close) = self.server.poll_close() {
            if let Some(slot) = self.conns.get(&close.conn) {
                match close.mode {
                    // The reader stops by itself: the core gives it no budget any more.
                    CloseMode::Flush => slot.closing.set(true),
                    CloseMode::Now => {
                        slot.done.set(true);
                        slot.closer.notify();
                    }
                }
            }
        }
        while let Some(event) = self.server.poll_event() {
            match event {
                Event::Registered { conn, nick } => {
                    match self.conns.get(&conn).and_then(|slot| slot.peer) {
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

/// Serves until the handle asks for shutdown, then closes every connection and returns.
pub(crate) async fn serve(bound: Bound, spawner: &impl Spawn) {
    let Bound {
        listeners,
        config,
        handle,
        history,
        cluster,
    } = bound;
    let timer = Rc::new(Notify::default());
    let idle = Rc::new(Notify::default());
    let state = Rc::new(RefCell::new(State {
        server: Server::new(config),
        conns: HashMap::new(),
        buf: vec![0; READ_BUF].into_boxed_slice(),
        timer_at: None,
        timer: timer.clone(),
        idle: idle.clone(),
        store: None,
        bus: None,
        refusing: 0,
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
    let main = async {
        // All accept loops run in this one task: one waker then serves `Handle::stopped`.
        join_all(
            listeners
                .into_iter()
                .map(|(listener, tls)| accept_loop(listener, tls, &state, &handle, spawner)),
        )
        .await;
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
            keepalive(&state, &timer),
            or(store_answers(&state, answers), bus_events(&state, events)),
        ),
    )
    .await;
    // The last ops (the releases of a shutdown) run before `run` returns.
    let bus = state.borrow_mut().bus.take();
    if let Some(bus) = bus {
        bus.finish();
    }
    // What was submitted is written before `run` returns.
    let store = state.borrow_mut().store.take();
    if let Some(store) = store {
        store.finish();
    }
}

/// Applies the history store's answers as they come, then drains what they released.
async fn store_answers(state: &RefCell<State>, answers: async_channel::Receiver<Vec<Answer>>) {
    while let Ok(batch) = answers.recv().await {
        let mut st = state.borrow_mut();
        if let Some(why) = switchboard_store::apply(batch, &mut st.server) {
            log::error!("history store failed: {why}");
        }
        st.drain();
    }
    // No store: nothing will come.
    std::future::pending::<()>().await;
}

/// Applies the bus's events as they come (all that are waiting, then one drain).
async fn bus_events(state: &RefCell<State>, events: async_channel::Receiver<BusEvent>) {
    while let Ok(event) = events.recv().await {
        {
            let mut st = state.borrow_mut();
            st.server.handle_bus(event, Instant::now());
            for _ in 1..BUS_BATCH {
                match events.try_recv() {
                    Ok(event) => st.server.handle_bus(event, Instant::now()),
                    Err(_) => break,
                }
            }
            st.drain();
        }
        // A flood from the bus must not starve the connections' tasks.
        yield_now().await;
    }
    // No cluster: nothing will come.
    std::future::pending::<()>().await;
}

/// Accepts connections until shutdown; the listener is closed on return.
async fn accept_loop(
    listener: Async<TcpListener>,
    tls: Option<TlsConfig>,
    state: &Rc<RefCell<State>>,
    handle: &Handle,
    spawner: &impl Spawn,
) {
    loop {
        let accepted = or(async { Some(listener.accept().await) }, async {
            handle.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                if let Err(e) = stream.get_ref().set_nodelay(true) {
                    log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
                }
                let stream = match &tls {
                    None => Stream::Plain(stream),
                    Some(tls) => match Stream::tls(stream, tls) {
                        Ok(stream) => stream,
                        Err(e) => {
                            log::warn!("{peer}: cannot start TLS: {e}");
                            continue;
                        }
                    },
                };
                let slot = Rc::new(Slot {
                    peer: Some(peer),
                    ..Slot::default()
                });
                let opened = {
                    let mut st = state.borrow_mut();
                    let opened = st.server.open_from(peer.ip(), Instant::now());
                    if let Ok(id) = opened {
                        st.conns.insert(id, slot.clone());
                        // open_from() may have made the core's next deadline earlier.
                        st.drain();
                    }
                    opened
                };
                let id = match opened {
                    Ok(id) => id,
                    Err(refused) => {
                        let mut st = state.borrow_mut();
                        if st.refusing < MAX_REFUSING {
                            st.refusing += 1;
                            log::info!("{peer} refused: {refused}");
                            let config = st.server.config();
                            let wait = (config.hello_timeout, config.close_linger);
                            spawner.spawn(refuse(state.clone(), stream, refused, wait));
                        } else {
                            log::info!("{peer} refused at once: {refused}");
                        }
                        continue;
                    }
                };
                handle.opened();
                log::info!("{id} connected from {peer}");
                spawner.spawn(connection(state.clone(), handle.clone(), id, slot, stream));
                // Under a stream of connections `accept` is always ready: this lets the other
                // listeners and the connections run between two accepts.
                yield_now().await;
            }
            Some(Err(e)) if is_transient(&e) => log::warn!("accept failed: {e}"),
            Some(Err(e)) => {
                log::warn!(
                    "accept failed: {e}; pausing {} ms",
                    ACCEPT_BACKOFF.as_millis()
                );
                or(
                    async {
                        Timer::after(ACCEPT_BACKOFF).await;
                    },
                    handle.stopped(),
                )
                .await;
            }
        }
    }
}

/// Runs futures side by side in the current task until every one has finished.
async fn join_all<F: Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut running: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    poll_fn(|cx| {
        running.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Whether an accept error concerns only the one connection (so accepting again at once is
/// right), rather than exhausted resources such as EMFILE or ENOMEM.
pub(crate) fn is_transient(e: &io::Error) -> bool {
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

/// One connection's task: reader and writer side by side until the core says to close.
async fn connection(
    state: Rc<RefCell<State>>,
    handle: Handle,
    id: ConnId,
    slot: Rc<Slot>,
    stream: Stream,
) {
    let sides = async {
        let reader = read_side(&state, id, &slot, &stream);
        let writer = write_side(&state, id, &slot, &stream);
        match try_zip(reader, writer).await {
            Ok(_) => End::Closed,
            Err(end) => end,
        }
    };
    // The close watch goes first so that it wins once the core has said so.
    let end = or(closed(&slot), sides).await;
    if let End::Closed = end {
        // Best effort, without waiting: TLS `close_notify` and the FIN ahead of the close.
        let _ = poll_once(poll_fn(|cx| stream.poll_shutdown(cx))).await;
    }
    drop(stream);
    handle.closed();
    let mut st = state.borrow_mut();
    if let End::Io(e) = end {
        if !slot.closing.get() {
            log::debug!("{id} I/O error: {e}");
        }
    }
    // Announces the departure unless the core closed it itself; frees everything.
    st.server.handle_close(id, Instant::now());
    st.conns.remove(&id);
    st.drain();
    if st.conns.is_empty() {
        st.idle.notify();
    }
}

/// Reads into the core as far as its read budget allows; a connection with no budget
/// (over its rate with a full inbound queue, or closing) is not read at all until the core
/// names it in `poll_readable`. At the end of the stream the core is told and the reader
/// stops; the writer flushes the core's last output.
async fn read_side(
    state: &RefCell<State>,
    id: ConnId,
    slot: &Slot,
    stream: &Stream,
) -> Result<(), End> {
    loop {
        let budget = state.borrow().server.read_budget(id);
        if budget == 0 {
            slot.reader.wait().await;
            continue;
        }
        // As `Async::read_with`, without its 168-byte future in every connection's task.
        let read = poll_fn(|cx| loop {
            match read_into_core(state, id, stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(stream.poll_readable(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                result => return Poll::Ready(result),
            }
        })
        .await;
        match read {
            // Paused meanwhile (the core closed it): back to waiting for the budget.
            Ok(None) => continue,
            Ok(Some(0)) => {
                let mut st = state.borrow_mut();
                st.server.handle_eof(id, Instant::now());
                st.drain();
                return Ok(());
            }
            Ok(Some(_)) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Io(e)),
        }
        // One read per turn: every other connection is served before this one reads again.
        yield_now().await;
    }
}

/// Reads once into the shared buffer, no more than the read budget, and hands what came
/// to the core; `None` if the budget is 0 (the core paused or closed it meanwhile).
fn read_into_core(
    state: &RefCell<State>,
    id: ConnId,
    stream: &Stream,
) -> io::Result<Option<usize>> {
    let mut st = state.borrow_mut();
    let st = &mut *st;
    let budget = st.server.read_budget(id).min(READ_BUF);
    if budget == 0 {
        return Ok(None);
    }
    let n = stream.try_read(&mut st.buf[..budget])?;
    if n > 0 {
        st.server.handle_input(id, &st.buf[..n], Instant::now());
        st.drain();
    }
    Ok(Some(n))
}

/// Writes what the core queues for the connection, reporting every write; the core says
/// when it is time to close.
async fn write_side(
    state: &RefCell<State>,
    id: ConnId,
    slot: &Slot,
    stream: &Stream,
) -> Result<(), End> {
    loop {
        let transmit = state.borrow_mut().server.take_transmit(id);
        let Some(transmit) = transmit else {
            slot.writer.wait().await;
            continue;
        };
        // Whole frames, batched by the core: one write for all of it when the socket takes it.
        let mut data = transmit.data;
        while !data.is_empty() {
            let written = poll_fn(|cx| loop {
                match stream.try_write(&data) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = ready!(stream.poll_writable(cx)) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    result => return Poll::Ready(result),
                }
            })
            .await;
            match written {
                Ok(0) => return Err(End::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    data.advance(n);
                    // TLS may hold the end of it in its last record: the core hears of
                    // bytes once they are on their way, or a close could drop them.
                    if let Err(e) = poll_fn(|cx| stream.poll_flush(cx)).await {
                        return Err(End::Io(e));
                    }
                    let mut st = state.borrow_mut();
                    st.server.handle_written(id, n);
                    // A closing connection's last write makes the core say to close it.
                    st.drain();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
    }
}

/// Resolves once the core says to close the socket now.
async fn closed(slot: &Slot) -> End {
    loop {
        if slot.done.get() {
            return End::Closed;
        }
        slot.closer.wait().await;
    }
}

/// Calls the core's `handle_timeout` whenever its next deadline passes.
async fn keepalive(state: &RefCell<State>, wake: &Notify) {
    loop {
        let next = {
            let mut st = state.borrow_mut();
            let next = st.server.poll_timeout();
            st.timer_at = next;
            next
        };
        match next {
            Some(at) => {
                let sleep = async {
                    Timer::at(at).await;
                };
                or(sleep, wake.wait()).await;
            }
            None => wake.wait().await,
        }
        let now = Instant::now();
        let mut st = state.borrow_mut();
        if st.server.poll_timeout().is_some_and(|at| at <= now) {
            st.server.handle_timeout(now);
            st.drain();
        }
    }
}

/// Refuses a connection in its protocol, told by its first byte, within `hello_timeout`;
/// then closes it within `close_linger`. The core keeps nothing of it.
async fn refuse(
    state: Rc<RefCell<State>>,
    stream: Stream,
    refused: Refused,
    (hello_timeout, linger): (Duration, Duration),
) {
    let mut first = [0u8; 512];
    let read = async {
        match read_some(&stream, &mut first).await {
            Ok(n) if n > 0 => Some(first[0]),
            _ => None,
        }
    };
    let timeout = async {
        Timer::after(hello_timeout).await;
        None
    };
    if let Some(byte) = or(read, timeout).await {
        let reply = refused.reply(byte);
        let send = async {
            let mut data = &reply[..];
            while !data.is_empty() {
                let n = poll_fn(|cx| loop {
                    match stream.try_write(data) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if let Err(e) = ready!(stream.poll_writable(cx)) {
                                return Poll::Ready(Err(e));
                            }
                        }
                        result => return Poll::Ready(result),
                    }
                })
                .await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                data = &data[n..];
            }
            poll_fn(|cx| stream.poll_shutdown(cx)).await?;
            // Reads to the peer's close, so that closing does not reset the connection and
            // lose the refusal.
            while read_some(&stream, &mut first).await? > 0 {}
            Ok::<(), io::Error>(())
        };
        let timeout = async {
            Timer::after(linger).await;
            Ok(())
        };
        let _ = or(send, timeout).await;
    }
    drop(stream);
    state.borrow_mut().refusing -= 1;
}

/// Reads once, waiting until something or the end comes.
async fn read_some(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| loop {
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Err(e) = ready!(stream.poll_readable(cx)) {
                    return Poll::Ready(Err(e));
                }
            }
            result => return Poll::Ready(result),
        }
    })
    .await
}
