//! The scenarios every runtime must pass, each a function of how to start a server.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard::core::packet::{client_type, ClientPacket, Packet};
use switchboard::core::{ClientEvent, Config, ErrorCode, Member, RoomInfo};

use crate::client::{frame, TestClient, WAIT};
use crate::runtimes::Start;

/// The tests' limits: flood control off, a short close linger.
fn config() -> Config {
    let mut c = Config::default();
    c.msg_rate = 0;
    c.close_linger = Duration::from_secs(1);
    c
}

fn is_message(e: &ClientEvent, room: &str, from: &str, text: &str) -> bool {
    matches!(e, ClientEvent::Message { room: r, from: f, text: t, .. }
        if r == room && f == from && t == text)
}

fn is_left(e: &ClientEvent, nick: &str, reason: &str) -> bool {
    matches!(e, ClientEvent::Left { nick: n, reason: r, .. } if n == nick && r == reason)
}

fn is_bye(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Bye { .. })
}

fn is_error(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Error { .. })
}

fn bye_code(e: &ClientEvent) -> Option<ErrorCode> {
    match e {
        ClientEvent::Bye { code, .. } => Some(*code),
        _ => None,
    }
}

fn error_of(e: &ClientEvent) -> Option<(ErrorCode, u32)> {
    match e {
        ClientEvent::Error {
            code, request_seq, ..
        } => Some((*code, *request_seq)),
        _ => None,
    }
}

pub fn hello_and_welcome(start: Start) {
    let config = config();
    let server = start(config.clone());
    let mut alice = TestClient::hello(server.addr, "alice");
    let welcome = alice.expect("welcome", |e| matches!(e, ClientEvent::Welcome { .. }));
    assert_eq!(
        welcome,
        ClientEvent::Welcome {
            nick: "alice".into(),
            limits: config.limits()
        }
    );
    assert!(alice.client().is_registered());
}

pub fn taken_nick(start: Start) {
    let server = start(config());
    let _alice = TestClient::connect(server.addr, "alice");
    // Nicknames compare without case.
    let mut other = TestClient::hello(server.addr, "ALICE");
    let error = other.expect("an error", is_error);
    assert_eq!(
        error_of(&error),
        Some((ErrorCode::NickTaken, 1)),
        "{error:?}"
    );
    other.send(|c| c.hello("bob"));
    other.expect(
        "welcome as bob",
        |e| matches!(e, ClientEvent::Welcome { nick, .. } if nick == "bob"),
    );
}

pub fn nick_change_seen_by_shared_rooms(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = TestClient::in_room(server.addr, "bob", "r");
    let mut carol = TestClient::in_room(server.addr, "carol", "elsewhere");
    alice.send(|c| c.change_nick("alicia"));
    let changed = |e: &ClientEvent| matches!(e, ClientEvent::NickChanged { old, new } if old == "alice" && new == "alicia");
    alice.expect("own nick change", changed);
    bob.expect("alice's nick change", changed);
    assert_eq!(alice.client().nick(), "alicia");
    let members = &bob.client().room("r").expect("bob in r").members;
    assert!(members.iter().any(|m| m == "alicia"), "{members:?}");
    // alice's change was handled before carol's ping: had carol been told, it came first.
    let seen = carol.sync();
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::NickChanged { .. })),
        "carol shares no room with alice yet saw {seen:?}"
    );
    // The old nickname is free again.
    TestClient::connect(server.addr, "alice");
}

