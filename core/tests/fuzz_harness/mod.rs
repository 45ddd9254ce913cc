//! The fuzz harness: turns arbitrary bytes into work for the core and checks its invariants.
//!
//! One copy serves both the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs` include this file
//! by path) and the stable corpus replay (`core/tests/fuzz_corpus.rs`), so the committed
//! corpus is re-checked by `cargo test` with exactly the checks the fuzzer ran. Every
//! entry point takes any byte string, never fails on "bad" input, and panics (a fuzzer
//! crash, a failed test) when the core breaks a rule. docs/TESTING.md lists the checks.
//!
//! Only the public API of `switchboard-core` is used, and of the `Server` only through
//! [`Driver`], so a change of the adapter-facing API touches one small block.

// Each fuzz target uses one entry point; the replay test uses them all.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use switchboard_core::line::{Line, LineDecoder, Message, MAX_LINE};
use switchboard_core::packet::LENGTH_PREFIX;
use switchboard_core::{
    ClientPacket, Close, CloseMode, Config, ConnId, Event, FrameDecoder, Packet, RoomMode,
    RoomRule, Server, ServerPacket,
};

/// What one input exercised, so the replay test can tell that its corpus reaches deep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// Frames decoded (the frame target) or frames and lines the server sent.
    pub frames: usize,
    /// Frames that also decoded as a packet, or IRC lines that parsed as a message.
    pub packets: usize,
    /// Native connections that completed a hello.
    pub native_registered: usize,
    /// IRC connections that completed registration.
    pub irc_registered: usize,
    /// Rooms alive at their most.
    pub rooms: usize,
}

impl std::ops::AddAssign for Reached {
    fn add_assign(&mut self, o: Reached) {
        self.frames += o.frames;
        self.packets += o.packets;
        self.native_registered += o.native_registered;
        self.irc_registered += o.irc_registered;
        self.rooms = self.rooms.max(o.rooms);
    }
}

/// Reads the fuzzer's bytes as small numbers; past the end every read is `None`.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    /// Up to `n` bytes (fewer at the end).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// Chunk sizes drawn from one seed byte, so chunking costs the stream no bytes of its own.
struct Chunks(u32);

impl Chunks {
    fn new(seed: u8) -> Self {
        Chunks(u32::from(seed).wrapping_mul(0x9E37_79B9) | 1)
    }

    /// A chunk size of 1 to `max` bytes.
    fn next(&mut self, max: usize) -> usize {
        // xorshift32: any fixed, cheap sequence does.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        1 + self.0 as usize % max.max(1)
    }
}

// ---------------------------------------------------------------------------------------
// Frame decoder and packet decoding.

/// Frames (type code and payload) and how the stream ended: an error, or the bytes of a
/// partial frame left buffered.
type Decoded = (Vec<(u8, Vec<u8>)>, Result<usize, String>);

/// Feeds `stream` to a decoder in the given chunk sizes, checking its memory bound.
fn decode_frames(max_len: u32, stream: &[u8], mut chunk: impl FnMut() -> usize) -> Decoded {
    let mut dec = FrameDecoder::new(max_len);
    let mut frames = Vec::new();
    let bound = LENGTH_PREFIX + max_len as usize;
    let mut rest = stream;
    loop {
        let (mut part, tail) = rest.split_at(chunk().min(rest.len()));
        rest = tail;
        loop {
            match dec.decode(&mut part) {
                Ok(Some(f)) => {
                    assert!(
                        f.payload.len() < max_len as usize,
                        "a frame body of {} bytes passed max_len {max_len}",
                        f.payload.len() + 1
                    );
                    frames.push((f.type_code, f.payload.to_vec()));
                }
                Ok(None) => break,
                Err(e) => return (frames, Err(e.to_string())),
            }
        }
        assert!(part.is_empty(), "the decoder left input unread");
        // A partial frame is always shorter than the largest whole one.
        assert!(
            dec.buffered() < bound,
            "{} bytes buffered, max_len {max_len}",
            dec.buffered()
        );
        // Memory held: one partial frame, with at most the doubling of a growing buffer.
        assert!(
            dec.capacity() <= 2 * bound + 64,
            "a decoder of max_len {max_len} holds {} bytes",
            dec.capacity()
        );
        if rest.is_empty() {
            return (frames, Ok(dec.buffered()));
        }
    }
}

/// A packet decoded from a frame must encode back to exactly that frame.
fn check_round_trip<P: Packet + std::fmt::Debug>(code: u8, payload: &[u8]) -> bool {
    match P::decode(code, payload) {
        Ok(p) => {
            assert_eq!(p.type_code(), code, "{p:?}");
            let frame = p.to_frame();
            assert_eq!(
                &frame[LENGTH_PREFIX + 1..],
                payload,
                "{p:?} re-encodes differently"
            );
            let body = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            assert_eq!(body as usize, payload.len() + 1);
            true
        }
        Err(e) => {
            // The error must render and map to a wire code.
            let _ = (e.to_string(), e.code());
            false
        }
    }
}

