//! Switchboard: a chat server and client.
//!
//! The protocol lives in [`core`] (sans-IO); each runtime adapter is a module behind its
//! cargo feature: `smol` (feature `smol`, the default), `async_std` (feature `async-std`)
//! and `threads` (feature `std`); `driver` (feature `driver`, on with either async one) runs
//! the server on a runtime of your own. Features are additive.

pub use switchboard_core as core;

/// Room history storage: the store trait, SQLite, the store thread.
pub use switchboard_store as store;

/// The cluster's bus on Redis: pub/sub and leased keys on threads of their own.
pub use switchboard_bus as bus;

/// The async driver, generic over a runtime: for running the server on an executor of
/// your own (see `examples/tokio-server`).
#[cfg(feature = "driver")]
pub use switchboard_driver as driver;

/// The server on smol (feature `smol`, on by default).
#[cfg(feature = "smol")]
pub use switchboard_smol::smol;

/// The server on async-std (feature `async-std`). async-std is discontinued upstream
/// (RUSTSEC-2025-0052); prefer `smol`.
#[cfg(feature = "async-std")]
pub use switchboard_smol::async_std;

/// The server on plain `std::net` threads (feature `std`).
///
/// Named `threads`, not `std`: a `std` module here would shadow the standard library in
/// code that writes `use switchboard::*;` or `use switchboard::std;`.
#[cfg(feature = "std")]
pub use switchboard_std as threads;
