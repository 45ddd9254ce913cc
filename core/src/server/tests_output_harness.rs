//! The native test harness the output tests share (tests_flush.rs, tests_pacing.rs): a
//! server, native clients in room `r`, and an adapter the test drives step by step. It
//! reads what a client wrote up to the read budget, runs the timer, and writes each
//! connection's output either when the test says so (`World::new`) or the moment it is
//! taken, as an idle socket takes it (`World::writing_at_once`).

use std::collections::HashMap;
use std::time::Instant;

use super::{CloseMode, Server};
use crate::client::{Client, ClientEvent};
use crate::{Config, ConnId};

/// A server, its clients, and the adapter between them.
pub(super) struct World {
    pub server: Server,
    pub now: Instant,
    pub clients: Vec<(ConnId, Client)>,
    /// Output taken from the server and not yet written, per connection.
    pub out: HashMap<ConnId, Vec<u8>>,
    /// Connections the server closed (Flush), in order.
    pub closed: Vec<ConnId>,
    /// Client bytes the server has not read yet.
    wire: HashMap<ConnId, Vec<u8>>,
    /// Transmits taken per connection since `writes` last read them.
    writes: HashMap<ConnId, usize>,
    /// Output is written as it is taken, not by `write`.
    at_once: bool,
}

impl World {
    /// A server with `config` whose output is written only when `write` is called.
    pub fn new(config: Config) -> Self {
        World {
            server: Server::new(config),
            now: crate::test_clock::start(),
            clients: Vec::new(),
            out: HashMap::new(),
            closed: Vec::new(),
            wire: HashMap::new(),
            writes: HashMap::new(),
            at_once: false,
        }
    }

    /// A server with `config` whose output is written the moment it is taken.
    pub fn writing_at_once(config: Config) -> Self {
        World {
            at_once: true,
            ..World::new(config)
        }
    }

    /// A signed-in member of room `r`, with everything anyone was sent delivered and read,
    /// and the events and write counts that caused forgotten.
    pub fn member(&mut self, nick: &str) -> usize {
        let id = self.server.open(self.now);
        let mut client = Client::new(nick);
        client.set_paced(false);
        client.join("r");
        self.clients.push((id, client));
        self.settle_all();
        self.run_window();
        for j in 0..self.clients.len() {
            self.events(j);
            self.writes(j);
        }
        self.clients.len() - 1
    }

    pub fn id(&self, i: usize) -> ConnId {
        self.clients[i].0
    }

    pub fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.clients[i].1.poll_event()).collect()
    }

    /// Texts of the room messages client `i` heard, in order.
    pub fn said(&mut self, i: usize) -> Vec<String> {
        self.events(i)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Message { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    }

    /// Client `i` says `text` in room `r`, and the server reads it.
    pub fn say(&mut self, i: usize, text: &str) {
        self.clients[i].1.say("r", text);
        self.read(i);
    }

    /// Queues `n` room messages from client `i`, numbered from `from`, unread.
    pub fn say_numbered(&mut self, i: usize, from: usize, n: usize) {
        for k in from..from + n {
            self.clients[i].1.say("r", &k.to_string());
        }
    }

    /// The adapter's read of client `i`: what the client wrote, up to the read budget;
    /// returns how many bytes.
    pub fn read(&mut self, i: usize) -> usize {
        let id = self.id(i);
        let wire = self.wire.entry(id).or_default();
        if let Some(bytes) = self.clients[i].1.poll_transmit() {
            wire.extend_from_slice(&bytes);
        }
        let n = wire.len().min(self.server.read_budget(id));
        if n > 0 {
            self.server.handle_input(id, &wire[..n], self.now);
            wire.drain(..n);
        }
        self.take();
        n
    }

    /// Takes every transmit the server has (writing it, when writing at once) and every
    /// close.
    pub fn take(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            *self.writes.entry(t.conn).or_default() += 1;
            if !self.at_once {
                self.out
                    .entry(t.conn)
                    .or_default()
                    .extend_from_slice(&t.data);
                continue;
            }
            self.server.handle_written(t.conn, t.data.len());
            if let Some((_, c)) = self.clients.iter_mut().find(|(id, _)| *id == t.conn) {
                c.handle_input(&t.data, self.now).expect("a good frame");
            }
        }
        while let Some(c) = self.server.poll_close() {
            match c.mode {
                CloseMode::Flush => self.closed.push(c.conn),
                CloseMode::Now => self.server.handle_close(c.conn, self.now),
            }
        }
    }

    /// The adapter writes client `i`'s output, all of it; returns how many bytes.
    pub fn write(&mut self, i: usize) -> usize {
        self.take();
        let id = self.id(i);
        let data = std::mem::take(self.out.entry(id).or_default());
        if !data.is_empty() {
            self.server.handle_written(id, data.len());
            self.clients[i]
                .1
                .handle_input(&data, self.now)
                .expect("a good frame");
        }
        self.take();
        data.len()
    }

    /// Transmits connection `i` got since the last call.
    pub fn writes(&mut self, i: usize) -> usize {
        self.writes.remove(&self.id(i)).unwrap_or(0)
    }

    /// Reads and writes everyone, and runs due timers, until nothing moves.
    pub fn settle_all(&mut self) {
        loop {
            let mut moved = 0;
            for i in 0..self.clients.len() {
                moved += self.read(i) + self.write(i);
            }
            if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                self.server.handle_timeout(self.now);
                moved += 1;
            }
            if moved == 0 {
                return;
            }
        }
    }

    /// Runs the timer if it is due, as an adapter does.
    pub fn timer(&mut self) {
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        self.take();
    }

    /// Moves the clock to `at` and runs the deadlines, as an adapter's timer does.
    pub fn at(&mut self, at: Instant) {
        self.now = at;
        self.server.handle_timeout(at);
        self.take();
    }

    /// Runs the clock to the end of an open coalescing window (`Config::flush_delay`), if
    /// one is open.
    pub fn run_window(&mut self) {
        let delay = self.server.config().flush_delay;
        if let Some(at) = self
            .server
            .poll_timeout()
            .filter(|&t| t <= self.now + delay)
        {
            // Never back: a deadline already due runs now.
            self.at(at.max(self.now));
        }
    }
}
