//! The cluster over real sockets and a real redis-server, on every runtime: clients spread
//! over several nodes chat as on one server; a node killed with SIGKILL is noticed by the
//! others; Redis away or restarted under load loses nothing local.
//!
//! Each scenario starts its own redis-server on a free loopback port
//! (bus/tests/redis_server); without the binary it skips, saying why, except in CI.

use ::std::io::{BufRead, BufReader};
use ::std::net::SocketAddr;
use ::std::process::{Child, Command, Stdio};
use ::std::time::{Duration, Instant};

use switchboard::bus::Cluster;
use switchboard::core::{ClientEvent, ClusterOptions, Config, ErrorCode};

use crate::client::TestClient;
use crate::irc_client::{is, IrcClient};
use crate::redis_server::{self, RedisServer};
use crate::runtimes::Running;

/// Starts a node of the cluster on `redis_url`, named `node`.
pub type StartNode = fn(Config, &str, &str) -> Running;

/// A runtime: how to start a node in this process, and its name for a child process.
pub type Runtime = (StartNode, &'static str);

/// How long a dead node may take to be noticed, with margin: its leases must run out.
const NOTICED: Duration = Duration::from_secs(20);

fn config() -> Config {
    let mut c = Config::default();
    c.msg_rate = 0;
    c.close_linger = Duration::from_secs(1);
    c
}

fn cluster(url: &str, node: &str) -> Cluster {
    let options = ClusterOptions::new(node, switchboard::bus::incarnation());
    Cluster::new(url, options).expect("a good Redis URL")
}

#[cfg(feature = "smol")]
pub fn smol(config: Config, url: &str, node: &str) -> Running {
    let cluster = cluster(url, node);
    crate::runtimes::smol_with(config, |s| s.with_cluster(cluster))
}

#[cfg(feature = "async-std")]
pub fn async_std(config: Config, url: &str, node: &str) -> Running {
    let cluster = cluster(url, node);
    crate::runtimes::async_std_with(config, |s| s.with_cluster(cluster))
}

#[cfg(feature = "std")]
pub fn std(config: Config, url: &str, node: &str) -> Running {
    let cluster = cluster(url, node);
    crate::runtimes::std_with(config, |s| s.with_cluster(cluster))
}

fn is_message(e: &ClientEvent, room: &str, from: &str, text: &str) -> bool {
    matches!(e, ClientEvent::Message { room: r, from: f, text: t, .. }
        if r == room && f == from && t == text)
}

fn is_joined(e: &ClientEvent, room: &str, nick: &str) -> bool {
    matches!(e, ClientEvent::Joined { room: r, nick: n } if r == room && n == nick)
}

fn is_left(e: &ClientEvent, nick: &str) -> bool {
    matches!(e, ClientEvent::Left { nick: n, .. } if n == nick)
}

/// The room messages among `events`, as (sender, text).
fn messages(events: &[ClientEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message { from, text, .. } => Some((from.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

/// Waits until `nick`'s join of `room` reached `watcher` (through whatever node).
fn sees_join(watcher: &mut TestClient, room: &str, nick: &str) {
    watcher.expect(&format!("{nick}'s join of {room}"), |e| {
        is_joined(e, room, nick)
    });
}

/// Signs in as `nick` at `addr`, again and again while the nick is still taken (the
/// cluster frees it a moment after its owner left); fails after `limit`.
fn sign_in_when_free(addr: SocketAddr, nick: &str, limit: Duration) -> TestClient {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = TestClient::hello(addr, nick);
        let answer = c.expect("welcome or an error", |e| {
            matches!(e, ClientEvent::Welcome { .. } | ClientEvent::Error { .. })
        });
        match answer {
            ClientEvent::Welcome { .. } => return c,
            ClientEvent::Error {
                code: ErrorCode::NickTaken,
                ..
            } if Instant::now() < deadline => {
                // Polls a state that has no notification to wait on; bounded by `limit`.
                ::std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("{nick} still refused after {limit:?}: {other:?}"),
        }
    }
}

/// A node whose Redis is not there keeps serving its own clients, and goes on when
/// Redis appears.
pub fn serves_locally_without_redis((start, _): Runtime) {
    if !redis_server::available() {
        return;
    }
    let mut redis = RedisServer::stopped(redis_server::free_port());
    let node = start(config(), &redis.url(), "n1");
    let mut alice = TestClient::in_room(node.addr, "alice", "r");
    let mut bob = TestClient::in_room(node.addr, "bob", "r");
    alice.send(|c| c.say("r", "no redis"));
    bob.expect("alice's message", |e| {
        is_message(e, "r", "alice", "no redis")
    });
    redis.restart().expect("start redis-server");
    // The node's two connections: it is up, and resyncing.
    redis.expect_clients(2, crate::client::WAIT);
    alice.send(|c| c.say("r", "redis is here"));
    bob.expect("alice's second message", |e| {
        is_message(e, "r", "alice", "redis is here")
    });
    let carol = TestClient::connect(node.addr, "carol");
    drop(carol);
    // Each message once.
    let later = bob.sync();
    assert!(messages(&later).is_empty(), "{later:?}");
}

/// A message said on one node reaches the room's members on every node, once, in each
/// sender's order.
pub fn messages_reach_every_node_once_in_order((start, _): Runtime) {
    const EACH: usize = 100;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes: Vec<Running> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| start(config(), &redis.url(), n))
        .collect();
    let mut alice = TestClient::in_room(nodes[0].addr, "alice", "r");
    let mut bob = TestClient::in_room(nodes[1].addr, "bob", "r");
    sees_join(&mut alice, "r", "bob");
    let mut carol = TestClient::in_room(nodes[2].addr, "carol", "r");
    sees_join(&mut alice, "r", "carol");
    sees_join(&mut bob, "r", "carol");
    // dave is on alice's node but elsewhere: he hears nothing.
    let mut dave = TestClient::in_room(nodes[0].addr, "dave", "elsewhere");
    for i in 0..EACH {
        alice.queue(|c| c.say("r", &format!("a{i}")));
        bob.queue(|c| c.say("r", &format!("b{i}")));
    }
    alice.flush();
    bob.flush();
    for member in [&mut alice, &mut bob, &mut carol] {
        let mut next = [0usize; 2];
        let mut got = Vec::new();
        while next != [EACH, EACH] {
            let e = member.expect("a message", |e| matches!(e, ClientEvent::Message { .. }));
            let ClientEvent::Message { from, text, .. } = e else {
                unreachable!()
            };
            let who = match from.as_str() {
                "alice" => 0,
                "bob" => 1,
                other => panic!("a message from {other}"),
            };
            assert_eq!(
                text,
                format!("{}{}", ["a", "b"][who], next[who]),
                "{} got {from}'s messages out of order (after {got:?})",
                member.label()
            );
            next[who] += 1;
            got.push(text);
        }
    }
    // Nothing twice: a last message from carol comes right after the others.
    carol.send(|c| c.say("r", "end"));
    for member in [&mut alice, &mut bob] {
        let e = member.expect("a message", |e| matches!(e, ClientEvent::Message { .. }));
        assert!(is_message(&e, "r", "carol", "end"), "{e:?}");
    }
    let heard = dave.sync();
    assert!(messages(&heard).is_empty(), "{heard:?}");
}

/// A nickname is unique across the cluster, whatever the case, and free again on every
/// node once its owner leaves.
pub fn nick_taken_across_nodes((start, _): Runtime) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = start(config(), &redis.url(), "n1");
    let n2 = start(config(), &redis.url(), "n2");
    let mut alice = TestClient::in_room(n1.addr, "alice", "r");
    let mut bob = TestClient::in_room(n2.addr, "bob", "r");
    // (bob may see alice in the member list or join after him: either way n2 knows her.)
    sees_join(&mut alice, "r", "bob");
    let mut other = TestClient::hello(n2.addr, "ALICE");
    let error = other.expect("an error", |e| matches!(e, ClientEvent::Error { .. }));
    assert!(
        matches!(
            error,
            ClientEvent::Error {
                code: ErrorCode::NickTaken,
                ..
            }
        ),
        "{error:?}"
    );
    // A nick change to a nick held on the other node is refused too.
    bob.send(|c| c.change_nick("Alice"));
    let error = bob.expect("an error", |e| matches!(e, ClientEvent::Error { .. }));
    assert!(
        matches!(
            error,
            ClientEvent::Error {
                code: ErrorCode::NickTaken,
                ..
            }
        ),
        "{error:?}"
    );
    drop(alice);
    bob.expect("alice's departure", |e| is_left(e, "alice"));
    sign_in_when_free(n2.addr, "alice", Duration::from_secs(5));
}

/// IRC and native clients on different nodes: messages both ways, a topic, NAMES of the
/// whole cluster, a quit.
pub fn irc_and_native_across_nodes((start, _): Runtime) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = start(config(), &redis.url(), "n1");
    let n2 = start(config(), &redis.url(), "n2");
    let mut alice = TestClient::in_room(n1.addr, "alice", "r");
    let mut bob = IrcClient::connect(n2.addr, "bob");
    bob.join("r");
    sees_join(&mut alice, "r", "bob");
    bob.send("PRIVMSG #r :from irc on n2");
    alice.expect("bob's message", |e| {
        is_message(e, "r", "bob", "from irc on n2")
    });
    alice.send(|c| c.say("r", "native on n1"));
    bob.expect("alice's PRIVMSG", |m| {
        is(m, "alice", "PRIVMSG", &["#r", "native on n1"])
    });
    bob.send("TOPIC #r :set on n2");
    alice.expect(
        "bob's topic",
        |e| matches!(e, ClientEvent::Topic { room, topic, by } if room == "r" && topic == "set on n2" && by == "bob"),
    );
    // A joiner on n1 sees the topic and both members.
    let mut carol = IrcClient::connect(n1.addr, "carol");
    carol.send("JOIN #r");
    let topic = carol.expect_numeric("332");
    assert_eq!(topic.params, ["carol", "#r", "set on n2"]);
    let names = carol.expect_numeric("353");
    let mut nicks: Vec<&str> = names
        .params
        .last()
        .map(|n| {
            n.split(' ')
                .map(|n| n.trim_start_matches(['@', '+']))
                .collect()
        })
        .unwrap_or_default();
    nicks.sort_unstable();
    assert_eq!(nicks, ["alice", "bob", "carol"], "{names:?}");
    bob.send("QUIT :bye from n2");
    alice.expect("bob's quit", |e| is_left(e, "bob"));
    // Rendered as on one server (a quit's reason is prefixed, as for a native quit).
    carol.expect("bob's QUIT", |m| {
        is(m, "bob", "QUIT", &["quit: bye from n2"])
    });
}

/// Runs a node in a child process (this test binary, re-run), so that it can be killed
/// with SIGKILL.
struct ChildNode {
    child: Child,
    addr: SocketAddr,
}

impl ChildNode {
    fn start(runtime: &str, url: &str, node: &str) -> ChildNode {
        let exe = ::std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args(["--exact", "cluster::child_node", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("SWITCHBOARD_CHILD_RUNTIME", runtime)
            .env("SWITCHBOARD_CHILD_REDIS", url)
            .env("SWITCHBOARD_CHILD_NODE", node)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child node");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    // The test harness may print the test's name on the same line.
                    if let Some((_, addr)) = line.split_once("child listening on ") {
                        break addr.trim().parse().expect("child address");
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("the child node did not start");
                }
            }
        };
        drop(lines);
        ChildNode { child, addr }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side of [`killed_node_is_noticed_by_the_others`].
#[test]
#[ignore = "a child process of the cluster's kill -9 scenario, started by it"]
fn child_node() {
    let (Ok(runtime), Ok(url), Ok(node)) = (
        ::std::env::var("SWITCHBOARD_CHILD_RUNTIME"),
        ::std::env::var("SWITCHBOARD_CHILD_REDIS"),
        ::std::env::var("SWITCHBOARD_CHILD_NODE"),
    ) else {
        panic!("run by the kill -9 scenario only");
    };
    let start: StartNode = match runtime.as_str() {
        #[cfg(feature = "smol")]
        "smol" => smol,
        #[cfg(feature = "async-std")]
        "async-std" => async_std,
        #[cfg(feature = "std")]
        "std" => std,
        other => panic!("unknown runtime {other}"),
    };
    let server = start(config(), &url, &node);
    println!("child listening on {}", server.addr);
    // Runs until killed.
    loop {
        ::std::thread::park();
    }
}

/// A node killed with SIGKILL while its clients chat: the others announce its users as
/// gone and free their nicks, and keep chatting among themselves.
pub fn killed_node_is_noticed_by_the_others((start, name): Runtime) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = start(config(), &redis.url(), "n1");
    let n2 = start(config(), &redis.url(), "n2");
    let doomed = ChildNode::start(name, &redis.url(), "doomed");
    let mut alice = TestClient::in_room(n1.addr, "alice", "r");
    let mut bob = TestClient::in_room(n2.addr, "bob", "r");
    sees_join(&mut alice, "r", "bob");
    let mut carol = TestClient::in_room(doomed.addr, "carol", "r");
    sees_join(&mut alice, "r", "carol");
    sees_join(&mut bob, "r", "carol");
    for i in 0..200 {
        carol.queue(|c| c.say("r", &format!("c{i}")));
    }
    carol.flush();
    alice.expect("some of carol's messages", |e| {
        is_message(e, "r", "carol", "c10")
    });
    drop(doomed);
    alice.expect_within("carol's departure", NOTICED, |e| is_left(e, "carol"));
    bob.expect_within("carol's departure", NOTICED, |e| is_left(e, "carol"));
    // Her nick is free on the living nodes, and they still chat.
    sign_in_when_free(n1.addr, "carol", Duration::from_secs(5));
    alice.send(|c| c.say("r", "still here"));
    bob.expect("alice's message", |e| {
        is_message(e, "r", "alice", "still here")
    });
}

/// Redis killed and restarted while clients on two nodes chat: each node keeps
/// delivering locally, nothing local is lost, and the nodes chat again once it is back.
pub fn redis_restart_under_load((start, _): Runtime) {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let n1 = start(config(), &redis.url(), "n1");
    let n2 = start(config(), &redis.url(), "n2");
    let mut alice = TestClient::in_room(n1.addr, "alice", "r");
    let mut dave = TestClient::in_room(n1.addr, "dave", "r");
    let mut bob = TestClient::in_room(n2.addr, "bob", "r");
    sees_join(&mut alice, "r", "bob");
    let mut sent = 0;
    let mut say = |alice: &mut TestClient, n: usize| {
        for _ in 0..n {
            alice.queue(|c| c.say("r", &format!("m{sent}")));
            sent += 1;
        }
        alice.flush();
    };
    say(&mut alice, 100);
    redis.kill();
    say(&mut alice, 100);
    redis.restart().expect("restart redis-server");
    say(&mut alice, 100);
    // Local delivery never stopped: dave has every message, once, in order.
    let want: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let mut got = Vec::new();
    while got.len() < want.len() {
        let e = dave.expect(
            "alice's message",
            |e| matches!(e, ClientEvent::Message { from, .. } if from == "alice"),
        );
        if let ClientEvent::Message { text, .. } = e {
            got.push(text);
        }
    }
    assert_eq!(got, want);
    // Once the nodes resynced, alice's messages reach bob again.
    let deadline = Instant::now() + NOTICED;
    let mut heard = Vec::new();
    let mut k = 0;
    loop {
        let text = format!("after {k}");
        alice.send(|c| c.say("r", &text));
        let more = bob.drain_for(Duration::from_millis(200));
        let done = more.iter().any(|e| is_message(e, "r", "alice", &text));
        heard.extend(messages(&more));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "bob never heard alice again");
        k += 1;
    }
    // What bob heard of alice came in her order, each once (what was said while the nodes
    // were apart may be missing: the bus is at most once).
    let order: Vec<(u8, usize)> = heard
        .iter()
        .filter(|(from, _)| from == "alice")
        .map(|(_, text)| match text.strip_prefix("after ") {
            Some(k) => (1, k.parse().expect("a number")),
            None => (0, text[1..].parse().expect("a number")),
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "bob heard alice out of order or twice: {order:?}"
    );
}

/// Stamps out one test per cluster scenario and runtime.
macro_rules! cluster_conformance {
    ($($scenario:ident),* $(,)?) => {
        #[cfg(feature = "smol")]
        mod smol {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::smol, "smol"))
            })*
        }
        #[cfg(feature = "async-std")]
        mod async_std {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::async_std, "async-std"))
            })*
        }
        #[cfg(feature = "std")]
        mod std {
            $(#[test]
            fn $scenario() {
                super::$scenario((super::std, "std"))
            })*
        }
    };
}

cluster_conformance!(
    serves_locally_without_redis,
    messages_reach_every_node_once_in_order,
    nick_taken_across_nodes,
    irc_and_native_across_nodes,
    killed_node_is_noticed_by_the_others,
    redis_restart_under_load,
);
