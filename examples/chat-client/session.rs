//! The chat session without I/O: user lines and server bytes in, screen lines and bytes out.
//!
//! It wraps the core [`Client`] and adds what only a person needs: a current room for plain
//! lines, another try after a refused nick, ping timing and readable output.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard::core::packet::client_type;
use switchboard::core::{Client, ClientEvent, ErrorCode, RoomEvent, RoomMode};

use crate::command::{self, Command, HELP};
use crate::render::{self, Kind, Line};

/// How many times `_` is appended to the first nick once every given nick is taken.
const UNDERSCORES: usize = 3;

/// What a session starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setup {
    /// Nicks to ask for, in order; the first with `_` appended after them.
    pub nicks: Vec<String>,
    /// The server's password, if it has one.
    pub password: Option<String>,
    /// Rooms to join once signed in.
    pub autojoin: Vec<String>,
    /// The room to make current once joined (else the last one joined).
    pub current: Option<String>,
}

/// How a session ended, which decides whether to connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The user asked to leave.
    Quit,
    /// Connecting again would end the same way: a refused password, not a Switchboard
    /// server, a server that broke the protocol, a ban for flooding.
    Fatal,
    /// The connection was lost or the server went away; worth another try.
    Lost,
}

/// One user's session with one server.
#[derive(Debug)]
pub struct Session {
    client: Client,
    /// What it started with, for the next session after a lost connection.
    setup: Setup,
    /// Which of the candidate nicks the last hello asked for.
    tried: usize,
    /// Anything came from the server yet.
    heard: bool,
    /// Connecting again would not help (see [`End::Fatal`]).
    fatal: bool,
    /// The server accepted a hello in this session.
    signed_in: bool,
    /// The user picked a nick after the server refused the given ones.
    picked: bool,
    /// Where plain lines go: the room last joined or switched to.
    current: Option<String>,
    /// Rooms to join once the server accepts the hello.
    autojoin: Vec<String>,
    /// Joins not yet answered: request number, room, and the room current before.
    joining: Vec<(u32, String, Option<String>)>,
    /// The server refused the last hello; the user must pick another nick.
    hello_refused: bool,
    quit_requested: bool,
    /// The server said goodbye to a quit this session asked for.
    clean_end: bool,
    /// Pings in flight: token and when sent.
    pings: Vec<(u64, Instant)>,
    next_ping: u64,
    /// Mode requests whose outcome is not known yet.
    mode_checks: Vec<ModeCheck>,
    /// A room this client has just joined. The server follows the Joined with the member
    /// list and then the topic the room has, if any: a topic for it that comes next,
    /// before any other event and before the user does anything, is that one, not a change.
    /// (A change someone makes within that moment reads as the join's topic, which says
    /// the same thing.)
    fresh_join: Option<String>,
    /// The server confirmed an away message and no return since.
    away: bool,
    /// The person plain lines go to, after `/query NICK`.
    query: Option<String>,
    /// CTCP requests answered lately: who asked, what, when. The same one from the same
    /// person soon after is the answer to ours (IRC clients take our answer, a PRIVMSG,
    /// for a request), so it is shown and not answered: no endless ping-pong.
    ctcp_answered: Vec<(String, String, Instant)>,
    /// Per room (folded), the id of the oldest message shown: where `/history` goes on.
    history_cursor: std::collections::HashMap<String, u64>,
}

/// How long a CTCP answer keeps the same request from the same person unanswered.
const CTCP_QUIET: Duration = Duration::from_secs(60);

/// A mode request awaiting its outcome. The server answers a request that changes nothing
/// with nothing at all, so a ping goes right after it: requests are handled in order, and
/// a pong with no mode change or error before it means there was nothing to change.
#[derive(Debug)]
struct ModeCheck {
    /// The mode request's number, which an error to it carries.
    seq: u32,
    /// The following ping's request number and token.
    ping_seq: u32,
    token: u64,
    room: String,
    mode: RoomMode,
    on: bool,
    nick: String,
}

impl Session {
    /// A session asking for `nick` that joins `autojoin` once signed in.
    #[cfg(test)]
    pub fn new(nick: &str, autojoin: Vec<String>) -> Self {
        Session::start(Setup {
            nicks: vec![nick.to_owned()],
            autojoin,
            ..Setup::default()
        })
    }

    /// A session as `setup` says; its hello is queued at once.
    pub fn start(setup: Setup) -> Self {
        let first = setup.nicks.first().map_or("", String::as_str);
        let client = match &setup.password {
            Some(password) => Client::with_password(first, password),
            None => Client::new(first),
        };
        Session {
            client,
            tried: 0,
            heard: false,
            fatal: false,
            signed_in: false,
            picked: false,
            current: None,
            autojoin: setup.autojoin.clone(),
            setup,
            joining: Vec::new(),
            hello_refused: false,
            quit_requested: false,
            clean_end: false,
            pings: Vec::new(),
            next_ping: 1,
            mode_checks: Vec::new(),
            fresh_join: None,
            away: false,
            query: None,
            ctcp_answered: Vec::new(),
            history_cursor: std::collections::HashMap::new(),
        }
    }

    /// What the next session starts with after this one lost its connection: this nick
    /// first, the rooms it is in, the same current room.
    pub fn successor(&self) -> Setup {
        let mut nicks = self.setup.nicks.clone();
        if self.client.is_registered() || self.picked {
            let nick = self.client.nick().to_owned();
            nicks.retain(|n| !render::same(n, &nick));
            nicks.insert(0, nick);
        }
        let in_rooms: Vec<String> = self.client.rooms().map(|r| r.name.clone()).collect();
        // Joins not answered yet count; so do the autojoins of a session that never got in.
        let mut autojoin = if self.signed_in {
            in_rooms
        } else {
            self.setup.autojoin.clone()
        };
        for (_, room, _) in &self.joining {
            if !autojoin.iter().any(|r| render::same(r, room)) {
                autojoin.push(room.clone());
            }
        }
        Setup {
            nicks,
            password: self.setup.password.clone(),
            autojoin,
            current: self.current.clone().or_else(|| self.setup.current.clone()),
        }
    }

    /// Whether anything came from the server yet.
    pub fn heard(&self) -> bool {
        self.heard
    }

    /// Whether the server accepted a hello in this session.
    pub fn signed_in(&self) -> bool {
        self.signed_in
    }

    /// How the session ended, or would end if its connection closed now.
    pub fn end(&self) -> End {
        if self.quit_requested {
            End::Quit
        } else if self.fatal {
            End::Fatal
        } else {
            End::Lost
        }
    }

    /// The nick for hello number `i`: the given ones, then the first with `_` appended.
    fn candidate(&self, i: usize) -> Option<String> {
        let nicks = &self.setup.nicks;
        if i < nicks.len() {
            return Some(nicks[i].clone());
        }
        let extra = i.checked_sub(nicks.len())? + 1;
        let first = nicks.first()?;
        (extra <= UNDERSCORES).then(|| format!("{first}{}", "_".repeat(extra)))
    }

    /// The input prompt: nick and current room.
    pub fn prompt(&self) -> String {
        if self.hello_refused {
            return "pick a nick with /nick NAME> ".to_owned();
        }
        let mut nick = render::clean(self.client.nick());
        if self.away {
            nick.push_str(" (away)");
        }
        match (&self.query, &self.current) {
            (Some(peer), _) => format!("{nick} -> {}> ", render::clean(peer)),
            (None, Some(room)) => format!("{nick} {}> ", render::room(room)),
            (None, None) => format!("{nick}> "),
        }
    }

    /// Whether the user asked to leave (by /quit, Ctrl-D or Ctrl-C).
    pub fn quit_requested(&self) -> bool {
        self.quit_requested
    }

    /// Whether the session ended as the user asked: a goodbye after a quit.
    #[cfg(test)]
    pub fn ended_cleanly(&self) -> bool {
        self.clean_end
    }

