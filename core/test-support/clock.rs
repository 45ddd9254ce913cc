//! The one place core's unit tests get an `Instant` from: the library itself never reads a
//! clock (time is always an argument), and its source (`core/src`) names none outside the
//! crate-level doc example, which plays the adapter's part.

use std::time::Instant;

/// An arbitrary starting moment for a test's virtual time.
pub fn start() -> Instant {
    Instant::now()
}
