//! The chat server on tokio: `cargo run --example tokio-server -- --help`.
//!
//! It shows the driver running on a third runtime: `runtime.rs` implements the driver's
//! `Runtime` trait for tokio; the rest is the same setup as smol-server.

#[path = "../common/mod.rs"]
mod common;
mod runtime;

use switchboard::driver::Server;
use switchboard::smol::TlsConfig;

use runtime::Tokio;

fn main() {
    let options = common::parse_args("tokio-server");
    let listener = common::listen(&options.listen, options.reuse_port);
    let mut server = Server::<Tokio>::from_listener(listener, options.config)
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
    if let Err(e) = runtime::run_blocking(server) {
        common::fail(&format!("cannot start tokio: {e}"));
    }
    log::info!("server stopped");
}
