//! The bus against a real redis-server: pub/sub, claims, leases, outages.

mod redis_server;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_server::RedisServer;
use switchboard_bus::{BusEvent, BusOp, Cluster, ClusterOptions, Worker};

/// Bound on every wait for an event: far above what any of them takes.
const WAIT: Duration = Duration::from_secs(10);

/// A worker and the events it sent.
struct Node {
    worker: Worker,
    events: mpsc::Receiver<BusEvent>,
    name: String,
}

impl Node {
    fn start(url: &str, name: &str) -> Node {
        let (tx, events) = mpsc::channel();
        let cluster = Cluster::new(url, ClusterOptions::new(name, 1)).expect("a good URL");
        let worker = Worker::start(cluster, move |event| {
            let _ = tx.send(event);
        })
        .expect("start the worker");
        Node {
            worker,
            events,
            name: name.into(),
        }
    }

    /// Starts one and waits for `Up`.
    fn up(url: &str, name: &str) -> Node {
        let node = Node::start(url, name);
        node.expect(|e| *e == BusEvent::Up);
        node
    }

    fn op(&self, op: BusOp) {
        self.worker.submit(op);
    }

    fn subscribe(&self, channel: &str) {
        self.op(BusOp::Subscribe {
            channel: channel.into(),
        });
    }

    fn publish(&self, channel: &str, payload: &str) {
        self.op(BusOp::Publish {
            channel: channel.into(),
            payload: Bytes::from(payload.to_owned()),
        });
    }

    fn claim(&self, id: u64, key: &str, lease_ms: u64) {
        self.op(BusOp::Claim {
            id,
            key: key.into(),
            owner: self.name.clone(),
            lease_ms,
        });
    }

    /// The next event, which must come within `WAIT`.
    fn next(&self) -> BusEvent {
        self.events
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{}: no event within {WAIT:?}", self.name))
    }

    /// Skips events until one matches; fails after `WAIT`.
    fn expect(&self, want: impl Fn(&BusEvent) -> bool) -> BusEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if want(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("{}: the awaited event did not come", self.name),
            }
        }
    }

    /// The answer to claim `id` (nothing else may come first).
    fn claimed(&self, id: u64) -> bool {
        match self.next() {
            BusEvent::Claimed { id: got, ok } if got == id => ok,
            other => panic!(
                "{}: expected the answer to claim {id}, got {other:?}",
                self.name
            ),
        }
    }

    /// The payloads of the next `n` messages, which must all be on `channel`.
    fn messages(&self, channel: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match self.next() {
                BusEvent::Message {
                    channel: c,
                    payload,
                } if c == channel => String::from_utf8(payload.to_vec()).expect("utf-8 payload"),
                other => panic!(
                    "{}: expected a message on {channel}, got {other:?}",
                    self.name
                ),
            })
            .collect()
    }

    /// Nothing arrived so far (only events already queued are looked at).
    fn quiet(&self) {
        if let Ok(event) = self.events.try_recv() {
            panic!("{}: unexpected {event:?}", self.name);
        }
    }
}

/// A plain connection to the test's Redis, to look at keys or meddle with them.
fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("connect to the test redis")
}

#[test]
fn messages_reach_every_subscriber_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    let b = Node::up(&server.url(), "b");
    // B hears its own marker: its subscription is in force.
    b.subscribe("sb:room:x");
    b.publish("sb:room:x", "ready");
    assert_eq!(b.messages("sb:room:x", 1), ["ready"]);
    // A's subscription is in force before its first publish runs: it hears itself too.
    a.subscribe("sb:room:x");
    let sent: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
    for m in &sent {
        a.publish("sb:room:x", m);
    }
    assert_eq!(b.messages("sb:room:x", sent.len()), sent);
    assert_eq!(a.messages("sb:room:x", sent.len()), sent);
    // Channels nobody here subscribed to are not heard.
    a.publish("sb:room:y", "elsewhere");
    a.publish("sb:room:x", "last");
    assert_eq!(b.messages("sb:room:x", 1), ["last"]);
    assert_eq!(a.messages("sb:room:x", 1), ["last"]);
    b.quiet();
}

#[test]
fn unsubscribed_channels_fall_silent() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    a.subscribe("sb:one");
    a.subscribe("sb:two");
    a.publish("sb:one", "1");
    assert_eq!(a.messages("sb:one", 1), ["1"]);
    a.op(BusOp::Unsubscribe {
        channel: "sb:one".into(),
    });
    a.publish("sb:one", "not heard");
    a.publish("sb:two", "2");
    assert_eq!(a.messages("sb:two", 1), ["2"]);
    a.quiet();
}

#[test]
fn a_claimed_key_is_refused_to_others_and_released_only_by_its_owner() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    let b = Node::up(&server.url(), "b");
    a.claim(1, "sb:nick:ann", 30_000);
    assert!(a.claimed(1));
    b.claim(2, "sb:nick:ann", 30_000);
    assert!(!b.claimed(2));
    // The owner claiming again (after a reconnect, say) keeps it.
    a.claim(3, "sb:nick:ann", 30_000);
    assert!(a.claimed(3));
    // A release by someone else leaves the key alone.
    b.op(BusOp::Release {
        key: "sb:nick:ann".into(),
        owner: "b".into(),
    });
    b.claim(4, "sb:nick:ann", 30_000);
    assert!(!b.claimed(4));
    a.op(BusOp::Release {
        key: "sb:nick:ann".into(),
        owner: "a".into(),
    });
    // Ops run in order: A's release is done before this claim of A's is answered.
    a.claim(5, "sb:nick:other", 30_000);
    assert!(a.claimed(5));
    b.claim(6, "sb:nick:ann", 30_000);
    assert!(b.claimed(6));
    let owner: Option<String> = redis::cmd("GET")
        .arg("sb:nick:ann")
        .query(&mut raw(&server))
        .expect("GET");
    assert_eq!(owner.as_deref(), Some("b"));
}

