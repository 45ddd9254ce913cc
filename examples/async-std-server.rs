//! The chat server on async-std: `cargo run --features async-std --example async-std-server`.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052); prefer `smol-server`.

mod common;

use switchboard::async_std::Server;

fn main() {
    let options = common::parse_args("async-std-server");
    let mut server = Server::bind(&options.listen, options.config)
        .unwrap_or_else(|e| common::bind_failed(&options.listen, e));
    if options.quiet {
        server = server.with_logger(|_| {});
    }
    common::announce(server.local_addr());
    let handle = server.handle();
    common::on_signal(move || handle.shutdown());
    server.run_blocking();
    eprintln!("server stopped");
}
