//! One connection's task: a reader and a writer side by side until the core says to close.
//!
//! Every idle connection holds this task, so it is a hand-written future of a few words
//! (issue 16: memory per connection) rather than an `async fn` whose state would hold
//! every await point's locals: the reader's and the writer's states are a byte and a
//! count, the socket and the pending output live in the slot.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use futures_lite::ready;
use switchboard_core::ConnId;

use super::{Slot, Socket, State, CLOSING, DONE, READ, READ_BUF, WRITE};

/// Why a connection's task ended.
enum End {
    /// The core said to close it.
    Closed,
    /// Reading or writing failed.
    Io(io::Error),
}

/// Where the reader is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Reads when the core gives it a budget and the socket has bytes.
    Reading,
    /// It has read, and lets every other task have a turn before it reads again (each
    /// read is followed by a yield, so reading is round-robin).
    Yielded,
    /// The peer ended its stream and the core was told.
    Done,
}

/// Runs one connection until the core says to close it or its socket fails, then tells
/// the core. The socket lives in the slot, so this future holds little more than pointers.
pub(super) fn connection<S: Socket>(
    state: Rc<RefCell<State<S>>>,
    id: ConnId,
    slot: Rc<Slot<S>>,
) -> Connection<S> {
    Connection {
        state,
        slot: Some(slot),
        id,
        sides: Sides {
            flushing: 0,
            reader: Reader::Reading,
        },
    }
}

/// The future of [`connection`].
pub(super) struct Connection<S> {
    state: Rc<RefCell<State<S>>>,
    /// `None` once the task has ended and told the core.
    slot: Option<Rc<Slot<S>>>,
    id: ConnId,
    sides: Sides,
}

/// The reader's and the writer's state between two polls.
struct Sides {
    /// Bytes written and waiting for the stream's flush before the core hears of them
    /// (TLS may hold the end of a write in its last record); 0 when none are.
    flushing: u32,
    reader: Reader,
}

impl<S: Socket> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(slot) = this.slot.as_deref() else {
            return Poll::Ready(());
        };
        // The close comes first, so that it wins once the core has said so.
        let end = if slot.has(DONE) {
            End::Closed
        } else {
            match this.sides.poll(&this.state, this.id, slot, cx) {
                Poll::Ready(end) => end,
                // Said while the sides ran (a signal that woke this poll took the waker).
                Poll::Pending if slot.has(DONE) => End::Closed,
                Poll::Pending => {
                    if slot.has(READ | WRITE) {
                        // A signal came after its side had looked: it looks again.
                        cx.waker().wake_by_ref();
                    } else {
                        slot.park(cx);
                    }
                    return Poll::Pending;
                }
            }
        };
        this.finish(end, cx);
        Poll::Ready(())
    }
}

impl<S: Socket> Connection<S> {
    /// Closes the socket and tells the core, once.
    fn finish(&mut self, end: End, cx: &mut Context<'_>) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let id = self.id;
        if let End::Closed = end {
            // Best effort, without waiting: TLS `close_notify` and the FIN ahead of the close.
            let _ = slot.stream.poll_shutdown(cx);
        }
        let closing = slot.has(CLOSING);
        let mut st = self.state.borrow_mut();
        // The socket closes with the last reference to its slot, before it is counted closed.
        st.conns.remove(&id);
        drop(slot);
        st.handle.closed();
        if let End::Io(e) = end {
            // Errors of a connection the core is closing are expected.
            if !closing {
                log::debug!("{id} I/O error: {e}");
            }
        }
        // Announces the departure unless the core closed it itself; frees everything.
        st.server.handle_close(id, Instant::now());
        st.drain();
        if st.conns.is_empty() {
            st.idle.notify();
        }
    }
}

