//! Scenarios that mix native and IRC clients in the same rooms, over real sockets.

use switchboard::core::line::Message;
use switchboard::core::{ClientEvent, Config, ErrorCode, RoomMode};

use crate::client::{TestClient, WAIT};
use crate::irc_client::{is, source_nick, IrcClient};
use crate::runtimes::Start;

/// The tests' limits: flood control off, a short close linger, a server name to check.
fn config() -> Config {
    let mut c = Config::default();
    c.msg_rate = 0;
    c.close_linger = std::time::Duration::from_secs(1);
    c.server_name = "irc.test".into();
    c
}

fn is_message(e: &ClientEvent, room: &str, from: &str, text: &str) -> bool {
    matches!(e, ClientEvent::Message { room: r, from: f, text: t, .. }
        if r == room && f == from && t == text)
}

fn is_joined(e: &ClientEvent, room: &str, nick: &str) -> bool {
    matches!(e, ClientEvent::Joined { room: r, nick: n } if r == room && n == nick)
}

fn is_left(e: &ClientEvent, nick: &str, reason: &str) -> bool {
    matches!(e, ClientEvent::Left { nick: n, reason: r, .. } if n == nick && r == reason)
}

fn is_error(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Error { .. })
}

fn error_code(e: &ClientEvent) -> Option<ErrorCode> {
    match e {
        ClientEvent::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Nothing in `seen` is a relayed chat line (what an IRC client must not get back).
fn assert_no_chat(label: &str, seen: &[Message]) {
    let chat: Vec<_> = seen
        .iter()
        .filter(|m| matches!(m.command.as_str(), "PRIVMSG" | "NOTICE"))
        .collect();
    assert!(chat.is_empty(), "{label} got {chat:?}");
}

pub fn irc_join_and_part_seen_by_native(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.send("JOIN #r");
    let join = bob.expect("own JOIN", |m| m.command == "JOIN");
    assert_eq!(join.source.as_deref(), Some("bob!~bob@irc.test"));
    assert_eq!(join.params, ["#r"]);
    // The channel's members, operators marked, the room's creator first.
    let names = bob.expect_numeric("353");
    assert_eq!(names.params, ["bob", "=", "#r", "@alice bob"]);
    bob.expect_numeric("366");
    alice.expect("bob's join", |e| is_joined(e, "r", "bob"));
    let members = &alice.client().room("r").expect("alice in r").members;
    assert_eq!(members, &["alice", "bob"]);
    // A native join, seen on IRC with the native source.
    let mut carol = TestClient::in_room(server.addr, "carol", "r");
    let join = bob.expect("carol's JOIN", |m| is(m, "carol", "JOIN", &["#r"]));
    assert_eq!(join.source.as_deref(), Some("carol!~carol@irc.test"));
    bob.send("PART #r :see you");
    bob.expect("own PART", |m| is(m, "bob", "PART", &["#r", "see you"]));
    alice.expect("bob's leave", |e| is_left(e, "bob", "see you"));
    carol.expect("bob's leave", |e| is_left(e, "bob", "see you"));
    assert_eq!(
        alice.client().room("r").expect("alice in r").members,
        ["alice", "carol"]
    );
    // A native leave and a native quit, seen on IRC.
    bob.join("r");
    carol.send(|c| c.leave("r", "later"));
    bob.expect("carol's PART", |m| is(m, "carol", "PART", &["#r", "later"]));
    alice.send(|c| c.quit("done"));
    bob.expect("alice's QUIT", |m| is(m, "alice", "QUIT", &["quit: done"]));
    // An IRC quit, seen by a native client.
    carol.join("r");
    bob.send("QUIT :off now");
    bob.expect("the closing ERROR", |m| m.command == "ERROR");
    bob.expect_closed(WAIT);
    carol.expect("bob's quit", |e| is_left(e, "bob", "quit: off now"));
}

pub fn irc_messages_both_ways(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    let mut carol = IrcClient::connect(server.addr, "carol");
    carol.join("r");
    alice.send(|c| c.say("r", "hello, irc"));
    alice.expect("own message", |e| is_message(e, "r", "alice", "hello, irc"));
    for irc in [&mut bob, &mut carol] {
        let m = irc.expect("alice's PRIVMSG", |m| m.command == "PRIVMSG");
        assert_eq!(m.source.as_deref(), Some("alice!~alice@irc.test"));
        assert_eq!(m.params, ["#r", "hello, irc"]);
    }
    bob.send("PRIVMSG #r :hello, native");
    alice.expect("bob's message", |e| {
        is_message(e, "r", "bob", "hello, native")
    });
    carol.expect("bob's PRIVMSG", |m| {
        is(m, "bob", "PRIVMSG", &["#r", "hello, native"])
    });
    // IRC senders get no echo of their own.
    assert_no_chat("bob", &bob.sync());
    // A native message too long for one IRC line arrives in pieces that add up to it.
    let long: String = (0..1500)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    alice.send(|c| c.say("r", &long));
    let mut got = String::new();
    while got.len() < long.len() {
        let m = bob.expect("a piece of the long message", |m| m.command == "PRIVMSG");
        assert_eq!(m.params[0], "#r");
        got += &m.params[1];
    }
    assert_eq!(got, long);
    // A NOTICE to the channel reaches native members as a message.
    carol.send("NOTICE #r :a notice");
    alice.expect("carol's notice", |e| {
        is_message(e, "r", "carol", "a notice")
    });
    bob.expect("carol's NOTICE", |m| {
        is(m, "carol", "NOTICE", &["#r", "a notice"])
    });
}

pub fn nick_collisions_across_protocols(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    // IRC cannot take a native nick, in any case.
    let mut irc = IrcClient::raw(server.addr, "irc");
    irc.send("NICK alice");
    let taken = irc.expect_numeric("433");
    assert_eq!(taken.params[..2], ["*", "alice"]);
    irc.send("NICK ALICE");
    irc.expect_numeric("433");
    irc.send("NICK bob");
    irc.send("USER bob 0 * :Bob");
    irc.expect_numeric("001");
    irc.join("r");
    alice.expect("bob's join", |e| is_joined(e, "r", "bob"));
    // Native cannot take an IRC nick.
    let mut other = TestClient::hello(server.addr, "BOB");
    let error = other.expect("an error", is_error);
    assert_eq!(error_code(&error), Some(ErrorCode::NickTaken), "{error:?}");
    // A nick change on IRC is seen natively, and frees the old nick.
    irc.send("NICK alice");
    irc.expect_numeric("433");
    irc.send("NICK carol");
    irc.expect("own NICK", |m| is(m, "bob", "NICK", &["carol"]));
    alice.expect(
        "bob's nick change",
        |e| matches!(e, ClientEvent::NickChanged { old, new } if old == "bob" && new == "carol"),
    );
    other.send(|c| c.hello("bob"));
    other.expect(
        "welcome as bob",
        |e| matches!(e, ClientEvent::Welcome { nick, .. } if nick == "bob"),
    );
    // A native nick change is seen on IRC, and the new nick is refused there.
    alice.send(|c| c.change_nick("dave"));
    irc.expect("alice's NICK", |m| is(m, "alice", "NICK", &["dave"]));
    irc.send("NICK Dave");
    irc.expect_numeric("433");
    let mut late = IrcClient::raw(server.addr, "late");
    late.send("NICK alice");
    late.send("USER alice 0 * :Alice again");
    late.expect_numeric("001");
}

pub fn topic_across_protocols(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    bob.send("TOPIC #r");
    bob.expect("no topic yet", |m| m.command == "331");
    bob.send("TOPIC #r :set on irc");
    bob.expect("own TOPIC", |m| {
        is(m, "bob", "TOPIC", &["#r", "set on irc"])
    });
    alice.expect(
        "bob's topic",
        |e| matches!(e, ClientEvent::Topic { room, topic, by } if room == "r" && topic == "set on irc" && by == "bob"),
    );
    alice.send(|c| c.set_topic("r", "set natively"));
    bob.expect("alice's TOPIC", |m| {
        is(m, "alice", "TOPIC", &["#r", "set natively"])
    });
    bob.send("TOPIC #r");
    let topic = bob.expect_numeric("332");
    assert_eq!(topic.params, ["bob", "#r", "set natively"]);
    // Joining shows the topic.
    let mut carol = IrcClient::connect(server.addr, "carol");
    carol.send("JOIN #r");
    let topic = carol.expect_numeric("332");
    assert_eq!(topic.params, ["carol", "#r", "set natively"]);
    // Locked by the native operator: IRC members may no longer set it.
    alice.send(|c| c.set_mode("r", RoomMode::TopicLock, true, ""));
    bob.expect("the lock", |m| is(m, "alice", "MODE", &["#r", "+t"]));
    bob.send("TOPIC #r :not allowed");
    let refused = bob.expect_numeric("482");
    assert_eq!(refused.params[1], "#r");
    assert_eq!(
        server_topic(&mut alice),
        "set natively",
        "a refused topic changed it"
    );
}

/// The topic of room `r` as a native member sees it, after everything queued before.
fn server_topic(c: &mut TestClient) -> String {
    c.sync();
    c.client().room("r").expect("in r").topic.clone()
}

pub fn kick_across_protocols(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    // Not an operator: refused.
    bob.send("KICK #r alice :no");
    bob.expect_numeric("482");
    // A native operator kicks an IRC member.
    alice.send(|c| c.kick("r", "bob", "out you go"));
    bob.expect("the KICK", |m| {
        is(m, "alice", "KICK", &["#r", "bob", "out you go"])
    });
    alice.expect(
        "the kick",
        |e| matches!(e, ClientEvent::Kicked { room, nick, by, reason } if room == "r" && nick == "bob" && by == "alice" && reason == "out you go"),
    );
    assert_eq!(alice.client().room("r").expect("in r").members, ["alice"]);
    bob.send("PRIVMSG #r :still here?");
    bob.expect_numeric("404");
    // An IRC operator kicks a native member.
    bob.join("irc");
    let mut carol = TestClient::in_room(server.addr, "carol", "irc");
    bob.expect("carol's JOIN", |m| is(m, "carol", "JOIN", &["#irc"]));
    bob.send("KICK #irc carol :bye carol");
    carol.expect(
        "the kick",
        |e| matches!(e, ClientEvent::Kicked { room, nick, by, reason } if room == "irc" && nick == "carol" && by == "bob" && reason == "bye carol"),
    );
    bob.expect("own KICK", |m| {
        is(m, "bob", "KICK", &["#irc", "carol", "bye carol"])
    });
    assert!(carol.client().room("irc").is_none());
    bob.send("KICK #irc carol");
    bob.expect_numeric("441");
}

pub fn away_across_protocols(start: Start) {
    let server = start(config());
    let mut alice = TestClient::connect(server.addr, "alice");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.send("AWAY :at lunch");
    bob.expect_numeric("306");
    // A native whisper to someone away on IRC is answered with the away message.
    alice.send(|c| c.whisper("bob", "you there?"));
    alice.expect(
        "the echo",
        |e| matches!(e, ClientEvent::Direct { to, .. } if to == "bob"),
    );
    alice.expect(
        "bob's away message",
        |e| matches!(e, ClientEvent::Away { nick, message } if nick == "bob" && message == "at lunch"),
    );
    bob.expect("the whisper", |m| {
        is(m, "alice", "PRIVMSG", &["bob", "you there?"])
    });
    alice.send(|c| c.whois("bob"));
    let whois = alice.expect("whois", |e| matches!(e, ClientEvent::Whois { .. }));
    assert!(
        matches!(&whois, ClientEvent::Whois { nick, away, .. } if nick == "bob" && away == "at lunch"),
        "{whois:?}"
    );
    // Back: no more away message.
    bob.send("AWAY");
    bob.expect_numeric("305");
    alice.send(|c| c.whisper("bob", "now?"));
    let seen = {
        alice.expect(
            "the echo",
            |e| matches!(e, ClientEvent::Direct { text, .. } if text == "now?"),
        );
        alice.sync()
    };
    assert!(
        !seen.iter().any(|e| matches!(e, ClientEvent::Away { .. })),
        "bob is back, yet {seen:?}"
    );
    // A native client away, seen from IRC.
    alice.send(|c| c.away("in a meeting"));
    alice.expect("own away", |e| matches!(e, ClientEvent::Away { .. }));
    bob.send("PRIVMSG alice :ping?");
    let away = bob.expect_numeric("301");
    assert_eq!(away.params, ["bob", "alice", "in a meeting"]);
    bob.send("WHOIS alice");
    let away = bob.expect_numeric("301");
    assert_eq!(away.params, ["bob", "alice", "in a meeting"]);
    bob.expect_numeric("318");
}

pub fn direct_messages_across_protocols(start: Start) {
    let server = start(config());
    let mut alice = TestClient::connect(server.addr, "alice");
    let mut bob = IrcClient::connect(server.addr, "bob");
    let mut carol = IrcClient::connect(server.addr, "carol");
    alice.send(|c| c.whisper("BOB", "psst"));
    let m = bob.expect("the whisper", |m| m.command == "PRIVMSG");
    assert_eq!(m.source.as_deref(), Some("alice!~alice@irc.test"));
    assert_eq!(m.params, ["bob", "psst"]);
    bob.send("PRIVMSG Alice :psst yourself");
    alice.expect(
        "bob's message",
        |e| matches!(e, ClientEvent::Direct { from, to, text } if from == "bob" && to == "alice" && text == "psst yourself"),
    );
    assert_no_chat("bob", &bob.sync());
    bob.send("PRIVMSG carol,alice :to you both");
    carol.expect("bob's message", |m| {
        is(m, "bob", "PRIVMSG", &["carol", "to you both"])
    });
    alice.expect(
        "bob's message",
        |e| matches!(e, ClientEvent::Direct { from, text, .. } if from == "bob" && text == "to you both"),
    );
    bob.send("PRIVMSG nobody :hello?");
    let missing = bob.expect_numeric("401");
    assert_eq!(missing.params[1], "nobody");
    // Nothing reached anyone else.
    assert_no_chat("carol", &carol.sync());
    let seen = alice.sync();
    assert!(
        !seen.iter().any(|e| matches!(e, ClientEvent::Direct { .. })),
        "{seen:?}"
    );
}

pub fn irc_drop_without_quit(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    let mut carol = IrcClient::connect(server.addr, "carol");
    carol.join("r");
    alice.expect("carol's join", |e| is_joined(e, "r", "carol"));
    drop(bob);
    alice.expect("bob's departure", |e| is_left(e, "bob", "connection lost"));
    carol.expect("bob's QUIT", |m| is(m, "bob", "QUIT", &["connection lost"]));
    server.expect_connections(2, WAIT);
    assert_eq!(
        alice.client().room("r").expect("in r").members,
        ["alice", "carol"]
    );
    // The nick is free again, for either protocol.
    let mut again = IrcClient::connect(server.addr, "bob");
    again.send("QUIT");
    again.expect_closed(WAIT);
    TestClient::connect(server.addr, "bob");
}

pub fn irc_overlong_line(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    // 600 bytes, in two writes: refused with 417, up to its end.
    let mut long = b"PRIVMSG #r :".to_vec();
    long.resize(600, b'x');
    bob.write_raw(&long[..300]);
    bob.write_raw(&long[300..]);
    bob.write_raw(b"\r\n");
    let too_long = bob.expect_numeric("417");
    assert_eq!(too_long.params[0], "bob");
    // The longest line allowed (510 bytes and CR LF) still goes through, and so does a
    // short one after it.
    let mut max = b"PRIVMSG #r :".to_vec();
    max.resize(510, b'y');
    max.extend_from_slice(b"\r\n");
    bob.write_raw(&max);
    bob.send("PRIVMSG #r :after");
    let first = alice.expect("a message", |e| matches!(e, ClientEvent::Message { .. }));
    assert!(
        matches!(&first, ClientEvent::Message { from, text, .. } if from == "bob" && text.len() == 498 && text.bytes().all(|b| b == b'y')),
        "{first:?}"
    );
    alice.expect("bob's later message", |e| {
        is_message(e, "r", "bob", "after")
    });
    assert_no_chat("bob", &bob.sync());
}

pub fn irc_invalid_utf8(start: Start) {
    let server = start(config());
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.addr, "bob");
    bob.join("r");
    let mut carol = IrcClient::connect(server.addr, "carol");
    carol.join("r");
    // Message text must be UTF-8 as sent (UTF8ONLY): it is refused and reaches no one.
    bob.write_raw(b"PRIVMSG #r :caf\xe9\r\n");
    bob.expect("FAIL INVALID_UTF8", |m| {
        m.command == "FAIL" && m.params.get(1).map(String::as_str) == Some("INVALID_UTF8")
    });
    // Elsewhere, Latin-1 é, a lone continuation byte and a truncated 3-byte sequence are
    // each replaced.
    bob.write_raw(b"TOPIC #r :caf\xe9 \x80 \xe2\x82!\r\n");
    let want = "caf\u{fffd} \u{fffd} \u{fffd}!";
    alice.expect(
        "the repaired topic",
        |e| matches!(e, ClientEvent::Topic { room, topic, .. } if room == "r" && topic == want),
    );
    // IRC peers get it repaired too (the test client fails on invalid UTF-8).
    carol.expect("the repaired TOPIC", |m| {
        is(m, "bob", "TOPIC", &["#r", want])
    });
    // The connection goes on.
    bob.send("PRIVMSG #r :plain");
    alice.expect("bob's next message", |e| is_message(e, "r", "bob", "plain"));
}

pub fn second_listener_same_rooms(start: Start) {
    let server = start(config());
    assert_ne!(server.addr, server.irc_addr);
    let mut alice = TestClient::in_room(server.addr, "alice", "r");
    let mut bob = IrcClient::connect(server.irc_addr, "bob");
    bob.join("r");
    alice.expect("bob's join", |e| is_joined(e, "r", "bob"));
    bob.send("PRIVMSG #r :from the irc port");
    alice.expect("bob's message", |e| {
        is_message(e, "r", "bob", "from the irc port")
    });
    alice.send(|c| c.say("r", "from the main port"));
    bob.expect("alice's PRIVMSG", |m| {
        is(m, "alice", "PRIVMSG", &["#r", "from the main port"])
    });
    // Either port takes either protocol, and nicks are one namespace across both.
    let mut carol = TestClient::in_room(server.irc_addr, "carol", "r");
    bob.expect("carol's JOIN", |m| is(m, "carol", "JOIN", &["#r"]));
    let mut dave = IrcClient::raw(server.addr, "dave");
    dave.send("NICK carol");
    dave.expect_numeric("433");
    dave.send("NICK dave");
    dave.send("USER dave 0 * :Dave");
    dave.expect_numeric("001");
    dave.join("r");
    carol.expect("dave's join", |e| is_joined(e, "r", "dave"));
    dave.send("NAMES #r");
    let names = dave.expect_numeric("353");
    assert_eq!(source_nick(&names), "irc.test");
    assert_eq!(names.params[3], "@alice bob carol dave");
}
