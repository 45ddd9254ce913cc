//! The IRC front: lines in, chat operations, IRC replies and numerics out.
//!
//! An IRC channel `#name` is the room `name`; nicknames are shared with native clients.
//! The supported subset is documented in docs/IRC.md. The rules themselves live in
//! `chat.rs`; this front parses commands (`commands.rs`, `registration.rs`,
//! `queries.rs`), renders answers (`replies.rs`) and IRC's forms of what others see
//! (`relays.rs`); `session.rs` holds a connection's IRC state.

mod commands;
mod queries;
mod registration;
mod relays;
mod replies;
pub(super) use replies::Constants;
pub(crate) mod session;

use bytes::Bytes;

pub(crate) use relays::{caps_for, msgid, parse_msgid, render, replay, with_tags, Form};
pub(crate) use session::{cap, IrcSession};

use crate::server::conn::Proto;
use crate::server::Server;
use crate::ConnId;

/// The IRC channel name of a room.
pub(super) fn chan(room: &str) -> String {
    format!("#{room}")
}

impl Server {
    pub(super) fn session(&mut self, id: ConnId) -> Option<&mut IrcSession> {
        match &mut self.conns.get_mut(&id)?.proto {
            Proto::Irc(s) => Some(s),
            _ => None,
        }
    }

    /// Queues `bytes` for `id` after the answer to the command it is sending.
    pub(crate) fn irc_defer(&mut self, id: ConnId, bytes: Bytes) {
        if let Some(s) = self.session(id) {
            s.command
                .get_or_insert_with(Box::default)
                .deferred
                .push(bytes);
        }
    }

    /// The number of the `chathistory` batch a replay goes in, if it is `wanted` in one
    /// and the connection has the batch capability; `None` for everyone else.
    pub(crate) fn irc_replay_batch(&mut self, id: ConnId, wanted: bool) -> Option<u64> {
        (wanted && self.irc_caps(id) & cap::BATCH != 0).then(|| self.irc_next_batch(id))
    }

    /// The number of the connection's next batch.
    pub(crate) fn irc_next_batch(&mut self, id: ConnId) -> u64 {
        match self.session(id) {
            Some(s) => {
                s.batches += 1;
                s.batches
            }
            None => 0,
        }
    }

    /// The IRCv3 capabilities a connection enabled (none for native ones).
    pub(crate) fn irc_caps(&self, id: ConnId) -> u16 {
        match self.conns.get(&id).map(|c| &c.proto) {
            Some(Proto::Irc(s)) => s.caps,
            _ => 0,
        }
    }
}
