//! Unit tests of the IRCv3 history front: server-time and msgid tags, replay batches and
//! `CHATHISTORY` with its order of checks.

use std::collections::HashMap;
use std::time::Duration;

use super::irc_harness::{config, has, RawIrc};
use super::*;
use crate::history::{format_iso, HistoryOptions, StoreOp, StoredMessage};

const T0_MS: u64 = 1_700_000_000_000;

/// The raw IRC harness with a store in memory that runs when told to.
struct H {
    raw: RawIrc,
    rooms: HashMap<String, Vec<StoredMessage>>,
}

impl std::ops::Deref for H {
    type Target = RawIrc;
    fn deref(&self) -> &RawIrc {
        &self.raw
    }
}

impl std::ops::DerefMut for H {
    fn deref_mut(&mut self) -> &mut RawIrc {
        &mut self.raw
    }
}

impl H {
    fn new(history: bool) -> H {
        let now = crate::test_clock::start();
        let mut server = Server::new(config());
        if history {
            server.enable_history(HistoryOptions::default(), now, T0_MS, Vec::new());
        }
        H {
            raw: RawIrc::with(server, now),
            rooms: HashMap::new(),
        }
    }

    /// Runs every queued op as a store would (`Range::select` is the reference).
    fn run_store(&mut self) {
        let ops = std::mem::take(&mut self.queue);
        let Some(last) = ops.last().map(StoreOp::op) else {
            return;
        };
        for op in ops {
            match op {
                StoreOp::Append { key, message, .. } => {
                    self.rooms.entry(key).or_default().push(message)
                }
                StoreOp::Query {
                    op,
                    key,
                    range,
                    limit,
                } => {
                    let all = self.rooms.get(&key).cloned().unwrap_or_default();
                    self.server
                        .handle_history(op, range.select(&all, limit as usize));
                }
                StoreOp::Load {
                    op, key, before, ..
                } => {
                    let all = self.rooms.get(&key).cloned().unwrap_or_default();
                    let rows = all.into_iter().filter(|m| m.id < before).collect();
                    self.server.handle_history(op, rows);
                }
                StoreOp::SetTopic { .. } => {}
            }
        }
        self.server.handle_stored(last);
        self.pump();
    }

    fn fail_store(&mut self) {
        for op in std::mem::take(&mut self.queue) {
            self.server.handle_store_error(op.op(), "disk on fire");
        }
        self.pump();
    }

    /// `id` says `m0`... `m{n-1}` in `#r`, 10 ms apart, from T0 + 10 ms; all stored.
    fn say_many(&mut self, id: ConnId, n: usize) {
        for k in 0..n {
            self.tick(10);
            self.send(id, &format!("PRIVMSG #r :m{k}\r\n"));
        }
        self.run_store();
        self.take(id);
    }

    /// Sends a CHATHISTORY query, runs the store, and returns the answer's lines.
    fn ask(&mut self, id: ConnId, line: &str) -> Vec<String> {
        self.send(id, &format!("{line}\r\n"));
        self.run_store();
        self.take(id)
    }
}

/// The `time` tag of message `k` said by `say_many`.
fn time_of(k: u64) -> String {
    format_iso(T0_MS + 10 * (k + 1))
}

/// The texts of the messages in a `chathistory` batch, checking its frame and tags.
fn batch_texts(lines: &[String]) -> Vec<String> {
    let (first, rest) = lines.split_first().expect("an answer");
    let open = first
        .strip_prefix(":irc.test BATCH +")
        .and_then(|r| r.strip_suffix(" chathistory #r"))
        .unwrap_or_else(|| panic!("not a batch start: {lines:?}"));
    let (last, inner) = rest.split_last().expect("a batch end");
    assert_eq!(last, &format!(":irc.test BATCH -{open}"));
    inner
        .iter()
        .map(|l| {
            let tag = format!("@batch={open};time=");
            assert!(l.starts_with(&tag), "{l}");
            assert!(l.contains(";msgid=r~"), "{l}");
            let text = l.split(" PRIVMSG #r :").nth(1).expect("a PRIVMSG");
            // The id and time match the message's.
            let k: u64 = text[1..].parse().expect("m<k>");
            assert!(
                l.contains(&format!("time={};msgid=r~{} ", time_of(k), k + 1)),
                "{l}"
            );
            text.to_owned()
        })
        .collect()
}