    /// Whether the session is over (bye received, protocol broken, the server silent or not
    /// a Switchboard server).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.fatal
    }

    /// When [`Session::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Bytes to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.client.poll_transmit()
    }

    /// Asks the server to end the session (once).
    pub fn quit(&mut self, reason: &str) {
        if !self.quit_requested && !self.client.is_closed() {
            self.quit_requested = true;
            self.client.quit(reason);
        }
    }

    /// Acts on one line the user typed.
    pub fn handle_line(&mut self, line: &str, now: Instant) -> Vec<Line> {
        // Whatever the user does now may change the topic.
        self.fresh_join = None;
        if self.quit_requested {
            return vec![Line::notice(
                "leaving; waiting for the server to say goodbye",
            )];
        }
        match command::parse(line) {
            Ok(None) => Vec::new(),
            Ok(Some(cmd)) => self.command(cmd, now),
            Err(usage) => vec![Line::error(usage)],
        }
    }

    /// Feeds bytes from the server. A server that breaks the protocol ends the session.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Vec<Line> {
        if !self.heard && !bytes.is_empty() {
            self.heard = true;
            if let Some(what) = foreign(bytes) {
                self.fatal = true;
                return vec![Line::error(format!("not a Switchboard server: {what}"))];
            }
        }
        let result = self.client.handle_input(bytes, now);
        // Whatever was whole before a bad frame is still shown.
        let mut lines = self.drain_events(now);
        if let Err(e) = result {
            self.fatal = true;
            lines.push(Line::error(format!("protocol error from the server: {e}")));
        }
        lines
    }

    /// Checks for a server that fell silent.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Line> {
        let was_closed = self.client.is_closed();
        self.client.handle_timeout(now);
        let mut lines = self.drain_events(now);
        if !was_closed && self.client.is_closed() {
            // The client gave up on its own: say so, rather than relay a bye never sent.
            lines.retain(|l| l.kind != Kind::Error);
            let secs = self.client.limits().map_or(0, |l| l.idle_timeout_ms / 1000);
            lines.push(Line::error(format!(
                "no word from the server for {secs} s; giving up on it"
            )));
        }
        lines
    }

    fn command(&mut self, cmd: Command, now: Instant) -> Vec<Line> {
        if self.hello_refused && !matches!(cmd, Command::Nick(_) | Command::Quit(_) | Command::Help)
        {
            return vec![Line::error(
                "not signed in yet: pick a nick with /nick NAME",
            )];
        }
        match cmd {
            Command::Say(text) if self.query.is_some() => {
                let to = self.query.clone().unwrap_or_default();
                self.client.whisper(&to, &text);
            }
            Command::Say(text) => match &self.current {
                Some(room) => {
                    // Shown when the server echoes it back, which confirms it was said.
                    self.client.say(room, &text);
                }
                None => return vec![not_in_a_room()],
            },
            Command::Join(room) => self.join(room, ""),
            Command::JoinKey { room, key } => self.join(room, &key),
            Command::Invite { room, nick } => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.invite(&room, &nick);
                }
                None => return vec![Line::error("not in a room: /invite NICK #ROOM")],
            },
            Command::Rule {
                room,
                rule,
                on,
                arg,
            } => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.set_rule(&room, rule, on, &arg);
                }
                None => return vec![not_in_a_room()],
            },
            Command::Rules(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.list_rules(&room);
                }
                None => return vec![Line::error("not in a room: /rules ROOM")],
            },
            Command::Leave { room, reason } => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.leave(&room, &reason);
                }
                None => return vec![Line::error("not in a room: /leave ROOM")],
            },
            Command::Switch(room) => return self.switch(&room),
            Command::Msg { to, text } => {
                self.client.whisper(&to, &text);
            }
            Command::Who(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.list_members(&room);
                }
                None => return vec![Line::error("not in a room: /who ROOM")],
            },
            Command::Rooms => {
                self.client.list_rooms();
            }
            Command::Nick(nick) => return self.nick(&nick),
            Command::Topic { room, text } => return self.topic(room, text),
            Command::Query(peer) => return self.open_query(peer),
            Command::Kick { room, nick, reason } => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    self.client.kick(&room, &nick, &reason);
                }
                None => return vec![not_in_a_room()],
            },
            Command::Mode {
                room,
                mode,
                on,
                nick,
            } => match room.or_else(|| self.current.clone()) {
                Some(room) => self.set_mode(room, mode, on, nick),
                None => return vec![not_in_a_room()],
            },
            Command::Away(message) => {
                self.client.away(&message);
            }
            Command::Whois(nick) => {
                self.client.whois(&nick);
            }
            Command::History(n) => match &self.current {
                Some(room) => {
                    let key = room.to_ascii_lowercase();
                    let before = self.history_cursor.get(&key).copied().unwrap_or(0);
                    self.client.history(room, before, n.unwrap_or(50));
                }
                None => return vec![not_in_a_room()],
            },
            Command::Ping => {
                let (token, _) = self.ping();
                self.pings.push((token, now));
            }
            Command::Quit(reason) => self.quit(&reason),
            Command::Help => return HELP.iter().map(|h| Line::new(Kind::Help, *h)).collect(),
        }
        Vec::new()
    }

    /// Joins a room and makes it current at once, so lines typed before the server answers
    /// already go there (the server handles them after the join).
    fn join(&mut self, room: String, key: &str) {
        self.query = None;
        let seq = if key.is_empty() {
            self.client.join(&room)
        } else {
            self.client.join_with_key(&room, key)
        };
        let before = self.current.replace(room.clone());
        self.joining.push((seq, room, before));
    }

    /// Pings the server with a fresh token; returns the token and the request number.
    fn ping(&mut self) -> (u64, u32) {
        let token = self.next_ping;
        self.next_ping += 1;
        (token, self.client.ping(token))
    }

    /// Shows a room's topic (`None`) or asks to set it.
    fn topic(&mut self, room: Option<String>, topic: Option<String>) -> Vec<Line> {
        let Some(room) = room.or_else(|| self.current.clone()) else {
            return vec![not_in_a_room()];
        };
        let room = &room;
        match topic {
            Some(topic) => {
                self.client.set_topic(room, &topic);
                Vec::new()
            }
            None => match self.client.room(room) {
                Some(view) => vec![render::current_topic(&view.name, &view.topic)],
                None => vec![Line::error(format!(
                    "not in {} yet; try again in a moment",
                    render::room(room)
                ))],
            },
        }
    }

    /// Asks for a mode change and a ping to learn whether there was anything to change.
    fn set_mode(&mut self, room: String, mode: RoomMode, on: bool, nick: String) {
        let seq = self.client.set_mode(&room, mode, on, &nick);
        let (token, ping_seq) = self.ping();
        self.mode_checks.push(ModeCheck {
            seq,
            ping_seq,
            token,
            room,
            mode,
            on,
            nick,
        });
    }

    /// After this client left or was kicked out of `room`: another room becomes current.
    fn gone_from(&mut self, room: &str, out: &mut Vec<Line>) {
        if !self.is_current(room) {
            return;
        }
        self.current = self.client.rooms().last().map(|v| v.name.clone());
        out.push(match &self.current {
            Some(next) => Line::notice(format!("now talking in {}", render::room(next))),
            None => Line::notice("not in any room now: /join ROOM"),
        });
    }

    fn is_current(&self, room: &str) -> bool {
        self.current
            .as_deref()
            .is_some_and(|c| render::same(c, room))
    }

    /// Makes `before` current again if this client is still in it, else any room it is in.
    fn fall_back(&mut self, before: Option<String>) -> Option<Line> {
        let still_in = before.and_then(|b| self.client.room(&b).map(|v| v.name.clone()));
        self.current = still_in.or_else(|| self.client.rooms().last().map(|v| v.name.clone()));
        self.current
            .as_ref()
            .map(|c| Line::notice(format!("still talking in {}", render::room(c))))
    }

    /// Makes `peer` the target of plain lines, or the current room again.
    fn open_query(&mut self, peer: Option<String>) -> Vec<Line> {
        let line = match (&peer, &self.current) {
            (Some(peer), _) => format!(
                "talking to {}: plain lines go to them; /query alone ends it",
                render::clean(peer)
            ),
            (None, Some(room)) => format!("now talking in {}", render::room(room)),
            (None, None) => "not in any room now: /join ROOM".to_owned(),
        };
        self.query = peer;
        vec![Line::notice(line)]
    }

    fn switch(&mut self, room: &str) -> Vec<Line> {
        match self.client.room(room) {
            Some(view) => {
                self.query = None;
                let name = view.name.clone();
                let line = Line::notice(format!("now talking in {}", render::room(&name)));
                self.current = Some(name);
                vec![line]
            }
            None => vec![Line::error(format!(
                "not in {}: /join {} first",
                render::room(room),
                render::room(room)
            ))],
        }
    }

    fn nick(&mut self, nick: &str) -> Vec<Line> {
        if self.client.is_registered() {
            if nick == self.client.nick() {
                // The server accepts this silently; say something.
                return vec![Line::notice(format!(
                    "you are already {}",
                    render::clean(nick)
                ))];
            }
            self.client.change_nick(nick);
            return Vec::new();
        }
        if !self.hello_refused {
            return vec![Line::error(format!(
                "still waiting for the server to accept `{}`",
                render::clean(self.client.nick())
            ))];
        }
        self.hello_refused = false;
        // A nick the user picked is not replaced by a fallback.
        self.picked = true;
        self.tried = usize::MAX;
        self.client.hello(nick);
        vec![Line::notice(format!(
            "asking for `{}`",
            render::clean(nick)
        ))]
    }

    fn drain_events(&mut self, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        while let Some(event) = self.client.poll_event() {
            self.event(event, now, &mut lines);
        }
        while let Some(event) = self.client.poll_room_event() {
            lines.push(self.room_event(event));
        }
        lines
    }

    /// A rule change, an invitation or a room's rules, as a line.
    fn room_event(&self, event: RoomEvent) -> Line {
        let me = self.client.nick();
        let who = |nick: &str| {
            if render::same(nick, me) {
                "you".to_owned()
            } else {
                render::clean(nick)
            }
        };
        match event {
            RoomEvent::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            } => {
                let sign = if on { '+' } else { '-' };
                let letter = char::from(rule.letter());
                let arg = match arg.as_str() {
                    "" => String::new(),
                    arg => format!(" {}", render::clean(arg)),
                };
                Line::notice(format!(
                    "{} set {sign}{letter}{arg} on {}",
                    who(&by),
                    render::room(&room)
                ))
            }
            RoomEvent::Invited { room, by, nick } if render::same(&nick, me) => {
                let room = render::room(&room);
                Line::notice(format!("{} invites you to {room} (/join {room})", who(&by)))
            }
            RoomEvent::Invited { room, by, nick } => Line::notice(format!(
                "{} invited {} to {}",
                who(&by),
                render::clean(&nick),
                render::room(&room)
            )),
            RoomEvent::Rules {
                room,
                modes,
                key,
                limit,
                bans,
            } => {
                let mut text = format!("rules of {}: ", render::room(&room));
                text += &match modes.as_str() {
                    "" => "no modes".to_owned(),
                    modes => format!("+{}", render::clean(modes)),
                };
                if !key.is_empty() {
                    text += &format!(", key {}", render::clean(&key));
                }
                if limit > 0 {
                    text += &format!(", limit {limit}");
                }
                text += &match bans.len() {
                    0 => ", no bans".to_owned(),
                    _ => {
                        let bans: Vec<_> = bans.iter().map(|b| render::clean(b)).collect();
                        format!(", bans: {}", bans.join(" "))
                    }
                };
                Line::notice(text)
            }
        }
    }

    fn event(&mut self, event: ClientEvent, now: Instant, out: &mut Vec<Line>) {
        let me = self.client.nick().to_owned();
        // Only the events right after a join of this client's own may keep this.
        let fresh = self.fresh_join.take();
        match event {
            ClientEvent::Welcome { nick, .. } => {
                self.signed_in = true;
                out.push(Line::notice(format!(
                    "signed in as {}; /help lists the commands",
                    render::clean(&nick)
                )));
                let mut rooms = std::mem::take(&mut self.autojoin);
                // The room that was current is joined last, so it is current again.
                if let Some(current) = self.setup.current.clone() {
                    if let Some(pos) = rooms.iter().position(|r| render::same(r, &current)) {
                        let room = rooms.remove(pos);
                        rooms.push(room);
                    }
                }
                for room in rooms {
                    self.join(room, "");
                }
            }
            ClientEvent::Joined { room, nick } => {
                if render::same(&nick, &me) {
                    self.fresh_join = Some(room.clone());
                    self.joining.retain(|(_, r, _)| !render::same(r, &room));
                    // The server's spelling of the name wins.
                    if self.is_current(&room) {
                        self.current = Some(room.clone());
                    }
                }
                out.push(render::joined(&room, &nick, &me));
            }
            ClientEvent::Left { room, nick, reason } => {
                out.push(render::left(&room, &nick, &reason, &me));
                if render::same(&nick, &me) {
                    self.gone_from(&room, out);
                }
            }
            ClientEvent::Message {
                room,
                from,
                text,
                seq,
            } => {
                // The oldest message seen is where `/history` goes back from.
                self.history_cursor
                    .entry(room.to_ascii_lowercase())
                    .or_insert(seq);
                out.push(render::message(&room, &from, &text, &me))
            }
            ClientEvent::Direct { from, to, text } => match ctcp(&text) {
                Some((command, arg)) if command != "ACTION" && !render::same(&from, &me) => {
                    let (command, arg) = (command.to_owned(), arg.to_owned());
                    out.push(self.ctcp(&from, &command, &arg, now));
                }
                _ => out.push(render::direct(&from, &to, &text, &me)),
            },
            ClientEvent::Replayed {
                room,
                from,
                time_ms,
                text,
                id,
            } => {
                let cursor = self
                    .history_cursor
                    .entry(room.to_ascii_lowercase())
                    .or_insert(id);
                *cursor = (*cursor).min(id);
                out.push(render::replayed(&room, &from, time_ms, &text))
            }
            ClientEvent::HistoryEnd { room, oldest, more } => {
                if oldest > 0 {
                    self.history_cursor
                        .insert(room.to_ascii_lowercase(), oldest);
                }
                out.extend(render::history_end(&room, oldest > 0, more));
            }
            ClientEvent::RoomList(rooms) => out.extend(render::room_list(&rooms)),
            ClientEvent::Members { room, members } => {
                if fresh.as_deref().is_some_and(|f| render::same(f, &room)) {
                    // The topic, if any, comes next.
                    self.fresh_join = fresh;
                }
                out.push(render::members(&room, &members))
            }
            ClientEvent::Topic { room, topic, by } => {
                let on_join = fresh.is_some_and(|f| render::same(&f, &room));
                out.push(render::topic(&room, &topic, &by, &me, on_join))
            }
            ClientEvent::Kicked {
                room,
                nick,
                by,
                reason,
            } => {
                out.push(render::kicked(&room, &nick, &by, &reason, &me));
                if render::same(&nick, &me) {
                    self.gone_from(&room, out);
                }
            }
            ClientEvent::Away { nick, message } => {
                if render::same(&nick, &me) {
                    self.away = !message.is_empty();
                }
                out.push(render::away(&nick, &message, &me))
            }
            ClientEvent::Whois {
                nick,
                away,
                idle_secs,
                rooms,
            } => out.extend(render::whois(&nick, &away, idle_secs, &rooms)),
            ClientEvent::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            } => {
                if render::same(&by, &me) {
                    let asked = self.mode_checks.iter().position(|c| {
                        render::same(&c.room, &room)
                            && c.mode == mode
                            && c.on == on
                            && (!mode.takes_nick() || render::same(&c.nick, &nick))
                    });
                    if let Some(pos) = asked {
                        self.mode_checks.remove(pos);
                    }
                }
                out.push(render::mode_changed(&room, &by, mode, on, &nick, &me))
            }
            ClientEvent::NickChanged { old, new } => {
                out.push(render::nick_changed(&old, &new, &me))
            }
            ClientEvent::Pong { token } => {
                if let Some(pos) = self.pings.iter().position(|(t, _)| *t == token) {
                    let (_, sent) = self.pings.swap_remove(pos);
                    let ms = now.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                    out.push(Line::notice(format!("pong from the server in {ms:.2} ms")));
                }
                if let Some(pos) = self.mode_checks.iter().position(|c| c.token == token) {
                    // Neither a change nor an error came before: nothing to change.
                    let c = self.mode_checks.remove(pos);
                    // Names as the room spells them, where it still can.
                    let view = self.client.room(&c.room);
                    let room = view.map_or(c.room.as_str(), |v| v.name.as_str());
                    let nick = view
                        .and_then(|v| v.members.iter().find(|m| render::same(m, &c.nick)))
                        .map_or(c.nick.as_str(), String::as_str);
                    out.push(render::mode_unchanged(room, c.mode, c.on, nick, &me));
                }
            }
            ClientEvent::Error {
                code,
                request_type,
                request_seq,
                message,
            } => {
                out.push(render::server_error(code, request_type, &message));
                // An error settles a mode request, or makes its check moot.
                self.mode_checks
                    .retain(|c| c.seq != request_seq && c.ping_seq != request_seq);
                if let Some(pos) = self.joining.iter().position(|j| j.0 == request_seq) {
                    let (_, room, before) = self.joining.remove(pos);
                    if self.is_current(&room) {
                        match self.client.room(&room) {
                            // Already in it is as good as joined.
                            Some(view) => self.current = Some(view.name.clone()),
                            None => out.extend(self.fall_back(before)),
                        }
                    }
                }
                if request_type == client_type::HELLO && !self.client.is_registered() {
                    out.extend(self.hello_failed(code));
                }
            }
            ClientEvent::Bye { code, reason } => {
                // Connecting again would end the same way.
                if matches!(
                    code,
                    ErrorCode::BadPassword
                        | ErrorCode::Flooding
                        | ErrorCode::UnsupportedVersion
                        | ErrorCode::Malformed
                        | ErrorCode::FrameTooLarge
                        | ErrorCode::InvalidUtf8
                        | ErrorCode::UnknownType
                        | ErrorCode::BadMagic
                ) {
                    self.fatal = true;
                }
                if code == ErrorCode::Quit && self.quit_requested {
                    self.clean_end = true;
                    out.push(Line::notice("disconnected. Bye!"));
                } else {
                    out.push(Line::error(format!(
                        "the server ended the session: {} ({})",
                        render::clean(&reason),
                        render::code_text(code)
                    )));
                }
            }
        }
    }
}

