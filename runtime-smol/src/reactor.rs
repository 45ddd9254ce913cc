//! The sockets and timer of `async-io`, the reactor under both smol and async-std.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::ready;

use crate::driver::{Listener, Socket};

impl Socket for Async<TcpStream> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.get_ref().read(buf)
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        self.get_ref().write(data)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Async::poll_readable(self, cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Async::poll_writable(self, cx)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.get_ref().set_nodelay(on)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.get_ref().shutdown(Shutdown::Write)
    }
}

impl Listener for Async<TcpListener> {
    type Socket = Async<TcpStream>;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Socket, SocketAddr)>> {
        loop {
            match self.get_ref().accept() {
                Ok((stream, peer)) => return Poll::Ready(Async::new(stream).map(|s| (s, peer))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.poll_readable(cx))?;
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