fn texts(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|k| format!("m{k}")).collect()
}

const ALL_CAPS: &str = "batch draft/chathistory echo-message labeled-response message-tags \
                        server-time";

#[test]
fn capabilities_and_isupport_follow_history() {
    let mut h = H::new(true);
    let now = h.now;
    let id = h.server.open(now);
    h.send(id, "CAP LS 302\r\nNICK a\r\nUSER a 0 * :a\r\nCAP END\r\n");
    let lines = h.take(id);
    assert!(has(&lines, " draft/chathistory "), "{lines:?}");
    assert!(has(&lines, " message-tags "), "{lines:?}");
    assert!(has(&lines, " server-time "), "{lines:?}");
    assert!(
        has(&lines, " CHATHISTORY=200 MSGREFTYPES=msgid,timestamp "),
        "{lines:?}"
    );
    // Client-only tags are relayed.
    assert!(!has(&lines, "CLIENTTAGDENY"), "{lines:?}");

    let mut h = H::new(false);
    let now = h.now;
    let id = h.server.open(now);
    h.send(id, "CAP LS 302\r\nCAP REQ draft/chathistory\r\n");
    let lines = h.take(id);
    assert!(!has(&lines, "chathistory "), "{lines:?}");
    assert!(has(&lines, " NAK :draft/chathistory"), "{lines:?}");
    h.send(id, "NICK a\r\nUSER a 0 * :a\r\nCAP END\r\n");
    let lines = h.take(id);
    assert!(!has(&lines, "CHATHISTORY="), "{lines:?}");
    h.send(id, "CHATHISTORY LATEST #r * 10\r\n");
    assert_eq!(
        h.take(id),
        [":irc.test FAIL CHATHISTORY MESSAGE_ERROR LATEST * :this server keeps no history"]
    );
}

#[test]
fn live_messages_carry_time_and_msgid_as_each_recipient_asked() {
    for history in [true, false] {
        let mut h = H::new(history);
        if !history {
            // The clock comes from the configuration instead.
            h.server.config.wall_clock = Some((h.now, Duration::from_millis(T0_MS)));
        }
        let a = h.irc(
            "a",
            "echo-message labeled-response message-tags server-time",
        );
        let b = h.irc("b", "server-time");
        let c = h.irc("c", "");
        let d = h.irc("d", "message-tags");
        for id in [a, b, c, d] {
            h.send(id, "JOIN #r\r\n");
            h.run_store();
        }
        for id in [a, b, c, d] {
            h.take(id);
        }
        h.tick(5);
        h.send(a, "PRIVMSG #r :hi\r\n");
        let time = format_iso(T0_MS + 5);
        let line = "a!~a@irc.test PRIVMSG #r :hi";
        assert_eq!(h.take(a), [format!("@time={time};msgid=r~1 :{line}")]);
        assert_eq!(h.take(b), [format!("@time={time} :{line}")]);
        assert_eq!(h.take(c), [format!(":{line}")]);
        assert_eq!(h.take(d), [format!("@msgid=r~1 :{line}")]);
        // A label joins the tags of the labelled echo.
        h.tick(1);
        h.send(a, "@label=L1 PRIVMSG #r :again\r\n");
        let time = format_iso(T0_MS + 6);
        assert_eq!(
            h.take(a),
            [format!(
                "@label=L1;time={time};msgid=r~2 :a!~a@irc.test PRIVMSG #r :again"
            )]
        );
        h.take(b);
        // Direct messages get a time but no msgid: they are not stored.
        h.send(a, "PRIVMSG b :psst\r\n");
        assert_eq!(
            h.take(b),
            [format!("@time={time} :a!~a@irc.test PRIVMSG b :psst")]
        );
    }
}