pub fn join_and_leave_notices(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = TestClient::connect(server.addr, "bob");
    bob.send(|c| c.join("r"));
    bob.expect(
        "own join",
        |e| matches!(e, ClientEvent::Joined { room, nick } if room == "r" && nick == "bob"),
    );
    let members = bob.expect("members", |e| matches!(e, ClientEvent::Members { .. }));
    assert_eq!(
        members,
        ClientEvent::Members {
            room: "r".into(),
            members: vec![
                Member {
                    nick: "alice".into(),
                    flags: Member::OPERATOR
                },
                Member {
                    nick: "bob".into(),
                    flags: 0
                }
            ]
        }
    );
    alice.expect(
        "bob's join",
        |e| matches!(e, ClientEvent::Joined { room, nick } if room == "r" && nick == "bob"),
    );
    bob.send(|c| c.leave("r", "see you"));
    alice.expect("bob's leave", |e| is_left(e, "bob", "see you"));
    bob.expect("own leave", |e| is_left(e, "bob", "see you"));
    assert!(bob.client().room("r").is_none());
    assert_eq!(alice.client().room("r").expect("in r").members, ["alice"]);
}

pub fn room_message_reaches_members_only(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = TestClient::in_room(server.addr, "bob", "r");
    let mut carol = TestClient::in_room(server.addr, "carol", "elsewhere");
    alice.send(|c| c.say("r", "hello"));
    let echo = alice.expect("own message", |e| is_message(e, "r", "alice", "hello"));
    assert!(
        matches!(echo, ClientEvent::Message { seq: 1, .. }),
        "{echo:?}"
    );
    let got = bob.expect("alice's message", |e| is_message(e, "r", "alice", "hello"));
    assert_eq!(got, echo);
    let seen = carol.sync();
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Message { .. })),
        "carol is not in r yet saw {seen:?}"
    );
}

pub fn order_kept_per_sender(start: Start) {
    const EACH: usize = 100;
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = TestClient::in_room(server.addr, "bob", "r");
    let mut carol = TestClient::in_room(server.addr, "carol", "r");
    for i in 0..EACH {
        alice.queue(|c| c.say("r", &format!("a{i}")));
        bob.queue(|c| c.say("r", &format!("b{i}")));
    }
    alice.flush();
    bob.flush();
    let mut next = [0usize; 2];
    let mut last_seq = 0;
    for _ in 0..2 * EACH {
        let ClientEvent::Message {
            from, seq, text, ..
        } = carol.expect("a message", |e| matches!(e, ClientEvent::Message { .. }))
        else {
            unreachable!()
        };
        let who = usize::from(from == "bob");
        assert_eq!(
            text,
            format!("{}{}", ["a", "b"][who], next[who]),
            "from {from}"
        );
        next[who] += 1;
        assert!(seq > last_seq, "seq {seq} after {last_seq}");
        last_seq = seq;
    }
    assert_eq!(last_seq, 2 * EACH as u64);
}

pub fn direct_messages(start: Start) {
    let server = start(config());
    let mut alice = TestClient::connect(server.addr, "alice");
    let mut bob = TestClient::connect(server.addr, "bob");
    let mut carol = TestClient::connect(server.addr, "carol");
    alice.send(|c| c.whisper("BOB", "psst"));
    let direct = |e: &ClientEvent| {
        matches!(e, ClientEvent::Direct { from, to, text }
            if from == "alice" && to == "bob" && text == "psst")
    };
    bob.expect("the direct message", direct);
    alice.expect("its echo", direct);
    let seq = alice.send(|c| c.whisper("nobody", "hi"));
    let error = alice.expect("an error", is_error);
    assert_eq!(error_of(&error), Some((ErrorCode::NoSuchNick, seq)));
    let seen = carol.sync();
    assert!(seen.is_empty(), "carol saw {seen:?}");
}

