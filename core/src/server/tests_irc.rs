//! Tests of the IRC front, alone and mixed with native clients in the same rooms.

use std::time::{Duration, Instant};

use super::irc_harness::{config, has};
use super::*;
use crate::client::{Client, ClientEvent, RoomEvent};
use crate::packet::{RoomMode, RoomRule};

/// A server with native clients and raw IRC connections.
struct Mixed {
    server: Server,
    now: Instant,
    native: Vec<(ConnId, Client)>,
    /// IRC connections and the lines they received, not yet read.
    irc: Vec<(ConnId, Vec<String>)>,
    closed: Vec<ConnId>,
    /// Bytes clients wrote that the server has not read yet.
    wire: HashMap<ConnId, Vec<u8>>,
}

impl Mixed {
    fn new(config: Config) -> Self {
        Mixed {
            // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
            server: Server::new(Config {
                flush_delay: Duration::ZERO,
                ..config
            }),
            now: crate::test_clock::start(),
            native: Vec::new(),
            irc: Vec::new(),
            closed: Vec::new(),
            wire: HashMap::new(),
        }
    }

    fn native(&mut self, nick: &str) -> usize {
        let id = self.server.open(self.now);
        let mut client = Client::new(nick);
        client.set_paced(false);
        self.native.push((id, client));
        self.pump();
        let i = self.native.len() - 1;
        assert!(self.native[i].1.is_registered(), "{nick} not registered");
        self.events(i);
        i
    }

    /// Opens an IRC connection and registers `nick`; returns its index with the lines read.
    fn irc(&mut self, nick: &str) -> usize {
        let i = self.irc_raw();
        self.send(
            i,
            &format!("NICK {nick}\r\nUSER {nick} 0 * :Real {nick}\r\n"),
        );
        let lines = self.lines(i);
        assert!(lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");
        i
    }

    fn irc_raw(&mut self) -> usize {
        let id = self.server.open(self.now);
        self.irc.push((id, Vec::new()));
        self.irc.len() - 1
    }

    fn send(&mut self, i: usize, text: &str) {
        let id = self.irc[i].0;
        self.server.handle_input(id, text.as_bytes(), self.now);
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (id, client) in &mut self.native {
                let wire = self.wire.entry(*id).or_default();
                if let Some(bytes) = client.poll_transmit() {
                    wire.extend_from_slice(&bytes);
                }
                // As an adapter would: no more than the server's read budget.
                let n = wire.len().min(self.server.read_budget(*id));
                if n > 0 {
                    self.server.handle_input(*id, &wire[..n], self.now);
                    wire.drain(..n);
                    moved = true;
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                self.server.handle_written(t.conn, t.data.len());
                if let Some((_, c)) = self.native.iter_mut().find(|(id, _)| *id == t.conn) {
                    c.handle_input(&t.data, self.now).expect("bad frame");
                } else if let Some((_, lines)) = self.irc.iter_mut().find(|(id, _)| *id == t.conn) {
                    let text = std::str::from_utf8(&t.data).expect("server sent invalid UTF-8");
                    for line in text.split_terminator("\r\n") {
                        assert!(line.len() + 2 <= crate::line::MAX_LINE, "{line}");
                        lines.push(line.to_owned());
                    }
                }
                moved = true;
            }
            while let Some(close) = self.server.poll_close() {
                match close.mode {
                    CloseMode::Flush => self.closed.push(close.conn),
                    CloseMode::Now => self.server.handle_close(close.conn, self.now),
                }
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn lines(&mut self, i: usize) -> Vec<String> {
        std::mem::take(&mut self.irc[i].1)
    }

    fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.native[i].1.poll_event()).collect()
    }

    fn client(&mut self, i: usize) -> &mut Client {
        &mut self.native[i].1
    }
}

#[test]
fn registration_burst() {
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    w.send(i, "CAP LS 302\r\nNICK ann\r\nUSER ann 0 * :Ann Example\r\n");
    let lines = w.lines(i);
    assert_eq!(
        lines,
        vec![
            ":irc.test CAP * LS :away-notify batch cap-notify echo-message extended-join \
             invite-notify labeled-response message-tags multi-prefix server-time setname \
             userhost-in-names"
        ]
    );
    w.send(i, "CAP END\r\n");
    let lines = w.lines(i);
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        [
            "001", "002", "003", "004", "005", "005", "251", "252", "253", "254", "255", "265",
            "266", "422"
        ]
    );
    assert_eq!(
        lines[0],
        ":irc.test 001 ann :Welcome to the Switchboard network, ann!~ann@irc.test"
    );
    assert_eq!(
        lines[3],
        ":irc.test 004 ann irc.test switchboard-0.1.0 iow Ibeiklmnostv :Ibeklov"
    );
    for token in [
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "NICKLEN=32",
        "CHANNELLEN=65",
        "TOPICLEN=390",
        "PREFIX=(ov)@+",
        "CHANMODES=beI,k,l,imnst",
    ] {
        let isupport = format!("{} {}", lines[4], lines[5]);
        assert!(isupport.contains(token), "{token} missing from {isupport}");
    }
}

#[test]
fn registration_errors() {
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    w.send(
        i,
        "JOIN #a\r\nNICK\r\nNICK *\r\nNICK 9x\r\nUSER u 0 *\r\nUSER u 0 * :\r\n",
    );
    let lines = w.lines(i);
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(codes, ["451", "431", "432", "432", "461", "461"]);
    w.send(i, "BOGUS\r\n");
    assert_eq!(w.lines(i), vec![":irc.test 451 * :You have not registered"]);
}

#[test]
fn password_is_required_when_set() {
    let mut w = Mixed::new(Config {
        password: Some("sesame".into()),
        ..config()
    });
    let i = w.irc_raw();
    w.send(i, "PASS wrong\r\nNICK ann\r\nUSER ann 0 * :A\r\n");
    let lines = w.lines(i);
    assert!(has(&lines, " 464 "));
    assert!(lines.last().unwrap().starts_with("ERROR :Closing Link"));
    assert_eq!(w.closed.len(), 1);
    let j = w.irc_raw();
    w.send(j, "PASS sesame\r\nNICK ann\r\nUSER ann 0 * :A\r\n");
    assert!(has(&w.lines(j), " 001 "));
    // Native hellos need it too.
    let id = w.server.open(w.now);
    w.native.push((id, Client::new("bob")));
    w.pump();
    assert!(!w.native[0].1.is_registered());
    let id = w.server.open(w.now);
    w.native.push((id, Client::with_password("bob", "sesame")));
    w.pump();
    assert!(w.native[1].1.is_registered());
}

#[test]
fn nick_collisions_across_protocols() {
    let mut w = Mixed::new(config());
    w.native("Alice");
    let i = w.irc_raw();
    w.send(i, "NICK alice\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 433 * alice :Nickname is already in use"]
    );
    w.send(i, "NICK ann\r\nUSER a 0 * :A\r\n");
    assert!(has(&w.lines(i), " 001 ann "));
    let id = w.server.open(w.now);
    w.native.push((id, Client::new("ANN")));
    w.pump();
    let ev = w.events(1);
    assert!(matches!(
        ev[0],
        ClientEvent::Error {
            code: ErrorCode::NickTaken,
            ..
        }
    ));
    // A case-only change is allowed and announced.
    w.send(i, "NICK Ann\r\n");
    assert_eq!(w.lines(i), vec![":ann!~a@irc.test NICK Ann"]);
    w.send(i, "NICK alice\r\n");
    assert!(has(&w.lines(i), " 433 Ann alice "));
}

#[test]
fn join_part_and_messages_both_ways() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("ircbob");
    w.client(a).join("rust");
    w.pump();
    w.events(a);
    w.send(i, "JOIN #rust,bad,#also\r\n");
    let lines = w.lines(i);
    assert_eq!(lines[0], ":ircbob!~ircbob@irc.test JOIN #rust");
    assert_eq!(lines[1], ":irc.test 353 ircbob = #rust :@alice ircbob");
    assert_eq!(lines[2], ":irc.test 366 ircbob #rust :End of /NAMES list");
    assert_eq!(lines[3], ":irc.test 403 ircbob bad :No such channel");
    assert_eq!(lines[4], ":ircbob!~ircbob@irc.test JOIN #also");
    assert!(lines[5].contains("353 ircbob = #also :@ircbob"));
    assert_eq!(
        w.events(a),
        vec![ClientEvent::Joined {
            room: "rust".into(),
            nick: "ircbob".into()
        }]
    );
    // Native to IRC.
    w.client(a).say("rust", "hello irc");
    w.pump();
    assert_eq!(
        w.lines(i),
        vec![":alice!~alice@irc.test PRIVMSG #rust :hello irc"]
    );
    // IRC to native; no echo to the IRC sender.
    w.send(i, "PRIVMSG #rust :hello native\r\n");
    assert_eq!(w.lines(i), Vec::<String>::new());
    let ev = w.events(a);
    assert!(
        matches!(&ev[1], ClientEvent::Message { from, text, seq: 2, .. } if from == "ircbob" && text == "hello native")
    );
    // Part is seen by the native client.
    w.send(i, "PART #rust :later\r\n");
    assert_eq!(
        w.lines(i),
        vec![":ircbob!~ircbob@irc.test PART #rust :later"]
    );
    assert_eq!(
        w.events(a),
        vec![ClientEvent::Left {
            room: "rust".into(),
            nick: "ircbob".into(),
            reason: "later".into()
        }]
    );
    w.send(i, "PART #rust\r\nPART #nowhere\r\nPRIVMSG #rust :x\r\n");
    let lines = w.lines(i);
    assert!(lines[0].contains(" 442 ircbob #rust "), "{lines:?}");
    assert!(lines[1].contains(" 403 ircbob #nowhere "), "{lines:?}");
    assert!(lines[2].contains(" 404 ircbob #rust "), "{lines:?}");
}

#[test]
fn messages_encode_once_per_protocol() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let b = w.native("bob");
    let i = w.irc("carol");
    let j = w.irc("dave");
    w.client(a).join("r");
    w.client(b).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    w.send(j, "JOIN #r\r\n");
    w.lines(i);
    w.lines(j);
    w.events(a);
    w.client(a).say("r", "shared");
    let bytes = w.native[a].1.poll_transmit().unwrap();
    w.server.handle_input(w.native[a].0, &bytes, w.now);
    let last = |w: &Mixed, id: ConnId| w.server.conns.map[&id].out.back().unwrap().as_ptr();
    assert_eq!(last(&w, w.native[a].0), last(&w, w.native[b].0));
    assert_eq!(last(&w, w.irc[i].0), last(&w, w.irc[j].0));
    assert_ne!(last(&w, w.native[a].0), last(&w, w.irc[i].0));
}

#[test]
fn direct_messages_across_protocols_and_errors() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).whisper("bob", "psst");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test PRIVMSG bob :psst"]);
    w.send(i, "PRIVMSG alice :hi back\r\nNOTICE alice :fyi\r\n");
    let ev = w.events(a);
    assert_eq!(
        ev[0],
        ClientEvent::Direct {
            from: "alice".into(),
            to: "bob".into(),
            text: "psst".into()
        }
    );
    assert_eq!(
        ev[1],
        ClientEvent::Direct {
            from: "bob".into(),
            to: "alice".into(),
            text: "hi back".into()
        }
    );
    assert_eq!(
        ev[2],
        ClientEvent::Direct {
            from: "bob".into(),
            to: "alice".into(),
            text: "fyi".into()
        }
    );
    w.send(i, "PRIVMSG nobody :x\r\nPRIVMSG\r\nPRIVMSG alice\r\nPRIVMSG alice :\r\nNOTICE nobody :x\r\nNOTICE\r\nFROB\r\n");
    let lines = w.lines(i);
    let codes: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(codes, ["401", "411", "412", "412", "421"]);
}

