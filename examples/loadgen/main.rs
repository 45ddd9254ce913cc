//! Load generator: drives a running Switchboard server over loopback with many clients,
//! native or IRC, and reports throughput, latency, connection figures and correctness.
//!
//! Runs its clients on `--threads` threads (one smol executor shared by them), so that the
//! server rather than the generator is what a run measures. Run with `--help` for the flags.

mod args;
mod session;
mod stats;
mod sys;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::channel::{self, Receiver, Sender};
use smol::lock::Semaphore;
use smol::Executor;

use args::Args;
use session::{Protocol, Seen, Session};
use stats::Histogram;

fn main() {
    let args = Args::get();
    let (before, after) = sys::raise_nofile();
    let wanted = args.idle.unwrap_or(args.clients) as u64 + 64;
    if before < after {
        progress(
            &args,
            &format!("open-file limit raised from {before} to {after}"),
        );
    }
    if after < wanted {
        eprintln!("loadgen: warning: open-file limit {after} is lower than the {wanted} this run may need");
    }
    // Both live for the whole process; leaking them lets spawned tasks borrow them.
    let ex: &'static Executor<'static> = Box::leak(Box::new(Executor::new()));
    let args: &'static Args = Box::leak(Box::new(args));
    // The other threads run the executor until the process exits.
    let (_stop, stopped) = channel::bounded::<()>(1);
    for t in 1..args.threads {
        let stopped = stopped.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || smol::block_on(ex.run(stopped.recv())));
        if let Err(e) = spawned {
            eprintln!("loadgen: warning: could not start thread {t}: {e}");
        }
    }
    let ok = smol::block_on(ex.run(run(ex, args)));
    std::process::exit(if ok { 0 } else { 1 });
}

/// Locks `m`; a panic elsewhere already ends the run, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn progress(args: &Args, msg: &str) {
    if !args.quiet {
        eprintln!("loadgen: {msg}");
    }
}

/// Everything the readers update while messages flow.
struct Shared {
    base: Instant,
    hist: Histogram,
    delivered: u64,
    expected: u64,
    duplicated: u64,
    errors: u64,
    /// Per receiver, per sender: the next sequence number expected.
    next_seq: Vec<Vec<u32>>,
    /// Per sender: recipients still to receive each in-flight message, oldest first.
    in_flight: Vec<VecDeque<u32>>,
    /// Per sender: sequence number of the oldest in-flight message.
    in_flight_base: Vec<u32>,
    sender_wake: Vec<Sender<()>>,
    done: Option<Sender<()>>,
    last_delivery: Instant,
    /// The rate and burst per connection the server announced in its welcome.
    limits: Option<(u32, u32)>,
}

impl Shared {
    fn new() -> Self {
        let base = Instant::now();
        Shared {
            base,
            hist: Histogram::new(),
            delivered: 0,
            expected: 0,
            duplicated: 0,
            errors: 0,
            next_seq: Vec::new(),
            in_flight: Vec::new(),
            in_flight_base: Vec::new(),
            limits: None,
            sender_wake: Vec::new(),
            done: None,
            last_delivery: base,
        }
    }

    fn now_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// A room message reached `receiver`. Its text is `sender:seq:sent_ns:padding`.
    fn on_message(&mut self, receiver: usize, text: &str, now: Instant) {
        let mut parts = text.splitn(4, ':');
        let parsed = (|| {
            let j: usize = parts.next()?.parse().ok()?;
            let seq: u32 = parts.next()?.parse().ok()?;
            let sent: u64 = parts.next()?.parse().ok()?;
            Some((j, seq, sent))
        })();
        let Some((j, seq, sent)) = parsed.filter(|(j, ..)| *j < self.in_flight.len()) else {
            self.errors += 1;
            return;
        };
        let Some(next) = self.next_seq.get_mut(receiver).and_then(|v| v.get_mut(j)) else {
            return;
        };
        if seq < *next {
            self.duplicated += 1;
            return;
        }
        *next = seq + 1;
        self.hist.record(self.now_ns(now).saturating_sub(sent));
        self.delivered += 1;
        self.last_delivery = now;
        let offset = seq.wrapping_sub(self.in_flight_base[j]) as usize;
        if let Some(left) = self.in_flight[j].get_mut(offset) {
            *left = left.saturating_sub(1);
        }
        let mut freed = false;
        while self.in_flight[j].front() == Some(&0) {
            self.in_flight[j].pop_front();
            self.in_flight_base[j] += 1;
            freed = true;
        }
        if freed {
            let _ = self.sender_wake[j].try_send(());
        }
        if self.delivered == self.expected {
            if let Some(done) = &self.done {
                let _ = done.try_send(());
            }
        }
    }
}

