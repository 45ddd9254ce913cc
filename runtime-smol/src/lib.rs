//! Async adapter for [`switchboard_core`]: moves bytes between `async-io` sockets and the core.
//!
//! The adapter is one [`driver`], generic over a small [`driver::Runtime`] trait (spawn a
//! task, sleep, non-blocking sockets), implemented for two executors, each a module behind
//! its cargo feature: `smol` (default) and `async_std` (off by default: async-std is
//! discontinued upstream, advisory RUSTSEC-2025-0052; it is kept working for those who
//! still run it). Both sit on `async-io`, so their sockets and timer are shared code; they
//! differ only in how tasks are spawned. `examples/tokio-server` implements it for tokio.
//!
//! # Design
//!
//! The whole server runs on one thread. The core is one single-threaded state machine, so
//! threads would only add locking around it; one thread with non-blocking sockets is the
//! shape of the fastest C chat servers too. The core sits in an `Rc<RefCell<_>>` that no task
//! holds borrowed across an `.await`.
//!
//! - The accept loop opens each connection in the core, spawns one task for it and goes
//!   straight back to accepting; it never waits on a client. A server may listen on several
//!   sockets (`add_listener`, for a dedicated IRC port say): one accept loop each, all in one
//!   task, feeding the one core.
//! - A connection's task runs a reader and a writer side by side. The reader reads into one
//!   read buffer shared by every connection (so an idle connection holds no buffer), never
//!   more than the core's `read_budget` for the connection, hands the bytes to the core and
//!   yields, so every connection gets one bounded read per turn. With no budget (the
//!   connection is over its rate and its inbound queue is full, or it is closing) the reader
//!   does not poll the socket at all until the core names it in `poll_readable`.
//! - After every input, write, timeout or close, the adapter drains the core: it lists the
//!   connections with new output for the flusher task, which runs after the tasks woken
//!   with it and writes each once, non-blocking, with all it has (one wake-up for all the
//!   recipients, one write each), leaving to a connection's writer task only what would
//!   block (and TLS output, which may need a flush that waits); it wakes the readers the
//!   core lets read again, marks
//!   closing connections, ends the ones the core says to close now, logs events and re-arms
//!   the timer when the core's next deadline moved earlier.
//! - Closing is the core's decision, lingering included: on `Close { Flush }` the reader
//!   stops (the core gives it no budget) and the writer flushes; on `Close { Now }` (output
//!   written, or `close_linger` over, a deadline the core keeps) the socket is dropped.
//! - [`Handle::shutdown`] stops accepting, says bye to every client through the core and
//!   returns from `run` once every bye is written (bounded by `close_linger`).
//!
//! # Logging
//!
//! Connects, sign-ins, closes and errors go through the [`log`] facade, one line each
//! (connections and sign-ins at `info`, I/O errors at `debug`, accept failures at `warn`);
//! the program picks the backend and the filter.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
mod handle;
mod notify;
mod reactor;
mod tls;

#[cfg(feature = "async-std")]
pub mod async_std;
#[cfg(feature = "smol")]
pub mod smol;

pub use handle::Handle;
/// The TLS library the adapter speaks through, for building a [`TlsConfig`].
pub use rustls;
pub use tls::TlsConfig;
