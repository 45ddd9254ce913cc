//! A redis-server of the test's own on a free loopback port, killed when dropped.
//!
//! Shared by the bus tests and the cluster tests (which include this file by path).
//! Without a `redis-server` binary a test skips, saying why, unless it runs in CI
//! (`CI=true`) or `SWITCHBOARD_REQUIRE_REDIS` is set: there it fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh redis-server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

static DIRS: AtomicU64 = AtomicU64::new(0);

/// Whether a missing redis-server must fail the test instead of skipping it.
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("SWITCHBOARD_REQUIRE_REDIS").is_some()
}

/// Whether `redis-server` can be run; when not, says why (and fails in CI).
pub fn available() -> bool {
    match Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => true,
        outcome => {
            let why =
                format!("redis-server cannot be run ({outcome:?}); install Debian's redis-server");
            assert!(!required(), "{why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// A free port on 127.0.0.1 (free when asked; redis-server binds it just after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (skip) without the binary.
    pub fn start() -> Option<RedisServer> {
        if !available() {
            return None;
        }
        // Another process may take the free port first: try a few.
        let mut last = None;
        for _ in 0..5 {
            let mut server = RedisServer::stopped(free_port());
            match server.restart() {
                Ok(()) => return Some(server),
                Err(e) => last = Some(e),
            }
        }
        panic!("cannot start redis-server: {last:?}");
    }

    /// One that is not running yet, for `port` (start it with [`RedisServer::restart`]).
    pub fn stopped(port: u16) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        RedisServer {
            child: None,
            port,
            dir,
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts it (again) on its port and waits until it answers PING.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!("redis-server exited ({status}): {log}"));
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("redis-server did not answer PING in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }

    /// Connections it has now, this one's own excepted (0 if it does not answer).
    pub fn clients(&self) -> usize {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reader = std::io::BufReader::new(&stream);
        if (&stream).write_all(b"CLIENT LIST\r\n").is_err() {
            return 0;
        }
        let mut header = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut header).is_err() {
            return 0;
        }
        let Some(len) = header
            .trim()
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return 0;
        };
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return 0;
        }
        body.split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .count()
            .saturating_sub(1)
    }

    /// Waits until it has at least `n` connections besides the caller's; fails after
    /// `limit`.
    pub fn expect_clients(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.clients() < n {
            assert!(
                Instant::now() < deadline,
                "redis has {} connections, not {n}, after {limit:?}",
                self.clients()
            );
            // Connections have no notification to wait on; bounded by `limit`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL (no goodbye to its clients) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
