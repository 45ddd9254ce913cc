//! Sans-IO state machines for the Switchboard chat protocol.
//!
//! No sockets, threads or clocks: bytes and `Instant`s go in, bytes and events come out.
//! [`Server`] holds every protocol rule; [`Client`] is its counterpart for clients. The
//! native wire format is in [`packet`] and [`frame`], specified in docs/PROTOCOL.md.
//!
//! A server driven in memory, as an adapter drives it: a connection opens, its bytes go
//! in, and what the server wants written comes out.
//!
//! ```
//! use std::time::Instant;
//! use switchboard_core::packet::{ClientPacket, Packet, ServerPacket, PROTOCOL_VERSION};
//! use switchboard_core::{Config, FrameDecoder, Server};
//!
//! let mut server = Server::new(Config::default());
//! // The adapter reads the clock; the core only ever gets the time as an argument.
//! let now = Instant::now();
//! let conn = server.open(now);
//!
//! // A client's hello, as it would arrive from the socket.
//! let hello = ClientPacket::Hello {
//!     version: PROTOCOL_VERSION,
//!     nick: "alice".into(),
//!     password: String::new(),
//! };
//! server.handle_input(conn, &hello.to_frame(), now);
//!
//! // Drain what is to be written, and report it written.
//! let mut written = Vec::new();
//! while let Some(t) = server.poll_transmit() {
//!     assert_eq!(t.conn, conn);
//!     server.handle_written(conn, t.data.len());
//!     written.extend_from_slice(&t.data);
//! }
//!
//! // The first frame is the welcome, with the nick and the limits the client must keep.
//! let mut decoder = FrameDecoder::new(u32::MAX);
//! let frame = decoder.decode(&mut &written[..]).unwrap().expect("a whole frame");
//! match ServerPacket::decode(frame.type_code, frame.payload).unwrap() {
//!     ServerPacket::Welcome { nick, limits, .. } => {
//!         assert_eq!(nick, "alice");
//!         assert_eq!(limits, Config::default().limits());
//!         assert_eq!(limits.ping_interval_ms, 30_000);
//!     }
//!     other => panic!("expected a welcome, got {other:?}"),
//! }
//! assert_eq!(server.nick_of(conn), Some("alice"));
//! ```

pub mod bus;
pub mod client;
pub mod config;
pub mod error;
pub mod frame;
pub mod history;
pub mod line;
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
