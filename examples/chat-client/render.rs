//! Turning what happened into lines for the screen.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard::core::packet::client_type;
use switchboard::core::{ErrorCode, Member, RoomInfo, RoomMode};

use crate::format::{self, Span};

/// What a line is about, so a terminal can colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A room message.
    Message,
    /// A room message that mentions this client's nick.
    Mention,
    /// A direct message, either way.
    Direct,
    /// Joins, leaves, nick changes and other news.
    Notice,
    /// Something went wrong.
    Error,
    /// Local help text, shown without a time.
    Help,
    /// A replayed room message: dimmed, with its own date and time.
    History,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What it is about.
    pub kind: Kind,
    /// The text, without time and free of control characters.
    pub text: String,
    /// IRC formatting (bold, colours...) of parts of `text`, for a terminal with colour.
    pub spans: Vec<Span>,
}

impl Line {
    /// A line of the given kind.
    pub fn new(kind: Kind, text: impl Into<String>) -> Self {
        Line {
            kind,
            text: text.into(),
            spans: Vec::new(),
        }
    }

    /// `prefix` (already safe) then `text` from the network, its IRC formatting kept as
    /// spans.
    pub fn styled(kind: Kind, prefix: String, text: &str) -> Self {
        let (plain, spans) = format::parse(text);
        let shift = prefix.len();
        Line {
            kind,
            text: prefix + &plain,
            spans: spans.into_iter().map(|s| s.shifted(shift)).collect(),
        }
    }

    /// A notice: `* TEXT`.
    pub fn notice(text: impl AsRef<str>) -> Self {
        Line::new(Kind::Notice, format!("* {}", text.as_ref()))
    }

    /// An error: `!! TEXT`.
    pub fn error(text: impl AsRef<str>) -> Self {
        Line::new(Kind::Error, format!("!! {}", text.as_ref()))
    }

    /// The time prefix for a line shown at `now`, empty for help text.
    pub fn stamp(&self, now: SystemTime) -> String {
        match self.kind {
            Kind::Help | Kind::History => String::new(),
            _ => format!("[{}] ", clock(now)),
        }
    }
}