/// One connected, registered client.
struct Peer {
    session: Arc<Mutex<Session>>,
    wake_writer: Sender<()>,
    control: Receiver<Seen>,
    room: String,
}

impl Peer {
    fn flush(&self) {
        let _ = self.wake_writer.try_send(());
    }
}

/// Waits for `fut` until `deadline`, failing with `what`.
async fn within<T>(
    deadline: Instant,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    future::or(fut, async {
        Timer::at(deadline).await;
        Err(format!("timed out: {what}"))
    })
    .await
}

/// Waits for a control event that `want` accepts; errors and closes fail.
async fn expect(peer: &Peer, what: &str, want: impl Fn(&Seen) -> bool) -> Result<Seen, String> {
    loop {
        match peer.control.recv().await {
            Ok(seen) if want(&seen) => return Ok(seen),
            Ok(Seen::Error(e)) => return Err(format!("{what}: server error {e}")),
            Ok(Seen::Closed(e)) => return Err(format!("{what}: closed: {e}")),
            Ok(_) => {}
            Err(_) => return Err(format!("{what}: connection ended")),
        }
    }
}

/// Connects client `i`, registers it and joins `room`.
async fn setup(
    ex: &'static Executor<'static>,
    args: &'static Args,
    shared: &Arc<Mutex<Shared>>,
    i: usize,
    nick: String,
    room: String,
) -> Result<Peer, String> {
    let server = args.server_for(i);
    let std = sys::connect_from(sys::source_for(i, server), server)
        .map_err(|e| format!("connect {server}: {e}"))?;
    let stream = Async::new(std).map_err(|e| format!("register socket: {e}"))?;
    stream
        .writable()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if let Some(e) = stream.get_ref().take_error().ok().flatten() {
        return Err(format!("connect {server}: {e}"));
    }
    let session = Arc::new(Mutex::new(Session::new(args.protocol, &nick)));
    let (wake_writer, wake_rx) = channel::bounded(1);
    let (control_tx, control) = channel::unbounded();
    let control_rx = control_tx.clone();
    let spawn = |r: Box<dyn AsyncRead + Unpin + Send>, w: Box<dyn AsyncWrite + Unpin + Send>| {
        ex.spawn(writer(w, session.clone(), wake_rx)).detach();
        ex.spawn(reader(
            i,
            r,
            session.clone(),
            wake_writer.clone(),
            control_rx,
            shared.clone(),
        ))
        .detach();
    };
    match tls_connector(args)? {
        None => {
            let stream = Arc::new(stream);
            spawn(
                Box::new(PlainSide(stream.clone())),
                Box::new(PlainSide(stream)),
            );
        }
        Some(connector) => {
            let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let (r, w) = futures_lite::io::split(tls);
            spawn(Box::new(r), Box::new(w));
        }
    }
    drop(control_tx);
    let peer = Peer {
        session,
        wake_writer,
        control,
        room,
    };
    peer.flush();
    let limits = expect(&peer, "hello", |s| matches!(s, Seen::Welcome(_))).await?;
    if let Seen::Welcome(Some(limits)) = limits {
        lock(shared).limits = Some(limits);
    }
    Ok(peer)
}

