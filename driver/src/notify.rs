//! A wake-up signal between tasks of one thread.

use std::cell::Cell;
use std::future::Future;
use std::task::{Poll, Waker};

use futures_lite::future::poll_fn;

/// Wakes one waiting task; a notification sent while no task waits is kept for the next wait.
#[derive(Default)]
pub(crate) struct Notify {
    notified: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    /// Marks the signal and wakes the task waiting on it, if any.
    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Waits for a notification, consuming it.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.notified.replace(false) {
                return Poll::Ready(());
            }
            // Only one task waits on a given signal, so its waker simply replaces the last.
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
    }
}
