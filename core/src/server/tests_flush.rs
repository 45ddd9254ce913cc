//! Unit tests of output coalescing (`Flush` in mod.rs): output others caused waits for the
//! window (`Config::flush_delay`), a connection's own replies do not, nor a full queue.

use std::time::Duration;

use super::output_harness::World;
use super::*;
use crate::client::ClientEvent;

const DELAY: Duration = Duration::from_millis(1);

fn config(delay: Duration) -> Config {
    Config {
        msg_rate: 0,
        flush_delay: delay,
        ..Config::default()
    }
}

#[test]
fn room_messages_wait_for_the_deadline_and_not_past_it() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b, c) = (w.member("ann"), w.member("bob"), w.member("cat"));
    let t0 = w.now;
    w.say(a, "one");
    // The sender's echo is its own reply: out at once. The others' copies wait.
    assert_eq!(w.said(a), ["one"]);
    assert_eq!((w.writes(a), w.writes(b), w.writes(c)), (1, 0, 0));
    assert_eq!(w.server.poll_timeout(), Some(t0 + DELAY));
    // A second message in the window joins it: the deadline does not move.
    w.now = t0 + DELAY / 2;
    w.say(a, "two");
    assert_eq!(w.writes(a), 1);
    assert_eq!(w.server.poll_timeout(), Some(t0 + DELAY));
    // A timer run before the deadline releases nothing.
    w.at(t0 + DELAY - Duration::from_nanos(1));
    assert_eq!((w.writes(b), w.writes(c)), (0, 0));
    assert!(w.said(b).is_empty());
    // At the deadline each gets both messages, in order, in one write.
    w.at(t0 + DELAY);
    assert_eq!((w.writes(b), w.writes(c)), (1, 1));
    assert_eq!(w.said(b), ["one", "two"]);
    assert_eq!(w.said(c), ["one", "two"]);
    assert_eq!(w.writes(a), 0);
    // The window is closed: the next deadline is a keepalive, far off.
    assert!(w.server.poll_timeout().is_some_and(|t| t > w.now + DELAY));
}

#[test]
fn own_replies_go_at_once_with_what_waited_for_the_same_connection() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b) = (w.member("ann"), w.member("bob"));
    w.say(a, "hello");
    assert_eq!(w.writes(b), 0);
    // bob's own request (a member list) is answered in the same turn, and the message
    // that waited for bob goes with it, first, in the same write.
    w.clients[b].1.list_members("r");
    w.read(b);
    assert_eq!(w.writes(b), 1);
    let ev = w.events(b);
    assert!(
        matches!(ev.first(), Some(ClientEvent::Message { text, .. }) if text == "hello"),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| matches!(e, ClientEvent::Members { .. })),
        "{ev:?}"
    );
    // An error is a reply too.
    w.clients[b].1.say("elsewhere", "x");
    w.read(b);
    assert_eq!(w.writes(b), 1);
    assert!(
        w.events(b)
            .iter()
            .any(|e| matches!(e, ClientEvent::Error { .. })),
        "no error"
    );
    // What bob already took does not go out again when the window closes.
    w.run_window();
    assert_eq!(w.writes(b), 0);
}

#[test]
fn a_connection_with_a_full_write_queued_goes_at_once() {
    // The threshold is the smaller of max_transmit_bytes and outbound_high_water.
    let mut w = World::writing_at_once(Config {
        outbound_high_water: 600,
        ..config(DELAY)
    });
    let (a, b) = (w.member("ann"), w.member("bob"));
    let bob = w.id(b);
    let text = "x".repeat(100);
    let mut sent = 0;
    while w.writes(b) == 0 {
        assert!(sent < 10, "never released");
        w.say(a, &text);
        sent += 1;
        // Released the moment its queue reaches the threshold, not before.
        if w.server.outbound_bytes(bob) > 0 {
            assert!(w.server.outbound_bytes(bob) < 600);
        }
    }
    assert!(sent > 1, "released after {sent}");
    assert_eq!(w.said(b).len(), sent);
    assert_eq!(w.server.outbound_bytes(bob), 0);
}

