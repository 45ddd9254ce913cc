//! Unit tests of room history: store effects, held output, replay and paging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::client::{Client, ClientEvent};
use crate::history::{HistoryOptions, RoomRecord, StoreOp, StoredMessage};

/// A store in memory that runs ops only when told to, so tests choose the timing.
#[derive(Default)]
struct MemStore {
    rooms: HashMap<String, Vec<StoredMessage>>,
    topics: HashMap<String, (String, String)>,
    queue: Vec<StoreOp>,
}

/// A server with history, clients, and the store between them.
struct World {
    server: Server,
    now: Instant,
    clients: Vec<(ConnId, Client)>,
    store: MemStore,
    /// Output for connections that are not clients (raw IRC ones), as text.
    others: String,
}

const T0_MS: u64 = 1_700_000_000_000;

impl World {
    fn new(opts: HistoryOptions, rooms: Vec<RoomRecord>) -> Self {
        let config = Config {
            msg_rate: 0,
            // About the rules, not when output leaves: coalescing is off (tests_flush.rs).
            flush_delay: std::time::Duration::ZERO,
            ..Config::default()
        };
        let now = crate::test_clock::start();
        let mut server = Server::new(config);
        server.enable_history(opts, now, T0_MS, rooms);
        World {
            server,
            now,
            clients: Vec::new(),
            store: MemStore::default(),
            others: String::new(),
        }
    }

    fn connect(&mut self, nick: &str) -> usize {
        let id = self.server.open(self.now);
        self.clients.push((id, Client::new(nick)));
        self.pump();
        let i = self.clients.len() - 1;
        self.events(i);
        i
    }

    /// Moves bytes both ways and queues store ops, without running them.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (id, client) in &mut self.clients {
                if let Some(bytes) = client.poll_transmit() {
                    self.server.handle_input(*id, &bytes, self.now);
                    moved = true;
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                self.server.handle_written(t.conn, t.data.len());
                match self.clients.iter_mut().find(|(id, _)| *id == t.conn) {
                    Some((_, c)) => c.handle_input(&t.data, self.now).expect("bad frame"),
                    None => self.others.push_str(&String::from_utf8_lossy(&t.data)),
                }
                moved = true;
            }
            while let Some(op) = self.server.poll_store() {
                self.store.queue.push(op);
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs every queued store op, answering as a real store would.
    fn run_store(&mut self) {
        let ops = std::mem::take(&mut self.store.queue);
        let mut last = 0;
        for op in ops {
            last = op.op();
            match op {
                StoreOp::Append { key, message, .. } => {
                    self.store.rooms.entry(key).or_default().push(message)
                }
                StoreOp::SetTopic { key, topic, by, .. } => {
                    self.store.topics.insert(key, (topic, by));
                }
                StoreOp::Load {
                    op,
                    key,
                    before,
                    limit,
                } => {
                    let all = self.store.rooms.get(&key).cloned().unwrap_or_default();
                    let older: Vec<_> = all.into_iter().filter(|m| m.id < before).collect();
                    let skip = older.len().saturating_sub(limit as usize);
                    self.server.handle_history(op, older[skip..].to_vec());
                }
                StoreOp::Query {
                    op,
                    key,
                    range,
                    limit,
                } => {
                    let all = self.store.rooms.get(&key).cloned().unwrap_or_default();
                    self.server
                        .handle_history(op, range.select(&all, limit as usize));
                }
            }
        }
        if last > 0 {
            self.server.handle_stored(last);
        }
        self.pump();
    }

    /// Fails every queued store op.
    fn fail_store(&mut self) {
        for op in std::mem::take(&mut self.store.queue) {
            self.server.handle_store_error(op.op(), "disk on fire");
        }
        self.pump();
    }

    fn c(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i].1
    }

    fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.clients[i].1.poll_event()).collect()
    }

    /// Client `i` says `n` numbered messages in `room`, stored at once.
    fn say_many(&mut self, i: usize, room: &str, n: usize) {
        for k in 0..n {
            self.c(i).say(room, &format!("m{k}"));
            // Message k+1 arrives at T0 + k+1 ms.
            self.now += Duration::from_millis(1);
            self.pump();
        }
        self.run_store();
    }
}

/// The ids of the replayed and live room messages in `events`, tagged `r` or `l`.
fn ids(events: &[ClientEvent]) -> Vec<(char, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Replayed { id, .. } => Some(('r', *id)),
            ClientEvent::Message { seq, .. } => Some(('l', *seq)),
            _ => None,
        })
        .collect()
}

fn history_end(events: &[ClientEvent]) -> Option<(u64, bool)> {
    events.iter().find_map(|e| match e {
        ClientEvent::HistoryEnd { oldest, more, .. } => Some((*oldest, *more)),
        _ => None,
    })
}

fn error_codes(events: &[ClientEvent]) -> Vec<ErrorCode> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn a_joiner_gets_the_last_messages_marked_as_history_then_live_ones() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 60);
    w.events(a);
    let b = w.connect("b");
    w.c(b).join("r");
    w.pump();
    // Held: nothing of the replay or after it until the store answers.
    assert!(ids(&w.events(b)).is_empty());
    w.run_store();
    w.c(a).say("r", "live");
    w.pump();
    w.run_store();
    let ev = w.events(b);
    let want: Vec<_> = (11..=60).map(|id| ('r', id)).chain([('l', 61)]).collect();
    assert_eq!(ids(&ev), want);
    assert_eq!(history_end(&ev), Some((11, true)));
    let first = ev.iter().find_map(|e| match e {
        ClientEvent::Replayed { time_ms, from, .. } => Some((*time_ms, from.clone())),
        _ => None,
    });
    assert_eq!(first, Some((T0_MS + 11, "a".to_owned())));
}

#[test]
fn live_messages_during_a_slow_load_follow_the_replay_without_gap_or_duplicate() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 5);
    let b = w.connect("b");
    w.c(b).join("r");
    w.pump();
    // Messages said while b's load is in the store's queue: stored after it.
    for k in 0..3 {
        w.c(a).say("r", &format!("during {k}"));
        w.pump();
    }
    assert!(ids(&w.events(b)).is_empty(), "b's output is held");
    w.run_store();
    let got = ids(&w.events(b));
    let want: Vec<_> = (1..=5)
        .map(|id| ('r', id))
        .chain((6..=8).map(|id| ('l', id)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_native_sender_sees_its_echo_only_once_the_message_is_stored() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    let b = w.connect("b");
    for i in [a, b] {
        w.c(i).join("r");
        w.pump();
    }
    w.run_store();
    w.events(a);
    w.events(b);
    w.c(a).say("r", "hello");
    w.pump();
    assert_eq!(ids(&w.events(b)), vec![('l', 1)], "others get it at once");
    assert!(ids(&w.events(a)).is_empty(), "the echo waits for the store");
    assert_eq!(w.store.queue.len(), 1);
    w.run_store();
    assert_eq!(ids(&w.events(a)), vec![('l', 1)]);
    assert_eq!(w.store.rooms["r"][0].text, "hello");
}

#[test]
fn paging_back_reaches_the_first_message() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 25);
    w.events(a);
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        w.c(a).history("r", cursor, 10);
        w.pump();
        w.run_store();
        let ev = w.events(a);
        let page: Vec<u64> = ids(&ev).into_iter().map(|(_, id)| id).collect();
        let (oldest, more) = history_end(&ev).expect("history end");
        seen.splice(0..0, page);
        cursor = oldest;
        if !more {
            break;
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

/// A store with pages of up to 100, and client `a` in room `r` after saying three
/// messages (ids 1 to 3), its events taken.
fn three_said_in_r() -> (World, usize) {
    let mut w = World::new(
        HistoryOptions {
            max_page: 100,
            ..HistoryOptions::default()
        },
        Vec::new(),
    );
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 3);
    w.events(a);
    (w, a)
}