/// `HH:MM:SS` of a moment, in UTC.
pub fn clock(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Text from the network made safe to print: control characters (which could move the
/// cursor, change colours or retitle the terminal) become `�`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// A room as shown: `#name`.
pub fn room(name: &str) -> String {
    format!("#{}", clean(name))
}

/// Whether `text` mentions `nick` as a whole word (ASCII case-insensitive).
pub fn mentions(text: &str, nick: &str) -> bool {
    let nick = nick.to_ascii_lowercase();
    !nick.is_empty()
        && text
            .to_ascii_lowercase()
            .split(|c: char| !(c.is_ascii_alphanumeric() || "[]\\`^{}|_-".contains(c)))
            .any(|word| word == nick)
}

/// `#rust <alice> hi`.
pub fn message(room_name: &str, from: &str, text: &str, me: &str) -> Line {
    let kind = if !same(from, me) && mentions(text, me) {
        Kind::Mention
    } else {
        Kind::Message
    };
    match action(text) {
        Some(act) => Line::styled(kind, format!("{} * {} ", room(room_name), clean(from)), act),
        None => Line::styled(
            kind,
            format!("{} <{}> ", room(room_name), clean(from)),
            text,
        ),
    }
}

/// Free text from the network (topics, reasons, away messages) with its IRC formatting
/// dropped and control characters made safe.
pub fn plain(text: &str) -> String {
    format::parse(text).0
}

/// `[2026-12-03 20:00:01] #rust <alice> hi`: a stored message, with when it was said (UTC).
pub fn replayed(room_name: &str, from: &str, time_ms: u64, text: &str) -> Line {
    let when = switchboard::core::history::format_utc(time_ms);
    let line = match action(text) {
        Some(act) => format!("{} * {} {}", room(room_name), clean(from), clean(act)),
        None => format!("{} <{}> {}", room(room_name), clean(from), clean(text)),
    };
    Line::new(Kind::History, format!("[{when}] {line}"))
}

/// The end of a replay: whether `/history` can fetch older messages.
pub fn history_end(room_name: &str, replayed: bool, more: bool) -> Option<Line> {
    match (replayed, more) {
        (_, true) => Some(Line::notice(format!(
            "older messages of {}: /history [N]",
            room(room_name)
        ))),
        (true, false) => Some(Line::notice(format!(
            "that is all {} has stored",
            room(room_name)
        ))),
        (false, false) => None,
    }
}

/// The text of an action (`/me waves`), which travels as a CTCP ACTION:
/// `\x01ACTION waves\x01`, the form IRC clients send and show.
pub fn action(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("\u{1}ACTION ")?;
    Some(rest.strip_suffix('\u{1}').unwrap_or(rest))
}

/// `-> bob: psst` for one this client sent, `<- alice: psst` for one it got.
pub fn direct(from: &str, to: &str, text: &str, me: &str) -> Line {
    // Other CTCP (an answer this client sent, say) reads as what it is.
    let ctcp;
    let text = match text.strip_prefix('\u{1}') {
        Some(body) if action(text).is_none() => {
            ctcp = format!("CTCP {}", body.strip_suffix('\u{1}').unwrap_or(body));
            ctcp.as_str()
        }
        _ => text,
    };
    let (prefix, body) = match (same(from, me), action(text)) {
        (true, Some(act)) => (format!("-> {}: * {} ", clean(to), clean(from)), act),
        (true, None) => (format!("-> {}: ", clean(to)), text),
        (false, Some(act)) => (format!("<- * {} ", clean(from)), act),
        (false, None) => (format!("<- {}: ", clean(from)), text),
    };
    Line::styled(Kind::Direct, prefix, body)
}

/// `* bob joined #rust`.
pub fn joined(room_name: &str, nick: &str, me: &str) -> Line {
    if same(nick, me) {
        Line::notice(format!("you joined {}", room(room_name)))
    } else {
        Line::notice(format!("{} joined {}", clean(nick), room(room_name)))
    }
}

/// `* bob left #rust (reason)`.
pub fn left(room_name: &str, nick: &str, reason: &str, me: &str) -> Line {
    let who = if same(nick, me) {
        "you".to_owned()
    } else {
        clean(nick)
    };
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", plain(reason))
    };
    Line::notice(format!("{who} left {}{why}", room(room_name)))
}

/// `* alice is now known as alicia`; `me` is the nick held after the change.
pub fn nick_changed(old: &str, new: &str, me: &str) -> Line {
    if same(new, me) {
        Line::notice(format!("you are now known as {}", clean(new)))
    } else {
        Line::notice(format!("{} is now known as {}", clean(old), clean(new)))
    }
}

/// `@` for an operator, `+` for a member with voice, nothing otherwise.
pub fn prefix(flags: u8) -> &'static str {
    if flags & Member::OPERATOR != 0 {
        "@"
    } else if flags & Member::VOICE != 0 {
        "+"
    } else {
        ""
    }
}

/// `* #rust (3): @alice, +bob, carol (away)`.
pub fn members(room_name: &str, members: &[Member]) -> Line {
    if members.is_empty() {
        return Line::notice(format!("{} has no members", room(room_name)));
    }
    let names: Vec<String> = members
        .iter()
        .map(|m| {
            let away = if m.flags & Member::AWAY != 0 {
                " (away)"
            } else {
                ""
            };
            format!("{}{}{away}", prefix(m.flags), clean(&m.nick))
        })
        .collect();
    Line::notice(format!(
        "{} ({}): {}",
        room(room_name),
        members.len(),
        names.join(", ")
    ))
}

