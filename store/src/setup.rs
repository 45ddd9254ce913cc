//! Handing a store to a runtime: rooms read at startup, then a store thread.

use std::time::Instant;

use switchboard_core::{HistoryOptions, RoomRecord, Server};

use crate::{unix_ms, Answer, HistoryStore, StoreError, Worker};

/// A store ready for a server: opened, its rooms read, with how the core serves history.
pub struct History {
    store: Box<dyn HistoryStore>,
    options: HistoryOptions,
    rooms: Vec<RoomRecord>,
}

impl History {
    /// Reads the store's rooms (so a broken store fails here, before serving).
    pub fn new(
        mut store: Box<dyn HistoryStore>,
        options: HistoryOptions,
    ) -> Result<History, StoreError> {
        let rooms = store.rooms()?;
        Ok(History {
            store,
            options,
            rooms,
        })
    }

    /// Rooms the store knows.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Switches history on in `server` and starts the store thread, whose answers go to
    /// `answer` (to be applied to the server with [`Answer::apply`], in order).
    pub fn start(
        self,
        server: &mut Server,
        answer: impl FnMut(Vec<Answer>) + Send + 'static,
    ) -> std::io::Result<Worker> {
        server.enable_history(self.options, Instant::now(), unix_ms(), self.rooms);
        Worker::spawn(self.store, answer)
    }
}
