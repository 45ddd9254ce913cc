//! The server on smol: its tasks run on a `LocalExecutor` of its own, on the calling thread.

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Instant;

use ::smol::LocalExecutor;
use async_io::Async;

use crate::driver::Runtime;
pub use crate::Handle;
pub use crate::TlsConfig;

/// A chat server bound to a socket, ready to run on smol.
pub type Server = crate::driver::Server<Smol>;

/// smol as the driver's runtime: an executor of the server's own, `async-io` sockets.
pub struct Smol(Rc<LocalExecutor<'static>>);

impl Runtime for Smol {
    type Socket = Async<TcpStream>;
    type Listener = Async<TcpListener>;

    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener> {
        Async::new(listener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.0.spawn(task).detach();
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static {
        crate::reactor::sleep_until(at)
    }
}

impl Server {
    /// Serves until [`Handle::shutdown`], then says bye to every client and returns once
    /// every bye is written (each within `close_linger`).
    ///
    /// All its tasks run inside this future on an executor of its own, so any executor
    /// may drive it, `smol::block_on` being the plain choice.
    pub async fn run(self) {
        let executor = Rc::new(LocalExecutor::new());
        let runtime = Smol(executor.clone());
        executor.run(self.serve(&runtime)).await;
    }

    /// Runs the server on the current thread until it is shut down.
    pub fn run_blocking(self) {
        ::smol::block_on(self.run());
    }
}
