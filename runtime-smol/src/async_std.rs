//! The server on async-std.
//!
//! async-std is discontinued upstream (advisory RUSTSEC-2025-0052), which is why this module
//! sits behind the `async-std` feature, off by default; prefer the `smol` module. It is the
//! same driver: only spawning differs (`async_std::task::spawn_local`).

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use async_io::Async;

use crate::driver::Runtime;
pub use crate::Handle;
pub use crate::TlsConfig;

/// A chat server bound to a socket, ready to run on async-std.
pub type Server = crate::driver::Server<AsyncStd>;

/// async-std as the driver's runtime: its executor for the current thread, `async-io`
/// sockets.
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Socket = Async<TcpStream>;
    type Listener = Async<TcpListener>;

    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener> {
        Async::new(listener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        // Dropping the handle detaches the task.
        drop(::async_std::task::spawn_local(task));
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static {
        crate::reactor::sleep_until(at)
    }
}

impl Server {
    /// Serves until [`Handle::shutdown`], then says bye to every client and returns once
    /// every bye is written (each within `close_linger`).
    ///
    /// Its tasks are spawned on async-std's executor for the current thread, so this future
    /// must be driven by `async_std::task::block_on` (or use [`Server::run_blocking`]).
    pub async fn run(self) {
        self.serve(&AsyncStd).await;
    }

    /// Runs the server on the current thread until it is shut down.
    pub fn run_blocking(self) {
        ::async_std::task::block_on(self.run());
    }
}
