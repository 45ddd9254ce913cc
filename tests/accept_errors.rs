//! Out of file descriptors: the server logs the failed accept, pauses and keeps serving.
//!
//! It uses up the whole process's descriptors, so it lives in a test binary of its own and
//! visits the runtimes one after another.

#[allow(dead_code)]
#[path = "conformance/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "conformance/tls.rs"]
mod tls;

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use client::{TestClient, WAIT};
use switchboard::core::{ClientEvent, Config};

/// A running server: its address, how to stop it, and the thread running it.
type Started = (SocketAddr, Box<dyn Fn()>, thread::JoinHandle<()>);

/// Starts a server.
type Start = fn(Config) -> Started;

/// Every log line of the process, kept for the test to search.
struct Collect(Mutex<Vec<String>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = record.args().to_string();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

static LOG: Collect = Collect(Mutex::new(Vec::new()));

/// Whether a log line since the last `clear_log` contains `needle`.
fn logged(needle: &str) -> bool {
    LOG.0.lock().unwrap().iter().any(|l| l.contains(needle))
}

fn clear_log() {
    LOG.0.lock().unwrap().clear();
}

#[cfg(feature = "smol")]
fn smol(config: Config) -> Started {
    let server = switchboard::smol::Server::bind("127.0.0.1:0", config).unwrap();
    let (addr, handle) = (server.local_addr().unwrap(), server.handle());
    let thread = thread::spawn(move || server.run_blocking());
    (addr, Box::new(move || handle.shutdown()), thread)
}

#[cfg(feature = "async-std")]
fn async_std(config: Config) -> Started {
    let server = switchboard::async_std::Server::bind("127.0.0.1:0", config).unwrap();
    let (addr, handle) = (server.local_addr().unwrap(), server.handle());
    let thread = thread::spawn(move || server.run_blocking());
    (addr, Box::new(move || handle.shutdown()), thread)
}

#[cfg(feature = "std")]
fn std_threads(config: Config) -> Started {
    let server = switchboard::threads::Server::bind("127.0.0.1:0", config).unwrap();
    let (addr, handle) = (server.local_addr().unwrap(), server.handle());
    let thread = thread::spawn(move || server.run().unwrap());
    (addr, Box::new(move || handle.shutdown()), thread)
}

/// Opens files until the process may open no more.
fn exhaust_descriptors() -> Vec<File> {
    let mut held = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        held.push(file);
        assert!(held.len() < 1_000_000, "no limit on open files");
    }
    held
}

fn survives_running_out_of_descriptors(name: &str, start: Start) {
    clear_log();
    let config = {
        let mut c = Config::default();
        c.msg_rate = 0;
        c
    };
    let (addr, shutdown, thread) = start(config);
    let mut alice = TestClient::connect(addr, "alice");
    let mut held = exhaust_descriptors();
    // One descriptor for bob's end; none is left for the server to accept it with.
    held.pop();
    let bob = TcpStream::connect(addr).expect("connect with the one free descriptor");
    let deadline = Instant::now() + WAIT;
    while !logged("accept failed") {
        assert!(
            Instant::now() < deadline,
            "{name}: no accept failure logged"
        );
        // The log has no wake-up to wait on; the deadline bounds this poll.
        thread::sleep(Duration::from_millis(5));
    }
    // The server kept serving alice meanwhile.
    alice.sync();
    drop(held);
    drop(bob);
    // And accepts again once descriptors are free.
    let mut carol = TestClient::hello(addr, "carol");
    let welcome = carol.expect("welcome", |e| matches!(e, ClientEvent::Welcome { .. }));
    assert!(matches!(welcome, ClientEvent::Welcome { .. }));
    shutdown();
    thread.join().expect("server thread");
}

#[test]
fn accept_errors_are_survived() {
    log::set_logger(&LOG).expect("the only logger");
    log::set_max_level(log::LevelFilter::Debug);
    #[cfg(feature = "smol")]
    survives_running_out_of_descriptors("smol", smol);
    #[cfg(feature = "async-std")]
    survives_running_out_of_descriptors("async-std", async_std);
    #[cfg(feature = "std")]
    survives_running_out_of_descriptors("std", std_threads);
}
