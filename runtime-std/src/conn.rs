//! The connection threads: accepting, reading, writing what would block, refusing.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use switchboard_core::{ConnId, Refused};

use crate::shared::{Entry, Shared, Wakes, Writing};
use crate::tls::{Stream, TlsConfig};

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

/// Connections the system can give threads to, leaving room for everything else: a thread
/// that cannot get its mappings aborts the process inside std, so the server refuses
/// connections before `vm.max_map_count` or `kernel.threads-max` is reached.
pub(crate) fn thread_budget() -> usize {
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

/// Accepts connections until shutdown.
pub(crate) fn accept_loop(listener: &TcpListener, tls: Option<TlsConfig>, shared: &Arc<Shared>) {
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

pub(crate) fn spawn(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<thread::JoinHandle<()>> {
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
pub(crate) fn write_side(shared: &Arc<Shared>, id: ConnId, stream: &Stream, wakes: &Wakes) {
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
