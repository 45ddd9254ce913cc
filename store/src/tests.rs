//! Tests of the SQLite store and the store thread, on real files in a scratch directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::OpenFlags;

use crate::worker::run_batch;
use crate::*;

/// A fresh directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Scratch, retention: Retention) -> SqliteStore {
    SqliteStore::open(&dir.0, retention, Sync::Normal).expect("open")
}

fn append(op: u64, room: &str, id: u64, time_ms: u64) -> StoreOp {
    StoreOp::Append {
        op,
        key: room.to_lowercase(),
        room: room.to_owned(),
        created_ms: 1,
        message: StoredMessage {
            id,
            time_ms,
            from: "a".into(),
            text: format!("{room} {id}"),
            notice: false,
        },
    }
}

fn ids(rows: &[StoredMessage]) -> Vec<u64> {
    rows.iter().map(|m| m.id).collect()
}

#[test]
fn a_batch_is_one_transaction_and_loads_are_ordered_per_room() {
    let dir = Scratch::new();
    let mut s = open(&dir, Retention::default());
    let mut batch = Vec::new();
    for id in 1..=1000 {
        batch.push(append(2 * id - 1, "A", id, id));
        batch.push(append(2 * id, "b", id, id));
    }
    s.write(&batch, 0).unwrap();
    assert_eq!(ids(&s.load("a", 1001, 3, 0).unwrap()), vec![998, 999, 1000]);
    assert_eq!(ids(&s.load("b", 3, 10, 0).unwrap()), vec![1, 2]);
    assert!(s.load("c", 10, 10, 0).unwrap().is_empty());
    assert_eq!(s.load("a", 2, 1, 0).unwrap()[0].text, "A 1");
    let rooms = s.rooms().unwrap();
    assert_eq!(rooms.len(), 2);
    assert_eq!((rooms[0].name.as_str(), rooms[0].last_id), ("A", 1000));
}

#[test]
fn a_failing_write_stores_nothing_of_its_batch() {
    let dir = Scratch::new();
    let mut s = open(&dir, Retention::default());
    s.conn_for_tests()
        .execute_batch("CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.id = 3 BEGIN SELECT RAISE(ABORT, 'boom'); END;")
        .unwrap();
    let batch = vec![
        append(1, "a", 1, 1),
        append(2, "a", 2, 1),
        append(3, "a", 3, 1),
    ];
    let answers = run_batch(&mut s, &batch);
    assert_eq!(answers.len(), 4);
    assert!(matches!(&answers[0], Answer::Failed(1, why) if why.contains("boom")));
    assert_eq!(answers[3], Answer::Stored(3));
    assert!(s.load("a", 10, 10, 0).unwrap().is_empty());
}

#[test]
fn retention_by_count_keeps_the_newest() {
    let dir = Scratch::new();
    let mut s = open(
        &dir,
        Retention {
            max_messages: Some(5),
            max_age: None,
        },
    );
    for id in 1..=12 {
        s.write(&[append(id, "r", id, id)], 0).unwrap();
    }
    assert_eq!(
        ids(&s.load("r", 100, 100, 0).unwrap()),
        vec![8, 9, 10, 11, 12]
    );
    // The room's id counter outlives the trimmed messages.
    assert_eq!(s.rooms().unwrap()[0].last_id, 12);
}

#[test]
fn retention_by_age_hides_then_prunes_old_messages() {
    let dir = Scratch::new();
    let mut s = open(
        &dir,
        Retention {
            max_messages: None,
            max_age: Some(Duration::from_secs(10)),
        },
    );
    let batch: Vec<_> = (1..=4).map(|id| append(id, "r", id, id * 5_000)).collect();
    s.write(&batch, 0).unwrap();
    let now = 25_000;
    assert_eq!(ids(&s.load("r", 100, 100, now).unwrap()), vec![3, 4]);
    s.prune(now).unwrap();
    assert_eq!(ids(&s.load("r", 100, 100, 0).unwrap()), vec![3, 4]);
}