pub fn room_and_member_lists(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "R1");
    alice.join("r2");
    let mut bob = TestClient::in_room(server.addr, "bob", "r1");
    bob.send(|c| c.list_rooms());
    let rooms = bob.expect("the room list", |e| matches!(e, ClientEvent::RoomList(_)));
    let info = |name: &str, members| RoomInfo {
        name: name.into(),
        members,
    };
    assert_eq!(
        rooms,
        ClientEvent::RoomList(vec![info("R1", 2), info("r2", 1)])
    );
    bob.send(|c| c.list_members("r1"));
    let members = bob.expect("members", |e| matches!(e, ClientEvent::Members { .. }));
    assert_eq!(
        members,
        ClientEvent::Members {
            room: "R1".into(),
            members: vec![
                Member {
                    nick: "alice".into(),
                    flags: Member::OPERATOR
                },
                Member {
                    nick: "bob".into(),
                    flags: 0
                }
            ]
        }
    );
    let seq = bob.send(|c| c.list_members("nope"));
    let error = bob.expect("an error", is_error);
    assert_eq!(error_of(&error), Some((ErrorCode::NoSuchRoom, seq)));
}

pub fn dropped_socket_frees_the_nick(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let bob = TestClient::in_room(server.addr, "bob", "r");
    let mut carol = TestClient::in_room(server.addr, "carol", "r");
    alice.send(|c| c.say("r", "unread by bob"));
    alice.expect("own message", |e| {
        is_message(e, "r", "alice", "unread by bob")
    });
    carol.sync();
    // bob drops its socket with input unread (a reset); carol after reading all (a close).
    drop(bob);
    alice.expect("bob's departure", |e| is_left(e, "bob", "connection lost"));
    drop(carol);
    alice.expect("carol's departure", |e| {
        is_left(e, "carol", "connection lost")
    });
    server.expect_connections(1, WAIT);
    TestClient::connect(server.addr, "bob");
    TestClient::connect(server.addr, "carol");
}

/// `mallory` sends `bytes`: it gets an error and a bye with `code` and is closed, while the
/// others in its room are told and keep chatting.
fn violation(start: Start, bytes: &[u8], code: ErrorCode) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = TestClient::in_room(server.addr, "bob", "r");
    let mut mallory = TestClient::in_room(server.addr, "mallory", "r");
    mallory.write_raw(bytes);
    let error = mallory.expect("an error", is_error);
    assert_eq!(error_of(&error).map(|e| e.0), Some(code), "{error:?}");
    let bye = mallory.expect("a bye", is_bye);
    assert_eq!(bye_code(&bye), Some(code), "{bye:?}");
    mallory.expect_closed(WAIT);
    alice.expect("mallory's departure", |e| {
        is_left(e, "mallory", "protocol error")
    });
    alice.send(|c| c.say("r", "still here"));
    bob.expect("alice's message", |e| {
        is_message(e, "r", "alice", "still here")
    });
    server.expect_connections(2, WAIT);
}

pub fn malformed_frame(start: Start) {
    // A join whose room name claims 5 bytes but has 1.
    violation(
        start,
        &frame(client_type::JOIN, &[0, 5, b'a']),
        ErrorCode::Malformed,
    );
}

pub fn oversized_length(start: Start) {
    let mut bytes = (config().max_frame_len + 1).to_be_bytes().to_vec();
    // Whatever follows the refused length is never buffered.
    bytes.extend_from_slice(&[0x55; 1000]);
    violation(start, &bytes, ErrorCode::FrameTooLarge);
}

pub fn invalid_utf8(start: Start) {
    // Say to room "r" a text of two bytes that are not UTF-8.
    violation(
        start,
        &frame(client_type::SAY, &[0, 1, b'r', 0, 2, 0xff, 0xfe]),
        ErrorCode::InvalidUtf8,
    );
}

