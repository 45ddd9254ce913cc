//! TLS for the conformance clients: a certificate made at run time (no key is committed),
//! and a stream that is plain TCP or rustls, chosen by the address connected to.
//!
//! The scenarios connect to `server.addr` without knowing the transport: a runtime started
//! with TLS registers its listeners' addresses here, and a client connecting to one of them
//! speaks TLS.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

/// The test certificate: server and client configurations that trust each other.
pub struct Certs {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
    /// The certificate, PEM, for other TLS clients to trust (tests/tls_tools.rs).
    #[allow(dead_code)]
    pub pem: String,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made once per process.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(make_certs)
}

/// A new self-signed certificate for `localhost` and 127.0.0.1.
pub fn make_certs() -> Certs {
    {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("certificate parameters");
        let cert = params.self_signed(&key).expect("self-sign");
        let pem = cert.pem();
        let cert_der: CertificateDer<'static> = cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(cert_der).expect("trust the test certificate");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Certs {
            server: Arc::new(server),
            client: Arc::new(client),
            pem,
        }
    }
}

fn tls_addrs() -> &'static Mutex<HashSet<SocketAddr>> {
    static ADDRS: OnceLock<Mutex<HashSet<SocketAddr>>> = OnceLock::new();
    ADDRS.get_or_init(Mutex::default)
}

/// Marks `addr` as a TLS listener: clients connecting to it speak TLS.
pub fn register(addr: SocketAddr) {
    tls_addrs().lock().unwrap().insert(addr);
}

/// Forgets a closed TLS listener's address.
pub fn unregister(addr: SocketAddr) {
    tls_addrs().lock().unwrap().remove(&addr);
}

/// Whether clients connecting to `addr` speak TLS.
pub fn is_tls(addr: SocketAddr) -> bool {
    tls_addrs().lock().unwrap().contains(&addr)
}

/// A client's connection: plain TCP or TLS, by the address.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    /// Connects to `addr` (from 127.0.0.1), in TLS if it is a TLS listener.
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        Conn::over(TcpStream::connect(addr)?, addr)
    }

    /// Wraps a connected socket, in TLS if `addr` is a TLS listener, handshake done (a
    /// connected client that has sent nothing yet is as on plain TCP: one the server can
    /// answer).
    pub fn over(mut tcp: TcpStream, addr: SocketAddr) -> io::Result<Conn> {
        if !is_tls(addr) {
            return Ok(Conn::Plain(tcp));
        }
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let mut tls =
            ClientConnection::new(certs().client.clone(), name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp)?;
        }
        Ok(Conn::Tls(Box::new(StreamOwned::new(tls, tcp))))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(data),
            Conn::Tls(s) => s.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
