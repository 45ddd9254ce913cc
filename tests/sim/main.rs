//! Deterministic simulation tests of the core: one `Server`, many `Client`s, an in-memory
//! network with seeded faults, a model that predicts every byte the server queues, and
//! replay by seed. See docs/TESTING.md.
//!
//! - `SWITCHBOARD_SIM_SEEDS=N` runs N seeds (default 3000) from `SWITCHBOARD_SIM_FROM`
//!   (default 0; `random` picks a start and prints it).
//! - `SWITCHBOARD_SIM_SEED=S` replays seed S alone, verbosely; add
//!   `SWITCHBOARD_SIM_PLANT=<bug>` to replay with a planted server bug.

mod cluster;
mod history;
mod irc;
mod mix;
mod model;
mod rng;
mod trace;
mod wire;
mod world;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use switchboard_core::PlantedBug;

use world::{Plant, Sim, Stats};

/// Seeds `cargo test --test sim` runs when no count is given.
const CI_SEEDS: u64 = 3000;
/// Seeds within which each planted bug must be caught.
const PLANT_BUDGET: u64 = 200;

/// The one real instant of the process; all virtual time is an offset from it, and
/// nothing in a trace depends on its value.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// A passed run.
#[derive(Debug, Clone)]
struct Pass {
    seed: u64,
    hash: u64,
    stats: Stats,
    accepted: usize,
    summary: String,
}

/// A failed run, with everything needed to understand and replay it.
#[derive(Debug, Clone)]
struct Failure {
    seed: u64,
    plant: Plant,
    summary: String,
    step: u64,
    time_ns: u64,
    message: String,
    hash: u64,
    recent: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation failed: seed {}", self.seed)?;
        if let Some(bug) = self.plant {
            writeln!(f, "  planted bug: {bug:?}")?;
        }
        writeln!(f, "  mix: {}", self.summary)?;
        writeln!(
            f,
            "  at step {}, virtual time {}.{:06}s:\n  {}",
            self.step,
            self.time_ns / 1_000_000_000,
            (self.time_ns / 1000) % 1_000_000,
            self.message
        )?;
        writeln!(f, "  trace hash at failure: {:016x}", self.hash)?;
        writeln!(f, "  last {} events:", trace::RECENT)?;
        write!(f, "{}", self.recent)?;
        writeln!(f, "  replay: {}", replay_command(self.seed, self.plant))
    }
}

fn plant_name(bug: PlantedBug) -> &'static str {
    match bug {
        PlantedBug::DeliverToNonMember => "deliver-to-non-member",
        PlantedBug::ReorderMessages => "reorder-messages",
        PlantedBug::SkipLeaveNotice => "skip-leave-notice",
        PlantedBug::DropRateLimited => "drop-rate-limited",
        PlantedBug::ReplaySkipsNewest => "replay-skips-newest",
        PlantedBug::SkipKeyForNative => "skip-key-for-native",
        PlantedBug::BanIgnoredForIrc => "ban-ignored-for-irc",
        PlantedBug::DuplicateRemoteMessage => "duplicate-remote-message",
        PlantedBug::KeepDeadNicks => "keep-dead-nicks",
    }
}

fn parse_plant(name: &str) -> Plant {
    [
        PlantedBug::DeliverToNonMember,
        PlantedBug::ReorderMessages,
        PlantedBug::SkipLeaveNotice,
        PlantedBug::DropRateLimited,
        PlantedBug::ReplaySkipsNewest,
        PlantedBug::SkipKeyForNative,
        PlantedBug::BanIgnoredForIrc,
        PlantedBug::DuplicateRemoteMessage,
        PlantedBug::KeepDeadNicks,
    ]
    .into_iter()
    .find(|b| plant_name(*b) == name)
    .or_else(|| panic!("unknown SWITCHBOARD_SIM_PLANT {name:?}"))
}

fn replay_command(seed: u64, plant: Plant) -> String {
    let plant = plant.map_or(String::new(), |b| {
        format!("SWITCHBOARD_SIM_PLANT={} ", plant_name(b))
    });
    format!("SWITCHBOARD_SIM_SEED={seed} {plant}cargo test --test sim -- --exact swarm --nocapture")
}