/// Fuzzes `FrameDecoder` and both packet decoders.
///
/// Input: one byte picks the maximum frame length, one seeds the chunking, the rest is the
/// stream. Checks: the frames and the outcome do not depend on how the stream is chunked;
/// no frame passes the maximum and no more than one partial frame is held; each frame that
/// decodes as a client or a server packet encodes back to the same bytes.
pub fn frame(data: &[u8]) -> Reached {
    let mut input = Input { data };
    let (Some(max), Some(seed)) = (input.u8(), input.u8()) else {
        return Reached::default();
    };
    let max_len = match max {
        255 => 65_536,
        254 => u32::MAX,
        n => u32::from(n) * 4,
    };
    let stream = input.data;
    let whole = decode_frames(max_len, stream, || usize::MAX);
    let mut chunks = Chunks::new(seed);
    let chunked = decode_frames(max_len, stream, || chunks.next(16));
    assert_eq!(whole, chunked, "chunking changed the decoded frames");
    let mut reached = Reached::default();
    for (code, payload) in &whole.0 {
        reached.frames += 1;
        let client = check_round_trip::<ClientPacket>(*code, payload);
        let server = check_round_trip::<ServerPacket>(*code, payload);
        reached.packets += usize::from(client || server);
    }
    reached
}

// ---------------------------------------------------------------------------------------
// IRC line decoder and message parser.

fn decode_lines(stream: &[u8], mut chunk: impl FnMut() -> usize) -> (Vec<Line>, usize) {
    let mut dec = LineDecoder::new();
    let mut lines = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (mut part, tail) = rest.split_at(chunk().min(rest.len()));
        rest = tail;
        while let Some(line) = dec.decode(&mut part) {
            if let Line::Text(t) = &line {
                assert!(t.len() <= MAX_LINE - 2, "a line of {} bytes", t.len());
                assert!(!t.contains(&b'\n'), "a line holds a LF");
            }
            lines.push(line);
            assert!(
                dec.buffered() < MAX_LINE,
                "{} bytes buffered",
                dec.buffered()
            );
        }
        assert!(part.is_empty(), "the decoder left input unread");
        assert!(
            dec.buffered() < MAX_LINE,
            "{} bytes buffered",
            dec.buffered()
        );
    }
    (lines, dec.buffered())
}

/// Checks one parsed message and its serialised form; returns the written line.
fn check_message(m: &Message) -> Vec<u8> {
    assert!(!m.command.is_empty());
    assert!(!m.command.contains(' '), "{m:?}");
    assert_eq!(m.command, m.command.to_ascii_uppercase());
    assert!(m.params.len() <= 15, "{} params", m.params.len());
    if let Some(src) = &m.source {
        assert!(!src.contains(' '), "{m:?}");
    }
    if let Some((_, middle)) = m.params.split_last() {
        for p in middle {
            assert!(
                !p.is_empty() && !p.contains(' ') && !p.starts_with(':'),
                "middle parameter {p:?} of {m:?}"
            );
        }
    }
    let out = m.to_bytes().to_vec();
    assert!(out.len() <= MAX_LINE, "wrote {} bytes", out.len());
    assert!(out.ends_with(b"\r\n"));
    let body = &out[..out.len() - 2];
    assert!(
        !body.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')),
        "a written line holds a NUL, CR or LF: {out:?}"
    );
    assert!(
        std::str::from_utf8(body).is_ok(),
        "a written line is not UTF-8: {out:?}"
    );
    out
}

/// Fuzzes `LineDecoder` and `Message::parse` / `Message::write`.
///
/// Input: one byte seeds the chunking, the rest is the stream. Checks: the lines do not
/// depend on chunking; no line passes 510 bytes and no more than 511 are held; a parsed
/// message is well formed; its serialised form is one valid UTF-8 line of at most 512
/// bytes, and parses back to the same message when it was not cut to fit.
pub fn irc(data: &[u8]) -> Reached {
    let mut input = Input { data };
    let Some(seed) = input.u8() else {
        return Reached::default();
    };
    let stream = input.data;
    let whole = decode_lines(stream, || usize::MAX);
    let mut chunks = Chunks::new(seed);
    let chunked = decode_lines(stream, || chunks.next(16));
    assert_eq!(whole, chunked, "chunking changed the decoded lines");
    let mut reached = Reached::default();
    for line in &whole.0 {
        reached.frames += 1;
        let Line::Text(text) = line else { continue };
        let Some(m) = Message::parse(text) else {
            continue;
        };
        reached.packets += 1;
        let out = check_message(&m);
        // A command that starts with `@` and has no source to go before it is written as a
        // line that reads as tags: only a parsed oddity can be such a message (the server
        // writes fixed command words), so it is not written back.
        if m.source.is_none() && m.command.starts_with('@') {
            continue;
        }
        // A line cut to fit ends within a character (up to 4 bytes) of the 510-byte limit,
        // so a shorter one was written whole and must read back as the same message (with
        // NUL, CR and LF as U+FFFD). A cut one (a parsed source or middle parameter of
        // hundreds of U+FFFD) may have lost its command.
        if out.len() <= MAX_LINE - 4 {
            let again = Message::parse(&out[..out.len() - 2]).expect("a written line parses");
            let clean = |s: &String| s.replace(['\0', '\r', '\n'], "\u{FFFD}");
            let expect = Message {
                source: m.source.as_ref().map(clean),
                command: clean(&m.command),
                params: m.params.iter().map(clean).collect(),
            };
            assert_eq!(again, expect, "did not survive a round trip: {out:?}");
            check_message(&again);
        }
    }
    reached
}

