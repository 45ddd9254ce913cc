//! The kept LUSERS counts (census.rs) against a recount after random operations.

use std::time::Duration;

use quickcheck::{QuickCheck, TestResult};

use super::census::Census;
use super::*;
use crate::client::Client;

/// A server driven by raw input, drained as an adapter with room to write would.
struct World {
    server: Server,
    now: Instant,
    ids: Vec<ConnId>,
}

impl World {
    fn new() -> Self {
        let config = Config {
            msg_rate: 0,
            operators: vec![("root".into(), crate::sha256::hex_digest(b"hunter2"))],
            ..Config::default()
        };
        World {
            server: Server::new(config),
            now: crate::test_clock::start(),
            ids: Vec::new(),
        }
    }

    fn send(&mut self, id: ConnId, text: &[u8]) {
        let n = text.len().min(self.server.read_budget(id));
        self.server.handle_input(id, &text[..n], self.now);
    }

    fn nick(&self, id: ConnId) -> String {
        self.server
            .conns
            .get(&id)
            .map_or_else(String::new, |c| c.nick.clone())
    }

    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.server.poll_transmit() {
                self.server.handle_written(t.conn, t.data.len());
                moved = true;
            }
            while let Some(close) = self.server.poll_close() {
                if close.mode == CloseMode::Now {
                    self.server.handle_close(close.conn, self.now);
                }
                moved = true;
            }
            while self.server.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    }

    /// One operation, chosen by `op` on the connection chosen by `arg`.
    fn step(&mut self, op: u8, arg: u8) {
        if self.ids.is_empty() || op % 16 == 0 {
            let id = self.server.open(self.now);
            self.ids.push(id);
            return self.drain();
        }
        let id = self.ids[usize::from(arg) % self.ids.len()];
        let me = self.nick(id);
        let other = format!("n{}", arg % 6);
        let line = match op % 16 {
            1 => format!("NICK {other}\r\nUSER u 0 * :r\r\n"),
            2 => {
                let hello = Client::new(&other).poll_transmit();
                let bytes = hello.map_or_else(Vec::new, |b| b.to_vec());
                self.send(id, &bytes);
                return self.drain();
            }
            3 => format!("MODE {me} +i\r\n"),
            4 => format!("MODE {me} -i\r\n"),
            5 => format!("MODE {me} +o-o+iw\r\n"),
            6 => format!("MODE {me} -o\r\n"),
            7 => "OPER root hunter2\r\n".into(),
            8 => "OPER root wrong\r\n".into(),
            9 => "QUIT :bye\r\n".into(),
            10 => {
                self.server.handle_eof(id, self.now);
                return self.drain();
            }
            11 => {
                // The transport ends without the core deciding it.
                self.server.handle_close(id, self.now);
                return self.drain();
            }
            12 => format!("KILL {other} :out\r\n"),
            13 => format!("NICK {other}\r\nJOIN #r{}\r\n", arg % 3),
            14 => "CAP LS 302\r\nNICK capper\r\nUSER c 0 * :c\r\n".into(),
            _ => {
                // Time passes: unregistered connections meet the hello timeout, closing
                // ones their linger.
                self.now += Duration::from_secs(u64::from(arg % 40));
                self.server.handle_timeout(self.now);
                return self.drain();
            }
        };
        self.send(id, line.as_bytes());
        self.drain();
    }

    fn recount(&self) -> Census {
        Census::recount(self.server.conns.map.values().map(|c| &**c))
    }
}

fn counts_match_a_recount(ops: Vec<(u8, u8)>) -> TestResult {
    let mut w = World::new();
    for (op, arg) in ops {
        w.step(op, arg);
        if w.server.conns.census != w.recount() {
            return TestResult::error(format!(
                "after op {} on {arg}: kept {:?}, recounted {:?}",
                op % 16,
                w.server.conns.census,
                w.recount()
            ));
        }
    }
    TestResult::passed()
}

#[test]
fn kept_counts_equal_a_recount_after_random_operations() {
    QuickCheck::new()
        .tests(300)
        .quickcheck(counts_match_a_recount as fn(Vec<(u8, u8)>) -> TestResult);
}

/// The random operations above must reach every count, or the property proves little.
#[test]
fn a_fixed_run_reaches_every_count() {
    let mut w = World::new();
    let a = w.server.open(w.now);
    let b = w.server.open(w.now);
    w.server.open(w.now);
    w.send(a, b"NICK ann\r\nUSER u 0 * :r\r\nMODE ann +i\r\n");
    w.send(b, b"NICK bob\r\nUSER u 0 * :r\r\nOPER root hunter2\r\n");
    w.drain();
    let kept = w.server.conns.census;
    assert_eq!(
        kept,
        Census {
            unknown: 1,
            invisible: 1,
            opers: 1
        }
    );
    assert_eq!(kept, w.recount());
    w.send(b, b"KILL ann :out\r\n");
    w.server.handle_close(b, w.now);
    w.drain();
    assert_eq!(
        w.server.conns.census,
        Census {
            unknown: 1,
            ..Census::default()
        }
    );
    assert_eq!(w.server.conns.census, w.recount());
}
