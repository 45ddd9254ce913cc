//! Starting and stopping a server on each runtime, behind one interface.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use switchboard::core::Config;

/// Starts a server on 127.0.0.1, port 0, on one runtime, with a second listener (as
/// `--irc-listen` adds) on another free port. The `_tls` variants serve `addr` over TLS
/// (the test clients speak TLS to it, see tls.rs) and `irc_addr` in plain text, so that
/// `second_listener_same_rooms` has TLS and plain clients chat in one room.
pub type Start = fn(Config) -> Running;

/// The scenario's config, and the log if asked for.
fn prepare(config: Config) -> Config {
    init_log();
    config
}

/// Registers the TLS listener's address, so that clients connecting there speak TLS.
fn tls_addrs(addrs: (SocketAddr, SocketAddr)) -> (SocketAddr, SocketAddr) {
    crate::tls::register(addrs.0);
    addrs
}

/// A server running on its own thread; shut down and joined when dropped.
pub struct Running {
    /// The address it was bound to.
    pub addr: SocketAddr,
    /// Its second listener's address: the same server, protocols told apart as on `addr`.
    pub irc_addr: SocketAddr,
    shutdown: Box<dyn Fn() + Send>,
    connections: Box<dyn Fn() -> usize + Send>,
    stopped: mpsc::Receiver<()>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    pub(crate) fn new(
        (addr, irc_addr): (SocketAddr, SocketAddr),
        shutdown: impl Fn() + Send + 'static,
        connections: impl Fn() -> usize + Send + 'static,
        run: impl FnOnce() + Send + 'static,
    ) -> Running {
        let (tx, stopped) = mpsc::channel();
        let thread = thread::spawn(move || {
            run();
            let _ = tx.send(());
        });
        Running {
            addr,
            irc_addr,
            shutdown: Box::new(shutdown),
            connections: Box::new(connections),
            stopped,
            thread: Some(thread),
        }
    }

    /// Sockets the server holds open, closing ones included.
    pub fn connections(&self) -> usize {
        (self.connections)()
    }

    /// Asks the server to shut down.
    pub fn shutdown(&self) {
        (self.shutdown)();
    }

    /// Waits for the server's run to return; fails past `limit`.
    pub fn expect_stopped(&mut self, limit: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        match self.stopped.recv_timeout(limit) {
            Ok(()) => thread.join().expect("server thread panicked"),
            Err(_) if thread.is_finished() => {
                thread.join().expect("server thread panicked");
            }
            Err(_) => panic!(
                "server still running {limit:?} after shutdown, with {} connections",
                self.connections()
            ),
        }
    }

    /// Waits until the server holds `n` connections; fails past `limit`.
    pub fn expect_connections(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.connections() != n {
            assert!(
                Instant::now() < deadline,
                "server holds {} connections, not {n}, after {limit:?}",
                self.connections()
            );
            // A counter has no wake-up to wait on; the deadline bounds this poll.
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
        if !thread::panicking() {
            self.expect_stopped(Duration::from_secs(10));
            // The listener is closed: its port may serve plain text next.
            crate::tls::unregister(self.addr);
        }
    }
}

/// The servers' log lines go to the test's output when SWITCHBOARD_TEST_LOG is set.
struct TestLog;

impl log::Log for TestLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        // eprintln! is captured per test by the harness and shown when the test fails.
        eprintln!("server: {} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

/// Installs [`TestLog`] once per process, if asked for.
fn init_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("SWITCHBOARD_TEST_LOG").is_some() && log::set_logger(&TestLog).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

#[cfg(feature = "smol")]
pub fn smol(config: Config) -> Running {
    smol_with(config, |s| s)
}

/// As [`smol`], the server set up by `setup` first (to give it history, say).
#[cfg(feature = "smol")]
pub fn smol_with(
    config: Config,
    setup: impl FnOnce(switchboard::smol::Server) -> switchboard::smol::Server,
) -> Running {
    let config = prepare(config);
    let server = switchboard::smol::Server::bind("127.0.0.1:0", config).expect("bind");
    let mut server = setup(server);
    let irc_addr = server.add_listener("127.0.0.1:0").expect("add_listener");
    let addr = (server.local_addr().expect("local_addr"), irc_addr);
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run_blocking(),
    )
}

#[cfg(feature = "async-std")]
pub fn async_std(config: Config) -> Running {
    async_std_with(config, |s| s)
}

/// As [`async_std`], the server set up by `setup` first.
#[cfg(feature = "async-std")]
pub fn async_std_with(
    config: Config,
    setup: impl FnOnce(switchboard::async_std::Server) -> switchboard::async_std::Server,
) -> Running {
    let config = prepare(config);
    let server = switchboard::async_std::Server::bind("127.0.0.1:0", config).expect("bind");
    let mut server = setup(server);
    let irc_addr = server.add_listener("127.0.0.1:0").expect("add_listener");
    let addr = (server.local_addr().expect("local_addr"), irc_addr);
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run_blocking(),
    )
}