// ---------------------------------------------------------------------------------------
// The whole server.

/// The one `Instant` of the process; virtual time is this plus a duration.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Whether to print every server call and event (set `SWITCHBOARD_FUZZ_TRACE` to replay a
/// crash with its story).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SWITCHBOARD_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

/// The adapter's part: every call the harness makes on the `Server`, and nothing else.
///
/// It plays an adapter that may be slow to write, late with timers, and that flushes a
/// closing connection's last output before closing it.
struct Driver {
    server: Server,
    now: Instant,
}

impl Driver {
    fn new(config: Config) -> Self {
        Driver {
            server: Server::new(config),
            now: base(),
        }
    }

    fn config(&self) -> &Config {
        self.server.config()
    }

    fn open(&mut self) -> ConnId {
        let id = self.server.open(self.now);
        trace!("open -> {id}");
        id
    }

    /// Reads what the core allows now from `bytes` (a socket's receive buffer) and hands
    /// it over; returns how many bytes were read (0 when the budget is 0).
    fn input(&mut self, id: ConnId, bytes: &[u8]) -> usize {
        let n = self.server.read_budget(id).min(bytes.len());
        if n == 0 {
            return 0;
        }
        trace!("input {id} {:?}", String::from_utf8_lossy(&bytes[..n]));
        self.server.handle_input(id, &bytes[..n], self.now);
        n
    }

    /// The peer will send nothing more.
    fn eof(&mut self, id: ConnId) {
        trace!("handle_eof {id}");
        self.server.handle_eof(id, self.now);
    }

    /// The next connection that may be read again.
    fn next_readable(&mut self) -> Option<ConnId> {
        let id = self.server.poll_readable()?;
        trace!("poll_readable -> {id}");
        Some(id)
    }

    /// The peer went away (or the adapter finished closing the socket).
    fn close(&mut self, id: ConnId) {
        trace!("handle_close {id}");
        self.server.handle_close(id, self.now);
    }

    fn advance(&mut self, by: Duration) {
        trace!("advance {by:?}");
        self.now += by;
    }

    /// Runs keepalive at the current time.
    fn timeout(&mut self) {
        trace!("handle_timeout");
        self.server.handle_timeout(self.now);
    }

    /// The core's next deadline.
    fn deadline(&mut self) -> Option<Instant> {
        self.server.poll_timeout()
    }

    /// One batch of one connection's output, handed to its socket (not yet written).
    fn take(&mut self, id: ConnId) -> Option<Vec<u8>> {
        let t = self.server.take_transmit(id)?;
        trace!("take_transmit {id}: {:?}", String::from_utf8_lossy(&t.data));
        assert_eq!(t.conn, id);
        Some(t.data.to_vec())
    }

    /// The next batch of anyone's output.
    fn take_any(&mut self) -> Option<(ConnId, Vec<u8>)> {
        let t = self.server.poll_transmit()?;
        trace!(
            "poll_transmit {}: {:?}",
            t.conn,
            String::from_utf8_lossy(&t.data)
        );
        Some((t.conn, t.data.to_vec()))
    }

    fn written(&mut self, id: ConnId, n: usize) {
        trace!("handle_written {id} {n}");
        self.server.handle_written(id, n);
    }

    /// The next close the core asks for: flush (stop reading, keep writing) or now.
    fn next_close(&mut self) -> Option<Close> {
        let close = self.server.poll_close()?;
        trace!("poll_close -> {} {:?}", close.conn, close.mode);
        Some(close)
    }

    fn shutdown(&mut self) {
        trace!("shutdown");
        self.server.shutdown(self.now);
    }

    fn event(&mut self) -> Option<Event> {
        let e = self.server.poll_event();
        if let Some(e) = &e {
            trace!("event {e:?}");
        }
        e
    }
}

/// An IRC line never carries more than a bye: what the core may queue past
/// `max_outbound_bytes` for a connection it has decided to close.
const BYE_MAX: usize = MAX_LINE;

/// What the harness knows about one connection.
#[derive(Debug, Default)]
struct Tracked {
    /// Which protocol its first input chose (`None` before any input).
    irc: Option<bool>,
    /// Not yet reported closed with `handle_close`.
    open: bool,
    /// Reported gone by its peer (not by the adapter finishing a close).
    peer_closed: bool,
    /// The core announced it closed (`Event::Closed`).
    closed_event: bool,
    registered: bool,
    /// Its last frame or line (a bye) has been handed out.
    bye_seen: bool,
    /// Bytes handed to its socket and not yet reported written.
    in_flight: usize,
    /// Input held back to be sent with the next packet, so several arrive in one read.
    held: Vec<u8>,
    /// Bytes the peer sent that the adapter has not read yet (the read budget was short).
    unread: Vec<u8>,
    /// The peer closed its sending side; reported with `handle_eof` once `unread` is read.
    eof: bool,
    /// `handle_eof` was called.
    eof_reported: bool,
    /// The core asked to flush it: it is not read any more.
    flushing: bool,
    /// The core closed it with output still unwritten (`close_linger` ran out).
    lingered: bool,
}