impl Session {
    /// After the server refused a hello: the next nick, or what to do.
    fn hello_failed(&mut self, code: ErrorCode) -> Vec<Line> {
        match code {
            ErrorCode::BadPassword => {
                self.fatal = true;
                let how = if self.setup.password.is_some() {
                    "the password was refused: check --password or SWITCHBOARD_PASSWORD"
                } else {
                    "this server wants a password: give it with --password or SWITCHBOARD_PASSWORD"
                };
                return vec![Line::notice(how)];
            }
            ErrorCode::NickTaken | ErrorCode::InvalidNick => {
                self.tried += 1;
                if let Some(next) = self.candidate(self.tried) {
                    self.client.hello(&next);
                    return vec![Line::notice(format!("trying `{}`", render::clean(&next)))];
                }
            }
            _ => {}
        }
        self.hello_refused = true;
        vec![Line::notice(
            "pick another nick with /nick NAME, quickly: servers close a connection that \
             does not sign in (10 s by default); this client then connects again with it",
        )]
    }
}

impl Session {
    /// Shows a CTCP request (answering VERSION and PING) or an answer to one of ours.
    fn ctcp(&mut self, from: &str, command: &str, arg: &str, now: Instant) -> Line {
        self.ctcp_answered
            .retain(|(_, _, at)| now.saturating_duration_since(*at) < CTCP_QUIET);
        let who = render::clean(from);
        let shown = render::plain(arg);
        let answered_lately = self
            .ctcp_answered
            .iter()
            .any(|(n, c, _)| render::same(n, from) && c == command);
        // A VERSION with text is an answer; so is anything right after we answered it.
        if answered_lately || (command == "VERSION" && !arg.is_empty()) {
            return Line::new(
                Kind::Notice,
                format!("* CTCP {command} answer from {who}: {shown}"),
            );
        }
        let answer = match command {
            "VERSION" => Some(format!(
                "VERSION Switchboard chat-client {}",
                env!("CARGO_PKG_VERSION")
            )),
            "PING" => Some(format!("PING {arg}")),
            _ => None,
        };
        match answer {
            Some(answer) => {
                self.client.whisper(from, &format!("\u{1}{answer}\u{1}"));
                self.ctcp_answered
                    .push((from.to_owned(), command.to_owned(), now));
                Line::notice(format!(
                    "{who} asked for your client's {} (CTCP {command}); answered",
                    if command == "PING" {
                        "ping reply"
                    } else {
                        "version"
                    }
                ))
            }
            None => Line::notice(format!(
                "{who} sent CTCP {}{}; not answered",
                render::clean(command),
                if shown.is_empty() {
                    String::new()
                } else {
                    format!(" {shown}")
                }
            )),
        }
    }

