//! One connection's task: a reader and a writer side by side until the core says to close.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::Buf;
use futures_lite::future::{or, poll_fn, poll_once, try_zip, yield_now};
use futures_lite::ready;
use switchboard_core::ConnId;

use super::{Slot, Socket, State, READ_BUF};
use crate::Handle;

/// Why a connection's task ended.
enum End {
    /// The core said to close it.
    Closed,
    /// Reading or writing failed.
    Io(io::Error),
}

/// Runs one connection until the core says to close it or its socket fails, then tells
/// the core. The socket lives in the slot, so this future holds little more than pointers.
pub(super) async fn connection<S: Socket>(
    state: Rc<RefCell<State<S>>>,
    handle: Handle,
    id: ConnId,
    slot: Rc<Slot<S>>,
) {
    let sides = async {
        let reader = read_side(&state, id, &slot);
        let writer = write_side(&state, id, &slot);
        match try_zip(reader, writer).await {
            Ok(_) => End::Closed,
            Err(end) => end,
        }
    };
    // The close watch goes first so that it wins once the core has said so.
    let end = or(closed(&slot), sides).await;
    if let End::Closed = end {
        // Best effort, without waiting: TLS `close_notify` and the FIN ahead of the close.
        let _ = poll_once(poll_fn(|cx| slot.stream.poll_shutdown(cx))).await;
    }
    let closing = slot.closing.get();
    let mut st = state.borrow_mut();
    // The socket closes with the last reference to its slot, before it is counted closed.
    st.conns.remove(&id);
    drop(slot);
    handle.closed();
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

/// Reads into the core as far as its read budget allows; a connection with no budget
/// (over its rate with a full inbound queue, or closing) is not read at all until the core
/// names it in `poll_readable`. At the end of the stream the core is told and the reader
/// stops; the writer flushes the core's last output.
async fn read_side<S: Socket>(
    state: &RefCell<State<S>>,
    id: ConnId,
    slot: &Slot<S>,
) -> Result<(), End> {
    loop {
        let budget = state.borrow().server.read_budget(id);
        if budget == 0 {
            slot.reader.wait().await;
            continue;
        }
        let read = poll_fn(|cx| loop {
            match read_into_core(state, id, slot) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(slot.stream.poll_readable(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                result => return Poll::Ready(result),
            }
        })
        .await;
        match read {
            // Paused meanwhile (the core closed it): back to waiting for the budget.
            Ok(None) => continue,
            Ok(Some(0)) => {
                let mut st = state.borrow_mut();
                st.server.handle_eof(id, Instant::now());
                st.drain();
                return Ok(());
            }
            Ok(Some(_)) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Io(e)),
        }
        // One read per turn: every other connection is served before this one reads again.
        yield_now().await;
    }
}

/// Reads once into the shared buffer, no more than the read budget, and hands what came
/// to the core; `None` if the budget is 0 (the core paused or closed it meanwhile).
fn read_into_core<S: Socket>(
    state: &RefCell<State<S>>,
    id: ConnId,
    slot: &Slot<S>,
) -> io::Result<Option<usize>> {
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
    Ok(Some(n))
}

/// Writes what the flusher's direct write (`write_now`) left, and what the core queues
/// for a TLS connection, reporting every write; the core says when it is time to close.
async fn write_side<S: Socket>(
    state: &RefCell<State<S>>,
    id: ConnId,
    slot: &Slot<S>,
) -> Result<(), End> {
    loop {
        let rest = slot.out.take();
        let Some(data) = rest.or_else(|| Some(state.borrow_mut().server.take_transmit(id)?.data))
        else {
            slot.writer.wait().await;
            continue;
        };
        // While it is in the slot, `write_now` leaves this connection's output to us.
        slot.out.set(Some(data));
        let written = poll_fn(|cx| loop {
            let mut data = slot.out.take().unwrap_or_default();
            let result = slot.stream.try_write(&data);
            if let Ok(n) = result {
                data.advance(n);
            }
            if !data.is_empty() {
                slot.out.set(Some(data));
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(slot.stream.poll_writable(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                result => return Poll::Ready(result),
            }
        })
        .await;
        let error = match written {
            Ok(0) => io::ErrorKind::WriteZero.into(),
            Ok(n) => {
                // TLS may hold the end of it in its last record: the core hears of bytes
                // once they are on their way, or a close could drop them.
                if let Err(e) = poll_fn(|cx| slot.stream.poll_flush(cx)).await {
                    return Err(End::Io(e));
                }
                let mut st = state.borrow_mut();
                st.server.handle_written(id, n);
                // A closing connection's last write makes the core say to close it.
                st.drain();
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        return Err(End::Io(error));
    }
}

/// Resolves once the core says to close the socket now.
async fn closed<S>(slot: &Slot<S>) -> End {
    loop {
        if slot.done.get() {
            return End::Closed;
        }
        slot.closer.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use async_io::Async;

    use super::*;
    use crate::notify::Notify;
    use crate::tls::Stream;

    /// Every idle connection holds one of these futures: it must stay small (issue 16: at
    /// most 1.5 KB per idle connection in all). Its size is printed for the record.
    #[test]
    fn connection_future_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = listener.local_addr().expect("local_addr");
        let socket = Async::new(TcpStream::connect(peer).expect("connect")).expect("async");
        let mut server = switchboard_core::Server::new(switchboard_core::Config::default());
        let id = server.open_from(peer.ip(), Instant::now()).expect("open");
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
        }));
        let slot = Rc::new(Slot {
            peer,
            stream: Stream::Plain(socket),
            out: Default::default(),
            writer: Notify::default(),
            reader: Notify::default(),
            closer: Notify::default(),
            closing: Default::default(),
            done: Default::default(),
        });
        let task = connection(state, Handle::new(), id, slot.clone());
        let size = std::mem::size_of_val(&task);
        println!(
            "connection future: {size} bytes; slot: {} bytes",
            std::mem::size_of_val(&*slot)
        );
        assert!(size <= 384, "the connection future grew to {size} bytes");
    }
}