/// A script's connections and its checks of everything the server says.
struct World {
    d: Driver,
    conns: Vec<Tracked>,
    /// Whether the last step ran keepalive, after which no deadline may be due.
    timed_out: bool,
    shut_down: bool,
    reached: Reached,
}

/// Strings the scripts use as names, texts and parameters: valid and invalid ones, equal
/// under case folding, and IRC channel and mode forms, so short scripts collide and err.
///
/// The first 32 keep their indices so the committed corpus keeps its meaning.
const POOL: [&str; 48] = [
    "a",
    "A",
    "b",
    "c",
    "r",
    "R",
    "s",
    "#r",
    "#R",
    "#s",
    "pw",
    "",
    "0",
    "+o",
    "-o",
    "+t",
    "+v",
    "-t",
    "LS",
    "END",
    "REQ",
    "x y",
    "a\rb",
    "\0",
    "é",
    "#r,#s",
    "*",
    "1x",
    "a-[]",
    ":t",
    "302",
    "b,c",
    "+k",
    "+l",
    "+i",
    "-i",
    "+b",
    "+e",
    "+I",
    "+m",
    "+ns",
    "-k",
    "2",
    "*!*@*",
    "a!*@*",
    "%t",
    "multi-prefix labeled-response",
    "+it-n",
];

/// IRC commands the scripts send; the last is one the server does not know. Its slot
/// picks one of [`MORE_COMMANDS`] by the next byte (so the committed corpus keeps its
/// meaning).
const COMMANDS: [&str; 21] = [
    "NICK", "USER", "PASS", "CAP", "JOIN", "PART", "PRIVMSG", "NOTICE", "QUIT", "PING", "PONG",
    "TOPIC", "KICK", "MODE", "AWAY", "WHOIS", "WHO", "NAMES", "LIST", "MOTD", "FOO",
];

/// The commands added with the IRC extensions, and labeled and unknown ones.
const MORE_COMMANDS: [&str; 20] = [
    "WHOWAS",
    "USERHOST",
    "ISON",
    "INVITE",
    "LUSERS",
    "VERSION",
    "TIME",
    "ADMIN",
    "INFO",
    "HELP",
    "OPER",
    "KILL",
    "WALLOPS",
    "LINKS",
    "@label=x PING",
    "@label=y WHO",
    "@label=z PRIVMSG",
    "TAGMSG",
    "BATCH",
    "FOO",
];

fn string(input: &mut Input<'_>) -> String {
    let Some(s) = input.u8() else {
        return String::new();
    };
    match s {
        0..=31 => POOL[s as usize].to_owned(),
        // Long ones, to meet every length limit.
        32..=47 => "n".repeat(usize::from(s - 31) * 18),
        48..=63 => POOL[usize::from(s - 16)].to_owned(),
        _ => {
            let n = usize::from(s - 64) % 40;
            String::from_utf8_lossy(input.take(n)).into_owned()
        }
    }
}

fn rule(b: u8) -> RoomRule {
    match b % 9 {
        0 => RoomRule::Key,
        1 => RoomRule::Limit,
        2 => RoomRule::InviteOnly,
        3 => RoomRule::Moderated,
        4 => RoomRule::NoOutside,
        5 => RoomRule::Secret,
        6 => RoomRule::Ban,
        7 => RoomRule::BanExempt,
        _ => RoomRule::InviteExempt,
    }
}

fn mode(b: u8) -> RoomMode {
    match b % 3 {
        0 => RoomMode::TopicLock,
        1 => RoomMode::Operator,
        _ => RoomMode::Voice,
    }
}

fn client_packet(input: &mut Input<'_>) -> ClientPacket {
    let kind = input.u8().unwrap_or(0);
    let mut s = || string(input);
    match kind % 16 {
        0 => {
            let version = if kind & 0x80 == 0 { 1 } else { u16::from(kind) };
            ClientPacket::Hello {
                version,
                nick: s(),
                password: s(),
            }
        }
        1 => ClientPacket::Join {
            room: s(),
            key: s(),
        },
        2 => ClientPacket::Leave {
            room: s(),
            reason: s(),
        },
        3 => ClientPacket::Say {
            room: s(),
            text: s(),
        },
        4 => ClientPacket::Whisper { to: s(), text: s() },
        5 => ClientPacket::Nick { nick: s() },
        6 => ClientPacket::ListRooms,
        7 => ClientPacket::ListMembers { room: s() },
        // A ping with the high bit picks one of the packets added since.
        8 if kind & 0x80 != 0 => match input.u8().unwrap_or(0) % 4 {
            0 => ClientPacket::SetRule {
                room: string(input),
                rule: rule(kind >> 4),
                on: kind & 0x40 != 0,
                arg: string(input),
            },
            1 => ClientPacket::Invite {
                room: string(input),
                nick: string(input),
            },
            2 => ClientPacket::ListRules {
                room: string(input),
            },
            _ => ClientPacket::History {
                room: string(input),
                before: u64::from(kind),
                limit: u16::from(kind >> 3),
            },
        },
        8 => ClientPacket::Ping {
            token: u64::from(kind),
        },
        9 => ClientPacket::Pong {
            token: u64::from(kind),
        },
        10 => ClientPacket::Quit { reason: s() },
        11 => ClientPacket::SetTopic {
            room: s(),
            topic: s(),
        },
        12 => ClientPacket::Kick {
            room: s(),
            nick: s(),
            reason: s(),
        },
        13 => ClientPacket::Away { message: s() },
        14 => ClientPacket::Whois { nick: s() },
        _ => ClientPacket::SetMode {
            room: s(),
            mode: mode(kind >> 4),
            on: kind & 0x80 != 0,
            nick: s(),
        },
    }
}

