//! Unit tests of output pacing: a sender is held back while the output it caused sits above
//! the high-water mark at its recipients, and no longer than the stall timeout.

use std::time::Duration;

use super::output_harness::World;
use super::*;
use crate::client::ClientEvent;

const HIGH: usize = 2048;
const STALL: Duration = Duration::from_millis(500);

fn config() -> Config {
    Config {
        msg_rate: 0,
        outbound_high_water: HIGH,
        outbound_stall_timeout: STALL,
        max_outbound_bytes: 64 * 1024,
        // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
        flush_delay: Duration::ZERO,
        ..Config::default()
    }
}

/// Members `flooder` and `slow` of room `r`; the flooder has sent 300 messages and been
/// read until slow, which reads nothing, went past the mark: (world, flooder, slow).
fn flooder_held_by_slow() -> (World, usize, usize) {
    let mut w = World::new(config());
    let flooder = w.member("flooder");
    let slow = w.member("slow");
    w.say_numbered(flooder, 0, 300);
    w.read(flooder);
    w.write(flooder);
    (w, flooder, slow)
}

#[test]
fn a_flooder_is_paced_by_a_slow_reader_and_nothing_is_lost() {
    let mut w = World::new(config());
    let flooder = w.member("flooder");
    let slow = w.member("slow");
    let slow_id = w.id(slow);
    let flooder_id = w.id(flooder);
    w.say_numbered(flooder, 0, 500);
    w.read(flooder);
    w.write(flooder);
    // Slow has not written anything: the flooder handled requests only until slow's
    // queue passed the mark, then stopped, and it is not read.
    let frame = w.server.outbound_bytes(slow_id);
    assert!(frame > HIGH, "{frame}");
    assert!(
        frame < HIGH + 100,
        "{frame} queued: more than one message past the mark"
    );
    assert_eq!(w.server.read_budget(flooder_id), 0);
    assert!(w.server.poll_readable().is_none());
    let first = w.said(flooder).len();
    assert!(first > 0 && first < 100, "{first}");
    // Each time slow reads, the flooder goes on, until all 500 are through, in order.
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10_000, "never finished");
        let wrote = w.write(slow);
        w.timer();
        let readable: Vec<ConnId> = std::iter::from_fn(|| w.server.poll_readable()).collect();
        let read = w.read(flooder);
        w.write(flooder);
        if wrote == 0 && read == 0 {
            assert!(readable.is_empty() || readable == vec![flooder_id]);
            break;
        }
        assert!(w.server.outbound_bytes(slow_id) < HIGH + 100);
    }
    // Each round lets through about the mark's worth of messages to slow.
    assert!(rounds > 5, "paced in {rounds} rounds only");
    let want: Vec<String> = (0..500).map(|k| k.to_string()).collect();
    let mut heard = w.said(flooder);
    heard.splice(0..0, (0..first).map(|k| k.to_string()));
    assert_eq!(heard, want);
    assert_eq!(w.said(slow), want);
    assert!(w.closed.is_empty(), "closed: {:?}", w.closed);
}

#[test]
fn a_stuck_reader_holds_senders_back_no_longer_than_the_stall_timeout() {
    let mut w = World::new(config());
    let flooder = w.member("flooder");
    let stuck = w.member("stuck");
    let flooder_id = w.id(flooder);
    let stuck_id = w.id(stuck);
    w.say_numbered(flooder, 0, 3000);
    let t0 = w.now;
    w.read(flooder);
    w.write(flooder);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    // The stall is the next deadline.
    assert_eq!(w.server.poll_timeout(), Some(t0 + STALL));
    // Just short of the stall timeout the flooder is still held.
    w.now += STALL - Duration::from_millis(1);
    w.timer();
    assert_eq!(w.server.read_budget(flooder_id), 0);
    w.now += Duration::from_millis(1);
    w.timer();
    assert_eq!(w.server.poll_readable(), Some(flooder_id));
    // Stalled, stuck has no stall deadline left: its next one is later (the flooder's
    // waiting requests are due now).
    let c = w.server.conns.get(&stuck_id).expect("stuck is open");
    assert!(c.timer.is_some_and(|t| c.instant(t) > w.now));
    // From now on stuck holds nobody back: the flooder goes on until stuck's queue passes
    // max_outbound_bytes and stuck is closed as a slow consumer.
    for _ in 0..1000 {
        w.timer();
        if w.read(flooder) == 0 && w.write(flooder) == 0 {
            break;
        }
        w.write(flooder);
    }
    assert_eq!(w.closed, vec![stuck_id]);
    let heard = w.said(flooder);
    assert_eq!(heard.len(), 3000, "the flooder's requests were all handled");
    assert!(heard
        .iter()
        .enumerate()
        .all(|(k, text)| *text == k.to_string()));
}