#[test]
fn chathistory_subcommands_select_as_the_spec_says() {
    let mut h = H::new(true);
    let a = h.irc("a", ALL_CAPS);
    h.send(a, "JOIN #r\r\n");
    h.take(a);
    h.say_many(a, 10);
    let q = |h: &mut H, line: &str| batch_texts(&h.ask(a, line));
    assert_eq!(q(&mut h, "CHATHISTORY LATEST #r * 20"), texts(0..10));
    assert_eq!(q(&mut h, "chathistory latest #R * 3"), texts(7..10));
    assert_eq!(
        q(&mut h, "CHATHISTORY LATEST #r msgid=r~5 20"),
        texts(5..10)
    );
    let t4 = time_of(4);
    let line = format!("CHATHISTORY LATEST #r timestamp={t4} 20");
    assert_eq!(q(&mut h, &line), texts(5..10));
    assert_eq!(q(&mut h, "CHATHISTORY BEFORE #r msgid=r~7 20"), texts(0..6));
    let t6 = time_of(6);
    let line = format!("CHATHISTORY BEFORE #r timestamp={t6} 2");
    assert_eq!(q(&mut h, &line), texts(4..6));
    assert_eq!(q(&mut h, "CHATHISTORY AFTER #r msgid=r~4 3"), texts(4..7));
    let t3 = time_of(3);
    let line = format!("CHATHISTORY AFTER #r timestamp={t3} 20");
    assert_eq!(q(&mut h, &line), texts(4..10));
    let between = "CHATHISTORY BETWEEN #r msgid=r~1 msgid=r~10";
    assert_eq!(q(&mut h, &format!("{between} 20")), texts(1..9));
    assert_eq!(q(&mut h, &format!("{between} 3")), texts(1..4));
    let back = "CHATHISTORY BETWEEN #r msgid=r~10 msgid=r~1";
    assert_eq!(q(&mut h, &format!("{back} 20")), texts(1..9));
    assert_eq!(q(&mut h, &format!("{back} 3")), texts(6..9));
    let (t0, t9) = (time_of(0), time_of(9));
    let line = format!("CHATHISTORY BETWEEN #r timestamp={t9} timestamp={t0} 3");
    assert_eq!(q(&mut h, &line), texts(6..9));
    assert_eq!(q(&mut h, "CHATHISTORY AROUND #r msgid=r~8 1"), texts(7..8));
    assert_eq!(q(&mut h, "CHATHISTORY AROUND #r msgid=r~8 3"), texts(6..9));
    let t7 = time_of(7);
    let line = format!("CHATHISTORY AROUND #r timestamp={t7} 3");
    assert_eq!(q(&mut h, &line), texts(6..9));
    // Nothing there: an empty batch.
    assert_eq!(q(&mut h, "CHATHISTORY AFTER #r msgid=r~10 5"), texts(0..0));
}

