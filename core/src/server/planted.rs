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
}
