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

use futures_lite::future::{or, poll_fn, try_zip, yield_now};
use futures_lite::ready;
use switchboard_core::{Config, ConnId, Event, Refused, Server};

use crate::notify::Notify;
use crate::tls::{Stream, TlsConfig};
use crate::Handle;

/// Size of the one read buffer all connections share.
const READ_BUF: usize = 64 * 1024;

/// Pause after an accept error that means resources ran out (too many open files, no
/// memory): accepting again at once would only fail again, in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Most refused connections waiting at once for their first byte (to be refused in their
/// protocol); past it a refused connection is closed at once, so refusals cannot use up
/// the open-file limit.
const MAX_REFUSING: usize = 256;

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
}

impl Bound {
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Bound> {
        let listener = Async::new(TcpListener::bind(addr)?)?;
        Ok(Bound {
            listeners: vec![(listener, None)],
            config,
            handle: Handle::new(),
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
        let listener = Async::new(TcpListener::bind(addr)?)?;
        let local = listener.get_ref().local_addr()?;
        self.listeners.push((listener, tls));
        Ok(local)
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

/// Everything the tasks of one server share, behind one `RefCell`.
struct State {
    server: Server,
    /// The adapter's side of each open connection.
    conns: HashMap<ConnId, Rc<Slot>>,
    /// The one read buffer: a read's bytes are handed to the core before anyone reads again.
    buf: Box<[u8]>,
    linger: Duration,
    /// The deadline the keepalive task sleeps until.
    timer_at: Option<Instant>,
    /// Wakes the keepalive task when the core's next deadline moves earlier.
    timer: Rc<Notify>,
    /// Woken when the last connection is gone.
    idle: Rc<Notify>,
    /// The server is shutting down: a close ends once the bye is written, without waiting
    /// for the peer to close its side, so that shutdown takes no longer than the flush.
    shutting_down: bool,
    /// Refused connections waiting for their first byte.
    refusing: usize,
}

/// The adapter's side of one connection, shared by its task and the state.
#[derive(Default)]
struct Slot {
    /// The peer's address, for log lines.
    peer: Option<SocketAddr>,
    /// Wakes the writer: output is queued, or the connection is closing.
    writer: Notify,
    /// Wakes the linger watch when the core decides to close the connection.
    closer: Notify,
    /// When the core decided to close it, the moment the close must be over.
    close_at: Cell<Option<Instant>>,
}

/// Why a connection's task ended.
enum End {
    /// Both sides finished a close the core asked for.
    Done,
    /// The bye is written and the server is shutting down.
    Flushed,
    /// The peer closed its side first.
    PeerGone,
    /// The close took longer than `close_linger`.
    Linger,
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
        while let Some(id) = self.server.poll_close() {
            if let Some(slot) = self.conns.get(&id) {
                if slot.close_at.get().is_none() {
                    slot.close_at.set(Some(Instant::now() + self.linger));
                }
                slot.writer.notify();
                slot.closer.notify();
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
                Event::Closed { conn, code, reason } => {
                    log::info!("{conn} closed: {code}: {reason}")
                }
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
    } = bound;
    let timer = Rc::new(Notify::default());
    let idle = Rc::new(Notify::default());
    let state = Rc::new(RefCell::new(State {
        linger: config.close_linger,
        server: Server::new(config),
        conns: HashMap::new(),
        buf: vec![0; READ_BUF].into_boxed_slice(),
        timer_at: None,
        timer: timer.clone(),
        idle: idle.clone(),
        shutting_down: false,
        refusing: 0,
    }));
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
            st.shutting_down = true;
            st.server.shutdown(Instant::now());
            st.drain();
        }
        // Every connection task ends within its close linger.
        while !state.borrow().conns.is_empty() {
            idle.wait().await;
        }
    };
    // The keepalive timer runs beside the accept loop, so it ends with it.
    or(main, keepalive(&state, &timer)).await;
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
                        // open() may have made the core's next deadline earlier.
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

/// One connection's task: reader and writer side by side, bounded by the close linger.
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
            Ok(_) => End::Done,
            Err(end) => end,
        }
    };
    // The linger watch goes first so that it wins once the deadline has passed.
    let end = or(linger(&slot), sides).await;
    drop(stream);
    handle.closed();
    let mut st = state.borrow_mut();
    match end {
        End::Io(e) if slot.close_at.get().is_none() => log::debug!("{id} I/O error: {e}"),
        End::Linger => log::debug!("{id} close linger expired"),
        _ => {}
    }
    // Announces the departure unless the core closed it itself; frees everything.
    st.server.handle_close(id, Instant::now());
    st.conns.remove(&id);
    st.drain();
    if st.conns.is_empty() {
        st.idle.notify();
    }
}

/// Reads into the core until the peer closes. Input during a close is still read (the core
/// ignores it) so that closing the socket does not reset the connection and lose the bye.
async fn read_side(
    state: &RefCell<State>,
    id: ConnId,
    slot: &Slot,
    stream: &Stream,
) -> Result<(), End> {
    loop {
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
            Ok(0) if slot.close_at.get().is_some() => return Ok(()),
            Ok(0) => return Err(End::PeerGone),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Io(e)),
        }
        // Lets other connections run even if this peer never stops sending.
        yield_now().await;
    }
}

/// Reads once into the shared buffer and hands what came to the core.
fn read_into_core(state: &RefCell<State>, id: ConnId, stream: &Stream) -> io::Result<usize> {
    let mut st = state.borrow_mut();
    let st = &mut *st;
    let n = stream.try_read(&mut st.buf)?;
    if n > 0 {
        // Decodes every whole frame of these bytes before returning.
        st.server.handle_input(id, &st.buf[..n], Instant::now());
        st.drain();
    }
    Ok(n)
}

/// Writes what the core queues for the connection; once it is closing and all is written
/// (the bye last), shuts down the sending half.
async fn write_side(
    state: &RefCell<State>,
    id: ConnId,
    slot: &Slot,
    stream: &Stream,
) -> Result<(), End> {
    loop {
        let transmit = state.borrow_mut().server.take_transmit(id);
        let Some(transmit) = transmit else {
            if slot.close_at.get().is_some() {
                // The peer may already be gone; the reader or the linger ends the task then.
                let _ = poll_fn(|cx| stream.poll_shutdown(cx)).await;
                if state.borrow().shutting_down {
                    // Ends the task without waiting for the reader.
                    return Err(End::Flushed);
                }
                return Ok(());
            }
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
                    state.borrow_mut().server.handle_written(id, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
        // TLS may hold the end of it in its last record.
        if let Err(e) = poll_fn(|cx| stream.poll_flush(cx)).await {
            return Err(End::Io(e));
        }
    }
}

/// Resolves `close_linger` after the core decided to close the connection.
async fn linger(slot: &Slot) -> End {
    loop {
        if let Some(at) = slot.close_at.get() {
            Timer::at(at).await;
            return End::Linger;
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