#[test]
fn bad_history_requests_get_clear_errors_in_order() {
    let (mut w, a) = three_said_in_r();
    w.c(a).history("bad room", 0, 10);
    w.c(a).history("other", 0, 10);
    w.c(a).history("r", 0, 0);
    w.c(a).history("r", 0, 101);
    w.c(a).history("r", 5, 10);
    w.c(a).history("r", 4, 10);
    w.pump();
    w.run_store();
    let ev = w.events(a);
    assert_eq!(
        error_codes(&ev),
        vec![
            ErrorCode::InvalidRoom,
            ErrorCode::NotInRoom,
            ErrorCode::InvalidLimit,
            ErrorCode::InvalidLimit,
            ErrorCode::InvalidCursor,
        ]
    );
    // `before` one past the newest is the newest page.
    assert_eq!(ids(&ev), vec![('r', 1), ('r', 2), ('r', 3)]);
}

#[test]
fn history_requests_without_history_are_refused() {
    let mut server = Server::new(Config::default());
    let now = crate::test_clock::start();
    let id = server.open(now);
    let mut c = Client::new("a");
    c.join("r");
    c.history("r", 0, 10);
    while let Some(b) = c.poll_transmit() {
        server.handle_input(id, &b, now);
    }
    while let Some(t) = server.poll_transmit() {
        c.handle_input(&t.data, now).unwrap();
    }
    let ev: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(error_codes(&ev), vec![ErrorCode::HistoryUnavailable]);
    assert!(
        history_end(&ev).is_none(),
        "no replay marker without history"
    );
    assert!(server.poll_store().is_none());
}

#[test]
fn after_a_restart_ids_continue_and_the_topic_comes_back() {
    let rooms = vec![RoomRecord {
        name: "Room".into(),
        last_id: 41,
        created_ms: 5,
        topic: "old topic".into(),
        topic_by: "x".into(),
        topic_ms: 7,
        last_ms: 0,
    }];
    let mut w = World::new(
        HistoryOptions {
            on_join: 0,
            ..HistoryOptions::default()
        },
        rooms,
    );
    let a = w.connect("a");
    w.c(a).join("room");
    w.pump();
    w.c(a).say("room", "hi");
    w.pump();
    w.run_store();
    let ev = w.events(a);
    assert!(ev.iter().any(|e| matches!(e,
        ClientEvent::Topic { room, topic, by } if room == "Room" && topic == "old topic" && by == "x")));
    assert_eq!(ids(&ev), vec![('l', 42)]);
    // on_join 0 replays nothing but says that history exists.
    assert_eq!(history_end(&ev), Some((0, true)));
}

#[test]
fn topics_are_stored() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.c(a).set_topic("r", "t1");
    w.pump();
    w.run_store();
    assert_eq!(w.store.topics["r"], ("t1".to_owned(), "a".to_owned()));
}

#[test]
fn store_failures_are_reported_and_release_held_output() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 2);
    w.events(a);
    w.c(a).say("r", "lost?");
    w.c(a).history("r", 0, 5);
    w.pump();
    w.fail_store();
    let ev = w.events(a);
    assert_eq!(ids(&ev), vec![('l', 3)], "the echo is released");
    let messages: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Error { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].1.contains("delivered but not stored"));
    assert!(messages[1].1.contains("unavailable"));
    assert!(messages
        .iter()
        .all(|m| m.0 == ErrorCode::HistoryUnavailable));
}

#[test]
fn messages_are_refused_while_the_store_is_too_far_behind() {
    let mut w = World::new(
        HistoryOptions {
            max_pending_ops: 2,
            ..HistoryOptions::default()
        },
        Vec::new(),
    );
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    for k in 0..3 {
        w.c(a).say("r", &format!("m{k}"));
    }
    w.pump();
    w.run_store();
    let ev = w.events(a);
    assert_eq!(ids(&ev), vec![('l', 1), ('l', 2)]);
    assert_eq!(error_codes(&ev), vec![ErrorCode::HistoryUnavailable]);
}