#[test]
fn chathistory_checks_come_in_the_documented_order() {
    let mut h = H::new(true);
    let a = h.irc("a", ALL_CAPS);
    let b = h.irc("b", "");
    h.send(a, "JOIN #r\r\n");
    h.send(b, "JOIN #other\r\n");
    h.say_many(a, 2);
    let fail = |h: &mut H, line: &str| -> String {
        h.send(a, &format!("{line}\r\n"));
        assert!(h.queue.is_empty(), "{line}: no store op for a refusal");
        let lines = h.take(a);
        assert_eq!(lines.len(), 1, "{line}: {lines:?}");
        let rest = lines[0].strip_prefix(":irc.test FAIL CHATHISTORY ");
        let rest = rest.unwrap_or_else(|| panic!("{line}: {lines:?}"));
        // Code and context, without the text.
        rest.split(" :").next().unwrap_or("").to_owned()
    };
    let cases = [
        ("CHATHISTORY", "NEED_MORE_PARAMS"),
        ("CHATHISTORY PLAYBACK #r * 10", "INVALID_PARAMS PLAYBACK"),
        ("CHATHISTORY LATEST #r *", "NEED_MORE_PARAMS LATEST"),
        (
            "CHATHISTORY BETWEEN #r msgid=r~1 10",
            "NEED_MORE_PARAMS BETWEEN",
        ),
        (
            "CHATHISTORY LATEST #other * 10",
            "INVALID_TARGET LATEST #other",
        ),
        (
            "CHATHISTORY LATEST #nowhere * 10",
            "INVALID_TARGET LATEST #nowhere",
        ),
        (
            "CHATHISTORY LATEST #bad! * 10",
            "INVALID_TARGET LATEST #bad!",
        ),
        ("CHATHISTORY LATEST b * 10", "INVALID_TARGET LATEST b"),
        ("CHATHISTORY BEFORE #r * 10", "INVALID_PARAMS BEFORE *"),
        (
            "CHATHISTORY BEFORE #r msgid=other~1 10",
            "INVALID_PARAMS BEFORE msgid=other~1",
        ),
        (
            "CHATHISTORY BEFORE #r msgid=r~3 10",
            "INVALID_PARAMS BEFORE msgid=r~3",
        ),
        (
            "CHATHISTORY BEFORE #r msgid=r~x 10",
            "INVALID_PARAMS BEFORE msgid=r~x",
        ),
        (
            "CHATHISTORY AFTER #r timestamp=yesterday 10",
            "INVALID_PARAMS AFTER timestamp=yesterday",
        ),
        ("CHATHISTORY AROUND #r 5 10", "INVALID_PARAMS AROUND 5"),
        ("CHATHISTORY LATEST #r * 0", "INVALID_PARAMS LATEST 0"),
        ("CHATHISTORY LATEST #r * 201", "INVALID_PARAMS LATEST 201"),
        ("CHATHISTORY LATEST #r * -1", "INVALID_PARAMS LATEST -1"),
        (
            "CHATHISTORY TARGETS msgid=r~1 timestamp=2020-01-01T00:00:00Z 5",
            "INVALID_PARAMS TARGETS msgid=r~1",
        ),
        (
            "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00Z * 5",
            "INVALID_PARAMS TARGETS *",
        ),
        // Which wins: the target before the reference and the limit, the reference
        // before the limit, the first reference before the second.
        (
            "CHATHISTORY LATEST #nowhere bad 0",
            "INVALID_TARGET LATEST #nowhere",
        ),
        ("CHATHISTORY BEFORE #r bad 0", "INVALID_PARAMS BEFORE bad"),
        (
            "CHATHISTORY BETWEEN #r first second 0",
            "INVALID_PARAMS BETWEEN first",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(fail(&mut h, line), want, "{line}");
    }
}

#[test]
fn targets_lists_joined_rooms_by_their_newest_message() {
    let mut h = H::new(true);
    let a = h.irc("a", ALL_CAPS);
    h.send(a, "JOIN #r1,#r2,#r3\r\n");
    let mut times = Vec::new();
    for room in ["r1", "r2", "r1"] {
        h.tick(10);
        times.push(format_iso(h.server.wall_ms(h.now).unwrap_or(0)));
        h.send(a, &format!("PRIVMSG #{room} :hi\r\n"));
    }
    h.run_store();
    h.take(a);
    let wide = "timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z";
    let lines = h.ask(a, &format!("CHATHISTORY TARGETS {wide} 10"));
    let open = lines[0].clone();
    assert!(open.ends_with(" draft/chathistory-targets"), "{lines:?}");
    let tag = open
        .split('+')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("");
    assert_eq!(
        lines[1..],
        [
            format!(
                "@batch={tag} :irc.test CHATHISTORY TARGETS #r2 {}",
                times[1]
            ),
            format!(
                "@batch={tag} :irc.test CHATHISTORY TARGETS #r1 {}",
                times[2]
            ),
            format!(":irc.test BATCH -{tag}"),
        ]
    );
    let rooms = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split("TARGETS ").nth(1))
            .map(|r| r.split(' ').next().unwrap_or("").to_owned())
            .collect()
    };
    let lines = h.ask(a, &format!("CHATHISTORY TARGETS {wide} 1"));
    assert_eq!(rooms(lines), ["#r2"]);
    // Both ends are exclusive, in either order.
    let line = format!(
        "CHATHISTORY TARGETS timestamp={} timestamp=2262-01-01T00:00:00Z 10",
        times[1]
    );
    assert_eq!(rooms(h.ask(a, &line)), ["#r1"]);
    let line = format!(
        "CHATHISTORY TARGETS timestamp={} timestamp=2020-01-01T00:00:00Z 10",
        times[2]
    );
    assert_eq!(rooms(h.ask(a, &line)), ["#r2"]);
}

