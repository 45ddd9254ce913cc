//! Unit tests of `TAGMSG` and direct msgids, written against the mutants cargo-mutants
//! found no test noticing (see docs/TESTING.md, "Mutation testing").

use crate::server::irc_harness::RawIrc as H;

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
