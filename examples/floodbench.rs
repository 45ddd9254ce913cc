//! Flood benchmark: what flooders cost everyone else. Run by bench/flood.sh.
//!
//! ```text
//! floodbench room ADDR SECONDS   10 flooders in a room of 100, 2 healthy members
//!                                whispering back and forth: their round trips
//! floodbench pong ADDR SECONDS PID
//!                                one connection sending pongs as fast as it can: the
//!                                server's CPU time over the run (from /proc/PID/schedstat)
//! ```
//!
//! Prints a few lines for people and one JSON line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use switchboard::core::packet::{ClientPacket, Packet};
use switchboard::core::{Client, ClientEvent};

const ROOM: &str = "flood";
const MEMBERS: usize = 100;
const FLOODERS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: floodbench room ADDR SECONDS | floodbench pong ADDR SECONDS PID";
    let (Some(mode), Some(addr), Some(secs)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| fail(&format!("{addr}: {e}")));
    let secs: u64 = secs
        .parse()
        .unwrap_or_else(|e| fail(&format!("{secs}: {e}")));
    let run = Duration::from_secs(secs);
    match mode.as_str() {
        "room" => room(addr, run),
        "pong" => {
            let pid = args.get(3).unwrap_or_else(|| fail(usage));
            pong(addr, run, pid);
        }
        _ => fail(usage),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("floodbench: {message}");
    std::process::exit(1);
}

/// A connection that said hello (and joined the room if `join`), with its client.
fn connect(addr: SocketAddr, nick: &str, join: bool) -> (TcpStream, Client) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| fail(&format!("connect: {e}")));
    stream.set_nodelay(true).ok();
    let mut client = Client::new(nick);
    client.set_paced(false);
    if join {
        client.join(ROOM);
    }
    let mut buf = vec![0u8; 64 * 1024];
    if let Some(out) = client.poll_transmit() {
        stream
            .write_all(&out)
            .unwrap_or_else(|e| fail(&format!("write: {e}")));
    }
    loop {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| fail(&format!("read: {e}")));
        if n == 0 {
            fail(&format!("{nick}: closed while registering"));
        }
        client
            .handle_input(&buf[..n], Instant::now())
            .unwrap_or_else(|e| fail(&format!("{nick}: {e}")));
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::Welcome { .. } if !join => return (stream, client),
                ClientEvent::Members { .. } if join => return (stream, client),
                ClientEvent::Error { message, .. } => fail(&format!("{nick}: {message}")),
                _ => {}
            }
        }
    }
}

/// Reads and discards until `stop`; counts a close that came before it, and the bytes.
fn drain(mut stream: TcpStream, stop: Arc<AtomicBool>, closed: Arc<AtomicU64>, bytes: &AtomicU64) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    if !stop.load(Ordering::Relaxed) {
        closed.fetch_add(1, Ordering::Relaxed);
    }
}

