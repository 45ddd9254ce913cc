//! The tasks beside the accept loops: the core's timer, the store's answers, the bus's events.

use std::cell::RefCell;
use std::time::Instant;

use futures_lite::future::{or, yield_now};
use switchboard_bus::BusEvent;
use switchboard_store::Answer;

use super::{Runtime, Socket, State};
use crate::notify::Notify;

/// Most bus events applied before the output is drained and other tasks get a turn.
const BUS_BATCH: usize = 256;

/// Applies the history store's answers as they come, then drains what they released.
pub(super) async fn store_answers<S: Socket>(
    state: &RefCell<State<S>>,
    answers: async_channel::Receiver<Vec<Answer>>,
) {
    while let Ok(batch) = answers.recv().await {
        let mut st = state.borrow_mut();
        if let Some(why) = switchboard_store::apply(batch, &mut st.server) {
            log::error!("history store failed: {why}");
        }
        st.drain();
    }
    // No store: nothing will come.
    std::future::pending::<()>().await;
}

/// Applies the bus's events as they come (all that are waiting, then one drain).
pub(super) async fn bus_events<S: Socket>(
    state: &RefCell<State<S>>,
    events: async_channel::Receiver<BusEvent>,
) {
    while let Ok(event) = events.recv().await {
        {
            let mut st = state.borrow_mut();
            st.server.handle_bus(event, Instant::now());
            for _ in 1..BUS_BATCH {
                match events.try_recv() {
                    Ok(event) => st.server.handle_bus(event, Instant::now()),
                    Err(_) => break,
                }
            }
            st.drain();
        }
        // A flood from the bus must not starve the connections' tasks.
        yield_now().await;
    }
    // No cluster: nothing will come.
    std::future::pending::<()>().await;
}

/// Calls the core's `handle_timeout` whenever its next deadline passes.
pub(super) async fn keepalive<R: Runtime, S: Socket>(state: &RefCell<State<S>>, wake: &Notify) {
    loop {
        let next = {
            let mut st = state.borrow_mut();
            let next = st.server.poll_timeout();
            st.timer_at = next;
            next
        };
        match next {
            Some(at) => or(R::sleep_until(at), wake.wait()).await,
            None => wake.wait().await,
        }
        let now = Instant::now();
        let mut st = state.borrow_mut();
        if st.server.poll_timeout().is_some_and(|at| at <= now) {
            st.server.handle_timeout(now);
            st.drain();
        }
    }
}