#[test]
fn a_reader_that_drains_holds_back_again() {
    let (mut w, flooder, slow) = flooder_held_by_slow();
    let flooder_id = w.id(flooder);
    // Slow stalls once...
    w.now += STALL;
    w.timer();
    assert!(w.server.read_budget(flooder_id) > 0);
    w.read(flooder);
    w.write(flooder);
    // ...then reads everything: it may hold senders back again.
    w.write(slow);
    w.say_numbered(flooder, 300, 300);
    w.read(flooder);
    w.write(flooder);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    w.write(slow);
    assert_eq!(w.server.poll_readable(), Some(flooder_id));
}

#[test]
fn closing_the_holder_releases_its_senders_at_once() {
    let (mut w, flooder, slow) = flooder_held_by_slow();
    let flooder_id = w.id(flooder);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    // The transport of slow goes away.
    let slow_id = w.id(slow);
    w.server.handle_close(slow_id, w.now);
    assert_eq!(w.server.poll_readable(), Some(flooder_id));
    // The waiting requests are handled at the timer, due now.
    assert!(w.server.poll_timeout().is_some_and(|t| t <= w.now));
    w.settle_all();
    let heard = w.said(flooder);
    assert_eq!(heard.len(), 300);
}

#[test]
fn a_client_that_does_not_read_its_own_answers_is_paused_not_closed() {
    let mut w = World::new(config());
    let pinger = w.member("pinger");
    let id = w.id(pinger);
    for token in 0..2000 {
        w.clients[pinger].1.ping(token);
    }
    w.read(pinger);
    // Its own pongs are above the mark: it handles nothing more until it reads them.
    assert_eq!(w.server.read_budget(id), 0);
    let queued = w.server.outbound_bytes(id);
    assert!(queued > HIGH && queued < HIGH + 20, "{queued}");
    let mut tokens = Vec::new();
    for _ in 0..1000 {
        w.write(pinger);
        w.timer();
        w.read(pinger);
        tokens.extend(w.events(pinger).into_iter().filter_map(|e| match e {
            ClientEvent::Pong { token } => Some(token),
            _ => None,
        }));
        if tokens.len() == 2000 {
            break;
        }
    }
    assert_eq!(tokens, (0..2000).collect::<Vec<u64>>());
    assert!(w.closed.is_empty());
}

#[test]
fn pacing_is_off_when_the_mark_is_at_the_outbound_limit() {
    let mut w = World::new(Config {
        outbound_high_water: 64 * 1024,
        ..config()
    });
    let flooder = w.member("flooder");
    let stuck = w.member("stuck");
    let stuck_id = w.id(stuck);
    w.say_numbered(flooder, 0, 3000);
    for _ in 0..100 {
        w.read(flooder);
        w.write(flooder);
    }
    // Nothing held the flooder back: stuck was closed by the outbound limit alone.
    assert_eq!(w.closed, vec![stuck_id]);
    assert_eq!(w.said(flooder).len(), 3000);
}