fn room(addr: SocketAddr, run: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicU64::new(0));
    let flooders_closed = Arc::new(AtomicU64::new(0));
    // Bytes the passive members received while the pair measured.
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    // Passive members: they read everything.
    for i in 0..MEMBERS - FLOODERS - 2 {
        let (stream, _) = connect(addr, &format!("m{i}"), true);
        let (stop, closed, received) = (stop.clone(), closed.clone(), received.clone());
        threads.push(thread::spawn(move || {
            drain(stream, stop, closed, &received)
        }));
    }
    let (a, a_client) = connect(addr, "healthy_a", true);
    let (b, b_client) = connect(addr, "healthy_b", true);
    // Flooders: a writer as fast as the socket takes it, a reader that keeps up.
    let sent = Arc::new(AtomicU64::new(0));
    for i in 0..FLOODERS {
        let (stream, _) = connect(addr, &format!("f{i}"), true);
        let mut writer = stream.try_clone().expect("clone");
        let (stop2, closed2) = (stop.clone(), flooders_closed.clone());
        threads.push(thread::spawn(move || {
            drain(stream, stop2, closed2, &AtomicU64::new(0))
        }));
        let (stop, sent) = (stop.clone(), sent.clone());
        threads.push(thread::spawn(move || {
            let mut batch = Vec::new();
            for _ in 0..64 {
                let say = ClientPacket::Say {
                    room: ROOM.into(),
                    text: "x".repeat(64),
                };
                batch.extend_from_slice(&say.to_frame());
            }
            while !stop.load(Ordering::Relaxed) {
                if writer.write_all(&batch).is_err() {
                    return;
                }
                sent.fetch_add(64, Ordering::Relaxed);
            }
        }));
    }
    let healthy_closed = Arc::new(AtomicBool::new(false));
    // B answers every whisper from A with the same text.
    {
        let (stop, gone) = (stop.clone(), healthy_closed.clone());
        threads.push(thread::spawn(move || {
            echo(b, b_client, &stop, &gone);
        }));
    }
    let before = received.load(Ordering::Relaxed);
    let rtts = ping_pong(a, a_client, run, &healthy_closed);
    let received = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut rtts = rtts;
    rtts.sort();
    let q = |p: f64| {
        rtts.get(((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let passive_closed = closed.load(Ordering::Relaxed);
    let flooders_closed = flooders_closed.load(Ordering::Relaxed);
    let healthy = healthy_closed.load(Ordering::Relaxed);
    // What each passive member received a second: the room's delivered rate.
    let per_member = received as f64 / (MEMBERS - FLOODERS - 2) as f64 / run.as_secs_f64();
    println!(
        "round trips {} in {:.1} s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rtts.len(),
        run.as_secs_f64(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    println!(
        "flood messages written {}; each passive member received {:.0} KB/s; closed: \
         passive {passive_closed}, pair {healthy}, flooders {flooders_closed}",
        sent.load(Ordering::Relaxed),
        per_member / 1000.0
    );
    println!(
        "{{\"mode\":\"room\",\"round_trips\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"flood_sent\":{},\"member_bytes_per_sec\":{per_member:.0},\"passive_closed\":{passive_closed},\"pair_closed\":{healthy},\"flooders_closed\":{flooders_closed}}}",
        rtts.len(),
        q(0.5),
        q(0.99),
        q(1.0),
        sent.load(Ordering::Relaxed)
    );
}

/// Reads the socket into the client; false once it is closed.
fn pump(stream: &mut TcpStream, client: &mut Client, buf: &mut [u8]) -> bool {
    match stream.read(buf) {
        Ok(0) => false,
        Ok(n) => client.handle_input(&buf[..n], Instant::now()).is_ok(),
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn echo(mut stream: TcpStream, mut client: Client, stop: &AtomicBool, gone: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if !pump(&mut stream, &mut client, &mut buf) {
            if !stop.load(Ordering::Relaxed) {
                gone.store(true, Ordering::Relaxed);
            }
            return;
        }
        while let Some(ev) = client.poll_event() {
            if let ClientEvent::Direct { from, text, .. } = ev {
                if from == "healthy_a" {
                    client.whisper("healthy_a", &text);
                }
            }
        }
        if let Some(out) = client.poll_transmit() {
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

fn ping_pong(
    mut stream: TcpStream,
    mut client: Client,
    run: Duration,
    gone: &AtomicBool,
) -> Vec<Duration> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut buf = vec![0u8; 64 * 1024];
    let end = Instant::now() + run;
    let mut rtts = Vec::new();
    let mut n = 0u64;
    let mut sent_at = Instant::now();
    client.whisper("healthy_b", &n.to_string());
    while Instant::now() < end {
        if let Some(out) = client.poll_transmit() {
            if stream.write_all(&out).is_err() {
                gone.store(true, Ordering::Relaxed);
                break;
            }
        }
        if !pump(&mut stream, &mut client, &mut buf) {
            gone.store(true, Ordering::Relaxed);
            break;
        }
        while let Some(ev) = client.poll_event() {
            if let ClientEvent::Direct { from, text, .. } = ev {
                if from == "healthy_b" && text == n.to_string() {
                    rtts.push(sent_at.elapsed());
                    n += 1;
                    sent_at = Instant::now();
                    client.whisper("healthy_b", &n.to_string());
                }
            }
        }
    }
    rtts
}

/// CPU time the process's threads have used, in nanoseconds (every thread: the std
/// runtime's work is not on its main thread).
fn cpu_ns(pid: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| fail(&format!("cannot read /proc/{pid}/task: {e}")));
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path().join("schedstat");
            let text = std::fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn pong(addr: SocketAddr, run: Duration, pid: &str) {
    let (stream, _) = connect(addr, "ponger", false);
    let mut writer = stream.try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, closed) = (stop.clone(), closed.clone());
        thread::spawn(move || drain(stream, stop, closed, &AtomicU64::new(0)))
    };
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        thread::spawn(move || {
            let mut batch = Vec::new();
            for token in 0..1024u64 {
                batch.extend_from_slice(&ClientPacket::Pong { token }.to_frame());
            }
            // The socket blocks once the server stops reading; a timeout lets it notice `stop`.
            writer
                .set_write_timeout(Some(Duration::from_millis(100)))
                .ok();
            while !stop.load(Ordering::Relaxed) {
                match writer.write(&batch) {
                    Ok(n) => {
                        written.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        })
    };
    // Let the burst pass and the connection settle into its paced state first.
    thread::sleep(Duration::from_secs(1));
    let (cpu0, t0, w0) = (cpu_ns(pid), Instant::now(), written.load(Ordering::Relaxed));
    thread::sleep(run);
    let (cpu1, wall, w1) = (cpu_ns(pid), t0.elapsed(), written.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = reader.join();
    let share = cpu1.saturating_sub(cpu0) as f64 / wall.as_nanos() as f64 * 100.0;
    // What the kernel took from the flooder meanwhile: its socket buffers, which grow, and
    // what the server read; an upper bound on the latter.
    let taken = (w1 - w0) as f64 / 13.0 / wall.as_secs_f64();
    println!(
        "server CPU {share:.2} % of a core while one client floods pongs (at most {taken:.0} \
         pongs/s left the flooder); closed: {}",
        closed.load(Ordering::Relaxed)
    );
    println!(
        "{{\"mode\":\"pong\",\"server_cpu_percent\":{share:.3},\"pongs_per_sec_written_max\":{taken:.0},\"closed\":{}}}",
        closed.load(Ordering::Relaxed)
    );
}
