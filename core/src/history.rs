//! Room history as the core sees it: the store requests it emits and the rows it takes back.
//!
//! The core never touches a database. With history switched on
//! ([`crate::Server::enable_history`]) it numbers every room message, stamps it with a wall
//! clock time, and hands the adapter [`StoreOp`]s through [`crate::Server::poll_store`]. The
//! adapter runs them on a store of its choice, in order, and reports back with
//! [`crate::Server::handle_stored`], [`crate::Server::handle_history`] and
//! [`crate::Server::handle_store_error`].

/// One stored room message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id in its room: 1, 2, 3... in the order the room heard them.
    pub id: u64,
    /// Server time it was said, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The sender's nickname.
    pub from: String,
    /// The text (an IRC action is text in its CTCP form).
    pub text: String,
    /// Sent as an IRC NOTICE rather than PRIVMSG.
    pub notice: bool,
}

/// What a store knows about one room at startup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomRecord {
    /// The room's display name.
    pub name: String,
    /// Highest message id ever given in the room (kept even when retention removed it).
    pub last_id: u64,
    /// When the room was first stored, in Unix milliseconds.
    pub created_ms: u64,
    /// Its topic (empty: none).
    pub topic: String,
    /// Who set the topic.
    pub topic_by: String,
    /// When the topic was set, in Unix milliseconds (0: never).
    pub topic_ms: u64,
    /// Time of the room's newest stored message, in Unix milliseconds (0: none).
    pub last_ms: u64,
}

/// One end of a history range: a message id or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// No bound on this side.
    Open,
    /// A message id of the room.
    Id(u64),
    /// A time, in Unix milliseconds.
    Time(u64),
}

impl Bound {
    /// Whether this bound precedes `m`: `m` lies strictly after it (`Open`: always).
    pub fn precedes(&self, m: &StoredMessage) -> bool {
        match *self {
            Bound::Open => true,
            Bound::Id(id) => m.id > id,
            Bound::Time(t) => m.time_ms > t,
        }
    }

    /// Whether this bound follows `m`: `m` lies strictly before it (`Open`: always).
    pub fn follows(&self, m: &StoredMessage) -> bool {
        match *self {
            Bound::Open => true,
            Bound::Id(id) => m.id < id,
            Bound::Time(t) => m.time_ms < t,
        }
    }
}

/// Which messages of a room a [`StoreOp::Query`] asks for. Bounds are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The newest `limit` messages after `after` and before `before`.
    Newest {
        /// Only messages after this.
        after: Bound,
        /// Only messages before this.
        before: Bound,
    },
    /// The oldest `limit` messages after `after` and before `before`.
    Oldest {
        /// Only messages after this.
        after: Bound,
        /// Only messages before this.
        before: Bound,
    },
    /// The newest `limit / 2` messages before the bound, then the oldest from it on
    /// (the bound's own message included) up to `limit` in all.
    Around(Bound),
}

impl Range {
    /// The messages of `rows` (one room's, ascending by id) this range selects, at most
    /// `limit`, ascending: the reference every store must agree with.
    pub fn select(&self, rows: &[StoredMessage], limit: usize) -> Vec<StoredMessage> {
        let newest = |keep: &dyn Fn(&StoredMessage) -> bool, n: usize| {
            let mut out: Vec<StoredMessage> = rows
                .iter()
                .rev()
                .filter(|m| keep(m))
                .take(n)
                .cloned()
                .collect();
            out.reverse();
            out
        };
        let oldest = |keep: &dyn Fn(&StoredMessage) -> bool, n: usize| -> Vec<StoredMessage> {
            rows.iter().filter(|m| keep(m)).take(n).cloned().collect()
        };
        match *self {
            Range::Newest { after, before } => {
                newest(&|m| after.precedes(m) && before.follows(m), limit)
            }
            Range::Oldest { after, before } => {
                oldest(&|m| after.precedes(m) && before.follows(m), limit)
            }
            Range::Around(at) => {
                let mut out = newest(&|m| at.follows(m), limit / 2);
                let rest = limit - out.len();
                out.extend(oldest(&|m| !at.follows(m), rest));
                out
            }
        }
    }
}