#[test]
fn invalid_utf8_text_is_refused_and_other_fields_replaced() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    w.events(a);
    let id = w.irc[i].0;
    w.lines(i);
    w.server.handle_input(id, b"PRIVMSG #r :caf\xe9\r\n", w.now);
    w.pump();
    assert!(w.events(a).is_empty());
    assert_eq!(
        w.lines(i),
        vec![":irc.test FAIL PRIVMSG INVALID_UTF8 :Message rejected: it is not valid UTF-8"]
    );
    // A topic (or a real name) is read lossily: each bad sequence becomes U+FFFD.
    w.server.handle_input(id, b"TOPIC #r :caf\xe9\r\n", w.now);
    w.pump();
    let ev = w.events(a);
    assert!(matches!(&ev[0], ClientEvent::Topic { topic, .. } if topic == "caf\u{fffd}"));
}

#[test]
fn long_lines_get_417_and_are_dropped() {
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    let long = format!("PRIVMSG bob :{}\r\nPING x\r\n", "y".repeat(600));
    for b in long.as_bytes() {
        let id = w.irc[i].0;
        w.server.handle_input(id, std::slice::from_ref(b), w.now);
        assert!(w.server.inbound_bytes(id) <= 511);
    }
    w.pump();
    let lines = w.lines(i);
    assert_eq!(lines[0], ":irc.test 417 bob :Input line was too long");
    assert_eq!(lines[1], ":irc.test PONG irc.test :x");
    assert_eq!(lines.len(), 2);
}

#[test]
fn long_native_messages_are_split_for_irc() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    w.lines(i);
    let text = "é".repeat(1500);
    w.client(a).say("r", &text);
    w.pump();
    let lines = w.lines(i);
    assert!(lines.len() > 1);
    let joined: String = lines
        .iter()
        .map(|l| l.split_once(" :").unwrap().1)
        .collect();
    assert_eq!(joined, text);
}

#[test]
fn names_list_who_whois() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.client(a).set_topic("r", "all about r");
    w.client(a).away("lunch");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    let lines = w.lines(i);
    assert!(
        lines.contains(&":irc.test 332 bob #r :all about r".to_owned()),
        "{lines:?}"
    );
    w.send(
        i,
        "NAMES #r\r\nLIST\r\nWHO #r\r\nWHOIS alice\r\nWHOIS nobody\r\n",
    );
    let lines = w.lines(i);
    let expect = [
        ":irc.test 353 bob = #r :@alice bob",
        ":irc.test 366 bob #r :End of /NAMES list",
        ":irc.test 321 bob Channel :Users  Name",
        ":irc.test 322 bob #r 2 :all about r",
        ":irc.test 323 bob :End of /LIST",
        ":irc.test 352 bob #r ~alice irc.test irc.test alice G@ :0 ",
        ":irc.test 352 bob #r ~bob irc.test irc.test bob H :0 Real bob",
        ":irc.test 315 bob #r :End of WHO list",
        ":irc.test 311 bob alice ~alice irc.test * :",
        ":irc.test 319 bob alice :@#r",
        ":irc.test 312 bob alice irc.test :switchboard-0.1.0",
        ":irc.test 301 bob alice :lunch",
        ":irc.test 317 bob alice 0 0 :seconds idle, signon time",
        ":irc.test 318 bob alice :End of /WHOIS list",
        ":irc.test 401 bob nobody :No such nick/channel",
        ":irc.test 318 bob nobody :End of /WHOIS list",
    ];
    assert_eq!(lines, expect);
}

#[test]
fn peer_bytes_never_break_a_line() {
    // Found by fuzzing: a real name with a bare CR reached other clients in WHOIS and WHO,
    // and a nick or token with a NUL was echoed back, as is.
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    w.send(
        i,
        "NICK mal\r\nUSER mal 0 * :x\r:evil!e@h PRIVMSG bob :hi\r\n",
    );
    assert!(has(&w.lines(i), " 001 "));
    let j = w.irc("bob");
    w.send(j, "WHOIS mal\r\nPING a\0b\r\nNICK c\0d\r\n");
    let lines = w.lines(j);
    assert!(
        lines.contains(
            &":irc.test 311 bob mal ~mal irc.test * :x\u{fffd}:evil!e@h PRIVMSG bob :hi".to_owned()
        ),
        "{lines:?}"
    );
    assert!(has(&lines, "PONG irc.test :a\u{fffd}b"), "{lines:?}");
    assert!(has(&lines, "432 bob c\u{fffd}d :Erroneous"), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains(['\0', '\r', '\n'])),
        "{lines:?}"
    );
}

#[test]
fn a_long_echoed_field_is_cut_at_a_character() {
    // Found by fuzzing: 170 invalid bytes in a nick become 510 bytes of U+FFFD, which the
    // 432 reply echoed in the middle of a line cut at byte 510, inside a character. The
    // pump fails on any line that is not UTF-8.
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    let mut line = b"NICK ".to_vec();
    line.extend([0xff; 170]);
    line.extend(b"\r\n");
    let id = w.irc[i].0;
    w.server.handle_input(id, &line, w.now);
    w.pump();
    let lines = w.lines(i);
    assert!(
        lines.len() == 1 && lines[0].starts_with(":irc.test 432 * \u{fffd}"),
        "{lines:?}"
    );
}

#[test]
fn cap_end_after_registration_changes_nothing() {
    // Found by fuzzing: CAP END after registration ran registration again: a second
    // welcome and Registered event, and after a nick change it claimed the old nick too,
    // which then outlived the connection.
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    let id = w.irc[i].0;
    while w.server.poll_event().is_some() {}
    w.send(i, "NICK bea\r\nCAP END\r\n");
    assert_eq!(w.lines(i), [":ann!~ann@irc.test NICK bea"]);
    // The nick change is the only event: no second registration.
    assert!(matches!(
        w.server.poll_event(),
        Some(Event::NickChanged { .. })
    ));
    assert_eq!(w.server.poll_event(), None);
    assert_eq!(w.server.nick_of(id), Some("bea"));
    assert_eq!(w.server.conn_of("ann"), None);
    assert_eq!(w.server.nick_count(), 1);
    w.server.handle_close(id, w.now);
    assert_eq!(w.server.nick_count(), 0);
}

#[test]
fn topics_and_moderation() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\nTOPIC #r\r\n");
    assert!(has(&w.lines(i), " 331 bob #r :No topic is set"));
    w.events(a);
    // Any member may set the topic while it is not locked.
    w.send(i, "TOPIC #r :bob's topic\r\n");
    assert_eq!(w.lines(i), vec![":bob!~bob@irc.test TOPIC #r :bob's topic"]);
    assert_eq!(
        w.events(a),
        vec![ClientEvent::Topic {
            room: "r".into(),
            topic: "bob's topic".into(),
            by: "bob".into()
        }]
    );
    assert_eq!(w.native[a].1.room("r").unwrap().topic, "bob's topic");
    // The operator (the creator) locks it; then only operators may.
    w.client(a).set_mode("r", RoomMode::TopicLock, true, "");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test MODE #r +t"]);
    w.send(i, "TOPIC #r :mine now\r\nMODE #r\r\nMODE #r +t\r\n");
    let lines = w.lines(i);
    assert!(lines[0].contains(" 482 bob #r "), "{lines:?}");
    assert_eq!(lines[1], ":irc.test 324 bob #r :+nt");
    assert_eq!(lines[2], ":irc.test 329 bob #r :0");
    assert!(lines[3].contains(" 482 bob #r "), "{lines:?}");
    // Giving bob operator status lets him.
    w.client(a).set_mode("r", RoomMode::Operator, true, "bob");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test MODE #r +o bob"]);
    w.send(i, "TOPIC #r :mine now\r\n");
    assert_eq!(w.lines(i), vec![":bob!~bob@irc.test TOPIC #r :mine now"]);
    assert!(w.native[a].1.room("r").unwrap().is_operator("bob"));
}

#[test]
fn kick_across_protocols() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let b = w.native("bob");
    let i = w.irc("carol");
    w.send(i, "JOIN #r\r\n");
    w.client(a).join("r");
    w.client(b).join("r");
    w.pump();
    w.lines(i);
    w.events(a);
    w.events(b);
    // Alice is no operator: carol created the room.
    w.client(a).kick("r", "bob", "no");
    w.pump();
    assert!(matches!(
        w.events(a)[0],
        ClientEvent::Error {
            code: ErrorCode::NotOperator,
            ..
        }
    ));
    w.send(i, "KICK #r alice :behave\r\nKICK #r nobody\r\nKICK #r\r\n");
    let lines = w.lines(i);
    assert_eq!(lines[0], ":carol!~carol@irc.test KICK #r alice :behave");
    assert!(lines[1].contains(" 401 carol nobody "), "{lines:?}");
    assert!(lines[2].contains(" 461 carol KICK "), "{lines:?}");
    let kicked = ClientEvent::Kicked {
        room: "r".into(),
        nick: "alice".into(),
        by: "carol".into(),
        reason: "behave".into(),
    };
    assert_eq!(w.events(a), vec![kicked.clone()]);
    assert_eq!(w.events(b), vec![kicked]);
    assert!(w.native[a].1.room("r").is_none());
    assert_eq!(
        w.server.room_members("r"),
        Some(vec!["carol".into(), "bob".into()])
    );
    // A native operator kicks the IRC user.
    w.client(b).join("s");
    w.pump();
    w.send(i, "JOIN #s\r\n");
    w.lines(i);
    w.client(b).kick("s", "carol", "bye");
    w.pump();
    assert_eq!(w.lines(i), vec![":bob!~bob@irc.test KICK #s carol :bye"]);
    w.send(i, "KICK #s bob\r\n");
    assert!(has(&w.lines(i), " 442 carol #s "));
}

#[test]
fn away_is_seen_by_messages_and_cleared() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.send(i, "AWAY :gone fishing\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 306 bob :You have been marked as being away"]
    );
    w.client(a).whisper("bob", "there?");
    w.pump();
    assert_eq!(
        w.lines(i),
        vec![":alice!~alice@irc.test PRIVMSG bob :there?"]
    );
    let ev = w.events(a);
    assert!(ev.contains(&ClientEvent::Away {
        nick: "bob".into(),
        message: "gone fishing".into()
    }));
    w.client(a).away("brb");
    w.pump();
    assert!(w.events(a).contains(&ClientEvent::Away {
        nick: "alice".into(),
        message: "brb".into()
    }));
    w.send(i, "PRIVMSG alice :hi\r\nAWAY\r\n");
    let lines = w.lines(i);
    assert_eq!(lines[0], ":irc.test 301 bob alice :brb");
    assert_eq!(
        lines[1],
        ":irc.test 305 bob :You are no longer marked as being away"
    );
    w.client(a).whois("bob");
    w.pump();
    assert!(matches!(&w.events(a)[..], [_, ClientEvent::Whois { away, .. }] if away.is_empty()));
}