#[test]
fn a_close_while_held_flushes_what_was_held_before_the_bye() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.c(a).say("r", "x");
    w.c(a).quit("bye");
    w.pump();
    let ev = w.events(a);
    assert_eq!(ids(&ev), vec![('l', 1)]);
    assert!(matches!(ev.last(), Some(ClientEvent::Bye { .. })));
    // The late answer finds nobody and changes nothing.
    w.run_store();
    assert_eq!(w.store.rooms["r"].len(), 1);
}

#[test]
fn irc_joiners_get_the_replay_as_stamped_lines_and_the_topic_time() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.c(a).set_topic("r", "the topic");
    w.pump();
    w.say_many(a, "r", 2);
    w.c(a).say("r", "\u{1}ACTION waves\u{1}");
    w.pump();
    w.run_store();
    let irc = w.server.open(w.now);
    w.server
        .handle_input(irc, b"NICK i\r\nUSER i 0 * :i\r\nJOIN #r\r\n", w.now);
    w.pump();
    assert!(w.others.contains(" 366 "), "{}", w.others);
    assert!(
        !w.others.contains(":a!history@"),
        "held until the load is answered"
    );
    w.run_store();
    let text = w.others.clone();
    // The topic was set in the input at T0.
    let at = T0_MS / 1000;
    assert!(text.contains(&format!(" 333 i #r a :{at}\r\n")), "{text}");
    assert!(
        text.contains(":a!history@switchboard.local PRIVMSG #r :[2023-11-14 22:13:20] m0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("PRIVMSG #r :\u{1}ACTION [2023-11-14 22:13:20] waves\u{1}\r\n"),
        "{text}"
    );
    let replay = text.find("m0").unwrap_or(usize::MAX);
    let names = text.find(" 366 ").unwrap_or(0);
    assert!(names < replay, "{text}");
}

#[test]
fn the_wall_clock_can_be_tied_again_and_times_follow_the_new_tie() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 1);
    // The wall clock jumped a day ahead of the `Instant`s.
    const DAY_MS: u64 = 86_400_000;
    let tied = w.now + Duration::from_millis(5);
    w.server.set_wall_clock(tied, T0_MS + DAY_MS);
    w.now = tied + Duration::from_millis(2);
    w.c(a).say("r", "later");
    w.pump();
    w.run_store();
    let times: Vec<u64> = w.store.rooms["r"].iter().map(|m| m.time_ms).collect();
    assert_eq!(times, [T0_MS + 1, T0_MS + DAY_MS + 2]);
}

/// The events after a request for `n` messages before `before`, answered by the store.
fn page(w: &mut World, i: usize, before: u64, n: u16) -> Vec<ClientEvent> {
    w.c(i).history("r", before, n);
    w.pump();
    w.run_store();
    w.events(i)
}

#[test]
fn a_page_says_more_exactly_when_older_messages_are_left() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 3);
    w.events(a);
    // Exactly as many as asked for: nothing is left.
    let ev = page(&mut w, a, 0, 3);
    assert_eq!(ids(&ev), [('r', 1), ('r', 2), ('r', 3)]);
    assert_eq!(history_end(&ev), Some((1, false)));
    // One fewer: the oldest is left.
    let ev = page(&mut w, a, 0, 2);
    assert_eq!(ids(&ev), [('r', 2), ('r', 3)]);
    assert_eq!(history_end(&ev), Some((2, true)));
    // One at a time: the newest, then the next.
    let ev = page(&mut w, a, 0, 1);
    assert_eq!(ids(&ev), [('r', 3)]);
    assert_eq!(history_end(&ev), Some((3, true)));
    let ev = page(&mut w, a, 3, 1);
    assert_eq!(ids(&ev), [('r', 2)]);
    assert_eq!(history_end(&ev), Some((2, true)));
}

