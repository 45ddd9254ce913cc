//! The core's fan-out cost alone, no sockets: a room of 100 members (native, IRC, IRC
//! with server-time and message-tags, or a mix) hears messages from one native member,
//! and a member of several rooms joins and quits again and again. Prints nanoseconds per
//! delivery (messages) and per member told (join + quit), in CPU time.
//!
//!     cargo run --release -p switchboard-core --example fanout_bench [messages per run]
//!
//! (20,000 by default; fewer under valgrind --tool=callgrind, whose instruction counts do
//! not depend on the machine's load). A second argument runs only the rows whose name
//! starts with it, and a third, `0`, leaves out the join/quit churn.

use std::time::{Duration, Instant};

use switchboard_core::{Client, Config, ConnId, Server};

const MEMBERS: usize = 100;
const CHURN: usize = 2_000;

/// Who sits in the room besides the sender, by index: native, plain IRC, tagged IRC.
#[derive(Clone, Copy)]
enum Kind {
    Native,
    Irc,
    Tagged,
}

/// CPU time this thread has run, from Linux's schedstat (wall time elsewhere): the
/// machine may be shared, so wall time would count others' work.
fn cpu() -> Duration {
    let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    match ns {
        Some(ns) => Duration::from_nanos(ns),
        None => START.with(|s| s.elapsed()),
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

fn drain(server: &mut Server) -> usize {
    let mut n = 0;
    while let Some(t) = server.poll_transmit() {
        n += t.data.len();
        server.handle_written(t.conn, t.data.len());
    }
    n
}

fn native(server: &mut Server, now: Instant, nick: &str) -> (ConnId, Client) {
    let id = server.open(now);
    let mut client = Client::new(nick);
    client.set_paced(false);
    for _ in 0..4 {
        while let Some(b) = client.poll_transmit() {
            server.handle_input(id, &b, now);
        }
        while let Some(t) = server.poll_transmit() {
            server.handle_written(t.conn, t.data.len());
            if t.conn == id {
                client.handle_input(&t.data, now).expect("frames");
            }
        }
    }
    assert!(client.is_registered());
    client.join("r");
    client.join("s");
    while let Some(b) = client.poll_transmit() {
        server.handle_input(id, &b, now);
    }
    drain(server);
    (id, client)
}

fn irc(server: &mut Server, now: Instant, nick: &str, tagged: bool) -> ConnId {
    let id = server.open(now);
    let caps = if tagged {
        "CAP LS 302\r\nCAP REQ :server-time message-tags away-notify extended-join\r\n"
    } else {
        ""
    };
    let hello =
        format!("{caps}NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\nJOIN #r,#s\r\n");
    server.handle_input(id, hello.as_bytes(), now);
    drain(server);
    id
}

fn run(name: &str, kinds: &[Kind], messages: usize) {
    let only = std::env::args().nth(2).unwrap_or_default();
    if !name.starts_with(&only) {
        return;
    }
    let churns = if std::env::args().nth(3).as_deref() == Some("0") {
        0
    } else {
        CHURN
    };
    let now = Instant::now();
    let mut config = Config::default();
    config.msg_rate = 0;
    config.max_outbound_bytes = 1 << 30;
    config.outbound_high_water = 1 << 30;
    config.wall_clock = Some((now, Duration::from_secs(1_700_000_000)));
    let mut server = Server::new(config);
    let (sender, mut client) = native(&mut server, now, "sender");
    for (i, kind) in kinds.iter().enumerate() {
        let nick = format!("m{i}");
        match kind {
            Kind::Native => {
                native(&mut server, now, &nick);
            }
            Kind::Irc => {
                irc(&mut server, now, &nick, false);
            }
            Kind::Tagged => {
                irc(&mut server, now, &nick, true);
            }
        }
    }
    // Messages: the sender's copy and one per member.
    let start = cpu();
    let mut bytes = 0;
    for _ in 0..messages {
        client.say("r", "the quick brown fox jumps over the lazy dog");
        while let Some(b) = client.poll_transmit() {
            server.handle_input(sender, &b, now);
        }
        bytes += drain(&mut server);
    }
    let deliveries = (messages * (kinds.len() + 1)) as f64;
    let per = (cpu() - start).as_nanos() as f64 / deliveries;
    // Churn: an IRC user with away-notify, in both rooms, away, joins and quits.
    let start = cpu();
    for i in 0..churns {
        let id = irc(&mut server, now, &format!("c{i}"), true);
        server.handle_input(id, b"AWAY :gone\r\nQUIT :bye\r\n", now);
        bytes += drain(&mut server);
        while let Some(c) = server.poll_close() {
            server.handle_close(c.conn, now);
        }
    }
    let told = (churns.max(1) * kinds.len() * 2) as f64;
    let churn = (cpu() - start).as_nanos() as f64 / told;
    println!(
        "{name:<28} {per:>7.1} ns/delivery   churn {churn:>7.1} ns/member told   ({bytes} bytes)"
    );
}

fn main() {
    let messages = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let all = |k: Kind| vec![k; MEMBERS - 1];
    run("native", &all(Kind::Native), messages);
    run("irc", &all(Kind::Irc), messages);
    run("irc, server-time + tags", &all(Kind::Tagged), messages);
    let mix: Vec<Kind> = (0..MEMBERS - 1)
        .map(|i| [Kind::Native, Kind::Irc, Kind::Tagged][i % 3])
        .collect();
    run("mixed thirds", &mix, messages);
}
