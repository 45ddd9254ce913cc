//! Room history over real sockets and a real SQLite file, on every runtime: replay on
//! join, paging, restart on the same data directory, bad requests, and `kill -9`.

use ::std::io::{BufRead, BufReader};
use ::std::net::SocketAddr;
use ::std::path::{Path, PathBuf};
use ::std::process::{Child, Command, Stdio};
use ::std::sync::atomic::{AtomicU32, Ordering};
use ::std::time::Duration;

use switchboard::core::{ClientEvent, Config, ErrorCode, HistoryOptions};
use switchboard::store::{History, Retention, SqliteStore, Sync};

use crate::client::TestClient;
use crate::runtimes::Running;

/// Starts a server keeping history in `dir`.
pub type StartWith = fn(Config, &Path) -> Running;

/// A runtime: how to start it in this process, and its name for a child process.
pub type Runtime = (StartWith, &'static str);

fn config() -> Config {
    let mut c = Config::default();
    c.msg_rate = 0;
    c.close_linger = Duration::from_secs(1);
    c
}

fn history(dir: &Path) -> History {
    let store = SqliteStore::open(dir, Retention::default(), Sync::Normal).expect("open store");
    History::new(Box::new(store), HistoryOptions::default()).expect("read rooms")
}

/// A fresh directory under the system's temporary one, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = ::std::env::temp_dir().join(format!(
            "switchboard-conformance-{}-{}",
            ::std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = ::std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = ::std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(feature = "smol")]
pub fn smol(config: Config, dir: &Path) -> Running {
    let history = history(dir);
    crate::runtimes::smol_with(config, |s| s.with_history(history))
}

#[cfg(feature = "async-std")]
pub fn async_std(config: Config, dir: &Path) -> Running {
    let history = history(dir);
    crate::runtimes::async_std_with(config, |s| s.with_history(history))
}

#[cfg(feature = "std")]
pub fn std(config: Config, dir: &Path) -> Running {
    let history = history(dir);
    crate::runtimes::std_with(config, |s| s.with_history(history))
}

/// Says `n` messages `m1`..`mn` and waits for the echo of the last, which promises all
/// are stored.
fn say_many(c: &mut TestClient, room: &str, n: usize) {
    for k in 1..=n {
        c.queue(|cl| cl.say(room, &format!("m{k}")));
    }
    c.flush();
    let last = format!("m{n}");
    c.expect(
        "the last echo",
        |e| matches!(e, ClientEvent::Message { text, .. } if *text == last),
    );
}

/// The replayed messages up to the replay's end: (id, text), and the end's cursor and flag.
fn replay(c: &mut TestClient, room: &str) -> (Vec<(u64, String)>, u64, bool) {
    let mut rows = Vec::new();
    loop {
        let e = c.expect("a replay", |e| {
            matches!(
                e,
                ClientEvent::Replayed { .. } | ClientEvent::HistoryEnd { .. }
            )
        });
        match e {
            ClientEvent::Replayed {
                room: r, id, text, ..
            } if r.eq_ignore_ascii_case(room) => rows.push((id, text)),
            ClientEvent::HistoryEnd { oldest, more, .. } => return (rows, oldest, more),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Pages back from the newest message to the first; every stored (id, text), ascending.
fn page_all(c: &mut TestClient, room: &str) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        c.send(|cl| cl.history(room, before, 200));
        let (mut page, oldest, more) = replay(c, room);
        page.append(&mut all);
        all = page;
        if !more {
            return all;
        }
        before = oldest;
    }
}

fn numbered(range: ::std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
    range.map(|k| (k, format!("m{k}"))).collect()
}

pub fn join_after_200_sees_the_last_50_then_live((start, _): Runtime) {
    let dir = Scratch::new();
    let server = start(config(), &dir.0);
    let mut alice = TestClient::in_room(server.addr, "alice", "hist");
    say_many(&mut alice, "hist", 200);
    let mut bob = TestClient::connect(server.addr, "bob");
    bob.send(|c| c.join("hist"));
    let (rows, oldest, more) = replay(&mut bob, "hist");
    assert_eq!(rows, numbered(151..=200));
    assert_eq!((oldest, more), (151, true));
    alice.send(|c| c.say("hist", "live"));
    let live = bob.expect("the live message", |e| {
        matches!(
            e,
            ClientEvent::Message { .. } | ClientEvent::Replayed { .. }
        )
    });
    assert!(
        matches!(&live, ClientEvent::Message { seq: 201, text, .. } if text == "live"),
        "{live:?}"
    );
}

pub fn paging_back_reaches_the_first_message((start, _): Runtime) {
    let dir = Scratch::new();
    let server = start(config(), &dir.0);
    let mut alice = TestClient::in_room(server.addr, "alice", "hist");
    replay(&mut alice, "hist");
    say_many(&mut alice, "hist", 450);
    assert_eq!(page_all(&mut alice, "hist"), numbered(1..=450));
}

pub fn restart_on_the_same_data_dir_serves_the_same_history((start, _): Runtime) {
    let dir = Scratch::new();
    {
        let server = start(config(), &dir.0);
        let mut alice = TestClient::in_room(server.addr, "alice", "Hist");
        alice.send(|c| c.set_topic("Hist", "kept across restarts"));
        say_many(&mut alice, "Hist", 60);
        drop(server);
    }
    let server = start(config(), &dir.0);
    let mut bob = TestClient::connect(server.addr, "bob");
    bob.send(|c| c.join("hist"));
    let topic = bob.expect("the topic", |e| matches!(e, ClientEvent::Topic { .. }));
    assert_eq!(
        topic,
        ClientEvent::Topic {
            room: "Hist".into(),
            topic: "kept across restarts".into(),
            by: "alice".into()
        }
    );
    let (rows, _, more) = replay(&mut bob, "hist");
    assert_eq!(rows, numbered(11..=60));
    assert!(more);
    // Ids go on where they stopped.
    bob.send(|c| c.say("hist", "after"));
    let echo = bob.expect("echo", |e| matches!(e, ClientEvent::Message { .. }));
    assert!(
        matches!(echo, ClientEvent::Message { seq: 61, .. }),
        "{echo:?}"
    );
    assert_eq!(page_all(&mut bob, "hist").len(), 61);
}

pub fn bad_history_requests_get_clear_errors((start, _): Runtime) {
    let dir = Scratch::new();
    let server = start(config(), &dir.0);
    let mut alice = TestClient::in_room(server.addr, "alice", "hist");
    replay(&mut alice, "hist");
    say_many(&mut alice, "hist", 3);
    let cases: [(&str, u64, u16, ErrorCode); 5] = [
        ("elsewhere", 0, 10, ErrorCode::NotInRoom),
        ("hist", 0, 0, ErrorCode::InvalidLimit),
        ("hist", 0, u16::MAX, ErrorCode::InvalidLimit),
        ("hist", 5, 10, ErrorCode::InvalidCursor),
        ("hist", u64::MAX, 10, ErrorCode::InvalidCursor),
    ];
    for (room, before, limit, code) in cases {
        let seq = alice.send(|c| c.history(room, before, limit));
        let e = alice.expect("an error", |e| matches!(e, ClientEvent::Error { .. }));
        assert!(
            matches!(&e, ClientEvent::Error { code: c, request_seq, message, .. }
                if *c == code && *request_seq == seq && !message.is_empty()),
            "{room} {before} {limit}: {e:?}"
        );
    }
    // Still served after all that.
    alice.send(|c| c.history("hist", 0, 10));
    assert_eq!(replay(&mut alice, "hist").0, numbered(1..=3));
}

/// Runs a server with history in a child process (this test binary, re-run), so that it
/// can be killed with SIGKILL.
struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn start(runtime: &str, dir: &Path) -> ChildServer {
        let exe = ::std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "history::child_server",
                "--ignored",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env("SWITCHBOARD_CHILD_RUNTIME", runtime)
            .env("SWITCHBOARD_CHILD_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child server");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    // The test harness may print the test's name on the same line.
                    if let Some((_, addr)) = line.split_once("child listening on ") {
                        break addr.trim().parse().expect("child address");
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("the child server did not start");
                }
            }
        };
        // The child's further output is not needed; its pipe may close.
        drop(lines);
        ChildServer { child, addr }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side of [`kill_9_during_a_burst_loses_no_echoed_message`].
