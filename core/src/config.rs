//! Every limit and timer of the server, in one place.

use std::time::Duration;

use crate::packet::Limits;

/// Server limits and timers. `Config::default()` documents the defaults.
#[derive(Debug, Clone)]
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
    /// Silence after which the server pings a connection. Default 30 s.
    pub ping_interval: Duration,
    /// Silence after which the server closes a connection. Default 90 s.
    pub idle_timeout: Duration,
    /// Time a new connection has to complete its hello. Default 10 s.
    pub hello_timeout: Duration,
    /// Sustained requests per second per connection; 0 turns flood control off. Default 10.
    pub msg_rate: u32,
    /// Requests allowed at once above the sustained rate. Default 20.
    pub msg_burst: u32,
    /// Consecutive rate-limited requests after which the connection is closed. Default 30.
    pub flood_strikes: u32,
    /// How long an adapter may spend flushing a closing connection's last output. Default 2 s.
    pub close_linger: Duration,
    /// Longest room topic, in bytes. Default 390 (fits an IRC line).
    pub max_topic_len: u16,
    /// The server's name: the source of IRC server replies. Default `switchboard.local`.
    pub server_name: String,
    /// A password every client must give (native hello or IRC `PASS`). Default none.
    pub password: Option<String>,
    /// Message of the day shown to IRC clients at registration. Default none (`422`).
    pub motd: Option<String>,
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
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            hello_timeout: Duration::from_secs(10),
            msg_rate: 10,
            msg_burst: 20,
            flood_strikes: 30,
            close_linger: Duration::from_secs(2),
            max_topic_len: 390,
            server_name: "switchboard.local".to_owned(),
            password: None,
            motd: None,
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

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}