/// A request from the core to the store. Every op carries a number, increasing by one per
/// op; a store executes ops in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Store a room message.
    Append {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// The room's display name.
        room: String,
        /// When the room was created (for a room the store does not know yet).
        created_ms: u64,
        /// The message.
        message: StoredMessage,
    },
    /// Store a room's topic.
    SetTopic {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// The room's display name.
        room: String,
        /// When the room was created (for a room the store does not know yet).
        created_ms: u64,
        /// The topic (empty: cleared).
        topic: String,
        /// Who set it.
        by: String,
        /// When, in Unix milliseconds.
        time_ms: u64,
    },
    /// Load the newest `limit` messages of a room with an id below `before`, answered with
    /// [`crate::Server::handle_history`] in ascending id order.
    Load {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// Only messages with a smaller id.
        before: u64,
        /// At most this many.
        limit: u32,
    },
    /// Load the messages of a room in `range`, at most `limit`, answered with
    /// [`crate::Server::handle_history`] in ascending id order ([`Range::select`] says
    /// which).
    Query {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// Which messages.
        range: Range,
        /// At most this many.
        limit: u32,
    },
}

impl StoreOp {
    /// The op's number.
    pub fn op(&self) -> u64 {
        match self {
            StoreOp::Append { op, .. }
            | StoreOp::SetTopic { op, .. }
            | StoreOp::Load { op, .. }
            | StoreOp::Query { op, .. } => *op,
        }
    }
}

/// How the core serves history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Messages replayed to a joiner. Default 50; 0 replays nothing (paging still works).
    pub on_join: u16,
    /// Largest page one `History` request may ask for. Default 200.
    pub max_page: u16,
    /// Store ops issued and not yet answered past which room messages are refused (the
    /// store is too far behind to promise they would be kept). Default 100,000.
    pub max_pending_ops: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            on_join: 50,
            max_page: 200,
            max_pending_ops: 100_000,
        }
    }
}