pub fn slow_consumer_is_closed(start: Start) {
    let config = {
        let mut c = config();
        c.max_outbound_bytes = 128 * 1024;
        c
    };
    let linger = config.close_linger;
    let server = start(config);
    let mut talker = TestClient::in_room(server.addr, "talker", "r");
    let mut reader = TestClient::in_room(server.addr, "reader", "r");
    let mut stalled = TestClient::in_room(server.addr, "stalled", "r");
    let mut other = TestClient::connect(server.addr, "other");
    let text = "x".repeat(4000);
    let gone = |e: &ClientEvent| is_left(e, "stalled", "slow consumer");
    // stalled never reads: once the kernel's buffers are full its output piles up in the
    // server, up to the limit. The others read everything.
    let (mut talker_told, mut reader_told) = (false, false);
    let mut said = 0u64;
    while !(talker_told && reader_told) {
        assert!(
            said < 20_000,
            "stalled still in the room after {said} messages of 4000 bytes"
        );
        // A batch well under the limit: talker and reader read theirs before the next.
        for _ in 0..8 {
            talker.queue(|c| c.say("r", &text));
        }
        talker.flush();
        said += 8;
        let last = |e: &ClientEvent| matches!(e, ClientEvent::Message { seq, .. } if *seq == said);
        for (client, told) in [
            (&mut talker, &mut talker_told),
            (&mut reader, &mut reader_told),
        ] {
            if !*told {
                let e = client.expect("the last message or stalled's departure", |e| {
                    last(e) || gone(e)
                });
                *told = gone(&e);
            }
        }
        if said % 256 == 0 {
            // Everyone else is still served promptly.
            other.sync();
        }
    }
    // Its bye cannot be written while it does not read: the close is cut after the linger.
    server.expect_connections(3, linger + WAIT);
    other.sync();
    talker.send(|c| c.say("r", "after"));
    reader.expect("a message after", |e| is_message(e, "r", "talker", "after"));
    // What reached stalled's socket ends in its bye, if that fit, and then the close.
    let events = stalled.expect_closed(Duration::from_secs(30));
    for e in events.iter().filter(|e| is_bye(e)) {
        assert_eq!(bye_code(e), Some(ErrorCode::SlowConsumer), "{e:?}");
    }
}

pub fn keepalive_closes_silent_client(start: Start) {
    let config = {
        let mut c = config();
        c.ping_interval = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(600);
        c
    };
    let server = start(config);
    let mut silent = TestClient::connect(server.addr, "silent");
    silent.set_silent();
    let mut lively = TestClient::connect(server.addr, "lively");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // lively reads, and so answers its pings, the whole time.
        s.spawn(|| lively.pump_until(&stop));
        let bye = silent.expect("a bye", is_bye);
        stop.store(true, Ordering::SeqCst);
        assert_eq!(bye_code(&bye), Some(ErrorCode::Timeout), "{bye:?}");
    });
    assert!(silent.pings() >= 1, "closed without a ping first");
    silent.expect_closed(WAIT);
    assert!(lively.pings() >= 1, "lively was never pinged");
    lively.sync();
}

/// A ping frame, for raw writes.
fn ping_frame(token: u64) -> Vec<u8> {
    frame(client_type::PING, &token.to_be_bytes())
}

pub fn burst_is_delayed_not_dropped(start: Start) {
    // The default limits, flood control included.
    let mut config = Config::default();
    config.close_linger = Duration::from_secs(1);
    let server = start(config);
    let mut burst = TestClient::connect(server.addr, "burst");
    let mut calm = TestClient::connect(server.addr, "calm");
    let bytes: Vec<u8> = (0..1000).flat_map(ping_frame).collect();
    burst.write_raw(&bytes);
    // Every one answered, in order; over the rate they only wait.
    for token in 0..1000u64 {
        let e = burst.expect_within("the next answer", Duration::from_secs(60), |e| {
            matches!(
                e,
                ClientEvent::Pong { .. } | ClientEvent::Error { .. } | ClientEvent::Bye { .. }
            )
        });
        assert_eq!(e, ClientEvent::Pong { token }, "answer {token}");
    }
    assert!(!burst.is_closed());
    calm.sync();
    burst.sync();
}

/// The server side's receive queue of the connection from `client` to `server`, in bytes,
/// as the kernel reports it (Linux, IPv4).
fn server_rx_queue(server: SocketAddr, client: SocketAddr) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let addr = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::from((ip.to_le_bytes(), port)))
    };
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 || addr(cols[1])? != server || addr(cols[2])? != client {
            return None;
        }
        let (_, rx) = cols[4].split_once(':')?;
        usize::from_str_radix(rx, 16).ok()
    })
}

