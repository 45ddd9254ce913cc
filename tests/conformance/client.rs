//! A test client: the core's `Client` over a blocking loopback socket, with waits that end
//! at a deadline and fail listing everything received.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::tls::Conn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchboard::core::{Client, ClientEvent, FrameDecoder, Packet, ServerPacket};

/// How long a wait lasts unless a scenario says otherwise: generous, as it only bounds
/// failures (a passing wait returns as soon as its event arrives).
pub const WAIT: Duration = Duration::from_secs(10);

/// Entries of the received log shown when a wait fails.
const SHOWN: usize = 40;

pub struct TestClient {
    label: String,
    stream: Conn,
    client: Client,
    /// Decodes the same bytes as `client`, to see packets it answers silently (pings).
    raw: FrameDecoder,
    /// Events received and not yet consumed by a wait.
    events: VecDeque<ClientEvent>,
    /// The last packets received, for failure messages.
    log: VecDeque<ServerPacket>,
    /// Packets received in all.
    received: usize,
    /// Why the socket ended, once it has.
    closed: Option<String>,
    /// Whether to hold back what the client queues on its own (pongs).
    silent: bool,
    pings: usize,
    next_token: u64,
    /// Requests the client counted that never reached the server (a raw connection's hello).
    unsent: u32,
    buf: Vec<u8>,
}

impl TestClient {
    /// Connects without saying hello.
    pub fn raw(addr: SocketAddr, label: &str) -> TestClient {
        let stream = Conn::connect(addr)
            .unwrap_or_else(|e| panic!("{label}: cannot connect to {addr}: {e}"));
        TestClient::over(stream, label)
    }

    /// A client on a connection already made (from another source address, say).
    pub fn over(stream: Conn, label: &str) -> TestClient {
        stream.tcp().set_nodelay(true).expect("set_nodelay");
        let mut client = Client::new(label);
        // Client::new queues a hello; a raw connection sends only what the test writes.
        client.poll_transmit();
        // Tests write what they mean to, as fast as they mean to: the server's own flood
        // control is what they test.
        client.set_paced(false);
        TestClient {
            label: label.to_owned(),
            stream,
            client,
            raw: FrameDecoder::new(u32::MAX),
            events: VecDeque::new(),
            log: VecDeque::new(),
            received: 0,
            closed: None,
            silent: false,
            pings: 0,
            next_token: 1_000_000,
            unsent: 1,
            buf: vec![0; 32 * 1024],
        }
    }

    /// Connects and says hello, without waiting for the answer.
    pub fn hello(addr: SocketAddr, nick: &str) -> TestClient {
        let mut c = TestClient::raw(addr, nick);
        c.send(|cl| cl.hello(nick));
        c
    }

    /// Connects, says hello and waits for the welcome.
    pub fn connect(addr: SocketAddr, nick: &str) -> TestClient {
        let mut c = TestClient::hello(addr, nick);
        c.expect("welcome", |e| matches!(e, ClientEvent::Welcome { .. }));
        c
    }

    /// Connects, says hello, joins `room` and waits for its member list.
    pub fn in_room(addr: SocketAddr, nick: &str, room: &str) -> TestClient {
        let mut c = TestClient::connect(addr, nick);
        c.join(room);
        c
    }

    /// Joins a room and waits for its member list.
    pub fn join(&mut self, room: &str) {
        self.send(|c| c.join(room));
        self.expect(&format!("members of {room}"), |e| {
            // The server names the room as whoever created it spelled it.
            matches!(e, ClientEvent::Members { room: r, .. } if r.eq_ignore_ascii_case(room))
        });
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client's end of the TCP socket, for writing from another thread or half-closing
    /// it. Over TLS, bytes written there bypass the session: see [`TestClient::is_tls`].
    pub fn stream(&self) -> TcpStream {
        self.stream.tcp().try_clone().expect("clone the socket")
    }

    /// Whether the client speaks TLS to the server.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Conn::Tls(_))
    }

    /// Whether the server closed the socket (as far as reads so far showed).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Reads for `d` (answering pings) and returns every event received.
    pub fn drain_for(&mut self, d: Duration) -> Vec<ClientEvent> {
        let deadline = Instant::now() + d;
        while self.closed.is_none() && self.receive(deadline) {}
        self.events.drain(..).collect()
    }

