//! Redis as the bus of a Switchboard cluster.
//!
//! The core emits [`BusOp`]s ([`switchboard_core::Server::poll_bus`]) and takes
//! [`BusEvent`]s back ([`switchboard_core::Server::handle_bus`]); this crate runs the ops
//! against Redis. A [`Worker`] owns two connections, each on a thread of its own: one for
//! commands (publishes, claims, releases, lease renewals), executed in op order and
//! pipelined, and one subscribed to the node's channels. Both runtimes use it the same way,
//! as they use the history store's thread.
//!
//! When Redis cannot be reached the worker reports [`BusEvent::Down`], drops the ops it is
//! given (the core resyncs after [`BusEvent::Up`]), and reconnects with a backoff capped at
//! [`MAX_BACKOFF`]. Nothing Redis says, however odd, makes it panic.

#![forbid(unsafe_code)]

mod emit;
mod sub;
mod worker;

use std::time::Instant;

use switchboard_core::Server;

pub use switchboard_core::{BusEvent, BusOp, ClusterOptions};
pub use worker::{Worker, MAX_BACKOFF};

/// Why a bus could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BusError(pub String);

/// A Redis bus ready for a server: where Redis is and how this node joins the cluster.
pub struct Cluster {
    client: redis::Client,
    options: ClusterOptions,
}

impl Cluster {
    /// Checks `url` (`redis://HOST:PORT`, optionally with a password or a database number)
    /// without connecting: Redis may come up later.
    pub fn new(url: &str, options: ClusterOptions) -> Result<Cluster, BusError> {
        let client = redis::Client::open(url)
            .map_err(|e| BusError(format!("bad Redis address {url:?}: {e}")))?;
        Ok(Cluster { client, options })
    }

    /// How this node joins the cluster.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Redis's address as `HOST:PORT`, for log lines (never the password).
    pub fn address(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    /// Switches the cluster on in `server` and starts the worker, whose events go to `sink`
    /// (to be handed to the server with `handle_bus`, in the order they come).
    pub fn start(
        self,
        server: &mut Server,
        sink: impl Fn(BusEvent) + Send + Sync + 'static,
    ) -> std::io::Result<Worker> {
        server.enable_cluster(self.options.clone(), Instant::now());
        Worker::spawn(self.client, &self.options, Box::new(sink))
    }
}

/// A value that differs each time a node starts: the wall clock in milliseconds.
pub fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
