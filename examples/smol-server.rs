//! The chat server on smol: `cargo run --example smol-server -- --help`.

mod common;
#[path = "common/driver.rs"]
mod setup;

use switchboard::smol::Smol;

fn main() {
    setup::build::<Smol>("smol-server").run_blocking();
    log::info!("server stopped");
}