#[test]
#[ignore = "a child process of the kill -9 scenario, started by it"]
fn child_server() {
    let (Ok(runtime), Ok(dir)) = (
        ::std::env::var("SWITCHBOARD_CHILD_RUNTIME"),
        ::std::env::var("SWITCHBOARD_CHILD_DIR"),
    ) else {
        panic!("run by the kill -9 scenario only");
    };
    let start: StartWith = match runtime.as_str() {
        #[cfg(feature = "smol")]
        "smol" => smol,
        #[cfg(feature = "async-std")]
        "async-std" => async_std,
        #[cfg(feature = "std")]
        "std" => std,
        other => panic!("unknown runtime {other}"),
    };
    let server = start(config(), Path::new(&dir));
    println!("child listening on {}", server.addr);
    // Runs until killed.
    loop {
        ::std::thread::park();
    }
}

pub fn kill_9_during_a_burst_loses_no_echoed_message((start, name): Runtime) {
    let dir = Scratch::new();
    let mut echoed = Vec::new();
    {
        let child = ChildServer::start(name, &dir.0);
        let mut alice = TestClient::in_room(child.addr, "alice", "burst");
        let total = 3000;
        for k in 1..=total {
            alice.queue(|c| c.say("burst", &format!("m{k}")));
        }
        alice.flush();
        // Kill it in the middle of the burst.
        while echoed.len() < total / 3 {
            match alice.expect("an echo", |e| matches!(e, ClientEvent::Message { .. })) {
                ClientEvent::Message { seq, text, .. } => echoed.push((seq, text)),
                _ => unreachable!(),
            }
        }
        // Dropping the child kills it with SIGKILL.
        drop(child);
    }
    let server = start(config(), &dir.0);
    let mut bob = TestClient::in_room(server.addr, "bob", "burst");
    replay(&mut bob, "burst");
    let stored = page_all(&mut bob, "burst");
    let missing: Vec<_> = echoed.iter().filter(|m| !stored.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} echoed messages were lost, the first {:?} ({} stored)",
        missing.len(),
        echoed.len(),
        missing.first(),
        stored.len()
    );
}

/// Stamps out one test per history scenario and runtime.
macro_rules! history_conformance {
    ($($scenario:ident),* $(,)?) => {
        #[cfg(feature = "smol")]
        mod smol {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::smol, "smol"))
            })*
        }
        #[cfg(feature = "async-std")]
        mod async_std {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::async_std, "async-std"))
            })*
        }
        #[cfg(feature = "std")]
        mod std {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::std, "std"))
            })*
        }
    };
}

history_conformance!(
    join_after_200_sees_the_last_50_then_live,
    paging_back_reaches_the_first_message,
    restart_on_the_same_data_dir_serves_the_same_history,
    bad_history_requests_get_clear_errors,
    kill_9_during_a_burst_loses_no_echoed_message,
);
