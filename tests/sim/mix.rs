//! Swarm testing: every seed first draws its own mix of sizes, behaviours, faults and
//! server limits, so over many seeds rare combinations get their turn.

use std::time::Duration;

use switchboard_core::Config;

use crate::rng::Rng;

/// What a client may do, each with a weight in [`Mix::acts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Join,
    Leave,
    Say,
    Whisper,
    Nick,
    ListRooms,
    ListMembers,
    Ping,
    Quit,
    /// Stop writing for a while (the server may time the client out).
    Silent,
    /// Stop reading for a while (the server may close it as a slow consumer).
    Deaf,
    /// Drop the connection abruptly (reset) or close it (FIN).
    Disconnect,
    /// Send a malformed frame.
    Malformed,
    /// Send a well-formed request the server must refuse.
    Invalid,
    /// Set a room's topic.
    Topic,
    /// Kick someone from a room.
    Kick,
    /// Set or clear a room mode.
    Mode,
    /// Set or clear an away message.
    Away,
    /// Ask who someone is.
    Whois,
    /// Set or clear a room rule: key, limit, invite-only, moderated, secret, a ban, an
    /// exemption.
    Rule,
    /// Invite someone into a room.
    Invite,
    /// Ask for a room's rules.
    ListRules,
}

/// Every [`Act`], in weight order.
pub const ACTS: [Act; 22] = [
    Act::Join,
    Act::Leave,
    Act::Say,
    Act::Whisper,
    Act::Nick,
    Act::ListRooms,
    Act::ListMembers,
    Act::Ping,
    Act::Quit,
    Act::Silent,
    Act::Deaf,
    Act::Disconnect,
    Act::Malformed,
    Act::Invalid,
    Act::Topic,
    Act::Kick,
    Act::Mode,
    Act::Away,
    Act::Whois,
    Act::Rule,
    Act::Invite,
    Act::ListRules,
];

/// Network faults, each with a weight in [`Mix::faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One direction of one connection stops delivering for a while.
    Stall,
    /// One connection is reset: both ends lose what is in flight.
    Reset,
    /// Every pipe of every connection pauses at once (a hiccup of the whole network).
    Freeze,
}

/// Every [`Fault`], in weight order.
pub const FAULTS: [Fault; 3] = [Fault::Stall, Fault::Reset, Fault::Freeze];

/// One seed's choice of everything.
#[derive(Debug, Clone)]
pub struct Mix {
    pub clients: usize,
    pub rooms: usize,
    pub nicks: usize,
    /// Virtual length of the fault phase.
    pub fault_ms: u64,
    /// Most events in the fault phase.
    pub fault_steps: u64,
    /// Most gap between one client's actions.
    pub act_gap_ms: u64,
    /// Most one-way delay of one delivery.
    pub latency_us: u64,
    /// Bytes the network holds for a client that does not read.
    pub sock_buf: usize,
    /// Per mille of deliveries cut to a few bytes.
    pub tiny_chunks: u32,
    /// Per mille of hellos and nick changes that ask for a nick someone holds.
    pub taken_nick: u32,
    /// Most padding after a message id.
    pub pad: usize,
    /// Clients come back after they disconnect.
    pub reconnect: bool,
    /// The adapter takes output only when the socket has room (else at once).
    pub lazy: bool,
    pub acts: [u32; ACTS.len()],
    pub faults: [u32; FAULTS.len()],
    pub fault_gap_ms: u64,
    pub config: Config,
    /// Which client slots speak IRC (the others the native protocol).
    pub irc: Vec<bool>,
}