#[test]
fn zero_delay_sends_at_once_and_the_same_bytes_as_with_a_window() {
    // The same script with and without a window: the bytes each client gets are the same;
    // only when they leave differs.
    let mut out = Vec::new();
    for delay in [Duration::ZERO, DELAY] {
        let mut w = World::writing_at_once(config(delay));
        let (a, b, c) = (w.member("ann"), w.member("bob"), w.member("cat"));
        let t0 = w.now;
        w.say(a, "one");
        w.say(b, "two");
        w.clients[c].1.leave("r", "bye");
        w.read(c);
        if delay.is_zero() {
            // Everyone's copy at once, and no deadline before the keepalive.
            assert_eq!((w.writes(a), w.writes(b), w.writes(c)), (3, 3, 3));
            assert!(w.server.poll_timeout().is_some_and(|t| t > t0 + DELAY));
        } else {
            assert_eq!(w.server.poll_timeout(), Some(t0 + DELAY));
            w.run_window();
        }
        out.push([a, b, c].map(|i| w.events(i)));
    }
    assert_eq!(out[0], out[1]);
    assert!(out[0][1].len() >= 3, "{:?}", out[0][1]);
}

#[test]
fn a_closing_connection_does_not_wait_for_the_window() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b) = (w.member("ann"), w.member("bob"));
    let bob = w.id(b);
    w.say(a, "last words");
    assert_eq!((w.writes(a), w.writes(b)), (1, 0));
    // bob quits: what waited for it and its bye go out in this turn.
    w.clients[b].1.quit("done");
    w.read(b);
    assert_eq!(w.closed, [bob]);
    assert_eq!(w.writes(b), 1);
    assert_eq!(w.said(b), ["last words"]);
    assert!(w.clients[b].1.is_closed());
    // Written: the core says to close it now, without a timer.
    assert_eq!(w.server.connection_count(), 1);
    // ann hears bob leave when the window closes.
    assert_eq!(w.writes(a), 0);
    w.run_window();
    assert_eq!(w.writes(a), 1);
}

#[test]
fn a_connection_gone_while_its_output_waits_is_skipped() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b, c) = (w.member("ann"), w.member("bob"), w.member("cat"));
    w.say(a, "hi");
    // The adapter reports bob's socket gone before the window closes.
    w.server.handle_close(w.id(b), w.now);
    w.take();
    w.run_window();
    assert_eq!(w.writes(b), 0);
    assert_eq!(w.writes(c), 1);
    assert_eq!(w.said(c), ["hi"]);
}

#[test]
fn a_window_left_with_no_connection_is_not_reported() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b) = (w.member("ann"), w.member("bob"));
    // bob leaves the room first, so that its going later tells nobody anything.
    w.clients[b].1.leave("r", "later");
    w.read(b);
    w.run_window();
    w.events(a);
    w.writes(b);
    let t0 = w.now;
    w.clients[a].1.whisper("bob", "psst");
    w.read(a);
    assert_eq!(w.writes(b), 0);
    assert_eq!(w.server.poll_timeout(), Some(t0 + DELAY));
    // bob's socket goes before the window closes: nobody waits for it any more, and a
    // deadline for nobody is not reported.
    w.server.handle_close(w.id(b), w.now);
    w.take();
    assert!(
        w.server.poll_timeout().is_some_and(|t| t > t0 + DELAY),
        "{:?}",
        w.server.poll_timeout()
    );
}

#[test]
fn a_connection_whose_own_turn_took_what_waited_is_not_named_when_the_window_closes() {
    let mut w = World::writing_at_once(config(DELAY));
    let (a, b) = (w.member("ann"), w.member("bob"));
    let t0 = w.now;
    w.say(a, "hello");
    assert_eq!(w.writes(b), 0);
    // bob's own request takes what waited for it, in its own turn.
    w.clients[b].1.list_members("r");
    w.read(b);
    assert_eq!(w.writes(b), 1);
    // The window closes with nothing left for anyone: no connection is named.
    w.now = t0 + DELAY;
    w.server.handle_timeout(w.now);
    assert_eq!(w.server.poll_pending(), None);
}

#[test]
fn output_past_one_transmit_is_named_again_until_all_is_taken() {
    let mut w = World::writing_at_once(Config {
        max_transmit_bytes: 512,
        ..config(Duration::ZERO)
    });
    let (a, b) = (w.member("ann"), w.member("bob"));
    let text = "x".repeat(200);
    for _ in 0..10 {
        w.clients[a].1.say("r", &text);
    }
    w.read(a);
    // Ten copies of about 200 bytes, 512 at most a transmit: several, all taken.
    assert!(w.writes(b) >= 4);
    assert_eq!(w.server.outbound_bytes(w.id(b)), 0);
    assert_eq!(w.said(b).len(), 10);
}
