//! The server's peer side: what it tells the other nodes of a cluster and what it learns
//! from them. Every effect leaves as a [`BusOp`] and every answer comes back as a
//! [`BusEvent`]; docs/CLUSTER.md is the design.

use std::collections::VecDeque;
use std::time::Instant;

use super::Server;
use crate::bus::{BusEvent, BusOp, ClusterOptions};

/// The cluster state of one node.
#[derive(Debug)]
pub(super) struct Cluster {
    /// How this node joined.
    pub(super) opts: ClusterOptions,
    /// Ops waiting for the adapter, oldest first.
    pub(super) ops: VecDeque<BusOp>,
}

impl Server {
    /// Switches the cluster on: this node shares nicknames, rooms and messages with the
    /// other nodes on the bus. Call before serving.
    pub fn enable_cluster(&mut self, opts: ClusterOptions, now: Instant) {
        let _ = now;
        self.cluster = Some(Box::new(Cluster {
            opts,
            ops: VecDeque::new(),
        }));
    }

    /// This node's name, when the cluster is switched on.
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.opts.node.as_str())
    }

    /// The next bus op to run. Ops must be run in the order they are returned.
    pub fn poll_bus(&mut self) -> Option<BusOp> {
        self.cluster.as_mut()?.ops.pop_front()
    }

    /// Takes what the bus reports: a message from another node, a claim's answer, the bus
    /// going down or coming back.
    pub fn handle_bus(&mut self, event: BusEvent, now: Instant) {
        // The cluster branch (issue 15) gives these their meaning.
        let _ = (event, now);
    }
}