#[test]
fn irc_quit_and_drop_are_seen_by_everyone() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    let j = w.irc("carol");
    w.client(a).join("r1");
    w.client(a).join("r2");
    w.pump();
    for k in [i, j] {
        w.send(k, "JOIN #r1,#r2\r\n");
    }
    w.lines(i);
    w.lines(j);
    w.events(a);
    w.send(i, "QUIT :bye all\r\n");
    assert_eq!(w.lines(i), vec!["ERROR :Closing Link: goodbye"]);
    assert_eq!(w.closed, vec![w.irc[i].0]);
    // The IRC peer sees one QUIT; the native peer a Left per room.
    assert_eq!(w.lines(j), vec![":bob!~bob@irc.test QUIT :quit: bye all"]);
    assert_eq!(w.events(a).len(), 2);
    // Carol's socket drops without QUIT.
    let id = w.irc[j].0;
    w.server.handle_close(id, w.now);
    w.pump();
    let ev = w.events(a);
    assert_eq!(
        ev,
        vec![
            ClientEvent::Left {
                room: "r1".into(),
                nick: "carol".into(),
                reason: "connection lost".into()
            },
            ClientEvent::Left {
                room: "r2".into(),
                nick: "carol".into(),
                reason: "connection lost".into()
            },
        ]
    );
    assert_eq!(w.server.nick_count(), 1);
}

#[test]
fn keepalive_and_flood_apply_to_irc() {
    let mut w = Mixed::new(Config {
        ping_interval: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(20),
        msg_rate: 1,
        msg_burst: 2,
        ..config()
    });
    let i = w.irc_raw();
    w.send(i, "NICK a\r\n");
    w.send(i, "USER a 0 * :A\r\n");
    assert!(has(&w.lines(i), " 001 "));
    w.now += Duration::from_secs(10);
    w.server.handle_timeout(w.now);
    w.pump();
    assert_eq!(w.lines(i), vec!["PING 1"]);
    assert_eq!(w.server.outbound_bytes(w.irc[i].0), 0);
    w.now += Duration::from_secs(10);
    w.server.handle_timeout(w.now);
    w.pump();
    assert_eq!(w.lines(i), vec!["ERROR :Closing Link: idle timeout"]);
    let j = w.irc_raw();
    w.send(j, "NICK b\r\n");
    w.send(j, "USER b 0 * :B\r\n");
    w.lines(j);
    // Over the rate: the commands wait, none is dropped, and the PING still answers last.
    w.send(j, "JOIN #x\r\nJOIN #y\r\nJOIN #z\r\nPING done\r\n");
    let mut lines = w.lines(j);
    assert!(!has(&lines, "PONG"), "{lines:?}");
    for _ in 0..6 {
        w.now += Duration::from_secs(1);
        w.server.handle_timeout(w.now);
        w.pump();
        lines.extend(w.lines(j));
    }
    assert!(!has(&lines, "NOTICE"), "{lines:?}");
    let joins: Vec<&String> = lines.iter().filter(|l| l.contains(" JOIN ")).collect();
    assert_eq!(joins.len(), 3, "{lines:?}");
    assert_eq!(lines.last().unwrap(), ":irc.test PONG irc.test :done");
}

#[test]
fn ping_is_a_barrier_for_irc() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.pump();
    w.events(a);
    // Everything JOIN causes is queued before the PING is answered.
    w.send(i, "JOIN #r\r\nPING barrier\r\n");
    let lines = w.lines(i);
    assert_eq!(lines.last().unwrap(), ":irc.test PONG irc.test :barrier");
    assert!(has(&lines, "JOIN #r"));
    assert!(matches!(w.events(a)[..], [ClientEvent::Joined { .. }]));
}

/// The error codes a native client got, in order.
fn errors(events: &[ClientEvent]) -> Vec<ErrorCode> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn said(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_banned_users_messages_never_reach_the_room_in_either_protocol() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let c = w.native("carol");
    let i = w.irc("bob");
    w.client(a).join("r");
    w.pump();
    w.client(c).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    w.events(a);
    w.events(c);
    w.lines(i);
    // The native operator bans bob by mask; the IRC member sees it as MODE.
    w.client(a).set_rule("r", RoomRule::Ban, true, "bob");
    w.pump();
    assert_eq!(
        w.lines(i),
        vec![":alice!~alice@irc.test MODE #r +b bob!*@*"]
    );
    w.send(i, "PRIVMSG #r :let me talk\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 404 bob #r :Cannot send to channel"]
    );
    assert!(said(&w.events(a)).is_empty());
    assert!(said(&w.events(c)).is_empty());
    // An IRC operator bans carol; her native message is refused and reaches no one.
    w.client(a).set_mode("r", RoomMode::Operator, true, "bob");
    w.pump();
    w.send(i, "MODE #r +b carol!*@*\r\n");
    w.lines(i);
    w.events(a);
    w.client(c).say("r", "me neither?");
    w.pump();
    assert_eq!(errors(&w.events(c)), vec![ErrorCode::CannotSpeak]);
    assert!(w.lines(i).is_empty());
    assert!(said(&w.events(a)).is_empty());
    // A banned user may not join again; an exemption lets it.
    w.client(c).leave("r", "");
    w.pump();
    w.client(c).join("r");
    w.pump();
    assert_eq!(errors(&w.events(c)), vec![ErrorCode::Banned]);
    w.send(i, "MODE #r +e carol!*@*\r\nMODE #r b\r\n");
    let lines = w.lines(i);
    assert!(has(&lines, " 367 bob #r :bob!*@*"), "{lines:?}");
    assert!(has(&lines, " 367 bob #r :carol!*@*"), "{lines:?}");
    assert!(has(&lines, " 368 bob #r "), "{lines:?}");
    w.client(c).join("r");
    w.pump();
    assert!(errors(&w.events(c)).is_empty());
}

#[test]
fn keys_and_limits_hold_for_native_and_irc_joiners() {
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    let a = w.native("alice");
    let j = w.irc("dan");
    w.send(i, "JOIN #r\r\nMODE #r +kl sesame 2\r\n");
    let lines = w.lines(i);
    assert_eq!(
        lines.last().map(String::as_str),
        Some(":bob!~bob@irc.test MODE #r +kl sesame 2"),
        "{lines:?}"
    );
    // The key, for both protocols.
    w.client(a).join("r");
    w.pump();
    assert_eq!(errors(&w.events(a)), vec![ErrorCode::BadRoomKey]);
    w.send(j, "JOIN #r wrong\r\n");
    assert_eq!(
        w.lines(j),
        vec![":irc.test 475 dan #r :Cannot join channel (+k)"]
    );
    w.client(a).join_with_key("r", "sesame");
    w.pump();
    assert!(errors(&w.events(a)).is_empty());
    assert_eq!(w.server.room_members("r").map(|m| m.len()), Some(2));
    // The limit of two: full now, for IRC and native alike.
    w.send(j, "JOIN #r sesame\r\n");
    assert_eq!(
        w.lines(j),
        vec![":irc.test 471 dan #r :Cannot join channel (+l)"]
    );
    let e = w.native("erin");
    w.client(e).join_with_key("r", "sesame");
    w.pump();
    assert_eq!(errors(&w.events(e)), vec![ErrorCode::RoomFull]);
    // MODE shows key and limit to members only.
    w.lines(i);
    w.send(i, "MODE #r\r\n");
    assert_eq!(w.lines(i)[0], ":irc.test 324 bob #r +kln sesame :2");
    w.send(j, "MODE #r\r\n");
    assert_eq!(w.lines(j)[0], ":irc.test 324 dan #r :+n");
    // The native operator state reads the same: alice asks for the rules.
    w.client(a).list_rules("r");
    w.pump();
    assert_eq!(
        w.native[a].1.poll_room_event(),
        Some(RoomEvent::Rules {
            room: "r".into(),
            modes: "kln".into(),
            key: "sesame".into(),
            limit: 2,
            bans: vec![],
        })
    );
    // Bad arguments are refused with the reason.
    w.send(i, "MODE #r +l many\r\n");
    assert!(has(&w.lines(i), " 696 bob #r l many :invalid limit"));
    w.client(a).set_rule("r", RoomRule::Key, true, "has space");
    w.pump();
    assert_eq!(errors(&w.events(a)), vec![ErrorCode::NotOperator]);
}

#[test]
fn invite_only_rooms_take_invitations_from_either_protocol() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    let j = w.irc("dan");
    w.client(a).join("r");
    w.pump();
    w.client(a).set_rule("r", RoomRule::InviteOnly, true, "");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 473 bob #r :Cannot join channel (+i)"]
    );
    // A native invitation reaches the IRC user as INVITE; it lets him in once.
    w.events(a);
    while w.native[a].1.poll_room_event().is_some() {}
    w.client(a).invite("r", "bob");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test INVITE bob #r"]);
    assert_eq!(
        w.native[a].1.poll_room_event(),
        Some(RoomEvent::Invited {
            room: "r".into(),
            by: "alice".into(),
            nick: "bob".into()
        })
    );
    w.send(i, "INVITE\r\n");
    assert_eq!(
        w.lines(i),
        vec![
            ":irc.test 336 bob :#r",
            ":irc.test 337 bob :End of /INVITE list"
        ]
    );
    w.send(i, "JOIN #r\r\n");
    assert!(has(&w.lines(i), " 366 bob #r "));
    // Members who are not operators may not invite under +i.
    w.send(i, "INVITE dan #r\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 482 bob #r :You're not channel operator"]
    );
    w.send(j, "JOIN #r\r\n");
    assert!(has(&w.lines(j), " 473 dan #r "));
    // An invite exception by mask lets dan in without an invitation.
    w.client(a)
        .set_rule("r", RoomRule::InviteExempt, true, "dan!*@*");
    w.pump();
    w.send(j, "JOIN #r\r\n");
    assert!(has(&w.lines(j), " 366 dan #r "));
}

#[test]
fn moderation_and_outside_messages() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    let j = w.irc("dan");
    w.client(a).join("r");
    w.pump();
    w.send(i, "JOIN #r\r\n");
    w.events(a);
    w.lines(i);
    // +m: only operators and voiced members speak.
    w.client(a).set_rule("r", RoomRule::Moderated, true, "");
    w.pump();
    w.lines(i);
    w.send(i, "PRIVMSG #r :hello?\r\n");
    assert!(has(&w.lines(i), " 404 bob #r "));
    assert!(said(&w.events(a)).is_empty());
    w.client(a).set_mode("r", RoomMode::Voice, true, "bob");
    w.pump();
    w.events(a);
    w.send(i, "PRIVMSG #r :now I may\r\n");
    assert_eq!(said(&w.events(a)), vec!["now I may".to_owned()]);
    // +n (the default): outsiders get 404; without it they may speak in.
    w.send(j, "PRIVMSG #r :from outside\r\n");
    assert!(has(&w.lines(j), " 404 dan #r "));
    w.client(a).set_rule("r", RoomRule::Moderated, false, "");
    w.client(a).set_rule("r", RoomRule::NoOutside, false, "");
    w.pump();
    w.events(a);
    w.send(j, "PRIVMSG #r :from outside\r\n");
    assert!(w.lines(j).is_empty());
    assert_eq!(said(&w.events(a)), vec!["from outside".to_owned()]);
    assert!(has(
        &w.lines(i),
        ":dan!~dan@irc.test PRIVMSG #r :from outside"
    ));
}

