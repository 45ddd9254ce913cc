//! The sockets and timer of `async-io`, the reactor under both smol and async-std.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::ready;
use switchboard_driver::{Listener, Socket};

/// An `async-io` TCP socket, as the driver reads and writes it.
pub struct AsyncSocket(Async<TcpStream>);

/// An `async-io` listening socket.
pub struct AsyncListener(Async<TcpListener>);

impl AsyncListener {
    /// Registers a bound, listening socket with `async-io`.
    pub(crate) fn new(listener: TcpListener) -> io::Result<AsyncListener> {
        Async::new(listener).map(AsyncListener)
    }
}

impl Socket for AsyncSocket {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_ref().read(buf)
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        self.0.get_ref().write(data)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.get_ref().set_nodelay(on)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.0.get_ref().shutdown(Shutdown::Write)
    }
}

impl Listener for AsyncListener {
    type Socket = AsyncSocket;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(AsyncSocket, SocketAddr)>> {
        loop {
            match self.0.get_ref().accept() {
                Ok((stream, peer)) => {
                    return Poll::Ready(Async::new(stream).map(|s| (AsyncSocket(s), peer)))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// `async-io`'s timer.
pub(crate) async fn sleep_until(at: Instant) {
    Timer::at(at).await;
}