/// A topic from the server: `* topic of #rust: TEXT (set by alice)` when it comes with a
/// join, `* alice set the topic of #rust: TEXT` when someone changes it.
pub fn topic(room_name: &str, topic: &str, by: &str, me: &str, on_join: bool) -> Line {
    let room = room(room_name);
    if on_join || by.is_empty() {
        let setter = if by.is_empty() {
            String::new()
        } else {
            format!(" (set by {})", clean(by))
        };
        return Line::notice(if topic.is_empty() {
            format!("{room} has no topic")
        } else {
            format!("topic of {room}: {}{setter}", plain(topic))
        });
    }
    let who = you_or(by, me);
    Line::notice(if topic.is_empty() {
        format!("{who} cleared the topic of {room}")
    } else {
        format!("{who} set the topic of {room}: {}", plain(topic))
    })
}

/// The answer to `/topic` alone, from what the client knows.
pub fn current_topic(room_name: &str, topic: &str) -> Line {
    if topic.is_empty() {
        Line::notice(format!(
            "{} has no topic; /topic TEXT sets one",
            room(room_name)
        ))
    } else {
        Line::notice(format!("topic of {}: {}", room(room_name), plain(topic)))
    }
}

/// `* alice kicked bob from #rust (reason)`, or `* you were kicked ...`.
pub fn kicked(room_name: &str, nick: &str, by: &str, reason: &str, me: &str) -> Line {
    let room = room(room_name);
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", plain(reason))
    };
    Line::notice(match (same(nick, me), same(by, me)) {
        (true, true) => format!("you kicked yourself out of {room}{why}"),
        (true, false) => format!("you were kicked out of {room} by {}{why}", clean(by)),
        (false, _) => format!(
            "{} kicked {} out of {room}{why}",
            you_or(by, me),
            clean(nick)
        ),
    })
}

/// Someone's away status: this client's own after `/away`, or a direct message's
/// recipient's.
pub fn away(nick: &str, message: &str, me: &str) -> Line {
    Line::notice(match (same(nick, me), message.is_empty()) {
        (true, true) => "you are no longer marked away".to_owned(),
        (true, false) => format!(
            "you are marked away: {}; /away alone marks you back",
            plain(message)
        ),
        (false, true) => format!("{} is not away", clean(nick)),
        (false, false) => format!("{} is away: {}", clean(nick), plain(message)),
    })
}

/// A whois answer: a header, then rooms (with `@`/`+`), idle time and away message.
pub fn whois(nick: &str, away: &str, idle_secs: u32, rooms: &[Member]) -> Vec<Line> {
    let rooms: Vec<String> = rooms
        .iter()
        .map(|r| format!("{}{}", prefix(r.flags), room(&r.nick)))
        .collect();
    let rooms = if rooms.is_empty() {
        "none".to_owned()
    } else {
        rooms.join(", ")
    };
    let mut lines = vec![
        Line::notice(format!("whois {}:", clean(nick))),
        Line::new(Kind::Notice, format!("    rooms  {rooms}")),
        Line::new(Kind::Notice, format!("    idle   {}", duration(idle_secs))),
    ];
    if !away.is_empty() {
        lines.push(Line::new(
            Kind::Notice,
            format!("    away   {}", plain(away)),
        ));
    }
    lines
}

/// A span of seconds in its two largest units: `42 s`, `3 min 5 s`, `2 h 7 min`, `3 d 4 h`.
pub fn duration(secs: u32) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (big, small) = match (d, h, m) {
        (0, 0, 0) => return format!("{s} s"),
        (0, 0, _) => (format!("{m} min"), (s > 0).then(|| format!("{s} s"))),
        (0, _, _) => (format!("{h} h"), (m > 0).then(|| format!("{m} min"))),
        _ => (format!("{d} d"), (h > 0).then(|| format!("{h} h"))),
    };
    match small {
        Some(small) => format!("{big} {small}"),
        None => big,
    }
}

