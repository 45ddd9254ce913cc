//! Quickcheck properties of flood control by backpressure: whatever the interleaving of
//! input, timers and writes, a client's requests are all handled, in order, exactly once,
//! and the server never holds more of its input than the bound.

use std::time::{Duration, Instant};

use quickcheck::{quickcheck, Arbitrary, Gen};
use switchboard_core::{Client, ClientEvent, CloseMode, Config, Server};

/// One thing that happens next.
#[derive(Debug, Clone)]
enum Op {
    /// The client writes this many requests (pings and room messages, alternating).
    Send(u8),
    /// The adapter reads up to this many bytes (and no more than the budget).
    Read(u16),
    /// Time passes, in milliseconds; the adapter runs the core's timer if it is due.
    Wait(u16),
    /// The adapter writes up to this many bytes of output.
    Write(u16),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 4 {
            0 => Op::Send(u8::arbitrary(g) % 40 + 1),
            1 => Op::Read(u16::arbitrary(g) % 3000 + 1),
            2 => Op::Wait(u16::arbitrary(g) % 400),
            _ => Op::Write(u16::arbitrary(g) % 5000 + 1),
        }
    }
}

/// A small configuration drawn by the property: rate, burst and inbound bound.
#[derive(Debug, Clone)]
struct Limits {
    rate: u32,
    burst: u32,
    inbound: usize,
}

impl Arbitrary for Limits {
    fn arbitrary(g: &mut Gen) -> Self {
        Limits {
            rate: [0, 1, 5, 10, 100][usize::arbitrary(g) % 5],
            burst: u32::arbitrary(g) % 20 + 1,
            inbound: [64, 256, 1024, 8192][usize::arbitrary(g) % 4],
        }
    }
}

struct Run {
    server: Server,
    client: Client,
    now: Instant,
    /// Client bytes not yet read by the adapter.
    wire: Vec<u8>,
    /// Output the adapter took and has not written yet.
    out: Vec<u8>,
    /// What the client heard, in order: pong tokens and message texts as numbers.
    heard: Vec<u64>,
    bound: usize,
    closed: bool,
}

impl Run {
    fn check(&mut self) -> Result<(), String> {
        let id = switchboard_core::ConnId(1);
        if self.server.inbound_bytes(id) > self.bound {
            return Err(format!(
                "inbound {} past the bound {}",
                self.server.inbound_bytes(id),
                self.bound
            ));
        }
        while let Some(c) = self.server.poll_close() {
            if c.mode == CloseMode::Flush {
                self.closed = true;
            }
        }
        while self.server.poll_readable().is_some() {}
        if self.closed {
            let why: Vec<_> = std::iter::from_fn(|| self.server.poll_event()).collect();
            return Err(format!("the paced client was closed: {why:?}"));
        }
        Ok(())
    }

    fn step(&mut self, op: &Op, next: &mut u64) -> Result<(), String> {
        let id = switchboard_core::ConnId(1);
        match op {
            Op::Send(n) => {
                for _ in 0..*n {
                    if *next % 2 == 0 {
                        self.client.ping(*next);
                    } else {
                        self.client.say("r", &next.to_string());
                    }
                    *next += 1;
                }
            }
            Op::Read(n) => {
                let n = (*n as usize)
                    .min(self.wire.len())
                    .min(self.server.read_budget(id));
                if n > 0 {
                    self.server.handle_input(id, &self.wire[..n], self.now);
                    self.wire.drain(..n);
                }
            }
            Op::Wait(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.server.handle_timeout(self.now);
                }
            }
            Op::Write(n) => {
                while let Some(t) = self.server.poll_transmit() {
                    self.out.extend_from_slice(&t.data);
                }
                let n = (*n as usize).min(self.out.len());
                if n > 0 {
                    self.server.handle_written(id, n);
                    self.client
                        .handle_input(&self.out[..n], self.now)
                        .map_err(|e| e.to_string())?;
                    self.out.drain(..n);
                }
            }
        }
        if let Some(bytes) = self.client.poll_transmit() {
            self.wire.extend_from_slice(&bytes);
        }
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Pong { token } => self.heard.push(token),
                ClientEvent::Message { text, .. } => {
                    self.heard.push(text.parse().map_err(|_| "bad text")?)
                }
                ClientEvent::Error { code, message, .. } => {
                    return Err(format!("error {code}: {message}"))
                }
                _ => {}
            }
        }
        self.check()
    }
}

fn paced_requests_all_handled_in_order(limits: Limits, ops: Vec<Op>) -> Result<(), String> {
    let mut config = Config::default();
    config.msg_rate = limits.rate;
    config.msg_burst = limits.burst;
    config.max_inbound_bytes = limits.inbound;
    config.ping_interval = Duration::from_secs(3600);
    config.idle_timeout = Duration::from_secs(7200);
    let bound = limits.inbound + config.max_frame_len as usize + 4;
    let now = Instant::now();
    let mut client = Client::new("pacer");
    client.set_paced(false);
    client.join("r");
    let mut run = Run {
        server: Server::new(config),
        client,
        now,
        wire: Vec::new(),
        out: Vec::new(),
        heard: Vec::new(),
        bound,
        closed: false,
    };
    run.server.open(now);
    if let Some(bytes) = run.client.poll_transmit() {
        run.wire.extend_from_slice(&bytes);
    }
    let mut next = 0u64;
    for op in &ops {
        run.step(op, &mut next)?;
    }
    // Then the adapter keeps doing its job until the client has heard everything.
    for _ in 0..100_000 {
        if run.heard.len() as u64 == next {
            break;
        }
        run.step(&Op::Read(u16::MAX), &mut next)?;
        run.step(&Op::Write(u16::MAX), &mut next)?;
        let wait = run
            .server
            .poll_timeout()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(run.now));
        let ms = wait.as_millis().clamp(1, 1000) as u16;
        run.step(&Op::Wait(ms), &mut next)?;
    }
    let want: Vec<u64> = (0..next).collect();
    if run.heard != want {
        return Err(format!("heard {:?}, want 0..{next}", run.heard));
    }
    Ok(())
}

quickcheck! {
    fn paced_requests_are_handled_in_order_exactly_once(limits: Limits, ops: Vec<Op>) -> bool {
        match paced_requests_all_handled_in_order(limits.clone(), ops.clone()) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("{limits:?} {ops:?}: {e}");
                false
            }
        }
    }
}
