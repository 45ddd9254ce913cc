//! The counts LUSERS reports, kept as connections change instead of counted per request.
//!
//! LUSERS is part of every IRC registration's welcome burst, so counting the connections
//! there made each registration O(connections) (0.5 ms at 10,000, 2.8 ms at 19,000). The
//! server keeps a `Census` instead, in the connection table (`Conns`), whose methods below
//! are the only way to add or remove a connection or change what it counts as (its phase,
//! its IRC modes `i` and `o`), so the counts follow every change without a caller taking
//! part; `Census::recount` is the definition the kept counts must always equal
//! (tests_census.rs checks it).

use crate::server::conn::{Conn, Phase, Proto};
use crate::server::Conns;
use crate::ConnId;

/// How many local connections are registering, and how many registered IRC users are
/// invisible or operators.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Census {
    /// Connections still registering (`Hello`): LUSERS' "unknown connections".
    pub unknown: usize,
    /// Registered IRC users with mode `i`.
    pub invisible: usize,
    /// Registered IRC users with mode `o`.
    pub opers: usize,
}

impl Census {
    /// One connection's share of the counts. Users of other cluster nodes have none: they
    /// are counted among the nick holders only, as before counters were kept.
    pub fn of(c: &Conn) -> Census {
        let mut share = Census::default();
        if c.remote {
            return share;
        }
        match (&c.phase, &c.proto) {
            (Phase::Hello, _) => share.unknown = 1,
            (Phase::Ready, Proto::Irc(s)) => {
                share.invisible = usize::from(s.invisible);
                share.opers = usize::from(s.oper);
            }
            _ => {}
        }
        share
    }

    /// The counts taken afresh over every connection.
    #[cfg(test)]
    pub fn recount<'a>(conns: impl IntoIterator<Item = &'a Conn>) -> Census {
        let mut all = Census::default();
        for c in conns {
            all.add(Census::of(c));
        }
        all
    }

    /// Counts a connection's share in.
    pub fn add(&mut self, share: Census) {
        self.unknown += share.unknown;
        self.invisible += share.invisible;
        self.opers += share.opers;
    }

    /// Takes a connection's share (counted in before) out.
    pub fn remove(&mut self, share: Census) {
        // Saturating: a miscount must show in LUSERS, never wrap or panic.
        self.unknown = self.unknown.saturating_sub(share.unknown);
        self.invisible = self.invisible.saturating_sub(share.invisible);
        self.opers = self.opers.saturating_sub(share.opers);
    }
}

impl Conns {
    /// Adds connection `id`, counting it in.
    pub(super) fn insert(&mut self, id: ConnId, conn: Box<Conn>) {
        self.census.add(Census::of(&conn));
        self.map.insert(id, conn);
    }

    /// Removes connection `id`, counting it out.
    pub(super) fn remove(&mut self, id: ConnId) -> Option<Box<Conn>> {
        let conn = self.map.remove(&id)?;
        self.census.remove(Census::of(&conn));
        Some(conn)
    }

    /// Changes connection `id` with `change`, which is how its phase and its IRC modes `i`
    /// and `o` are set, and counts it again; `None` if it is gone.
    pub(super) fn change<R>(
        &mut self,
        id: ConnId,
        change: impl FnOnce(&mut Conn) -> R,
    ) -> Option<R> {
        let conn = self.map.get_mut(&id)?;
        let before = Census::of(conn);
        let r = change(conn);
        let after = Census::of(conn);
        if before != after {
            self.census.remove(before);
            self.census.add(after);
        }
        Some(r)
    }

    /// What LUSERS counts now.
    pub(super) fn census(&self) -> Census {
        self.census
    }
}