fn irc_line(input: &mut Input<'_>) -> Vec<u8> {
    let b = input.u8().unwrap_or(0);
    let mut command = COMMANDS[usize::from(b) % COMMANDS.len()];
    if command == "FOO" {
        command = MORE_COMMANDS[usize::from(input.u8().unwrap_or(0)) % MORE_COMMANDS.len()];
    }
    let mut line = command.as_bytes().to_vec();
    let params = input.u8().unwrap_or(0);
    for i in 0..params % 6 {
        line.push(b' ');
        // The high bits put a colon before the last parameter.
        if i + 1 == params % 6 && params & 0x80 != 0 {
            line.push(b':');
        }
        line.extend_from_slice(string(input).as_bytes());
    }
    line.extend_from_slice(if b & 0x80 != 0 { b"\n" } else { b"\r\n" });
    line
}

fn config(input: &mut Input<'_>) -> Config {
    let a = input.u8().unwrap_or(0);
    let b = input.u8().unwrap_or(0);
    let secs = |n: u8| Duration::from_millis(500 + 500 * u64::from(n));
    let mut c = Config::default();
    c.max_frame_len = [64, 300, 4096, 65_536][usize::from(a & 3)];
    // The receive queue is tied to the frame size: from less than one frame to many.
    c.max_inbound_bytes = [100, 600, 2048, 8192][usize::from(a & 3)];
    c.max_outbound_bytes = [200, 1000, 8192, 1 << 20][usize::from(a >> 2 & 3)];
    c.max_transmit_bytes = [1, 100, 2048, 65_536][usize::from(a >> 4 & 3)];
    c.msg_rate = if a & 0x40 != 0 { 0 } else { 5 };
    c.msg_burst = 4;
    c.password = (a & 0x80 != 0).then(|| "pw".to_owned());
    // Coalescing on (the default) or off, by the same bit.
    if a & 0x80 != 0 {
        c.flush_delay = Duration::ZERO;
    }
    c.max_nick_len = if b & 1 != 0 { 3 } else { 32 };
    c.max_room_len = if b & 2 != 0 { 4 } else { 64 };
    c.max_text_len = if b & 4 != 0 { 20 } else { 4096 };
    c.max_reason_len = if b & 4 != 0 { 10 } else { 256 };
    c.max_topic_len = if b & 4 != 0 { 10 } else { 390 };
    c.max_rooms_per_conn = if b & 8 != 0 { 2 } else { 64 };
    c.ping_interval = secs(b >> 4 & 3);
    c.idle_timeout = secs(b >> 4 & 3) * 3;
    c.hello_timeout = secs(b >> 6);
    c.request_timeout = secs(b >> 6) * 2;
    c.close_linger = secs(b >> 5 & 3);
    c.motd = (b & 0x10 != 0).then(|| "hello\nthere".to_owned());
    c.wall_clock = (b & 0x20 != 0).then(|| (base(), Duration::from_secs(1_700_000_000)));
    // OPER a pw (the SHA-256 of "pw").
    c.operators = vec![(
        "a".to_owned(),
        "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4".to_owned(),
    )];
    c
}

impl World {
    fn new(config: Config) -> Self {
        World {
            d: Driver::new(config),
            conns: Vec::new(),
            timed_out: false,
            shut_down: false,
            reached: Reached::default(),
        }
    }

    fn id(&self, pick: u8) -> Option<ConnId> {
        let n = self.conns.len();
        (n > 0).then(|| ConnId(1 + (usize::from(pick) % n) as u64))
    }

    fn tracked(&mut self, id: ConnId) -> &mut Tracked {
        let i = (id.0 as usize).checked_sub(1);
        match i.and_then(|i| self.conns.get_mut(i)) {
            Some(t) => t,
            None => panic!("the server named {id}, which was never opened"),
        }
    }

    fn open(&mut self) {
        let id = self.d.open();
        self.conns.push(Tracked {
            open: true,
            ..Tracked::default()
        });
        assert_eq!(id, ConnId(self.conns.len() as u64), "ids count up from 1");
    }

