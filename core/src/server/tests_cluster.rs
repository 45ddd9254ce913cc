//! Cluster tests: two or three servers joined by an in-memory bus (every publish goes to
//! every subscriber in one order, claims are answered from a map), clients on each.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::cluster::{Kind, Wire};
use super::*;
use crate::bus::{BusEvent, BusOp, ClusterOptions};
use crate::client::{Client, ClientEvent};
use crate::packet::RoomMode;

struct Node {
    server: Server,
    /// Crashed: not driven at all, its ops never run.
    crashed: bool,
    /// Cut off from the bus.
    up: bool,
    channels: BTreeSet<String>,
}

/// A client: its node, its connection there, and a native client or raw IRC output.
struct User {
    node: usize,
    id: ConnId,
    client: Option<Client>,
    irc_out: Vec<u8>,
    wire: Vec<u8>,
}

struct Net {
    nodes: Vec<Node>,
    users: Vec<User>,
    keys: BTreeMap<String, String>,
    /// Bus events waiting for their node, in bus order.
    queue: VecDeque<(usize, BusEvent)>,
    now: Instant,
    /// Every node's `Config::flush_delay`.
    flush_delay: Duration,
}

impl Net {
    fn new(n: usize) -> Net {
        // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
        Net::with_flush_delay(n, Duration::ZERO)
    }

    fn with_flush_delay(n: usize, flush_delay: Duration) -> Net {
        let now = crate::test_clock::start();
        let mut net = Net {
            nodes: Vec::new(),
            users: Vec::new(),
            keys: BTreeMap::new(),
            queue: VecDeque::new(),
            now,
            flush_delay,
        };
        for i in 0..n {
            net.add_node(i, 1);
        }
        net.pump();
        net
    }

    fn add_node(&mut self, i: usize, incarnation: u64) {
        let mut server = Server::new(Config {
            operators: vec![("root".into(), crate::sha256::hex_digest(b"hunter2"))],
            wall_clock: Some((self.now, Duration::from_secs(1_700_000_000))),
            flush_delay: self.flush_delay,
            ..Config::default()
        });
        server.enable_cluster(ClusterOptions::new(format!("n{i}"), incarnation), self.now);
        server.handle_bus(BusEvent::Up, self.now);
        let node = Node {
            server,
            crashed: false,
            up: true,
            channels: BTreeSet::new(),
        };
        if i < self.nodes.len() {
            self.nodes[i] = node;
        } else {
            self.nodes.push(node);
        }
    }

    /// Opens a native client on `node` saying hello as `nick`, without running anything.
    fn open(&mut self, node: usize, nick: &str) -> usize {
        let id = self.nodes[node].server.open(self.now);
        let mut client = Client::new(nick);
        client.set_paced(false);
        self.users.push(User {
            node,
            id,
            client: Some(client),
            irc_out: Vec::new(),
            wire: Vec::new(),
        });
        self.users.len() - 1
    }

    /// Opens a native client and expects its welcome.
    fn sign_in(&mut self, node: usize, nick: &str) -> usize {
        let u = self.open(node, nick);
        self.pump();
        let ev = self.events(u);
        assert!(
            matches!(ev.first(), Some(ClientEvent::Welcome { nick: n, .. }) if n == nick),
            "{nick}: {ev:?}"
        );
        u
    }

    /// Opens an IRC connection that registers as `nick`.
    fn irc(&mut self, node: usize, nick: &str) -> usize {
        let id = self.nodes[node].server.open(self.now);
        self.users.push(User {
            node,
            id,
            client: None,
            irc_out: Vec::new(),
            wire: format!("NICK {nick}\r\nUSER {nick} 0 * :{nick} real\r\n").into_bytes(),
        });
        self.pump();
        self.users.len() - 1
    }

    fn line(&mut self, u: usize, line: &str) {
        self.users[u].wire.extend_from_slice(line.as_bytes());
        self.users[u].wire.extend_from_slice(b"\r\n");
        self.pump();
    }

