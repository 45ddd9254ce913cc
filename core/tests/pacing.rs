//! Quickcheck properties of output pacing: a sender held back by a recipient's full output
//! queue loses, duplicates and reorders none of its requests, the recipient's queue stays
//! within the high-water mark (plus one message) while it holds the sender back, and the
//! pause always ends: at the latest `outbound_stall_timeout` after it began, even if the
//! recipient never reads again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quickcheck::{quickcheck, Arbitrary, Gen};
use switchboard_core::{Client, ClientEvent, CloseMode, Config, ConnId, Server};

/// One thing that happens next.
#[derive(Debug, Clone)]
enum Op {
    /// The sender's client writes this many room messages.
    Send(u8),
    /// The adapter reads up to this many bytes of the sender (no more than the budget).
    Read(u16),
    /// The adapter writes up to this many bytes of the reader's output.
    WriteReader(u16),
    /// Time passes, in milliseconds; the adapter runs the core's timer if it is due.
    Wait(u16),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 4 {
            0 => Op::Send(u8::arbitrary(g) % 60 + 1),
            1 => Op::Read(u16::arbitrary(g) % 3000 + 1),
            2 => Op::WriteReader(u16::arbitrary(g) % 3000 + 1),
            _ => Op::Wait(u16::arbitrary(g) % 300),
        }
    }
}

/// The limits drawn: rate, inbound queue, high-water mark, outbound limit.
#[derive(Debug, Clone)]
struct Limits {
    rate: u32,
    inbound: usize,
    high_water: usize,
    max_outbound: usize,
}

impl Arbitrary for Limits {
    fn arbitrary(g: &mut Gen) -> Self {
        let high_water = [64, 300, 2048][usize::arbitrary(g) % 3];
        Limits {
            rate: [0, 0, 10, 100][usize::arbitrary(g) % 4],
            inbound: [128, 1024, 8192][usize::arbitrary(g) % 3],
            high_water,
            max_outbound: high_water * [4, 64][usize::arbitrary(g) % 2],
        }
    }
}

const STALL: Duration = Duration::from_millis(400);
/// Longest frame of one room message here (`r`, a short nick, a number): a bound.
const MESSAGE: usize = 64;

struct Run {
    server: Server,
    now: Instant,
    /// Sender then reader.
    clients: [(ConnId, Client); 2],
    /// Sender bytes the adapter has not read.
    wire: Vec<u8>,
    /// Output taken from the core, not yet written, per connection.
    out: HashMap<ConnId, Vec<u8>>,
    /// Message numbers each client heard, in order.
    heard: [Vec<u64>; 2],
    reader_closed: bool,
    /// Since when the reader's output has been above the mark, as last seen.
    above_since: Option<Instant>,
    limits: Limits,
}

impl Run {
    fn take(&mut self) -> Result<(), String> {
        while let Some(t) = self.server.poll_transmit() {
            self.out
                .entry(t.conn)
                .or_default()
                .extend_from_slice(&t.data);
        }
        while let Some(c) = self.server.poll_close() {
            if c.conn == self.clients[0].0 {
                let why: Vec<_> = std::iter::from_fn(|| self.server.poll_event()).collect();
                return Err(format!("the sender was closed: {why:?}"));
            }
            match c.mode {
                CloseMode::Flush => self.reader_closed = true,
                CloseMode::Now => self.server.handle_close(c.conn, self.now),
            }
        }
        while self.server.poll_readable().is_some() {}
        Ok(())
    }

    fn write(&mut self, who: usize, n: usize) -> Result<usize, String> {
        self.take()?;
        let id = self.clients[who].0;
        let out = self.out.entry(id).or_default();
        let n = n.min(out.len());
        if n > 0 {
            let data: Vec<u8> = out.drain(..n).collect();
            self.server.handle_written(id, n);
            self.clients[who]
                .1
                .handle_input(&data, self.now)
                .map_err(|e| e.to_string())?;
        }
        Ok(n)
    }

    fn read(&mut self, n: usize) -> usize {
        let id = self.clients[0].0;
        let n = n.min(self.wire.len()).min(self.server.read_budget(id));
        if n > 0 {
            self.server.handle_input(id, &self.wire[..n], self.now);
            self.wire.drain(..n);
        }
        n
    }

    fn timer(&mut self) {
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
    }

