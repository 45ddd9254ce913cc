//! What the threads share: the core behind one mutex, each connection's entry, and the
//! turn every thread ends with: drain the core, send what it queued, report it.

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::{self, Thread};
use std::time::Instant;

use bytes::Bytes;
use switchboard_core::{CloseMode, ConnId, Event, Server as Core};
use switchboard_store::Answer;

use crate::conn::{spawn, write_side};
use crate::tls::Stream;
use crate::Handle;

/// What every thread of one server shares.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// The timer thread, unparked when a deadline moved earlier or store answers wait
    /// (an unpark before it parks is not lost, unlike a condition variable's notify).
    pub(crate) timer: OnceLock<Thread>,
    /// Wakes `run` when the last connection is gone.
    pub(crate) idle: Condvar,
    pub(crate) max_connections: usize,
    pub(crate) handle: Handle,
    /// Refused connections waiting for their first byte.
    pub(crate) refusing: AtomicUsize,
    /// The store thread's answers, applied by whichever thread takes the lock next (the
    /// store thread too, then): under load a reader's turn takes them long before the
    /// store thread would win the lock, so a held echo is not kept waiting for it.
    pub(crate) answers: Mutex<Vec<Answer>>,
    /// `answers` is not empty.
    pub(crate) answered: AtomicBool,
}

/// The core and the adapter's bookkeeping, behind the one mutex.
pub(crate) struct State {
    pub(crate) server: Core,
    pub(crate) conns: HashMap<ConnId, Entry>,
    /// The deadline the timer thread sleeps until; `stopping` ends it.
    pub(crate) timer_at: Option<Instant>,
    pub(crate) stopping: bool,
    pub(crate) store: Option<switchboard_store::Worker>,
    pub(crate) bus: Option<switchboard_bus::Worker>,
    /// Batches taken from the core, to send without waiting once the lock is released.
    pub(crate) out: Vec<(ConnId, Arc<Stream>, Bytes)>,
    /// Connections whose writer thread is to be started.
    pub(crate) spawn: Vec<ConnId>,
}

/// The adapter's side of one connection.
pub(crate) struct Entry {
    pub(crate) stream: Arc<Stream>,
    pub(crate) wakes: Arc<Wakes>,
    /// Who writes it now.
    pub(crate) writing: Writing,
    /// Its writer thread was started.
    pub(crate) writer: bool,
    /// The core is closing it: errors are expected, not worth a log line.
    pub(crate) closing: bool,
}

/// A connection's sleeping threads' wake-ups.
#[derive(Default)]
pub(crate) struct Wakes {
    /// The core lets the reader read again, or the connection is gone.
    pub(crate) read: Condvar,
    /// The writer thread has something to write, or the connection is gone.
    pub(crate) write: Condvar,
}

/// Who writes a connection: one thread at a time, so its bytes stay in order.
pub(crate) enum Writing {
    /// Nobody: the next turn that queues output sends it.
    Idle,
    /// A batch is being sent without waiting, outside the lock (`State::out`). `again`:
    /// the core named the connection meanwhile, so its next batch follows at once; else
    /// what the core holds for it waits to be named (the coalescing window).
    Direct { again: bool },
    /// The writer thread, starting with the rest of a batch the socket did not take.
    Thread(Option<Bytes>),
}

impl State {
    /// Sends a connection's output from this turn, unless someone writes it already (they
    /// take it when done).
    pub(crate) fn start_write(&mut self, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        match &mut entry.writing {
            Writing::Idle => {}
            Writing::Direct { again } => return *again = true,
            Writing::Thread(_) => return,
        }
        if entry.stream.is_tls() {
            return self.hand_off(id, None);
        }
        if let Some(t) = self.server.take_transmit(id) {
            entry.writing = Writing::Direct { again: false };
            self.out.push((id, entry.stream.clone(), t.data));
        }
    }

