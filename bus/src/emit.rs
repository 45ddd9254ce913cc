//! The one door events leave by, shared by the two threads, so a message read on a
//! connection that has since gone down never follows the `Down`.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use crate::BusEvent;

/// Where the worker's events go.
pub(crate) type Sink = Box<dyn Fn(BusEvent) + Send + Sync>;

/// What the core was last told about the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// Nothing yet.
    Nothing,
    /// `Up`, for this session.
    Up(u64),
    /// `Down`.
    Down,
}

/// Hands events to the sink, one at a time, in the order the threads send them.
pub(crate) struct Emitter {
    told: Mutex<Told>,
    sink: Sink,
}

impl Emitter {
    pub(crate) fn new(sink: Sink) -> Emitter {
        Emitter {
            told: Mutex::new(Told::Nothing),
            sink,
        }
    }

    /// Session `session` is up.
    pub(crate) fn up(&self, session: u64) {
        let mut told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        *told = Told::Up(session);
        (self.sink)(BusEvent::Up);
    }

    /// The bus is down; returns whether that is news (the core is told once per outage).
    pub(crate) fn down(&self) -> bool {
        let mut told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        if *told == Told::Down {
            return false;
        }
        *told = Told::Down;
        (self.sink)(BusEvent::Down);
        true
    }

    /// A message that arrived in session `session`; dropped if that session is over.
    pub(crate) fn message(&self, session: u64, channel: String, payload: Bytes) {
        let told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        if *told == Told::Up(session) {
            (self.sink)(BusEvent::Message { channel, payload });
        }
    }

    /// A claim's answer or a lost key, from the command thread while it is up.
    pub(crate) fn event(&self, event: BusEvent) {
        let _told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        (self.sink)(event);
    }
}