/// `* alice gives operator status to bob in #rust`, `* alice locks the topic of #rust`.
pub fn mode_changed(
    room_name: &str,
    by: &str,
    mode: RoomMode,
    on: bool,
    nick: &str,
    me: &str,
) -> Line {
    let (who, mine) = if by.is_empty() {
        ("the server".to_owned(), false)
    } else {
        (you_or(by, me), same(by, me))
    };
    // Verbs agree with "you" or with a name.
    let verb = |base: &str| {
        if mine {
            base.to_owned()
        } else {
            format!("{base}s")
        }
    };
    let room = room(room_name);
    let target = you_or(nick, me);
    let what = match (mode, on) {
        (RoomMode::TopicLock, true) => format!("{} the topic of {room}", verb("lock")),
        (RoomMode::TopicLock, false) => format!("{} the topic of {room}", verb("unlock")),
        (RoomMode::Operator, true) => {
            format!("{} operator status to {target} in {room}", verb("give"))
        }
        (RoomMode::Operator, false) if mine && same(nick, me) => {
            format!("give up operator status in {room}")
        }
        (RoomMode::Operator, false) => {
            format!("{} operator status from {target} in {room}", verb("take"))
        }
        (RoomMode::Voice, true) => format!("{} voice to {target} in {room}", verb("give")),
        (RoomMode::Voice, false) if mine && same(nick, me) => format!("give up voice in {room}"),
        (RoomMode::Voice, false) => format!("{} voice from {target} in {room}", verb("take")),
    };
    Line::notice(format!("{who} {what}"))
}

/// What a mode request that the server found nothing to change means:
/// `* bob is already an operator of #rust`.
pub fn mode_unchanged(room_name: &str, mode: RoomMode, on: bool, nick: &str, me: &str) -> Line {
    let room = room(room_name);
    let (target, is, has) = if same(nick, me) {
        ("you".to_owned(), "are", "have")
    } else {
        (clean(nick), "is", "has")
    };
    Line::notice(match (mode, on) {
        (RoomMode::TopicLock, true) => format!("the topic of {room} is already locked"),
        (RoomMode::TopicLock, false) => format!("the topic of {room} is not locked"),
        (RoomMode::Operator, true) => format!("{target} {is} already an operator of {room}"),
        (RoomMode::Operator, false) => format!("{target} {is} not an operator of {room}"),
        (RoomMode::Voice, true) => format!("{target} already {has} voice in {room}"),
        (RoomMode::Voice, false) => format!("{target} {has} no voice in {room}"),
    })
}

/// `you` for this client's own nick, else the nick made safe.
fn you_or(nick: &str, me: &str) -> String {
    if same(nick, me) {
        "you".to_owned()
    } else {
        clean(nick)
    }
}

/// A header line and one line per room.
pub fn room_list(rooms: &[RoomInfo]) -> Vec<Line> {
    if rooms.is_empty() {
        return vec![Line::notice("no rooms yet: /join ROOM makes one")];
    }
    let count = match rooms.len() {
        1 => "1 room".to_owned(),
        n => format!("{n} rooms"),
    };
    let mut lines = vec![Line::notice(format!("{count}:"))];
    let width = rooms.iter().map(|r| room(&r.name).len()).max().unwrap_or(0);
    for r in rooms {
        let people = if r.members == 1 { "member" } else { "members" };
        let row = format!("    {:width$}  {} {people}", room(&r.name), r.members);
        lines.push(Line::new(Kind::Notice, row));
    }
    lines
}

/// `!! join failed: not in `x` (NotInRoom, code 31)`.
pub fn server_error(code: ErrorCode, request_type: u8, message: &str) -> Line {
    let what = match request_name(request_type) {
        Some(name) => format!("{name} failed"),
        None => "server error".to_owned(),
    };
    Line::error(format!("{what}: {} ({})", clean(message), code_text(code)))
}

/// `Shutdown, code 54`, or `code 99` for a code this build does not know.
pub fn code_text(code: ErrorCode) -> String {
    match code {
        ErrorCode::Other(n) => format!("code {n}"),
        known => format!("{known}, code {}", known.to_u16()),
    }
}

