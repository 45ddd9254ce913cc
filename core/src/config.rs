//! Every limit and timer of the server, in one place.

use std::time::{Duration, Instant};

use crate::packet::Limits;

/// Server limits and timers. `Config::default()` documents the defaults;
/// [`Config::validate`] says whether they agree with each other.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame body (type code and payload) accepted, in bytes. Default 65,536.
    pub max_frame_len: u32,
    /// Longest nickname, in bytes. Default 32.
    pub max_nick_len: u16,
    /// Longest room name, in bytes. Default 64.
    pub max_room_len: u16,
    /// Longest message text, in bytes. Default 4,096.
    pub max_text_len: u16,
    /// Longest leave or quit reason, in bytes. Default 256.
    pub max_reason_len: u16,
    /// Most rooms one connection may sit in. Default 64.
    pub max_rooms_per_conn: u16,
    /// Most output bytes queued for one connection and not yet reported written; past it the
    /// connection is closed as a slow consumer. Default 1 MiB.
    pub max_outbound_bytes: usize,
    /// Largest batch of queued output handed out by one transmit, in bytes. Default 64 KiB.
    pub max_transmit_bytes: usize,
    /// Output bytes past which a connection holds back whoever queues more for it: a
    /// request that leaves a connection above this mark pauses its sender until that
    /// connection drains to it (output pacing). Default 16 KiB; at `max_outbound_bytes` or
    /// more, pacing is off.
    pub outbound_high_water: usize,
    /// Longest a connection above `outbound_high_water` holds senders back; past it they go
    /// on and it is left to `max_outbound_bytes` until it drains. Default 2 s.
    pub outbound_stall_timeout: Duration,
    /// Longest output caused by other connections (room messages, joins, parts, relays) is
    /// held so that several go out in one write; a connection's answers to its own requests
    /// are never held. Zero sends everything at once. At most 100 ms. Default 1 ms.
    pub flush_delay: Duration,
    /// Silence after which the server pings a connection. Default 30 s.
    pub ping_interval: Duration,
    /// Silence after which the server closes a connection. Default 90 s.
    pub idle_timeout: Duration,
    /// Time a new connection has to complete its hello. Default 10 s.
    pub hello_timeout: Duration,
    /// Sustained requests per second per connection; 0 turns flood control off. Default 10.
    /// A request over the rate waits; cheap ones (pings, pongs, quits) cost a tenth.
    pub msg_rate: u32,
    /// Requests allowed at once above the sustained rate. Default 20.
    pub msg_burst: u32,
    /// Most received bytes held for one connection before they are handled (its receive
    /// queue); the adapter reads no more than fits. Default 8 KiB.
    pub max_inbound_bytes: usize,
    /// Time a frame or line has from its first byte to its last. Default 10 s.
    pub request_timeout: Duration,
    /// How long a closing connection's last output may take to flush. Default 2 s.
    pub close_linger: Duration,
    /// Longest room topic, in bytes. Default 390 (fits an IRC line).
    pub max_topic_len: u16,
    /// The server's name: the source of IRC server replies. Default `switchboard.local`.
    pub server_name: String,
    /// A password every client must give (native hello or IRC `PASS`). Default none.
    pub password: Option<String>,
    /// Message of the day shown to IRC clients at registration. Default none (`422`).
    pub motd: Option<String>,
    /// An instant and the time since the Unix epoch at that instant, from which the core tells
    /// wall-clock times (signon, topic and room creation times, `TIME`) without reading a
    /// clock. Default none: such times show as 0.
    pub wall_clock: Option<(Instant, Duration)>,
    /// IRC server operators: a name and the SHA-256 of the password, in lowercase hex.
    /// Default none.
    pub operators: Vec<(String, String)>,
    /// Most connections open at once from one IP address (`Server::open_from`). Default 32.
    pub max_conns_per_ip: usize,
    /// Most connections open at once in all (`Server::open_from`). Default unlimited; the
    /// example servers derive one from the open-file limit.
    pub max_conns: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_len: 64 * 1024,
            max_nick_len: 32,
            max_room_len: 64,
            max_text_len: 4096,
            max_reason_len: 256,
            max_rooms_per_conn: 64,
            max_outbound_bytes: 1024 * 1024,
            max_transmit_bytes: 64 * 1024,
            outbound_high_water: 16 * 1024,
            outbound_stall_timeout: Duration::from_secs(2),
            flush_delay: DEFAULT_FLUSH_DELAY,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            hello_timeout: Duration::from_secs(10),
            msg_rate: 10,
            msg_burst: 20,
            max_inbound_bytes: 8 * 1024,
            request_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(2),
            max_topic_len: 390,
            server_name: "switchboard.local".to_owned(),
            password: None,
            motd: None,
            wall_clock: None,
            operators: Vec::new(),
            max_conns_per_ip: 32,
            max_conns: usize::MAX,
        }
    }
}