/// Year, month, day, hour, minute, second (UTC) of a Unix time in milliseconds.
fn civil(time_ms: u64) -> (i64, i64, i64, u64, u64, u64) {
    let secs = time_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds, for lines replayed as text.
pub fn format_utc(time_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` of a Unix time in milliseconds: IRCv3's `time` tag.
pub fn format_iso(time_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time_ms);
    let ms = time_ms % 1000;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// The Unix time in milliseconds of `YYYY-MM-DDThh:mm:ss[.fraction]Z` (years 1970 to
/// 9999; digits of the fraction past milliseconds are dropped); `None` for anything else.
pub fn parse_iso(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let rest = &text[19..];
    let (fraction, z) = match rest.strip_prefix('.') {
        Some(f) => f.split_at(f.find('Z')?),
        None => ("", rest),
    };
    if z != "Z" || !fraction.bytes().all(|c| c.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let mut ms = 0;
    for (i, d) in fraction.bytes().take(3).enumerate() {
        ms += u64::from(d - b'0') * [100, 10, 1][i];
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Howard Hinnant's days-from-civil algorithm.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_798_761_599_000), "2026-12-31 23:59:59");
    }

    #[test]
    fn iso_times_round_trip() {
        for ms in [0, 951_782_400_000, 1_798_761_599_123, 9_214_646_400_001] {
            assert_eq!(parse_iso(&format_iso(ms)), Some(ms), "{}", format_iso(ms));
        }
        assert_eq!(format_iso(1_798_761_599_123), "2026-12-31T23:59:59.123Z");
        assert_eq!(parse_iso("2020-01-01T00:00:00Z"), Some(1_577_836_800_000));
        assert_eq!(parse_iso("2020-01-01T00:00:00.5Z"), Some(1_577_836_800_500));
        assert_eq!(
            parse_iso("2020-01-01T00:00:00.123456Z"),
            Some(1_577_836_800_123)
        );
        for bad in [
            "",
            "2020-01-01",
            "2020-01-01T00:00:00",
            "2020-01-01T00:00:00.Z1",
            "2020-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:00+01:00",
            "2020-01-01T00:00:00.1234567890Z",
            "+020-01-01T00:00:00Z",
            "2020-01-01T00:00:00.12éZ",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    /// Days in a month by the Gregorian rule, written plainly as a reference.
    fn days_in(year: i64, month: i64) -> i64 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn dates_match_a_day_by_day_calendar_for_four_centuries() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        // A whole 400-year cycle of the calendar, from 1970 to 2369.
        for day in 0..146_097u64 {
            // A different time of each day, milliseconds included.
            let ms = day * 86_400_000 + (day * 7_919_123) % 86_400_000;
            let secs = ms / 1000 % 86_400;
            assert_eq!(
                civil(ms),
                (y, m, d, secs / 3600, secs / 60 % 60, secs % 60),
                "day {day}"
            );
            assert_eq!(parse_iso(&format_iso(ms)), Some(ms), "{}", format_iso(ms));
            d += 1;
            if d > days_in(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!((y, m, d), (2370, 1, 1));
    }

    #[test]
    fn parse_iso_takes_each_months_last_day_and_refuses_the_day_after() {
        for y in 1970..2370 {
            for m in 1..=12 {
                let last = days_in(y, m);
                let at = |d: i64| parse_iso(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
                assert!(at(last).is_some(), "{y}-{m}-{last}");
                assert_eq!(at(last + 1), None, "{y}-{m}-{}", last + 1);
            }
        }
        // The edges of the time of day: a leap second is taken, nothing past it.
        let t = |hms: &str| parse_iso(&format!("2020-01-01T{hms}Z"));
        assert_eq!(t("23:59:60"), Some(1_577_923_200_000));
        for bad in ["24:00:00", "23:60:00", "23:59:61"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso("9999-12-31T23:59:59.999Z"),
            Some(253_402_300_799_999)
        );
        // Nine digits of fraction are taken, ten refused; digits past three are dropped.
        assert_eq!(
            parse_iso("2020-01-01T00:00:00.987654321Z"),
            Some(1_577_836_800_987)
        );
        assert_eq!(
            parse_iso("2020-01-01T00:00:00.05Z"),
            Some(1_577_836_800_050)
        );
        // Each separator checked on its own: one wrong is enough to refuse.
        let good = "2020-01-01T00:00:00Z";
        for at in [4, 7, 10, 13, 16] {
            let mut bad = good.as_bytes().to_vec();
            bad[at] = b'0';
            let bad = String::from_utf8(bad).expect("ASCII");
            assert_eq!(parse_iso(&bad), None, "{bad}");
        }
    }

    fn msg(id: u64, time_ms: u64) -> StoredMessage {
        StoredMessage {
            id,
            time_ms,
            from: "a".into(),
            text: format!("m{id}"),
            notice: false,
        }
    }

    fn ids(range: Range, limit: usize) -> Vec<u64> {
        // Ids 1 to 10 at times 100, 200, ... 1000.
        let rows: Vec<StoredMessage> = (1..=10).map(|i| msg(i, i * 100)).collect();
        range.select(&rows, limit).iter().map(|m| m.id).collect()
    }

    #[test]
    fn ranges_select_as_documented() {
        use Bound::*;
        let newest = |after, before| Range::Newest { after, before };
        let oldest = |after, before| Range::Oldest { after, before };
        assert_eq!(ids(newest(Open, Open), 3), [8, 9, 10]);
        assert_eq!(ids(newest(Id(4), Open), 20), [5, 6, 7, 8, 9, 10]);
        assert_eq!(ids(newest(Open, Id(7)), 2), [5, 6]);
        assert_eq!(ids(newest(Open, Time(700)), 2), [5, 6]);
        assert_eq!(ids(oldest(Id(3), Open), 3), [4, 5, 6]);
        assert_eq!(ids(oldest(Time(300), Open), 3), [4, 5, 6]);
        assert_eq!(ids(oldest(Id(1), Id(10)), 20), [2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(ids(newest(Id(1), Time(1000)), 3), [7, 8, 9]);
        assert_eq!(ids(Range::Around(Id(8)), 1), [8]);
        assert_eq!(ids(Range::Around(Id(8)), 3), [7, 8, 9]);
        assert_eq!(ids(Range::Around(Time(750)), 4), [6, 7, 8, 9]);
        assert_eq!(ids(Range::Around(Id(10)), 5), [8, 9, 10]);
        assert_eq!(ids(Range::Around(Id(1)), 4), [1, 2, 3, 4]);
        assert_eq!(ids(oldest(Id(10), Open), 5), Vec::<u64>::new());
    }
}