/// Runs one seed; a panic anywhere (server, client or simulator) is a failure too.
fn run_seed(seed: u64, plant: Plant) -> Result<Pass, Box<Failure>> {
    let mut sim = Sim::new(seed, plant, base());
    let result = catch_unwind(AssertUnwindSafe(|| sim.run()));
    let message = match result {
        Ok(Ok(())) => {
            return Ok(Pass {
                seed,
                hash: sim.trace.hash(),
                stats: sim.stats.clone(),
                accepted: sim.accepted(),
                summary: sim.mix.summary(),
            })
        }
        Ok(Err(message)) => message,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(non-string panic)".into());
            format!("PANIC: {text}")
        }
    };
    Err(Box::new(Failure {
        seed,
        plant: sim.plant(),
        summary: sim.mix.summary(),
        step: sim.stats.steps,
        time_ns: sim.now_ns(),
        message,
        hash: sim.trace.hash(),
        recent: sim.trace.recent().to_string(),
    }))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Wall-clock seconds one seed may run before the watchdog fails the run (a seed takes
/// well under a second; a livelocked core would otherwise hang the test for good).
const WATCHDOG_SECS: u64 = 120;

/// Fails the whole run, naming the seed, when one seed runs past the watchdog: a hang
/// inside a server call cannot be caught by the simulator's own step bounds.
fn watchdog(running: &Mutex<Vec<Option<(u64, Instant)>>>, active: &AtomicU64, plant: Plant) {
    let limit = std::time::Duration::from_secs(
        env_u64("SWITCHBOARD_SIM_WATCHDOG_SECS").unwrap_or(WATCHDOG_SECS),
    );
    while active.load(Ordering::Acquire) > 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let hung = running
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .find(|(_, started)| started.elapsed() > limit)
            .map(|(seed, _)| *seed);
        if let Some(seed) = hung {
            // Straight to the terminal: the test harness's capture dies with the process.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "simulation hung: seed {seed} ran for more than {}s (a livelock in the \
                 server or the simulator)\n  replay: {}",
                limit.as_secs(),
                replay_command(seed, plant)
            );
            // The hung thread cannot be stopped; end the process so the run fails now.
            std::process::exit(101);
        }
    }
}

/// Runs `seeds` on every core; returns passes and the failures, lowest seed first.
fn run_many(seeds: &[u64], plant: Plant, stop_at_first: bool) -> (Vec<Pass>, Vec<Failure>) {
    let next = AtomicU64::new(0);
    let passes = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let running = Mutex::new(vec![None; workers]);
    let active = AtomicU64::new(workers as u64);
    std::thread::scope(|s| {
        for w in 0..workers {
            let (next, passes, failures, running, active) =
                (&next, &passes, &failures, &running, &active);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= seeds.len() {
                        break;
                    }
                    if stop_at_first && !failures.lock().expect("lock").is_empty() {
                        break;
                    }
                    running.lock().expect("lock")[w] = Some((seeds[i], Instant::now()));
                    let result = run_seed(seeds[i], plant);
                    running.lock().expect("lock")[w] = None;
                    match result {
                        Ok(pass) => passes.lock().expect("lock").push(pass),
                        Err(f) => failures.lock().expect("lock").push(*f),
                    }
                }
                active.fetch_sub(1, Ordering::Release);
            });
        }
        s.spawn(|| watchdog(&running, &active, plant));
    });
    let mut passes = passes.into_inner().expect("lock");
    let mut failures = failures.into_inner().expect("lock");
    passes.sort_by_key(|p| p.seed);
    failures.sort_by_key(|f| f.seed);
    (passes, failures)
}

fn print_passes(passes: &[Pass]) {
    for p in passes {
        println!(
            "seed {}: ok, hash {:016x}, {} steps, {} virtual ms, {} connects, {} accepted, \
             {} delivered, {} slow closes, {} bad frames\n  {}",
            p.seed,
            p.hash,
            p.stats.steps,
            p.stats.virtual_ms,
            p.stats.connects,
            p.accepted,
            p.stats.delivered,
            p.stats.slow_closes,
            p.stats.bad_frames,
            p.summary
        );
    }
}