#[test]
fn leases_are_renewed_while_the_owner_lives() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    a.claim(1, "sb:nick:ann", 300);
    assert!(a.claimed(1));
    // Wait out several leases, watching the key the whole time: it never lapses.
    let mut con = raw(&server);
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let ttl: i64 = redis::cmd("PTTL")
            .arg("sb:nick:ann")
            .query(&mut con)
            .expect("PTTL");
        assert!(ttl > 0, "the lease lapsed (PTTL {ttl})");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.quiet();
    // A release naming another owner (a dead node's, say) neither deletes the key nor
    // stops its renewal.
    a.op(BusOp::Release {
        key: "sb:nick:ann".into(),
        owner: "dead".into(),
    });
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        let ttl: i64 = redis::cmd("PTTL")
            .arg("sb:nick:ann")
            .query(&mut con)
            .expect("PTTL");
        assert!(
            ttl > 0,
            "the lease lapsed after a release by another owner (PTTL {ttl})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.quiet();
    // Released, it is no longer renewed: it is gone at once and stays gone.
    a.op(BusOp::Release {
        key: "sb:nick:ann".into(),
        owner: "a".into(),
    });
    a.claim(2, "sb:probe", 30_000);
    assert!(a.claimed(2));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("sb:nick:ann")
        .query(&mut con)
        .expect("EXISTS");
    assert_eq!(exists, 0);
}

#[test]
fn a_key_taken_over_is_reported_lost() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    a.claim(1, "sb:nick:ann", 300);
    a.claim(2, "sb:nick:bob", 300);
    assert!(a.claimed(1));
    assert!(a.claimed(2));
    let mut con = raw(&server);
    let _: () = redis::cmd("SET")
        .arg("sb:nick:ann")
        .arg("someone else")
        .query(&mut con)
        .expect("SET");
    assert_eq!(
        a.next(),
        BusEvent::Lost {
            key: "sb:nick:ann".into()
        }
    );
    // The other key is still renewed, and the overwritten one left alone.
    std::thread::sleep(Duration::from_millis(600));
    a.quiet();
    let ann: Option<String> = redis::cmd("GET")
        .arg("sb:nick:ann")
        .query(&mut con)
        .expect("GET");
    assert_eq!(ann.as_deref(), Some("someone else"));
    let bob: Option<String> = redis::cmd("GET")
        .arg("sb:nick:bob")
        .query(&mut con)
        .expect("GET");
    assert_eq!(bob.as_deref(), Some("a"));
}

#[test]
fn odd_keys_and_bad_leases_are_refused_claims_not_crashes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    let mut con = raw(&server);
    let _: () = redis::cmd("RPUSH")
        .arg("sb:nick:list")
        .arg("x")
        .query(&mut con)
        .map(|_: i64| ())
        .expect("RPUSH");
    a.claim(1, "sb:nick:list", 30_000);
    assert!(!a.claimed(1));
    a.claim(2, "sb:nick:zero", 0);
    assert!(!a.claimed(2));
    // Forgotten scripts are loaded again.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut con)
        .expect("SCRIPT FLUSH");
    a.claim(3, "sb:nick:ann", 30_000);
    assert!(a.claimed(3));
    a.subscribe("sb:c");
    a.publish("sb:c", "still here");
    assert_eq!(a.messages("sb:c", 1), ["still here"]);
}

#[test]
fn a_restarted_redis_is_down_then_up_again() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = Node::up(&server.url(), "a");
    a.subscribe("sb:c");
    a.claim(1, "sb:nick:ann", 30_000);
    assert!(a.claimed(1));
    server.kill();
    assert_eq!(a.next(), BusEvent::Down);
    // Meanwhile ops are dropped: no answer ever comes to this claim.
    a.claim(2, "sb:nick:lost", 30_000);
    server.restart().expect("restart redis-server");
    assert_eq!(a.next(), BusEvent::Up);
    // A fresh session: subscribe and claim again.
    a.subscribe("sb:c");
    a.publish("sb:c", "again");
    assert_eq!(a.messages("sb:c", 1), ["again"]);
    a.claim(3, "sb:nick:ann", 30_000);
    assert!(a.claimed(3));
}

#[test]
fn redis_absent_at_start_is_down_until_it_appears() {
    let Some(_) = redis_server::available().then_some(()) else {
        return;
    };
    let mut server = RedisServer::stopped(redis_server::free_port());
    let a = Node::start(&server.url(), "a");
    assert_eq!(a.next(), BusEvent::Down);
    a.claim(1, "sb:nick:ann", 30_000);
    server.restart().expect("start redis-server");
    assert_eq!(a.next(), BusEvent::Up);
    a.claim(2, "sb:nick:ann", 30_000);
    assert!(a.claimed(2));
}

#[test]
fn a_bad_url_is_an_error() {
    let err = Cluster::new("http://nowhere", ClusterOptions::new("a", 1))
        .err()
        .expect("refused");
    assert!(err.0.contains("nowhere"), "{err}");
}