    /// Sends bytes (after any held back) to a connection, split in two reads at `split`.
    fn send(&mut self, id: ConnId, bytes: &[u8], split: u8) {
        let t = self.tracked(id);
        let mut all = std::mem::take(&mut t.held);
        all.extend_from_slice(bytes);
        if all.is_empty() {
            return;
        }
        if !t.open || t.eof {
            return;
        }
        let at = if split == 0 {
            all.len()
        } else {
            usize::from(split) % all.len()
        };
        let (a, b) = all.split_at(at);
        for part in [a, b] {
            if !part.is_empty() {
                self.tracked(id).unread.extend_from_slice(part);
                self.read(id);
            }
        }
    }

    /// Reads from `id`'s receive buffer what its read budget allows, once; then reports
    /// the end of its input if the peer closed and everything is read.
    fn read(&mut self, id: ConnId) {
        let t = self.tracked(id);
        if !t.open || t.flushing {
            return;
        }
        let unread = std::mem::take(&mut t.unread);
        let first = unread.first().copied();
        let n = self.d.input(id, &unread);
        let t = self.tracked(id);
        t.unread = unread[n..].to_vec();
        if n > 0 {
            // The core picks the protocol from the first byte it is handed.
            if t.irc.is_none() {
                t.irc = first.map(|b| b != 0);
            }
            self.check();
        }
        let t = self.tracked(id);
        if t.eof && !t.eof_reported && t.unread.is_empty() && t.open && !t.flushing {
            t.eof_reported = true;
            self.d.eof(id);
            self.check();
        }
    }

    /// Reads again every connection the core names readable.
    fn readable(&mut self) {
        while let Some(id) = self.d.next_readable() {
            let t = self.tracked(id);
            assert!(t.open, "poll_readable named {id}, already closed");
            self.read(id);
        }
    }

    /// Checks one batch of output handed out for `id`: whole frames (or lines), each
    /// decoding, nothing after a bye, no batch over `max_transmit_bytes` unless it is a
    /// single frame.
    fn output(&mut self, id: ConnId, data: &[u8]) {
        let max_frame = self.d.config().max_frame_len as usize;
        let max_transmit = self.d.config().max_transmit_bytes;
        let t = self.tracked(id);
        assert!(t.open, "output for {id} after it was closed");
        assert!(!data.is_empty(), "an empty transmit for {id}");
        assert!(!t.bye_seen, "output for {id} after its bye: {data:?}");
        t.in_flight += data.len();
        let mut units = 0;
        let mut packets = 0;
        if t.irc == Some(true) {
            let mut rest = data;
            while !rest.is_empty() {
                assert!(!t.bye_seen, "a line after ERROR for {id}");
                let end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .unwrap_or_else(|| panic!("{id}: output does not end in CR LF: {rest:?}"));
                let line = &rest[..end];
                rest = &rest[end + 2..];
                assert!(end + 2 <= MAX_LINE, "{id}: a line of {} bytes", end + 2);
                let bad = line.iter().find(|&&c| matches!(c, 0 | b'\r' | b'\n'));
                assert!(bad.is_none(), "{id}: a line holds {bad:?}: {line:?}");
                assert!(
                    std::str::from_utf8(line).is_ok(),
                    "{id}: a line is not UTF-8: {line:?}"
                );
                let m = Message::parse(line)
                    .unwrap_or_else(|| panic!("{id}: a line with no command: {line:?}"));
                check_message(&m);
                t.bye_seen = m.command == "ERROR";
                units += 1;
                packets += 1;
            }
        } else {
            let mut rest = data;
            while !rest.is_empty() {
                assert!(!t.bye_seen, "a frame after Bye for {id}");
                assert!(
                    rest.len() > LENGTH_PREFIX,
                    "{id}: a partial frame: {rest:?}"
                );
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                assert!(len > 0, "{id}: an empty frame");
                let total = LENGTH_PREFIX + len;
                assert!(rest.len() >= total, "{id}: a partial frame: {rest:?}");
                let (code, payload) = (rest[LENGTH_PREFIX], &rest[LENGTH_PREFIX + 1..total]);
                let p = ServerPacket::decode(code, payload)
                    .unwrap_or_else(|e| panic!("{id}: a frame does not decode ({e}): {rest:?}"));
                assert_eq!(
                    &p.to_frame()[..],
                    &rest[..total],
                    "{p:?} re-encodes differently"
                );
                // Lists are split to fit the maximum frame (docs/PROTOCOL.md); a part
                // holds one entry at least, whatever its size.
                let entries = match &p {
                    ServerPacket::RoomList { rooms, .. } => rooms.len(),
                    ServerPacket::Members { members, .. } => members.len(),
                    _ => 0,
                };
                assert!(
                    entries <= 1 || len <= max_frame,
                    "{id}: a list of {entries} in a frame of {len} > {max_frame}"
                );
                // What a default client accepts.
                assert!(len <= 65_536, "{id}: a frame of {len} bytes");
                t.bye_seen = matches!(p, ServerPacket::Bye { .. });
                rest = &rest[total..];
                units += 1;
                packets += 1;
            }
        }
        assert!(
            data.len() <= max_transmit || units == 1,
            "{id}: a transmit of {} bytes holds {units} frames",
            data.len()
        );
        self.reached.frames += units;
        self.reached.packets += packets;
    }

