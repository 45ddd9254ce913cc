//! The trace of one run: a fixed hash of every event, and the last events for reports.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};

/// How many recent events a failure report shows.
pub const RECENT: usize = 200;

/// 64-bit FNV-1a: fixed, so a trace hash means the same thing in every run.
#[derive(Debug, Clone)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a of a byte string.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}

/// One thing that happened in a run.
#[derive(Debug, Clone, Hash)]
pub enum Ev {
    /// A phase began.
    Phase(&'static str),
    /// A client slot opened a connection.
    Connect {
        slot: usize,
        conn: u64,
        nick: String,
    },
    /// A client did something.
    Act {
        slot: usize,
        conn: u64,
        what: String,
    },
    /// Bytes reached the server: how many, and how many frames they completed.
    ToServer {
        conn: u64,
        bytes: usize,
        frames: usize,
    },
    /// Bytes reached a client.
    ToClient { conn: u64, bytes: usize },
    /// The server handed out output: frames, bytes and their FNV-1a.
    Output {
        conn: u64,
        frames: usize,
        bytes: usize,
        digest: u64,
    },
    /// The server's events of one call.
    ServerEvent(String),
    /// The server asked to close a connection.
    CloseAsked { conn: u64 },
    /// The adapter reported a connection gone.
    Gone { conn: u64, why: &'static str },
    /// The server's keepalive ran.
    Timeout,
    /// A fault was injected.
    Fault(String),
    /// A client gave up on a silent server.
    ClientTimeout { slot: usize, conn: u64 },
    /// The server shut down.
    Shutdown,
}

/// A running hash of all events plus the most recent ones.
#[derive(Debug, Default)]
pub struct Trace {
    hash: Fnv,
    recent: VecDeque<(u64, u64, Ev)>,
}

impl Trace {
    /// Records an event at `step` and virtual time `t_ns`.
    pub fn push(&mut self, step: u64, t_ns: u64, ev: Ev) {
        step.hash(&mut self.hash);
        t_ns.hash(&mut self.hash);
        ev.hash(&mut self.hash);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((step, t_ns, ev));
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    /// The recent events, one per line.
    pub fn recent(&self) -> RecentLines<'_> {
        RecentLines(self)
    }
}

/// Display adapter for [`Trace::recent`].
pub struct RecentLines<'a>(&'a Trace);

impl fmt::Display for RecentLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (step, t, ev) in &self.0.recent {
            writeln!(
                f,
                "  {step:>7} {:>4}.{:06}s  {ev:?}",
                t / 1_000_000_000,
                (t / 1000) % 1_000_000
            )?;
        }
        Ok(())
    }
}