/// Joins every peer to its room, at most `--concurrency` at a time; returns the
/// time it took.
async fn join_all(
    ex: &'static Executor<'static>,
    args: &'static Args,
    peers: &[Peer],
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + args.timeout;
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let tasks: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (sem, session, wake, control, room) = (
                sem.clone(),
                p.session.clone(),
                p.wake_writer.clone(),
                p.control.clone(),
                p.room.clone(),
            );
            ex.spawn(async move {
                let _permit = sem.acquire().await;
                lock(&session).join(&room);
                let peer = Peer {
                    session,
                    wake_writer: wake,
                    control,
                    room,
                };
                peer.flush();
                within(
                    deadline,
                    "joining",
                    expect(&peer, "join", |s| matches!(s, Seen::Joined)),
                )
                .await
                .map_err(|e| format!("client {i}: {e}"))
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    progress(
        args,
        &format!("joined {} clients to their rooms", peers.len()),
    );
    Ok(start.elapsed())
}

/// The TLS connector for `--ca`, made once.
fn tls_connector(args: &Args) -> Result<Option<futures_rustls::TlsConnector>, String> {
    thread_local! {
        static CONNECTOR: RefCell<Option<futures_rustls::TlsConnector>> = const { RefCell::new(None) };
    }
    let Some(ca) = &args.ca else {
        return Ok(None);
    };
    if let Some(c) = CONNECTOR.with(|c| c.borrow().clone()) {
        return Ok(Some(c));
    }
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--ca {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("--ca: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = futures_rustls::TlsConnector::from(std::sync::Arc::new(config));
    CONNECTOR.with(|c| *c.borrow_mut() = Some(connector.clone()));
    Ok(Some(connector))
}

/// A plain socket shared by the reader and writer tasks.
struct PlainSide(Arc<Async<TcpStream>>);

impl AsyncRead for PlainSide {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlainSide {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut &*self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut &*self.0).poll_flush(cx)
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut &*self.0).poll_close(cx)
    }
}

async fn writer(
    mut stream: Box<dyn AsyncWrite + Unpin + Send>,
    session: Arc<Mutex<Session>>,
    wake: Receiver<()>,
) {
    while wake.recv().await.is_ok() {
        loop {
            let Some(bytes) = lock(&session).take_output() else {
                break;
            };
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            // TLS holds the records until flushed.
            if stream.flush().await.is_err() {
                return;
            }
        }
    }
}

async fn reader(
    index: usize,
    mut stream: Box<dyn AsyncRead + Unpin + Send>,
    session: Arc<Mutex<Session>>,
    wake_writer: Sender<()>,
    control: Sender<Seen>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => {
                let _ = control.try_send(Seen::Closed("server closed the connection".into()));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                let _ = control.try_send(Seen::Closed(e.to_string()));
                return;
            }
        };
        let now = Instant::now();
        let mut s = lock(&session);
        let mut sh = lock(&shared);
        s.handle_input(&buf[..n], now, &mut |seen| match seen {
            Seen::Message(text) => sh.on_message(index, &text, now),
            Seen::Error(e) => {
                sh.errors += 1;
                let _ = control.try_send(Seen::Error(e));
            }
            other => {
                let _ = control.try_send(other);
            }
        });
        // Pongs to server pings are queued by the session itself.
        let _ = wake_writer.try_send(());
    }
}

/// Connects `count` clients (nick and room chosen by `name`), at most
/// `--concurrency` at a time. Returns them and the time it took.
async fn connect_all(
    ex: &'static Executor<'static>,
    args: &'static Args,
    shared: &Arc<Mutex<Shared>>,
    count: usize,
    name: impl Fn(usize) -> (String, String),
) -> Result<(Vec<Peer>, Duration), String> {
    let start = Instant::now();
    let deadline = start + args.timeout;
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let done = Arc::new(Mutex::new(0usize));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (nick, room) = name(i);
            let (sem, done, shared) = (sem.clone(), done.clone(), shared.clone());
            ex.spawn(async move {
                let _permit = sem.acquire().await;
                let peer = within(
                    deadline,
                    "connecting",
                    setup(ex, args, &shared, i, nick, room),
                )
                .await
                .map_err(|e| format!("client {i}: {e}"))?;
                let mut d = lock(&done);
                *d += 1;
                if *d % 1000 == 0 || *d == count {
                    progress(args, &format!("registered {}/{count}", *d));
                }
                Ok::<Peer, String>(peer)
            })
        })
        .collect();
    let mut peers = Vec::with_capacity(count);
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(p) => peers.push(p),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(format!("{e} ({} of {count} connected)", peers.len())),
        None => Ok((peers, start.elapsed())),
    }
}

/// A unique prefix so back-to-back runs never meet each other's nicks.
fn run_tag() -> String {
    format!("g{}", std::process::id() % 100_000)
}