    fn irc_text(&mut self, u: usize) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.users[u].irc_out)).into_owned()
    }

    fn client(&mut self, u: usize) -> &mut Client {
        self.users[u].client.as_mut().expect("a native user")
    }

    fn events(&mut self, u: usize) -> Vec<ClientEvent> {
        let c = self.client(u);
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    /// The room messages a user received, as (from, text).
    fn messages(&mut self, u: usize) -> Vec<(String, String)> {
        self.events(u)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Message { from, text, .. } => Some((from, text)),
                _ => None,
            })
            .collect()
    }

    fn server(&mut self, node: usize) -> &mut Server {
        &mut self.nodes[node].server
    }

    /// Runs the bus, the servers and the clients until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i].crashed {
                    continue;
                }
                while let Some(op) = self.nodes[i].server.poll_bus() {
                    moved = true;
                    if self.nodes[i].up {
                        self.run(i, op);
                    }
                }
            }
            while let Some((i, event)) = self.queue.pop_front() {
                if !self.nodes[i].crashed {
                    self.nodes[i].server.handle_bus(event, self.now);
                }
                moved = true;
            }
            for u in &mut self.users {
                let node = &mut self.nodes[u.node];
                if node.crashed {
                    continue;
                }
                if let Some(bytes) = u.client.as_mut().and_then(Client::poll_transmit) {
                    u.wire.extend_from_slice(&bytes);
                }
                let n = u.wire.len().min(node.server.read_budget(u.id));
                if n > 0 {
                    node.server.handle_input(u.id, &u.wire[..n], self.now);
                    u.wire.drain(..n);
                    moved = true;
                }
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].crashed {
                    continue;
                }
                while let Some(t) = self.nodes[i].server.poll_transmit() {
                    self.nodes[i].server.handle_written(t.conn, t.data.len());
                    moved = true;
                    let Some(u) = self
                        .users
                        .iter_mut()
                        .find(|u| u.node == i && u.id == t.conn)
                    else {
                        continue;
                    };
                    match &mut u.client {
                        Some(c) => c.handle_input(&t.data, self.now).expect("a good frame"),
                        None => u.irc_out.extend_from_slice(&t.data),
                    }
                }
                while let Some(close) = self.nodes[i].server.poll_close() {
                    if close.mode == CloseMode::Now {
                        self.nodes[i].server.handle_close(close.conn, self.now);
                    }
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs one op on the bus, as Redis would.
    fn run(&mut self, i: usize, op: BusOp) {
        match op {
            BusOp::Subscribe { channel } => {
                self.nodes[i].channels.insert(channel);
            }
            BusOp::Unsubscribe { channel } => {
                self.nodes[i].channels.remove(&channel);
            }
            BusOp::Publish { channel, payload } => {
                for (j, n) in self.nodes.iter().enumerate() {
                    if n.up && !n.crashed && n.channels.contains(&channel) {
                        let (channel, payload) = (channel.clone(), payload.clone());
                        self.queue
                            .push_back((j, BusEvent::Message { channel, payload }));
                    }
                }
            }
            BusOp::Claim { id, key, owner, .. } => {
                let ok = match self.keys.get(&key) {
                    Some(o) => *o == owner,
                    None => {
                        self.keys.insert(key, owner);
                        true
                    }
                };
                self.queue.push_back((i, BusEvent::Claimed { id, ok }));
            }
            BusOp::Release { key, owner } => {
                if self.keys.get(&key) == Some(&owner) {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// Moves time on by `d`, one second at a time, running every deadline.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(500)).min(end);
            for n in &mut self.nodes {
                if !n.crashed {
                    n.server.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    fn down(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.nodes[i].channels.clear();
        self.nodes[i].server.handle_bus(BusEvent::Down, self.now);
        self.pump();
    }

    fn up(&mut self, i: usize) {
        self.nodes[i].up = true;
        self.nodes[i].server.handle_bus(BusEvent::Up, self.now);
        self.pump();
    }

    fn members(&mut self, node: usize, room: &str) -> Vec<String> {
        let mut m = self.server(node).room_members(room).unwrap_or_default();
        m.sort();
        m
    }
}

#[test]
fn room_messages_cross_nodes_once_and_in_order() {
    let mut net = Net::new(3);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    let c = net.sign_in(2, "cat");
    for u in [a, b, c] {
        net.client(u).join("lobby");
        net.pump();
    }
    for n in 0..3 {
        assert_eq!(net.members(n, "lobby"), ["ann", "bob", "cat"], "node {n}");
    }
    for u in [a, b, c] {
        net.events(u);
    }
    for i in 0..5 {
        net.client(a).say("lobby", &format!("a{i}"));
        net.client(b).say("lobby", &format!("b{i}"));
    }
    net.pump();
    for u in [a, b, c] {
        let got = net.messages(u);
        let from_a: Vec<&str> = got.iter().filter(|m| m.0 == "ann").map(|m| &*m.1).collect();
        let from_b: Vec<&str> = got.iter().filter(|m| m.0 == "bob").map(|m| &*m.1).collect();
        assert_eq!(from_a, ["a0", "a1", "a2", "a3", "a4"], "user {u}");
        assert_eq!(from_b, ["b0", "b1", "b2", "b3", "b4"], "user {u}");
        assert_eq!(got.len(), 10);
    }
}

#[test]
fn relayed_room_messages_wait_for_the_flush_window() {
    let delay = Duration::from_millis(1);
    let mut net = Net::with_flush_delay(2, delay);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    for u in [a, b] {
        net.client(u).join("lobby");
        net.pump();
    }
    net.advance(delay);
    for u in [a, b] {
        net.events(u);
    }
    let t0 = net.now;
    net.client(a).say("lobby", "one");
    net.client(a).say("lobby", "two");
    net.pump();
    // The relay reached bob's node; its copy waits for the window there.
    assert!(net.messages(b).is_empty());
    assert_eq!(net.server(1).poll_timeout(), Some(t0 + delay));
    net.advance(delay - Duration::from_nanos(1));
    assert!(net.messages(b).is_empty());
    net.advance(Duration::from_nanos(1));
    let texts: Vec<String> = net.messages(b).into_iter().map(|m| m.1).collect();
    assert_eq!(texts, ["one", "two"]);
}

#[test]
fn two_nodes_claiming_one_nick_at_once_one_wins() {
    let mut net = Net::new(2);
    let x = net.open(0, "ann");
    let y = net.open(1, "ann");
    net.pump();
    let (ex, ey) = (net.events(x), net.events(y));
    let won = |e: &[ClientEvent]| matches!(e.first(), Some(ClientEvent::Welcome { .. }));
    let lost = |e: &[ClientEvent]| {
        matches!(
            e.first(),
            Some(ClientEvent::Error {
                code: ErrorCode::NickTaken,
                ..
            })
        )
    };
    assert!(
        (won(&ex) && lost(&ey)) || (won(&ey) && lost(&ex)),
        "{ex:?} / {ey:?}"
    );
    // Both nodes agree on who holds it.
    let holder_node = if won(&ex) { 0 } else { 1 };
    assert_eq!(net.server(1 - holder_node).nick_count(), 1);
    assert!(net.server(1 - holder_node).conn_of("ann").is_some());
    assert_eq!(
        net.keys.get("sb:nick:ann").map(String::as_str),
        Some(&*format!("n{holder_node}/1"))
    );
}

#[test]
fn a_nick_held_on_another_node_is_refused_and_input_behind_a_claim_waits() {
    let mut net = Net::new(2);
    net.sign_in(0, "bob");
    let u = net.open(1, "bob");
    // Sent right behind the hello: must not run before the hello's answer.
    net.client(u).join("lobby");
    net.pump();
    let ev = net.events(u);
    assert!(
        matches!(
            ev.first(),
            Some(ClientEvent::Error {
                code: ErrorCode::NickTaken,
                ..
            })
        ),
        "{ev:?}"
    );
    assert!(
        matches!(
            ev.get(1),
            Some(ClientEvent::Error {
                code: ErrorCode::HelloRequired,
                ..
            })
        ),
        "{ev:?}"
    );
}

#[test]
fn nick_change_is_seen_everywhere_and_frees_the_old_nick() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.events(b);
    net.client(a).change_nick("anna");
    net.pump();
    assert!(net.events(b).contains(&ClientEvent::NickChanged {
        old: "ann".into(),
        new: "anna".into()
    }));
    assert_eq!(net.members(1, "lobby"), ["anna", "bob"]);
    assert!(!net.keys.contains_key("sb:nick:ann"));
    net.sign_in(1, "ann");
    let c = net.open(1, "anna");
    net.pump();
    assert!(matches!(
        net.events(c).first(),
        Some(ClientEvent::Error {
            code: ErrorCode::NickTaken,
            ..
        })
    ));
    // A change to a nick held on the other node is refused with the usual error.
    net.client(b).change_nick("anna");
    net.pump();
    assert!(net.events(b).iter().any(|e| matches!(
        e,
        ClientEvent::Error {
            code: ErrorCode::NickTaken,
            ..
        }
    )));
}

#[test]
fn room_state_is_the_same_on_every_node() {
    let mut net = Net::new(3);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    let c = net.sign_in(2, "cat");
    for u in [a, b, c] {
        net.client(u).join("lobby");
        net.pump();
    }
    net.client(a).set_topic("lobby", "hello all");
    net.client(a)
        .set_mode("lobby", RoomMode::Operator, true, "bob");
    net.client(c).away("lunch");
    net.pump();
    net.client(a).kick("lobby", "cat", "bye");
    net.client(b).leave("lobby", "later");
    net.pump();
    for n in 0..3 {
        assert_eq!(
            net.server(n).room_topic("lobby"),
            Some("hello all"),
            "node {n}"
        );
        assert_eq!(net.members(n, "lobby"), ["ann"], "node {n}");
    }
    let ev = net.events(c);
    assert!(ev.iter().any(|e| matches!(e, ClientEvent::Topic { topic, by, .. } if topic == "hello all" && by == "ann")), "{ev:?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, ClientEvent::ModeChanged { .. })),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(
            |e| matches!(e, ClientEvent::Kicked { nick, by, .. } if nick == "cat" && by == "ann")
        ),
        "{ev:?}"
    );
    // bob, op on every node, keeps it on rejoin only if he creates the room: check ops
    // replicated before he left through an IRC view on node 2.
    let i = net.irc(2, "ivy");
    net.line(i, "JOIN #lobby");
    net.line(i, "WHOIS cat");
    let text = net.irc_text(i);
    assert!(
        text.contains("353 ivy = #lobby :@ann ivy") || text.contains("353 ivy = #lobby :ivy @ann"),
        "{text}"
    );
    assert!(text.contains("301 ivy cat :lunch"), "{text}");
}

#[test]
fn operators_and_away_replicate_and_remote_users_show_in_irc_who_and_list() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    net.client(a).join("lobby");
    net.pump();
    let i = net.irc(1, "ivy");
    net.line(i, "JOIN #lobby");
    net.line(i, "WHO #lobby");
    net.line(i, "LIST");
    let text = net.irc_text(i);
    assert!(text.contains("353 ivy = #lobby :@ann ivy"), "{text}");
    assert!(text.contains(" ann "), "{text}");
    assert!(text.contains("322 ivy #lobby 2"), "{text}");
    net.client(a)
        .set_mode("lobby", RoomMode::Operator, true, "ivy");
    net.pump();
    let text = net.irc_text(i);
    assert!(text.contains("MODE #lobby +o ivy"), "{text}");
    net.line(i, "AWAY :gone");
    net.client(a).list_members("lobby");
    net.pump();
    let ev = net.events(a);
    let members = ev.iter().rev().find_map(|e| match e {
        ClientEvent::Members { members, .. } => Some(members.clone()),
        _ => None,
    });
    let ivy = members
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.nick == "ivy");
    let flags = ivy.map(|m| m.flags).unwrap_or(0);
    assert_eq!(flags, Member::OPERATOR | Member::AWAY);
}

#[test]
fn a_dead_node_is_noticed_its_users_go_and_its_nicks_are_freed() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.events(a);
    net.nodes[1].crashed = true;
    net.advance(Duration::from_secs(2));
    assert_eq!(net.members(0, "lobby"), ["ann", "bob"], "not yet");
    net.advance(Duration::from_secs(3));
    assert_eq!(net.members(0, "lobby"), ["ann"]);
    assert!(net
        .events(a)
        .iter()
        .any(|e| matches!(e, ClientEvent::Left { nick, .. } if nick == "bob")));
    assert!(!net.keys.contains_key("sb:nick:bob"), "{:?}", net.keys);
    net.sign_in(0, "bob");
    assert_eq!(net.server(0).cluster_peers(), Vec::<String>::new());
}

#[test]
fn a_restarted_node_rejoins_cleanly() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.client(a).set_topic("lobby", "t1");
    net.pump();
    net.events(a);
    // Killed and started again at once, before anyone noticed the silence.
    net.add_node(1, 2);
    net.users.retain(|u| u.node != 1);
    net.pump();
    assert_eq!(net.members(0, "lobby"), ["ann"]);
    assert!(net
        .events(a)
        .iter()
        .any(|e| matches!(e, ClientEvent::Left { nick, .. } if nick == "bob")));
    let b2 = net.sign_in(1, "bob");
    net.client(b2).join("lobby");
    net.pump();
    assert_eq!(net.members(0, "lobby"), ["ann", "bob"]);
    assert_eq!(net.members(1, "lobby"), ["ann", "bob"]);
    assert_eq!(net.server(1).room_topic("lobby"), Some("t1"));
    net.advance(Duration::from_secs(5));
    assert_eq!(net.server(0).cluster_peers(), ["n1"]);
}