#[test]
fn topics_are_kept_with_who_and_when() {
    let dir = Scratch::new();
    let mut s = open(&dir, Retention::default());
    let topic = StoreOp::SetTopic {
        op: 1,
        key: "r".into(),
        room: "R".into(),
        created_ms: 9,
        topic: "hello".into(),
        by: "ann".into(),
        time_ms: 77,
    };
    s.write(&[topic, append(2, "R", 1, 80)], 0).unwrap();
    let rooms = s.rooms().unwrap();
    assert_eq!(
        rooms,
        vec![RoomRecord {
            name: "R".into(),
            last_id: 1,
            created_ms: 9,
            topic: "hello".into(),
            topic_by: "ann".into(),
            topic_ms: 77,
            last_ms: 80,
        }]
    );
}

#[test]
fn history_survives_reopening() {
    let dir = Scratch::new();
    {
        let mut s = open(&dir, Retention::default());
        s.write(&[append(1, "r", 1, 1), append(2, "r", 2, 2)], 0)
            .unwrap();
    }
    let mut s = open(&dir, Retention::default());
    assert_eq!(ids(&s.load("r", 10, 10, 0).unwrap()), vec![1, 2]);
    assert_eq!(s.rooms().unwrap()[0].last_id, 2);
}

#[test]
fn a_corrupt_file_is_refused_naming_it() {
    let dir = Scratch::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = SqliteStore::file_in(&dir.0);
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&dir.0, Retention::default(), Sync::Normal)
        .err()
        .expect("a corrupt file must be refused");
    assert!(err.0.contains(&file.display().to_string()), "{err}");
    // The file is left as it was, not replaced by an empty database.
    assert_eq!(std::fs::read(&file).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn a_read_only_file_is_refused_naming_it() {
    let dir = Scratch::new();
    drop(open(&dir, Retention::default()));
    let file = SqliteStore::file_in(&dir.0);
    // Opened read-only as the OS would for a write-protected file (file modes do not bind
    // root, which runs CI, so the flag stands in for them).
    let err = SqliteStore::open_file(
        &file,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
        Retention::default(),
        Sync::Normal,
    )
    .err()
    .expect("a read-only file must be refused");
    assert!(err.0.contains(&file.display().to_string()), "{err}");
    assert!(err.0.contains("read-only"), "{err}");
}

#[test]
fn the_worker_answers_in_op_order() {
    let dir = Scratch::new();
    let s = open(&dir, Retention::default());
    let (tx, rx) = mpsc::channel();
    let worker = Worker::spawn(Box::new(s), move |answers| {
        for a in answers {
            tx.send(a).unwrap();
        }
    })
    .unwrap();
    worker.submit(append(1, "r", 1, 1));
    worker.submit(StoreOp::Load {
        op: 2,
        key: "r".into(),
        before: 2,
        limit: 5,
    });
    worker.submit(append(3, "r", 2, 2));
    worker.finish();
    let answers: Vec<Answer> = rx.iter().collect();
    let history: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::History(op, rows) => Some((*op, ids(rows))),
            _ => None,
        })
        .collect();
    assert_eq!(history, vec![(2, vec![1])]);
    assert_eq!(answers.last(), Some(&Answer::Stored(3)));
    let ops: Vec<u64> = answers
        .iter()
        .map(|a| match a {
            Answer::Stored(op) | Answer::History(op, _) | Answer::Failed(op, _) => *op,
        })
        .collect();
    let sorted = {
        let mut s = ops.clone();
        s.sort();
        s
    };
    assert_eq!(ops, sorted);
}

