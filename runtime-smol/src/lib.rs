//! The chat server on smol or async-std: the [`switchboard_driver`] on `async-io`.
//!
//! Both executors sit on `async-io`, so their sockets and timer are one shared module
//! (`reactor`); they differ only in how tasks are spawned. Each is a module behind its
//! cargo feature: `smol` (default) and `async_std` (off by default: async-std is
//! discontinued upstream, advisory RUSTSEC-2025-0052; it is kept working for those who
//! still run it). Everything else (connections, flushing, closing, TLS, history, the
//! cluster) is the driver's, and every decision in it is the core's.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod reactor;

#[cfg(feature = "async-std")]
pub mod async_std;
#[cfg(feature = "smol")]
pub mod smol;

pub use reactor::{AsyncListener, AsyncSocket};
/// The driver both runtimes run, with its `Server`, `Handle` and `TlsConfig`.
pub use switchboard_driver as driver;
pub use switchboard_driver::{rustls, Handle, TlsConfig};