#[test]
fn secret_rooms_are_hidden_from_outsiders() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let c = w.native("carol");
    let i = w.irc("bob");
    w.client(a).join("hidden");
    w.client(a).join("open");
    w.pump();
    w.client(a).set_rule("hidden", RoomRule::Secret, true, "");
    w.pump();
    w.client(c).list_rooms();
    w.pump();
    let rooms: Vec<String> = w
        .events(c)
        .into_iter()
        .flat_map(|e| match e {
            ClientEvent::RoomList(list) => list.into_iter().map(|r| r.name).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(rooms, vec!["open".to_owned()]);
    w.send(i, "LIST\r\nNAMES #hidden\r\nWHOIS alice\r\n");
    let lines = w.lines(i);
    assert!(!has(&lines, " 322 bob #hidden "), "{lines:?}");
    assert!(!has(&lines, " 353 "), "{lines:?}");
    assert!(has(&lines, " 319 bob alice :@#open"), "{lines:?}");
    assert!(
        has(&lines, " 366 bob #hidden :End of /NAMES list"),
        "{lines:?}"
    );
}

#[test]
fn one_mode_request_is_one_line_for_irc_and_a_packet_per_change_for_natives() {
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    let a = w.native("alice");
    w.send(i, "JOIN #r\r\n");
    w.client(a).join("r");
    w.pump();
    w.lines(i);
    w.send(i, "MODE #r +it-n\r\n");
    assert_eq!(w.lines(i), vec![":bob!~bob@irc.test MODE #r +it-n"]);
    let got: Vec<RoomEvent> = std::iter::from_fn(|| w.native[a].1.poll_room_event()).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        w.native[a].1.room("r").map(|r| r.modes.clone()),
        Some("i".into())
    );
    // The topic lock is a RoomMode and reaches natives as ModeChanged.
    assert!(w.events(a).iter().any(|e| matches!(
        e,
        ClientEvent::ModeChanged {
            mode: RoomMode::TopicLock,
            on: true,
            ..
        }
    )));
}

#[test]
fn an_irc_line_is_cut_to_one_line_and_a_native_one_split() {
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    let j = w.irc("dan");
    // A PRIVMSG that fills a 512-byte line gets longer with the server's prefix.
    let text = "a".repeat(512 - "PRIVMSG dan :\r\n".len());
    w.send(i, &format!("PRIVMSG dan :{text}\r\n"));
    let lines = w.lines(j);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(":bob!~bob@irc.test PRIVMSG dan :aaa"));
    // NUL or a bare CR get a reply that says so, not 412; 421 shows no control bytes.
    w.send(
        i,
        "PRIVMSG dan :a\0b\r\nPRIVMSG dan :a\rb\r\nFOO\x01\x02\r\n",
    );
    let lines = w.lines(i);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains(" 400 bob PRIVMSG :PRIVMSG text may not hold a NUL"));
    assert!(lines[1].contains(" 400 bob PRIVMSG "));
    assert_eq!(lines[2], ":irc.test 421 bob FOO :Unknown command");
    assert!(w.lines(j).is_empty());
}

#[test]
fn oper_kill_and_user_queries() {
    let mut w = Mixed::new(Config {
        operators: vec![("root".into(), crate::sha256::hex_digest(b"hunter2"))],
        ..config()
    });
    let i = w.irc("bob");
    let j = w.irc("dan");
    w.send(i, "KILL dan :no\r\nOPER root wrong\r\n");
    let lines = w.lines(i);
    assert!(lines[0].contains(" 481 bob "), "{lines:?}");
    assert!(lines[1].contains(" 464 bob "), "{lines:?}");
    w.send(
        i,
        "OPER root hunter2\r\nWHOIS bob\r\nISON dan nobody bob\r\nUSERHOST bob dan\r\n",
    );
    let lines = w.lines(i);
    assert!(has(&lines, " 381 bob "), "{lines:?}");
    assert!(has(&lines, ":bob MODE bob :+o"), "{lines:?}");
    assert!(has(&lines, " 313 bob bob :is an IRC operator"), "{lines:?}");
    assert!(has(&lines, " 303 bob :dan bob"), "{lines:?}");
    assert!(
        has(&lines, " 302 bob :bob*=+~bob@irc.test dan=+~dan@irc.test"),
        "{lines:?}"
    );
    w.send(i, "KILL dan :spam\r\n");
    assert!(w.closed.contains(&w.irc[j].0));
    assert!(has(&w.lines(j), "ERROR :Closing Link: Killed (bob (spam))"));
    w.send(i, "WHOWAS dan\r\n");
    let lines = w.lines(i);
    assert!(
        has(&lines, " 314 bob dan ~dan irc.test * :Real dan"),
        "{lines:?}"
    );
    assert!(has(&lines, " 369 bob dan "), "{lines:?}");
}

#[test]
fn ircv3_capabilities_change_what_a_client_sees() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc_raw();
    w.send(
        i,
        "CAP LS 302\r\nCAP REQ :multi-prefix bogus\r\n\
         CAP REQ :multi-prefix userhost-in-names echo-message away-notify extended-join\r\n\
         NICK bob\r\nUSER bob 0 * :Bob B\r\nCAP END\r\nCAP LIST\r\n",
    );
    let lines = w.lines(i);
    assert!(has(&lines, "CAP * NAK :multi-prefix bogus"), "{lines:?}");
    assert!(
        has(&lines, "CAP * ACK :multi-prefix userhost-in-names"),
        "{lines:?}"
    );
    assert!(
        has(
            &lines,
            "CAP bob LIST :away-notify cap-notify echo-message extended-join multi-prefix \
             userhost-in-names"
        ),
        "{lines:?}"
    );
    let j = w.irc("dan");
    w.client(a).join("r");
    w.pump();
    w.client(a).set_mode("r", RoomMode::Voice, true, "alice");
    w.client(a).away("busy");
    w.pump();
    w.send(j, "JOIN #r\r\n");
    w.send(i, "JOIN #r\r\n");
    let lines = w.lines(i);
    // extended-join for bob's own join, away-notify for alice, every prefix and full
    // sources in NAMES.
    assert_eq!(lines[0], ":bob!~bob@irc.test JOIN #r * :Bob B");
    assert!(
        has(
            &lines,
            " 353 bob = #r :@+alice!~alice@irc.test dan!~dan@irc.test bob!~bob@irc.test"
        ),
        "{lines:?}"
    );
    // dan, without the capabilities, sees the plain forms.
    assert_eq!(
        w.lines(j).last().map(String::as_str),
        Some(":bob!~bob@irc.test JOIN #r")
    );
    // echo-message: bob gets his own message back, dan gets it once.
    w.send(i, "PRIVMSG #r :hi\r\n");
    assert_eq!(w.lines(i), vec![":bob!~bob@irc.test PRIVMSG #r :hi"]);
    assert_eq!(w.lines(j), vec![":bob!~bob@irc.test PRIVMSG #r :hi"]);
    // away-notify: alice coming back is seen by bob only.
    w.client(a).away("");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test AWAY"]);
    assert!(w.lines(j).is_empty());
    // setname: bob and nobody without the capability hears of a new real name.
    w.send(i, "CAP REQ setname\r\nSETNAME :Robert B\r\nWHOIS bob\r\n");
    let lines = w.lines(i);
    assert!(
        has(&lines, ":bob!~bob@irc.test SETNAME :Robert B"),
        "{lines:?}"
    );
    assert!(
        has(&lines, " 311 bob bob ~bob irc.test * :Robert B"),
        "{lines:?}"
    );
    assert!(w.lines(j).is_empty());
}

#[test]
fn labeled_responses_ack_tag_or_batch_what_a_command_caused() {
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    w.send(
        i,
        "CAP REQ :batch labeled-response\r\nNICK bob\r\nUSER bob 0 * :Bob\r\nCAP END\r\n",
    );
    w.lines(i);
    w.send(
        i,
        "@label=a1 PONG x\r\n@label=b2 PING t\r\n@label=c3 JOIN #r\r\nPING u\r\n",
    );
    let lines = w.lines(i);
    assert_eq!(lines[0], "@label=a1 :irc.test ACK");
    assert_eq!(lines[1], "@label=b2 :irc.test PONG irc.test :t");
    assert_eq!(lines[2], "@label=c3 :irc.test BATCH +lr1 labeled-response");
    assert_eq!(lines[3], "@batch=lr1 :bob!~bob@irc.test JOIN #r");
    assert!(lines[4].starts_with("@batch=lr1 :irc.test 353 bob = #r :@bob"));
    assert!(lines[5].starts_with("@batch=lr1 :irc.test 366 bob #r "));
    assert_eq!(lines[6], ":irc.test BATCH -lr1");
    // Unlabelled commands, and clients without the capability, get plain replies.
    assert_eq!(lines[7], ":irc.test PONG irc.test :u");
    let j = w.irc("dan");
    w.send(j, "@label=z9 PING v\r\n");
    assert_eq!(w.lines(j), vec![":irc.test PONG irc.test :v"]);
}

#[test]
fn irc_joiners_meet_bans_and_an_invitation_passes_key_and_limit() {
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    let j = w.irc("dan");
    w.client(a).join("r");
    w.pump();
    // A ban by user name (an IRC user's is `~` and its USER name) keeps bob out.
    w.client(a).set_rule("r", RoomRule::Ban, true, "*!~bob@*");
    w.client(a).set_rule("r", RoomRule::Key, true, "k1");
    w.client(a).set_rule("r", RoomRule::Limit, true, "1");
    w.pump();
    w.send(i, "JOIN #r k1\r\n");
    assert_eq!(
        w.lines(i),
        vec![":irc.test 474 bob #r :Cannot join channel (+b)"]
    );
    // Dan, not banned, meets the key first and then the limit.
    w.send(j, "JOIN #r\r\nJOIN #r k1\r\n");
    let lines = w.lines(j);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(" 475 dan #r "), "{lines:?}");
    assert!(lines[1].contains(" 471 dan #r "), "{lines:?}");
    // An invitation passes ban, key and limit alike, for one join.
    w.client(a).invite("r", "bob");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test INVITE bob #r"]);
    w.send(i, "JOIN #r\r\n");
    assert!(has(&w.lines(i), " 366 bob #r "));
    assert_eq!(w.server.room_members("r").map(|m| m.len()), Some(2));
    // In the room, the ban still silences him; a voice lets him speak.
    w.events(a);
    w.send(i, "PRIVMSG #r :hi\r\n");
    assert!(has(&w.lines(i), " 404 bob #r "));
    assert!(said(&w.events(a)).is_empty());
    w.client(a).set_mode("r", RoomMode::Voice, true, "bob");
    w.pump();
    w.lines(i);
    w.send(i, "PRIVMSG #r :hi now\r\n");
    assert_eq!(said(&w.events(a)), vec!["hi now".to_owned()]);
    // Out again, the invitation is spent.
    w.send(i, "PART #r\r\nJOIN #r k1\r\n");
    assert!(has(&w.lines(i), " 474 bob #r "));
}