    /// Tab completion of `word`, the word before the cursor (`first`: the line's first
    /// word): command names after `/`, rooms after `#`, else nicks of the current room
    /// (or the query's peer). Sorted, without duplicates.
    pub fn complete(&self, word: &str, first: bool) -> Vec<String> {
        let starts = |name: &str, prefix: &str| {
            name.len() >= prefix.len()
                && name.is_char_boundary(prefix.len())
                && render::same(&name[..prefix.len()], prefix)
        };
        let mut found: Vec<String> = if let Some(prefix) = word.strip_prefix('/') {
            if !first {
                return Vec::new();
            }
            command::NAMES
                .iter()
                .filter(|n| starts(n, prefix))
                .map(|n| format!("/{n}"))
                .collect()
        } else if let Some(prefix) = word.strip_prefix('#') {
            self.client
                .rooms()
                .filter(|r| starts(&r.name, prefix))
                .map(|r| format!("#{}", r.name))
                .collect()
        } else {
            let members = self
                .current
                .as_deref()
                .and_then(|room| self.client.room(room))
                .map(|view| view.members.clone())
                .unwrap_or_default();
            members
                .into_iter()
                .chain(self.query.clone())
                .filter(|n| starts(n, word) && !render::same(n, self.client.nick()))
                .collect()
        };
        found.sort_by_key(|n| n.to_ascii_lowercase());
        found.dedup_by(|a, b| render::same(a, b));
        found
    }
}

/// A CTCP message's command and argument: `\x01VERSION\x01` is `("VERSION", "")`.
fn ctcp(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('\u{1}')?;
    let body = body.strip_suffix('\u{1}').unwrap_or(body);
    Some(body.split_once(' ').unwrap_or((body, "")))
}

/// What the first bytes from a server that are not a Switchboard frame say it is.
///
/// Every frame a server sends first is short, so its 4-byte length starts with a zero byte.
fn foreign(first: &[u8]) -> Option<String> {
    if first[0] == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&first[..first.len().min(200)]);
    let starts = |p: &str| text.starts_with(p);
    Some(if starts("HTTP/") {
        "it answered HTTP".to_owned()
    } else if starts("SSH-") {
        "it answered SSH".to_owned()
    } else if first[0] == 0x16 || first[0] == 0x15 {
        // A handshake record, or the alert a TLS server sends for plain text.
        "it answered TLS: connect with --tls (or --ca PEM)".to_owned()
    } else if starts(":") || starts("NOTICE ") || starts("PING ") || starts("ERROR ") {
        "it is an IRC server: use an IRC client".to_owned()
    } else {
        let line = text.lines().next().unwrap_or_default();
        let shown: String = render::clean(line).chars().take(60).collect();
        format!("it answered `{shown}`")
    })
}