#[test]
fn join_replays_follow_the_joiners_capabilities() {
    let mut h = H::new(true);
    let a = h.irc("a", "");
    h.send(a, "JOIN #r\r\n");
    h.say_many(a, 2);
    // batch, server-time and message-tags: a batch, tags, no stamp in the text.
    let b = h.irc("b", "batch message-tags server-time");
    h.send(b, "JOIN #r\r\n");
    h.run_store();
    let lines = h.take(b);
    let at = lines
        .iter()
        .position(|l| l.contains(" 366 "))
        .unwrap_or(lines.len());
    assert_eq!(
        lines[at + 1..],
        [
            ":irc.test BATCH +h1 chathistory #r".to_owned(),
            format!(
                "@batch=h1;time={};msgid=r~1 :a!history@irc.test PRIVMSG #r :m0",
                time_of(0)
            ),
            format!(
                "@batch=h1;time={};msgid=r~2 :a!history@irc.test PRIVMSG #r :m1",
                time_of(1)
            ),
            ":irc.test BATCH -h1".to_owned(),
        ]
    );
    // draft/chathistory: no replay, and nothing waits for the store.
    let c = h.irc("c", "batch draft/chathistory server-time");
    h.send(c, "JOIN #r\r\n");
    assert!(h.queue.is_empty());
    let lines = h.take(c);
    assert!(
        lines.last().is_some_and(|l| l.contains(" 366 ")),
        "{lines:?}"
    );
    // batch alone: the time goes in the text.
    let d = h.irc("d", "batch");
    h.send(d, "JOIN #r\r\n");
    h.run_store();
    let lines = h.take(d);
    assert!(
        has(
            &lines,
            "@batch=h1 :a!history@irc.test PRIVMSG #r :[2023-11-14 22:13:20] m0"
        ),
        "{lines:?}"
    );
}

#[test]
fn a_label_rides_on_the_batch_and_a_failed_query_is_a_message_error() {
    let mut h = H::new(true);
    let a = h.irc("a", ALL_CAPS);
    h.send(a, "JOIN #r\r\n");
    h.say_many(a, 1);
    let lines = h.ask(a, "@label=q1 CHATHISTORY LATEST #r * 5");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("@label=q1 :irc.test BATCH +") && lines[0].ends_with(" #r"),
        "{lines:?}"
    );
    h.send(a, "@label=q2 CHATHISTORY LATEST #r * 5\r\n");
    h.fail_store();
    assert_eq!(
        h.take(a),
        [
            "@label=q2 :irc.test FAIL CHATHISTORY MESSAGE_ERROR LATEST #r :history of #r \
          unavailable: disk on fire"
        ]
    );
    // Refusals are labelled as any one-line answer.
    h.send(a, "@label=q3 CHATHISTORY LATEST #r * 0\r\n");
    let lines = h.take(a);
    assert!(
        lines.len() == 1 && lines[0].starts_with("@label=q3 :irc.test FAIL CHATHISTORY "),
        "{lines:?}"
    );
}

#[test]
fn msgids_name_their_room_and_id_only() {
    assert_eq!(irc::msgid("a-1", 2), "a-1~2");
    assert_eq!(irc::parse_msgid("a-1~2"), Some(("a-1", 2)));
    assert_eq!(irc::parse_msgid("a~b~12"), Some(("a~b", 12)));
    for bad in ["", "~1", "a~", "a~0", "a~01", "a~+1", "a~1x", "a"] {
        assert_eq!(irc::parse_msgid(bad), None, "{bad}");
    }
}