#[test]
fn an_irc_flooder_is_paced_like_a_native_one() {
    let mut w = World::new(config());
    let slow = w.member("slow");
    let slow_id = w.id(slow);
    let irc = w.server.open(w.now);
    // Its own output (numerics) is written at once: only slow lags.
    let written = |w: &mut World| {
        w.take();
        let data = std::mem::take(w.out.entry(irc).or_default());
        if !data.is_empty() {
            w.server.handle_written(irc, data.len());
        }
        w.take();
    };
    let mut lines = String::from("NICK ircer\r\nUSER ircer 0 * :I\r\nJOIN #r\r\n");
    for k in 0..300 {
        lines += &format!("PRIVMSG #r :{k}\r\n");
    }
    let mut wire = lines.into_bytes();
    let mut heard = Vec::new();
    for _ in 0..10_000 {
        let n = wire.len().min(w.server.read_budget(irc));
        if n > 0 {
            w.server.handle_input(irc, &wire[..n], w.now);
            wire.drain(..n);
        }
        written(&mut w);
        assert!(w.server.outbound_bytes(slow_id) < HIGH + 100);
        w.write(slow);
        w.timer();
        written(&mut w);
        heard.extend(w.said(slow));
        if heard.len() == 300 {
            break;
        }
    }
    assert_eq!(heard, (0..300).map(|k| k.to_string()).collect::<Vec<_>>());
    assert!(w.closed.is_empty());
}

#[test]
fn the_outbound_limit_takes_exactly_its_size_and_closes_at_one_message_more() {
    // Pacing off (the mark at the limit): only the limit acts.
    let world = |max: usize| {
        World::new(Config {
            max_outbound_bytes: max,
            outbound_high_water: max,
            ..config()
        })
    };
    let text = "x".repeat(200);
    // One message's size at the reader, handed out and not yet written.
    let mut w = world(64 * 1024);
    let (a, b) = (w.member("ann"), w.member("bob"));
    w.say(a, &text);
    let size = w.server.outbound_bytes(w.id(b));
    assert!(size > text.len(), "{size}");
    // A limit of exactly three: three fit, the fourth closes the reader.
    let mut w = world(3 * size);
    let (a, b) = (w.member("ann"), w.member("bob"));
    let bob = w.id(b);
    for _ in 0..3 {
        w.say(a, &text);
        w.write(a);
    }
    assert!(w.closed.is_empty(), "closed: {:?}", w.closed);
    assert_eq!(w.server.outbound_bytes(bob), 3 * size);
    w.say(a, &text);
    assert_eq!(w.closed, vec![bob]);
}

#[test]
fn a_holder_releases_its_senders_only_once_it_has_written_down_to_the_mark() {
    let mut w = World::new(config());
    let flooder = w.member("flooder");
    let other = w.member("other");
    let slow = w.member("slow");
    let (flooder_id, other_id, slow_id) = (w.id(flooder), w.id(other), w.id(slow));
    w.say_numbered(flooder, 0, 500);
    w.read(flooder);
    w.write(flooder);
    w.write(other);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    // A second sender's message takes slow further past the mark and holds it back too.
    w.say(other, "more");
    w.write(other);
    w.write(flooder);
    assert_eq!(w.server.read_budget(other_id), 0);
    // All of slow's output is handed out (in flight), none of it reported written yet.
    let over = w.server.outbound_bytes(slow_id) - HIGH;
    assert!(over > 1, "{over}");
    // A write that leaves it above the mark releases nobody.
    w.server.handle_written(slow_id, 1);
    w.timer();
    assert_eq!(w.server.read_budget(flooder_id), 0);
    assert_eq!(w.server.read_budget(other_id), 0);
    assert_eq!(w.server.poll_readable(), None);
    // Down to the mark exactly: both go on.
    w.server.handle_written(slow_id, over - 1);
    assert_eq!(w.server.outbound_bytes(slow_id), HIGH);
    let mut readable: Vec<ConnId> = std::iter::from_fn(|| w.server.poll_readable()).collect();
    readable.sort();
    assert_eq!(readable, [flooder_id, other_id]);
}