/// The error for a room command typed outside any room.
fn not_in_a_room() -> Line {
    Line::error("not in a room: /join ROOM first")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchboard::core::{CloseMode, Config, ConnId, Server};

    /// A core server and sessions wired together in memory.
    struct Harness {
        server: Server,
        now: Instant,
        users: Vec<(ConnId, Session, Vec<Line>)>,
    }

    impl Harness {
        fn new() -> Self {
            let mut config = Config::default();
            config.msg_rate = 0;
            Harness::with_config(config)
        }

        fn with_config(mut config: Config) -> Self {
            // About what the client shows, not when the server writes: no coalescing.
            config.flush_delay = Duration::ZERO;
            Harness {
                server: Server::new(config),
                now: Instant::now(),
                users: Vec::new(),
            }
        }

        fn connect(&mut self, nick: &str) -> usize {
            self.connect_with(Setup {
                nicks: vec![nick.to_owned()],
                ..Setup::default()
            })
        }

        fn connect_with(&mut self, setup: Setup) -> usize {
            let id = self.server.open(self.now);
            self.users.push((id, Session::start(setup), Vec::new()));
            self.pump();
            self.users.len() - 1
        }

        fn type_line(&mut self, who: usize, line: &str) {
            let now = self.now;
            let (_, session, out) = &mut self.users[who];
            out.extend(session.handle_line(line, now));
            self.pump();
        }

        fn session(&self, who: usize) -> &Session {
            &self.users[who].1
        }

        /// The texts shown to `who` since the last call.
        fn screen(&mut self, who: usize) -> Vec<String> {
            std::mem::take(&mut self.users[who].2)
                .into_iter()
                .map(|l| l.text)
                .collect()
        }

        fn deliver(&mut self, conn: ConnId, data: &[u8]) {
            let now = self.now;
            if let Some((_, session, out)) = self.users.iter_mut().find(|u| u.0 == conn) {
                out.extend(session.handle_input(data, now));
            }
        }

        /// Moves bytes both ways until nothing moves.
        fn pump(&mut self) {
            loop {
                let mut moved = false;
                for (id, session, _) in &mut self.users {
                    while let Some(data) = session.poll_transmit() {
                        self.server.handle_input(*id, &data, self.now);
                        moved = true;
                    }
                }
                while let Some(t) = self.server.poll_transmit() {
                    self.server.handle_written(t.conn, t.data.len());
                    self.deliver(t.conn, &t.data);
                    moved = true;
                }
                while let Some(close) = self.server.poll_close() {
                    let id = close.conn;
                    while let Some(t) = self.server.take_transmit(id) {
                        self.server.handle_written(id, t.data.len());
                        self.deliver(id, &t.data);
                    }
                    if close.mode == CloseMode::Now {
                        self.server.handle_close(id, self.now);
                    }
                    moved = true;
                }
                while self.server.poll_event().is_some() {}
                if !moved {
                    return;
                }
            }
        }
    }

    #[test]
    fn room_chat_is_shown_once_when_echoed() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        assert_eq!(
            h.screen(alice),
            ["* signed in as alice; /help lists the commands"]
        );
        h.type_line(alice, "/join #rust");
        assert_eq!(
            h.screen(alice),
            ["* you joined #rust", "* #rust (1): @alice"]
        );
        h.type_line(bob, "/join rust");
        assert_eq!(h.screen(alice), ["* bob joined #rust"]);
        assert_eq!(h.session(bob).prompt(), "bob #rust> ");
        h.screen(bob);

        h.type_line(alice, "hello bob");
        assert_eq!(h.screen(alice), ["#rust <alice> hello bob"]);
        let shown = h.screen(bob);
        assert_eq!(shown, ["#rust <alice> hello bob"]);
        h.type_line(bob, "hi");
        assert_eq!(h.screen(alice), ["#rust <bob> hi"]);
        assert_eq!(h.screen(bob), ["#rust <bob> hi"]);
    }

    /// Runs the server's history ops on an in-memory log until none are left.
    fn run_store(h: &mut Harness, log: &mut Vec<switchboard::core::StoredMessage>) {
        use switchboard::core::StoreOp;
        while let Some(op) = h.server.poll_store() {
            match op {
                StoreOp::Append { op, message, .. } => {
                    log.push(message);
                    h.server.handle_stored(op);
                }
                StoreOp::Load {
                    op, before, limit, ..
                } => {
                    let older: Vec<_> = log.iter().filter(|m| m.id < before).cloned().collect();
                    let skip = older.len().saturating_sub(limit as usize);
                    h.server.handle_history(op, older[skip..].to_vec());
                }
                other => h.server.handle_stored(other.op()),
            }
            h.pump();
        }
    }

    #[test]
    fn replayed_lines_are_dimmed_with_their_date_and_history_pages_back() {
        let mut h = Harness::new();
        let opts = switchboard::core::HistoryOptions {
            on_join: 2,
            ..Default::default()
        };
        // 2026-12-03 20:00:00 UTC.
        h.server
            .enable_history(opts, h.now, 1_796_328_000_000, Vec::new());
        let mut log = Vec::new();
        let alice = h.connect("alice");
        h.type_line(alice, "/join rust");
        run_store(&mut h, &mut log);
        for text in ["one", "two", "three"] {
            h.type_line(alice, text);
            run_store(&mut h, &mut log);
        }
        let bob = h.connect("bob");
        h.screen(bob);
        h.type_line(bob, "/join rust");
        run_store(&mut h, &mut log);
        let lines = std::mem::take(&mut h.users[bob].2);
        let history: Vec<&str> = lines
            .iter()
            .filter(|l| l.kind == Kind::History)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(
            history,
            [
                "[2026-12-03 20:00:00] #rust <alice> two",
                "[2026-12-03 20:00:00] #rust <alice> three"
            ]
        );
        assert!(lines
            .iter()
            .any(|l| l.text == "* older messages of #rust: /history [N]"));
        let replayed = lines.iter().find(|l| l.kind == Kind::History);
        // Their own date, not the time they were shown.
        assert_eq!(
            replayed
                .map(|l| l.stamp(std::time::SystemTime::now()))
                .as_deref(),
            Some("")
        );
        h.type_line(bob, "/history 5");
        run_store(&mut h, &mut log);
        assert_eq!(
            h.screen(bob),
            [
                "[2026-12-03 20:00:00] #rust <alice> one",
                "* that is all #rust has stored"
            ]
        );
    }

    #[test]
    fn mentions_are_marked() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.type_line(alice, "/join rust");
        h.type_line(bob, "/join rust");
        h.screen(alice);
        h.type_line(bob, "alice: look");
        let lines = std::mem::take(&mut h.users[alice].2);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].kind, Kind::Mention);
    }

    #[test]
    fn a_taken_nick_falls_back_to_the_next_and_then_underscores() {
        let mut h = Harness::new();
        h.connect("alice");
        h.connect("bob");
        let second = h.connect_with(Setup {
            nicks: vec!["Alice".into(), "BOB".into()],
            ..Setup::default()
        });
        assert_eq!(
            h.screen(second),
            [
                "!! sign-in failed: nick `Alice` is taken (NickTaken, code 21)",
                "* trying `BOB`",
                "!! sign-in failed: nick `BOB` is taken (NickTaken, code 21)",
                "* trying `Alice_`",
                "* signed in as Alice_; /help lists the commands"
            ]
        );
        assert_eq!(h.session(second).prompt(), "Alice_> ");
    }

    #[test]
    fn a_taken_nick_can_be_replaced() {
        let mut h = Harness::new();
        for nick in ["alice", "Alice_", "Alice__", "Alice___"] {
            h.connect(nick);
        }
        let second = h.connect("Alice");
        let shown = h.screen(second);
        assert_eq!(
            shown.last().map(String::as_str),
            Some(
                "* pick another nick with /nick NAME, quickly: servers close a connection \
                 that does not sign in (10 s by default); this client then connects again \
                 with it"
            ),
            "{shown:?}"
        );
        assert_eq!(shown.len(), 8, "{shown:?}");
        assert_eq!(h.session(second).prompt(), "pick a nick with /nick NAME> ");
        h.type_line(second, "/join rust");
        assert_eq!(
            h.screen(second),
            ["!! not signed in yet: pick a nick with /nick NAME"]
        );
        h.type_line(second, "/nick alice2");
        assert_eq!(
            h.screen(second),
            [
                "* asking for `alice2`",
                "* signed in as alice2; /help lists the commands"
            ]
        );
        h.type_line(second, "/nick alice2");
        assert_eq!(h.screen(second), ["* you are already alice2"]);
        h.type_line(second, "/nick carol");
        assert_eq!(h.screen(second), ["* you are now known as carol"]);
        assert_eq!(h.session(second).prompt(), "carol> ");
    }

    #[test]
    fn current_room_follows_join_switch_and_leave() {
        let mut h = Harness::new();
        let a = h.connect("alice");
        h.type_line(a, "say where?");
        h.type_line(a, "/join one");
        h.type_line(a, "/join two");
        assert_eq!(h.session(a).prompt(), "alice #two> ");
        h.screen(a);
        h.type_line(a, "/switch ONE");
        assert_eq!(h.screen(a), ["* now talking in #one"]);
        h.type_line(a, "here");
        assert_eq!(h.screen(a), ["#one <alice> here"]);
        h.type_line(a, "/r three");
        assert_eq!(h.screen(a), ["!! not in #three: /join #three first"]);
        h.type_line(a, "/leave");
        assert_eq!(h.screen(a), ["* you left #one", "* now talking in #two"]);
        h.type_line(a, "/leave two bye now");
        assert_eq!(
            h.screen(a),
            [
                "* you left #two (bye now)",
                "* not in any room now: /join ROOM"
            ]
        );
        h.type_line(a, "anyone?");
        assert_eq!(h.screen(a), ["!! not in a room: /join ROOM first"]);
        h.type_line(a, "/leave");
        assert_eq!(h.screen(a), ["!! not in a room: /leave ROOM"]);
    }

    #[test]
    fn lines_typed_before_the_join_is_answered_go_to_the_new_room() {
        let mut h = Harness::new();
        let a = h.connect("alice");
        h.type_line(a, "/join Rust");
        h.screen(a);
        let now = h.now;
        let session = &mut h.users[a].1;
        assert!(session.handle_line("/join go", now).is_empty());
        assert_eq!(session.prompt(), "alice #go> ");
        assert!(session.handle_line("first!", now).is_empty());
        h.pump();
        assert_eq!(
            h.screen(a),
            [
                "* you joined #go",
                "* #go (1): @alice",
                "#go <alice> first!"
            ]
        );
        // A refused join goes back to the room that was current.
        h.type_line(a, "/switch rust");
        h.type_line(a, "/join no!pe");
        let shown = h.screen(a);
        assert!(shown[1].starts_with("!! join failed: invalid room `no!pe`"));
        assert_eq!(shown[2], "* still talking in #Rust");
        assert_eq!(h.session(a).prompt(), "alice #Rust> ");
        // Joining a room already joined just makes it current.
        h.type_line(a, "/join GO");
        assert_eq!(
            h.screen(a),
            ["!! join failed: already in `GO` (AlreadyInRoom, code 32)"]
        );
        assert_eq!(h.session(a).prompt(), "alice #go> ");
        h.type_line(a, "x");
        assert_eq!(h.screen(a), ["#go <alice> x"]);
    }

    #[test]
    fn errors_from_the_server_are_shown() {
        let mut h = Harness::new();
        let a = h.connect("alice");
        h.screen(a);
        h.type_line(a, "/leave nowhere");
        assert_eq!(
            h.screen(a),
            ["!! leave failed: not in `nowhere` (NotInRoom, code 31)"]
        );
        h.type_line(a, "/join bad!room");
        let shown = h.screen(a);
        assert_eq!(shown.len(), 1);
        assert!(shown[0].starts_with("!! join failed: invalid room `bad!room`"));
        assert!(shown[0].ends_with("(InvalidRoom, code 30)"));
        h.type_line(a, "/msg nobody hi");
        assert_eq!(
            h.screen(a),
            ["!! direct message failed: no one is called `nobody` (NoSuchNick, code 22)"]
        );
        h.type_line(a, "/bogus");
        assert_eq!(
            h.screen(a),
            ["!! unknown command /bogus; /help lists the commands"]
        );
    }

    #[test]
    fn direct_messages_both_ways() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.screen(alice);
        h.screen(bob);
        h.type_line(alice, "/msg BOB psst");
        assert_eq!(h.screen(alice), ["-> bob: psst"]);
        assert_eq!(h.screen(bob), ["<- alice: psst"]);
    }

    #[test]
    fn lists_and_nick_changes() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.type_line(alice, "/rooms");
        assert_eq!(
            h.screen(alice).last().map(String::as_str),
            Some("* no rooms yet: /join ROOM makes one")
        );
        h.type_line(alice, "/join rust");
        h.type_line(bob, "/join rust");
        h.type_line(bob, "/join go");
        h.screen(alice);
        h.type_line(alice, "/who");
        assert_eq!(h.screen(alice), ["* #rust (2): @alice, bob"]);
        h.type_line(alice, "/who go");
        assert_eq!(h.screen(alice), ["* #go (1): @bob"]);
        h.type_line(alice, "/rooms");
        assert_eq!(
            h.screen(alice),
            ["* 2 rooms:", "    #go    1 member", "    #rust  2 members"]
        );
        h.type_line(bob, "/nick robert");
        assert_eq!(h.screen(alice), ["* bob is now known as robert"]);
        assert_eq!(
            h.screen(bob).last().map(String::as_str),
            Some("* you are now known as robert")
        );
        h.type_line(alice, "/ping");
        let shown = h.screen(alice);
        assert!(
            shown[0].starts_with("* pong from the server in "),
            "{shown:?}"
        );
    }

    /// alice creates #rust (so is its operator) and bob joins it; screens are cleared.
    fn alice_and_bob_in_rust() -> (Harness, usize, usize) {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.type_line(alice, "/join rust");
        h.type_line(bob, "/join rust");
        h.screen(alice);
        h.screen(bob);
        (h, alice, bob)
    }

    #[test]
    fn a_keyed_room_wants_its_key_and_invitations_are_shown() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        let carol = h.connect("carol");
        h.type_line(alice, "/join rust");
        for who in [alice, bob, carol] {
            h.screen(who);
        }
        h.type_line(alice, "/mode +k s3cret");
        assert_eq!(h.screen(alice), ["* you set +k s3cret on #rust"]);
        h.type_line(bob, "/join rust");
        assert_eq!(
            h.screen(bob),
            ["!! join failed: the right key is needed to join `rust` (BadRoomKey, code 37)"]
        );
        assert!(h.session(bob).client.room("rust").is_none());
        h.type_line(bob, "/join #rust s3cret");
        assert_eq!(
            h.screen(bob),
            ["* you joined #rust", "* #rust (2): @alice, bob"]
        );
        assert_eq!(h.session(bob).prompt(), "bob #rust> ");

        h.type_line(alice, "/mode -k");
        h.type_line(alice, "/ban carol");
        h.type_line(alice, "/rules");
        assert_eq!(
            h.screen(alice),
            [
                "* bob joined #rust",
                "* you set -k on #rust",
                "* you set +b carol!*@* on #rust",
                "* rules of #rust: +n, bans: carol!*@*"
            ]
        );
        assert_eq!(
            h.screen(bob),
            [
                "* alice set -k on #rust",
                "* alice set +b carol!*@* on #rust"
            ]
        );

        h.type_line(alice, "/join go");
        h.type_line(alice, "/mode +i");
        h.type_line(carol, "/join go");
        assert!(h.session(carol).client.room("go").is_none());
        h.type_line(alice, "/invite bob");
        assert_eq!(
            h.screen(alice)[2..],
            ["* you set +i on #go", "* you invited bob to #go"]
        );
        assert_eq!(h.screen(bob), ["* alice invites you to #go (/join #go)"]);
        h.type_line(bob, "/join go");
        assert_eq!(
            h.screen(bob),
            ["* you joined #go", "* #go (2): @alice, bob"]
        );
    }

    #[test]
    fn topics_on_join_on_change_and_on_request() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.type_line(alice, "/join rust");
        h.type_line(alice, "/topic");
        assert_eq!(
            h.screen(alice).last().map(String::as_str),
            Some("* #rust has no topic; /topic TEXT sets one")
        );
        h.type_line(alice, "/topic all  things Rust");
        assert_eq!(
            h.screen(alice),
            ["* you set the topic of #rust: all  things Rust"]
        );
        h.type_line(bob, "/join rust");
        assert_eq!(
            h.screen(bob)[1..],
            [
                "* you joined #rust",
                "* #rust (2): @alice, bob",
                "* topic of #rust: all  things Rust (set by alice)"
            ]
        );
        h.type_line(bob, "/topic");
        assert_eq!(h.screen(bob), ["* topic of #rust: all  things Rust"]);
        h.type_line(bob, "/topic 1.85 is out");
        assert_eq!(
            h.screen(alice),
            [
                "* bob joined #rust",
                "* bob set the topic of #rust: 1.85 is out"
            ]
        );
        assert_eq!(h.screen(bob), ["* you set the topic of #rust: 1.85 is out"]);
        h.type_line(bob, "/topic -");
        assert_eq!(h.screen(alice), ["* bob cleared the topic of #rust"]);
        h.type_line(bob, "/topic");
        assert_eq!(
            h.screen(bob),
            [
                "* you cleared the topic of #rust",
                "* #rust has no topic; /topic TEXT sets one"
            ]
        );
    }

    #[test]
    fn the_topic_lock_keeps_others_from_the_topic() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/lock");
        assert_eq!(h.screen(alice), ["* you lock the topic of #rust"]);
        assert_eq!(h.screen(bob), ["* alice locks the topic of #rust"]);
        h.type_line(bob, "/topic mine now");
        assert_eq!(
            h.screen(bob),
            ["!! topic change failed: only operators may set the topic of `rust` (NotOperator, code 35)"]
        );
        h.type_line(alice, "/lock");
        assert_eq!(h.screen(alice), ["* the topic of #rust is already locked"]);
        assert!(h.screen(bob).is_empty());
        h.type_line(alice, "/unlock");
        assert_eq!(h.screen(bob), ["* alice unlocks the topic of #rust"]);
        h.type_line(alice, "/unlock");
        assert_eq!(
            h.screen(alice),
            [
                "* you unlock the topic of #rust",
                "* the topic of #rust is not locked"
            ]
        );
        h.type_line(bob, "/lock");
        assert_eq!(
            h.screen(bob),
            ["!! mode change failed: not an operator of `rust` (NotOperator, code 35)"]
        );
        assert!(h.session(bob).mode_checks.is_empty());
    }

    #[test]
    fn operators_and_voice_are_given_and_taken() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/op bob");
        assert_eq!(
            h.screen(alice),
            ["* you give operator status to bob in #rust"]
        );
        assert_eq!(
            h.screen(bob),
            ["* alice gives operator status to you in #rust"]
        );
        h.type_line(alice, "/op BOB");
        assert_eq!(h.screen(alice), ["* bob is already an operator of #rust"]);
        h.type_line(bob, "/who");
        assert_eq!(h.screen(bob), ["* #rust (2): @alice, @bob"]);
        h.type_line(bob, "/deop alice");
        assert_eq!(
            h.screen(alice),
            ["* bob takes operator status from you in #rust"]
        );
        h.type_line(bob, "/voice alice");
        h.type_line(bob, "/devoice alice");
        h.type_line(bob, "/devoice alice");
        assert_eq!(
            h.screen(bob),
            [
                "* you take operator status from alice in #rust",
                "* you give voice to alice in #rust",
                "* you take voice from alice in #rust",
                "* alice has no voice in #rust"
            ]
        );
        assert_eq!(
            h.screen(alice),
            [
                "* bob gives voice to you in #rust",
                "* bob takes voice from you in #rust"
            ]
        );
        h.type_line(bob, "/voice alice");
        h.type_line(alice, "/who");
        assert_eq!(
            h.screen(alice),
            [
                "* bob gives voice to you in #rust",
                "* #rust (2): +alice, @bob"
            ]
        );
        h.type_line(alice, "/op alice");
        assert_eq!(
            h.screen(alice),
            ["!! mode change failed: not an operator of `rust` (NotOperator, code 35)"]
        );
        h.type_line(bob, "/op nobody");
        assert_eq!(
            h.screen(bob)[1..],
            ["!! mode change failed: no one is called `nobody` (NoSuchNick, code 22)"]
        );
        assert!(h.session(alice).mode_checks.is_empty());
        assert!(h.session(bob).mode_checks.is_empty());
    }

    #[test]
    fn a_kick_out_of_the_current_room_is_like_leaving_it() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(bob, "/join go");
        h.type_line(bob, "/switch rust");
        h.type_line(bob, "/kick alice");
        h.screen(alice);
        assert_eq!(
            h.screen(bob).last().map(String::as_str),
            Some("!! kick failed: not an operator of `rust` (NotOperator, code 35)")
        );
        h.type_line(alice, "/kick bob  too loud");
        assert_eq!(
            h.screen(alice),
            ["* you kicked bob out of #rust (too loud)"]
        );
        assert_eq!(
            h.screen(bob),
            [
                "* you were kicked out of #rust by alice (too loud)",
                "* now talking in #go"
            ]
        );
        assert_eq!(h.session(bob).prompt(), "bob #go> ");
        h.type_line(bob, "still here");
        assert_eq!(h.screen(bob), ["#go <bob> still here"]);
        assert!(h.screen(alice).is_empty());
        h.type_line(bob, "/kick bob");
        assert_eq!(
            h.screen(bob),
            [
                "* you kicked yourself out of #go",
                "* not in any room now: /join ROOM"
            ]
        );
        assert_eq!(h.session(bob).prompt(), "bob> ");
        h.type_line(alice, "/kick bob");
        assert_eq!(
            h.screen(alice),
            ["!! kick failed: `bob` is not in `rust` (TargetNotInRoom, code 36)"]
        );
    }

    #[test]
    fn a_kick_out_of_another_room_keeps_the_current_one() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/join go");
        h.type_line(bob, "/join go");
        h.screen(bob);
        h.type_line(alice, "/switch rust");
        h.type_line(alice, "/kick bob");
        h.type_line(alice, "/switch go");
        h.type_line(alice, "/kick bob");
        let shown = h.screen(bob);
        assert_eq!(
            shown,
            [
                "* you were kicked out of #rust by alice",
                "* you were kicked out of #go by alice",
                "* not in any room now: /join ROOM"
            ]
        );
    }

    #[test]
    fn away_shows_in_replies_prompt_member_lists_and_whois() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/away gone for lunch");
        assert_eq!(
            h.screen(alice),
            ["* you are marked away: gone for lunch; /away alone marks you back"]
        );
        assert_eq!(h.session(alice).prompt(), "alice (away) #rust> ");
        h.type_line(bob, "/msg alice you there?");
        assert_eq!(
            h.screen(bob),
            ["-> alice: you there?", "* alice is away: gone for lunch"]
        );
        h.type_line(bob, "/who");
        assert_eq!(h.screen(bob), ["* #rust (2): @alice (away), bob"]);
        h.type_line(bob, "said at zero");
        h.now += Duration::from_secs(185);
        h.type_line(alice, "/whois Bob");
        h.type_line(bob, "/whois alice");
        assert_eq!(
            h.screen(alice)[2..],
            ["* whois bob:", "    rooms  #rust", "    idle   3 min 5 s"]
        );
        let shown = h.screen(bob);
        assert_eq!(shown[1..3], ["* whois alice:", "    rooms  @#rust"]);
        assert!(shown[3].starts_with("    idle   "), "{shown:?}");
        assert_eq!(shown[4..], ["    away   gone for lunch"]);
        h.type_line(alice, "/back");
        assert_eq!(h.screen(alice), ["* you are no longer marked away"]);
        assert_eq!(h.session(alice).prompt(), "alice #rust> ");
        h.type_line(bob, "/msg alice welcome back");
        assert_eq!(h.screen(bob), ["-> alice: welcome back"]);
        h.type_line(bob, "/whois nobody");
        assert_eq!(
            h.screen(bob),
            ["!! whois failed: no one is called `nobody` (NoSuchNick, code 22)"]
        );
    }

    #[test]
    fn room_commands_need_a_room() {
        let mut h = Harness::new();
        let a = h.connect("alice");
        h.screen(a);
        for line in [
            "/topic",
            "/topic x",
            "/kick bob",
            "/op bob",
            "/lock",
            "/unlock",
        ] {
            h.type_line(a, line);
            assert_eq!(
                h.screen(a),
                ["!! not in a room: /join ROOM first"],
                "{line}"
            );
        }
    }

    #[test]
    fn quit_is_answered_with_a_bye() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.type_line(alice, "/join rust");
        h.type_line(bob, "/join rust");
        h.screen(alice);
        h.type_line(bob, "/quit gotta go");
        assert!(h.session(bob).quit_requested());
        assert!(h.session(bob).is_closed());
        assert!(h.session(bob).ended_cleanly());
        assert_eq!(
            h.screen(bob).last().map(String::as_str),
            Some("* disconnected. Bye!")
        );
        assert_eq!(h.screen(alice), ["* bob left #rust (quit: gotta go)"]);
        assert!(h.session(bob).poll_timeout().is_none());
    }

    #[test]
    fn a_server_bye_is_an_error() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        h.screen(alice);
        h.server.shutdown(h.now);
        h.pump();
        assert!(h.session(alice).is_closed());
        assert!(!h.session(alice).quit_requested());
        assert!(!h.session(alice).ended_cleanly());
        assert_eq!(
            h.screen(alice),
            ["!! the server ended the session: server shutting down (Shutdown, code 54)"]
        );
    }

    #[test]
    fn autojoin_waits_for_the_welcome() {
        let mut h = Harness::new();
        let id = h.server.open(h.now);
        h.users
            .push((id, Session::new("alice", vec!["rust".into()]), Vec::new()));
        h.pump();
        assert_eq!(
            h.screen(0),
            [
                "* signed in as alice; /help lists the commands",
                "* you joined #rust",
                "* #rust (1): @alice"
            ]
        );
    }

    #[test]
    fn a_silent_server_is_given_up_on() {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        h.screen(alice);
        let session = &mut h.users[alice].1;
        let at = session.poll_timeout().expect("a deadline once signed in");
        assert!(session
            .handle_timeout(at - Duration::from_millis(1))
            .is_empty());
        let lines = session.handle_timeout(at);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["!! no word from the server for 90 s; giving up on it"]
        );
        assert!(session.is_closed());
        assert!(!session.ended_cleanly());
    }

    #[test]
    fn a_broken_server_is_a_decode_error() {
        let mut s = Session::new("alice", Vec::new());
        // A frame with an unknown type code.
        let lines = s.handle_input(&[0, 0, 0, 1, 0x7f], Instant::now());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].kind, Kind::Error);
        assert_eq!(
            lines[0].text,
            "!! protocol error from the server: unknown packet type code 0x7f"
        );
        assert!(s.is_closed());
        assert!(!s.ended_cleanly());
    }

    #[test]
    fn a_wrong_or_missing_password_says_so_and_is_final() {
        let mut config = Config::default();
        config.password = Some("sesame".into());
        config.msg_rate = 0;
        let mut h = Harness::with_config(config.clone());
        let none = h.connect("alice");
        let shown = h.screen(none);
        assert_eq!(
            shown.get(1).map(String::as_str),
            Some("* this server wants a password: give it with --password or SWITCHBOARD_PASSWORD"),
            "{shown:?}"
        );
        assert!(
            !shown.iter().any(|l| l.contains("pick another nick")),
            "{shown:?}"
        );
        assert_eq!(h.session(none).end(), End::Fatal);
        let wrong = h.connect_with(Setup {
            nicks: vec!["bob".into()],
            password: Some("open".into()),
            ..Setup::default()
        });
        let shown = h.screen(wrong);
        assert!(
            shown.iter().any(
                |l| l == "* the password was refused: check --password or SWITCHBOARD_PASSWORD"
            ),
            "{shown:?}"
        );
        assert_eq!(h.session(wrong).end(), End::Fatal);
        let right = h.connect_with(Setup {
            nicks: vec!["carol".into()],
            password: Some("sesame".into()),
            ..Setup::default()
        });
        assert_eq!(
            h.screen(right),
            ["* signed in as carol; /help lists the commands"]
        );
    }

    #[test]
    fn something_else_than_a_switchboard_server_is_named() {
        let cases: [(&[u8], &str); 4] = [
            (b"HTTP/1.1 400 Bad Request\r\n\r\n", "it answered HTTP"),
            (b"SSH-2.0-OpenSSH_9.6\r\n", "it answered SSH"),
            (
                b":irc.example.org NOTICE * :*** Looking up your hostname\r\n",
                "it is an IRC server: use an IRC client",
            ),
            (b"220 smtp ready\r\n", "it answered `220 smtp ready`"),
        ];
        for (bytes, what) in cases {
            let mut s = Session::new("alice", Vec::new());
            let lines = s.handle_input(bytes, Instant::now());
            let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, [format!("!! not a Switchboard server: {what}")]);
            assert!(s.is_closed());
            assert_eq!(s.end(), End::Fatal);
        }
    }

    #[test]
    fn after_a_restart_the_next_session_rejoins_the_rooms() {
        let mut h = Harness::new();
        let a = h.connect_with(Setup {
            nicks: vec!["alice".into(), "alice2".into()],
            ..Setup::default()
        });
        h.type_line(a, "/join one");
        h.type_line(a, "/join two");
        h.type_line(a, "/switch one");
        h.type_line(a, "/nick alicia");
        let setup = h.session(a).successor();
        assert_eq!(setup.nicks, ["alicia", "alice", "alice2"]);
        assert_eq!(setup.autojoin, ["one", "two"]);
        assert_eq!(setup.current.as_deref(), Some("one"));
        assert_eq!(h.session(a).end(), End::Lost);
        // A new server (the old one restarted), and the next session on it.
        let mut h = Harness::new();
        let a = h.connect_with(setup);
        assert_eq!(
            h.screen(a),
            [
                "* signed in as alicia; /help lists the commands",
                "* you joined #two",
                "* #two (1): @alicia",
                "* you joined #one",
                "* #one (1): @alicia"
            ]
        );
        assert_eq!(h.session(a).prompt(), "alicia #one> ");
    }

    #[test]
    fn a_session_that_never_got_in_keeps_its_autojoins() {
        let s = Session::start(Setup {
            nicks: vec!["alice".into()],
            autojoin: vec!["rust".into()],
            ..Setup::default()
        });
        assert_eq!(s.successor().autojoin, ["rust"]);
        assert!(!s.signed_in());
    }

    #[test]
    fn ctcp_version_and_ping_are_shown_and_answered_once() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(bob, "/msg alice \u{1}VERSION\u{1}");
        assert_eq!(
            h.screen(alice),
            [
                "* bob asked for your client's version (CTCP VERSION); answered",
                &format!(
                    "-> bob: CTCP VERSION Switchboard chat-client {}",
                    env!("CARGO_PKG_VERSION")
                )
            ]
        );
        // Bob is a native client too: he sees the answer as an answer.
        let shown = h.screen(bob);
        assert_eq!(
            shown.last().map(String::as_str),
            Some(
                format!(
                    "* CTCP VERSION answer from alice: Switchboard chat-client {}",
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            ),
            "{shown:?}"
        );
        h.type_line(bob, "/msg alice \u{1}PING 12345\u{1}");
        // Bob's client answers alice's answer, taking it for a request (as IRC clients
        // do); alice takes that for the answer it is and stops there: no ping-pong.
        assert_eq!(
            h.screen(alice),
            [
                "* bob asked for your client's ping reply (CTCP PING); answered",
                "-> bob: CTCP PING 12345",
                "* CTCP PING answer from bob: 12345"
            ]
        );
        assert_eq!(
            h.screen(bob),
            [
                "-> alice: CTCP PING 12345",
                "* alice asked for your client's ping reply (CTCP PING); answered",
                "-> alice: CTCP PING 12345"
            ]
        );
        h.type_line(bob, "/msg alice \u{1}TIME\u{1}");
        assert_eq!(h.screen(alice), ["* bob sent CTCP TIME; not answered"]);
    }

    #[test]
    fn irc_formatting_becomes_spans_of_plain_text() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(bob, "a \u{2}bold\u{2} and \u{3}4red\u{3} word");
        let lines = std::mem::take(&mut h.users[alice].2);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "#rust <bob> a bold and red word");
        let spans: Vec<&str> = lines[0]
            .spans
            .iter()
            .map(|s| &lines[0].text[s.start..s.end])
            .collect();
        assert_eq!(spans, ["bold", "red"]);
        assert!(lines[0].spans[0].style.bold);
        assert_eq!(lines[0].spans[1].style.fg, Some(4));
    }

    #[test]
    fn tab_offers_commands_rooms_and_the_current_rooms_nicks() {
        let (mut h, alice, _bob) = alice_and_bob_in_rust();
        h.connect("bobby");
        h.type_line(2, "/join rust");
        h.type_line(alice, "/join go");
        h.type_line(alice, "/switch rust");
        let s = h.session(alice);
        assert_eq!(s.complete("b", true), ["bob", "bobby"]);
        assert_eq!(s.complete("BOBB", false), ["bobby"]);
        assert!(s.complete("al", true).is_empty(), "not oneself");
        assert_eq!(s.complete("/jo", true), ["/join"]);
        assert!(s.complete("/jo", false).is_empty());
        assert_eq!(s.complete("/who", true), ["/who", "/whois"]);
        assert_eq!(s.complete("#", false), ["#go", "#rust"]);
    }

    #[test]
    fn query_sends_plain_lines_to_one_person() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/query bob");
        assert_eq!(
            h.screen(alice),
            ["* talking to bob: plain lines go to them; /query alone ends it"]
        );
        assert_eq!(h.session(alice).prompt(), "alice -> bob> ");
        h.type_line(alice, "psst");
        assert_eq!(h.screen(alice), ["-> bob: psst"]);
        assert_eq!(h.screen(bob), ["<- alice: psst"]);
        h.type_line(alice, "/query");
        assert_eq!(h.screen(alice), ["* now talking in #rust"]);
        h.type_line(alice, "all");
        assert_eq!(h.screen(bob), ["#rust <alice> all"]);
    }

    #[test]
    fn operator_commands_take_a_room() {
        let (mut h, alice, bob) = alice_and_bob_in_rust();
        h.type_line(alice, "/join go");
        h.type_line(bob, "/join go");
        h.screen(alice);
        h.screen(bob);
        h.type_line(alice, "/op #rust bob");
        assert_eq!(
            h.screen(alice),
            ["* you give operator status to bob in #rust"]
        );
        h.screen(bob);
        h.type_line(alice, "/topic #rust new");
        assert_eq!(h.screen(bob), ["* alice set the topic of #rust: new"]);
        h.type_line(alice, "/kick #rust bob out");
        assert_eq!(
            h.screen(bob),
            ["* you were kicked out of #rust by alice (out)"]
        );
        h.screen(alice);
        h.type_line(alice, "/deop alice");
        assert_eq!(h.screen(alice), ["* you give up operator status in #go"]);
    }
}