#[test]
fn client_only_tags_and_tagmsg_reach_message_tags_clients_only() {
    let mut h = H::new(true);
    let a = h.irc("a", "echo-message message-tags");
    let b = h.irc("b", "message-tags server-time");
    let c = h.irc("c", "server-time");
    for id in [a, b, c] {
        h.send(id, "JOIN #r\r\n");
        h.run_store();
    }
    for id in [a, b, c] {
        h.take(id);
    }
    h.send(a, "@+draft/reply=r~1;secret=x;label=no PRIVMSG #r :hi\r\n");
    let time = format_iso(T0_MS);
    let line = "a!~a@irc.test PRIVMSG #r :hi";
    assert_eq!(h.take(a), [format!("@msgid=r~1;+draft/reply=r~1 :{line}")]);
    assert_eq!(
        h.take(b),
        [format!("@time={time};msgid=r~1;+draft/reply=r~1 :{line}")]
    );
    assert_eq!(h.take(c), [format!("@time={time} :{line}")]);
    // TAGMSG: only for message-tags clients, with a fresh msgid.
    h.send(a, "@+typing=active TAGMSG #r\r\n");
    let echo = h.take(a);
    assert_eq!(echo.len(), 1, "{echo:?}");
    assert!(
        echo[0].starts_with("@msgid=d1.")
            && echo[0].ends_with(";+typing=active :a!~a@irc.test TAGMSG #r"),
        "{echo:?}"
    );
    let got = h.take(b);
    assert!(
        got.len() == 1 && got[0].starts_with(&format!("@time={time};msgid=d1.")),
        "{got:?}"
    );
    assert!(h.take(c).is_empty());
    // Direct messages get their own msgids; TAGMSG to nobody or a closed room is refused.
    h.send(a, "PRIVMSG b :psst\r\n");
    let got = h.take(b);
    assert!(got.len() == 1 && got[0].contains(";msgid=d2."), "{got:?}");
    let echo = h.take(a);
    assert!(
        echo.len() == 1 && echo[0].starts_with("@msgid=d2."),
        "{echo:?}"
    );
    h.send(a, "TAGMSG nobody\r\n");
    assert_eq!(h.take(a), [":irc.test 401 a nobody :No such nick/channel"]);
    h.send(c, "PART #r\r\n");
    h.take(c);
    h.send(c, "TAGMSG #r\r\n");
    assert_eq!(h.take(c), [":irc.test 404 c #r :Cannot send to channel"]);
    h.send(c, "TAGMSG\r\n");
    assert_eq!(h.take(c), [":irc.test 461 c TAGMSG :Not enough parameters"]);
    // Nothing of it was stored.
    h.run_store();
    assert_eq!(h.rooms["r"].len(), 1);
}

#[test]
fn a_split_message_has_its_msgid_and_client_tags_on_the_first_line_only() {
    let lines = b":a!~a@s PRIVMSG #r :part one\r\n:a!~a@s PRIVMSG #r :part two\r\n";
    let tagged = irc::with_tags(lines, Some(T0_MS), Some("r~7"), Some("+x=1"));
    let time = format_iso(T0_MS);
    assert_eq!(
        String::from_utf8_lossy(&tagged),
        format!(
            "@time={time};msgid=r~7;+x=1 :a!~a@s PRIVMSG #r :part one\r\n\
             @time={time} :a!~a@s PRIVMSG #r :part two\r\n"
        )
    );
    let bare = irc::with_tags(lines, None, None, None);
    assert_eq!(&bare[..], &lines[..]);
}

#[test]
fn to_oneself_with_echo_message_the_labelled_echo_comes_then_the_delivery() {
    let mut h = H::new(true);
    let a = h.irc("a", "echo-message labeled-response message-tags");
    h.send(a, "@label=s1 PRIVMSG a :me\r\n");
    let lines = h.take(a);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("@label=s1;msgid=d1"), "{lines:?}");
    assert!(lines[1].starts_with("@msgid=d1"), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.ends_with(" PRIVMSG a :me")),
        "{lines:?}"
    );
    h.send(a, "@label=s2;+x=1 TAGMSG a\r\n");
    let lines = h.take(a);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("@label=s2;msgid=d2"), "{lines:?}");
    assert!(lines[1].starts_with("@msgid=d2"), "{lines:?}");
    // Without echo-message, one copy.
    let b = h.irc("b", "labeled-response");
    h.send(b, "@label=s3 PRIVMSG b :me\r\n");
    assert_eq!(h.take(b), ["@label=s3 :b!~b@irc.test PRIVMSG b :me"]);
}

#[test]
fn too_few_parameters_are_answered_with_the_subcommands_form() {
    let mut h = H::new(true);
    let a = h.irc("a", "");
    let cases = [
        (
            "BETWEEN #r msgid=r~1 5",
            "BETWEEN :missing parameters: CHATHISTORY BETWEEN <target> <reference> \
             <reference> <limit>",
        ),
        (
            "TARGETS timestamp=2020-01-01T00:00:00Z 5",
            "TARGETS :missing parameters: CHATHISTORY TARGETS <timestamp> <timestamp> <limit>",
        ),
        (
            "LATEST #r 5",
            "LATEST :missing parameters: CHATHISTORY LATEST <target> <* or reference> <limit>",
        ),
        (
            "AROUND #r",
            "AROUND :missing parameters: CHATHISTORY <subcommand> <target> <reference> <limit>",
        ),
    ];
    for (params, want) in cases {
        h.send(a, &format!("CHATHISTORY {params}\r\n"));
        assert_eq!(
            h.take(a),
            [format!(
                ":irc.test FAIL CHATHISTORY NEED_MORE_PARAMS {want}"
            )]
        );
    }
}