#[test]
fn redis_down_keeps_local_service_and_up_resyncs() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.down(1);
    // Node 1 goes on serving its own clients.
    let c = net.sign_in(1, "cat");
    net.client(c).join("lobby");
    net.pump();
    net.client(b).join("side");
    net.client(b).say("lobby", "still here");
    net.pump();
    let ev = net.events(c);
    assert!(
        ev.iter()
            .any(|e| matches!(e, ClientEvent::Message { text, .. } if text == "still here")),
        "{ev:?}"
    );
    net.client(a).set_topic("lobby", "while apart");
    net.advance(Duration::from_secs(4));
    assert_eq!(
        net.members(0, "lobby"),
        ["ann"],
        "node 1 dropped after silence"
    );
    net.up(1);
    assert_eq!(net.members(0, "lobby"), ["ann", "bob", "cat"]);
    assert_eq!(net.members(0, "side"), ["bob"]);
    assert_eq!(net.members(1, "lobby"), ["ann", "bob", "cat"]);
    let topic = net.server(0).room_topic("lobby").map(str::to_owned);
    assert_eq!(topic.as_deref(), Some("while apart"));
    assert_eq!(net.server(1).room_topic("lobby").map(str::to_owned), topic);
    assert!(net.keys.contains_key("sb:nick:cat"));
    net.client(a).say("lobby", "welcome back");
    net.pump();
    assert!(net
        .messages(c)
        .contains(&("ann".into(), "welcome back".into())));
}

