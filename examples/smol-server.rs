//! The chat server on smol: `cargo run --example smol-server -- --help`.

mod common;

use switchboard::smol::Server;

fn main() {
    let options = common::parse_args("smol-server");
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
