//! The connection to the server, over plain `std::net`, in TLS when asked.
//!
//! TLS is rustls' client state machine shared by the reader thread and the writer (the
//! main loop) behind a mutex: the reader reads the socket without holding it, so a quiet
//! server never blocks typing. Roots: the system's trust store (rustls-native-certs, the
//! roots the machine's administrator manages), or one `--ca` file for a self-signed server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::Input;

/// How long to try each address of the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may block before the server counts as gone: a server that stops
/// reading must not freeze the keyboard.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings: which certificates to trust.
pub fn tls_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("--ca {}: no certificate in it", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no trusted certificates found on this system; give --ca PEM".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection: a socket, with TLS when asked; clones share both.
pub struct Conn {
    tcp: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl Conn {
    /// Connects to `addr` (`host:port`), with TLS under `tls`, handshake done (so that a
    /// certificate error is reported here, in one line).
    pub fn connect(addr: &str, tls: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
        let mut tcp = connect(addr)?;
        let Some(config) = tls else {
            return Ok(Conn { tcp, tls: None });
        };
        let host = match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(config.clone(), name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| {
                // rustls says what is wrong with the certificate in its message.
                io::Error::new(e.kind(), format!("TLS: {e}"))
            })?;
        }
        tcp.set_read_timeout(None)?;
        Ok(Conn {
            tcp,
            tls: Some(Arc::new(Mutex::new(conn))),
        })
    }

    /// Another handle on the same connection, for the reader thread.
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(Conn {
            tcp: self.tcp.try_clone()?,
            tls: self.tls.clone(),
        })
    }

    /// Closes the connection (TLS `close_notify` first, best effort).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            if let Ok(mut tls) = tls.try_lock() {
                tls.send_close_notify();
                let _ = tls.write_tls(&mut &self.tcp);
            }
        }
        self.tcp.shutdown(how)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.read(buf);
        };
        let mut raw = [0u8; 8 * 1024];
        loop {
            {
                let mut tls = tls.lock().unwrap_or_else(PoisonError::into_inner);
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            // Not holding the lock: typing goes on meanwhile.
            let n = self.tcp.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut tls = tls.lock().unwrap_or_else(PoisonError::into_inner);
            let mut input = &raw[..n];
            while !input.is_empty() {
                if tls.read_tls(&mut input)? == 0 {
                    return Err(io::Error::other("TLS input not taken"));
                }
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
            }
            while tls.wants_write() {
                tls.write_tls(&mut &self.tcp)?;
            }
        }
    }
}

impl Write for Conn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.write(data);
        };
        let mut tls = tls.lock().unwrap_or_else(PoisonError::into_inner);
        let n = tls.writer().write(data)?;
        while tls.wants_write() {
            tls.write_tls(&mut &self.tcp)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects to `addr` (`host:port`), trying each address it resolves to.
fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last_error = None;
    for target in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Chat lines are small and should leave at once.
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
    }))
}

/// Starts a thread that forwards what the server sends into `tx`, ending with
/// [`Input::NetClosed`]; every input carries `conn`, the connection's number.
pub fn spawn_reader(mut stream: Conn, conn: u64, tx: Sender<Input>) {
    thread::spawn(move || {
        let mut buf = vec![0; 16 * 1024];
        loop {
            let input = match stream.read(&mut buf) {
                Ok(0) => Input::NetClosed(conn, None),
                Ok(n) => Input::Net(conn, buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Input::NetClosed(conn, Some(e)),
            };
            let stop = matches!(input, Input::NetClosed(..));
            if tx.send(input).is_err() || stop {
                return;
            }
        }
    });
}
