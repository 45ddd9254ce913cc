//! The chat server on async-std: `cargo run --features async-std --example async-std-server`.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052); prefer `smol-server`.

mod common;
#[path = "common/driver.rs"]
mod setup;

use switchboard::async_std::AsyncStd;

fn main() {
    setup::build::<AsyncStd>("async-std-server").run_blocking();
    log::info!("server stopped");
}