    /// Never sends what the client queues by itself (so server pings go unanswered).
    pub fn set_silent(&mut self) {
        self.silent = true;
    }

    /// Server pings seen so far.
    pub fn pings(&self) -> usize {
        self.pings
    }

    /// Makes a request and sends it; returns its request number as the server counts.
    pub fn send(&mut self, request: impl FnOnce(&mut Client) -> u32) -> u32 {
        let seq = self.queue(request);
        self.flush();
        seq
    }

    /// Makes a request without sending; [`TestClient::flush`] sends all queued in one write.
    pub fn queue(&mut self, request: impl FnOnce(&mut Client) -> u32) -> u32 {
        request(&mut self.client).wrapping_sub(self.unsent)
    }

    /// Sends everything queued.
    pub fn flush(&mut self) {
        if let Some(bytes) = self.client.poll_transmit() {
            self.write_raw(&bytes);
        }
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

    /// Waits up to [`WAIT`] for an event matching `pred`; returns it and drops the events
    /// before it.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        self.expect_within(what, WAIT, pred)
    }

    /// As [`TestClient::expect`] with its own limit.
    pub fn expect_within(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> ClientEvent {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pos) = self.events.iter().position(&pred) {
                self.events.drain(..pos);
                return self.events.pop_front().expect("matched event");
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
                    "{}: no {what} within {limit:?}; received:\n{}",
                    self.label,
                    self.shown()
                );
            }
        }
    }

    /// Pings the server and waits for the pong; returns every event that came before it.
    ///
    /// The server answers in order, so anything it queued for this client before it
    /// handled the ping has arrived by then.
    pub fn sync(&mut self) -> Vec<ClientEvent> {
        self.next_token += 1;
        let token = self.next_token;
        self.send(|c| c.ping(token));
        let deadline = Instant::now() + WAIT;
        loop {
            let pos = self
                .events
                .iter()
                .position(|e| *e == ClientEvent::Pong { token });
            if let Some(pos) = pos {
                let before: Vec<_> = self.events.drain(..pos).collect();
                self.events.pop_front();
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

    /// Waits until the server closes the socket; returns the events received meanwhile.
    pub fn expect_closed(&mut self, limit: Duration) -> Vec<ClientEvent> {
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
        self.events.drain(..).collect()
    }

    /// Keeps reading (and answering pings unless silent) until `stop` is set.
    pub fn pump_until(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) && self.closed.is_none() {
            self.receive(Instant::now() + Duration::from_millis(20));
        }
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
        let bytes = &self.buf[..n];
        let mut input = bytes;
        while let Some(frame) = self.raw.decode(&mut input).expect("server framing") {
            match ServerPacket::decode(frame.type_code, frame.payload) {
                Ok(packet) => {
                    if matches!(packet, ServerPacket::Ping { .. }) {
                        self.pings += 1;
                    }
                    self.received += 1;
                    if self.log.len() == SHOWN {
                        self.log.pop_front();
                    }
                    self.log.push_back(packet);
                }
                Err(e) => panic!("{}: server sent an undecodable packet: {e}", self.label),
            }
        }
        if let Err(e) = self.client.handle_input(bytes, Instant::now()) {
            panic!("{}: server broke the protocol: {e}", self.label);
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push_back(event);
        }
        if self.silent {
            self.client.poll_transmit();
        } else if let Some(out) = self.client.poll_transmit() {
            // Auto-answers (pongs); the peer may be gone, which the next read reports.
            let _ = self.stream.write_all(&out);
        }
    }

    fn shown(&self) -> String {
        let skip = self.received - self.log.len();
        let mut text = String::new();
        if skip > 0 {
            text += &format!("  ({skip} earlier packets)\n");
        }
        for packet in &self.log {
            let mut line = format!("{packet:?}");
            if line.len() > 160 {
                let mut end = 160;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
                line += "…";
            }
            text += "  ";
            text += &line;
            text += "\n";
        }
        if self.log.is_empty() {
            text += "  (nothing)\n";
        }
        text
    }
}

/// One frame with the given type code and payload, for raw writes.
pub fn frame(type_code: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    bytes.push(type_code);
    bytes.extend_from_slice(payload);
    bytes
}
