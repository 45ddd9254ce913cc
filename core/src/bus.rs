//! The cluster as the core sees it: what a node asks of the shared bus and what comes back.
//!
//! The core never talks to Redis. With the cluster switched on
//! ([`crate::Server::enable_cluster`]) it hands the adapter [`BusOp`]s through
//! [`crate::Server::poll_bus`]; the adapter runs them on a bus (Redis pub/sub and keys, in
//! `switchboard-bus`; a simulated bus in tests/sim) and reports what happened with
//! [`crate::Server::handle_bus`]. docs/CLUSTER.md describes the channels, keys and payloads.

use bytes::Bytes;

/// How a node joins the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// A value that differs each time the node starts (e.g. start time in ms), so the others
    /// can tell a restarted node from the one that died.
    pub incarnation: u64,
    /// Prefix of every channel and key (lets several clusters share one Redis).
    pub prefix: String,
}

impl ClusterOptions {
    /// Options for node `node`, started as `incarnation`, with the default `sb:` prefix.
    pub fn new(node: impl Into<String>, incarnation: u64) -> ClusterOptions {
        ClusterOptions {
            node: node.into(),
            incarnation,
            prefix: "sb:".into(),
        }
    }
}

/// A request from the core to the bus. Ops are executed in the order they are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusOp {
    /// Start receiving messages published on `channel`.
    Subscribe {
        /// The channel's full name.
        channel: String,
    },
    /// Stop receiving messages published on `channel`.
    Unsubscribe {
        /// The channel's full name.
        channel: String,
    },
    /// Publish `payload` on `channel` to every subscribed node (this one included).
    Publish {
        /// The channel's full name.
        channel: String,
        /// The message, opaque to the bus.
        payload: Bytes,
    },
    /// Take `key` for `owner` unless someone holds it (Redis: `SET key owner NX PX lease`);
    /// answered by [`BusEvent::Claimed`] with the same `id`. While the bus is up it renews
    /// every key it claimed for this node each `lease_ms / 3` and reports a key it could not
    /// renew (gone or owned by another) with [`BusEvent::Lost`]. A key that already holds
    /// `owner` counts as taken (answer `true`, lease restarted): the core claims its keys
    /// again after `Up`, when they may not have expired yet.
    Claim {
        /// Names the answer.
        id: u64,
        /// The key's full name.
        key: String,
        /// The value that marks the key as this node's.
        owner: String,
        /// How long the key lives without renewal, in milliseconds.
        lease_ms: u64,
    },
    /// Delete `key` if (and only if) it still holds `owner`; stops renewing it.
    Release {
        /// The key's full name.
        key: String,
        /// The value the key must hold to be deleted.
        owner: String,
    },
}

/// What the bus reports back to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusEvent {
    /// The bus is reachable (first connection, or back after [`BusEvent::Down`]).
    /// Subscriptions and claims made before a `Down` are gone: the core subscribes and claims
    /// again, and republishes what the other nodes must know.
    Up,
    /// The bus is unreachable; ops polled meanwhile are dropped by the bus.
    Down,
    /// A message published on a channel this node subscribed to.
    Message {
        /// The channel's full name.
        channel: String,
        /// The message as published.
        payload: Bytes,
    },
    /// The answer to [`BusOp::Claim`] `id`: `true` if the key is now this node's.
    Claimed {
        /// The claim's id.
        id: u64,
        /// Whether the key was taken.
        ok: bool,
    },
    /// A claimed key could not be renewed: it expired or another owner holds it.
    Lost {
        /// The key's full name.
        key: String,
    },
}