async fn run(ex: &'static Executor<'static>, args: &'static Args) -> bool {
    let result = match args.idle {
        Some(n) => idle(ex, args, n).await,
        None => fanout(ex, args).await,
    };
    match result {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("loadgen: FAILED: {e}");
            println!(
                "{{\"mode\":\"{}\",\"error\":{}}}",
                if args.idle.is_some() {
                    "idle"
                } else {
                    "fanout"
                },
                json_str(&e)
            );
            false
        }
    }
}

async fn fanout(ex: &'static Executor<'static>, args: &'static Args) -> Result<bool, String> {
    let shared = Arc::new(Mutex::new(Shared::new()));
    let tag = run_tag();
    let room_of = |i: usize| format!("{tag}r{}", i % args.rooms);
    progress(
        args,
        &format!("connecting {} clients to {}", args.clients, args.server),
    );
    let (peers, register_time) = connect_all(ex, args, &shared, args.clients, |i| {
        (format!("{tag}u{i}"), room_of(i))
    })
    .await?;
    let connect_time = register_time + join_all(ex, args, &peers).await?;

    // Who receives each sender's messages: its room's members (less itself over IRC,
    // which does not echo a sender's own messages).
    let echo = args.protocol == Protocol::Native;
    let recipients: Vec<u32> = (0..args.senders)
        .map(|j| {
            let members = (0..args.clients)
                .filter(|i| i % args.rooms == j % args.rooms)
                .count();
            (members - usize::from(!echo)) as u32
        })
        .collect();
    let mut wakes = Vec::new();
    {
        let mut sh = lock(&shared);
        sh.expected = recipients
            .iter()
            .map(|r| *r as u64 * args.messages as u64)
            .sum();
        sh.next_seq = vec![vec![0; args.senders]; args.clients];
        sh.in_flight = vec![VecDeque::new(); args.senders];
        sh.in_flight_base = vec![0; args.senders];
        for _ in 0..args.senders {
            let (tx, rx) = channel::bounded(1);
            sh.sender_wake.push(tx);
            wakes.push(rx);
        }
    }
    let (done_tx, done_rx) = channel::bounded(1);
    lock(&shared).done = Some(done_tx);
    let expected = lock(&shared).expected;
    progress(
        args,
        &format!(
            "sending: {} senders x {} messages, {expected} deliveries expected",
            args.senders, args.messages
        ),
    );

    // Never faster than the server allows each connection: past its rate it would only
    // make the sender wait, so say so rather than wait silently.
    let limits = lock(&shared).limits.filter(|(rate, _)| *rate > 0);
    if let Some((rate, burst)) = limits {
        let asked = args.rate.map(|r| r / args.senders as f64);
        if asked.is_none_or(|a| a > f64::from(rate)) {
            let secs = f64::from(args.messages.saturating_sub(burst)) / f64::from(rate);
            eprintln!(
                "loadgen: the server allows {rate} requests/s per connection (burst {burst}); \
                 each sender is paced to that, about {secs:.1} s for {} messages",
                args.messages
            );
        }
    }
    let meter = sys::CpuMeter::start(args.server_pid);
    let start = Instant::now();
    for (j, wake) in wakes.into_iter().enumerate() {
        let peer = &peers[j];
        let (session, wake_writer, room) = (
            peer.session.clone(),
            peer.wake_writer.clone(),
            peer.room.clone(),
        );
        let (shared, args2, recipients) = (shared.clone(), args, recipients[j]);
        ex.spawn(async move {
            let asked = args2
                .rate
                .map(|r| Duration::from_secs_f64(args2.senders as f64 / r));
            // The server's rate is a floor on the interval once its burst is used (hello
            // and join took two of it).
            let floor = limits.map(|(rate, burst)| {
                (
                    Duration::from_secs_f64(1.0 / f64::from(rate)),
                    burst.saturating_sub(2),
                )
            });
            let interval = match (asked, floor) {
                (Some(a), Some((f, _))) => Some(a.max(f)),
                (a, _) => a,
            };
            let mut next =
                start + interval.map_or(Duration::ZERO, |iv| iv * j as u32 / args2.senders as u32);
            let pad = "x".repeat(args2.size);
            for seq in 0..args2.messages {
                match interval {
                    Some(iv) => {
                        Timer::at(next).await;
                        next += iv;
                    }
                    None => {
                        if let Some((f, burst)) = floor.filter(|(_, b)| seq >= *b) {
                            Timer::at(start + f * (seq - burst + 1)).await;
                        }
                        while lock(&shared).in_flight[j].len() >= args2.window as usize {
                            if wake.recv().await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let text = {
                    let mut sh = lock(&shared);
                    if recipients > 0 {
                        sh.in_flight[j].push_back(recipients);
                    }
                    let head = format!("{j}:{seq}:{}:", sh.now_ns(Instant::now()));
                    let fill = args2.size.saturating_sub(head.len());
                    head + &pad[..fill]
                };
                lock(&session).say(&room, &text);
                let _ = wake_writer.try_send(());
            }
        })
        .detach();
    }
    let finished = expected == 0
        || within(start + args.timeout, "deliveries", async {
            done_rx.recv().await.map_err(|e| e.to_string())
        })
        .await
        .is_ok();
    let cpu = meter.finish();
    let sh = lock(&shared);
    let wall = sh
        .last_delivery
        .saturating_duration_since(start)
        .max(Duration::from_micros(1));
    let lost = sh.expected.saturating_sub(sh.delivered);
    let rate = sh.delivered as f64 / wall.as_secs_f64();
    let cpu_per = cpu
        .server_ns
        .filter(|_| sh.delivered > 0)
        .map(|ns| ns as f64 / sh.delivered as f64);
    let q = |q: f64| sh.hist.quantile(q) as f64 / 1000.0;
    println!("protocol            {:?}", args.protocol);
    println!("clients / rooms     {} / {}", args.clients, args.rooms);
    println!(
        "senders x messages  {} x {} ({} bytes)",
        args.senders, args.messages, args.size
    );
    match args.rate {
        Some(r) => println!("offered load        {r} msgs/s"),
        None => println!("window              {}", args.window),
    }
    println!(
        "connect (all)       {:.1} ms",
        connect_time.as_secs_f64() * 1e3
    );
    println!(
        "deliveries          {} in {:.3} s",
        sh.delivered,
        wall.as_secs_f64()
    );
    println!("deliveries/s        {rate:.0}");
    println!(
        "latency p50/p99/p999 {:.1} / {:.1} / {:.1} us ({} samples)",
        q(0.5),
        q(0.99),
        q(0.999),
        sh.hist.count()
    );
    if let Some(c) = cpu_per {
        println!("server CPU/delivery {c:.0} ns");
    }
    println!("CPU use             {}", cpu.describe());
    println!("loadgen threads     {}", args.threads);
    println!("errors              {}", sh.errors);
    println!("lost / duplicated   {lost} / {}", sh.duplicated);
    println!(
        "{{\"mode\":\"fanout\",\"protocol\":\"{}\",\"clients\":{},\"rooms\":{},\"senders\":{},\"messages\":{},\"size\":{},\"window\":{},\"rate\":{},\"connect_ms\":{:.1},\"deliveries\":{},\"seconds\":{:.4},\"deliveries_per_sec\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"server_cpu_ns_per_delivery\":{},\"errors\":{},\"lost\":{},\"duplicated\":{},\"threads\":{}{}}}",
        proto_name(args.protocol),
        args.clients,
        args.rooms,
        args.senders,
        args.messages,
        args.size,
        args.window,
        args.rate.map_or("null".to_owned(), |r| r.to_string()),
        connect_time.as_secs_f64() * 1e3,
        sh.delivered,
        wall.as_secs_f64(),
        rate,
        q(0.5),
        q(0.99),
        q(0.999),
        cpu_per.map_or("null".to_owned(), |c| format!("{c:.0}")),
        sh.errors,
        lost,
        sh.duplicated,
        args.threads,
        cpu.json(""),
    );
    if !finished {
        eprintln!(
            "loadgen: FAILED: {lost} deliveries missing after {:?}",
            args.timeout
        );
    }
    Ok(finished && lost == 0 && sh.duplicated == 0)
}

async fn idle(
    ex: &'static Executor<'static>,
    args: &'static Args,
    n: usize,
) -> Result<bool, String> {
    let shared = Arc::new(Mutex::new(Shared::new()));
    let tag = run_tag();
    let rss_before = args.server_pid.and_then(sys::rss_bytes);
    progress(
        args,
        &format!("opening {n} idle connections to {}", args.server),
    );
    let meter = sys::CpuMeter::start(args.server_pid);
    let (peers, took) = connect_all(ex, args, &shared, n, |i| {
        (format!("{tag}i{i}"), format!("{tag}idle{}", i / 100))
    })
    .await?;
    let registered_cpu = meter.finish();
    let join_took = join_all(ex, args, &peers).await?;
    let setup_cpu = meter.finish();
    let rss_after = args.server_pid.and_then(sys::rss_bytes);
    // Connect, hello and join, one after the other for each client.
    let setup_rate = n as f64 / (took + join_took).as_secs_f64().max(1e-9);
    let setup_us = setup_cpu.server_ns.map(|ns| ns as f64 / 1e3 / n as f64);
    // The setup's CPU split at the end of registration: what connect+hello cost, and
    // what the join (and its announcements to the room) added.
    let reg_us = registered_cpu
        .server_ns
        .map(|ns| ns as f64 / 1e3 / n as f64);
    let join_us = setup_us.zip(reg_us).map(|(s, r)| s - r);
    let reg_rate = n as f64 / took.as_secs_f64().max(1e-9);
    let join_rate = n as f64 / join_took.as_secs_f64().max(1e-9);
    progress(
        args,
        &format!(
            "{n} registered in {:.2} s; holding {:?}",
            took.as_secs_f64(),
            args.hold
        ),
    );
    Timer::after(args.hold).await;
    let deadline = Instant::now() + args.timeout;
    for (i, p) in peers.iter().enumerate() {
        lock(&p.session).ping(i as u64 + 1);
        p.flush();
    }
    let mut held = 0;
    for (i, p) in peers.iter().enumerate() {
        let token = i as u64 + 1;
        let pong = expect(p, "ping", |s| matches!(s, Seen::Pong(t) if *t == token));
        let ok = within(deadline, "pong", pong).await;
        held += usize::from(ok.is_ok());
    }
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    println!("protocol            {:?}", args.protocol);
    println!("connections         {n}");
    println!("held (answered ping) {held}");
    println!(
        "registration        {reg_rate:.0} /s ({:.2} s for all: connect, hello, welcome)",
        took.as_secs_f64()
    );
    println!(
        "joins               {join_rate:.0} /s ({:.2} s for all, rooms of 100)",
        join_took.as_secs_f64()
    );
    println!(
        "setup               {setup_rate:.0} /s (connect, hello, join); server CPU {} us each",
        setup_us.map_or("-".to_owned(), |u| format!("{u:.1}"))
    );
    println!(
        "server CPU          {} us per connect+hello, {} us per join",
        reg_us.map_or("-".to_owned(), |u| format!("{u:.1}")),
        join_us.map_or("-".to_owned(), |u| format!("{u:.1}"))
    );
    println!("CPU use (setup)     {}", setup_cpu.describe());
    println!("loadgen threads     {}", args.threads);
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        println!(
            "server RSS          {:.1} MiB -> {:.1} MiB",
            b as f64 / 1048576.0,
            a as f64 / 1048576.0
        );
    }
    if let Some(p) = per_conn {
        println!("server RSS/conn     {p:.0} bytes");
    }
    println!(
        "{{\"mode\":\"idle\",\"protocol\":\"{}\",\"connections\":{n},\"held\":{held},\"registrations_per_sec\":{reg_rate:.0},\"joins_per_sec\":{join_rate:.0},\"rss_bytes_per_conn\":{},\"setup_per_sec\":{setup_rate:.0},\"setup_server_cpu_us\":{},\"register_server_cpu_us\":{},\"join_server_cpu_us\":{},\"threads\":{}{}}}",
        proto_name(args.protocol),
        per_conn.map_or("null".to_owned(), |p| format!("{p:.0}")),
        setup_us.map_or("null".to_owned(), |u| format!("{u:.1}")),
        reg_us.map_or("null".to_owned(), |u| format!("{u:.1}")),
        join_us.map_or("null".to_owned(), |u| format!("{u:.1}")),
        args.threads,
        setup_cpu.json(""),
    );
    Ok(held == n)
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Native => "native",
        Protocol::Irc => "irc",
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
