//! Deliberately wrong server behaviours for the simulation tests to catch.
//!
//! Compiled only with the `planted-bugs` feature: a test switches one on with
//! [`Server::plant_bug`](super::Server::plant_bug) and asserts that the simulator reports
//! it. Without the feature none of this exists, so release builds pay nothing.

/// A deliberate server bug, for proving that the simulation tests can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Each room message also goes to one registered connection outside the room.
    DeliverToNonMember,
    /// A room message is queued ahead of the room message queued just before it, in the
    /// queue of the first member that holds two in a row.
    ReorderMessages,
    /// Leaving a room is announced to the leaver only, not to the members who stay.
    SkipLeaveNotice,
    /// A request that finds its connection over the rate is dropped instead of waiting:
    /// the old flood control, without its error.
    DropRateLimited,
    /// A history replay leaves out the newest stored message it loaded.
    ReplaySkipsNewest,
    /// A native client joins a room with a key (`+k`) without giving it.
    SkipKeyForNative,
    /// A banned IRC member's message reaches the room (unless it is moderated).
    BanIgnoredForIrc,
    /// A room message from another cluster node is relayed to local members twice.
    DuplicateRemoteMessage,
    /// A dead cluster node's nick keys are never released.
    KeepDeadNicks,
}

use super::conn::{Phase, Proto};
use super::rooms::Room;
use super::{Fanout, Server};
use crate::ConnId;

impl Server {
    /// The planted bugs that act on a room message just relayed.
    pub(super) fn planted_say(&mut self, sender: ConnId, key: &str, fan: &mut Fanout<'_>) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        match self.planted {
            Some(PlantedBug::DeliverToNonMember) => {
                // The lowest id, so the choice does not depend on hash order.
                let victim = self
                    .conns
                    .map
                    .iter()
                    .filter(|(id, c)| c.phase == Phase::Ready && !room.members.contains(id))
                    .map(|(id, _)| *id)
                    .min();
                if let Some(victim) = victim {
                    self.conns.deliver(victim, fan);
                }
            }
            Some(PlantedBug::ReorderMessages) => {
                let is_message = |f: &bytes::Bytes| {
                    f.get(crate::packet::LENGTH_PREFIX)
                        == Some(&crate::packet::server_type::MESSAGE)
                };
                for member in room.members.clone().into_iter().chain([sender]) {
                    let Some(conn) = self.conns.get_mut(&member) else {
                        continue;
                    };
                    let n = conn.out.len();
                    if n >= 2 && is_message(&conn.out[n - 1]) && is_message(&conn.out[n - 2]) {
                        conn.out.swap(n - 1, n - 2);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

impl Server {
    /// The planted bug that acts when a request must wait for the rate: it is decoded and
    /// thrown away.
    pub(super) fn planted_drop(&mut self, id: ConnId, input: &mut &[u8]) {
        if self.planted != Some(PlantedBug::DropRateLimited) {
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match &mut conn.proto {
            Proto::Native(decoder) => {
                if let Ok(Some(_)) = decoder.decode(input) {
                    conn.requests = conn.requests.wrapping_add(1);
                }
            }
            Proto::Irc(session) => {
                session.lines.decode(input);
            }
            Proto::Unknown => {}
        }
    }
}

impl Server {
    /// Whether the planted bug lets `id` join past a room key.
    pub(super) fn planted_skips_key(&self, id: ConnId) -> bool {
        self.planted == Some(PlantedBug::SkipKeyForNative)
            && self.conns.get(&id).is_some_and(|c| !c.proto.is_irc())
    }
}

impl Server {
    /// Whether the planted bug lets `id` speak in `room` past a ban.
    pub(super) fn planted_ban_ignored(&self, id: ConnId, room: &Room) -> bool {
        self.planted == Some(PlantedBug::BanIgnoredForIrc)
            && self.conns.get(&id).is_some_and(|c| c.proto.is_irc())
            && room.is_member(id)
            && !room.moderated
    }
}
