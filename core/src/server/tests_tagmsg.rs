//! Unit tests of `TAGMSG` and direct msgids, written against the mutants cargo-mutants
//! found no test noticing (see docs/TESTING.md, "Mutation testing").

use std::collections::HashMap;
use std::time::Instant;

use super::super::Server;
use crate::{Config, ConnId};

/// A server without history or wall clock, with raw IRC connections.
struct H {
    server: Server,
    now: Instant,
    out: HashMap<ConnId, String>,
}

impl H {
    fn new() -> H {
        let config = Config {
            msg_rate: 0,
            server_name: "irc.test".into(),
            // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
            flush_delay: std::time::Duration::ZERO,
            ..Config::default()
        };
        H {
            server: Server::new(config),
            now: crate::test_clock::start(),
            out: HashMap::new(),
        }
    }

    /// A registered IRC client with the capabilities `caps` (space-separated), its
    /// welcome taken.
    fn irc(&mut self, nick: &str, caps: &str) -> ConnId {
        let id = self.server.open(self.now);
        let mut hello = String::new();
        if !caps.is_empty() {
            hello.push_str(&format!("CAP LS 302\r\nCAP REQ :{caps}\r\n"));
        }
        hello.push_str(&format!(
            "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\n"
        ));
        self.send(id, &hello);
        self.take(id);
        id
    }

    fn send(&mut self, id: ConnId, text: &str) {
        self.server.handle_input(id, text.as_bytes(), self.now);
        while let Some(t) = self.server.poll_transmit() {
            self.server.handle_written(t.conn, t.data.len());
            let text = String::from_utf8_lossy(&t.data).into_owned();
            self.out.entry(t.conn).or_default().push_str(&text);
        }
    }

    fn take(&mut self, id: ConnId) -> Vec<String> {
        let text = self.out.remove(&id).unwrap_or_default();
        text.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn a_tagmsg_to_a_nick_carries_the_client_tags_and_a_counted_msgid() {
    let mut h = H::new();
    let a = h.irc("a", "message-tags");
    let b = h.irc("b", "message-tags");
    let c = h.irc("c", "");
    h.send(a, "@+typing=active TAGMSG b\r\n");
    assert_eq!(
        h.take(b),
        ["@msgid=d1;+typing=active :a!~a@irc.test TAGMSG b"]
    );
    assert!(h.take(a).is_empty(), "no echo without echo-message");
    h.send(a, "@+typing=paused TAGMSG b\r\n");
    assert_eq!(
        h.take(b),
        ["@msgid=d2;+typing=paused :a!~a@irc.test TAGMSG b"]
    );
    // A client without message-tags gets nothing, but the target exists: no error.
    h.send(a, "@+typing=active TAGMSG c\r\n");
    assert!(h.take(c).is_empty());
    assert!(h.take(a).is_empty());
    // Without client tags, only the msgid; without echo-message, nothing to oneself.
    h.send(b, "TAGMSG a\r\n");
    assert_eq!(h.take(a), ["@msgid=d4 :b!~b@irc.test TAGMSG a"]);
    h.send(a, "TAGMSG a\r\n");
    assert!(h.take(a).is_empty());
}

#[test]
fn a_tagmsg_to_several_targets_reaches_each_and_refuses_each_bad_one() {
    let mut h = H::new();
    let a = h.irc("a", "message-tags");
    let b = h.irc("b", "message-tags");
    let c = h.irc("c", "message-tags");
    h.send(a, "JOIN #r\r\n");
    h.send(c, "JOIN #r\r\n");
    h.take(a);
    h.take(c);
    h.send(a, "TAGMSG #r,,b,#nowhere,nobody\r\n");
    assert_eq!(h.take(c), ["@msgid=d1 :a!~a@irc.test TAGMSG #r"]);
    assert_eq!(h.take(b), ["@msgid=d2 :a!~a@irc.test TAGMSG b"]);
    assert_eq!(
        h.take(a),
        [
            ":irc.test 403 a #nowhere :No such channel",
            ":irc.test 401 a nobody :No such nick/channel",
        ]
    );
}