pub fn flooder_is_paused_and_not_read(start: Start) {
    let mut config = config();
    config.msg_rate = 20;
    config.msg_burst = 10;
    config.max_inbound_bytes = 1024;
    let (rate, burst) = (config.msg_rate, config.msg_burst);
    let server = start(config);
    let mut flooder = TestClient::connect(server.addr, "flooder");
    if flooder.is_tls() {
        // The pings are written from another thread, beside the TLS session, which a
        // TLS client cannot share: this scenario runs on the plain runtimes.
        eprintln!("skipped over TLS: raw writes from a second thread");
        return;
    }
    let mut calm = TestClient::connect(server.addr, "calm");
    let began = Instant::now();
    // Far more pings than the server will take in: a thread writes them, blocking when the
    // socket is full; it ends when the server closes the socket at shutdown.
    let mut writer = flooder.stream();
    let local = writer.local_addr().expect("local address");
    std::thread::spawn(move || {
        let bytes: Vec<u8> = (0..40_000).flat_map(ping_frame).collect();
        let _ = writer.write_all(&bytes);
    });
    let is_pong = |e: &ClientEvent| matches!(e, ClientEvent::Pong { .. });
    let mut pongs = 0;
    // The server stops reading: its receive queue fills up to far past what it holds.
    let deadline = Instant::now() + WAIT;
    loop {
        let queued = server_rx_queue(server.addr, local);
        if queued.is_some_and(|q| q >= 64 * 1024) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept reading a paused flooder: receive queue {queued:?} bytes"
        );
        // Reading answers keeps the flooder a good reader: it floods, it does not stall.
        let events = flooder.drain_for(Duration::from_millis(10));
        pongs += events.iter().filter(|e| is_pong(e)).count();
    }
    // Meanwhile everyone else is answered at once.
    calm.sync();
    // Served no faster than its rate: a burst, then a tenth of an interval per ping.
    let events = flooder.drain_for(Duration::from_millis(100));
    pongs += events.iter().filter(|e| is_pong(e)).count();
    let elapsed = began.elapsed().as_secs_f64();
    let allowed = (burst * 10 + 1) as f64 + f64::from(rate) * 10.0 * elapsed;
    assert!(
        pongs as f64 <= allowed,
        "{pongs} pongs in {elapsed:.2} s, more than the rate allows ({allowed:.0})"
    );
    assert!(pongs > 0);
    assert!(
        !flooder.is_closed(),
        "a flooder that reads is paused, not closed"
    );
}

