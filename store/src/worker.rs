//! The store thread: ops in through a channel, answers out through a callback.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use switchboard_core::Server;

use crate::{unix_ms, HistoryStore, StoreOp, StoredMessage};

/// Most ops taken into one batch (one transaction).
const MAX_BATCH: usize = 4096;

/// How often messages past the age limit are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A store's answer, to hand to the core with [`Answer::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Every op up to this one is done.
    Stored(u64),
    /// The rows of a load.
    History(u64, Vec<StoredMessage>),
    /// The op failed, with why.
    Failed(u64, String),
}

impl Answer {
    /// Hands the answer to the core.
    pub fn apply(self, server: &mut Server) {
        match self {
            Answer::Stored(op) => server.handle_stored(op),
            Answer::History(op, rows) => server.handle_history(op, rows),
            Answer::Failed(op, why) => server.handle_store_error(op, &why),
        }
    }
}

/// Hands a batch of answers to the core, first tying its clock to the wall clock again.
/// Returns the first failure's reason, for the log (the core tells the clients).
pub fn apply(answers: Vec<Answer>, server: &mut Server) -> Option<String> {
    let failure = answers.iter().find_map(|a| match a {
        Answer::Failed(_, why) => Some(why.clone()),
        _ => None,
    });
    server.set_wall_clock(Instant::now(), unix_ms());
    for answer in answers {
        answer.apply(server);
    }
    failure
}

/// A store running on a thread of its own.
pub struct Worker {
    tx: Option<mpsc::Sender<StoreOp>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread. `answer` gets each batch's answers, in op order, from that thread.
    pub fn spawn(
        mut store: Box<dyn HistoryStore>,
        mut answer: impl FnMut(Vec<Answer>) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel::<StoreOp>();
        let thread = std::thread::Builder::new()
            .name("history-store".into())
            .spawn(move || {
                let mut pruned = Instant::now();
                // Blocks for the first op, then takes whatever else is waiting: the batch
                // grows with the load, which is what keeps the cost per message low.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    answer(run_batch(&mut *store, &batch));
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = Instant::now();
                        // A failed prune only delays it; the next batch's writes report
                        // a broken store.
                        let _ = store.prune(unix_ms());
                    }
                }
            })?;
        Ok(Worker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues an op; ops run in the order submitted.
    pub fn submit(&self, op: StoreOp) {
        if let Some(tx) = &self.tx {
            // Fails only once the thread has ended, after a panic in the store; the op's
            // sender then never gets an answer, which the core bounds (max_pending_ops).
            let _ = tx.send(op);
        }
    }

    /// Queues every op the core has for the store ([`Server::poll_store`]), in order.
    pub fn submit_from(&self, server: &mut Server) {
        while let Some(op) = server.poll_store() {
            self.submit(op);
        }
    }

    /// Runs what was submitted and stops the thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one batch: every write in one transaction, then the loads, answered in op order.
pub(crate) fn run_batch(store: &mut dyn HistoryStore, batch: &[StoreOp]) -> Vec<Answer> {
    let now = unix_ms();
    let writes = batch
        .iter()
        .any(|op| !matches!(op, StoreOp::Load { .. } | StoreOp::Query { .. }));
    let written = if writes {
        store.write(batch, now)
    } else {
        Ok(())
    };
    let mut answers = Vec::new();
    for op in batch {
        match op {
            StoreOp::Load {
                op,
                key,
                before,
                limit,
            } => answers.push(match store.load(key, *before, *limit, now) {
                Ok(rows) => Answer::History(*op, rows),
                Err(e) => Answer::Failed(*op, e.0),
            }),
            StoreOp::Query {
                op,
                key,
                range,
                limit,
            } => answers.push(match store.query(key, *range, *limit, now) {
                Ok(rows) => Answer::History(*op, rows),
                Err(e) => Answer::Failed(*op, e.0),
            }),
            other => {
                if let Err(e) = &written {
                    answers.push(Answer::Failed(other.op(), e.0.clone()));
                }
            }
        }
    }
    if let Some(last) = batch.last() {
        answers.push(Answer::Stored(last.op()));
    }
    answers
}
