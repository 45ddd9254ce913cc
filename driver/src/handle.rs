//! The thread-safe handle that shuts a server down and counts its connections.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use futures_lite::future::poll_fn;

/// Controls a running server from any thread.
#[derive(Clone, Debug)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stop: AtomicBool,
    /// The accept loop's waker while it waits for a connection.
    waker: Mutex<Option<Waker>>,
    connections: AtomicUsize,
}

impl Handle {
    pub(crate) fn new() -> Handle {
        Handle {
            inner: Arc::default(),
        }
    }

    /// Stops accepting, says bye to every client and lets `serve` return once the byes are written.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let waker = self
            .inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether [`Handle::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// Open sockets, including those closing.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn opened(&self) {
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn closed(&self) {
        self.inner.connections.fetch_sub(1, Ordering::SeqCst);
    }

    /// Resolves once [`Handle::shutdown`] is called.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.is_shutdown() {
                return Poll::Ready(());
            }
            *self
                .inner
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            // Checked again: `shutdown` may have run between the check and storing the waker.
            if self.is_shutdown() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}
