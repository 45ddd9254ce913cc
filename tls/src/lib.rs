//! The TLS listener configuration every Switchboard runtime adapter takes.
//!
//! One type for all adapters, so a program that serves on more than one runtime can hand
//! them the same configuration and replace it once. How each adapter drives rustls on its
//! sockets stays in the adapter (`driver/src/tls.rs`, `runtime-std/src/tls.rs`).

use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;

/// The TLS library the configuration is built with.
pub use rustls;

/// The certificate and settings TLS listeners accept with; replaceable while serving.
///
/// Cloning shares it: [`TlsConfig::replace`] (on SIGHUP, say) applies to every listener
/// given a clone, for connections accepted from then on; open connections keep theirs.
#[derive(Clone)]
pub struct TlsConfig(Arc<RwLock<Arc<ServerConfig>>>);

impl TlsConfig {
    /// Wraps a rustls server configuration.
    pub fn new(config: Arc<ServerConfig>) -> TlsConfig {
        TlsConfig(Arc::new(RwLock::new(config)))
    }

    /// Uses `config` for connections accepted from now on.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        // A panic elsewhere while holding the lock cannot leave a half-written Arc behind.
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}
