//! The handle that shuts a server down and counts its connections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Controls a running server from any thread.
#[derive(Clone, Debug)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    stop: AtomicBool,
    /// Where to connect to wake each accept loop out of its blocking `accept`, one address
    /// per listener.
    wake_addrs: Mutex<Vec<SocketAddr>>,
    /// The listening sockets themselves (shared with the accept loops), shut at shutdown:
    /// on Linux that ends a blocking `accept` even when the wake connection went to another
    /// process listening on the same port (SO_REUSEPORT).
    listeners: Mutex<Vec<TcpListener>>,
    connections: AtomicUsize,
}

impl Handle {
    pub(crate) fn new(listener: &TcpListener) -> std::io::Result<Handle> {
        let handle = Handle {
            inner: Arc::new(Inner {
                stop: AtomicBool::new(false),
                wake_addrs: Mutex::new(Vec::new()),
                listeners: Mutex::new(Vec::new()),
                connections: AtomicUsize::new(0),
            }),
        };
        handle.add_listener(listener)?;
        Ok(handle)
    }

    /// Registers one more listener whose accept loop shutdown must wake.
    pub(crate) fn add_listener(&self, listener: &TcpListener) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let shared = listener.try_clone()?;
        self.wake_addrs().push(wake_addr(local));
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(shared);
        Ok(())
    }

    fn wake_addrs(&self) -> std::sync::MutexGuard<'_, Vec<SocketAddr>> {
        self.inner
            .wake_addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops accepting, says bye to every client and lets `run` return once the byes are written.
    pub fn shutdown(&self) {
        if self.inner.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // std cannot interrupt a blocking accept; a connection of our own ends it. If this
        // fails (say, out of file descriptors), the accept loop sees the flag on its next turn.
        let addrs = self.wake_addrs().clone();
        for addr in addrs {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for listener in listeners.iter() {
            // Not supported everywhere (the wake connection above is the portable way).
            let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Read);
        }
    }

    /// Whether [`Handle::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// Open sockets, including those closing.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn opened(&self) {
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn closed(&self) {
        self.inner.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The address that reaches a listener bound to `local`: a wildcard address is not something
/// to connect to; its loopback is.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}