    fn write(&mut self, id: ConnId, n: usize) {
        let t = self.tracked(id);
        let n = n.min(t.in_flight);
        t.in_flight -= n;
        self.d.written(id, n);
    }

    /// Takes and writes out everything anyone has queued (an adapter with fast sockets).
    fn flush(&mut self) {
        while let Some((id, data)) = self.d.take_any() {
            self.output(id, &data);
            self.write(id, data.len());
            self.check();
        }
    }

    /// Honours every close the core asks for: a flush stops reading and writes the last
    /// output (which leads to a close now); a close now closes the socket.
    fn reap(&mut self) {
        while let Some(Close { conn: id, mode }) = self.d.next_close() {
            let held = self.d.server.outbound_bytes(id);
            let t = self.tracked(id);
            assert!(t.open, "poll_close named {id}, already closed");
            assert!(t.closed_event, "poll_close named {id} with no Closed event");
            match mode {
                CloseMode::Flush => {
                    t.flushing = true;
                    while let Some(data) = self.d.take(id) {
                        self.output(id, &data);
                        self.write(id, data.len());
                    }
                    self.check();
                }
                CloseMode::Now => {
                    // Output still held means the linger ran out before it was written.
                    t.lingered = held > 0;
                    t.open = false;
                    t.in_flight = 0;
                    self.d.close(id);
                    self.check();
                }
            }
        }
    }

    /// Checks the server's state after a call.
    fn check(&mut self) {
        while let Some(e) = self.d.event() {
            match e {
                Event::Registered { conn, nick } => {
                    let max = usize::from(self.d.config().max_nick_len);
                    let t = self.tracked(conn);
                    assert!(t.open && !t.closed_event, "{conn} registered after closing");
                    assert!(!t.registered, "{conn} registered twice");
                    assert!(!nick.is_empty() && nick.len() <= max, "nick {nick:?}");
                    t.registered = true;
                    if t.irc == Some(true) {
                        self.reached.irc_registered += 1;
                    } else {
                        self.reached.native_registered += 1;
                    }
                }
                Event::NickChanged { conn, old, new } => {
                    let max = usize::from(self.d.config().max_nick_len);
                    let t = self.tracked(conn);
                    assert!(
                        t.registered && !t.closed_event,
                        "{conn} renamed unregistered"
                    );
                    assert!(old != new, "{conn} renamed to its own nick {new:?}");
                    assert!(!new.is_empty() && new.len() <= max, "nick {new:?}");
                }
                Event::Closed { conn, .. } => {
                    let t = self.tracked(conn);
                    assert!(!t.closed_event, "{conn} closed twice");
                    t.closed_event = true;
                }
            }
        }
        let c = self.d.server.config();
        let mut open = 0;
        for i in 0..self.conns.len() {
            let id = ConnId(i as u64 + 1);
            let t = &self.conns[i];
            let out = self.d.server.outbound_bytes(id);
            let inb = self.d.server.inbound_bytes(id);
            if !t.open {
                assert!(t.closed_event, "{id} was closed with no Closed event");
                assert_eq!((out, inb), (0, 0), "{id} holds memory after it closed");
                assert!(self.d.server.nick_of(id).is_none());
                continue;
            }
            open += 1;
            let out_max = c.max_outbound_bytes + if t.closed_event { BYE_MAX } else { 0 };
            assert!(
                out <= out_max,
                "{id} holds {out} output bytes, limit {out_max}"
            );
            assert!(
                out >= t.in_flight,
                "{id}: {out} < {} in flight",
                t.in_flight
            );
            // The receive queue, plus one partial line or frame (`Server::inbound_bytes`).
            let in_max = match t.irc {
                None => 0,
                Some(true) => c.max_inbound_bytes + MAX_LINE - 1,
                Some(false) => c.max_inbound_bytes + LENGTH_PREFIX + c.max_frame_len as usize,
            };
            assert!(
                inb <= in_max,
                "{id} holds {inb} input bytes, limit {in_max}"
            );
            let rooms = self.d.server.rooms_of(id).len();
            assert!(
                rooms <= usize::from(c.max_rooms_per_conn),
                "{id} in {rooms}"
            );
            if let Some(nick) = self.d.server.nick_of(id) {
                assert!(t.registered && !t.closed_event, "{id} holds {nick:?}");
                assert!(nick.len() <= usize::from(c.max_nick_len), "nick {nick:?}");
                assert_eq!(self.d.server.conn_of(nick), Some(id), "{nick}");
            }
        }
        assert_eq!(self.d.server.connection_count(), open);
        let rooms = self.d.server.rooms();
        assert_eq!(rooms.len(), self.d.server.room_count());
        self.reached.rooms = self.reached.rooms.max(rooms.len());
        for r in &rooms {
            assert!(r.name.len() <= usize::from(c.max_room_len), "room {r:?}");
            assert!(r.members >= 1 && r.members as usize <= open, "room {r:?}");
            let topic = self.d.server.room_topic(&r.name).unwrap_or_default();
            assert!(
                topic.len() <= usize::from(c.max_topic_len),
                "topic {topic:?}"
            );
        }
        assert!(self.d.server.nick_count() <= open);
        if std::mem::take(&mut self.timed_out) {
            let now = self.d.now;
            if let Some(at) = self.d.deadline() {
                assert!(
                    at > now,
                    "a deadline {:?} past due after handle_timeout",
                    now - at
                );
            }
        }
    }