#[test]
fn every_batch_size_stores_every_message_once() {
    // Batches of 1 to 70 appends (full 32-row INSERTs, then halving chunks), two rooms
    // interleaved: each room must hold exactly its ids, with their own texts.
    let dir = Scratch::new();
    let mut s = open(&dir, Retention::default());
    let (mut op, mut next) = (0, [0u64; 2]);
    for size in 1..=70 {
        let batch: Vec<_> = (0..size)
            .map(|i| {
                op += 1;
                next[i % 2] += 1;
                append(op, ["R", "S"][i % 2], next[i % 2], op)
            })
            .collect();
        s.write(&batch, 0).unwrap();
    }
    for (room, last) in [("r", next[0]), ("s", next[1])] {
        let rows = s.load(room, u64::MAX, u32::MAX, 0).unwrap();
        assert_eq!(ids(&rows), (1..=last).collect::<Vec<_>>());
        assert!(rows
            .iter()
            .all(|m| m.text == format!("{} {}", room.to_uppercase(), m.id)));
    }
}

/// Prints what one stored message costs the store thread (run with `--release --ignored`).
#[test]
#[ignore = "a measurement: cargo test --release -p switchboard-store -- --ignored --nocapture"]
fn cost_per_message() {
    let dir = Scratch::new();
    let mut s = open(&dir, Retention::default());
    if let Ok(p) = std::env::var("STORE_PRAGMA") {
        s.conn_for_tests().execute_batch(&p).unwrap();
    }
    let batch_size = 640;
    let batches = 200;
    let mut id = 0;
    let started = std::time::Instant::now();
    for _ in 0..batches {
        let batch: Vec<_> = (0..batch_size)
            .map(|_| {
                id += 1;
                append(id, "room", id, id)
            })
            .collect();
        run_batch(&mut s, &batch);
    }
    let per = started.elapsed() / (batch_size * batches) as u32;
    println!("{per:?} per message in batches of {batch_size}");
    assert_eq!(s.rooms().unwrap()[0].last_id, id);
}

#[test]
fn queries_agree_with_the_reference_selection() {
    let dir = Scratch::new();
    let mut s = open(
        &dir,
        Retention {
            max_messages: Some(30),
            max_age: None,
        },
    );
    // Room R: ids 1 to 40, times repeating in threes (never going back); room S
    // interleaved, so a query must keep to its room. Retention keeps R's ids 11 to 40.
    let mut batch = Vec::new();
    for id in 1..=40u64 {
        batch.push(append(2 * id - 1, "R", id, 1000 + id / 3 * 10));
        batch.push(append(2 * id, "S", id, 1000 + id));
    }
    s.write(&batch, 0).unwrap();
    let kept: Vec<StoredMessage> = (11..=40u64)
        .map(|id| StoredMessage {
            id,
            time_ms: 1000 + id / 3 * 10,
            from: "a".into(),
            text: format!("R {id}"),
            notice: false,
        })
        .collect();
    let bounds = [
        Bound::Open,
        Bound::Id(0),
        Bound::Id(5),
        Bound::Id(11),
        Bound::Id(20),
        Bound::Id(40),
        Bound::Id(41),
        Bound::Time(0),
        Bound::Time(1000),
        Bound::Time(1039),
        Bound::Time(1040),
        Bound::Time(1041),
        Bound::Time(1130),
        Bound::Time(5000),
    ];
    let mut ranges = Vec::new();
    for &a in &bounds {
        ranges.push(Range::Around(a));
        for &b in &bounds {
            ranges.push(Range::Newest {
                after: a,
                before: b,
            });
            ranges.push(Range::Oldest {
                after: a,
                before: b,
            });
        }
    }
    for range in ranges {
        for limit in [0, 1, 3, 50] {
            let got = s.query("r", range, limit, 0).unwrap();
            let want = range.select(&kept, limit as usize);
            assert_eq!(ids(&got), ids(&want), "{range:?} limit {limit}");
            assert_eq!(got, want);
        }
    }
    assert!(s
        .query("nowhere", Range::Around(Bound::Open), 5, 0)
        .unwrap()
        .is_empty());
}