#[test]
fn a_reader_closed_by_a_timer_due_beside_its_own_still_lingers() {
    // ann's requests wait for the rate; bob reads nothing. One timer run serves ann's
    // wake-up, whose first message passes bob's outbound limit, and then bob's own
    // deadline (a keepalive), both due: bob, closed moments before, keeps its linger.
    let world = |max: usize| {
        World::new(Config {
            msg_rate: 1,
            max_outbound_bytes: max,
            outbound_high_water: max,
            ..config()
        })
    };
    let text = "x".repeat(200);
    let run = |w: &mut World, a: usize| {
        for _ in 0..40 {
            w.clients[a].1.say("r", &text);
        }
        w.read(a);
        w.write(a);
    };
    // How much of it reaches bob before the rate stops ann.
    let mut w = world(1024 * 1024);
    let (a, b) = (w.member("ann"), w.member("bob"));
    run(&mut w, a);
    let first = w.server.outbound_bytes(w.id(b));
    assert!(first > 0 && w.server.inbound_bytes(w.id(a)) > 0);
    // Now with exactly that as bob's limit.
    let mut w = world(first);
    let (a, b) = (w.member("ann"), w.member("bob"));
    let bob = w.id(b);
    run(&mut w, a);
    assert!(w.closed.is_empty());
    let linger = w.server.config().close_linger;
    let t = w.now + w.server.config().ping_interval + Duration::from_secs(1);
    w.at(t);
    // (ann, past the same limit with her own copies, is closed after bob.)
    assert_eq!(w.closed.first(), Some(&bob));
    // bob is still there, its bye not yet written.
    assert!(
        w.server.outbound_bytes(bob) > 0,
        "bob closed before its linger"
    );
    w.at(t + linger);
    assert_eq!(w.server.outbound_bytes(bob), 0);
    assert_eq!(w.server.connection_count(), 0);
}

#[test]
fn a_sender_gone_before_the_adapter_asks_is_not_named_readable() {
    let (mut w, flooder, slow) = flooder_held_by_slow();
    let flooder_id = w.id(flooder);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    // slow drains, which would make the flooder readable, but the flooder's transport
    // goes before the adapter asks.
    w.write(slow);
    w.server.handle_close(flooder_id, w.now);
    assert_eq!(w.server.poll_readable(), None);
}

#[test]
fn a_ping_that_leaves_a_reader_above_the_mark_holds_back_nobody_who_did_not_send_to_it() {
    let mut w = World::new(Config {
        ping_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(10),
        outbound_stall_timeout: Duration::from_secs(60),
        ..config()
    });
    let loner = w.member("loner");
    let flooder = w.member("flooder");
    let slow = w.member("slow");
    let (loner_id, flooder_id) = (w.id(loner), w.id(flooder));
    // loner leaves the room: nothing the flooder says reaches it.
    w.clients[loner].1.leave("r", "");
    w.read(loner);
    w.write(loner);
    w.write(flooder);
    w.write(slow);
    w.say_numbered(flooder, 0, 300);
    w.read(flooder);
    w.write(flooder);
    assert_eq!(w.server.read_budget(flooder_id), 0);
    // A second later slow's keepalive ping is queued behind what it has not read.
    w.now += Duration::from_secs(1);
    w.timer();
    w.write(loner);
    // loner's request reaches only loner: slow, above the mark since before, does not
    // hold it back.
    w.clients[loner].1.list_rooms();
    assert!(w.read(loner) > 0);
    assert!(w.server.read_budget(loner_id) > 0);
}

#[test]
fn a_sender_that_quits_starts_no_readers_stall_clock() {
    let mut w = World::new(config());
    let live = w.member("live");
    let slow = w.member("slow");
    let quitter = w.member("quitter");
    let (live_id, slow_id) = (w.id(live), w.id(slow));
    // slow, which reads nothing, fills to just under the mark.
    let text = "x".repeat(100);
    while w.server.outbound_bytes(slow_id) < HIGH - 150 {
        w.say(live, &text);
        w.write(live);
        w.write(quitter);
    }
    assert!(w.server.read_budget(live_id) > 0);
    // quitter's goodbye takes slow over the mark; a closing sender is held by nobody.
    w.clients[quitter].1.quit(&"y".repeat(250));
    w.read(quitter);
    assert!(w.server.outbound_bytes(slow_id) > HIGH);
    // So slow holds nobody, and no stall clock runs: a stall timeout later, a live
    // sender's message is still held back by it.
    w.now += STALL;
    w.timer();
    w.say(live, &text);
    assert_eq!(w.server.read_budget(live_id), 0);
}
