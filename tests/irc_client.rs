//! A real IRC client, Debian's `ii`, chatting with a native client on a smol server.
//!
//! ii keeps its session in files: `DIR/HOST/in` (a FIFO taking commands such as `/j #room`),
//! `DIR/HOST/out` (server messages), and the same pair per channel and per query partner.
//! Without ii installed the test prints a skip line, unless SWITCHBOARD_REQUIRE_II=1 (as in
//! CI), where that is a failure.

#![cfg(all(unix, feature = "smol"))]

#[allow(dead_code)]
#[path = "conformance/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "conformance/tls.rs"]
mod tls;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use client::{TestClient, WAIT};
use switchboard::core::{ClientEvent, Config};
use switchboard::smol::{Handle, Server};

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

/// The ii process and its directory: killed and removed when dropped, whatever happened.
struct Ii {
    child: Child,
    dir: PathBuf,
}

impl Ii {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ii {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `ii` is on the PATH, if anywhere.
fn find_ii() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ii"))
        .find(|p| p.is_file())
}

/// Polls `check` until it gives a value; fails past [`WAIT`]. Files have no wake-up to wait
/// on, so this polls; the deadline bounds it.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>, shown: impl Fn() -> String) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {WAIT:?}; {}",
            shown()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The file's text, or empty while it does not exist.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits for a line of the file at `path` that ends with `suffix` (ii puts a time stamp
/// before each line).
fn wait_for_line(path: &Path, suffix: &str) {
    wait_for(
        &format!("line ending in {suffix:?} in {}", path.display()),
        || {
            read(path)
                .lines()
                .any(|l| l.ends_with(suffix))
                .then_some(())
        },
        || format!("it holds:\n{}", read(path)),
    );
}

/// Writes one line to one of ii's FIFOs.
fn write_fifo(path: &Path, line: &str) {
    wait_for(
        &format!("FIFO {}", path.display()),
        || path.exists().then_some(()),
        String::new,
    );
    // Opened for reading too, which on Linux never blocks, even if ii were not reading;
    // a short line fits the pipe's buffer either way.
    let mut fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    fifo.write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[test]
fn ii_chats_with_a_native_client() {
    let Some(ii_path) = find_ii() else {
        if std::env::var_os("SWITCHBOARD_REQUIRE_II").is_some_and(|v| v == "1") {
            panic!("ii is not installed and SWITCHBOARD_REQUIRE_II=1 (apt-get install ii)");
        }
        // Straight to standard error: the test harness would hide a println.
        let _ = writeln!(
            std::io::stderr(),
            "irc_client: SKIPPED: ii is not installed (apt-get install ii; \
             SWITCHBOARD_REQUIRE_II=1 makes this a failure)"
        );
        return;
    };

    let config = {
        let mut c = Config::default();
        c.msg_rate = 0;
        c
    };
    let server = Server::bind("127.0.0.1:0", config).expect("bind");
    let addr = server.local_addr().expect("local_addr");
    let _served = Served {
        handle: server.handle(),
        thread: Some(thread::spawn(move || server.run_blocking())),
    };

    let mut alice = TestClient::in_room(addr, "alice", "room");

    let dir = std::env::temp_dir().join(format!("switchboard-ii-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new(&ii_path)
        .args(["-s", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-n", "iibot", "-f", "ii test"])
        .arg("-i")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ii_path.display()));
    let mut ii = Ii { child, dir };
    let host = ii.dir.join("127.0.0.1");
    let chan = host.join("#room");

    // Registered: the welcome is in the server's out file.
    wait_for_line(
        &host.join("out"),
        "Welcome to the Switchboard network, iibot!~iibot@switchboard.local",
    );
    write_fifo(&host.join("in"), "/j #room");
    alice.expect(
        "ii's join",
        |e| matches!(e, ClientEvent::Joined { room, nick } if room == "room" && nick == "iibot"),
    );

    // Native to ii, in the room and directly.
    alice.send(|c| c.say("room", "hello, ii"));
    wait_for_line(&chan.join("out"), "<alice> hello, ii");
    alice.send(|c| c.whisper("iibot", "psst"));
    wait_for_line(&host.join("alice").join("out"), "<alice> psst");

    // ii to native.
    write_fifo(&chan.join("in"), "hello, alice");
    alice.expect("ii's message", |e| {
        matches!(e, ClientEvent::Message { room, from, text, .. }
            if room == "room" && from == "iibot" && text == "hello, alice")
    });

    // ii gone without a QUIT: the room is told, the nick is free.
    ii.kill();
    alice.expect(
        "ii's departure",
        |e| matches!(e, ClientEvent::Left { nick, reason, .. } if nick == "iibot" && reason == "connection lost"),
    );
    TestClient::connect(addr, "iibot");
}