/// What the user calls a request type.
fn request_name(request_type: u8) -> Option<&'static str> {
    use client_type::*;
    Some(match request_type {
        HELLO => "sign-in",
        JOIN => "join",
        LEAVE => "leave",
        SAY => "message",
        WHISPER => "direct message",
        NICK => "nick change",
        LIST_ROOMS => "room list",
        LIST_MEMBERS => "member list",
        PING => "ping",
        PONG => "pong",
        QUIT => "quit",
        SET_TOPIC => "topic change",
        KICK => "kick",
        AWAY => "away",
        WHOIS => "whois",
        SET_MODE => "mode change",
        HISTORY => "history",
        _ => return None,
    })
}

/// Nicknames and room names compare ASCII case-insensitively, as the server does.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_is_utc_time_of_day() {
        let t = UNIX_EPOCH + Duration::from_secs(3 * 86_400 + 12 * 3600 + 61 * 60 + 2);
        assert_eq!(clock(t), "13:01:02");
        assert_eq!(clock(UNIX_EPOCH), "00:00:00");
        assert_eq!(
            Line::notice("x").stamp(UNIX_EPOCH + Duration::from_secs(59)),
            "[00:00:59] "
        );
        assert_eq!(Line::new(Kind::Help, "x").stamp(UNIX_EPOCH), "");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(
            clean("a\x1b[2Jb\x07c\u{9b}d\x7f"),
            "a\u{FFFD}[2Jb\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(clean("ünï ✓"), "ünï ✓");
        let line = message("r\x1b", "x\x1b", "hi\x1b]0;owned\x07", "me");
        assert!(!line.text.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn messages() {
        assert_eq!(
            message("rust", "alice", "hi", "bob"),
            Line::new(Kind::Message, "#rust <alice> hi")
        );
        assert_eq!(
            message("rust", "alice", "hi Bob!", "bob").kind,
            Kind::Mention
        );
        assert_eq!(message("rust", "alice", "bobby", "bob").kind, Kind::Message);
        assert_eq!(
            message("rust", "bob", "I am bob", "bob").kind,
            Kind::Message
        );
        assert!(mentions("ping [x]-y?", "[X]-y"));
    }

    #[test]
    fn direct_messages_show_their_direction() {
        assert_eq!(direct("alice", "bob", "psst", "alice").text, "-> bob: psst");
        assert_eq!(direct("alice", "bob", "psst", "BOB").text, "<- alice: psst");
    }

    #[test]
    fn membership_notices() {
        assert_eq!(joined("rust", "bob", "alice").text, "* bob joined #rust");
        assert_eq!(joined("rust", "Alice", "alice").text, "* you joined #rust");
        assert_eq!(left("rust", "bob", "", "alice").text, "* bob left #rust");
        assert_eq!(
            left("rust", "bob", "quit: zzz", "alice").text,
            "* bob left #rust (quit: zzz)"
        );
        assert_eq!(left("rust", "alice", "", "alice").text, "* you left #rust");
        assert_eq!(
            nick_changed("alice", "al", "bob").text,
            "* alice is now known as al"
        );
        assert_eq!(
            nick_changed("alice", "al", "al").text,
            "* you are now known as al"
        );
    }

    fn member(nick: &str, flags: u8) -> Member {
        Member {
            nick: nick.into(),
            flags,
        }
    }

    #[test]
    fn member_lists_mark_operators_voice_and_away() {
        let list = [
            member("alice", Member::OPERATOR | Member::VOICE),
            member("bob", Member::VOICE),
            member("carol", Member::AWAY),
            member("dave", Member::OPERATOR | Member::AWAY),
            member("eve\x1b", 0),
        ];
        assert_eq!(
            members("rust", &list).text,
            "* #rust (5): @alice, +bob, carol (away), @dave (away), eve\u{FFFD}"
        );
        assert_eq!(members("rust", &[]).text, "* #rust has no members");
    }

    #[test]
    fn topics_on_join_and_when_changed() {
        assert_eq!(
            topic("rust", "all things Rust", "", "bob", true).text,
            "* topic of #rust: all things Rust"
        );
        assert_eq!(
            topic("rust", "all things Rust", "alice", "bob", true).text,
            "* topic of #rust: all things Rust (set by alice)"
        );
        assert_eq!(
            topic("rust", "1.85 is out", "alice", "bob", false).text,
            "* alice set the topic of #rust: 1.85 is out"
        );
        assert_eq!(
            topic("rust", "1.85", "Bob", "bob", false).text,
            "* you set the topic of #rust: 1.85"
        );
        assert_eq!(
            topic("rust", "", "alice", "bob", false).text,
            "* alice cleared the topic of #rust"
        );
        assert_eq!(
            topic("rust", "\x1b]0;pwned\x07", "al\x1b", "bob", false).text,
            "* al\u{FFFD} set the topic of #rust: \u{FFFD}]0;pwned\u{FFFD}"
        );
        assert_eq!(
            current_topic("rust", "").text,
            "* #rust has no topic; /topic TEXT sets one"
        );
        assert_eq!(current_topic("rust", "hi").text, "* topic of #rust: hi");
    }

    #[test]
    fn kicks_say_who_and_why() {
        assert_eq!(
            kicked("rust", "bob", "alice", "spam", "carol").text,
            "* alice kicked bob out of #rust (spam)"
        );
        assert_eq!(
            kicked("rust", "bob", "alice", "", "alice").text,
            "* you kicked bob out of #rust"
        );
        assert_eq!(
            kicked("rust", "BOB", "alice", "spam", "bob").text,
            "* you were kicked out of #rust by alice (spam)"
        );
        assert_eq!(
            kicked("rust", "bob", "bob", "", "bob").text,
            "* you kicked yourself out of #rust"
        );
        let line = kicked("r", "b\x07", "a\x1b", "\x1b[2J", "me");
        assert!(!line.text.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn away_replies() {
        assert_eq!(
            away("alice", "lunch", "alice").text,
            "* you are marked away: lunch; /away alone marks you back"
        );
        assert_eq!(
            away("alice", "", "alice").text,
            "* you are no longer marked away"
        );
        assert_eq!(away("bob", "lunch", "alice").text, "* bob is away: lunch");
        assert_eq!(away("bob", "", "alice").text, "* bob is not away");
    }

    #[test]
    fn idle_times_read_like_people_say_them() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(2 * 3600 + 7 * 60 + 59), "2 h 7 min");
        assert_eq!(duration(86_400), "1 d");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 5), "3 d 4 h");
        assert_eq!(duration(u32::MAX), "49710 d 6 h");
    }

    #[test]
    fn whois_lists_rooms_with_status_idle_time_and_away() {
        let rooms = [
            member("rust", Member::OPERATOR),
            member("go", Member::VOICE),
            member("c", 0),
        ];
        let texts: Vec<String> = whois("bob", "lunch", 185, &rooms)
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            texts,
            [
                "* whois bob:",
                "    rooms  @#rust, +#go, #c",
                "    idle   3 min 5 s",
                "    away   lunch"
            ]
        );
        let texts: Vec<String> = whois("bob", "", 5, &[])
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, ["* whois bob:", "    rooms  none", "    idle   5 s"]);
        let lines = whois("b\x1b", "\x07", 0, &[member("r\x1b", 0)]);
        assert!(
            lines.iter().all(|l| !l.text.chars().any(char::is_control)),
            "{lines:?}"
        );
    }

    #[test]
    fn mode_changes_read_as_sentences() {
        use RoomMode::*;
        let text = |by, mode, on, nick, me| mode_changed("rust", by, mode, on, nick, me).text;
        assert_eq!(
            text("alice", Operator, true, "bob", "carol"),
            "* alice gives operator status to bob in #rust"
        );
        assert_eq!(
            text("alice", Operator, false, "bob", "carol"),
            "* alice takes operator status from bob in #rust"
        );
        assert_eq!(
            text("alice", Voice, true, "bob", "bob"),
            "* alice gives voice to you in #rust"
        );
        assert_eq!(
            text("alice", Voice, false, "bob", "alice"),
            "* you take voice from bob in #rust"
        );
        assert_eq!(
            text("alice", TopicLock, true, "", "carol"),
            "* alice locks the topic of #rust"
        );
        assert_eq!(
            text("alice", TopicLock, false, "", "alice"),
            "* you unlock the topic of #rust"
        );
        assert_eq!(
            text("", TopicLock, true, "", "alice"),
            "* the server locks the topic of #rust"
        );
        assert_eq!(
            mode_unchanged("rust", Operator, true, "bob", "alice").text,
            "* bob is already an operator of #rust"
        );
        assert_eq!(
            mode_unchanged("rust", Operator, false, "alice", "alice").text,
            "* you are not an operator of #rust"
        );
        assert_eq!(
            mode_unchanged("rust", Voice, true, "bob", "alice").text,
            "* bob already has voice in #rust"
        );
        assert_eq!(
            mode_unchanged("rust", Voice, false, "bob", "alice").text,
            "* bob has no voice in #rust"
        );
        assert_eq!(
            mode_unchanged("rust", TopicLock, true, "", "alice").text,
            "* the topic of #rust is already locked"
        );
        assert_eq!(
            mode_unchanged("rust", TopicLock, false, "", "alice").text,
            "* the topic of #rust is not locked"
        );
    }

    #[test]
    fn actions_read_as_irc_clients_show_them() {
        let line = message("rust", "alice", "\u{1}ACTION waves\u{1}", "bob");
        assert_eq!(line.text, "#rust * alice waves");
        let line = direct("alice", "bob", "\u{1}ACTION nods", "bob");
        assert_eq!(line.text, "<- * alice nods");
        assert_eq!(action("ACTION x"), None);
    }

    #[test]
    fn room_lists_line_up() {
        let rooms = [
            RoomInfo {
                name: "rust".into(),
                members: 3,
            },
            RoomInfo {
                name: "go".into(),
                members: 1,
            },
        ];
        let texts: Vec<String> = room_list(&rooms).into_iter().map(|l| l.text).collect();
        assert_eq!(
            texts,
            ["* 2 rooms:", "    #rust  3 members", "    #go    1 member"]
        );
        assert_eq!(room_list(&[]).len(), 1);
        assert_eq!(room_list(&rooms[1..])[0].text, "* 1 room:");
    }

    #[test]
    fn giving_up_ones_own_status_reads_as_such() {
        let line = |mode, nick| mode_changed("rust", "alice", mode, false, nick, "alice").text;
        assert_eq!(
            line(RoomMode::Operator, "alice"),
            "* you give up operator status in #rust"
        );
        assert_eq!(
            line(RoomMode::Voice, "ALICE"),
            "* you give up voice in #rust"
        );
        assert_eq!(
            line(RoomMode::Operator, "bob"),
            "* you take operator status from bob in #rust"
        );
    }

    #[test]
    fn errors_name_the_request_and_code() {
        let line = server_error(ErrorCode::NotInRoom, client_type::SAY, "not in `go`");
        assert_eq!(line.kind, Kind::Error);
        assert_eq!(
            line.text,
            "!! message failed: not in `go` (NotInRoom, code 31)"
        );
        assert_eq!(
            server_error(ErrorCode::Other(999), 0, "odd").text,
            "!! server error: odd (code 999)"
        );
        assert_eq!(
            server_error(ErrorCode::NotOperator, client_type::KICK, "not an operator").text,
            "!! kick failed: not an operator (NotOperator, code 35)"
        );
    }
}
