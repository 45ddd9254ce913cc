//! Accepting: one loop per listener, all in one task, and the refusal of a connection the
//! core does not take.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future::{or, poll_fn, yield_now};
use futures_lite::ready;
use switchboard_core::{ConnId, Refused};

use super::conn::connection;
use super::{Listener, Runtime, Slot, Socket, State};
use crate::tls::{Stream, TlsConfig};
use crate::Handle;

/// Pause after an accept error that means resources ran out (too many open files, no
/// memory): accepting again at once would only fail again, in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Most refused connections waiting at once for their first byte (to be refused in their
/// protocol); past it a refused connection is closed at once, so refusals cannot use up
/// the open-file limit.
const MAX_REFUSING: usize = 256;

/// Runs every listener's accept loop in this one task (one waker then serves
/// `Handle::stopped`) until shutdown; the listeners are closed on return.
pub(super) async fn accept_all<R: Runtime>(
    listeners: Vec<(R::Listener, Option<TlsConfig>)>,
    state: &Rc<RefCell<State<R::Socket>>>,
    handle: &Handle,
    runtime: &R,
) {
    let mut running: Vec<Pin<Box<_>>> = listeners
        .into_iter()
        .map(|(listener, tls)| Box::pin(accept_loop(listener, tls, state, handle, runtime)))
        .collect();
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

/// Accepts connections until shutdown.
async fn accept_loop<R: Runtime>(
    listener: R::Listener,
    tls: Option<TlsConfig>,
    state: &Rc<RefCell<State<R::Socket>>>,
    handle: &Handle,
    runtime: &R,
) {
    loop {
        let accept = async { Some(poll_fn(|cx| listener.poll_accept(cx)).await) };
        let accepted = or(accept, async {
            handle.stopped().await;
            None
        })
        .await;
        let (socket, peer) = match accepted {
            None => return,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) if is_transient(&e) => {
                log::warn!("accept failed: {e}");
                continue;
            }
            Some(Err(e)) => {
                let pause = ACCEPT_BACKOFF.as_millis();
                log::warn!("accept failed: {e}; pausing {pause} ms");
                let backoff = R::sleep_until(Instant::now() + ACCEPT_BACKOFF);
                or(backoff, handle.stopped()).await;
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        let stream = match &tls {
            None => Stream::Plain(socket),
            Some(tls) => match Stream::tls(socket, tls) {
                Ok(stream) => stream,
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    continue;
                }
            },
        };
        if let Some((id, slot)) = open(state, peer, stream, runtime) {
            handle.opened();
            log::info!("{id} connected from {peer}");
            runtime.spawn(connection(state.clone(), id, slot));
        }
        // Under a stream of connections `accept` is always ready: this lets the other
        // listeners and the connections run between two accepts.
        yield_now().await;
    }
}

/// Opens a connection in the core, or has it refused in its protocol.
fn open<R: Runtime>(
    state: &Rc<RefCell<State<R::Socket>>>,
    peer: SocketAddr,
    stream: Stream<R::Socket>,
    runtime: &R,
) -> Option<(ConnId, Rc<Slot<R::Socket>>)> {
    let mut st = state.borrow_mut();
    let id = match st.server.open_from(peer.ip(), Instant::now()) {
        Ok(id) => id,
        Err(refused) => {
            if st.refusing < MAX_REFUSING {
                st.refusing += 1;
                log::info!("{peer} refused: {refused}");
                let config = st.server.config();
                let wait = (config.hello_timeout, config.close_linger);
                runtime.spawn(refuse::<R>(state.clone(), stream, refused, wait));
            } else {
                log::info!("{peer} refused at once: {refused}");
            }
            return None;
        }
    };
    let slot = Rc::new(Slot::new(stream));
    st.conns.insert(id, slot.clone());
    // open_from() may have made the core's next deadline earlier.
    st.drain();
    Some((id, slot))
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

/// Refuses a connection in its protocol, told by its first byte, within `hello_timeout`;
/// then closes it within `close_linger`. The core keeps nothing of it.
async fn refuse<R: Runtime>(
    state: Rc<RefCell<State<R::Socket>>>,
    stream: Stream<R::Socket>,
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
        R::sleep_until(Instant::now() + hello_timeout).await;
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
            R::sleep_until(Instant::now() + linger).await;
            Ok(())
        };
        let _ = or(send, timeout).await;
    }
    drop(stream);
    state.borrow_mut().refusing -= 1;
}

/// Reads once, waiting until something or the end comes.
async fn read_some<S: Socket>(stream: &Stream<S>, buf: &mut [u8]) -> io::Result<usize> {
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