#[test]
fn a_topic_set_while_cut_off_by_a_member_gone_since_reaches_every_node() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.client(a).set_topic("lobby", "before");
    net.pump();
    net.down(1);
    net.client(b).set_topic("lobby", "while cut off");
    net.client(b).leave("lobby", "bye");
    net.pump();
    net.up(1);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.members(0, "lobby"), ["ann"]);
    assert_eq!(net.members(1, "lobby"), ["ann"]);
    for n in 0..2 {
        assert_eq!(
            net.server(n).room_topic("lobby"),
            Some("while cut off"),
            "node {n}"
        );
    }
}

#[test]
fn ban_lists_set_while_cut_off_reach_the_others_in_the_snapshot() {
    let mut net = Net::new(2);
    let b = net.sign_in(1, "bob");
    net.client(b).join("lobby");
    net.pump();
    let a = net.sign_in(0, "ann");
    net.client(a).join("lobby");
    net.pump();
    net.down(1);
    net.client(b)
        .set_rule("lobby", crate::packet::RoomRule::Ban, true, "*!*@evil");
    net.client(b).set_rule(
        "lobby",
        crate::packet::RoomRule::BanExempt,
        true,
        "*!*@good",
    );
    net.client(b).set_rule(
        "lobby",
        crate::packet::RoomRule::InviteExempt,
        true,
        "*!*@vip",
    );
    net.pump();
    net.up(1);
    net.advance(Duration::from_secs(2));
    let r = net
        .server(0)
        .registry
        .room("lobby")
        .map(|r| (r.bans.clone(), r.exempts.clone(), r.invexes.clone()));
    assert_eq!(
        r,
        Some((
            vec!["*!*@evil".to_owned()],
            vec!["*!*@good".to_owned()],
            vec!["*!*@vip".to_owned()]
        ))
    );
}

