//! Publishes through Redis from one bus worker to another and prints the rate and the
//! latency: `cargo run --release -p switchboard-bus --example bus_throughput [-- N [URL]]`.
//!
//! Without URL it starts its own redis-server on a free 127.0.0.1 port (and stops it).

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_bus::{BusEvent, BusOp, Cluster, ClusterOptions, Worker};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let (url, mut own) = match args.next() {
        Some(url) => (url, None),
        None => {
            let (url, child) = start_redis();
            (url, Some(child))
        }
    };
    let (tx_a, rx_a) = mpsc::channel();
    let (tx_b, rx_b) = mpsc::channel();
    let start = |name: &str, tx: mpsc::Sender<BusEvent>| {
        let cluster = Cluster::new(&url, ClusterOptions::new(name, 1)).expect("a good URL");
        Worker::start(cluster, move |e| {
            let _ = tx.send(e);
        })
        .expect("start a worker")
    };
    let a = start("a", tx_a);
    let b = start("b", tx_b);
    for rx in [&rx_a, &rx_b] {
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(BusEvent::Up));
    }
    b.submit(BusOp::Subscribe {
        channel: "sb:bench".into(),
    });
    // b hears its own marker: subscribed.
    publish(&b, 0, Instant::now());
    wait_message(&rx_b);
    let mut a = Some(a);
    for (count, rate) in [(n, None), (n / 10, Some(10_000.0))] {
        let w = a.take().expect("the publisher");
        let (w, took, mut lat) = run(w, &rx_b, count, rate);
        a = Some(w);
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e6;
        let how = match rate {
            None => "as fast as it goes".to_owned(),
            Some(r) => format!("paced at {r:.0}/s"),
        };
        println!(
            "{count} messages of 16 bytes, one publisher, one subscriber, {how}: {:.0} msg/s; \
             latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            count as f64 / took.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    if let Some(child) = &mut own {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `n` messages from `a` (at `rate` per second, or flat out) and times their arrival
/// at `rx`.
fn run(
    a: Worker,
    rx: &mpsc::Receiver<BusEvent>,
    n: usize,
    rate: Option<f64>,
) -> (Worker, Duration, Vec<u64>) {
    let epoch = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..n {
            if let Some(rate) = rate {
                let at = epoch + Duration::from_secs_f64(i as f64 / rate);
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            publish(&a, i, epoch);
        }
        a
    });
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let payload = wait_message(rx);
        let sent_ns = u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
        lat.push(epoch.elapsed().as_nanos() as u64 - sent_ns);
    }
    let took = epoch.elapsed();
    (sender.join().expect("the sender"), took, lat)
}

fn publish(w: &Worker, i: usize, epoch: Instant) {
    let mut payload = Vec::with_capacity(16);
    payload.extend_from_slice(&(i as u64).to_le_bytes());
    payload.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    w.submit(BusOp::Publish {
        channel: "sb:bench".into(),
        payload: Bytes::from(payload),
    });
}

fn wait_message(rx: &mpsc::Receiver<BusEvent>) -> Bytes {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(BusEvent::Message { payload, .. }) => return payload,
            Ok(_) => {}
            Err(_) => panic!("no message within 10 s"),
        }
    }
}

fn start_redis() -> (String, Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("run redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (format!("redis://127.0.0.1:{port}"), child)
}
