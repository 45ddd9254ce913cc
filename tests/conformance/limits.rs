//! Connection limits and TLS-specific behaviour, on every runtime (and over TLS where the
//! runtime serves TLS).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use switchboard::core::{ClientEvent, Config, ErrorCode};

use crate::client::{TestClient, WAIT};
use crate::irc_client::IrcClient;
use crate::runtimes::Start;
use crate::tls::Conn;

/// Open files `per_address_limit` holds at most: 200 clients with both ends, and a few.
pub const PER_ADDRESS_FDS: u64 = 200 * 2 + 64;

/// Connects to `server` from `source` (an address of 127.0.0.0/8 other than 127.0.0.1).
fn connect_from(source: IpAddr, server: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    rustix::net::bind(&fd, &SocketAddr::new(source, 0)).expect("bind the source address");
    rustix::net::connect(&fd, &server).expect("connect");
    TcpStream::from(fd)
}

fn is_refusal(e: &ClientEvent) -> bool {
    matches!(
        e,
        ClientEvent::Bye { code: ErrorCode::TooManyConnections, reason }
            if reason == "too many connections from your address"
    )
}

/// 200 connections from one address with a limit of 32: 32 held, 168 refused in their own
/// protocol, and a client from 127.0.0.2 still gets in at once.
pub fn per_address_limit(start: Start) {
    let server = start({
        let mut c = Config::default();
        c.max_conns_per_ip = 32;
        c
    });
    let held: Vec<TestClient> = (0..32)
        .map(|i| TestClient::connect(server.addr, &format!("held{i}")))
        .collect();
    server.expect_connections(32, WAIT);
    // All 168 are connected before any is answered: a flood from one address.
    let mut native: Vec<TestClient> = (0..84)
        .map(|i| TestClient::raw(server.addr, &format!("native{i}")))
        .collect();
    let mut irc: Vec<IrcClient> = (0..84)
        .map(|i| IrcClient::raw(server.addr, &format!("irc{i}")))
        .collect();
    // Another address is not crowded out, and is served at once.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let started = Instant::now();
    let tcp = connect_from(other, server.addr);
    let conn = Conn::over(tcp, server.addr).expect("connect from 127.0.0.2");
    let mut outsider = TestClient::over(conn, "outsider");
    outsider.send(|c| c.hello("outsider"));
    outsider.expect("welcome", |e| matches!(e, ClientEvent::Welcome { .. }));
    let outsider_took = started.elapsed();
    for (i, c) in native.iter_mut().enumerate() {
        c.send(|cl| cl.hello(&format!("native{i}")));
    }
    for (i, c) in irc.iter_mut().enumerate() {
        c.send(&format!("NICK irc{i}"));
    }
    for c in &mut native {
        c.expect("the refusal", is_refusal);
        c.expect_closed(WAIT);
    }
    for c in &mut irc {
        c.expect("the refusal", |m| {
            m.command == "ERROR"
                && m.params == ["Closing Link: too many connections from your address"]
        });
        c.expect_closed(WAIT);
    }
    // The held ones are all still there.
    server.expect_connections(33, WAIT);
    drop(held);
    server.expect_connections(1, WAIT);
    // Their slots are free again.
    TestClient::connect(server.addr, "again");
    assert!(
        outsider_took < Duration::from_secs(2),
        "the client from 127.0.0.2 took {outsider_took:?}"
    );
}

/// The global limit refuses past it whatever the address, in the client's protocol.
pub fn global_limit(start: Start) {
    let server = start({
        let mut c = Config::default();
        c.max_conns = 2;
        c
    });
    let _a = TestClient::connect(server.addr, "a");
    let _b = TestClient::connect(server.addr, "b");
    let mut c = IrcClient::raw(server.addr, "c");
    c.send("NICK c");
    c.expect("the refusal", |m| {
        m.command == "ERROR" && m.params == ["Closing Link: too many connections"]
    });
    c.expect_closed(WAIT);
}

/// A client that connects and sends nothing is closed at the hello deadline (over TLS: one
/// that stalls in the handshake), and others are served meanwhile.
pub fn silent_connection_closed_at_hello_deadline(start: Start) {
    let server = start({
        let mut c = Config::default();
        c.hello_timeout = Duration::from_millis(300);
        c
    });
    // A bare TCP connection: on a TLS port it never even starts the handshake.
    let silent = TcpStream::connect(server.addr).expect("connect");
    let mut other = TestClient::connect(server.addr, "other");
    other.send(|c| c.list_rooms());
    other.expect("the room list", |e| {
        matches!(e, ClientEvent::RoomList { .. })
    });
    server.expect_connections(1, WAIT);
    drop(silent);
}

/// A client speaking plain text to a TLS port is closed at once, well before the hello
/// deadline, and a TLS client beside it is unharmed.
pub fn plain_client_on_tls_port(start: Start) {
    use std::io::{Read, Write};
    let server = start(Config::default());
    assert!(crate::tls::is_tls(server.addr), "a TLS runtime");
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut plain = TcpStream::connect(server.addr).expect("connect");
    let started = Instant::now();
    plain
        .write_all(b"NICK plain\r\nUSER plain 0 * :Plain\r\n")
        .expect("write");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 1024];
    // rustls may answer with an alert before closing; then the end (or a reset).
    loop {
        match plain.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let took = started.elapsed();
    assert!(
        took < Config::default().hello_timeout / 2,
        "closed after {took:?}, not at once"
    );
    let mut bob = TestClient::in_room(server.addr, "bob", "r");
    bob.send(|c| c.say("r", "still here"));
    alice.expect(
        "bob's message",
        |e| matches!(e, ClientEvent::Message { text, .. } if text == "still here"),
    );
    server.expect_connections(2, WAIT);
}
