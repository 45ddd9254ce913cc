//! The chat server on tokio: `cargo run --example tokio-server -- --help`.
//!
//! It shows the driver running on a third runtime: `runtime.rs` implements the driver's
//! `Runtime` trait for tokio; the setup is the one every async server shares.

#[path = "../common/mod.rs"]
mod common;
mod runtime;
#[path = "../common/driver.rs"]
mod setup;

use runtime::Tokio;

fn main() {
    let server = setup::build::<Tokio>("tokio-server");
    if let Err(e) = runtime::run_blocking(server) {
        common::fail(&format!("cannot start tokio: {e}"));
    }
    log::info!("server stopped");
}
