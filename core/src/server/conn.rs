//! Per-connection state: decoder, output queue, keepalive and flood control.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::frame::FrameDecoder;
use crate::rate::RateLimiter;
use crate::server::irc::session::IrcSession;
use crate::ConnId;

/// A moment in a connection's life: nanoseconds since it opened (584 years), plus one, so
/// that it and an `Option` of it take 8 bytes (an `Instant` takes 16; every idle
/// connection held seven of them, issue 16). Exact, so every deadline falls where it did
/// with `Instant`s; ordered like the instants it stands for; `Conn::stamp` and
/// `Conn::instant` convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// The moment the connection opened.
    pub const ORIGIN: Stamp = Stamp(NonZeroU64::MIN);
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for a hello.
    Hello,
    /// Holds a nickname and may chat.
    Ready,
    /// The core has decided to close it; only its last output remains.
    Closing,
}

/// Which protocol a connection speaks, with that protocol's input state.
#[derive(Debug)]
pub(crate) enum Proto {
    /// Nothing received yet: the first byte decides.
    Unknown,
    /// The native binary protocol.
    Native(FrameDecoder),
    /// IRC text.
    Irc(Box<IrcSession>),
}

impl Proto {
    /// Whether a connection whose first byte is `first_byte` speaks the native protocol
    /// (`0x00`, the high byte of a native frame length) rather than IRC.
    pub fn native_first_byte(first_byte: u8) -> bool {
        first_byte == 0
    }

    pub fn is_irc(&self) -> bool {
        matches!(self, Proto::Irc(_))
    }

    /// What the encoders render for this connection (`Fanout::encoded`): native (`None`,
    /// also before its first byte) or IRC with these capabilities.
    pub fn irc_caps(&self) -> Option<u16> {
        match self {
            Proto::Irc(session) => Some(session.caps),
            _ => None,
        }
    }

    /// Bytes of partial input held.
    pub fn buffered(&self) -> usize {
        match self {
            Proto::Unknown => 0,
            Proto::Native(d) => d.buffered(),
            Proto::Irc(s) => s.lines.buffered(),
        }
    }
}

/// One connection as the server sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Set only through `Conns::change`, which keeps the LUSERS census (census.rs).
    pub phase: Phase,
    pub proto: Proto,
    /// Empty until the hello (or IRC registration) is accepted.
    pub nick: String,
    /// The IRC user name (`~` and the USER parameter); empty for native clients.
    pub user: String,
    /// The IRC real name, or empty.
    pub realname: String,
    /// The away message; empty when present.
    pub away: String,
    /// When it last said something to a room or a nick.
    pub last_said: Stamp,
    /// Frames not yet handed to the adapter.
    pub out: VecDeque<Bytes>,
    /// Bytes in `out`.
    pub queued: usize,
    /// Bytes handed to the adapter and not yet reported written.
    pub in_flight: usize,
    /// Whether the connection sits in the server's pending-output list.
    pub pending: bool,
    /// Whether it sits in the server's deferred-output list (coalescing window).
    pub deferred: bool,
    /// Folded keys of the rooms it sits in, in join order.
    pub rooms: Vec<String>,
    pub limiter: RateLimiter,
    /// Received bytes not yet handed to the decoder: they wait for the rate to allow the
    /// next request. At most `max_inbound_bytes`.
    pub inbox: BytesMut,
    /// When the partial frame or line held by the decoder got its first byte.
    pub partial_since: Option<Stamp>,
    /// The adapter was last told it may not read (its read budget was 0).
    pub paused: bool,
    /// The peer sent its last byte: close once the inbox is handled.
    pub eof: bool,
    /// When a closing connection must be closed whether its output is flushed or not.
    pub close_at: Option<Stamp>,
    /// The adapter was told to close the socket now.
    pub finished: bool,
    /// When it opened: the origin of its `Stamp`s.
    pub opened: Instant,
    pub last_rx: Stamp,
    pub ping_sent: bool,
    /// Frames received, which numbers requests for error reports.
    pub requests: u32,
    /// The deadline of this connection's live entry in the timer heap.
    pub timer: Option<Stamp>,
    /// Output waiting for history store answers, counted in `queued`: one segment per op
    /// waited for, in op order, each released (after `out`) once its op is answered.
    pub held: Rare<Held>,
    /// A user of another cluster node (cluster.rs): no socket, nothing is queued for it.
    pub remote: bool,
    /// Output pacing (see `Server::hold_back` in mod.rs).
    pub pacing: Rare<Pacing>,
}