#[test]
fn a_topic_missed_by_a_room_made_again_converges_on_the_highest_version() {
    // Node 1 is cut off while its only member leaves: its room dies there and is made
    // again by a joiner, while node 0's room (with a topic node 1 never saw) lives on.
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.down(1);
    net.client(a).set_topic("lobby", "node 0 only");
    net.advance(Duration::from_secs(4));
    net.client(b).leave("lobby", "bye");
    net.client(b).join("lobby");
    net.pump();
    net.up(1);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.members(0, "lobby"), ["ann", "bob"]);
    assert_eq!(net.members(1, "lobby"), ["ann", "bob"]);
    for n in 0..2 {
        assert_eq!(
            net.server(n).room_topic("lobby"),
            Some("node 0 only"),
            "node {n}"
        );
    }
}

#[test]
fn a_nick_taken_elsewhere_while_apart_closes_the_later_claimer() {
    let mut net = Net::new(2);
    net.down(1);
    let x = net.sign_in(1, "zed");
    net.advance(Duration::from_secs(4));
    net.sign_in(0, "zed");
    net.up(1);
    let ev = net.events(x);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            ClientEvent::Bye {
                code: ErrorCode::NickTaken,
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(net.server(1).conn_of("zed").map(|_| ()), Some(()));
}

#[test]
fn a_whisper_reaches_a_user_on_another_node() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).whisper("bob", "psst");
    net.pump();
    assert!(net.events(b).contains(&ClientEvent::Direct {
        from: "ann".into(),
        to: "bob".into(),
        text: "psst".into()
    }));
}