    /// Runs one step of the script; `None` when the script has ended.
    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        let op = input.u8()?;
        // Whatever the step, connections the core lets be read again are read first.
        self.readable();
        let pick = input.u8().unwrap_or(0);
        let Some(id) = self.id(pick).filter(|_| op % 16 != 0) else {
            // Open is the only step without a connection.
            if self.conns.len() < 16 && !self.shut_down {
                self.open();
            }
            self.check();
            return Some(());
        };
        match op % 16 {
            // Native packets, most often.
            1..=4 => {
                let frame = client_packet(input).to_frame();
                self.packet(id, &frame, op, input);
            }
            5..=7 => {
                let line = irc_line(input);
                self.packet(id, &line, op, input);
            }
            8 => {
                let n = usize::from(input.u8().unwrap_or(0));
                let raw = input.take(n).to_vec();
                self.send(id, &raw, 0);
            }
            9 => {
                // Time passes; the adapter's timer may or may not fire on time.
                let ms = u64::from(input.u16().unwrap_or(0));
                self.d.advance(Duration::from_millis(ms * 4));
                if pick & 0x80 != 0 {
                    self.d.timeout();
                    self.timed_out = true;
                }
                self.check();
            }
            10 => {
                // The timer fires exactly at the next deadline.
                if let Some(at) = self.d.deadline() {
                    self.d.advance(at.saturating_duration_since(self.d.now));
                }
                self.d.timeout();
                self.timed_out = true;
                self.check();
            }
            11 => {
                // The socket takes one batch, maybe not all of it yet.
                if let Some(data) = self.d.take(id) {
                    self.output(id, &data);
                    if pick & 0x80 != 0 {
                        self.write(id, data.len());
                    }
                }
                self.check();
            }
            12 => {
                let n = usize::from(input.u16().unwrap_or(0));
                self.write(id, n);
                self.check();
            }
            13 => {
                self.flush();
                self.reap();
            }
            14 if pick & 0x40 != 0 => {
                // The peer closes its sending side: reported once what it sent is read.
                self.tracked(id).eof = true;
                self.read(id);
            }
            14 => {
                let t = self.tracked(id);
                if t.open {
                    t.open = false;
                    t.peer_closed = true;
                    self.d.close(id);
                }
                self.check();
            }
            _ => {
                if !self.shut_down && pick & 0x80 != 0 {
                    self.shut_down = true;
                    self.d.shutdown();
                }
                self.check();
            }
        }
        Some(())
    }

    /// Sends a packet or line, or holds it back to send with the next one.
    fn packet(&mut self, id: ConnId, bytes: &[u8], op: u8, input: &mut Input<'_>) {
        if op & 0x80 != 0 {
            let t = self.tracked(id);
            if t.held.len() < 4096 {
                t.held.extend_from_slice(bytes);
            }
            return;
        }
        let split = if op & 0x40 != 0 {
            input.u8().unwrap_or(0)
        } else {
            0
        };
        self.send(id, bytes, split);
    }

    /// Shuts the server down and lets everything drain: nobody and nothing may be left, and
    /// every connection the server closed got its bye.
    fn finish(&mut self) {
        if !self.shut_down {
            self.shut_down = true;
            self.d.shutdown();
            self.check();
        }
        // Bytes handed out earlier and never reported written are written now.
        for i in 0..self.conns.len() {
            let n = self.conns[i].in_flight;
            self.write(ConnId(i as u64 + 1), n);
        }
        self.flush();
        self.reap();
        assert_eq!(self.d.server.connection_count(), 0, "connections left");
        assert_eq!(self.d.server.room_count(), 0, "rooms left");
        assert_eq!(self.d.server.nick_count(), 0, "nicks left");
        for (i, t) in self.conns.iter().enumerate() {
            assert!(
                t.peer_closed || t.bye_seen || t.lingered,
                "#{} was closed by the server without a bye",
                i + 1
            );
        }
        assert_eq!(self.d.deadline(), None, "a deadline with nobody left");
    }
}

/// Fuzzes the whole `Server` with a script of opens, native packets, IRC lines, raw bytes,
/// timer advances, slow and fast writes, closes and a shutdown.
///
/// Input: two bytes pick the configuration, then one step after another until the bytes
/// run out; then the server is shut down and drained. After every server call the checks
/// of [`World::check`] run, and every batch of output is checked by [`World::output`].
pub fn server(data: &[u8]) -> Reached {
    let mut input = Input { data };
    let mut world = World::new(config(&mut input));
    while world.step(&mut input).is_some() {}
    world.finish();
    world.reached
}
