//! TLS for the blocking adapter: a connection's stream is plain TCP or rustls over TCP.
//!
//! rustls is sans-IO; the connection's reader and writer threads share its
//! `ServerConnection` behind a mutex. The reader reads the socket without holding it (so a
//! silent peer never blocks the writer), then feeds rustls and answers the handshake; the
//! writer encrypts and writes under it. The handshake runs on the connection's reader
//! thread, never the accept thread, and one that stalls is closed by the core's hello
//! deadline like a silent hello (the core sees no input from it).
//!
//! Crypto provider: ring rather than aws-lc-rs. It builds with only a C compiler (no cmake
//! or NASM), builds faster, and runs on every target this project does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustls::ServerConnection;
pub use switchboard_tls::TlsConfig;

/// Largest plaintext handed to rustls at once: one TLS record.
const RECORD: usize = 16 * 1024;

/// Bytes read off the socket at once before rustls decrypts them: less than rustls'
/// 16 KiB limit of undelivered plaintext, so one read can never overflow it.
const RAW_READ: usize = 8 * 1024;

/// A connection's byte stream, shared by its reader and writer threads.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// rustls over a blocking TCP socket.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: Mutex<ServerConnection>,
    /// The reader's raw buffer (only the reader thread takes it).
    raw: Mutex<Box<[u8]>>,
}

impl Stream {
    /// A TLS server stream over `tcp`, with the configuration in force.
    pub fn tls(tcp: TcpStream, config: &TlsConfig) -> Result<Stream, rustls::Error> {
        let tls = ServerConnection::new(config.current())?;
        Ok(Stream::Tls(Box::new(TlsStream {
            tcp,
            tls: Mutex::new(tls),
            raw: Mutex::new(vec![0; RAW_READ].into_boxed_slice()),
        })))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(s) => &s.tcp,
        }
    }

    /// Whether it speaks TLS (written only by its writer thread).
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Sends what the socket takes now, without waiting: `WouldBlock` if nothing (always
    /// for TLS, and where a send that does not wait is not available).
    pub fn send_now(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            // A non-blocking send on a blocking socket: no other thread's read or write of
            // it changes mode. MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Stream::Plain(tcp) => socket2::SockRef::from(tcp)
                .send_with_flags(data, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Reads, waiting for data; 0 at end of stream. For TLS, a peer that does not speak
    /// TLS fails with `InvalidData`.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = match self {
            Stream::Plain(tcp) => return (&*tcp).read(buf),
            Stream::Tls(s) => s,
        };
        loop {
            {
                let mut tls = s.lock();
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed TCP without close_notify: an end like any other here.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            let mut raw = s.raw.lock().unwrap_or_else(PoisonError::into_inner);
            // Not holding the rustls lock: the writer goes on meanwhile.
            let n = (&s.tcp).read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut tls = s.lock();
            // Then the handshake's replies.
            s.take(&mut tls, &raw[..n])?;
        }
    }

    /// Writes some of `data`, waiting for the socket; for TLS the count is plaintext
    /// taken, sent before this returns.
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        let s = match self {
            Stream::Plain(tcp) => return (&*tcp).write(data),
            Stream::Tls(s) => s,
        };
        let mut tls = s.lock();
        let n = tls.writer().write(&data[..data.len().min(RECORD)])?;
        if n == 0 && !data.is_empty() {
            // Only before the handshake ends, past rustls' 64 KiB buffer: the core sends a
            // client nothing before it has spoken, so this means a broken peer.
            return Err(io::Error::other(
                "output buffer full before the TLS handshake",
            ));
        }
        s.send_queued(&mut tls)?;
        // Plaintext written before the handshake ended waits in rustls for its end. The
        // core writes to a client that has not spoken only to close it (shutdown, hello
        // deadline), when the reader has stopped: the writer reads the client's last
        // handshake messages itself. Teardown's TCP shutdown ends a read that never ends.
        let mut buf = [0u8; 4096];
        while tls.is_handshaking() {
            let got = (&s.tcp).read(&mut buf)?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            s.take(&mut tls, &buf[..got])?;
        }
        Ok(n)
    }

    /// Shuts the socket down. Closing the sending side sends TLS `close_notify` first;
    /// `Both` (tearing down, maybe while a thread is stuck writing) touches only TCP.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let (Stream::Tls(s), Shutdown::Write) = (self, how) {
            let mut tls = s.lock();
            tls.send_close_notify();
            let _ = s.send_queued(&mut tls);
        }
        self.tcp().shutdown(how)
    }
}

impl TlsStream {
    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        self.tls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands bytes read off the socket to rustls and sends what it answers. A peer that
    /// does not speak TLS fails with `InvalidData`, after the alert that says why.
    fn take(&self, tls: &mut ServerConnection, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            if tls.read_tls(&mut input)? == 0 {
                return Err(io::Error::other("TLS input not taken"));
            }
            if let Err(e) = tls.process_new_packets() {
                // rustls has queued an alert saying why; best effort.
                let _ = self.send_queued(tls);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        self.send_queued(tls)
    }

    /// Writes every queued TLS record, waiting for the socket.
    fn send_queued(&self, tls: &mut ServerConnection) -> io::Result<()> {
        let mut sock = &self.tcp;
        while tls.wants_write() {
            match tls.write_tls(&mut sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