#[test]
fn clearing_the_key_carries_a_parameter_as_chanmodes_promises() {
    // CHANMODES puts `k` in type B: a parameter when set and when cleared. Without one,
    // irssi and others take the next change's parameter (here the ban mask) as the key.
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    let a = w.native("alice");
    w.send(i, "JOIN #r\r\nMODE #r +k sesame\r\n");
    w.client(a).join_with_key("r", "sesame");
    w.pump();
    w.lines(i);
    w.send(i, "MODE #r -k+b sesame dan\r\n");
    assert_eq!(
        w.lines(i),
        vec![":bob!~bob@irc.test MODE #r -k+b * dan!*@*"]
    );
    w.send(i, "MODE #r +k again\r\nMODE #r +o alice\r\n");
    w.lines(i);
    w.client(a).set_rule("r", RoomRule::Key, false, "");
    w.pump();
    assert_eq!(w.lines(i), vec![":alice!~alice@irc.test MODE #r -k *"]);
    // Natives are told the rule went, with no key to show.
    let mut cleared = None;
    while let Some(ev) = w.native[a].1.poll_room_event() {
        cleared = Some(ev);
    }
    assert_eq!(
        cleared,
        Some(RoomEvent::RuleChanged {
            room: "r".into(),
            by: "alice".into(),
            rule: RoomRule::Key,
            on: false,
            arg: String::new(),
        })
    );
}

#[test]
fn whois_hides_secret_rooms_from_non_members_in_both_protocols() {
    // One rule (chat.rs `whois`) for both fronts: a secret room shows only to members.
    let mut w = Mixed::new(config());
    let alice = w.native("alice");
    let carol = w.native("carol");
    let bob = w.irc("bob");
    w.client(alice).join("open");
    w.client(alice).join("hidden");
    w.pump();
    w.client(alice)
        .set_rule("hidden", RoomRule::Secret, true, "");
    w.pump();
    w.events(alice);
    let rooms = |events: Vec<ClientEvent>| -> Vec<String> {
        let found = events.into_iter().find_map(|e| match e {
            ClientEvent::Whois { rooms, .. } => Some(rooms),
            _ => None,
        });
        found
            .expect("no whois reply")
            .into_iter()
            .map(|m| m.nick)
            .collect()
    };
    w.client(carol).whois("alice");
    w.pump();
    assert_eq!(rooms(w.events(carol)), ["open"]);
    w.client(alice).whois("alice");
    w.pump();
    assert_eq!(rooms(w.events(alice)), ["open", "hidden"]);
    w.send(bob, "WHOIS alice\r\n");
    let lines = w.lines(bob);
    assert!(has(&lines, " 319 bob alice :@#open"), "{lines:?}");
    assert!(!has(&lines, "#hidden"), "{lines:?}");
}

#[test]
fn the_away_reply_goes_to_senders_who_reached_someone_else() {
    // One rule (chat.rs `away_reply`): told when the recipient is away, never about
    // oneself, never for a NOTICE.
    let mut w = Mixed::new(config());
    let bob = w.irc("bob");
    let dan = w.irc("dan");
    let alice = w.native("alice");
    w.send(bob, "AWAY :out\r\n");
    w.send(dan, "AWAY :gone\r\n");
    w.lines(bob);
    w.send(
        bob,
        "PRIVMSG bob :me\r\nNOTICE dan :n\r\nPRIVMSG dan :hi\r\n",
    );
    let lines = w.lines(bob);
    let away: Vec<&String> = lines.iter().filter(|l| l.contains(" 301 ")).collect();
    assert_eq!(away, [":irc.test 301 bob dan :gone"], "{lines:?}");
    w.events(alice);
    w.client(alice).away("busy");
    w.client(alice).whisper("alice", "me");
    w.client(alice).whisper("dan", "hi");
    w.pump();
    let told: Vec<(String, String)> = w
        .events(alice)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Away { nick, message } => Some((nick, message)),
            _ => None,
        })
        .collect();
    let expect = [("alice", "busy"), ("dan", "gone")].map(|(a, b)| (a.into(), b.into()));
    assert_eq!(told, expect);
}

#[test]
fn lusers_counts_users_invisible_and_registering_connections() {
    let mut w = Mixed::new(Config::default());
    w.native("nat");
    let a = w.irc("alice");
    let b = w.irc("bob");
    w.send(b, "MODE bob +i\r\n");
    w.irc_raw(); // still registering: an unknown connection
    w.lines(a);
    w.send(a, "LUSERS\r\n");
    let lines = w.lines(a);
    let find = |code: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {code} ")))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        find("251").ends_with(":There are 2 users and 1 invisible on 1 servers"),
        "{lines:?}"
    );
    assert!(find("252").contains(" 0 :operator(s) online"), "{lines:?}");
    assert!(
        find("253").contains(" 1 :unknown connection(s)"),
        "{lines:?}"
    );
    assert!(
        find("255").ends_with(":I have 3 clients and 0 servers"),
        "{lines:?}"
    );
}

/// Opens an IRC connection with the capabilities `caps` and registers `nick`.
fn irc_with(w: &mut Mixed, nick: &str, caps: &str) -> usize {
    let i = w.irc_raw();
    w.send(
        i,
        &format!("CAP LS 302\r\nCAP REQ :{caps}\r\nNICK {nick}\r\nUSER {nick} 0 * :R {nick}\r\nCAP END\r\n"),
    );
    let lines = w.lines(i);
    assert!(has(&lines, " ACK :"), "{lines:?}");
    i
}

#[test]
fn invite_notify_reaches_the_other_operators_that_enabled_it_only() {
    let mut w = Mixed::new(config());
    let i = irc_with(&mut w, "ivy", "invite-notify");
    let m = irc_with(&mut w, "max", "invite-notify");
    let j = w.irc("jon");
    let k = irc_with(&mut w, "kim", "invite-notify");
    let a = w.native("alice");
    w.send(i, "JOIN #r\r\n");
    w.send(m, "JOIN #r\r\n");
    w.send(j, "JOIN #r\r\n");
    w.send(k, "JOIN #r\r\n");
    w.client(a).join("r");
    w.pump();
    w.send(i, "MODE #r +oo max jon\r\n");
    for x in [i, m, j, k] {
        w.lines(x);
    }
    w.events(a);
    let dan = w.irc("dan");
    w.send(m, "INVITE dan #r\r\n");
    // The invitee, and the other operator with invite-notify; not the inviter (it gets
    // 341), an operator without it, a member who is no operator, nor a native member.
    assert_eq!(w.lines(dan), vec![":max!~max@irc.test INVITE dan #r"]);
    assert_eq!(w.lines(i), vec![":max!~max@irc.test INVITE dan #r"]);
    assert_eq!(w.lines(m), vec![":irc.test 341 max dan :#r"]);
    assert!(w.lines(j).is_empty());
    assert!(w.lines(k).is_empty());
    assert!(w.events(a).is_empty());
}

#[test]
fn wallops_reach_users_with_mode_w_and_the_sender() {
    let mut w = Mixed::new(Config {
        operators: vec![("root".into(), crate::sha256::hex_digest(b"hunter2"))],
        ..config()
    });
    let i = w.irc("ivy");
    let j = w.irc("jon");
    let k = w.irc("kim");
    let a = w.native("alice");
    w.send(j, "MODE jon +w\r\n");
    w.send(i, "OPER root hunter2\r\n");
    w.lines(i);
    w.lines(j);
    w.send(i, "WALLOPS :the server restarts\r\n");
    let line = ":ivy!~ivy@irc.test WALLOPS :the server restarts";
    assert_eq!(w.lines(i), vec![line]);
    assert_eq!(w.lines(j), vec![line]);
    assert!(w.lines(k).is_empty());
    assert!(w.events(a).is_empty());
}

#[test]
fn setname_and_away_notify_reach_peers_that_enabled_them_once() {
    let mut w = Mixed::new(config());
    let i = irc_with(&mut w, "ivy", "setname away-notify");
    let m = irc_with(&mut w, "max", "setname away-notify");
    let j = w.irc("jon");
    let a = w.native("alice");
    // Max shares two rooms with ivy, jon one, alice one.
    w.send(i, "JOIN #r,#s\r\n");
    w.send(m, "JOIN #r,#s\r\n");
    w.send(j, "JOIN #r\r\n");
    w.client(a).join("s");
    w.pump();
    for x in [i, m, j] {
        w.lines(x);
    }
    w.events(a);
    w.send(i, "SETNAME :Ivy Q\r\nAWAY :lunch\r\n");
    assert_eq!(
        w.lines(m),
        vec![
            ":ivy!~ivy@irc.test SETNAME :Ivy Q",
            ":ivy!~ivy@irc.test AWAY :lunch"
        ]
    );
    let lines = w.lines(i);
    assert_eq!(lines[0], ":ivy!~ivy@irc.test SETNAME :Ivy Q", "{lines:?}");
    assert!(!has(&lines, " AWAY "), "{lines:?}");
    assert!(w.lines(j).is_empty());
    assert!(w.events(a).is_empty());
    w.send(i, "AWAY\r\n");
    assert_eq!(w.lines(m), vec![":ivy!~ivy@irc.test AWAY"]);
}

/// The packet types of the whole frames in `bytes`, in order.
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let prefix = crate::packet::LENGTH_PREFIX;
    let mut types = Vec::new();
    let mut rest = bytes;
    while rest.len() > prefix {
        let mut len = [0; 4];
        len.copy_from_slice(&rest[..prefix]);
        types.push(rest[prefix]);
        rest = &rest[(prefix + u32::from_be_bytes(len) as usize).min(rest.len())..];
    }
    types
}

/// What native client `a` is sent in answer to its request `send` (given the client,
/// returns the request's number), as packet types in order.
fn answer_types(w: &mut Mixed, a: usize, send: impl FnOnce(&mut Client) -> u32) -> Vec<u8> {
    send(w.client(a));
    let bytes = w.client(a).poll_transmit().expect("a request");
    let id = w.native[a].0;
    w.server.handle_input(id, &bytes, w.now);
    let mut out = Vec::new();
    while let Some(t) = w.server.poll_transmit() {
        w.server.handle_written(t.conn, t.data.len());
        if t.conn == id {
            out.extend_from_slice(&t.data);
        }
    }
    frame_types(&out)
}

#[test]
fn a_native_inviter_is_told_the_invitee_is_away_after_its_confirmation() {
    use crate::packet::server_type::{AWAY, INVITED};
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let b = w.native("bob");
    let i = w.irc("ivy");
    w.client(a).join("r");
    w.client(b).away("gone fishing");
    w.send(i, "AWAY :out\r\n");
    w.pump();
    assert_eq!(
        answer_types(&mut w, a, |c| c.invite("r", "bob")),
        vec![INVITED, AWAY]
    );
    // The same rule (`away_reply`) for an IRC invitee; none for one who is back.
    assert_eq!(
        answer_types(&mut w, a, |c| c.invite("r", "ivy")),
        vec![INVITED, AWAY]
    );
    w.send(i, "AWAY\r\n");
    assert_eq!(
        answer_types(&mut w, a, |c| c.invite("r", "ivy")),
        vec![INVITED]
    );
    // And IRC's inviter gets 341 then 301, as before.
    w.send(i, "JOIN #s\r\nINVITE bob #s\r\n");
    let lines = w.lines(i);
    let n = lines.len();
    assert_eq!(lines[n - 2], ":irc.test 341 ivy bob :#s", "{lines:?}");
    assert_eq!(lines[n - 1], ":irc.test 301 ivy bob :gone fishing");
}

#[test]
fn motd_lines_in_the_burst_and_on_request() {
    let mut w = Mixed::new(Config {
        motd: Some("hello\nthere".into()),
        ..config()
    });
    let a = w.irc("ann");
    let motd = [
        ":irc.test 375 ann :- irc.test Message of the day -",
        ":irc.test 372 ann :- hello",
        ":irc.test 372 ann :- there",
        ":irc.test 376 ann :End of /MOTD command.",
    ];
    w.send(a, "MOTD\r\n");
    assert_eq!(w.lines(a), motd);
    // The burst ended with the same lines, built once per server.
    let b = w.irc_raw();
    w.send(b, "NICK bob\r\nUSER bob 0 * :Bob\r\n");
    let lines = w.lines(b);
    let tail: Vec<String> = lines[lines.len() - 4..]
        .iter()
        .map(|l| l.replace(" bob ", " ann "))
        .collect();
    assert_eq!(tail, motd);
}

