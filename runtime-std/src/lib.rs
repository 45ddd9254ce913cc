//! Blocking adapter for [`switchboard_core`]: moves bytes between `std::net` sockets and the
//! core with plain threads.
//!
//! # Design
//!
//! - The core sits behind one mutex, held to feed or drain it, never across a blocking
//!   read or write. A thread per listener only accepts; a timer thread runs the core's
//!   deadlines (`poll_timeout`); closing is the core's decision (`poll_close`).
//! - Each connection has a reader thread: it reads at most the core's `read_budget` (64 KiB
//!   stack, 8 KiB heap buffer) and, with no budget, sleeps without reading until the core
//!   names it in `poll_readable`.
//! - Output is written by the thread whose turn (input, timeout, store answer) queued it:
//!   once the lock is released, each touched connection's batch goes out in one send that
//!   does not wait. A delivery costs one system call and no thread wake-up. What the socket
//!   does not take is left to that connection's writer thread (started the first time it is
//!   needed), which writes blocking, so a slow client blocks only its own thread. TLS
//!   connections are always written by their writer thread (rustls is shared with the
//!   reader). One thread writes a connection at a time (`shared::Writing`).
//! - History: the store thread (`switchboard_store::Worker`) never waits for the lock; its
//!   answers are applied by whichever thread takes it next, the timer thread at the latest.
//!   The cluster's bus threads apply their events under the lock like a reader.
//!
//! `shared.rs` holds the lock's state and the turn every thread ends with (drain the core,
//! send, report); `conn.rs` the accept, reader, writer and refusal threads.
//!
//! Connects, sign-ins, closes and errors go through the [`log`] facade, one line each.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod handle;
mod shared;
mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use switchboard_bus::Cluster;
use switchboard_core::{Config, Server as Core};
use switchboard_store::History;

use conn::{accept_loop, spawn, thread_budget};
pub use handle::Handle;
/// The TLS library the adapter speaks through, for building a [`TlsConfig`].
pub use rustls;
use shared::{timer_thread, Shared, State};
pub use tls::TlsConfig;

/// A chat server bound to a socket, ready to run on threads.
pub struct Server {
    /// All serve the same core; those with a TLS configuration speak TLS.
    listeners: Vec<(TcpListener, Option<TlsConfig>)>,
    config: Config,
    handle: Handle,
    max_connections: Option<usize>,
    history: Option<History>,
    cluster: Option<Cluster>,
}

fn invalid(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Server {
    /// Binds the listening socket; serving starts with [`Server::run`]. A `config` that
    /// [`Config::validate`] refuses is an `InvalidInput` error.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Server> {
        invalid(&config)?;
        Server::from_listener(TcpListener::bind(addr)?, config)
    }

    /// Serves on a socket already bound and listening (with SO_REUSEPORT, say).
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Server> {
        invalid(&config)?;
        let handle = Handle::new(&listener)?;
        let listeners = vec![(listener, None)];
        Ok(Server {
            listeners,
            config,
            handle,
            max_connections: None,
            history: None,
            cluster: None,
        })
    }

    /// Refuses connections past `max` at once (by closing them). Without it the limit is
    /// what the system's thread and memory-mapping limits allow, less some headroom.
    pub fn with_max_connections(mut self, max: usize) -> Server {
        self.max_connections = Some(max);
        self
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
        let local = listener.local_addr()?;
        self.handle.add_listener(&listener)?;
        self.listeners.push((listener, tls));
        Ok(local)
    }

    /// A handle that shuts the server down from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Keeps room history in `history`'s store (run on a thread of its own).
    pub fn with_history(mut self, history: History) -> Server {
        self.history = Some(history);
        self
    }

    /// Joins a cluster: shares chat with the other nodes on `cluster`'s Redis (through
    /// threads of its own).
    pub fn with_cluster(mut self, cluster: Cluster) -> Server {
        self.cluster = Some(cluster);
        self
    }

    /// Accepts on the calling thread until [`Handle::shutdown`], then says bye to every
    /// client and returns once every bye is written (each within `close_linger`).
    ///
    /// Fails only if the timer, store, bus or an accept thread cannot be started (in the
    /// last case after shutting down, as if [`Handle::shutdown`] had been called).
    pub fn run(self) -> io::Result<()> {
        let state = State {
            server: Core::new(self.config),
            conns: HashMap::new(),
            timer_at: None,
            stopping: false,
            store: None,
            bus: None,
            out: Vec::new(),
            spawn: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            timer: OnceLock::new(),
            idle: Condvar::new(),
            max_connections: self.max_connections.unwrap_or_else(thread_budget),
            handle: self.handle,
            refusing: AtomicUsize::new(0),
            answers: Mutex::new(Vec::new()),
            answered: AtomicBool::new(false),
        });
        if let Some(history) = self.history {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            st.store = Some(history.start(&mut st.server, move |answers| {
                if let Some(shared) = weak.upgrade() {
                    shared.answer(answers);
                }
            })?);
        }
        // The bus threads hand their events to the core themselves, under the lock like
        // any reader, and write what those cause.
        if let Some(cluster) = self.cluster {
            let weak = Arc::downgrade(&shared);
            let mut st = shared.lock();
            st.bus = Some(cluster.start(&mut st.server, move |event| {
                if let Some(shared) = weak.upgrade() {
                    shared.turn(|core| core.handle_bus(event, Instant::now()));
                }
            })?);
        }
        let timer = spawn("switchboard-timer".into(), {
            let shared = shared.clone();
            move || timer_thread(&shared)
        })?;
        let _ = shared.timer.set(timer.thread().clone());
        let mut listeners = self.listeners.into_iter();
        let first = listeners.next();
        let mut accepters = Vec::new();
        let mut failed = None;
        for (i, (listener, tls)) in listeners.enumerate() {
            let theirs = shared.clone();
            match spawn(format!("switchboard-accept-{}", i + 1), move || {
                accept_loop(&listener, tls, &theirs)
            }) {
                Ok(thread) => accepters.push(thread),
                Err(e) => {
                    log::error!("cannot start an accept thread: {e}");
                    failed = Some(e);
                    shared.handle.shutdown();
                    break;
                }
            }
        }
        if let Some((listener, tls)) = first {
            accept_loop(&listener, tls, &shared);
        }
        // No connection may be opened once the core is shutting down.
        for thread in accepters {
            let _ = thread.join();
        }
        let mut st = shared.lock();
        st.server.shutdown(Instant::now());
        shared.drain(&mut st);
        st = shared.flush(st);
        // The core closes every connection once its bye is written or its linger is over.
        while !st.conns.is_empty() {
            st = shared.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.stopping = true;
        let (store, bus) = (st.store.take(), st.bus.take());
        drop(st);
        shared.wake_timer();
        let _ = timer.join();
        // The last ops (a shutdown's releases, the last appends) run before `run` returns;
        // the lock is free for the threads' last answers.
        if let Some(bus) = bus {
            bus.finish();
        }
        if let Some(store) = store {
            store.finish();
        }
        // Its last answers, for the log.
        shared.turn(|_| {});
        failed.map_or(Ok(()), Err)
    }
}
