//! An IRC test client: raw lines over a blocking loopback socket, split and parsed by the
//! core's IRC codec, with waits that end at a deadline and fail listing the lines received.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use crate::tls::Conn;
use std::time::{Duration, Instant};

use switchboard::core::line::{Line, LineDecoder, Message, MAX_LINE};

use crate::client::WAIT;

/// Lines of the received log shown when a wait fails.
const SHOWN: usize = 40;

pub struct IrcClient {
    label: String,
    stream: Conn,
    decoder: LineDecoder,
    /// Messages received and not yet consumed by a wait.
    messages: VecDeque<Message>,
    /// The last lines received, for failure messages.
    log: VecDeque<String>,
    /// Lines received in all.
    received: usize,
    /// Why the socket ended, once it has.
    closed: Option<String>,
    next_token: u64,
    buf: Vec<u8>,
}

impl IrcClient {
    /// Connects without sending anything.
    pub fn raw(addr: SocketAddr, label: &str) -> IrcClient {
        let stream = Conn::connect(addr)
            .unwrap_or_else(|e| panic!("{label}: cannot connect to {addr}: {e}"));
        stream.tcp().set_nodelay(true).expect("set_nodelay");
        IrcClient {
            label: label.to_owned(),
            stream,
            decoder: LineDecoder::new(),
            messages: VecDeque::new(),
            log: VecDeque::new(),
            received: 0,
            closed: None,
            next_token: 0,
            buf: vec![0; 16 * 1024],
        }
    }

    /// Connects and registers as `nick`, waiting for the end of the welcome burst.
    pub fn connect(addr: SocketAddr, nick: &str) -> IrcClient {
        let mut c = IrcClient::raw(addr, nick);
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :Test {nick}"));
        c.expect("001", |m| m.command == "001");
        // The burst ends with the MOTD or the lack of one.
        c.expect("end of MOTD", |m| m.command == "376" || m.command == "422");
        c
    }

    /// Joins `#room` and waits for the end of its names list.
    pub fn join(&mut self, room: &str) {
        self.send(&format!("JOIN #{room}"));
        self.expect(&format!("names of #{room}"), |m| {
            m.command == "366"
                && m.params
                    .get(1)
                    .is_some_and(|c| c.eq_ignore_ascii_case(&format!("#{room}")))
        });
    }

    /// Sends one line; CR LF is added.
    pub fn send(&mut self, line: &str) {
        self.write_raw(format!("{line}\r\n").as_bytes());
    }

    /// Writes bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!(
                "{}: write failed: {e}; received:\n{}",
                self.label,
                self.shown()
            );
        }
    }

    /// Waits up to [`WAIT`] for a message matching `pred`; returns it and drops the
    /// messages before it.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.messages.iter().position(&pred) {
                self.messages.drain(..pos);
                return self.messages.pop_front().expect("matched message");
            }
            if let Some(why) = &self.closed {
                panic!(
                    "{}: socket ended ({why}) before {what}; received:\n{}",
                    self.label,
                    self.shown()
                );
            }
            if !self.receive(deadline) {
                panic!(
                    "{}: no {what} within {WAIT:?}; received:\n{}",
                    self.label,
                    self.shown()
                );
            }
        }
    }

    /// Waits for the numeric reply `code`.
    pub fn expect_numeric(&mut self, code: &str) -> Message {
        self.expect(&format!("numeric {code}"), |m| m.command == code)
    }

    /// Pings the server and waits for the pong; returns every message that came before it.
    ///
    /// The server handles lines in order, so anything it queued for this client before the
    /// ping has arrived by then.
    pub fn sync(&mut self) -> Vec<Message> {
        self.next_token += 1;
        let token = format!("sync-{}", self.next_token);
        self.send(&format!("PING {token}"));
        let pong = |m: &Message| m.command == "PONG" && m.params.last() == Some(&token);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.messages.iter().position(pong) {
                let before: Vec<_> = self.messages.drain(..pos).collect();
                self.messages.pop_front();
                return before;
            }
            if self.closed.is_some() || !self.receive(deadline) {
                panic!(
                    "{}: no pong {token} within {WAIT:?} (closed: {:?}); received:\n{}",
                    self.label,
                    self.closed,
                    self.shown()
                );
            }
        }
    }

    /// Waits until the server closes the socket; returns the messages received meanwhile.
    pub fn expect_closed(&mut self, limit: Duration) -> Vec<Message> {
        let deadline = Instant::now() + limit;
        while self.closed.is_none() {
            if !self.receive(deadline) {
                panic!(
                    "{}: socket still open after {limit:?}; received:\n{}",
                    self.label,
                    self.shown()
                );
            }
        }
        self.messages.drain(..).collect()
    }

    /// Reads once (waiting at most until `deadline`); false if the deadline passed first.
    fn receive(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .tcp()
            .set_read_timeout(Some(wait))
            .expect("timeout");
        match self.stream.read(&mut self.buf) {
            Ok(0) => self.closed = Some("end of stream".into()),
            Ok(n) => self.absorb(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.closed = Some(e.to_string()),
        }
        true
    }

    fn absorb(&mut self, n: usize) {
        let mut input = &self.buf[..n];
        let mut pongs = Vec::new();
        while let Some(line) = self.decoder.decode(&mut input) {
            let line = match line {
                Line::Text(line) => line,
                Line::TooLong => panic!("{}: server sent a line over {MAX_LINE} bytes", self.label),
            };
            let Ok(text) = std::str::from_utf8(&line) else {
                panic!("{}: server sent invalid UTF-8: {line:?}", self.label);
            };
            self.received += 1;
            if self.log.len() == SHOWN {
                self.log.pop_front();
            }
            self.log.push_back(text.to_owned());
            let Some(msg) = Message::parse(&line) else {
                panic!(
                    "{}: server sent a line without a command: {text:?}",
                    self.label
                );
            };
            // Keepalive: answered at once, and not a message a test waits for.
            if msg.command == "PING" {
                pongs.push(format!("PONG :{}\r\n", msg.params.last().map_or("", |p| p)));
                continue;
            }
            self.messages.push_back(msg);
        }
        for pong in pongs {
            // The peer may be gone, which the next read reports.
            let _ = self.stream.write_all(pong.as_bytes());
        }
    }

    fn shown(&self) -> String {
        let skip = self.received - self.log.len();
        let mut text = String::new();
        if skip > 0 {
            text += &format!("  ({skip} earlier lines)\n");
        }
        for line in &self.log {
            text += "  ";
            text += line;
            text += "\n";
        }
        if self.log.is_empty() {
            text += "  (nothing)\n";
        }
        text
    }
}

/// The nick of a message's source `nick!user@host`.
pub fn source_nick(m: &Message) -> &str {
    let source = m.source.as_deref().unwrap_or("");
    source.split('!').next().unwrap_or(source)
}

/// Whether `m` is `command` from `nick` with exactly these parameters.
pub fn is(m: &Message, nick: &str, command: &str, params: &[&str]) -> bool {
    m.command == command && source_nick(m) == nick && m.params == params
}
