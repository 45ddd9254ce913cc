//! The counts LUSERS reports, kept as connections change instead of counted per request.
//!
//! LUSERS is part of every IRC registration's welcome burst, so counting the connections
//! there made each registration O(connections) (0.5 ms at 10,000, 2.8 ms at 19,000). The
//! server keeps a `Census` instead, changed wherever a connection's share can change (it
//! opens, registers, departs, closes, goes away, sets mode `i` or `o`); `Census::recount`
//! is the definition the kept counts must always equal (tests_census.rs checks it).

use crate::server::conn::{Conn, Phase, Proto};
use crate::server::Server;
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

    /// Replaces a connection's share `before` a change with its share `after` it.
    pub fn update(&mut self, before: Census, after: Census) {
        if before != after {
            self.remove(before);
            self.add(after);
        }
    }
}

impl Server {
    /// Connection `id`'s share of the census now; none once it is gone.
    pub(crate) fn census_share(&self, id: ConnId) -> Census {
        self.conns.get(&id).map(Census::of).unwrap_or_default()
    }

    /// Records that connection `id`'s share may have changed from `before`.
    pub(crate) fn census_changed(&mut self, id: ConnId, before: Census) {
        let after = self.census_share(id);
        self.census.update(before, after);
    }
}