/// Output waiting for history store answers: one segment per op, in op order.
pub(crate) type Held = VecDeque<(u64, VecDeque<Bytes>)>;

/// The value a [`Rare`] part reads as before its first write.
pub(crate) trait Idle: Default + 'static {
    /// The part as a connection that never used it has it.
    fn idle() -> &'static Self;
}

static IDLE_HELD: Held = VecDeque::new();
static IDLE_PACING: Pacing = Pacing {
    waiters: Vec::new(),
    blocked: 0,
    holding_since: None,
    stalled: false,
    touched: false,
};

impl Idle for Held {
    fn idle() -> &'static Self {
        &IDLE_HELD
    }
}

impl Idle for Pacing {
    fn idle() -> &'static Self {
        &IDLE_PACING
    }
}

/// A part of a connection that most connections never use (output pacing, output held
/// for history answers): a pointer until its first write (`DerefMut`), so an idle
/// connection does not carry it (issue 16). Reads before that see [`Idle::idle`].
#[derive(Debug, Default)]
pub(crate) struct Rare<T>(Option<Box<T>>);

impl<T: Idle> Rare<T> {
    /// The part for writing, unless it was never written (then there is nothing to change).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// Takes the part out, leaving nothing allocated.
    pub fn take(&mut self) -> T {
        self.0.take().map(|b| *b).unwrap_or_default()
    }

    /// Drops the part: it reads as idle again.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl<T: Idle> std::ops::Deref for Rare<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.0.as_deref() {
            Some(part) => part,
            None => T::idle(),
        }
    }
}

impl<T: Idle> std::ops::DerefMut for Rare<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

/// A connection's part in output pacing: whom it holds back and how many hold it back.
#[derive(Debug, Default)]
pub(crate) struct Pacing {
    /// Connections this one's output held back, each once: released when this one drains
    /// to the high-water mark, stalls or closes.
    pub waiters: Vec<ConnId>,
    /// How many connections hold this one back (the lists it sits in): it handles no
    /// request and is not read while this is above 0.
    pub blocked: u32,
    /// Since when this one has held senders back without draining to the mark.
    pub holding_since: Option<Stamp>,
    /// It held senders back for `outbound_stall_timeout`: it holds nobody back again until
    /// it drains to the mark (meanwhile only `max_outbound_bytes` bounds it).
    pub stalled: bool,
    /// It sits in the list of connections the current request left above the mark.
    pub touched: bool,
}

impl Conn {
    pub fn new(now: Instant) -> Self {
        Conn {
            phase: Phase::Hello,
            proto: Proto::Unknown,
            nick: String::new(),
            user: String::new(),
            realname: String::new(),
            away: String::new(),
            last_said: Stamp::ORIGIN,
            out: VecDeque::new(),
            queued: 0,
            in_flight: 0,
            pending: false,
            deferred: false,
            rooms: Vec::new(),
            limiter: RateLimiter::default(),
            inbox: BytesMut::new(),
            partial_since: None,
            paused: false,
            eof: false,
            close_at: None,
            finished: false,
            opened: now,
            last_rx: Stamp::ORIGIN,
            ping_sent: false,
            requests: 0,
            timer: None,
            held: Rare::default(),
            pacing: Rare::default(),
            remote: false,
        }
    }