#[test]
fn an_input_overflow_is_told_in_each_protocol_before_the_bye() {
    let mut h = super::irc_harness::RawIrc::new();
    let a = h.irc("a", "");
    let fresh = h.server.open(h.now);
    let flood = "x".repeat(9000);
    for id in [a, fresh] {
        h.server.handle_input(id, flood.as_bytes(), h.now);
        h.pump();
    }
    let told = |nick: &str, seq: u32| {
        vec![
            format!(
                ":irc.test NOTICE {nick} :input queue overflow: 0 bytes waiting and 9000 \
                 more, past the 8192 allowed; requests from number {seq} on were dropped"
            ),
            "ERROR :Closing Link: flooding".to_owned(),
        ]
    };
    assert_eq!(h.take(a), told("a", 1));
    assert_eq!(h.take(fresh), told("*", 1));
    // Native: an error naming the first request dropped, then the bye.
    let native = h.server.open(h.now);
    let mut input = vec![0u8];
    input.extend_from_slice(flood.as_bytes());
    h.server.handle_input(native, &input, h.now);
    let mut out = Vec::new();
    while let Some(t) = h.server.poll_transmit() {
        out.extend_from_slice(&t.data);
    }
    let mut decoder = crate::frame::FrameDecoder::new(1 << 16);
    let mut rest = &out[..];
    let mut got = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut rest) {
        got.push(ServerPacket::decode(frame.type_code, frame.payload).expect("a packet"));
    }
    assert!(rest.is_empty());
    assert_eq!(
        got,
        [
            ServerPacket::Error {
                code: ErrorCode::RateLimited,
                request_type: 0,
                request_seq: 1,
                message: "input queue overflow: 0 bytes waiting and 9001 more, past the 8192 \
                          allowed; requests from number 1 on were dropped"
                    .into(),
            },
            ServerPacket::Bye {
                code: ErrorCode::Flooding,
                reason: "flooding".into(),
            },
        ]
    );
}

#[test]
fn away_notify_members_hear_that_a_joiner_is_away_and_nothing_of_one_who_is_not() {
    let mut w = Mixed::new(config());
    let m = irc_with(&mut w, "max", "away-notify");
    let i = w.irc("ivy");
    let j = w.irc("jon");
    w.send(m, "JOIN #r\r\n");
    w.lines(m);
    // Away before joining: max learns it right after the join, as the JOIN itself does
    // not say so (without extended-join's account field there is no other way).
    w.send(i, "AWAY :lunch\r\nJOIN #r\r\n");
    assert_eq!(
        w.lines(m),
        vec![
            ":ivy!~ivy@irc.test JOIN #r",
            ":ivy!~ivy@irc.test AWAY :lunch"
        ]
    );
    // Not away: the join alone.
    w.send(j, "JOIN #r\r\n");
    assert_eq!(w.lines(m), vec![":jon!~jon@irc.test JOIN #r"]);
}

/// What an operator of `#r` hears back for `MODE #r <change>`: the MODE line when the
/// argument is taken, an error naming the argument when not.
fn mode_answer(w: &mut Mixed, op: usize, change: &str) -> Vec<String> {
    w.send(op, &format!("MODE #r {change}\r\n"));
    w.lines(op)
}

#[test]
fn room_mode_arguments_are_checked_at_their_bounds() {
    let mut w = Mixed::new(config());
    let o = w.irc("op");
    w.send(o, "JOIN #r\r\n");
    w.lines(o);
    let taken = |lines: &[String]| has(lines, ":op!~op@irc.test MODE #r ");
    // Keys: 1 to 23 bytes, no spaces, commas or DEL.
    for (key, ok) in [
        ("k".repeat(23), true),
        ("k".repeat(24), false),
        ("a,b".into(), false),
        ("a\tb".into(), false),
        ("a\x7fb".into(), false),
    ] {
        let lines = mode_answer(&mut w, o, &format!("+k {key}"));
        assert_eq!(taken(&lines), ok, "key {key:?}: {lines:?}");
        if !ok {
            assert!(has(&lines, "invalid key"), "key {key:?}: {lines:?}");
        } else {
            mode_answer(&mut w, o, "-k *");
        }
    }
    // Limits: 1 to 65535.
    for (limit, ok) in [("1", true), ("65535", true), ("0", false), ("65536", false)] {
        let lines = mode_answer(&mut w, o, &format!("+l {limit}"));
        assert_eq!(taken(&lines), ok, "limit {limit}: {lines:?}");
        if !ok {
            assert!(has(&lines, "invalid limit"), "limit {limit}: {lines:?}");
        }
    }
    // Ban masks: 1 to 100 bytes, no spaces.
    for (mask, ok) in [
        ("m".repeat(100), true),
        ("m".repeat(101), false),
        ("a\tb".into(), false),
    ] {
        let lines = mode_answer(&mut w, o, &format!("+b {mask}"));
        assert_eq!(taken(&lines), ok, "mask {mask:?}: {lines:?}");
        if !ok {
            assert!(has(&lines, "invalid mask"), "mask {mask:?}: {lines:?}");
        }
    }
}

#[test]
fn setname_is_told_to_the_sender_once_in_a_room_or_in_none_and_a_long_one_says_why() {
    let mut w = Mixed::new(config());
    let i = irc_with(&mut w, "ivy", "setname");
    let j = irc_with(&mut w, "jon", "setname");
    // In no room: ivy alone hears it.
    w.send(i, "SETNAME :Ivy Q\r\n");
    assert_eq!(w.lines(i), vec![":ivy!~ivy@irc.test SETNAME :Ivy Q"]);
    assert!(w.lines(j).is_empty());
    // In a room with jon: each hears it once.
    w.send(i, "JOIN #r\r\n");
    w.send(j, "JOIN #r\r\n");
    w.lines(i);
    w.lines(j);
    w.send(i, "SETNAME :Ivy R\r\n");
    assert_eq!(w.lines(i), vec![":ivy!~ivy@irc.test SETNAME :Ivy R"]);
    assert_eq!(w.lines(j), vec![":ivy!~ivy@irc.test SETNAME :Ivy R"]);
    // Too long: refused with the reason, and nobody is told.
    let long = "n".repeat(usize::from(config().max_reason_len) + 1);
    w.send(i, &format!("SETNAME :{long}\r\n"));
    let lines = w.lines(i);
    assert!(has(&lines, "A real name is at most"), "{lines:?}");
    assert!(w.lines(j).is_empty());
}

/// The lines `lines` carry after `prefix`, joined, and each line's length.
fn split_parts(lines: &[String], prefix: &str) -> (String, Vec<usize>) {
    let mine: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    let text = mine.iter().map(|l| &l[prefix.len()..]).collect();
    (text, mine.iter().map(|l| l.len()).collect())
}

#[test]
fn a_long_native_message_fills_each_irc_line_whatever_the_target_length() {
    // `#long` and `bob` are not two bytes long, so an overhead that counts the target
    // twice (or not at all) shows: the lines come out shorter (or longer) than 510.
    let mut w = Mixed::new(config());
    let a = w.native("alice");
    let i = w.irc("bob");
    w.client(a).join("long");
    w.pump();
    w.send(i, "JOIN #long\r\n");
    w.lines(i);
    let text = "x".repeat(1_200);
    for (send, prefix) in [
        (true, ":alice!~alice@irc.test PRIVMSG #long :"),
        (false, ":alice!~alice@irc.test PRIVMSG bob :"),
    ] {
        if send {
            w.client(a).say("long", &text);
        } else {
            w.client(a).whisper("bob", &text);
        }
        w.pump();
        let lines = w.lines(i);
        let (joined, lens) = split_parts(&lines, prefix);
        assert_eq!(joined, text, "nothing lost or added: {lines:?}");
        // Each line but the last as long as a line may be (510 bytes before its CRLF).
        let (last, full) = lens.split_last().expect("lines");
        assert!(
            full.len() == 2 && full.iter().all(|&n| n == 510) && *last < 510,
            "{prefix}: {lens:?}"
        );
    }
}

/// The nicks of the `352` (WHO) lines in `lines`.
fn who_nicks(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(" 352 "))
        .filter_map(|l| l.split(' ').nth(7).map(str::to_owned))
        .collect()
}

#[test]
fn an_invisible_user_is_left_out_of_who_only_for_those_who_share_no_channel() {
    let mut w = Mixed::new(config());
    let ivy = w.irc("ivy1");
    let vic = w.irc("vic1");
    let kim = w.irc("kim1");
    let jon = w.irc("jon1");
    w.send(ivy, "MODE ivy1 +i\r\nJOIN #r\r\n");
    w.send(kim, "JOIN #r\r\n");
    for i in [ivy, vic, kim, jon] {
        w.lines(i);
    }
    // A mask: jon, who shares no channel with ivy, sees only the visible users; ivy sees
    // herself; kim, in #r with her, sees her too.
    for (i, expect) in [
        (jon, vec!["ivy1"; 0]),
        (ivy, vec!["ivy1"]),
        (kim, vec!["ivy1"]),
    ] {
        w.send(i, "WHO *1\r\n");
        let mut seen = who_nicks(&w.lines(i));
        seen.retain(|n| n != "jon1" && n != "kim1" && n != "vic1");
        assert_eq!(seen, expect);
    }
    w.send(jon, "WHO *1\r\n");
    let mut seen = who_nicks(&w.lines(jon));
    seen.sort();
    assert_eq!(seen, ["jon1", "kim1", "vic1"]);
    // Her exact nick finds her all the same.
    w.send(jon, "WHO ivy1\r\n");
    assert_eq!(who_nicks(&w.lines(jon)), ["ivy1"]);
    // A channel: an outsider sees its visible members only, a member all of them.
    w.send(jon, "WHO #r\r\n");
    assert_eq!(who_nicks(&w.lines(jon)), ["kim1"]);
    w.send(kim, "WHO #r\r\n");
    let mut seen = who_nicks(&w.lines(kim));
    seen.sort();
    assert_eq!(seen, ["ivy1", "kim1"]);
}

#[test]
fn names_of_several_channels_ends_once_and_shows_secret_ones_to_members_only() {
    let mut w = Mixed::new(config());
    let ann = w.irc("ann");
    let bob = w.irc("bob");
    w.send(ann, "JOIN #pub,#sec\r\nMODE #sec +s\r\n");
    w.lines(ann);
    w.send(bob, "NAMES #pub\r\n");
    assert_eq!(
        w.lines(bob),
        [
            ":irc.test 353 bob = #pub :@ann",
            ":irc.test 366 bob #pub :End of /NAMES list"
        ]
    );
    // Several: the names of each visible one, then one end naming the whole list.
    w.send(bob, "NAMES #pub,#sec,#nope\r\n");
    assert_eq!(
        w.lines(bob),
        [
            ":irc.test 353 bob = #pub :@ann",
            ":irc.test 366 bob #pub,#sec,#nope :End of /NAMES list"
        ]
    );
    // One name and an empty one are one channel.
    w.send(bob, "NAMES #sec,\r\n");
    assert_eq!(w.lines(bob), [":irc.test 366 bob #sec :End of /NAMES list"]);
    // No name at all still ends.
    w.send(bob, "NAMES ,\r\n");
    assert_eq!(w.lines(bob), [":irc.test 366 bob , :End of /NAMES list"]);
    w.send(ann, "NAMES #sec\r\n");
    assert_eq!(
        w.lines(ann),
        [
            ":irc.test 353 ann @ #sec :@ann",
            ":irc.test 366 ann #sec :End of /NAMES list"
        ]
    );
}