impl Config {
    /// The limits announced to clients in the welcome.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_len: self.max_frame_len,
            max_nick_len: self.max_nick_len,
            max_room_len: self.max_room_len,
            max_text_len: self.max_text_len,
            max_reason_len: self.max_reason_len,
            max_rooms: self.max_rooms_per_conn,
            ping_interval_ms: millis(self.ping_interval),
            idle_timeout_ms: millis(self.idle_timeout),
            msg_rate: self.msg_rate,
            msg_burst: self.msg_burst,
        }
    }
}

/// A [`Config`] whose values cannot work together: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field at fault, as named in [`Config`].
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// `Config::flush_delay`'s default.
const DEFAULT_FLUSH_DELAY: Duration = Duration::from_millis(1);

/// Longest `Config::flush_delay` accepted: past it the wait is felt as lag.
pub(crate) const MAX_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// Longest error message text the server puts in one `Error` or `Bye`, in bytes.
pub(crate) const MAX_ERROR_TEXT: usize = 400;

impl Config {
    /// Checks that every limit is usable and that the limits agree: no zero limit, an
    /// idle timeout longer than the ping interval, and every frame the server may send
    /// within the `max_frame_len` it announces.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, message: String| Err(ConfigError { field, message });
        // Reasons and topics may be limited to none at all; every other limit must allow one.
        let nonzero: [(&'static str, u64); 11] = [
            ("max_frame_len", u64::from(self.max_frame_len)),
            ("max_nick_len", u64::from(self.max_nick_len)),
            ("max_room_len", u64::from(self.max_room_len)),
            ("max_text_len", u64::from(self.max_text_len)),
            ("max_rooms_per_conn", u64::from(self.max_rooms_per_conn)),
            ("max_outbound_bytes", self.max_outbound_bytes as u64),
            ("max_transmit_bytes", self.max_transmit_bytes as u64),
            ("outbound_high_water", self.outbound_high_water as u64),
            ("max_inbound_bytes", self.max_inbound_bytes as u64),
            ("max_conns_per_ip", self.max_conns_per_ip as u64),
            ("max_conns", self.max_conns as u64),
        ];
        for (field, value) in nonzero {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        let timers = [
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
            ("hello_timeout", self.hello_timeout),
            ("request_timeout", self.request_timeout),
            ("close_linger", self.close_linger),
            ("outbound_stall_timeout", self.outbound_stall_timeout),
        ];
        for (field, value) in timers {
            if value.is_zero() {
                return bad(field, "must be longer than zero".into());
            }
        }
        if self.flush_delay > MAX_FLUSH_DELAY {
            return bad(
                "flush_delay",
                format!(
                    "{:?} is longer than the {MAX_FLUSH_DELAY:?} allowed: held output \
                     would be felt as lag",
                    self.flush_delay
                ),
            );
        }
        if self.idle_timeout <= self.ping_interval {
            return bad(
                "idle_timeout",
                format!(
                    "{:?} must be longer than ping_interval ({:?}), or a client is closed \
                     before it is pinged",
                    self.idle_timeout, self.ping_interval
                ),
            );
        }
        if self.msg_rate > 0 && self.msg_burst == 0 {
            return bad(
                "msg_burst",
                "must be at least 1 while msg_rate is on".into(),
            );
        }
        if self.msg_rate > 1_000_000 {
            return bad("msg_rate", "must be at most 1,000,000 a second".into());
        }
        let (largest, what) = self.largest_frame();
        if largest > self.max_frame_len as usize {
            let field = if what == "Message" {
                "max_text_len"
            } else {
                "max_frame_len"
            };
            return bad(
                field,
                format!(
                    "the largest {what} frame the server may send is {largest} bytes, more \
                     than max_frame_len ({})",
                    self.max_frame_len
                ),
            );
        }
        if self.server_name.is_empty() || self.server_name.contains([' ', '\r', '\n', '\0']) {
            return bad("server_name", "must be one word".into());
        }
        Ok(())
    }

    /// The largest frame body (type code and payload) the server may send, and its kind.
    ///
    /// Lists are split to fit, and error texts are cut to [`MAX_ERROR_TEXT`], so the
    /// largest frames are the notices that carry a whole text, topic or reason.
    pub fn largest_frame(&self) -> (usize, &'static str) {
        let s = |n: u16| 2 + n as usize;
        let (nick, room, text) = (self.max_nick_len, self.max_room_len, self.max_text_len);
        let reason = self.max_reason_len;
        let candidates = [
            (1 + s(room) + s(nick) + 8 + s(text), "Message"),
            (1 + s(nick) + s(nick) + s(text), "Direct"),
            (1 + s(room) + s(self.max_topic_len) + s(nick), "Topic"),
            (1 + s(room) + s(nick) + s(nick) + s(reason), "Kicked"),
            (1 + s(room) + s(nick) + s(reason), "Left"),
            (1 + s(nick) + s(reason), "Away"),
            (
                1 + s(nick) + s(reason) + 4 + 2 + self.max_rooms_per_conn as usize * (s(room) + 1),
                "WhoisReply",
            ),
            (1 + 2 + 1 + 4 + 2 + MAX_ERROR_TEXT, "Error"),
            // Welcome: version, nick and ten limits; member and room lists: one entry.
            (1 + 2 + s(nick) + 36, "Welcome"),
            (1 + s(room) + 1 + 2 + s(nick) + 1, "Members"),
            (1 + 1 + 2 + s(room) + 4, "RoomList"),
        ];
        candidates
            .into_iter()
            .max_by_key(|(n, _)| *n)
            .unwrap_or((0, ""))
    }

    /// The Unix time (seconds) at `at`, as told by [`Config::wall_clock`]; 0 without it.
    pub fn unix_time(&self, at: Instant) -> u64 {
        match self.wall_clock {
            Some((origin, since)) if at >= origin => (since + (at - origin)).as_secs(),
            Some((origin, since)) => since.saturating_sub(origin - at).as_secs(),
            None => 0,
        }
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        type Spoil = fn(&mut Config);
        let cases: Vec<(&str, Spoil)> = vec![
            ("max_frame_len", |c| c.max_frame_len = 0),
            ("max_inbound_bytes", |c| c.max_inbound_bytes = 0),
            ("outbound_high_water", |c| c.outbound_high_water = 0),
            ("outbound_stall_timeout", |c| {
                c.outbound_stall_timeout = Duration::ZERO
            }),
            ("request_timeout", |c| c.request_timeout = Duration::ZERO),
            ("idle_timeout", |c| c.idle_timeout = c.ping_interval),
            ("msg_burst", |c| c.msg_burst = 0),
            ("max_text_len", |c| c.max_text_len = u16::MAX),
            ("max_frame_len", |c| c.max_frame_len = 600),
            ("flush_delay", |c| {
                c.flush_delay = Duration::from_millis(101)
            }),
        ];
        for (field, spoil) in cases {
            let mut c = Config::default();
            spoil(&mut c);
            let err = c.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
        // Flood control off needs no burst.
        let c = Config {
            msg_rate: 0,
            msg_burst: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
        // Coalescing off, and at its longest.
        for delay in [Duration::ZERO, MAX_FLUSH_DELAY] {
            let c = Config {
                flush_delay: delay,
                ..Config::default()
            };
            assert_eq!(c.validate(), Ok(()));
        }
    }

    #[test]
    fn the_largest_message_fits_the_default_frame() {
        let c = Config::default();
        let (largest, _) = c.largest_frame();
        assert!(largest <= c.max_frame_len as usize);
        // A message at every limit is exactly that size.
        let message = crate::packet::ServerPacket::Message {
            room: "r".repeat(c.max_room_len as usize),
            from: "n".repeat(c.max_nick_len as usize),
            seq: u64::MAX,
            text: "t".repeat(c.max_text_len as usize),
        };
        let frame = crate::packet::Packet::to_frame(&message);
        // The formula in `largest_frame` for a message: type, room, nick, seq, text.
        assert_eq!(
            frame.len() - crate::packet::LENGTH_PREFIX,
            1 + (2 + 64) + (2 + 32) + 8 + (2 + 4096)
        );
    }

    /// Each kind of frame `largest_frame` weighs, built at `c`'s limits and encoded: its
    /// body's size and its kind, in `largest_frame`'s order.
    fn encoded_frames(c: &Config) -> Vec<(usize, &'static str)> {
        use crate::packet::{Member, Packet, RoomInfo, ServerPacket, LENGTH_PREFIX};
        let s = |n: usize, ch: &str| ch.repeat(n);
        let room = s(c.max_room_len.into(), "r");
        let nick = s(c.max_nick_len.into(), "n");
        let text = s(c.max_text_len.into(), "t");
        let reason = s(c.max_reason_len.into(), "w");
        let member = |name: &str| Member {
            nick: name.to_owned(),
            flags: Member::OPERATOR,
        };
        let packets = [
            (
                ServerPacket::Message {
                    room: room.clone(),
                    from: nick.clone(),
                    seq: u64::MAX,
                    text: text.clone(),
                },
                "Message",
            ),
            (
                ServerPacket::Direct {
                    from: nick.clone(),
                    to: nick.clone(),
                    text,
                },
                "Direct",
            ),
            (
                ServerPacket::Topic {
                    room: room.clone(),
                    topic: s(c.max_topic_len.into(), "o"),
                    by: nick.clone(),
                },
                "Topic",
            ),
            (
                ServerPacket::Kicked {
                    room: room.clone(),
                    nick: nick.clone(),
                    by: nick.clone(),
                    reason: reason.clone(),
                },
                "Kicked",
            ),
            (
                ServerPacket::Left {
                    room: room.clone(),
                    nick: nick.clone(),
                    reason: reason.clone(),
                },
                "Left",
            ),
            (
                ServerPacket::Away {
                    nick: nick.clone(),
                    message: reason.clone(),
                },
                "Away",
            ),
            (
                ServerPacket::WhoisReply {
                    nick: nick.clone(),
                    away: reason,
                    idle_secs: u32::MAX,
                    rooms: vec![member(&room); c.max_rooms_per_conn.into()],
                },
                "WhoisReply",
            ),
            (
                ServerPacket::Error {
                    code: crate::ErrorCode::Malformed,
                    request_type: 1,
                    request_seq: u32::MAX,
                    message: s(MAX_ERROR_TEXT, "e"),
                },
                "Error",
            ),
            (
                ServerPacket::Welcome {
                    version: 1,
                    nick: nick.clone(),
                    limits: c.limits(),
                },
                "Welcome",
            ),
            (
                ServerPacket::Members {
                    room: room.clone(),
                    members: vec![member(&nick)],
                    last: true,
                },
                "Members",
            ),
            (
                ServerPacket::RoomList {
                    rooms: vec![RoomInfo {
                        name: room,
                        members: u32::MAX,
                    }],
                    last: true,
                },
                "RoomList",
            ),
        ];
        packets
            .iter()
            .map(|(p, kind)| (p.to_frame().len() - LENGTH_PREFIX, *kind))
            .collect()
    }

    /// `largest_frame` of `c` is the largest of the frames encoded at its limits.
    fn largest_is_encoded(c: &Config) -> bool {
        let encoded = encoded_frames(c).into_iter().max_by_key(|(n, _)| *n);
        Some(c.largest_frame()) == encoded
    }

    /// Every size limit at its smallest (1 byte, or none for reasons and topics) but what
    /// `set` changes.
    fn tiny_but(set: fn(&mut Config)) -> Config {
        let mut c = Config {
            max_nick_len: 1,
            max_room_len: 1,
            max_text_len: 1,
            max_reason_len: 0,
            max_topic_len: 0,
            max_rooms_per_conn: 1,
            ..Config::default()
        };
        set(&mut c);
        c
    }

    #[test]
    fn the_largest_frame_is_the_largest_one_encoded_whichever_kind_it_is() {
        let d = Config::default();
        let cases = [
            ("WhoisReply", d.clone()),
            (
                "Message",
                Config {
                    max_rooms_per_conn: 1,
                    ..d.clone()
                },
            ),
            (
                "Direct",
                Config {
                    max_nick_len: 1000,
                    max_room_len: 1,
                    max_rooms_per_conn: 1,
                    ..d.clone()
                },
            ),
            (
                "Topic",
                Config {
                    max_topic_len: 60_000,
                    ..d.clone()
                },
            ),
            (
                "Kicked",
                Config {
                    max_reason_len: 60_000,
                    max_rooms_per_conn: 1,
                    ..d.clone()
                },
            ),
            ("Error", tiny_but(|_| ())),
            // One limit large and the others small, so that a formula that grows with it
            // (where it should not) shows.
            ("Kicked", tiny_but(|c| c.max_nick_len = 5000)),
            ("Message", tiny_but(|c| c.max_room_len = 5000)),
            (
                "Kicked",
                tiny_but(|c| {
                    (c.max_nick_len, c.max_room_len, c.max_reason_len) = (1000, 1000, 1000)
                }),
            ),
        ];
        for (kind, c) in cases {
            assert_eq!(c.largest_frame().1, kind);
            assert!(largest_is_encoded(&c), "{kind}: {:?}", encoded_frames(&c));
        }
    }

    #[test]
    fn the_largest_frame_is_the_largest_one_encoded_at_any_limits() {
        fn prop(nick: u16, room: u16, text: u16, reason: u16, topic: u16, rooms: u8) -> bool {
            let c = Config {
                max_nick_len: nick % 2048,
                max_room_len: room % 2048,
                max_text_len: text % 8192,
                max_reason_len: reason % 8192,
                max_topic_len: topic % 8192,
                max_rooms_per_conn: rooms.into(),
                ..Config::default()
            };
            largest_is_encoded(&c)
        }
        quickcheck::quickcheck(prop as fn(u16, u16, u16, u16, u16, u8) -> bool);
    }

    #[test]
    fn validate_refuses_each_zero_limit_and_timer_and_each_bad_name() {
        type Spoil = fn(&mut Config);
        let cases: Vec<(&str, Spoil)> = vec![
            ("max_nick_len", |c| c.max_nick_len = 0),
            ("max_room_len", |c| c.max_room_len = 0),
            ("max_text_len", |c| c.max_text_len = 0),
            ("max_rooms_per_conn", |c| c.max_rooms_per_conn = 0),
            ("max_outbound_bytes", |c| c.max_outbound_bytes = 0),
            ("max_transmit_bytes", |c| c.max_transmit_bytes = 0),
            ("max_conns_per_ip", |c| c.max_conns_per_ip = 0),
            ("max_conns", |c| c.max_conns = 0),
            ("ping_interval", |c| c.ping_interval = Duration::ZERO),
            ("idle_timeout", |c| c.idle_timeout = Duration::ZERO),
            ("hello_timeout", |c| c.hello_timeout = Duration::ZERO),
            ("close_linger", |c| c.close_linger = Duration::ZERO),
            ("idle_timeout", |c| {
                c.idle_timeout = c.ping_interval - Duration::from_nanos(1)
            }),
            ("msg_rate", |c| c.msg_rate = 1_000_001),
            ("server_name", |c| c.server_name.clear()),
            ("server_name", |c| c.server_name = "a b".into()),
            ("server_name", |c| c.server_name = "a\r".into()),
            ("server_name", |c| c.server_name = "a\n".into()),
            ("server_name", |c| c.server_name = "a\0".into()),
        ];
        for (field, spoil) in cases {
            let mut c = Config::default();
            spoil(&mut c);
            let err = c.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn validate_takes_each_limit_at_its_edge() {
        let edges = [
            Config {
                idle_timeout: Config::default().ping_interval + Duration::from_nanos(1),
                ..Config::default()
            },
            Config {
                msg_rate: 1_000_000,
                ..Config::default()
            },
            Config {
                msg_rate: 1,
                msg_burst: 1,
                ..Config::default()
            },
            Config {
                max_frame_len: Config::default().largest_frame().0 as u32,
                ..Config::default()
            },
            Config {
                max_reason_len: 0,
                max_topic_len: 0,
                ..Config::default()
            },
        ];
        for c in edges {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
        // One byte less than the largest frame: refused, naming the frame.
        let c = Config {
            max_frame_len: Config::default().largest_frame().0 as u32 - 1,
            ..Config::default()
        };
        let err = c.validate().expect_err("one byte short");
        assert_eq!(err.field, "max_frame_len");
        assert!(err.message.contains("WhoisReply"), "{err}");
    }

    #[test]
    fn unix_time_counts_from_the_wall_clock_either_way() {
        let origin = crate::test_clock::start() + Duration::from_secs(100);
        let c = Config {
            wall_clock: Some((origin, Duration::from_secs(1_000))),
            ..Config::default()
        };
        assert_eq!(c.unix_time(origin), 1_000);
        assert_eq!(c.unix_time(origin + Duration::from_millis(2_500)), 1_002);
        assert_eq!(c.unix_time(origin - Duration::from_secs(30)), 970);
        let early = Config {
            wall_clock: Some((origin, Duration::from_secs(10))),
            ..Config::default()
        };
        assert_eq!(early.unix_time(origin - Duration::from_secs(30)), 0);
        assert_eq!(Config::default().unix_time(origin), 0);
    }
}
