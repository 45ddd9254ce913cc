//! The server on async-std.
//!
//! async-std is discontinued upstream (advisory RUSTSEC-2025-0052), which is why this module
//! sits behind the `async-std` feature, off by default; prefer the `smol` module. It is the
//! same driver: only spawning differs (`async_std::task::spawn_local`).

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::time::Instant;

use switchboard_driver::{BlockOn, Runtime};
pub use switchboard_driver::{Handle, TlsConfig};

use crate::reactor::{AsyncListener, AsyncSocket};

/// A chat server bound to a socket, ready to run on async-std.
pub type Server = switchboard_driver::Server<AsyncStd>;

/// async-std as the driver's runtime: its executor for the current thread, `async-io`
/// sockets.
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Socket = AsyncSocket;
    type Listener = AsyncListener;

    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener> {
        AsyncListener::new(listener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        // Dropping the handle detaches the task.
        drop(::async_std::task::spawn_local(task));
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static {
        crate::reactor::sleep_until(at)
    }
}

impl BlockOn for AsyncStd {
    /// Its tasks are spawned on async-std's executor for the current thread, which
    /// `async_std::task::block_on` runs.
    fn block_on(server: Server) {
        ::async_std::task::block_on(server.serve(&AsyncStd));
    }
}
