//! The open-file budget all tests of this process share.
//!
//! Every scenario runs in one process, so one scenario's sockets count against the others'
//! limit: the thousand-client scenario alone holds about 2,000. The first reservation
//! raises the soft limit to the hard one (a user's shell often starts at 1,024); each test
//! then reserves what it holds at most before opening anything and waits, first come first
//! served, until that much is free. A scenario larger than the whole budget is skipped with
//! the reason written to the terminal, and every other one still runs.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// Descriptors a scenario holds at most unless it says otherwise: a server's two listeners,
/// a handful of clients with both ends of their sockets, with room to spare.
pub const SCENARIO: u64 = 64;

/// Descriptors kept out of the budget: standard streams, the test harness, the reactors'
/// own (epoll, wake-up pipes), files the runtimes open while running.
const RESERVED: u64 = 64;

/// A share of the budget, given back when dropped.
pub struct Reservation {
    n: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let pool = pool();
        pool.lock().free += self.n;
        pool.changed.notify_all();
    }
}

/// Reserves `n` descriptors for `test`, waiting for its turn; `None` (after writing why to
/// the terminal) if `n` exceeds what this process may ever open.
pub fn reserve(test: &str, n: u64) -> Option<Reservation> {
    let pool = pool();
    if n > pool.budget {
        // Straight to the terminal: the harness hides a passing test's `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: it holds about {n} open files and this process may open {} \
             (hard limit {}); raise the hard limit (`ulimit -Hn`, limits.conf) to run it",
            pool.budget,
            pool.limit
        );
        return None;
    }
    let mut state = pool.lock();
    let ticket = state.next_ticket;
    state.next_ticket += 1;
    while state.serving != ticket || state.free < n {
        state = pool.changed.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    state.serving += 1;
    state.free -= n;
    drop(state);
    // The next in line may fit in what is left.
    pool.changed.notify_all();
    Some(Reservation { n })
}

struct Pool {
    limit: u64,
    budget: u64,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    free: u64,
    next_ticket: u64,
    serving: u64,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left the counts consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let limit = raise_nofile();
        let budget = limit.saturating_sub(RESERVED);
        Pool {
            limit,
            budget,
            state: Mutex::new(State {
                free: budget,
                next_ticket: 0,
                serving: 0,
            }),
            changed: Condvar::new(),
        }
    })
}

/// Raises the open-file soft limit as far as allowed; returns the limit now in force.
#[cfg(unix)]
fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    // macOS reports an unlimited hard limit yet refuses a soft one above OPEN_MAX (10,240).
    for target in [
        lim.maximum,
        lim.maximum.map(|m| m.min(10_240)).or(Some(10_240)),
    ] {
        let Some(target) = target else { continue };
        if target <= current {
            return current;
        }
        let raised = Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return target;
        }
    }
    current
}

/// No soft limit to raise here; assume enough.
#[cfg(not(unix))]
fn raise_nofile() -> u64 {
    u64::MAX
}
