//! An in-memory harness for core's integration tests: one `Server`, native `Client`s and raw
//! connections wired together through the public API only, as an adapter would drive them,
//! keeping every byte the server sent each connection for the tests to inspect.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_core::ConnId;
use switchboard_core::{Client, ClientEvent, CloseMode, Config, ErrorCode, Server};

/// A server and its peers in memory.
pub struct Net {
    pub server: Server,
    pub now: Instant,
    /// Native clients, by index.
    pub clients: Vec<(ConnId, Client)>,
    /// Bytes peers wrote that the server has not read yet.
    wire: HashMap<ConnId, Vec<u8>>,
    /// Everything the server wrote to each connection, in order (raw connections: since
    /// the last `take_text`).
    pub output: HashMap<ConnId, Vec<u8>>,
}

impl Net {
    pub fn new(mut config: Config) -> Net {
        // About the rules, not when output leaves: coalescing (Config::flush_delay) is
        // tested in core/src/server/tests_flush.rs and by the properties, which run timers.
        config.flush_delay = Duration::ZERO;
        Net {
            server: Server::new(config),
            now: Instant::now(),
            clients: Vec::new(),
            wire: HashMap::new(),
            output: HashMap::new(),
        }
    }

    /// Connects a native client asking for `nick` and expects its welcome; returns its index.
    /// The client accepts frames of any length, so the tests (not its decoder) notice a
    /// frame over the server's limit.
    pub fn native(&mut self, nick: &str) -> usize {
        let id = self.server.open(self.now);
        let mut client = Client::with_max_frame_len(nick, u32::MAX);
        client.set_paced(false);
        self.clients.push((id, client));
        let i = self.clients.len() - 1;
        self.pump();
        let ev = self.events(i);
        assert!(
            matches!(ev.first(), Some(ClientEvent::Welcome { nick: n, .. }) if n == nick),
            "{nick}: {ev:?}"
        );
        i
    }

    /// Opens a connection driven with raw bytes (`send`); returns its id.
    pub fn raw(&mut self) -> ConnId {
        let id = self.server.open(self.now);
        self.output.entry(id).or_default();
        id
    }

    /// Writes bytes from a raw connection and lets everything settle.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.wire.entry(id).or_default().extend_from_slice(bytes);
        self.pump();
    }

    /// What a raw connection received since the last call, as text.
    pub fn take_text(&mut self, id: ConnId) -> String {
        let bytes = std::mem::take(self.output.entry(id).or_default());
        String::from_utf8(bytes).expect("IRC output is UTF-8")
    }

    pub fn id(&self, i: usize) -> ConnId {
        self.clients[i].0
    }

    pub fn client(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i].1
    }

    /// Moves bytes both ways until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (id, client) in &mut self.clients {
                if let Some(bytes) = client.poll_transmit() {
                    self.wire.entry(*id).or_default().extend_from_slice(&bytes);
                }
            }
            for (id, wire) in &mut self.wire {
                let n = wire.len().min(self.server.read_budget(*id));
                if n > 0 {
                    self.server.handle_input(*id, &wire[..n], self.now);
                    wire.drain(..n);
                    moved = true;
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                self.server.handle_written(t.conn, t.data.len());
                if let Some((_, c)) = self.clients.iter_mut().find(|(id, _)| *id == t.conn) {
                    c.handle_input(&t.data, self.now)
                        .expect("server sent a bad frame");
                }
                self.output
                    .entry(t.conn)
                    .or_default()
                    .extend_from_slice(&t.data);
                moved = true;
            }
            while let Some(close) = self.server.poll_close() {
                if close.mode == CloseMode::Now {
                    self.server.handle_close(close.conn, self.now);
                }
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    /// Events client `i` has not taken yet.
    pub fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.clients[i].1.poll_event()).collect()
    }

    /// Lets time pass and runs the server's timer.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
        self.pump();
    }
}

/// The codes of the errors among `events`, in order.
pub fn errors(events: &[ClientEvent]) -> Vec<ErrorCode> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}