#[test]
fn a_failed_page_is_answered_ahead_of_what_arrived_while_it_waited() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    let b = w.connect("b");
    for i in [a, b] {
        w.c(i).join("r");
        w.pump();
    }
    w.say_many(a, "r", 2);
    w.events(a);
    w.c(a).history("r", 0, 5);
    w.pump();
    // Said while a's load is in the store's queue: held for a behind the answer.
    w.c(b).say("r", "live");
    w.pump();
    assert_eq!(w.events(a), []);
    w.fail_store();
    let ev = w.events(a);
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| match e {
            ClientEvent::Error { code, .. } if *code == ErrorCode::HistoryUnavailable => "error",
            ClientEvent::HistoryEnd { more: true, .. } => "end",
            ClientEvent::Message { from, .. } if from == "b" => "live",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["error", "end", "live"], "{ev:?}");
}

#[test]
fn the_last_id_is_the_live_rooms_or_else_the_stores() {
    assert_eq!(Server::new(Config::default()).history_last_id("r"), None);
    let rooms = vec![RoomRecord {
        name: "Old".into(),
        last_id: 41,
        created_ms: 5,
        topic: String::new(),
        topic_by: String::new(),
        topic_ms: 0,
        last_ms: 0,
    }];
    let mut w = World::new(HistoryOptions::default(), rooms);
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 3);
    assert_eq!(w.server.history_last_id("R"), Some(3));
    // Nobody in it this run: the store's count.
    assert_eq!(w.server.history_last_id("old"), Some(41));
    assert_eq!(w.server.history_last_id("never"), Some(0));
}