#[cfg(feature = "smol")]
pub fn tokio(config: Config) -> Running {
    let config = prepare(config);
    let mut server = tokio_server(config);
    let irc_addr = server.add_listener("127.0.0.1:0").expect("add_listener");
    let addr = (server.local_addr().expect("local_addr"), irc_addr);
    run_tokio(addr, server)
}

#[cfg(feature = "smol")]
type TokioServer = switchboard::driver::Server<crate::tokio_runtime::Tokio>;

#[cfg(feature = "smol")]
fn tokio_server(config: Config) -> TokioServer {
    TokioServer::bind("127.0.0.1:0", config).expect("bind")
}

#[cfg(feature = "smol")]
fn run_tokio(addr: (SocketAddr, SocketAddr), server: TokioServer) -> Running {
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || crate::tokio_runtime::run_blocking(server).expect("tokio runtime"),
    )
}

#[cfg(feature = "std")]
pub fn std(config: Config) -> Running {
    std_with(config, |s| s)
}

/// As [`std`], the server set up by `setup` first.
#[cfg(feature = "std")]
pub fn std_with(
    config: Config,
    setup: impl FnOnce(switchboard::threads::Server) -> switchboard::threads::Server,
) -> Running {
    let config = prepare(config);
    let server = switchboard::threads::Server::bind("127.0.0.1:0", config).expect("bind");
    let mut server = setup(server);
    let irc_addr = server.add_listener("127.0.0.1:0").expect("add_listener");
    let addr = (server.local_addr().expect("local_addr"), irc_addr);
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run().expect("std server run"),
    )
}

/// A TLS certificate for the `_tls` servers.
fn tls_config<T>(new: fn(std::sync::Arc<rustls::ServerConfig>) -> T) -> T {
    new(crate::tls::certs().server.clone())
}

#[cfg(feature = "smol")]
pub fn smol_tls(config: Config) -> Running {
    let config = prepare(config);
    let mut server = switchboard::smol::Server::bind("127.0.0.1:0", config).expect("bind");
    let tls = tls_config(switchboard::smol::TlsConfig::new);
    let addr = server.add_tls_listener("127.0.0.1:0", tls);
    let irc_addr = server.local_addr().expect("local_addr");
    let addr = tls_addrs((addr.expect("add_tls_listener"), irc_addr));
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run_blocking(),
    )
}

#[cfg(feature = "async-std")]
pub fn async_std_tls(config: Config) -> Running {
    let config = prepare(config);
    let mut server = switchboard::async_std::Server::bind("127.0.0.1:0", config).expect("bind");
    let tls = tls_config(switchboard::async_std::TlsConfig::new);
    let addr = server.add_tls_listener("127.0.0.1:0", tls);
    let irc_addr = server.local_addr().expect("local_addr");
    let addr = tls_addrs((addr.expect("add_tls_listener"), irc_addr));
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run_blocking(),
    )
}

#[cfg(feature = "smol")]
pub fn tokio_tls(config: Config) -> Running {
    let config = prepare(config);
    let mut server = tokio_server(config);
    let tls = tls_config(switchboard::driver::TlsConfig::new);
    let addr = server.add_tls_listener("127.0.0.1:0", tls);
    let irc_addr = server.local_addr().expect("local_addr");
    run_tokio(
        tls_addrs((addr.expect("add_tls_listener"), irc_addr)),
        server,
    )
}

#[cfg(feature = "std")]
pub fn std_tls(config: Config) -> Running {
    let config = prepare(config);
    let mut server = switchboard::threads::Server::bind("127.0.0.1:0", config).expect("bind");
    let tls = tls_config(switchboard::threads::TlsConfig::new);
    let addr = server.add_tls_listener("127.0.0.1:0", tls);
    let irc_addr = server.local_addr().expect("local_addr");
    let addr = tls_addrs((addr.expect("add_tls_listener"), irc_addr));
    let (h1, h2) = (server.handle(), server.handle());
    Running::new(
        addr,
        move || h1.shutdown(),
        move || h2.connection_count(),
        move || server.run().expect("std server run"),
    )
}
