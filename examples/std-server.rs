//! The chat server on std threads:
//! `cargo run --no-default-features --features std --example std-server`.

mod common;

use switchboard::threads::{Server, TlsConfig};

fn main() {
    let options = common::parse_args("std-server");
    let listener = common::listen(&options.listen, options.reuse_port);
    let mut server = Server::from_listener(listener, options.config)
        .unwrap_or_else(|e| common::bind_failed(&options.listen, e));
    let irc = options.irc_listen.as_ref().map(|irc| {
        server
            .add_tcp_listener(common::listen(irc, options.reuse_port), None)
            .unwrap_or_else(|e| common::bind_failed(irc, e))
    });
    if let Some(history) = common::open_history(&options.history) {
        server = server.with_history(history);
    }
    if let Some(cluster) = common::open_cluster(&options.cluster) {
        server = server.with_cluster(cluster);
    }
    let mut tls_addrs = Vec::new();
    if let Some(files) = options.tls_files {
        let tls = TlsConfig::new(files.load().unwrap_or_else(|e| common::fail(&e)));
        for addr in &options.tls_listen {
            let listener = common::listen(addr, options.reuse_port);
            let bound = server.add_tcp_listener(listener, Some(tls.clone()));
            tls_addrs.push(bound.unwrap_or_else(|e| common::bind_failed(addr, e)));
        }
        files.reload_on_hangup(move |config| tls.replace(config));
    }
    // The main address first: scripts read the first line.
    common::announce(server.local_addr());
    if let Some(irc) = irc {
        common::announce(Ok(irc));
    }
    for addr in tls_addrs {
        common::announce(Ok(addr));
    }
    let handle = server.handle();
    common::on_signal(move || handle.shutdown());
    if let Err(e) = server.run() {
        log::error!("server failed: {e}");
        std::process::exit(1);
    }
    log::info!("server stopped");
}
