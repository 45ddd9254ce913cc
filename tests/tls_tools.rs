//! TLS with a stock client and certificate replacement, against the smol server.
//!
//! `openssl s_client` (Debian's openssl) registers over TLS and chats with a plain native
//! client. Without openssl installed the test prints a skip line, unless
//! SWITCHBOARD_REQUIRE_OPENSSL=1 (as in CI), where that is a failure.

#![cfg(all(unix, feature = "smol"))]

#[allow(dead_code)]
#[path = "conformance/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "conformance/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use client::{TestClient, WAIT};
use switchboard::core::{ClientEvent, Config};
use switchboard::smol::{Handle, Server, TlsConfig};

/// A server on its own thread; shut down and joined when dropped.
struct Served {
    handle: Handle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server with a plain and a TLS listener: (plain, TLS) addresses.
fn serve(tls: TlsConfig) -> (Served, SocketAddr, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0", Config::default()).expect("bind");
    let tls_addr = server
        .add_tls_listener("127.0.0.1:0", tls)
        .expect("add_tls_listener");
    let addr = server.local_addr().expect("local_addr");
    let handle = server.handle();
    let thread = thread::spawn(move || server.run_blocking());
    let served = Served {
        handle,
        thread: Some(thread),
    };
    (served, addr, tls_addr)
}

/// The child process, killed when dropped whatever happened.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn openssl_s_client_chats_with_a_plain_client() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("SWITCHBOARD_REQUIRE_OPENSSL").is_none(),
            "openssl is not installed and SWITCHBOARD_REQUIRE_OPENSSL is set"
        );
        eprintln!("skipped: openssl is not installed (apt-get install openssl)");
        return;
    }
    let certs = tls::make_certs();
    let dir = std::env::temp_dir().join(format!("switchboard-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &certs.pem).expect("write the certificate");
    let (_served, addr, tls_addr) = serve(TlsConfig::new(certs.server.clone()));
    let mut alice = TestClient::in_room(addr, "alice", "r");
    let child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(tls_addr.to_string())
        .arg("-CAfile")
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_client");
    let mut child = Killed(child);
    let mut stdin = child.0.stdin.take().expect("stdin");
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_line = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if pred(line.trim_end()) => return,
                Ok(_) => {}
                Err(_) => panic!("openssl s_client: no {what} within {WAIT:?}"),
            }
        }
    };
    stdin
        .write_all(b"NICK bob\r\nUSER bob 0 * :Bob\r\nJOIN #r\r\n")
        .expect("write to s_client");
    wait_line("welcome (001)", &|l| l.contains(" 001 bob "));
    wait_line("JOIN echo", &|l| {
        l.starts_with(":bob!") && l.contains("JOIN")
    });
    alice.expect(
        "bob's join",
        |e| matches!(e, ClientEvent::Joined { nick, .. } if nick == "bob"),
    );
    stdin
        .write_all(b"PRIVMSG #r :hello over TLS\r\n")
        .expect("write to s_client");
    alice.expect(
        "bob's message",
        |e| matches!(e, ClientEvent::Message { text, .. } if text == "hello over TLS"),
    );
    alice.send(|c| c.say("r", "hello in plain text"));
    wait_line("alice's message", &|l| {
        l.starts_with(":alice!") && l.ends_with("PRIVMSG #r :hello in plain text")
    });
    stdin
        .write_all(b"QUIT :done\r\n")
        .expect("write to s_client");
    wait_line("the closing ERROR", &|l| l.starts_with("ERROR"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new certificate (as SIGHUP loads) serves new connections; open ones carry on.
#[test]
fn replaced_certificate_keeps_open_connections() {
    // The test clients trust the first (tls.rs); the second is new.
    let (first, second) = (tls::certs(), tls::make_certs());
    let config = TlsConfig::new(first.server.clone());
    let (_served, _addr, tls_addr) = serve(config.clone());
    tls::register(tls_addr);
    let mut old = TestClient::in_room(tls_addr, "old", "r");
    config.replace(second.server.clone());
    // The new certificate is the one offered now: the first one's trust fails...
    let mut tcp = TcpStream::connect(tls_addr).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn =
        rustls::ClientConnection::new(first.client.clone(), name.clone()).expect("client");
    let mut failed = None;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            failed = Some(e);
            break;
        }
    }
    assert!(failed.is_some(), "the old certificate is still offered");
    // ...and the second one's succeeds, sharing the room with the old connection.
    let mut tcp = TcpStream::connect(tls_addr).expect("connect");
    let mut conn = rustls::ClientConnection::new(second.client.clone(), name).expect("client");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .expect("handshake with the new certificate");
    }
    let mut new = TestClient::over(
        tls::Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
        "new",
    );
    new.send(|c| c.hello("new"));
    new.send(|c| c.join("r"));
    old.expect(
        "new's join",
        |e| matches!(e, ClientEvent::Joined { nick, .. } if nick == "new"),
    );
    old.send(|c| c.say("r", "still connected"));
    new.expect(
        "old's message",
        |e| matches!(e, ClientEvent::Message { text, .. } if text == "still connected"),
    );
    tls::unregister(tls_addr);
}
