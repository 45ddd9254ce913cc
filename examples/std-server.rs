//! The chat server on std threads:
//! `cargo run --no-default-features --features std --example std-server`.

mod common;

use switchboard::std::Server;

fn main() {
    let options = common::parse_args("std-server");
    let mut server = Server::bind(&options.listen, options.config)
        .unwrap_or_else(|e| common::bind_failed(&options.listen, e));
    if options.quiet {
        server = server.with_logger(|_| {});
    }
    common::announce(server.local_addr());
    let handle = server.handle();
    common::on_signal(move || handle.shutdown());
    if let Err(e) = server.run() {
        eprintln!("server failed: {e}");
        std::process::exit(1);
    }
    eprintln!("server stopped");
}
