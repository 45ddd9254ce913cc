//! The async servers' shared setup: every runtime of the driver (smol, async-std, tokio)
//! builds its server from the flags the same way; only how it runs differs.

use switchboard::driver::{Runtime, Server, TlsConfig};

use crate::common;

/// Builds the server the flags describe on runtime `R`, announces its addresses and stops
/// it on a signal; the caller runs it.
pub fn build<R: Runtime>(program: &'static str) -> Server<R> {
    let options = common::parse_args(program);
    let listener = common::listen(&options.listen, options.reuse_port);
    let mut server = Server::<R>::from_listener(listener, options.config)
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
    server
}