/// The channels and member counts of the `322` (LIST) lines in `lines`.
fn listed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(" 322 "))
        .map(|l| l.split(' ').skip(3).take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn list_takes_names_masks_and_member_count_bounds() {
    let mut w = Mixed::new(config());
    let ann = w.irc("ann");
    let bob = w.irc("bob");
    let cat = w.irc("cat");
    let dan = w.irc("dan");
    w.send(ann, "JOIN #alpha,#beta,#gamma,#sec\r\nMODE #sec +s\r\n");
    w.send(bob, "JOIN #beta,#gamma\r\n");
    w.send(cat, "JOIN #gamma\r\n");
    for (list, expect) in [
        // dan is in none of them: the public ones are listed, the secret one is not.
        ("", vec!["#alpha 1", "#beta 2", "#gamma 3"]),
        (" >1", vec!["#beta 2", "#gamma 3"]),
        (" <3", vec!["#alpha 1", "#beta 2"]),
        (" >1,<3", vec!["#beta 2"]),
        (" >3", vec![]),
        (" *mm*", vec!["#gamma 3"]),
        (" !*mm*", vec!["#alpha 1", "#beta 2"]),
        (" #BETA,alpha,", vec!["#alpha 1", "#beta 2"]),
        (" #sec", vec![]),
    ] {
        w.send(dan, &format!("LIST{list}\r\n"));
        let lines = w.lines(dan);
        assert_eq!(listed(&lines), expect, "LIST{list}: {lines:?}");
        assert!(lines
            .last()
            .is_some_and(|l| l.ends_with(" 323 dan :End of /LIST")));
    }
    w.lines(ann);
    w.send(ann, "LIST #sec\r\n");
    assert_eq!(listed(&w.lines(ann)), ["#sec 1"]);
}

#[test]
fn who_masks_match_nick_user_host_or_real_name_and_flag_o_keeps_operators() {
    let mut w = Mixed::new(Config {
        operators: vec![("root".into(), crate::sha256::hex_digest(b"pw"))],
        ..config()
    });
    let ann = w.irc("ann");
    let bob = w.irc("bob");
    w.send(bob, "OPER root pw\r\nJOIN #sec\r\nMODE #sec +s\r\n");
    w.lines(bob);
    for (mask, expect) in [
        ("0", vec!["ann", "bob"]),
        ("*", vec!["ann", "bob"]),
        ("bob", vec!["bob"]),
        ("~an?", vec!["ann"]),
        ("irc.test", vec!["ann", "bob"]),
        (":Real?ann", vec!["ann"]),
        ("nobody", vec![]),
        ("* o", vec!["bob"]),
        ("#sec", vec![]),
    ] {
        w.send(ann, &format!("WHO {mask}\r\n"));
        let lines = w.lines(ann);
        let mut seen = who_nicks(&lines);
        seen.sort();
        assert_eq!(seen, expect, "WHO {mask}: {lines:?}");
        assert!(has(&lines, " 315 ann "), "{lines:?}");
    }
    w.send(bob, "WHO #sec\r\n");
    assert_eq!(who_nicks(&w.lines(bob)), ["bob"]);
}

#[test]
fn whowas_gives_as_many_entries_as_asked_and_all_for_zero() {
    let mut w = Mixed::new(config());
    let ann = w.irc("ann");
    for _ in 0..2 {
        let dan = w.irc("dan");
        w.send(dan, "QUIT\r\n");
    }
    w.lines(ann);
    for (count, expect) in [("", 2), (" 0", 2), (" 1", 1), (" 5", 2), (" x", 2)] {
        w.send(ann, &format!("WHOWAS dan{count}\r\n"));
        let lines = w.lines(ann);
        let n = lines.iter().filter(|l| l.contains(" 314 ann dan ")).count();
        assert_eq!(n, expect, "WHOWAS dan{count}: {lines:?}");
        assert!(has(&lines, " 369 ann dan "), "{lines:?}");
    }
}

#[test]
fn cap_req_with_a_minus_removes_a_capability() {
    let mut w = Mixed::new(config());
    let ann = irc_with(&mut w, "ann", "echo-message server-time");
    w.send(ann, "CAP REQ :-echo-message\r\nCAP LIST\r\n");
    assert_eq!(
        w.lines(ann),
        [
            ":irc.test CAP ann ACK :-echo-message",
            ":irc.test CAP ann LIST :cap-notify server-time"
        ]
    );
    // Asking again for one already on leaves it on.
    w.send(ann, "CAP REQ :server-time\r\nCAP LIST\r\n");
    assert_eq!(
        w.lines(ann),
        [
            ":irc.test CAP ann ACK :server-time",
            ":irc.test CAP ann LIST :cap-notify server-time"
        ]
    );
}

#[test]
fn a_cap_req_without_ls_holds_registration_until_cap_end() {
    let mut w = Mixed::new(config());
    let i = w.irc_raw();
    w.send(i, "CAP REQ :server-time\r\nNICK ann\r\nUSER ann 0 * :A\r\n");
    let lines = w.lines(i);
    assert_eq!(lines, [":irc.test CAP * ACK :server-time"]);
    w.send(i, "CAP END\r\n");
    assert!(has(&w.lines(i), " 001 ann "));
}

#[test]
fn each_labelled_batch_of_a_connection_has_its_own_name() {
    let mut w = Mixed::new(config());
    let ann = irc_with(&mut w, "ann", "batch labeled-response");
    let mut heads = Vec::new();
    for label in ["a", "b"] {
        w.send(ann, &format!("@label={label} LIST\r\n"));
        let lines = w.lines(ann);
        assert_eq!(lines.len(), 4, "{lines:?}");
        heads.push(lines[0].clone());
    }
    assert_eq!(
        heads,
        [
            "@label=a :irc.test BATCH +lr1 labeled-response",
            "@label=b :irc.test BATCH +lr2 labeled-response"
        ]
    );
}

#[test]
fn irc_pings_and_pongs_cost_a_tenth_of_a_command() {
    let mut w = Mixed::new(Config {
        msg_rate: 10,
        msg_burst: 2,
        ..config()
    });
    let i = w.irc("bob");
    w.now += Duration::from_secs(1);
    w.server.handle_timeout(w.now);
    w.pump();
    w.lines(i);
    let pongs = |lines: Vec<String>| lines.iter().filter(|l| l.contains(" PONG ")).count();
    // As for native pings (tests.rs): a burst of two intervals' worth is ten, plus the one
    // the edge admits, then ten more per interval. At full cost it would be two, then one.
    let many: String = (0..15)
        .map(|t| format!("PING {t}\r\nPONG {t}\r\n"))
        .collect();
    w.send(i, &many);
    assert_eq!(
        pongs(w.lines(i)),
        6,
        "11 requests: six pings and five pongs"
    );
    w.now += Duration::from_millis(100);
    w.server.handle_timeout(w.now);
    w.pump();
    assert_eq!(pongs(w.lines(i)), 5, "ten more requests");
}

#[test]
fn every_command_irc_md_lists_is_known_once_registered_and_none_before() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    let commands = [
        "JOIN",
        "PART",
        "PRIVMSG",
        "NOTICE",
        "NAMES",
        "LIST",
        "TOPIC",
        "WHO",
        "WHOIS",
        "AWAY",
        "KICK",
        "MODE",
        "INVITE",
        "ISON",
        "USERHOST",
        "LUSERS",
        "MOTD",
        "VERSION",
        "TIME",
        "ADMIN",
        "INFO",
        "HELP",
        "HELPOP",
        "OPER",
        "KILL",
        "WHOWAS",
        "LINKS",
        "WALLOPS",
        "SETNAME",
        "CHATHISTORY",
        "TAGMSG",
        "PONG",
        "CAP LIST",
        "PING x",
        "PASS",
        "USER",
    ];
    for cmd in commands {
        w.send(i, &format!("{cmd}\r\n"));
        let lines = w.lines(i);
        assert!(!has(&lines, " 421 "), "{cmd}: {lines:?}");
        assert!(!has(&lines, " 451 "), "{cmd}: {lines:?}");
    }
    // Before registration: 451 for all but registration's own and PING, PONG, QUIT.
    let j = w.irc_raw();
    for cmd in commands {
        w.send(j, &format!("{cmd}\r\n"));
        let lines = w.lines(j);
        let before = ["CAP", "PING", "PONG", "PASS", "USER"];
        let word = cmd.split(' ').next().unwrap_or(cmd);
        let expect = !before.contains(&word);
        assert_eq!(
            has(&lines, " 451 * :You have not registered"),
            expect,
            "{cmd}: {lines:?}"
        );
    }
    w.send(i, "QUIT :bye\r\n");
    assert!(has(&w.lines(i), "ERROR :Closing Link: goodbye"));
    w.send(j, "QUIT\r\n");
    assert!(has(&w.lines(j), "ERROR :Closing Link: goodbye"));
}

#[test]
fn an_unknown_command_is_shown_back_without_control_characters_and_cut() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    w.send(i, "FO\x07O\r\n");
    assert_eq!(w.lines(i), [":irc.test 421 ann FOO :Unknown command"]);
    let long = "X".repeat(40);
    w.send(i, &format!("{long}\r\n"));
    let shown = "X".repeat(32);
    assert_eq!(
        w.lines(i),
        [format!(":irc.test 421 ann {shown} :Unknown command")]
    );
}

#[test]
fn join_0_leaves_every_channel_and_empty_list_entries_are_skipped() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    let j = w.irc("bob");
    w.send(i, "JOIN ,#a,,#b,\r\n");
    w.send(j, "JOIN #a,#b\r\n");
    let lines = w.lines(i);
    assert!(has(&lines, ":ann!~ann@irc.test JOIN #a") && has(&lines, ":ann!~ann@irc.test JOIN #b"));
    assert!(!has(&lines, " 403 "), "{lines:?}");
    w.lines(j);
    w.send(i, "PART #a,,\r\n");
    assert_eq!(w.lines(j), [":ann!~ann@irc.test PART #a"]);
    w.send(i, "JOIN #a\r\n");
    w.lines(i);
    w.lines(j);
    w.send(i, "JOIN 0\r\n");
    w.lines(i);
    let mut parts = w.lines(j);
    parts.sort();
    assert_eq!(
        parts,
        [":ann!~ann@irc.test PART #a", ":ann!~ann@irc.test PART #b"]
    );
    w.send(i, "JOIN\r\n");
    assert_eq!(
        w.lines(i),
        [":irc.test 461 ann JOIN :Not enough parameters"]
    );
}