/// The CI budget (or `SWITCHBOARD_SIM_SEEDS`), or one seed given by `SWITCHBOARD_SIM_SEED`.
#[test]
fn swarm() {
    let plant = std::env::var("SWITCHBOARD_SIM_PLANT")
        .ok()
        .and_then(|p| parse_plant(&p));
    if let Some(seed) = env_u64("SWITCHBOARD_SIM_SEED") {
        match run_seed(seed, plant) {
            Ok(pass) => {
                print_passes(std::slice::from_ref(&pass));
                println!("trace hash: {:016x}", pass.hash);
            }
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let count = env_u64("SWITCHBOARD_SIM_SEEDS").unwrap_or(CI_SEEDS);
    let from = match std::env::var("SWITCHBOARD_SIM_FROM").ok().as_deref() {
        Some("random") => {
            // Choosing which seeds to run is not a decision inside a run, so the clock may.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut x = t;
            let from = rng::splitmix64(&mut x) >> 16;
            println!("SWITCHBOARD_SIM_FROM=random chose {from}");
            from
        }
        _ => env_u64("SWITCHBOARD_SIM_FROM").unwrap_or(0),
    };
    let seeds: Vec<u64> = (from..from + count).collect();
    let started = Instant::now();
    let (passes, failures) = run_many(&seeds, plant, false);
    print_passes(&passes);
    let mut total = Stats::default();
    for p in &passes {
        total.add(&p.stats);
    }
    println!(
        "{} seeds from {from}: {} passed, {} failed in {:.1}s\n  totals: {total:?}",
        seeds.len(),
        passes.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = failures.first() {
        let others: Vec<u64> = failures.iter().skip(1).map(|f| f.seed).collect();
        panic!("{first}\n  other failing seeds: {others:?}");
    }
}

/// Once-failing seeds, kept forever (tests/sim/regressions.txt).
#[test]
fn regressions() {
    let list = include_str!("regressions.txt");
    let mut seeds = Vec::new();
    for line in list.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let seed = line
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("bad line in regressions.txt: {line:?}"));
        seeds.push(seed);
    }
    let (passes, failures) = run_many(&seeds, None, false);
    println!("{} regression seeds passed", passes.len());
    if let Some(first) = failures.first() {
        panic!("{first}");
    }
}

/// The same seed gives the same trace; different seeds give different traces.
#[test]
fn determinism() {
    let seeds: Vec<u64> = (1000..1012).collect();
    let (a, fa) = run_many(&seeds, None, false);
    let (b, fb) = run_many(&seeds, None, false);
    assert!(
        fa.is_empty() && fb.is_empty(),
        "{}",
        fa.first().or(fb.first()).expect("failure")
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.seed, y.seed);
        assert_eq!(
            (x.hash, x.stats.steps),
            (y.hash, y.stats.steps),
            "seed {} ran differently twice",
            x.seed
        );
    }
    let distinct: std::collections::BTreeSet<u64> = a.iter().map(|p| p.hash).collect();
    assert_eq!(
        distinct.len(),
        a.len(),
        "different seeds gave the same trace"
    );
}

/// A failure replays to the same trace hash at the same step.
#[test]
fn failure_replays_exactly() {
    let plant = Some(PlantedBug::SkipLeaveNotice);
    let first = find_failure(plant);
    let again = run_seed(first.seed, plant).expect_err("the replay passed");
    assert_eq!(
        (again.hash, again.step, &again.message),
        (first.hash, first.step, &first.message)
    );
}

/// Runs seeds with `plant` until one fails; panics if none does within the budget.
fn find_failure(plant: Plant) -> Failure {
    let seeds: Vec<u64> = (0..PLANT_BUDGET).collect();
    let (_, failures) = run_many(&seeds, plant, true);
    let Some(first) = failures.into_iter().next() else {
        panic!("planted bug {plant:?} went unnoticed for {PLANT_BUDGET} seeds");
    };
    assert!(
        !first.message.starts_with("PANIC") && !first.message.starts_with("sim:"),
        "planted bug {plant:?} made the simulator itself fail:\n{first}"
    );
    println!("caught as expected:\n{first}");
    first
}

