//! One simulated user's protocol state, native (the core `Client`) or IRC (core line codec).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use switchboard::core::line::{write_line, Line, LineDecoder, Message};
use switchboard::core::{Client, ClientEvent};

/// Which protocol the load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// The native binary protocol.
    Native,
    /// IRC text.
    Irc,
}

/// What a session saw that the load generator cares about.
#[derive(Debug)]
pub enum Seen {
    /// Registration completed; the rate and burst the server announced (native only).
    Welcome(Option<(u32, u32)>),
    /// This session's join of a room completed (member list received).
    Joined,
    /// A room message.
    Message(String),
    /// A pong to our ping.
    Pong(u64),
    /// The server reported an error.
    Error(String),
    /// The server ended the session.
    Closed(String),
}

/// A session in either protocol.
pub enum Session {
    /// Native, on the core client state machine.
    Native(Box<Client>),
    /// IRC, on the core line codec.
    Irc {
        /// Splits input into lines.
        lines: LineDecoder,
        /// Bytes to send.
        out: BytesMut,
    },
}

impl Session {
    /// A session that registers as `nick` (its first bytes are queued at once).
    pub fn new(protocol: Protocol, nick: &str) -> Session {
        match protocol {
            Protocol::Native => {
                let mut client = Client::new(nick);
                // The load generator paces its senders itself, to the announced rate.
                client.set_paced(false);
                Session::Native(Box::new(client))
            }
            Protocol::Irc => {
                let mut out = BytesMut::new();
                write_line(&mut out, None, "NICK", &[nick], false);
                write_line(&mut out, None, "USER", &[nick, "0", "*", nick], true);
                Session::Irc {
                    lines: LineDecoder::new(),
                    out,
                }
            }
        }
    }

    /// Joins a room.
    pub fn join(&mut self, room: &str) {
        match self {
            Session::Native(c) => {
                c.join(room);
            }
            Session::Irc { out, .. } => {
                write_line(out, None, "JOIN", &[&format!("#{room}")], false)
            }
        }
    }

    /// Says text to a room.
    pub fn say(&mut self, room: &str, text: &str) {
        match self {
            Session::Native(c) => {
                c.say(room, text);
            }
            Session::Irc { out, .. } => {
                write_line(out, None, "PRIVMSG", &[&format!("#{room}"), text], true)
            }
        }
    }

    /// Pings the server.
    pub fn ping(&mut self, token: u64) {
        match self {
            Session::Native(c) => {
                c.ping(token);
            }
            Session::Irc { out, .. } => write_line(out, None, "PING", &[&token.to_string()], false),
        }
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        match self {
            Session::Native(c) => c.poll_transmit(),
            Session::Irc { out, .. } => (!out.is_empty()).then(|| out.split().freeze()),
        }
    }

    /// Feeds received bytes; calls `seen` for each thing of interest.
    pub fn handle_input(&mut self, input: &[u8], now: Instant, seen: &mut impl FnMut(Seen)) {
        match self {
            Session::Native(c) => {
                if let Err(e) = c.handle_input(input, now) {
                    seen(Seen::Closed(format!("bad frame from server: {e}")));
                }
                while let Some(ev) = c.poll_event() {
                    match ev {
                        ClientEvent::Welcome { limits, .. } => {
                            seen(Seen::Welcome(Some((limits.msg_rate, limits.msg_burst))))
                        }
                        ClientEvent::Members { .. } => seen(Seen::Joined),
                        ClientEvent::Message { text, .. } => seen(Seen::Message(text)),
                        ClientEvent::Pong { token } => seen(Seen::Pong(token)),
                        ClientEvent::Error { code, message, .. } => {
                            seen(Seen::Error(format!("{code}: {message}")))
                        }
                        ClientEvent::Bye { code, reason } => {
                            seen(Seen::Closed(format!("{code}: {reason}")))
                        }
                        _ => {}
                    }
                }
            }
            Session::Irc { lines, out } => {
                let mut input = input;
                while let Some(line) = lines.decode(&mut input) {
                    let Line::Text(line) = line else {
                        seen(Seen::Error("server line too long".into()));
                        continue;
                    };
                    let Some(msg) = Message::parse(&line) else {
                        continue;
                    };
                    match msg.command.as_str() {
                        "001" => seen(Seen::Welcome(None)),
                        "366" => seen(Seen::Joined),
                        "PRIVMSG" => {
                            if let Some(text) = msg.params.get(1) {
                                seen(Seen::Message(text.clone()));
                            }
                        }
                        "PING" => {
                            let token = msg.params.first().map_or("", String::as_str);
                            write_line(out, None, "PONG", &[token], false);
                        }
                        "PONG" => {
                            let token = msg.params.last().and_then(|t| t.parse().ok());
                            seen(Seen::Pong(token.unwrap_or(0)));
                        }
                        "ERROR" => seen(Seen::Closed(msg.params.join(" "))),
                        // 422 (no MOTD) is part of a normal registration.
                        c if (c.starts_with('4') || c.starts_with('5'))
                            && c.len() == 3
                            && c != "422" =>
                        {
                            seen(Seen::Error(format!("{c} {}", msg.params.join(" "))))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