    /// Leaves a connection's writing (starting with `rest`) to its writer thread.
    pub(crate) fn hand_off(&mut self, id: ConnId, rest: Option<Bytes>) {
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.writing = Writing::Thread(rest);
            if !std::mem::replace(&mut entry.writer, true) {
                self.spawn.push(id);
            }
            entry.wakes.write.notify_one();
        }
    }

    /// What a writer thread writes next; `None` once the connection is gone.
    pub(crate) fn writer_next(&mut self, id: ConnId) -> Option<Option<Bytes>> {
        let entry = self.conns.get_mut(&id)?;
        let Writing::Thread(rest) = &mut entry.writing else {
            return Some(None);
        };
        let next = rest
            .take()
            .or_else(|| self.server.take_transmit(id).map(|t| t.data));
        if next.is_none() {
            entry.writing = Writing::Idle;
        }
        Some(next)
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every other connection down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the store thread's answers for the next thread that takes the lock: this
    /// one if it is free, else whoever holds it or, failing that, the timer thread. The
    /// store thread never waits for the lock, so it goes on to its next batch at once.
    pub(crate) fn answer(self: &Arc<Self>, answers: Vec<Answer>) {
        let mut queued = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        queued.extend(answers);
        self.answered.store(true, Ordering::Release);
        drop(queued);
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return self.wake_timer(),
        };
        self.drain(&mut st);
        drop(self.flush(st));
    }

    pub(crate) fn wake_timer(&self) {
        if let Some(timer) = self.timer.get() {
            timer.unpark();
        }
    }

    /// Runs `f` on the core, then acts on what it says and writes what it queued.
    pub(crate) fn turn(self: &Arc<Self>, f: impl FnOnce(&mut Core)) {
        let mut st = self.lock();
        f(&mut st.server);
        self.drain(&mut st);
        drop(self.flush(st));
    }

    /// Acts on everything the core has to say after an input, timeout or close. Closes the
    /// core wants now are torn down after each round, and what their departures cause is
    /// drained in the next: a loop, not recursion, however many close at once.
    pub(crate) fn drain(&self, st: &mut State) {
        if self.answered.swap(false, Ordering::Acquire) {
            let answers =
                std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner));
            if let Some(why) = switchboard_store::apply(answers, &mut st.server) {
                log::error!("history store failed: {why}");
            }
        }
        loop {
            while let Some(id) = st.server.poll_pending() {
                st.start_write(id);
            }
            while let Some(id) = st.server.poll_readable() {
                if let Some(entry) = st.conns.get(&id) {
                    entry.wakes.read.notify_one();
                }
            }
            let mut now = Vec::new();
            while let Some(close) = st.server.poll_close() {
                match (close.mode, st.conns.get_mut(&close.conn)) {
                    (CloseMode::Flush, Some(entry)) => {
                        entry.closing = true;
                        // Stops the reader at once, even inside a blocking read.
                        let _ = entry.stream.shutdown(Shutdown::Read);
                        entry.wakes.read.notify_one();
                    }
                    (CloseMode::Flush, None) => {}
                    (CloseMode::Now, _) => now.push(close.conn),
                }
            }
            while let Some(event) = st.server.poll_event() {
                match event {
                    Event::Registered { conn, nick } => {
                        match st.conns.get(&conn).and_then(|e| e.stream.peer_addr().ok()) {
                            Some(peer) => log::info!("{conn} signed in as {nick} from {peer}"),
                            None => log::info!("{conn} signed in as {nick}"),
                        }
                    }
                    Event::NickChanged { conn, old, new } => {
                        log::info!("{conn} is now known as {new} (was {old})")
                    }
                    Event::Closed { conn, code, reason } => {
                        log::info!("{conn} closed: {code}: {reason}")
                    }
                }
            }
            if now.is_empty() {
                break;
            }
            for id in now {
                self.teardown(st, id);
            }
        }
        if let Some(store) = &st.store {
            store.submit_from(&mut st.server);
        }
        if let Some(bus) = &st.bus {
            bus.submit_from(&mut st.server);
        }
        if let Some(next) = st.server.poll_timeout() {
            if st.timer_at.is_none_or(|t| next < t) {
                self.wake_timer();
            }
        }
    }

    /// Sends the batches drained so far, each once and without waiting, outside the lock,
    /// reports them and repeats for what that causes; starts the writer threads asked for.
    /// Returns the lock with nothing left to send.
    pub(crate) fn flush<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        loop {
            for id in std::mem::take(&mut st.spawn) {
                let Some(entry) = st.conns.get(&id) else {
                    continue;
                };
                let (shared, stream, wakes) =
                    (self.clone(), entry.stream.clone(), entry.wakes.clone());
                if let Err(e) = spawn(format!("switchboard-write-{}", id.0), move || {
                    write_side(&shared, id, &stream, &wakes)
                }) {
                    log::error!("{id} cannot start a thread: {e}");
                    self.teardown(&mut st, id);
                    self.drain(&mut st);
                }
            }
            if st.out.is_empty() {
                return st;
            }
            let mut out = std::mem::take(&mut st.out);
            drop(st);
            let sent: Vec<io::Result<usize>> = out
                .iter()
                .map(|(_, stream, data)| stream.send_now(data))
                .collect();
            st = self.lock();
            for ((id, _, data), sent) in out.drain(..).zip(sent) {
                self.sent(&mut st, id, data, sent);
            }
            self.drain(&mut st);
        }
    }

    /// Reports a send of `data`: the rest, if any, goes to the writer thread.
    pub(crate) fn sent(&self, st: &mut State, id: ConnId, data: Bytes, sent: io::Result<usize>) {
        let Some(entry) = st.conns.get_mut(&id) else {
            return;
        };
        match sent {
            Ok(n) if n == data.len() => {
                let again = matches!(entry.writing, Writing::Direct { again: true });
                entry.writing = Writing::Idle;
                st.server.handle_written(id, n);
                if again {
                    st.start_write(id);
                }
            }
            Ok(n) => {
                st.server.handle_written(id, n);
                st.hand_off(id, Some(data.slice(n..)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                st.hand_off(id, Some(data))
            }
            Err(e) => {
                if !entry.closing {
                    log::debug!("{id} I/O error: {e}");
                }
                self.teardown(st, id);
            }
        }
    }

    /// Tears a connection down, drains what that causes, writes and releases the lock.
    pub(crate) fn finish(self: &Arc<Self>, mut st: MutexGuard<'_, State>, id: ConnId) {
        self.teardown(&mut st, id);
        self.drain(&mut st);
        drop(self.flush(st));
    }

    /// Shuts a connection's socket (unblocking its threads), tells the core and drops the
    /// entry. Whoever gets here first does it; the others find the entry gone.
    pub(crate) fn teardown(&self, st: &mut State, id: ConnId) {
        let Some(entry) = st.conns.remove(&id) else {
            return;
        };
        let _ = entry.stream.shutdown(Shutdown::Both);
        entry.wakes.write.notify_one();
        entry.wakes.read.notify_one();
        self.handle.closed();
        // Announces the departure unless the core closed it itself; frees everything.
        st.server.handle_close(id, Instant::now());
        if st.conns.is_empty() {
            self.idle.notify_all();
        }
    }
}

/// Calls the core's `handle_timeout` whenever its next deadline passes, and applies store
/// answers nobody else took.
pub(crate) fn timer_thread(shared: &Arc<Shared>) {
    loop {
        let mut st = shared.lock();
        if st.stopping {
            return;
        }
        let now = Instant::now();
        if st.server.poll_timeout().is_some_and(|at| at <= now) {
            st.server.handle_timeout(now);
        }
        shared.drain(&mut st);
        st = shared.flush(st);
        st.timer_at = st.server.poll_timeout();
        let wait = st
            .timer_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        drop(st);
        match wait {
            Some(wait) => thread::park_timeout(wait),
            None => thread::park(),
        }
    }
}