    fn step(&mut self, op: &Op, next: &mut u64) -> Result<(), String> {
        match op {
            Op::Send(n) => {
                for _ in 0..*n {
                    self.clients[0].1.say("r", &next.to_string());
                    *next += 1;
                }
            }
            Op::Read(n) => {
                self.read(usize::from(*n));
            }
            Op::WriteReader(n) => {
                self.write(1, usize::from(*n))?;
            }
            Op::Wait(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timer();
            }
        }
        // The sender reads what it is sent, its own messages included: only the reader
        // may be slow.
        self.write(0, usize::MAX)?;
        self.take()?;
        self.settle()
    }

    /// Collects what the clients heard and checks the invariants.
    fn settle(&mut self) -> Result<(), String> {
        if let Some(bytes) = self.clients[0].1.poll_transmit() {
            self.wire.extend_from_slice(&bytes);
        }
        for who in 0..2 {
            while let Some(ev) = self.clients[who].1.poll_event() {
                match ev {
                    ClientEvent::Message { text, .. } => {
                        self.heard[who].push(text.parse().map_err(|_| format!("bad text {text}"))?)
                    }
                    ClientEvent::Error { code, message, .. } => {
                        return Err(format!("error {code}: {message}"))
                    }
                    _ => {}
                }
            }
            // In order, exactly once, nothing skipped: a prefix of what was sent.
            let heard = &self.heard[who];
            if heard.iter().enumerate().any(|(k, n)| *n != k as u64) {
                return Err(format!("client {who} heard {heard:?}"));
            }
        }
        // While it holds the sender back, the reader's queue passes the mark by at most one
        // message; only once it has held it back for the stall timeout may it grow further.
        let reader = self.server.outbound_bytes(self.clients[1].0);
        if reader > self.limits.high_water {
            let since = *self.above_since.get_or_insert(self.now);
            if reader > self.limits.high_water + MESSAGE && self.now < since + STALL {
                return Err(format!(
                    "the reader holds {reader} bytes, past the mark {} and one message",
                    self.limits.high_water
                ));
            }
        } else {
            self.above_since = None;
        }
        Ok(())
    }
}

fn paced(limits: Limits, ops: Vec<Op>) -> Result<(), String> {
    let mut config = Config::default();
    config.msg_rate = limits.rate;
    config.msg_burst = 5;
    config.max_inbound_bytes = limits.inbound;
    config.outbound_high_water = limits.high_water;
    config.max_outbound_bytes = limits.max_outbound;
    config.outbound_stall_timeout = STALL;
    config.ping_interval = Duration::from_secs(3600);
    config.idle_timeout = Duration::from_secs(7200);
    let now = Instant::now();
    let mut server = Server::new(config);
    let mut clients = [
        (server.open(now), Client::new("sender")),
        (server.open(now), Client::new("reader")),
    ];
    for (_, c) in &mut clients {
        c.set_paced(false);
        c.join("r");
    }
    let mut run = Run {
        server,
        now,
        clients,
        wire: Vec::new(),
        out: HashMap::new(),
        heard: [Vec::new(), Vec::new()],
        reader_closed: false,
        above_since: None,
        limits: limits.clone(),
    };
    // Both sign in and join before the ops begin.
    let reader = run.clients[1].0;
    if let Some(bytes) = run.clients[1].1.poll_transmit() {
        run.server.handle_input(reader, &bytes, now);
    }
    run.settle()?;
    run.read(usize::MAX);
    run.take()?;
    run.write(0, usize::MAX)?;
    run.write(1, usize::MAX)?;
    let mut next = 0u64;
    for op in &ops {
        run.step(op, &mut next)?;
    }
    // Then the reader never reads again, and the sender's adapter does its job: every
    // request is still handled, at the latest a stall timeout (and the rate) later.
    let began = run.now;
    for _ in 0..100_000 {
        if run.heard[0].len() as u64 == next {
            break;
        }
        let moved = run.read(usize::MAX) + run.write(0, usize::MAX)?;
        run.take()?;
        run.settle()?;
        if moved == 0 {
            let Some(at) = run.server.poll_timeout() else {
                return Err("paused with no deadline: the pause never ends".into());
            };
            run.now = run.now.max(at);
            run.timer();
            run.take()?;
            run.settle()?;
        }
    }
    if run.heard[0].len() as u64 != next {
        return Err(format!("the sender heard {} of {next}", run.heard[0].len()));
    }
    if limits.rate == 0 && run.now > began + STALL {
        return Err(format!(
            "the sender was held {:?} after the reader stopped, past the stall timeout",
            run.now - began
        ));
    }
    Ok(())
}

quickcheck! {
    fn pacing_loses_nothing_and_always_ends(limits: Limits, ops: Vec<Op>) -> bool {
        match paced(limits.clone(), ops.clone()) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("{limits:?} {ops:?}: {e}");
                false
            }
        }
    }
}