#[test]
fn planted_deliver_to_non_member_is_caught() {
    find_failure(Some(PlantedBug::DeliverToNonMember));
}

#[test]
fn planted_reorder_messages_is_caught() {
    find_failure(Some(PlantedBug::ReorderMessages));
}

#[test]
fn planted_skip_leave_notice_is_caught() {
    find_failure(Some(PlantedBug::SkipLeaveNotice));
}

#[test]
fn planted_skip_key_for_native_is_caught() {
    find_failure(Some(PlantedBug::SkipKeyForNative));
}

#[test]
fn planted_ban_ignored_for_irc_is_caught() {
    find_failure(Some(PlantedBug::BanIgnoredForIrc));
}

#[test]
fn planted_drop_rate_limited_is_caught() {
    find_failure(Some(PlantedBug::DropRateLimited));
}

/// Seeds of the history simulation `cargo test --test sim` runs (or
/// `SWITCHBOARD_HISTORY_SEEDS`).
const HISTORY_SEEDS: u64 = 500;

/// Room history with a store that answers late and fails: replay plus live is the room's
/// log, in order, with no gap and no duplicate (tests/sim/history.rs).
#[test]
fn history_swarm() {
    let count = env_u64("SWITCHBOARD_HISTORY_SEEDS").unwrap_or(HISTORY_SEEDS);
    let from = env_u64("SWITCHBOARD_HISTORY_FROM").unwrap_or(0);
    let checked =
        history::run_seeds(from..from + count, base(), None).unwrap_or_else(|e| panic!("{e}"));
    println!("{checked} history seeds passed");
}

#[test]
fn planted_replay_skips_newest_is_caught() {
    let plant = Some(PlantedBug::ReplaySkipsNewest);
    match history::run_seeds(0..PLANT_BUDGET, base(), plant) {
        Ok(n) => panic!("planted bug {plant:?} went unnoticed for {n} seeds"),
        Err(e) => {
            assert!(!e.contains("PANIC"), "the simulator itself failed: {e}");
            println!("caught as expected:\n{e}");
        }
    }
}

/// Seeds of the cluster simulation `cargo test --test sim` runs (or
/// `SWITCHBOARD_CLUSTER_SEEDS`).
const CLUSTER_SEEDS: u64 = 1000;

/// 2 to 5 nodes on a simulated bus with delays, cut-offs and crashes (tests/sim/cluster.rs).
#[test]
fn cluster_swarm() {
    let plant = std::env::var("SWITCHBOARD_SIM_PLANT")
        .ok()
        .and_then(|p| parse_plant(&p));
    if let Some(seed) = env_u64("SWITCHBOARD_CLUSTER_SEED") {
        cluster::run_one(seed, base(), plant).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let count = env_u64("SWITCHBOARD_CLUSTER_SEEDS").unwrap_or(CLUSTER_SEEDS);
    let from = env_u64("SWITCHBOARD_CLUSTER_FROM").unwrap_or(0);
    let n = cluster::run_seeds(from..from + count, base(), None).unwrap_or_else(|e| panic!("{e}"));
    println!("{n} cluster seeds passed");
}

fn cluster_plant_caught(bug: PlantedBug) {
    match cluster::run_seeds(0..PLANT_BUDGET, base(), Some(bug)) {
        Ok(n) => panic!("planted bug {bug:?} went unnoticed for {n} cluster seeds"),
        Err(e) => {
            assert!(
                !e.contains("PANIC") && !e.contains("sim:"),
                "the simulator itself failed: {e}"
            );
            println!("caught as expected:\n{e}");
        }
    }
}

#[test]
fn planted_duplicate_remote_message_is_caught() {
    cluster_plant_caught(PlantedBug::DuplicateRemoteMessage);
}

#[test]
fn planted_keep_dead_nicks_is_caught() {
    cluster_plant_caught(PlantedBug::KeepDeadNicks);
}