impl Sides {
    /// Polls the reader, then the writer; ready with the first error (the close signal
    /// is the only other way a connection ends: the writer never finishes).
    fn poll<S: Socket>(
        &mut self,
        state: &RefCell<State<S>>,
        id: ConnId,
        slot: &Slot<S>,
        cx: &mut Context<'_>,
    ) -> Poll<End> {
        // Each side takes its signal before it looks, so a signal still raised after
        // they ran came too late for this look (see `Connection::poll`).
        slot.lower(READ | WRITE);
        if self.reader != Reader::Done {
            if let Poll::Ready(Err(e)) = self.poll_read(state, id, slot, cx) {
                return Poll::Ready(End::Io(e));
            }
        }
        self.poll_write(state, id, slot, cx).map(End::Io)
    }

    /// Reads into the core as far as its read budget allows; a connection with no budget
    /// (over its rate with a full inbound queue, or closing) is not read at all until the
    /// core names it in `poll_readable`. At the end of the stream the core is told and the
    /// reader stops; the writer flushes the core's last output. Ready only when done or
    /// failed.
    fn poll_read<S: Socket>(
        &mut self,
        state: &RefCell<State<S>>,
        id: ConnId,
        slot: &Slot<S>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.reader == Reader::Yielded {
            self.reader = Reader::Reading;
        }
        loop {
            // A wake-up from the core only asks for a look at the budget, which follows.
            slot.lower(READ);
            if state.borrow().server.read_budget(id) == 0 {
                return Poll::Pending;
            }
            match read_into_core(state, id, slot) {
                // Paused meanwhile (the core closed it): back to waiting for the budget.
                Ok(None) => continue,
                Ok(Some(Read { n: 0, .. })) => {
                    let mut st = state.borrow_mut();
                    st.server.handle_eof(id, Instant::now());
                    st.drain();
                    self.reader = Reader::Done;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match slot.stream.poll_readable(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => continue,
                    }
                }
                // A short read of plain TCP almost always emptied the socket: wait for
                // readiness instead of a read that would say `WouldBlock` (issue 16:
                // syscalls per registration). Readiness is level-triggered (async-io) or
                // kept until a read says `WouldBlock` (tokio), so bytes that came
                // meanwhile still wake the task. TLS may hold decrypted bytes back, so it
                // reads on until `WouldBlock`.
                Ok(Some(Read { short: true, .. })) if slot.stream.is_plain() => {
                    match wait_readable(slot, cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Ok(Some(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // One read per turn: every other connection is served before this one reads
            // again.
            self.reader = Reader::Yielded;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
    }

    /// Writes what the flusher's direct write (`write_now`) left, and what the core queues
    /// for a TLS connection, reporting every write; the core says when it is time to
    /// close. Ready only with an error.
    fn poll_write<S: Socket>(
        &mut self,
        state: &RefCell<State<S>>,
        id: ConnId,
        slot: &Slot<S>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Error> {
        loop {
            if self.flushing > 0 {
                // TLS may hold the end of it in its last record: the core hears of bytes
                // once they are on their way, or a close could drop them.
                match slot.stream.poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(e),
                    Poll::Ready(Ok(())) => {}
                }
                let n = std::mem::take(&mut self.flushing) as usize;
                let mut st = state.borrow_mut();
                st.server.handle_written(id, n);
                // A closing connection's last write makes the core say to close it.
                st.drain();
                continue;
            }
            // A signal only asks for a look at the output, which follows.
            slot.lower(WRITE);
            let rest = slot.out.take();
            let Some(mut data) =
                rest.or_else(|| Some(state.borrow_mut().server.take_transmit(id)?.data))
            else {
                return Poll::Pending;
            };
            // At most what `flushing` counts; the rest goes with the next write.
            let result = slot
                .stream
                .try_write(&data[..data.len().min(u32::MAX as usize)]);
            if let Ok(n) = result {
                data.advance(n);
            }
            // While it is in the slot, `write_now` leaves this connection's output to us.
            if !data.is_empty() {
                slot.out.set(Some(data));
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match slot.stream.poll_writable(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(e),
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Ok(0) => return Poll::Ready(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.flushing = u32::try_from(n).unwrap_or(u32::MAX),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(e),
            }
        }
    }
}

/// What one read brought.
struct Read {
    /// Bytes read; 0 at the end of the stream.
    n: usize,
    /// Fewer than asked for, so the socket is most likely empty now.
    short: bool,
}

/// Reads once into the shared buffer, no more than the read budget, and hands what came
/// to the core; `None` if the budget is 0 (the core paused or closed it meanwhile).
fn read_into_core<S: Socket>(
    state: &RefCell<State<S>>,
    id: ConnId,
    slot: &Slot<S>,
) -> io::Result<Option<Read>> {
    let mut st = state.borrow_mut();
    let st = &mut *st;
    let budget = st.server.read_budget(id).min(READ_BUF);
    if budget == 0 {
        return Ok(None);
    }
    let n = slot.stream.try_read(&mut st.buf[..budget])?;
    if n > 0 {
        st.server.handle_input(id, &st.buf[..n], Instant::now());
        st.drain();
    }
    Ok(Some(Read {
        n,
        short: n < budget,
    }))
}

/// Waits until the socket is readable, past a readiness that may be the one the last read
/// already answered: async-io reports an event that came since the task last waited once,
/// and only the look after it registers for the next. Pending once registered.
fn wait_readable<S: Socket>(slot: &Slot<S>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    ready!(slot.stream.poll_readable(cx))?;
    slot.stream.poll_readable(cx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Stream;
    use crate::Handle;

    /// A socket the size of async-io's `Async<TcpStream>` (a pointer to its reactor
    /// entry and a file descriptor), the one smol and async-std give the driver. The
    /// size test only builds the connection's future, never polls it.
    struct Unpolled {
        _source: std::sync::Arc<()>,
        _fd: i32,
    }

    impl Socket for Unpolled {
        fn try_read(&self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn try_write(&self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn poll_readable(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }

        fn poll_writable(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }

        fn set_nodelay(&self, _: bool) -> io::Result<()> {
            Ok(())
        }

        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Counts its wake-ups.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_signal_is_kept_until_lowered_and_wakes_the_parked_task_once() {
        let slot = Slot::new(Stream::Plain(()));
        // Sent while no task waits: kept for the next look.
        slot.signal(WRITE);
        assert!(slot.has(WRITE) && !slot.has(READ | DONE));
        slot.lower(WRITE);
        assert!(!slot.has(WRITE));
        let counter = std::sync::Arc::new(Counter(Default::default()));
        let waker = std::task::Waker::from(counter.clone());
        let cx = Context::from_waker(&waker);
        slot.park(&cx);
        slot.park(&cx);
        slot.signal(READ);
        slot.signal(DONE);
        let wakes = counter.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(wakes, 1, "one wake-up until the task parks again");
        assert!(slot.has(READ) && slot.has(DONE));
    }

    /// Every idle connection holds one of these futures and one slot: they must stay small
    /// (issue 16: at most 1.5 KB per idle connection in all; the future was 352 bytes as
    /// an `async fn`, the slot 160 with a `Notify` per signal). Sizes printed for the record.
    #[test]
    fn connection_future_is_small() {
        let socket = Unpolled {
            _source: Default::default(),
            _fd: 0,
        };
        let mut server = switchboard_core::Server::new(switchboard_core::Config::default());
        let id = server
            .open_from(std::net::Ipv4Addr::LOCALHOST.into(), Instant::now())
            .expect("open");
        let state = Rc::new(RefCell::new(State {
            server,
            conns: Default::default(),
            buf: Box::new([]),
            timer_at: None,
            timer: Rc::default(),
            idle: Rc::default(),
            store: None,
            bus: None,
            refusing: 0,
            dirty: Vec::new(),
            flusher: Rc::default(),
            stopped: false,
            handle: Handle::new(),
        }));
        let slot = Rc::new(Slot::new(Stream::Plain(socket)));
        let task = connection(state, id, slot.clone());
        let size = std::mem::size_of_val(&task);
        println!(
            "connection future: {size} bytes; slot: {} bytes",
            std::mem::size_of_val(&*slot)
        );
        assert!(size <= 32, "the connection future grew to {size} bytes");
        let slot_size = std::mem::size_of_val(&*slot);
        assert!(slot_size <= 72, "the slot grew to {slot_size} bytes");
    }
}