pub fn flooders_are_paced_by_a_reader_that_lags(start: Start) {
    // Flood control off; output pacing at its defaults, except that no stall ends a pause
    // during the test.
    let mut config = config();
    config.outbound_stall_timeout = Duration::from_secs(600);
    let server = start(config);
    let mut slow = TestClient::in_room(server.addr, "slow", "r");
    if slow.is_tls() {
        // The flooders write from other threads, beside their TLS sessions.
        eprintln!("skipped over TLS: raw writes from a second thread");
        return;
    }
    const N: usize = 2500;
    let text = |k: usize| format!("{k:04}{}", "x".repeat(3996));
    let flooders: Vec<TestClient> = (0..2)
        .map(|i| TestClient::in_room(server.addr, &format!("f{i}"), "r"))
        .collect();
    slow.sync();
    // What the kernel can hold toward slow while it reads nothing: the server's send buffer
    // (at most tcp_wmem's maximum) and slow's receive window, which does not grow while
    // it does not read; 1 MiB covers the window, the high-water mark and the batch in hand.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    let bound = (wmem_max + (1 << 20)) / 4000;
    assert!(
        bound < N,
        "tcp_wmem allows {wmem_max} bytes: the scenario needs more messages to tell"
    );
    let echoed = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let heard = std::thread::scope(|s| {
        // The readers stop however this ends, a failed assertion included.
        let _stop = StopOnDrop(&stop);
        let mut readers = Vec::new();
        for (i, mut flooder) in flooders.into_iter().enumerate() {
            // Far more than the kernel's buffers toward slow hold: 10 MB from each.
            let mut writer = flooder.stream();
            let local = writer.local_addr().expect("local address");
            // Not scoped: a writer blocked on a server that stopped reading ends when the
            // server closes the socket at shutdown.
            std::thread::spawn(move || {
                for k in 0..N {
                    let say = ClientPacket::Say {
                        room: "r".into(),
                        text: text(k),
                    };
                    if writer.write_all(&say.to_frame()).is_err() {
                        return;
                    }
                }
            });
            // Each flooder reads everything it is sent: only slow lags.
            let (stop, echoed) = (&stop, &echoed);
            let nick = format!("f{i}");
            let reader = s.spawn(move || {
                let mut events = Vec::new();
                let mut own = 0;
                // Until its own N messages are back (or the scenario failed elsewhere).
                while own < N && !stop.load(Ordering::SeqCst) && !flooder.is_closed() {
                    let new = flooder.drain_for(Duration::from_millis(20));
                    let n = new
                        .iter()
                        .filter(|e| matches!(e, ClientEvent::Message { from, .. } if *from == nick))
                        .count();
                    own += n;
                    echoed.fetch_add(n, Ordering::SeqCst);
                    events.extend(new);
                }
                (nick, flooder.is_closed(), events)
            });
            readers.push((local, reader));
        }
        // While slow reads nothing, the server stops reading both flooders: their receive
        // queues on the server's side fill (as far as the window the kernel gave them
        // allows: several frames).
        let deadline = Instant::now() + 3 * WAIT;
        for (local, _) in &readers {
            loop {
                let queued = server_rx_queue(server.addr, *local);
                if queued.is_some_and(|q| q >= 16 * 1024) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the server kept reading a flooder whose messages slow has not read: \
                     receive queue {queued:?} bytes"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Each message is queued for slow in the same request as its echo to its sender:
        // while slow reads nothing, the flooders are held back once the kernel's buffers
        // and slow's queue (up to the mark) are full, however long one watches.
        let watch = Instant::now() + Duration::from_secs(1);
        while Instant::now() < watch {
            let n = echoed.load(Ordering::SeqCst);
            assert!(
                n <= bound,
                "{n} messages handled while slow read nothing: the kernel holds at most \
                 {bound}; the flooders were not held back"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // slow reads: every message of each flooder reaches it, in order, and nobody is
        // closed.
        let mut from: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        let deadline = Instant::now() + 6 * WAIT;
        while from.iter().map(Vec::len).sum::<usize>() < 2 * N {
            assert!(
                !slow.is_closed(),
                "slow was closed: {:?}",
                slow.drain_for(WAIT)
            );
            assert!(
                Instant::now() < deadline,
                "slow heard {} and {} of {N} each",
                from[0].len(),
                from[1].len()
            );
            for e in slow.drain_for(Duration::from_millis(20)) {
                if let ClientEvent::Message { from: f, text, .. } = e {
                    let i = usize::from(f == "f1");
                    from[i].push(text[..4].parse().expect("numbered"));
                }
            }
        }
        let want: Vec<usize> = (0..N).collect();
        assert_eq!(from[0], want, "f0's messages at slow");
        assert_eq!(from[1], want, "f1's messages at slow");
        slow.sync();
        readers
            .into_iter()
            .map(|(_, r)| r.join().expect("reader"))
            .collect::<Vec<_>>()
    });
    for (nick, closed, events) in heard {
        assert!(!closed, "{nick} was closed");
        // Its own messages come back to it, all of them, in order.
        let own: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message { from, text, .. } if *from == nick => text[..4].parse().ok(),
                _ => None,
            })
            .collect();
        assert_eq!(own, (0..N).collect::<Vec<_>>(), "{nick}'s own messages");
    }
    assert!(!slow.is_closed());
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub fn trickled_frame_is_closed(start: Start) {
    let mut config = config();
    let timeout = Duration::from_millis(500);
    config.request_timeout = timeout;
    let server = start(config);
    let mut trickler = TestClient::connect(server.addr, "trickler");
    if trickler.is_tls() {
        // The bytes are written from another thread, beside the TLS session.
        eprintln!("skipped over TLS: raw writes from a second thread");
        return;
    }
    let began = Instant::now();
    // A room message of 100 bytes, one byte every 50 ms: every byte is life, but the frame
    // would take five seconds to complete.
    let bytes = frame(client_type::SAY, &[b'x'; 100]);
    let mut writer = trickler.stream();
    std::thread::spawn(move || {
        for b in bytes {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let bye = trickler.expect("a bye", is_bye);
    assert_eq!(bye_code(&bye), Some(ErrorCode::Timeout), "{bye:?}");
    assert!(began.elapsed() >= timeout, "closed before its deadline");
    trickler.expect_closed(WAIT);
}

pub fn requests_before_a_half_close_are_answered(start: Start) {
    let mut config = config();
    config.msg_rate = 5;
    config.msg_burst = 2;
    let server = start(config);
    let mut client = TestClient::connect(server.addr, "leaving");
    let bytes: Vec<u8> = (0..10).flat_map(ping_frame).collect();
    client.write_raw(&bytes);
    // The client has said all it will say; what it said still counts, at the rate.
    client
        .stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    for token in 0..10u64 {
        let e = client.expect("the next pong", |e| {
            matches!(e, ClientEvent::Pong { .. } | ClientEvent::Bye { .. })
        });
        assert_eq!(e, ClientEvent::Pong { token });
    }
    client.expect_closed(WAIT);
}

/// Clients in `thousand_clients`.
const THOUSAND: usize = 1000;

/// Open files `thousand_clients` holds: both ends of each client's socket, the listeners.
pub const THOUSAND_CLIENTS_FDS: u64 = 2 * THOUSAND as u64 + 16;

pub fn thousand_clients(start: Start) {
    const N: usize = THOUSAND;
    // All from 127.0.0.1: past the default per-address limit.
    let server = start({
        let mut c = config();
        c.max_conns_per_ip = N;
        c
    });
    let mut first = TestClient::in_room(server.addr, "c0", "big");
    let mut clients: Vec<TestClient> = (1..N)
        .map(|i| {
            let mut c = TestClient::hello(server.addr, &format!("c{i}"));
            c.send(|cl| cl.join("big"));
            c
        })
        .collect();
    while first.client().room("big").map_or(0, |r| r.members.len()) < N {
        first.expect("more joins", |e| matches!(e, ClientEvent::Joined { .. }));
    }
    first.send(|c| c.say("big", "hello, everyone"));
    for c in clients.iter_mut().chain([&mut first]) {
        c.expect("the broadcast", |e| {
            is_message(e, "big", "c0", "hello, everyone")
        });
    }
}

pub fn shutdown_says_bye(start: Start) {
    let mut server = start(config());
    let alice = TestClient::in_room(server.addr, "alice", "r");
    let bob = TestClient::in_room(server.addr, "bob", "r");
    let carol = TestClient::connect(server.addr, "carol");
    let anon = TestClient::raw(server.addr, "anon");
    // anon must be accepted, not waiting in the listen queue.
    server.expect_connections(4, WAIT);
    server.shutdown();
    for mut c in [alice, bob, carol, anon] {
        let bye = c.expect("a bye", is_bye);
        assert_eq!(
            bye_code(&bye),
            Some(ErrorCode::Shutdown),
            "{}: {bye:?}",
            c.label()
        );
        c.expect_closed(WAIT);
    }
    server.expect_stopped(WAIT);
    assert_eq!(server.connections(), 0);
}