#[test]
fn remote_messages_carry_time_and_msgid_tags_like_local_ones() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    net.client(a).join("lobby");
    net.pump();
    let i = net.irc(1, "ivy");
    net.line(i, "CAP REQ :server-time message-tags");
    net.line(i, "JOIN #lobby");
    let _ = net.irc_text(i);
    net.client(a).say("lobby", "hello");
    net.client(a).whisper("ivy", "psst");
    net.pump();
    let text = net.irc_text(i);
    let room = text.lines().find(|l| l.contains("PRIVMSG #lobby :hello"));
    let direct = text.lines().find(|l| l.contains("PRIVMSG ivy :psst"));
    for line in [room, direct] {
        let line = line.unwrap_or_else(|| panic!("missing line in {text}"));
        assert!(
            line.starts_with("@") && line.contains("time=2023-"),
            "{line}"
        );
        assert!(line.contains("msgid="), "{line}");
    }
    assert!(room.is_some_and(|l| l.contains("msgid=lobby~")), "{text}");
}

#[test]
fn a_long_irc_message_reads_the_same_on_every_node() {
    // An IRC line as long as allowed grows past 512 bytes once a source is put in front:
    // it is cut to one line, on the sender's node and on the others alike (one fan-out
    // builder for local and remote messages; the bus carries where the text came from).
    let mut net = Net::new(2);
    let here = net.irc(1, "ivy");
    let sender = net.irc(1, "sam");
    let there = net.irc(0, "joe");
    for u in [here, sender, there] {
        net.line(u, "JOIN #lobby");
    }
    let long = "x".repeat(510 - "PRIVMSG #lobby :".len());
    net.line(sender, &format!("PRIVMSG #lobby :{long}"));
    let seen: Vec<Vec<String>> = [here, there]
        .map(|u| {
            let text = net.irc_text(u);
            let lines = text.lines().filter(|l| l.contains("PRIVMSG #lobby"));
            lines.map(str::to_owned).collect()
        })
        .into();
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert!(seen[0][0].len() <= 510, "{}", seen[0][0].len());
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn an_operator_kills_a_user_of_another_node() {
    let mut net = Net::new(2);
    let op = net.irc(0, "root");
    let b = net.sign_in(1, "bob");
    net.pump();
    net.line(op, "KILL bob :not here\r\n");
    net.pump();
    assert!(
        net.server(1).registry.find_nick("bob").is_some(),
        "a KILL from a non-operator must do nothing"
    );
    let _ = net.irc_text(op);
    net.line(op, "OPER root hunter2\r\nKILL bob :spam\r\n");
    net.pump();
    for node in 0..2 {
        assert!(
            net.server(node).registry.find_nick("bob").is_none(),
            "node {node} still has bob"
        );
    }
    assert!(
        net.events(b).iter().any(|e| matches!(
            e,
            ClientEvent::Bye { reason, .. } if reason.contains("Killed (root (spam))")
        )),
        "bob was not told why"
    );
}

#[test]
fn bad_payloads_are_counted_never_fatal() {
    let mut net = Net::new(1);
    let good = Wire {
        node: "n9".into(),
        incarnation: 1,
        seq: 1,
        kind: Kind::Say {
            user: 1,
            room: "x".into(),
            text: "hi".into(),
            notice: false,
            from_irc: false,
        },
    }
    .encode();
    let mut crlf = good.to_vec();
    let at = crlf.len() - 2;
    crlf[at] = b'\n';
    let mut version = good.to_vec();
    version[0] = 9;
    for bad in [
        &b""[..],
        &b"\x01"[..],
        &good[..good.len() - 1],
        &crlf,
        &version,
        &[&good[..], b"x"].concat(),
    ] {
        let msg = BusEvent::Message {
            channel: "sb:events".into(),
            payload: Bytes::copy_from_slice(bad),
        };
        let now = net.now;
        net.server(0).handle_bus(msg, now);
    }
    assert_eq!(
        net.server(0).cluster_stats().map(|s| s.bad_payloads),
        Some(6)
    );
}

#[test]
fn every_kind_survives_the_wire() {
    let s = |x: &str| x.to_owned();
    let kinds = vec![
        Kind::Heartbeat,
        Kind::User {
            user: 7,
            nick: s("a"),
            name: s("~a"),
            real: s("A b"),
            away: s(""),
        },
        Kind::Nick {
            user: 7,
            nick: s("b"),
        },
        Kind::Quit {
            user: 7,
            reason: s("r"),
        },
        Kind::Join {
            user: 7,
            room: s("Lobby"),
            flags: 3,
            stamp: 40,
            stamp_node: s("n2"),
        },
        Kind::Part {
            user: 7,
            room: s("x"),
            reason: s(""),
        },
        Kind::Say {
            user: 7,
            room: s("x"),
            text: s("héllo"),
            notice: true,
            from_irc: true,
        },
        Kind::Topic {
            user: 7,
            room: s("x"),
            topic: s("t"),
            stamp: 41,
        },
        Kind::Kick {
            user: 7,
            room: s("x"),
            nick: s("b"),
            reason: s("r"),
        },
        Kind::Mode {
            user: 7,
            room: s("x"),
            letter: b'o',
            on: true,
            nick: s("b"),
        },
        Kind::Rule {
            user: 7,
            room: s("x"),
            letter: b'k',
            on: false,
            arg: s(""),
        },
        Kind::Away {
            user: 7,
            message: s("m"),
        },
        Kind::Whisper {
            user: 7,
            to: s("b"),
            text: s("t"),
            notice: false,
            from_irc: true,
        },
        Kind::Reset { want: true },
        Kind::Kill {
            user: 7,
            nick: s("b"),
            why: s("Killed (r (x))"),
        },
        Kind::Synced,
        Kind::Dead {
            node: s("n2"),
            incarnation: 9,
        },
        Kind::Room {
            room: s("x"),
            topic: s("t"),
            by: s("a"),
            stamp: 42,
            stamp_node: s("n3"),
            flags: 5,
            key: s("k"),
            limit: 10,
        },
    ];
    for kind in kinds {
        let wire = Wire {
            node: s("n1"),
            incarnation: u64::MAX,
            seq: 3,
            kind,
        };
        assert_eq!(Wire::decode(&wire.encode()), Ok(wire));
    }
}

#[test]
fn duplicated_events_are_dropped() {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    net.client(a).join("lobby");
    net.client(b).join("lobby");
    net.pump();
    net.events(b);
    net.client(a).say("lobby", "once");
    // Run node 0's ops by hand, delivering its publish twice to node 1.
    net.pump_clients_only();
    let mut ops = Vec::new();
    while let Some(op) = net.server(0).poll_bus() {
        ops.push(op);
    }
    for op in ops {
        if let BusOp::Publish { channel, payload } = op {
            for _ in 0..2 {
                let ev = BusEvent::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                let now = net.now;
                net.server(1).handle_bus(ev, now);
            }
        }
    }
    net.pump();
    assert_eq!(net.messages(b), [("ann".to_owned(), "once".to_owned())]);
    assert_eq!(net.server(1).cluster_stats().map(|s| s.duplicates), Some(1));
}

impl Net {
    /// Moves client bytes into their servers without running the bus.
    fn pump_clients_only(&mut self) {
        for u in &mut self.users {
            let node = &mut self.nodes[u.node];
            if let Some(bytes) = u.client.as_mut().and_then(Client::poll_transmit) {
                u.wire.extend_from_slice(&bytes);
            }
            let n = u.wire.len().min(node.server.read_budget(u.id));
            if n > 0 {
                node.server.handle_input(u.id, &u.wire[..n], self.now);
                u.wire.drain(..n);
            }
        }
    }
}

#[test]
fn input_behind_a_parked_claim_sets_no_busy_timer() {
    // Found by hand: irssi-like NICK, USER and QUIT in one write to a cluster node made
    // the timer due at once while the claim was out, and the smol node spun until the
    // hello deadline, serving no one.
    let mut net = Net::new(1);
    let now = net.now;
    let server = net.server(0);
    let id = server.open(now);
    server.handle_input(id, b"NICK pin\r\nUSER pin 0 * :p\r\nQUIT\r\n", now);
    assert!(
        server.cluster_parked(id),
        "the registration waits for its claim"
    );
    let due = server.poll_timeout();
    assert!(due.is_some_and(|t| t > now), "timer due at once: {due:?}");
}

/// Two nodes, ann on node 0 and bob on node 1, both in `lobby`: (net, ann, bob, bob's
/// stand-in on node 0, a member of the room there with no socket).
fn ann_and_bobs_stand_in() -> (Net, usize, usize, ConnId) {
    let mut net = Net::new(2);
    let a = net.sign_in(0, "ann");
    let b = net.sign_in(1, "bob");
    for u in [a, b] {
        net.client(u).join("lobby");
        net.pump();
    }
    let ghost = net
        .server(0)
        .conn_of("bob")
        .expect("bob is known on node 0");
    (net, a, b, ghost)
}

#[test]
fn nothing_is_queued_on_a_remote_users_connection() {
    let (mut net, a, b, ghost) = ann_and_bobs_stand_in();
    net.events(b);
    assert_ne!(ghost, net.users[a].id);
    // It is no connection of node 0's.
    assert_eq!(net.server(0).connection_count(), 1);
    net.client(a).say("lobby", "hi");
    let bytes = net.client(a).poll_transmit().expect("a request");
    let (ann, now) = (net.users[a].id, net.now);
    net.server(0).handle_input(ann, &bytes, now);
    // ann's node relays it on the bus; nothing is queued for the stand-in.
    assert_eq!(net.server(0).outbound_bytes(ghost), 0);
    let to: Vec<ConnId> = std::iter::from_fn(|| net.server(0).poll_transmit())
        .map(|t| t.conn)
        .collect();
    assert_eq!(to, [ann]);
    net.pump();
    assert_eq!(net.messages(b), [("ann".to_owned(), "hi".to_owned())]);
}

#[test]
fn a_shutdown_closes_local_connections_only() {
    let (mut net, a, _, ghost) = ann_and_bobs_stand_in();
    let (ann, now) = (net.users[a].id, net.now);
    net.server(0).shutdown(now);
    // bob's stand-in has no socket on node 0: bob's own node closes bob.
    let closes: Vec<ConnId> = std::iter::from_fn(|| net.server(0).poll_close())
        .map(|c| c.conn)
        .collect();
    assert_eq!(closes, [ann]);
    assert_ne!(ghost, ann);
}