#[test]
fn an_unknown_subcommand_is_shown_back_without_control_characters() {
    let mut h = H::new(true);
    let a = h.irc("a", "");
    h.send(a, "CHATHISTORY PLAY\x01BACK\x7f #r * 10\r\n");
    let lines = h.take(a);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(":irc.test FAIL CHATHISTORY INVALID_PARAMS PLAYBACK :unknown"),
        "{lines:?}"
    );
}

#[test]
fn targets_without_batch_are_bare_lines() {
    let mut h = H::new(true);
    for caps in ["", "server-time"] {
        let a = h.irc(if caps.is_empty() { "a" } else { "b" }, caps);
        h.send(a, "JOIN #r1\r\nPRIVMSG #r1 :hi\r\n");
        h.run_store();
        h.take(a);
        let wide = "timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z";
        let lines = h.ask(a, &format!("CHATHISTORY TARGETS {wide} 10"));
        let time = format_iso(h.server.wall_ms(h.now).unwrap_or(0));
        assert_eq!(
            lines,
            [format!(":irc.test CHATHISTORY TARGETS #r1 {time}")],
            "{caps}"
        );
    }
}

#[test]
fn a_message_not_stored_is_told_to_an_irc_sender_as_a_server_notice() {
    let mut h = H::new(true);
    let a = h.irc("a", "");
    h.send(a, "JOIN #r\r\n");
    h.run_store();
    h.take(a);
    h.send(a, "PRIVMSG #r :lost?\r\n");
    h.fail_store();
    assert_eq!(
        h.take(a),
        [":irc.test NOTICE a :message 1 in `r` was delivered but not stored: disk on fire"]
    );
}

#[test]
fn a_failed_query_is_answered_ahead_of_what_arrived_while_it_waited() {
    let mut h = H::new(true);
    let a = h.irc("a", "draft/chathistory");
    let b = h.irc("b", "");
    h.send(a, "JOIN #r\r\n");
    h.send(b, "JOIN #r\r\n");
    h.run_store();
    h.take(a);
    h.send(a, "CHATHISTORY LATEST #r * 5\r\n");
    // Said while a's query is in the store's queue: held for a behind the answer.
    h.send(b, "PRIVMSG #r :live\r\n");
    assert_eq!(h.take(a), Vec::<String>::new());
    h.fail_store();
    assert_eq!(
        h.take(a),
        [
            ":irc.test FAIL CHATHISTORY MESSAGE_ERROR LATEST #r :history of #r unavailable: \
             disk on fire",
            ":b!~b@irc.test PRIVMSG #r :live",
        ]
    );
}

#[test]
fn without_batch_an_empty_labelled_answer_is_an_ack_and_messages_come_unbatched() {
    let mut h = H::new(true);
    let a = h.irc("a", "draft/chathistory labeled-response");
    h.send(a, "JOIN #r\r\n");
    h.run_store();
    h.take(a);
    assert_eq!(
        h.ask(a, "@label=q1 CHATHISTORY LATEST #r * 5"),
        ["@label=q1 :irc.test ACK"]
    );
    h.say_many(a, 1);
    assert_eq!(
        h.ask(a, "@label=q2 CHATHISTORY LATEST #r * 5"),
        [":a!history@irc.test PRIVMSG #r :[2023-11-14 22:13:20] m0"]
    );
}

#[test]
fn a_restored_room_keeps_its_creation_and_topic_times() {
    let now = crate::test_clock::start();
    let mut server = Server::new(Config {
        // This run started long after the room was made.
        wall_clock: Some((now, Duration::from_secs(1_800_000_000))),
        ..config()
    });
    let room = crate::history::RoomRecord {
        name: "r".into(),
        last_id: 4,
        created_ms: 1_234_567_890,
        topic: "old".into(),
        topic_by: "x".into(),
        topic_ms: 1_500_000_999,
        last_ms: 1_500_000_999,
    };
    server.enable_history(HistoryOptions::default(), now, T0_MS, vec![room]);
    let mut h = RawIrc::with(server, now);
    let a = h.irc("a", "draft/chathistory");
    h.send(a, "JOIN #r\r\n");
    let lines = h.take(a);
    assert!(has(&lines, " 332 a #r :old"), "{lines:?}");
    assert!(has(&lines, " 333 a #r x :1500000"), "{lines:?}");
    h.send(a, "MODE #r\r\n");
    let lines = h.take(a);
    assert_eq!(
        lines.last().map(String::as_str),
        Some(":irc.test 329 a #r :1234567")
    );
}

