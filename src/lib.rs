//! Switchboard: a chat server and client.
//!
//! The protocol lives in [`core`] (sans-IO); each runtime adapter is a module behind its
//! cargo feature: `smol` (default), `async-std` and `std`. Features are additive.

pub use switchboard_core as core;
