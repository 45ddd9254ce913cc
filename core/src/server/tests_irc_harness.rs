//! The raw IRC test harness the IRC unit tests share: a server, IRC connections read as
//! lines, and the store ops the server asked for, for the tests that run them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Server;
use crate::history::StoreOp;
use crate::{Config, ConnId};

/// The test server's configuration: no rate limit, named `irc.test`.
pub(super) fn config() -> Config {
    Config {
        msg_rate: 0,
        server_name: "irc.test".into(),
        // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
        flush_delay: std::time::Duration::ZERO,
        ..Config::default()
    }
}

/// Whether any of `lines` contains `needle`.
pub(super) fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// A server with raw IRC connections.
pub(super) struct RawIrc {
    pub server: Server,
    pub now: Instant,
    /// What each connection received, not yet taken.
    pub out: HashMap<ConnId, String>,
    /// Store ops polled, not yet run.
    pub queue: Vec<StoreOp>,
}

impl RawIrc {
    /// A server with [`config`].
    pub fn new() -> Self {
        let now = crate::test_clock::start();
        Self::with(Server::new(config()), now)
    }

    pub fn with(server: Server, now: Instant) -> Self {
        RawIrc {
            server,
            now,
            out: HashMap::new(),
            queue: Vec::new(),
        }
    }

    /// A registered IRC client with the capabilities `caps` (space-separated, each
    /// acknowledged), its welcome taken.
    pub fn irc(&mut self, nick: &str, caps: &str) -> ConnId {
        let id = self.server.open(self.now);
        let mut hello = String::new();
        if !caps.is_empty() {
            hello.push_str(&format!("CAP LS 302\r\nCAP REQ :{caps}\r\n"));
        }
        hello.push_str(&format!(
            "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\n"
        ));
        self.send(id, &hello);
        let lines = self.take(id);
        if !caps.is_empty() {
            assert!(has(&lines, " ACK :"), "{lines:?}");
        }
        id
    }

    /// `text` from `id`, then everything the server queued.
    pub fn send(&mut self, id: ConnId, text: &str) {
        self.server.handle_input(id, text.as_bytes(), self.now);
        self.pump();
    }

    /// Takes the server's output, written in full, and its store ops.
    pub fn pump(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            self.server.handle_written(t.conn, t.data.len());
            let text = String::from_utf8_lossy(&t.data).into_owned();
            self.out.entry(t.conn).or_default().push_str(&text);
        }
        while let Some(op) = self.server.poll_store() {
            self.queue.push(op);
        }
    }

    /// The lines `id` received since last asked.
    pub fn take(&mut self, id: ConnId) -> Vec<String> {
        let text = self.out.remove(&id).unwrap_or_default();
        text.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }
}
