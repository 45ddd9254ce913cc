//! Several servers sharing one port (SO_REUSEPORT, as `--reuse-port` does) each shut down
//! when asked, although the wake-up connection of one may land in another's listener.

#![cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use switchboard_core::Config;
use switchboard_std::Server;

fn shared(addr: SocketAddr) -> TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(true).expect("SO_REUSEPORT");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(128).expect("listen");
    socket.into()
}

#[test]
fn servers_sharing_a_port_each_shut_down() {
    // Which listener a connection lands in is the kernel's choice: several rounds make it
    // all but certain that some wake-up connection lands in the wrong one.
    for _ in 0..4 {
        let first = shared("127.0.0.1:0".parse().expect("address"));
        let addr = first.local_addr().expect("local address");
        let listeners = [first, shared(addr), shared(addr)];
        let mut running = Vec::new();
        for listener in listeners {
            let server = Server::from_listener(listener, Config::default()).expect("server");
            let handle = server.handle();
            let (done, stopped) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = server.run();
                let _ = done.send(());
            });
            running.push((handle, stopped));
        }
        for (handle, stopped) in running {
            handle.shutdown();
            stopped
                .recv_timeout(Duration::from_secs(10))
                .expect("a server sharing its port did not stop");
        }
    }
}
