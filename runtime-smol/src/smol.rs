//! The server on smol: its tasks run on a `LocalExecutor` of its own, on the calling thread.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Instant;

use ::smol::LocalExecutor;

use switchboard_driver::{BlockOn, Runtime};
pub use switchboard_driver::{Handle, TlsConfig};

use crate::reactor::{AsyncListener, AsyncSocket};

/// A chat server bound to a socket, ready to run on smol.
pub type Server = switchboard_driver::Server<Smol>;

/// smol as the driver's runtime: an executor of the server's own, `async-io` sockets.
pub struct Smol(Rc<LocalExecutor<'static>>);

impl Runtime for Smol {
    type Socket = AsyncSocket;
    type Listener = AsyncListener;

    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener> {
        AsyncListener::new(listener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.0.spawn(task).detach();
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + 'static {
        crate::reactor::sleep_until(at)
    }
}

impl BlockOn for Smol {
    fn block_on(server: Server) {
        ::smol::block_on(run(server));
    }
}

/// Serves until [`Handle::shutdown`], then says bye to every client and returns once every
/// bye is written (each within `close_linger`).
///
/// All its tasks run inside this future on an executor of its own, so any executor may
/// drive it ([`Server::run_blocking`] drives it with `smol::block_on`).
pub async fn run(server: Server) {
    let executor = Rc::new(LocalExecutor::new());
    let runtime = Smol(executor.clone());
    executor.run(server.serve(&runtime)).await;
}