impl Mix {
    /// Draws a mix.
    pub fn draw(rng: &mut Rng) -> Mix {
        let clients = if rng.chance(100) {
            rng.range_usize(12, 24)
        } else {
            rng.range_usize(1, 10)
        };
        let mut acts = [0; ACTS.len()];
        for (i, act) in ACTS.iter().enumerate() {
            acts[i] = match act {
                Act::Join | Act::Say => rng.range(4, 20) as u32,
                Act::Leave => rng.range(1, 6) as u32,
                // Swarm: each other behaviour is off in about half the seeds.
                _ if rng.chance(500) => 0,
                Act::Quit | Act::Disconnect | Act::Malformed => rng.range(1, 2) as u32,
                _ => rng.range(1, 6) as u32,
            };
        }
        let mut faults = [0; FAULTS.len()];
        for f in faults.iter_mut() {
            *f = if rng.chance(500) {
                0
            } else {
                rng.range(1, 5) as u32
            };
        }
        let ping_ms = rng.range(500, 15_000);
        let small_out = rng.chance(400);
        let mut config = Config::default();
        config.max_frame_len = if rng.chance(800) {
            64 * 1024
        } else {
            rng.range(128, 4096) as u32
        };
        config.max_nick_len = if rng.chance(900) {
            32
        } else {
            rng.range(8, 12) as u16
        };
        config.max_room_len = if rng.chance(900) {
            64
        } else {
            rng.range(2, 6) as u16
        };
        config.max_text_len = if rng.chance(800) {
            4096
        } else {
            rng.range(4, 300) as u16
        };
        config.max_reason_len = if rng.chance(800) {
            256
        } else {
            rng.range(0, 12) as u16
        };
        config.max_rooms_per_conn = if rng.chance(800) {
            64
        } else {
            rng.range(1, 3) as u16
        };
        config.max_outbound_bytes = if small_out {
            rng.range(200, 8192) as usize
        } else {
            1024 * 1024
        };
        // Output pacing is off: when a request is handled would depend on byte counts the
        // model does not keep (core/tests/pacing.rs and the conformance tests check it).
        config.outbound_high_water = config.max_outbound_bytes;
        config.max_transmit_bytes = if rng.chance(700) {
            64 * 1024
        } else {
            rng.range(8, 2048) as usize
        };
        config.ping_interval = Duration::from_millis(ping_ms);
        config.idle_timeout = Duration::from_millis(ping_ms * rng.range(2, 4));
        config.hello_timeout = Duration::from_millis(rng.range(300, 10_000));
        // Flood control and slow consumers are not drawn together: a timer call may
        // handle many connections' waiting requests, so where an overflow happened in it
        // would be unknown (see "Limits of the simulator" in docs/TESTING.md).
        config.msg_rate = if small_out || rng.chance(500) {
            0
        } else {
            rng.range(2, 100) as u32
        };
        config.msg_burst = rng.range(1, 30) as u32;
        config.max_inbound_bytes = if rng.chance(500) {
            8 * 1024
        } else {
            rng.range(16, 2048) as usize
        };
        config.close_linger = Duration::from_millis(rng.range(20, 3000));
        config.max_topic_len = if rng.chance(800) {
            390
        } else {
            rng.range(0, 12) as u16
        };
        config.password = rng.chance(150).then(|| "sesame".to_owned());
        // The partial-input clock is tested in core and over sockets; here network stalls
        // would make it fire where the model does not track partial frames.
        config.request_timeout = Duration::from_secs(3600);
        // Only configurations the server would accept: the frame limit grows to fit.
        if config.validate().is_err() {
            config.max_frame_len = config.largest_frame().0 as u32;
        }
        if let Err(e) = config.validate() {
            panic!("sim drew an invalid configuration: {e}");
        }
        // Swarm again: no IRC client in a third of the seeds, mostly IRC in some.
        let irc_share = match rng.below(3) {
            0 => 0,
            1 => rng.range(100, 500) as u32,
            _ => rng.range(300, 1000) as u32,
        };
        let irc = (0..clients).map(|_| rng.chance(irc_share)).collect();
        let mut mix = Mix {
            irc,
            clients,
            rooms: rng.range_usize(1, 6),
            nicks: clients + rng.range_usize(0, 3),
            fault_ms: rng.range(1_000, 60_000),
            fault_steps: 6_000,
            act_gap_ms: rng.range(5, 800),
            latency_us: if rng.chance(200) {
                0
            } else {
                rng.range(1, 60_000)
            },
            sock_buf: if small_out || rng.chance(300) {
                rng.range_usize(16, 2048)
            } else {
                rng.range_usize(4096, 256 * 1024)
            },
            tiny_chunks: rng.range(0, 600) as u32,
            taken_nick: rng.range(0, 300) as u32,
            pad: if rng.chance(300) {
                rng.range_usize(0, 2000)
            } else {
                rng.range_usize(0, 40)
            },
            reconnect: rng.chance(700),
            lazy: rng.chance(500),
            acts,
            faults,
            fault_gap_ms: rng.range(50, 3000),
            config,
        };
        // The eager adapter checks each call's output against the model as it comes, so
        // output held for the coalescing window would be missed there: coalescing is on
        // (the default) with the lazy adapter only, which checks output as it is taken.
        if !mix.lazy {
            mix.config.flush_delay = Duration::ZERO;
        }
        mix
    }

    /// A one-paragraph summary for logs.
    pub fn summary(&self) -> String {
        let acts: Vec<String> = ACTS
            .iter()
            .zip(self.acts)
            .filter(|(_, w)| *w > 0)
            .map(|(a, w)| format!("{a:?}:{w}"))
            .collect();
        let faults: Vec<String> = FAULTS
            .iter()
            .zip(self.faults)
            .filter(|(_, w)| *w > 0)
            .map(|(a, w)| format!("{a:?}:{w}"))
            .collect();
        let c = &self.config;
        format!(
            "clients={} irc={} rooms={} nicks={} fault_ms={} act_gap_ms={} latency_us={} sock_buf={} \
             tiny_chunks={} taken_nick={} pad={} reconnect={} lazy={}\n  acts=[{}] faults=[{}] every {}ms\n  \
             config: frame={} nick={} room={} text={} reason={} rooms/conn={} outbound={} \
             transmit={} ping={:?} idle={:?} hello={:?} rate={}/{} inbound={} linger={:?} \
             topic={} password={:?}",
            self.clients,
            self.irc.iter().filter(|i| **i).count(),
            self.rooms,
            self.nicks,
            self.fault_ms,
            self.act_gap_ms,
            self.latency_us,
            self.sock_buf,
            self.tiny_chunks,
            self.taken_nick,
            self.pad,
            self.reconnect,
            self.lazy,
            acts.join(" "),
            faults.join(" "),
            self.fault_gap_ms,
            c.max_frame_len,
            c.max_nick_len,
            c.max_room_len,
            c.max_text_len,
            c.max_reason_len,
            c.max_rooms_per_conn,
            c.max_outbound_bytes,
            c.max_transmit_bytes,
            c.ping_interval,
            c.idle_timeout,
            c.hello_timeout,
            c.msg_rate,
            c.msg_burst,
            c.max_inbound_bytes,
            c.close_linger,
            c.max_topic_len,
            c.password,
        )
    }
}
