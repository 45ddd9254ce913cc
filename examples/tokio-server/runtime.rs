//! The driver's [`Runtime`] on tokio: a current-thread runtime with a `LocalSet`.
//!
//! The whole adapter is these few impls: spawning, a timer and tokio's sockets, whose
//! `try_read`/`try_write` and `poll_*_ready` are what the driver asks of a socket.
//! Shared by the example and the conformance tests (which run every scenario on it).

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll};
use std::time::Instant;

use switchboard::driver::{Listener, Runtime, Server, Socket};

/// tokio as the driver's runtime; tasks are spawned on the current `LocalSet`.
pub struct Tokio;

/// A tokio socket (a newtype: neither the trait nor the type is this crate's).
pub struct TokioSocket(tokio::net::TcpStream);

/// A tokio listener.
pub struct TokioListener(tokio::net::TcpListener);

impl Runtime for Tokio {
    type Socket = TokioSocket;
    type Listener = TokioListener;

    fn listener(&self, listener: std::net::TcpListener) -> io::Result<TokioListener> {
        tokio::net::TcpListener::from_std(listener).map(TokioListener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        // Dropping the handle detaches the task.
        drop(tokio::task::spawn_local(task));
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static {
        tokio::time::sleep_until(at.into())
    }
}

impl Socket for TokioSocket {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        self.0.try_write(data)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_ready(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_write_ready(cx)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.set_nodelay(on)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        // tokio's own shutdown is an async write-half call; the socket's is immediate.
        socket2::SockRef::from(&self.0).shutdown(Shutdown::Write)
    }
}

impl Listener for TokioListener {
    type Socket = TokioSocket;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TokioSocket, SocketAddr)>> {
        self.0
            .poll_accept(cx)
            .map_ok(|(socket, peer)| (TokioSocket(socket), peer))
    }
}

/// Runs `server` on a tokio runtime on the current thread until it is shut down.
pub fn run_blocking(server: Server<Tokio>) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    tokio::task::LocalSet::new().block_on(&runtime, server.serve(&Tokio));
    Ok(())
}
