//! Sans-IO state machines for the Switchboard chat protocol.
//!
//! No sockets, threads or clocks: bytes and `Instant`s go in, bytes and events come out.
//! [`Server`] holds every protocol rule; [`Client`] is its counterpart for clients. The
//! native wire format is in [`packet`] and [`frame`], specified in docs/PROTOCOL.md.

pub mod bus;
pub mod client;
pub mod config;
pub mod error;
pub mod frame;
pub mod history;
pub mod irc;
pub mod name;
pub mod packet;
mod rate;
pub mod server;
pub mod sha256;

pub use bus::{BusEvent, BusOp, ClusterOptions};
pub use client::{Client, ClientEvent, RoomEvent};
pub use config::{Config, ConfigError};
pub use error::{DecodeError, ErrorCode};
pub use frame::{Frame, FrameDecoder};
pub use history::{Bound, HistoryOptions, Range, RoomRecord, StoreOp, StoredMessage};
pub use packet::{
    ClientPacket, Limits, Member, Packet, RoomInfo, RoomMode, RoomRule, ServerPacket,
};
#[cfg(feature = "planted-bugs")]
pub use server::PlantedBug;
pub use server::{Close, CloseMode, ClusterStats, Event, Refused, Server, Transmit};

/// Identifies one connection to a [`Server`]; never reused by that server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Test time origin, kept outside `core/src` so the library source names no clock.
#[cfg(test)]
#[path = "../test-support/clock.rs"]
mod test_clock;