#[test]
fn privmsg_errors_are_told_and_notice_errors_never() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    for (line, reply) in [
        ("PRIVMSG", ":irc.test 411 ann :No recipient given (PRIVMSG)"),
        ("PRIVMSG bob", ":irc.test 412 ann :No text to send"),
        (
            "PRIVMSG nobody :hi",
            ":irc.test 401 ann nobody :No such nick/channel",
        ),
        (
            "PRIVMSG #nowhere :hi",
            ":irc.test 403 ann #nowhere :No such channel",
        ),
        (
            "PRIVMSG ann :a\0b",
            ":irc.test 400 ann PRIVMSG :PRIVMSG text may not hold a NUL or a bare CR; not sent",
        ),
    ] {
        w.send(i, &format!("{line}\r\n"));
        assert_eq!(w.lines(i), [reply], "{line}");
    }
    for line in [
        "NOTICE",
        "NOTICE bob",
        "NOTICE nobody :hi",
        "NOTICE #nowhere :hi",
        "NOTICE ann :a\0b",
    ] {
        w.send(i, &format!("{line}\r\n"));
        assert!(w.lines(i).is_empty(), "{line}");
    }
}

#[test]
fn away_with_and_without_a_message_gets_306_and_305() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    w.send(i, "AWAY :lunch\r\n");
    assert_eq!(
        w.lines(i),
        [":irc.test 306 ann :You have been marked as being away"]
    );
    w.send(i, "AWAY\r\n");
    assert_eq!(
        w.lines(i),
        [":irc.test 305 ann :You are no longer marked as being away"]
    );
}

#[test]
fn user_modes_are_ones_own_i_and_w_and_dropping_o() {
    let mut w = Mixed::new(Config {
        operators: vec![("root".into(), crate::sha256::hex_digest(b"pw"))],
        ..config()
    });
    let i = w.irc("ann");
    w.irc("bob");
    w.send(i, "MODE bob +i\r\nMODE nobody +i\r\nMODE ann\r\n");
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 502 ann :Can't change mode for other users",
            ":irc.test 401 ann nobody :No such nick/channel",
            ":irc.test 221 ann :+",
        ]
    );
    // Letters in order, each sign holding until the next; only changes are told.
    w.send(i, "MODE ann +iw-w+o\r\nMODE ann\r\nMODE ann +i\r\n");
    assert_eq!(
        w.lines(i),
        [":ann MODE ann :+i+w-w", ":irc.test 221 ann :+i"]
    );
    w.send(i, "MODE ann -i+xw\r\nMODE ann\r\n");
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 501 ann :Unknown MODE flag",
            ":ann MODE ann :-i+w",
            ":irc.test 221 ann :+w"
        ]
    );
    // `+o` comes from OPER only, once; `-o` drops it.
    w.send(i, "OPER root pw\r\nOPER root pw\r\nMODE ann\r\n");
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 381 ann :You are now an IRC operator",
            ":ann MODE ann :+o",
            ":irc.test 381 ann :You are now an IRC operator",
            ":irc.test 221 ann :+ow"
        ]
    );
    w.send(i, "MODE ann -o\r\nMODE ann\r\n");
    assert_eq!(w.lines(i), [":ann MODE ann :-o", ":irc.test 221 ann :+w"]);
    for bad in ["OPER root", "OPER root nope", "OPER toor pw"] {
        w.send(i, &format!("{bad}\r\n"));
        let lines = w.lines(i);
        assert!(
            has(&lines, " 461 ann OPER ") || has(&lines, " 464 ann :Password incorrect"),
            "{bad}: {lines:?}"
        );
        assert!(!has(&lines, " 381 "), "{bad}: {lines:?}");
    }
}

#[test]
fn kick_pairs_channels_and_nicks_and_says_who_is_not_there() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    let j = w.irc("bob");
    let k = w.irc("cat");
    w.send(i, "JOIN #a,#b\r\n");
    w.send(j, "JOIN #a,#b\r\n");
    w.send(k, "JOIN #a\r\n");
    for x in [i, j, k] {
        w.lines(x);
    }
    w.send(i, "KICK\r\nKICK #a\r\nKICK #b cat\r\n");
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 461 ann KICK :Not enough parameters",
            ":irc.test 461 ann KICK :Not enough parameters",
            ":irc.test 441 ann cat #b :They aren't on that channel",
        ]
    );
    // One channel, several nicks: each from it (an empty name skipped); the reason
    // defaults to the kicker's nick.
    w.send(i, "KICK #a bob,,cat\r\n");
    assert_eq!(
        w.lines(k),
        [
            ":ann!~ann@irc.test KICK #a bob :ann",
            ":ann!~ann@irc.test KICK #a cat :ann"
        ]
    );
    // Several channels: paired in order, a nick without a channel left alone.
    w.send(j, "JOIN #a\r\n");
    w.lines(j);
    w.send(i, "KICK #a,,#b bob,bob,cat :out\r\n");
    assert_eq!(
        w.lines(j),
        [
            ":ann!~ann@irc.test KICK #a bob :out",
            ":ann!~ann@irc.test KICK #b bob :out"
        ]
    );
    // A non-member's KICK is refused as in native.
    w.send(k, "KICK #b ann\r\n");
    assert!(has(&w.lines(k), " 442 cat #b "));
}

#[test]
fn room_mode_lists_and_refusals_name_what_was_wrong() {
    let mut w = Mixed::new(config());
    let i = w.irc("ann");
    let j = w.irc("bob");
    w.send(i, "JOIN #r\r\nMODE #r +beI x!*@* y!*@* z!*@*\r\n");
    w.lines(i);
    for (asked, lines) in [
        (
            "b",
            vec!["367 ann #r :x!*@*", "368 ann #r :End of channel ban list"],
        ),
        (
            "+e",
            vec![
                "348 ann #r :y!*@*",
                "349 ann #r :End of channel exception list",
            ],
        ),
        (
            "I",
            vec![
                "346 ann #r :z!*@*",
                "347 ann #r :End of channel invite list",
            ],
        ),
    ] {
        w.send(i, &format!("MODE #r {asked}\r\n"));
        let want: Vec<String> = lines.iter().map(|l| format!(":irc.test {l}")).collect();
        assert_eq!(w.lines(i), want, "MODE #r {asked}");
    }
    // `+b` with another letter is a change, not the list: the ban without a mask is skipped.
    w.send(i, "MODE #r +bm\r\n");
    assert_eq!(w.lines(i), [":ann!~ann@irc.test MODE #r +m"]);
    // A nick missing or not in the channel, an unknown letter (a control one shown as
    // `?`), bad arguments: each says so, and the rest of the request still applies.
    w.send(i, "MODE #r +o\r\nMODE #r +ov bob\r\nMODE #r +Z\x01-m\r\n");
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 461 ann MODE :Not enough parameters",
            ":irc.test 441 ann bob #r :They aren't on that channel",
            ":irc.test 461 ann MODE :Not enough parameters",
            ":irc.test 472 ann Z :is unknown mode char to me",
            ":irc.test 472 ann ? :is unknown mode char to me",
            ":ann!~ann@irc.test MODE #r -m",
        ]
    );
    let long = "x".repeat(150);
    w.send(
        i,
        &format!("MODE #r +k a,b\r\nMODE #r +l :two words\r\nMODE #r +b {long}\r\n"),
    );
    let lines = w.lines(i);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(":irc.test 696 ann #r k * :"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(":irc.test 696 ann #r l * :"),
        "{lines:?}"
    );
    let shown = format!(":irc.test 696 ann #r b {} :", "x".repeat(100));
    assert!(lines[2].starts_with(&shown), "{lines:?}");
    // Not an operator: refused.
    w.send(j, "JOIN #r\r\n");
    w.lines(j);
    w.send(j, "MODE #r +m\r\n");
    assert!(has(&w.lines(j), " 482 bob #r "));
}

#[test]
fn invite_kill_setname_and_wallops_refuse_what_they_cannot_do() {
    let mut w = Mixed::new(Config {
        operators: vec![("root".into(), crate::sha256::hex_digest(b"pw"))],
        ..config()
    });
    let i = w.irc("ann");
    let j = w.irc("bob");
    let k = w.irc("cat");
    w.send(i, "JOIN #r\r\n");
    w.send(j, "JOIN #r\r\n");
    w.lines(i);
    w.lines(j);
    w.send(
        i,
        "INVITE bob\r\nINVITE bob #r\r\nSETNAME\r\nSETNAME :\r\nWALLOPS :hi\r\n",
    );
    assert_eq!(
        w.lines(i),
        [
            ":irc.test 461 ann INVITE :Not enough parameters",
            ":irc.test 443 ann bob #r :is already on channel",
            ":irc.test 461 ann SETNAME :Not enough parameters",
            ":irc.test 461 ann SETNAME :Not enough parameters",
            ":irc.test 481 ann :Permission Denied- You're not an IRC operator",
        ]
    );
    w.send(i, "OPER root pw\r\nWALLOPS :\r\nKILL\r\nKILL nobody\r\n");
    let lines = w.lines(i);
    assert_eq!(
        lines[2..],
        [
            ":irc.test 461 ann WALLOPS :Not enough parameters",
            ":irc.test 461 ann KILL :Not enough parameters",
            ":irc.test 401 ann nobody :No such nick/channel",
        ],
        "{lines:?}"
    );
    // A kill's reason loses its control characters; the victim's peers see it quit.
    w.send(i, "KILL cat :a\x01b\r\n");
    assert!(has(&w.lines(k), "ERROR :Closing Link: Killed (ann (ab))"));
    w.send(i, "KILL bob\r\n");
    assert!(has(
        &w.lines(i),
        ":bob!~bob@irc.test QUIT :Killed (ann (no reason))"
    ));
}

#[test]
fn time_tells_the_wall_clock_in_utc() {
    // The harness's clock starts at 2000-02-29 23:59:58 UTC: a leap day, a day's end.
    let mut w = Mixed::new(Config {
        wall_clock: Some((crate::test_clock::start(), Duration::from_secs(951_868_798))),
        ..config()
    });
    let i = w.irc("bob");
    w.send(i, "TIME\r\n");
    let lines = w.lines(i);
    assert!(
        has(
            &lines,
            " 391 bob irc.test 951868798 0 :2000-02-29 23:59:58 UTC"
        ),
        "{lines:?}"
    );
}

#[test]
fn a_message_to_a_list_of_only_empty_names_is_refused_not_dropped() {
    let mut w = Mixed::new(config());
    let i = w.irc("bob");
    w.send(i, "PRIVMSG , :hello\r\nNOTICE ,, :hello\r\n");
    let lines = w.lines(i);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        has(&lines, " 411 bob :No recipient given (PRIVMSG)"),
        "{lines:?}"
    );
}

#[test]
fn a_channels_creation_time_is_told_in_seconds_of_the_wall_clock() {
    let mut w = Mixed::new(Config {
        wall_clock: Some((crate::test_clock::start(), Duration::from_secs(1_000_000))),
        ..config()
    });
    let i = w.irc("bob");
    w.send(i, "JOIN #r\r\n");
    w.lines(i);
    w.send(i, "MODE #r\r\n");
    let lines = w.lines(i);
    assert!(
        lines.iter().any(|l| l == ":irc.test 329 bob #r :1000000"),
        "{lines:?}"
    );
}

#[test]
fn a_rule_turned_off_takes_no_argument_from_the_letters_after_it() {
    let mut w = Mixed::new(config());
    let o = w.irc("op");
    let v = w.irc("val");
    w.send(o, "JOIN #r\r\n");
    w.send(v, "JOIN #r\r\n");
    w.lines(o);
    // `-n` takes no argument: `val` is `+v`'s.
    w.send(o, "MODE #r -n+v val\r\n");
    let lines = w.lines(o);
    assert!(
        has(&lines, ":op!~op@irc.test MODE #r -n+v val"),
        "{lines:?}"
    );
}
