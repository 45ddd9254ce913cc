//! Flood control's arithmetic, shared by the server (which enforces the rate) and the
//! client (which paces itself to the rate the server announces).

use std::time::{Duration, Instant};

use crate::packet::ClientPacket;

/// What a request costs against its connection's rate, in tenths of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Pings, pongs and quits: a tenth of a request. Cheap, never free.
    Cheap,
    /// Everything else: one request.
    Full,
}

impl Cost {
    fn tenths(self) -> u32 {
        match self {
            Cost::Cheap => 1,
            Cost::Full => 10,
        }
    }
}

/// A generic cell rate limiter: `rate` requests a second with bursts of `burst`.
///
/// It never refuses: a request is handled once the limiter is [`ready`](Self::ready) and
/// then charged, so the cost of a request need not be known before it is decoded.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    /// Theoretical arrival time of the next request.
    tat: Option<Instant>,
}

impl RateLimiter {
    /// When the next request may be handled: exactly `now` if it may be handled now.
    pub fn ready_at(&self, now: Instant, rate: u32, burst: u32) -> Instant {
        if rate == 0 {
            return now;
        }
        let tolerance = (Duration::from_secs(1) / rate) * burst.saturating_sub(1);
        match self.tat {
            Some(tat) if tat > now + tolerance => tat - tolerance,
            _ => now,
        }
    }

    /// When the next request may be handled, if the rate has been reached at all.
    pub fn wake_at(&self, rate: u32, burst: u32) -> Option<Instant> {
        if rate == 0 {
            return None;
        }
        let tolerance = (Duration::from_secs(1) / rate) * burst.saturating_sub(1);
        self.tat
            .map(|tat| tat.checked_sub(tolerance).unwrap_or(tat))
    }

    /// Whether a request may be handled at `now`.
    pub fn ready(&self, now: Instant, rate: u32, burst: u32) -> bool {
        self.ready_at(now, rate, burst) <= now
    }

    /// Counts a handled request.
    pub fn charge(&mut self, now: Instant, rate: u32, cost: Cost) {
        if rate == 0 {
            return;
        }
        let step = Duration::from_secs(1) * cost.tenths() / (rate.saturating_mul(10));
        let tat = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(tat + step);
    }
}

/// What flood control needs to know of a request, whatever its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// A ping or a pong: keeps the session alive.
    Keepalive,
    /// Ends the session.
    Quit,
    /// Anything else.
    Other,
}

impl Cost {
    /// The one rule of which requests are cheap: keepalive and quitting, so that a
    /// connection over its rate can still answer pings and leave. None is free.
    pub(crate) fn of(request: Request) -> Cost {
        match request {
            Request::Keepalive | Request::Quit => Cost::Cheap,
            Request::Other => Cost::Full,
        }
    }
}

/// What a native request costs (see [`Cost::of`]).
pub(crate) fn cost_of(packet: &ClientPacket) -> Cost {
    Cost::of(match packet {
        ClientPacket::Ping { .. } | ClientPacket::Pong { .. } => Request::Keepalive,
        ClientPacket::Quit { .. } => Request::Quit,
        _ => Request::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests handled at `now` before the limiter says wait.
    fn take(rl: &mut RateLimiter, now: Instant, cost: Cost) -> usize {
        let mut n = 0;
        while rl.ready(now, 10, 5) && n < 1000 {
            rl.charge(now, 10, cost);
            n += 1;
        }
        n
    }

    #[test]
    fn rate_limiter_allows_burst_then_rate() {
        let t0 = crate::test_clock::start();
        let mut rl = RateLimiter::default();
        assert_eq!(take(&mut rl, t0, Cost::Full), 5);
        // The next one is ready one interval later, and exactly one.
        assert_eq!(rl.ready_at(t0, 10, 5), t0 + Duration::from_millis(100));
        assert_eq!(
            take(&mut rl, t0 + Duration::from_millis(100), Cost::Full),
            1
        );
        // Cheap requests cost a tenth: two intervals later, the one request that is always
        // admitted at the edge and ten more.
        assert_eq!(
            take(&mut rl, t0 + Duration::from_millis(300), Cost::Cheap),
            11
        );
        // Unlimited when the rate is 0.
        let mut free = RateLimiter::default();
        for _ in 0..1000 {
            assert!(free.ready(t0, 0, 0));
            free.charge(t0, 0, Cost::Full);
        }
    }

    #[test]
    fn wake_at_is_the_moment_the_next_request_becomes_ready() {
        let t0 = crate::test_clock::start();
        for (rate, burst) in [(10, 5), (3, 1), (1, 20), (1000, 2)] {
            let mut rl = RateLimiter::default();
            // Nothing charged yet: no timer is needed.
            assert_eq!(rl.wake_at(rate, burst), None);
            assert_eq!(rl.ready_at(t0, rate, burst), t0);
            if burst > 1 {
                // Within the burst, ready means ready now, not at some earlier moment.
                rl.charge(t0, rate, Cost::Full);
                assert_eq!(rl.ready_at(t0, rate, burst), t0);
                rl = RateLimiter::default();
            }
            let n = take_at(&mut rl, t0, rate, burst);
            assert_eq!(n, burst as usize, "rate {rate} burst {burst}");
            let wake = rl.wake_at(rate, burst).expect("a wake-up time");
            // The timer fires exactly when the limiter lets the next request through.
            assert_eq!(wake, rl.ready_at(t0, rate, burst));
            assert_eq!(wake, t0 + Duration::from_secs(1) / rate);
            assert!(!rl.ready(wake - Duration::from_nanos(1), rate, burst));
            assert!(rl.ready(wake, rate, burst));
        }
        let mut free = RateLimiter::default();
        free.charge(t0, 0, Cost::Full);
        assert_eq!(free.wake_at(0, 5), None);
    }

    /// Full requests handled at `now` at this rate before the limiter says wait.
    fn take_at(rl: &mut RateLimiter, now: Instant, rate: u32, burst: u32) -> usize {
        let mut n = 0;
        while rl.ready(now, rate, burst) && n < 10_000 {
            rl.charge(now, rate, Cost::Full);
            n += 1;
        }
        n
    }
}