/// The number, room name and creation time of each store op queued, in order.
fn op_rooms(w: &World) -> Vec<(u64, char, String, u64)> {
    w.store
        .queue
        .iter()
        .filter_map(|op| match op {
            StoreOp::Append {
                room, created_ms, ..
            } => Some((op.op(), 'a', room.clone(), *created_ms)),
            StoreOp::SetTopic {
                room, created_ms, ..
            } => Some((op.op(), 't', room.clone(), *created_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rooms_first_op_gives_its_creation_time_and_later_ones_keep_it() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.now += Duration::from_millis(5);
    w.c(a).join("Room");
    w.c(a).set_topic("room", "t");
    w.pump();
    w.now += Duration::from_millis(10);
    w.c(a).say("room", "hi");
    w.c(a).join("Two");
    w.c(a).say("two", "hi");
    w.pump();
    assert_eq!(
        op_rooms(&w),
        [
            (1, 't', "Room".to_owned(), T0_MS + 5),
            (2, 'a', "Room".to_owned(), T0_MS + 5),
            (3, 'a', "Two".to_owned(), T0_MS + 15),
        ]
    );
}

#[test]
fn a_room_made_again_in_the_same_run_gets_its_name_and_topic_back() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("Room");
    w.c(a).set_topic("room", "kept");
    w.c(a).leave("room", "");
    w.pump();
    w.run_store();
    w.events(a);
    w.c(a).join("ROOM");
    w.pump();
    w.run_store();
    let ev = w.events(a);
    assert!(
        ev.iter().any(|e| matches!(e,
            ClientEvent::Joined { room, .. } if room == "Room")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| matches!(e,
            ClientEvent::Topic { room, topic, .. } if room == "Room" && topic == "kept")),
        "{ev:?}"
    );
}

#[test]
fn once_the_store_catches_up_messages_are_taken_again() {
    let mut w = World::new(
        HistoryOptions {
            max_pending_ops: 2,
            ..HistoryOptions::default()
        },
        Vec::new(),
    );
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    for round in 0..3 {
        for k in 0..3 {
            w.c(a).say("r", &format!("m{round}{k}"));
        }
        w.pump();
        w.run_store();
    }
    let ev = w.events(a);
    assert_eq!(
        ids(&ev),
        [('l', 1), ('l', 2), ('l', 3), ('l', 4), ('l', 5), ('l', 6)]
    );
    assert_eq!(error_codes(&ev), [ErrorCode::HistoryUnavailable; 3]);
}

#[test]
fn a_joiner_of_a_room_without_messages_is_told_there_is_no_history() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    let ev = w.events(a);
    assert_eq!(history_end(&ev), Some((0, false)), "{ev:?}");
    assert!(w.store.queue.is_empty(), "nothing to load");
}

#[test]
fn a_page_may_be_as_large_as_max_page_and_start_one_past_the_newest() {
    let (mut w, a) = three_said_in_r();
    let ev = page(&mut w, a, 0, 100);
    assert_eq!((ids(&ev).len(), error_codes(&ev)), (3, vec![]));
    let ev = page(&mut w, a, 4, 5);
    assert_eq!((ids(&ev).len(), error_codes(&ev)), (3, vec![]));
    for before in [5, 10] {
        let ev = page(&mut w, a, before, 5);
        assert_eq!(
            (ids(&ev).len(), error_codes(&ev)),
            (0, vec![ErrorCode::InvalidCursor])
        );
    }
}

#[test]
fn a_sender_is_told_when_the_first_message_fails_to_be_stored() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.events(a);
    w.c(a).say("r", "first");
    w.pump();
    assert_eq!(w.store.queue.len(), 1, "the one op, the append");
    w.fail_store();
    let ev = w.events(a);
    assert_eq!(ids(&ev), [('l', 1)], "the echo is released");
    let told = ev.iter().any(|e| {
        matches!(e,
        ClientEvent::Error { code: ErrorCode::HistoryUnavailable, message, .. }
            if message.contains("message 1 in `r` was delivered but not stored"))
    });
    assert!(told, "{ev:?}");
}

#[test]
fn a_store_answer_makes_its_connection_pending_once() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    w.c(a).join("r");
    w.pump();
    w.say_many(a, "r", 2);
    w.c(a).history("r", 0, 5);
    w.pump();
    let op = match w.store.queue.as_slice() {
        [StoreOp::Load { op, .. }] => *op,
        ops => panic!("{ops:?}"),
    };
    w.store.queue.clear();
    let rows = w.store.rooms["r"].clone();
    w.server.handle_history(op, rows);
    // "Output queued since it was last returned": once, then not again with nothing new.
    let mut pending = Vec::new();
    while let Some(id) = w.server.poll_pending() {
        pending.push(id);
        while let Some(t) = w.server.take_transmit(id) {
            w.server.handle_written(id, t.data.len());
        }
    }
    assert_eq!(pending, [w.clients[a].0]);
}

#[test]
fn store_failures_are_told_in_the_order_of_what_waited() {
    let mut w = World::new(HistoryOptions::default(), Vec::new());
    let a = w.connect("a");
    let b = w.connect("b");
    for i in [a, b] {
        w.c(i).join("r");
        w.pump();
    }
    w.events(a);
    w.c(a).say("r", "lost?");
    w.c(a).history("r", 0, 5);
    w.pump();
    // Held for a behind its page.
    w.c(b).say("r", "live");
    w.pump();
    w.fail_store();
    let kinds: Vec<&str> = w
        .events(a)
        .iter()
        .map(|e| match e {
            ClientEvent::Message { from, .. } if from == "a" => "echo",
            ClientEvent::Message { .. } => "live",
            ClientEvent::Error { message, .. } if message.contains("not stored") => "not stored",
            ClientEvent::Error { .. } => "no page",
            ClientEvent::HistoryEnd { .. } => "end",
            _ => "other",
        })
        .collect();
    // The echo, then what became of its storing; the page's error and end, then what
    // waited behind the page.
    assert_eq!(kinds, ["echo", "not stored", "no page", "end", "live"]);
}