    /// `at` as a moment in this connection's life (an instant before it opened counts as
    /// its opening).
    pub fn stamp(&self, at: Instant) -> Stamp {
        let ns = at.saturating_duration_since(self.opened).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX).saturating_add(1);
        Stamp(NonZeroU64::new(ns).unwrap_or(NonZeroU64::MIN))
    }

    /// The instant `stamp` stands for.
    pub fn instant(&self, stamp: Stamp) -> Instant {
        let since = Duration::from_nanos(stamp.0.get() - 1);
        self.opened.checked_add(since).unwrap_or(self.opened)
    }

    /// Releases what waited for ops up to `op` (all of it for `u64::MAX`) behind `out`.
    pub fn release_held(&mut self, op: u64) {
        let Some(held) = self.held.get_mut() else {
            return;
        };
        while held.front().is_some_and(|(at, _)| *at <= op) {
            if let Some((_, mut segment)) = held.pop_front() {
                self.out.append(&mut segment);
            }
        }
        if held.is_empty() {
            self.held.clear();
        }
    }

    /// Records that it sits in the room `key` (folded), at the end of the join order.
    /// Memory grows one room at a time: most connections sit in one room, and a `Vec`'s
    /// doubling would keep room for four (issue 16: memory per idle connection).
    pub fn add_room(&mut self, key: String) {
        if self.rooms.len() == self.rooms.capacity() {
            self.rooms.reserve_exact(1);
        }
        self.rooms.push(key);
    }

    /// Records that it left the room `key`; the list's memory goes with its last room.
    pub fn remove_room(&mut self, key: &str) {
        self.rooms.retain(|k| k != key);
        if self.rooms.is_empty() {
            self.rooms = Vec::new();
        }
    }

    /// The user name shown in IRC sources and WHO: native clients have none of their own.
    pub fn user(&self) -> &str {
        if self.user.is_empty() {
            "native"
        } else {
            &self.user
        }
    }

    /// Takes up to `max` bytes of queued frames as one buffer (at least one frame).
    pub fn take_batch(&mut self, max: usize) -> Option<Bytes> {
        let first = self.out.pop_front()?;
        let mut size = first.len();
        let mut more = 0;
        for next in &self.out {
            if size + next.len() > max {
                break;
            }
            size += next.len();
            more += 1;
        }
        self.queued -= size;
        self.in_flight += size;
        let batch = if more == 0 {
            // One frame alone is handed out as is: no copy.
            first
        } else {
            let mut buf = BytesMut::with_capacity(size);
            buf.extend_from_slice(&first);
            for next in self.out.drain(..more) {
                buf.extend_from_slice(&next);
            }
            buf.freeze()
        };
        // An idle connection holds no queue memory: it is dropped whenever the queue
        // empties (a fresh one allocates again on the next frame, which is cheap next to
        // the write that follows).
        if self.out.is_empty() {
            self.out = VecDeque::new();
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_max_and_count_in_flight() {
        let t0 = crate::test_clock::start();
        let mut c = Conn::new(t0);
        for i in 0..5u8 {
            c.out.push_back(Bytes::from(vec![i; 10]));
            c.queued += 10;
        }
        let b = c.take_batch(25).unwrap();
        assert_eq!(b.len(), 20);
        assert_eq!((c.queued, c.in_flight), (30, 20));
        let b = c.take_batch(1000).unwrap();
        assert_eq!(b.len(), 30);
        assert_eq!(&b[..10], &[2; 10]);
        assert!(c.take_batch(1000).is_none());
    }

    #[test]
    fn a_batch_takes_frames_that_fill_max_exactly() {
        let mut c = Conn::new(crate::test_clock::start());
        for i in 0..3u8 {
            c.out.push_back(Bytes::from(vec![i; 10]));
            c.queued += 10;
        }
        assert_eq!(c.take_batch(20).unwrap().len(), 20);
        // A frame larger than max still goes out, alone.
        assert_eq!(c.take_batch(5).unwrap().len(), 10);
        assert_eq!((c.queued, c.in_flight), (0, 30));
    }

    #[test]
    fn held_output_is_released_up_to_and_including_its_op() {
        let mut c = Conn::new(crate::test_clock::start());
        for op in 1..=3u64 {
            c.held
                .push_back((op, VecDeque::from([Bytes::from(vec![op as u8])])));
        }
        c.release_held(2);
        let out: Vec<u8> = c.out.iter().map(|b| b[0]).collect();
        assert_eq!(out, [1, 2]);
        c.release_held(u64::MAX);
        assert_eq!(c.out.len(), 3);
        assert!(c.held.is_empty());
    }

    #[test]
    fn a_native_client_shows_a_user_name_of_its_own() {
        let mut c = Conn::new(crate::test_clock::start());
        assert_eq!(c.user(), "native");
        c.user = "~bob".into();
        assert_eq!(c.user(), "~bob");
        assert!(!c.proto.is_irc());
        assert_eq!(c.proto.buffered(), 0);
    }

    #[test]
    fn rare_parts_are_allocated_on_write_and_held_output_is_freed_when_released() {
        let mut c = Conn::new(crate::test_clock::start());
        // Reads see the idle value and allocate nothing.
        assert!(c.held.is_empty() && c.pacing.waiters.is_empty() && c.pacing.blocked == 0);
        assert!(c.held.get_mut().is_none() && c.pacing.get_mut().is_none());
        c.release_held(u64::MAX);
        assert!(c.held.get_mut().is_none());
        // Held output, released: the part is freed, and works again when refilled.
        for round in 0..2u8 {
            c.held
                .push_back((1, VecDeque::from([Bytes::from(vec![round])])));
            c.held
                .push_back((2, VecDeque::from([Bytes::from(vec![round + 10])])));
            c.release_held(1);
            assert_eq!(c.held.len(), 1);
            c.release_held(2);
            assert!(c.held.get_mut().is_none(), "freed once empty");
        }
        let out: Vec<u8> = c.out.iter().map(|b| b[0]).collect();
        assert_eq!(out, [0, 10, 1, 11]);
        c.pacing.blocked += 1;
        assert_eq!(c.pacing.get_mut().map(|p| p.blocked), Some(1));
        assert_eq!(c.held.take().len(), 0);
    }

    #[test]
    fn room_list_holds_exactly_its_rooms_and_works_after_emptying() {
        let mut c = Conn::new(crate::test_clock::start());
        c.add_room("a".into());
        assert_eq!(c.rooms.capacity(), 1);
        c.add_room("b".into());
        assert_eq!((c.rooms.len(), c.rooms.capacity()), (2, 2));
        c.remove_room("a");
        assert_eq!(c.rooms, ["b"]);
        c.remove_room("b");
        assert_eq!(c.rooms.capacity(), 0);
        c.add_room("c".into());
        c.add_room("d".into());
        assert_eq!(c.rooms, ["c", "d"]);
        c.remove_room("x");
        assert_eq!(c.rooms, ["c", "d"]);
    }

    #[test]
    fn queue_memory_is_dropped_after_a_burst_whatever_the_last_batch() {
        let mut c = Conn::new(crate::test_clock::start());
        for i in 0..200u8 {
            c.out.push_back(Bytes::from(vec![i; 10]));
            c.queued += 10;
        }
        // Everything but one frame, then that frame alone: the copy-free path.
        assert_eq!(c.take_batch(199 * 10).unwrap().len(), 1990);
        assert!(c.out.capacity() > 64);
        assert_eq!(c.take_batch(1000).unwrap().len(), 10);
        assert_eq!(c.out.capacity(), 0);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every idle connection holds one `Conn` (boxed in the server's map): 448 bytes on
    /// x86-64 when this was first written, 344 since its times are `Stamp`s and pacing and
    /// held output are `Rare` parts (issue 16),
    /// about a third of an idle connection's resident memory (bench/RESULTS.md, "Memory
    /// per idle connection"). A field that makes it grow should be a decision, not an
    /// accident.
    #[test]
    fn conn_does_not_grow_unnoticed() {
        let size = std::mem::size_of::<Conn>();
        println!("Conn: {size} bytes");
        assert!(size <= 344, "Conn grew to {size} bytes");
    }

    #[test]
    fn stamps_take_8_bytes_and_stand_for_their_instants() {
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
        let t0 = crate::test_clock::start();
        let c = Conn::new(t0 + Duration::from_secs(1));
        assert_eq!(c.stamp(c.opened), Stamp::ORIGIN);
        let later = c.opened + Duration::from_millis(1500);
        assert_eq!(c.instant(c.stamp(later)), later);
        assert!(c.stamp(later) > c.stamp(c.opened + Duration::from_millis(1499)));
        // Before it opened counts as its opening.
        assert_eq!(c.stamp(t0), Stamp::ORIGIN);
        assert_eq!(c.instant(Stamp::ORIGIN), c.opened);
    }
}
