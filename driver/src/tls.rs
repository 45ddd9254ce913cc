//! TLS for the async adapter: a connection's stream is plain TCP or rustls over TCP.
//!
//! rustls is itself sans-IO (`read_tls`, `process_new_packets`, `write_tls`), so the adapter
//! drives it on the same non-blocking socket, from the connection's own task: the reader
//! and writer of one connection share its `ServerConnection` (both run in one task, never
//! borrowing it across an await), the handshake happens on the first reads and never
//! blocks the accept loop or other connections, and a handshake that stalls is closed by the
//! core's hello deadline like a silent hello (the core sees no input from it).
//!
//! Crypto provider: ring rather than aws-lc-rs. It builds with only a C compiler (no cmake
//! or NASM), builds faster, and runs on every target this project does.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::task::{Context, Poll};

use futures_lite::ready;
use rustls::ServerConnection;
pub use switchboard_tls::TlsConfig;

use crate::Socket;

/// Largest plaintext handed to rustls at once: one TLS record.
const RECORD: usize = 16 * 1024;

/// A connection's byte stream: what the connection task reads and writes.
pub(crate) enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

/// rustls over a non-blocking TCP socket.
pub(crate) struct TlsStream<S> {
    tcp: S,
    tls: RefCell<ServerConnection>,
    /// `close_notify` has been queued.
    notified: Cell<bool>,
}

impl<S: Socket> Stream<S> {
    /// A TLS server stream over `tcp`, with the configuration in force.
    pub fn tls(tcp: S, config: &TlsConfig) -> Result<Stream<S>, rustls::Error> {
        let tls = ServerConnection::new(config.current())?;
        Ok(Stream::Tls(Box::new(TlsStream {
            tcp,
            tls: RefCell::new(tls),
            notified: Cell::new(false),
        })))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &S {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(s) => &s.tcp,
        }
    }

    /// Whether it is plain TCP, whose writes need no flush.
    pub fn is_plain(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is; 0 at end of
    /// stream. For TLS, it first sends what rustls has queued (handshake messages), and a
    /// peer that does not speak TLS fails with `InvalidData`.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = match self {
            Stream::Plain(tcp) => return tcp.try_read(buf),
            Stream::Tls(s) => s,
        };
        let mut tls = s.tls.borrow_mut();
        loop {
            s.send_queued(&mut tls)?;
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed TCP without close_notify: an end like any other for chat.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut Io(&s.tcp))? == 0 {
                return Ok(0);
            }
            if let Err(e) = tls.process_new_packets() {
                // rustls has queued an alert saying why; best effort.
                let _ = s.send_queued(&mut tls);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Ready when [`Stream::try_read`] may make progress.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = match self {
            Stream::Plain(tcp) => return tcp.poll_readable(cx),
            Stream::Tls(s) => s,
        };
        // Queued TLS output (a handshake reply) is sent by the next try_read: waiting on
        // writability too keeps a full send buffer from stalling the handshake.
        let writable = if s.tls.borrow().wants_write() {
            s.tcp.poll_writable(cx)
        } else {
            Poll::Pending
        };
        match (s.tcp.poll_readable(cx), writable) {
            (Poll::Ready(r), _) | (_, Poll::Ready(r)) => Poll::Ready(r),
            _ => Poll::Pending,
        }
    }

    /// Writes some of `data` without waiting: `WouldBlock` when the socket is full. For TLS
    /// the count is plaintext taken by rustls; it takes none while earlier records are
    /// still unsent, so at most one record waits in rustls ([`Stream::poll_flush`] sends it).
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        let s = match self {
            Stream::Plain(tcp) => return tcp.try_write(data),
            Stream::Tls(s) => s,
        };
        let mut tls = s.tls.borrow_mut();
        s.send_queued(&mut tls)?;
        if tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write(&data[..data.len().min(RECORD)])?;
        if n == 0 && !data.is_empty() {
            // Only before the handshake ends, past rustls' 64 KiB buffer: the core sends a
            // client nothing before it has spoken, so this means a broken peer.
            return Err(io::Error::other(
                "output buffer full before the TLS handshake",
            ));
        }
        s.send_queued(&mut tls)?;
        Ok(n)
    }

    /// Ready when [`Stream::try_write`] may make progress.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_writable(cx)
    }

    /// Sends everything TLS has queued (plain TCP has nothing queued). Plaintext written
    /// before the handshake ended waits in rustls for its end, so this also finishes the
    /// handshake, reading the client's last handshake messages itself: when the core
    /// closes a client that has not spoken (shutdown, hello deadline), the reader has
    /// stopped and would never read them.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = match self {
            Stream::Plain(_) => return Poll::Ready(Ok(())),
            Stream::Tls(s) => s,
        };
        loop {
            let mut tls = s.tls.borrow_mut();
            s.send_queued(&mut tls)?;
            if tls.is_handshaking() {
                match tls.read_tls(&mut Io(&s.tcp)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                    Ok(_) => {
                        if let Err(e) = tls.process_new_packets() {
                            // rustls has queued an alert saying why; best effort.
                            let _ = s.send_queued(&mut tls);
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
                let wants_write = tls.wants_write();
                drop(tls);
                if wants_write && s.tcp.poll_writable(cx).is_ready() {
                    continue;
                }
                ready!(s.tcp.poll_readable(cx))?;
                continue;
            }
            if !tls.wants_write() {
                return Poll::Ready(Ok(()));
            }
            drop(tls);
            ready!(s.tcp.poll_writable(cx))?;
        }
    }

    /// Ends the sending side: TLS `close_notify` first, then the TCP half-close.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Stream::Tls(s) = self {
            if !s.notified.replace(true) {
                s.tls.borrow_mut().send_close_notify();
            }
            ready!(self.poll_flush(cx))?;
        }
        Poll::Ready(self.tcp().shutdown_write())
    }
}

impl<S: Socket> TlsStream<S> {
    /// Writes queued TLS records until done or the socket is full (not an error here).
    fn send_queued(&self, tls: &mut ServerConnection) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(&mut Io(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A socket as `std::io::Read` and `Write` for rustls: its non-blocking reads and writes.
struct Io<'a, S>(&'a S);

impl<S: Socket> Read for Io<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl<S: Socket> Write for Io<'_, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.try_write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