#[test]
fn a_restored_rooms_creation_time_shows_without_a_configured_wall_clock() {
    // History's own clock is enough: the 329 once showed 0, the minimum of the stored
    // time and this run's time unknown to `Config::wall_clock`.
    let now = crate::test_clock::start();
    let mut server = Server::new(config());
    let room = crate::history::RoomRecord {
        name: "r".into(),
        last_id: 0,
        created_ms: 1_234_567_890,
        topic: String::new(),
        topic_by: String::new(),
        topic_ms: 0,
        last_ms: 0,
    };
    server.enable_history(HistoryOptions::default(), now, T0_MS, vec![room]);
    let mut h = RawIrc::with(server, now);
    let a = h.irc("a", "");
    h.send(a, "JOIN #r\r\nMODE #r\r\nJOIN #new\r\nMODE #new\r\n");
    let lines = h.take(a);
    assert!(has(&lines, ":irc.test 329 a #r :1234567"), "{lines:?}");
    // A room this run made: now, by history's clock.
    let at = T0_MS / 1000;
    assert!(
        has(&lines, &format!(":irc.test 329 a #new :{at}")),
        "{lines:?}"
    );
}

#[test]
fn a_join_replay_is_a_batch_only_for_batch_clients_and_only_with_messages() {
    let mut h = H::new(true);
    let a = h.irc("a", "");
    h.send(a, "JOIN #r\r\n");
    h.say_many(a, 2);
    let b = h.irc("b", "");
    h.send(b, "JOIN #r\r\n");
    h.run_store();
    let lines = h.take(b);
    assert!(
        has(&lines, "PRIVMSG #r :[") && has(&lines, "] m1"),
        "{lines:?}"
    );
    assert!(!has(&lines, "BATCH"), "{lines:?}");
    let c = h.irc("c", "batch");
    h.send(c, "JOIN #empty\r\n");
    h.run_store();
    let lines = h.take(c);
    assert!(has(&lines, " 366 "), "{lines:?}");
    assert!(!has(&lines, "BATCH"), "{lines:?}");
}

#[test]
fn a_stored_message_longer_than_a_line_is_replayed_in_full_lines() {
    let now = crate::test_clock::start();
    let mut server = Server::new(config());
    let room = crate::history::RoomRecord {
        name: "long".into(),
        last_id: 1,
        created_ms: T0_MS,
        topic: String::new(),
        topic_by: String::new(),
        topic_ms: 0,
        last_ms: T0_MS,
    };
    server.enable_history(HistoryOptions::default(), now, T0_MS, vec![room]);
    let mut h = H {
        raw: RawIrc::with(server, now),
        rooms: HashMap::new(),
    };
    // Said by a native client: one message, longer than an IRC line.
    let text = "x".repeat(1_200);
    let row = StoredMessage {
        id: 1,
        time_ms: T0_MS,
        from: "nat".into(),
        text: text.clone(),
        notice: false,
    };
    h.rooms.insert("long".into(), vec![row]);
    let b = h.irc("b", "");
    h.send(b, "JOIN #long\r\n");
    h.run_store();
    let prefix = ":nat!history@irc.test PRIVMSG #long :";
    let lines: Vec<String> = h
        .take(b)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect();
    let stamped = format!("[{}] {text}", crate::history::format_utc(T0_MS));
    let parts: Vec<&str> = lines.iter().map(|l| &l[prefix.len()..]).collect();
    assert_eq!(parts.concat(), stamped, "nothing lost or added");
    // Each line but the last as long as a line may be (510 bytes before its CRLF).
    let lens: Vec<usize> = lines.iter().map(String::len).collect();
    let (last, full) = lens.split_last().expect("lines");
    assert!(
        full.len() == 2 && full.iter().all(|&n| n == 510),
        "{lens:?}"
    );
    assert!(*last < 510, "{lens:?}");
}
