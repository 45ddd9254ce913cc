//! The server builder: its listeners, configuration, history and cluster, before it runs.

use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use switchboard_bus::Cluster;
use switchboard_core::Config;
use switchboard_store::History;

use super::{BlockOn, Runtime};
use crate::tls::TlsConfig;
use crate::Handle;

/// A chat server bound to its listening sockets, ready to run on runtime `R`.
pub struct Server<R> {
    /// The first is the one bound by `bind`; all serve the same core. Those with a TLS
    /// configuration speak TLS.
    listeners: Vec<(TcpListener, Option<TlsConfig>)>,
    config: Config,
    handle: Handle,
    history: Option<History>,
    cluster: Option<Cluster>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Server<R> {
    /// Binds the listening socket; serving starts with [`Server::serve`] or [`Server::run_blocking`].
    ///
    /// A `config` that `Config::validate` refuses is an `InvalidInput` error.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        // Limits that cannot work together are refused before anything is bound.
        validate(&config)?;
        Self::from_listener(TcpListener::bind(addr)?, config)
    }

    /// Serves on a socket already bound and listening (with SO_REUSEPORT, say).
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Self> {
        validate(&config)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listeners: vec![(listener, None)],
            config,
            handle: Handle::new(),
            history: None,
            cluster: None,
            runtime: PhantomData,
        })
    }

    /// The address bound by [`Server::bind`] (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].0.local_addr()
    }

    /// Also accepts connections on `addr` (an IRC port, say), into the same rooms: the
    /// protocol is told per connection. Returns the address actually bound.
    pub fn add_listener(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, None)
    }

    /// Also accepts TLS connections on `addr`, into the same rooms, with `tls`'s
    /// certificate (replaceable while serving). Returns the address actually bound.
    pub fn add_tls_listener(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: TlsConfig,
    ) -> io::Result<SocketAddr> {
        self.add_tcp_listener(TcpListener::bind(addr)?, Some(tls))
    }

    /// Also accepts connections on a socket already bound and listening, speaking TLS with
    /// `tls` if given. Returns its address.
    pub fn add_tcp_listener(
        &mut self,
        listener: TcpListener,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        self.listeners.push((listener, tls));
        Ok(local)
    }

    /// A handle that shuts the server down from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Keeps room history in `history`'s store (run on a thread of its own).
    pub fn with_history(mut self, history: History) -> Self {
        self.history = Some(history);
        self
    }

    /// Joins a cluster: shares chat with the other nodes on `cluster`'s Redis (through
    /// threads of its own).
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Serves on `runtime` until [`Handle::shutdown`], then says bye to every client and
    /// returns once every bye is written (each within `close_linger`). Must run on the
    /// thread `runtime` spawns onto.
    pub async fn serve(self, runtime: &R) {
        super::serve(self, runtime).await
    }

    /// Runs the server on the calling thread until [`Handle::shutdown`], then says bye to
    /// every client and returns once every bye is written (each within `close_linger`).
    pub fn run_blocking(self)
    where
        R: BlockOn,
    {
        R::block_on(self)
    }

    /// What serving takes.
    pub(super) fn into_parts(self) -> Parts {
        Parts {
            listeners: self.listeners,
            config: self.config,
            handle: self.handle,
            history: self.history,
            cluster: self.cluster,
        }
    }
}

/// A [`Server`]'s parts, as `serve` takes them.
pub(super) struct Parts {
    pub listeners: Vec<(TcpListener, Option<TlsConfig>)>,
    pub config: Config,
    pub handle: Handle,
    pub history: Option<History>,
    pub cluster: Option<Cluster>,
}

/// `Config::validate` as an I/O error.
fn validate(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
