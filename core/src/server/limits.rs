//! Per-address and global connection limits, checked before a connection gets any state.
//!
//! The adapter calls [`Server::open_from`] with the peer's address at accept. A refusal
//! keeps nothing in the core: the adapter holds the socket, waits (within `hello_timeout`)
//! for the client's first byte, which tells its protocol, and sends
//! [`Refused::reply`] before closing. See docs/PROTOCOL.md and docs/IRC.md.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use super::conn::Proto;
use super::fanout::{self, Notice};
use super::Server;
use crate::{ConnId, ErrorCode};

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client's address already holds `max_conns_per_ip` connections.
    PerAddress,
    /// The server already holds `max_conns` connections.
    Global,
}

impl Refused {
    /// Why, in words: the reason of the native bye and of the IRC `ERROR` line.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::PerAddress => "too many connections from your address",
            Refused::Global => "too many connections",
        }
    }

    /// The bytes that refuse the client in its protocol, told by its first byte (`0x00`
    /// native, anything else IRC, as in `Server::handle_input`): a native `Bye` with code
    /// `TooManyConnections` (56), or IRC `ERROR :Closing Link: <reason>`.
    pub fn reply(self, first_byte: u8) -> Bytes {
        let bye = Notice::Bye(ErrorCode::TooManyConnections, self.reason());
        // No session yet: a plain IRC client, without capabilities.
        let irc_caps = (!Proto::native_first_byte(first_byte)).then_some(0);
        // Both encoders have a form of every bye.
        fanout::encode_one(bye, "", irc_caps).unwrap_or_default()
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Open connections per address, for the connections opened with an address.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    per_ip: HashMap<IpAddr, usize>,
    of_conn: HashMap<ConnId, IpAddr>,
}

impl Peers {
    /// Forgets a connection's address when it closes.
    pub(crate) fn release(&mut self, id: ConnId) {
        let Some(ip) = self.of_conn.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl Server {
    /// Opens a connection from `ip` as [`Server::open`] does, unless the client's address
    /// already holds `max_conns_per_ip` connections or the server `max_conns` (checked in
    /// that order; an IPv4-mapped IPv6 address counts as its IPv4 address). A refused
    /// connection leaves no state; loopback addresses are not exempt.
    pub fn open_from(&mut self, ip: IpAddr, now: Instant) -> Result<ConnId, Refused> {
        let ip = ip.to_canonical();
        if self.peers.per_ip.get(&ip).copied().unwrap_or(0) >= self.config.max_conns_per_ip {
            return Err(Refused::PerAddress);
        }
        if self.conns.map.len() >= self.config.max_conns {
            return Err(Refused::Global);
        }
        let id = self.open(now);
        *self.peers.per_ip.entry(ip).or_default() += 1;
        self.peers.of_conn.insert(id, ip);
        Ok(id)
    }

    /// How many open connections came from `ip`.
    pub fn conns_from(&self, ip: IpAddr) -> usize {
        self.peers
            .per_ip
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;
    use crate::packet::{Packet, ServerPacket};
    use crate::Config;
    use std::net::Ipv4Addr;

    fn server(per_ip: usize, total: usize) -> Server {
        Server::new(Config {
            max_conns_per_ip: per_ip,
            max_conns: total,
            ..Config::default()
        })
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn a_refusal_displays_as_its_reason() {
        // The adapters log refusals with `{refused}`: the log line must say which limit.
        assert_eq!(
            Refused::PerAddress.to_string(),
            "too many connections from your address"
        );
        assert_eq!(Refused::Global.to_string(), "too many connections");
    }

    #[test]
    fn per_address_limit_refuses_past_it_and_spares_other_addresses() {
        let now = Instant::now();
        let mut s = server(3, 100);
        let ids: Vec<_> = (0..3).map(|_| s.open_from(A, now).unwrap()).collect();
        assert_eq!(s.open_from(A, now), Err(Refused::PerAddress));
        assert!(s.open_from(B, now).is_ok());
        assert_eq!(s.conns_from(A), 3);
        // A close frees the address's slot.
        s.handle_close(ids[0], now);
        assert_eq!(s.conns_from(A), 2);
        assert!(s.open_from(A, now).is_ok());
        assert_eq!(s.open_from(A, now), Err(Refused::PerAddress));
    }

    #[test]
    fn mapped_ipv6_counts_as_its_ipv4_address() {
        let now = Instant::now();
        let mut s = server(1, 100);
        s.open_from(A, now).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(s.open_from(mapped, now), Err(Refused::PerAddress));
    }

    #[test]
    fn global_limit_counts_every_connection() {
        let now = Instant::now();
        let mut s = server(10, 2);
        s.open(now);
        s.open_from(A, now).unwrap();
        assert_eq!(s.open_from(B, now), Err(Refused::Global));
        // The per-address check comes first.
        let mut s = server(0, 0);
        assert_eq!(s.open_from(A, now), Err(Refused::PerAddress));
    }

    #[test]
    fn a_refusal_keeps_no_state() {
        let now = Instant::now();
        let mut s = server(0, 100);
        assert!(s.open_from(A, now).is_err());
        assert_eq!(s.conns_from(A), 0);
        assert_eq!(s.poll_timeout(), None);
        assert!(s.poll_pending().is_none());
    }

    #[test]
    fn refusal_is_spoken_in_the_clients_protocol() {
        let native = Refused::PerAddress.reply(0);
        let mut dec = FrameDecoder::new(1 << 16);
        let mut input = &native[..];
        let frame = dec.decode(&mut input).unwrap().unwrap();
        assert!(input.is_empty());
        match ServerPacket::decode(frame.type_code, frame.payload) {
            Ok(ServerPacket::Bye { code, reason }) => {
                assert_eq!(code, ErrorCode::TooManyConnections);
                assert_eq!(code.to_u16(), 56);
                assert_eq!(reason, "too many connections from your address");
            }
            other => panic!("expected a bye, got {other:?}"),
        }
        assert_eq!(
            &Refused::PerAddress.reply(b'N')[..],
            b"ERROR :Closing Link: too many connections from your address\r\n"
        );
    }
}
