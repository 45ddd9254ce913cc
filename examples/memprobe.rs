//! Memory probe: what the core keeps per idle connection, phase by phase.
//!
//! Drives a core `Server` (no sockets, no runtime) through N connections that open, say
//! hello (native) or register (IRC), and join rooms of 100, and counts the heap the
//! process holds after each phase with a counting allocator. The difference between a
//! server's resident memory per connection (bench/run.sh) and these figures is the
//! adapter's share: its task, the socket's registration, allocator slack.
//!
//! `cargo run --release --example memprobe [N...]` (default 10000 19000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use switchboard::core::{Client, Config, Server};

/// The system allocator, counting what is live: bytes asked for, and the bytes glibc's
/// chunks take for them (8 bytes of header, 16-byte steps, 32 at least).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn chunk(size: usize) -> usize {
    (size + 8).div_ceil(16).max(2) * 16
}

// SAFETY: every call is passed on to `System` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        CHUNKS.fetch_add(chunk(layout.size()), Relaxed);
        COUNT.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        CHUNKS.fetch_sub(chunk(layout.size()), Relaxed);
        COUNT.fetch_sub(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        CHUNKS.fetch_add(chunk(new_size), Relaxed);
        CHUNKS.fetch_sub(chunk(layout.size()), Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap: (bytes asked for, bytes in glibc chunks, allocations).
fn live() -> (usize, usize, usize) {
    (
        LIVE.load(Relaxed),
        CHUNKS.load(Relaxed),
        COUNT.load(Relaxed),
    )
}

/// Hands every queued output to the "socket" at once, as an adapter with room would.
fn drain(server: &mut Server) {
    while let Some(t) = server.poll_transmit() {
        server.handle_written(t.conn, t.data.len());
    }
    while server.poll_event().is_some() {}
    while server.poll_close().is_some() {}
}

fn probe(n: usize, irc: bool) {
    let now = Instant::now();
    let mut server = Server::new(Config::default());
    drain(&mut server);
    let mut marks = vec![("empty server", live(), 0.0)];
    let mut clock = Instant::now();
    let mut lap = || {
        let us = clock.elapsed().as_secs_f64() * 1e6 / n as f64;
        clock = Instant::now();
        us
    };
    let ids: Vec<_> = (0..n).map(|_| server.open(now)).collect();
    marks.push(("opened", live(), lap()));
    for (i, id) in ids.iter().enumerate() {
        let nick = format!("p{i}");
        let bytes = if irc {
            format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").into_bytes()
        } else {
            Client::new(&nick)
                .poll_transmit()
                .map_or(Vec::new(), |b| b.to_vec())
        };
        server.handle_input(*id, &bytes, now);
        drain(&mut server);
    }
    marks.push(("said hello", live(), lap()));
    for (i, id) in ids.iter().enumerate() {
        let room = format!("idle{}", i / 100);
        let bytes = if irc {
            format!("JOIN #{room}\r\n").into_bytes()
        } else {
            let mut c = Client::new("x");
            let _ = c.poll_transmit();
            c.join(&room);
            c.poll_transmit().map_or(Vec::new(), |b| b.to_vec())
        };
        server.handle_input(*id, &bytes, now);
        drain(&mut server);
    }
    marks.push(("joined rooms of 100", live(), lap()));
    assert_eq!(server.nick_count(), n, "every connection holds its nick");
    assert_eq!(server.room_count(), n.div_ceil(100), "every room was made");
    println!(
        "{} x {n}: heap per connection after each phase (asked / in glibc chunks / allocations), \
         and the core's time per connection in the phase",
        if irc { "IRC" } else { "native" }
    );
    let base = marks[0].1;
    let mut prev = base;
    for (what, (bytes, chunks, count), us) in &marks[1..] {
        println!(
            "  {what:<22} total {:>6.0} / {:>6.0} B, {:>5.2} allocs   this phase {:>+6.0} / {:>+6.0} B, {us:>6.1} us",
            (bytes - base.0) as f64 / n as f64,
            (chunks - base.1) as f64 / n as f64,
            (count - base.2) as f64 / n as f64,
            (*bytes as f64 - prev.0 as f64) / n as f64,
            (*chunks as f64 - prev.1 as f64) / n as f64,
        );
        prev = (*bytes, *chunks, *count);
    }
    drop(server);
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are numbers of connections"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 19_000]
    } else {
        sizes
    };
    for n in sizes {
        probe(n, false);
        probe(n, true);
    }
}
