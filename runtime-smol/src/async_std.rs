//! The server on async-std.
//!
//! async-std is discontinued upstream (advisory RUSTSEC-2025-0052), which is why this module
//! sits behind the `async-std` feature, off by default; prefer the `smol` module. It is the
//! same adapter: only spawning differs (`async_std::task::spawn_local`).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use switchboard_core::Config;

use crate::serve::{self, Bound, Spawn};
pub use crate::Handle;
pub use crate::TlsConfig;

/// A chat server bound to a socket, ready to run on async-std.
pub struct Server(Bound);

impl Server {
    /// Binds the listening socket; serving starts with [`Server::run`].
    ///
    /// A `config` that `Config::validate` refuses is an `InvalidInput` error.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Server> {
        Bound::bind(addr, config).map(Server)
    }

    /// Serves on a socket already bound and listening (with SO_REUSEPORT, say).
    pub fn from_listener(listener: std::net::TcpListener, config: Config) -> io::Result<Server> {
        Bound::from_listener(listener, config).map(Server)
    }

    /// The address bound by [`Server::bind`] (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Also accepts connections on `addr` (an IRC port, say), into the same rooms: the
    /// protocol is told per connection. Returns the address actually bound.
    pub fn add_listener(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.0.add_listener(addr, None)
    }

    /// Also accepts TLS connections on `addr`, into the same rooms, with `tls`'s
    /// certificate (replaceable while serving). Returns the address actually bound.
    pub fn add_tls_listener(
        &mut self,
        addr: impl ToSocketAddrs,
        tls: crate::TlsConfig,
    ) -> io::Result<SocketAddr> {
        self.0.add_listener(addr, Some(tls))
    }

    /// Also accepts connections on a socket already bound and listening, speaking TLS with
    /// `tls` if given. Returns its address.
    pub fn add_tcp_listener(
        &mut self,
        listener: std::net::TcpListener,
        tls: Option<crate::TlsConfig>,
    ) -> io::Result<SocketAddr> {
        self.0.add_tcp_listener(listener, tls)
    }

    /// A handle that shuts the server down from any thread.
    pub fn handle(&self) -> Handle {
        self.0.handle()
    }

    /// Keeps room history in `history`'s store (run on a thread of its own).
    pub fn with_history(mut self, history: switchboard_store::History) -> Server {
        self.0.set_history(history);
        self
    }

    /// Joins a cluster: shares chat with the other nodes on `cluster`'s Redis (through
    /// threads of its own).
    pub fn with_cluster(mut self, cluster: switchboard_bus::Cluster) -> Server {
        self.0.set_cluster(cluster);
        self
    }

    /// Serves until [`Handle::shutdown`], then says bye to every client and returns once
    /// every bye is written (each within `close_linger`).
    ///
    /// Its tasks are spawned on async-std's executor for the current thread, so this future
    /// must be driven by `async_std::task::block_on` (or use [`Server::run_blocking`]).
    pub async fn run(self) {
        serve::serve(self.0, &AsyncStd).await;
    }

    /// Runs the server on the current thread until it is shut down.
    pub fn run_blocking(self) {
        ::async_std::task::block_on(self.run());
    }
}

/// Spawns onto async-std's executor for the current thread.
struct AsyncStd;

impl Spawn for AsyncStd {
    fn spawn<F: std::future::Future<Output = ()> + 'static>(&self, task: F) {
        // Dropping the handle detaches the task.
        drop(::async_std::task::spawn_local(task));
    }
}
