//! The chat session without I/O: user lines and server bytes in, screen lines and bytes out.
//!
//! It wraps the core [`Client`] and adds what only a person needs: a current room for plain
//! lines, another try after a refused nick, ping timing and readable output.

use std::time::Instant;

use bytes::Bytes;
use switchboard::core::packet::client_type;
use switchboard::core::{Client, ClientEvent, ErrorCode, Member};

use crate::command::{self, Command, HELP};
use crate::render::{self, Kind, Line};

/// One user's session with one server.
#[derive(Debug)]
pub struct Session {
    client: Client,
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
}

impl Session {
    /// A session asking for `nick` that joins `autojoin` once signed in.
    pub fn new(nick: &str, autojoin: Vec<String>) -> Self {
        Session {
            client: Client::new(nick),
            current: None,
            autojoin,
            joining: Vec::new(),
            hello_refused: false,
            quit_requested: false,
            clean_end: false,
            pings: Vec::new(),
            next_ping: 1,
        }
    }

    /// The input prompt: nick and current room.
    pub fn prompt(&self) -> String {
        if self.hello_refused {
            return "pick a nick with /nick NAME> ".to_owned();
        }
        let nick = render::clean(self.client.nick());
        match &self.current {
            Some(room) => format!("{nick} {}> ", render::room(room)),
            None => format!("{nick}> "),
        }
    }

    /// Whether the user asked to leave (by /quit, Ctrl-D or Ctrl-C).
    pub fn quit_requested(&self) -> bool {
        self.quit_requested
    }

    /// Whether the session ended as the user asked: a goodbye after a quit.
    pub fn ended_cleanly(&self) -> bool {
        self.clean_end
    }

    /// Whether the session is over (bye received, protocol broken or the server silent).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
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
        let result = self.client.handle_input(bytes, now);
        // Whatever was whole before a bad frame is still shown.
        let mut lines = self.drain_events(now);
        if let Err(e) = result {
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
            Command::Say(text) => match &self.current {
                Some(room) => {
                    // Shown when the server echoes it back, which confirms it was said.
                    self.client.say(room, &text);
                }
                None => return vec![Line::error("not in a room: /join ROOM first")],
            },
            Command::Join(room) => self.join(room),
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
            Command::Ping => {
                let token = self.next_ping;
                self.next_ping += 1;
                self.pings.push((token, now));
                self.client.ping(token);
            }
            Command::Quit(reason) => self.quit(&reason),
            Command::Help => return HELP.iter().map(|h| Line::new(Kind::Help, *h)).collect(),
        }
        Vec::new()
    }

    /// Joins a room and makes it current at once, so lines typed before the server answers
    /// already go there (the server handles them after the join).
    fn join(&mut self, room: String) {
        let seq = self.client.join(&room);
        let before = self.current.replace(room.clone());
        self.joining.push((seq, room, before));
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

    fn switch(&mut self, room: &str) -> Vec<Line> {
        match self.client.room(room) {
            Some(view) => {
                let name = view.name.clone();
                let line = Line::notice(format!("now talking in {}", render::room(&name)));
                self.current = Some(name);
                vec![line]
            }
            None => vec![Line::error(format!(
                "not in {}: /join {} first",
                render::room(room),
                render::clean(room)
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
        lines
    }

    fn event(&mut self, event: ClientEvent, now: Instant, out: &mut Vec<Line>) {
        let me = self.client.nick().to_owned();
        match event {
            ClientEvent::Welcome { nick, .. } => {
                out.push(Line::notice(format!(
                    "signed in as {}; /help lists the commands",
                    render::clean(&nick)
                )));
                for room in std::mem::take(&mut self.autojoin) {
                    self.join(room);
                }
            }
            ClientEvent::Joined { room, nick } => {
                if render::same(&nick, &me) {
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
                if render::same(&nick, &me) && self.is_current(&room) {
                    self.current = self.client.rooms().last().map(|v| v.name.clone());
                    out.push(match &self.current {
                        Some(next) => {
                            Line::notice(format!("now talking in {}", render::room(next)))
                        }
                        None => Line::notice("not in any room now: /join ROOM"),
                    });
                }
            }
            ClientEvent::Message {
                room, from, text, ..
            } => out.push(render::message(&room, &from, &text, &me)),
            ClientEvent::Direct { from, to, text } => {
                out.push(render::direct(&from, &to, &text, &me))
            }
            ClientEvent::RoomList(rooms) => out.extend(render::room_list(&rooms)),
            ClientEvent::Members { room, members } => {
                let nicks: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let prefix = if m.is_operator() {
                            "@"
                        } else if m.flags & Member::VOICE != 0 {
                            "+"
                        } else {
                            ""
                        };
                        format!("{prefix}{}", m.nick)
                    })
                    .collect();
                out.push(render::members(&room, &nicks))
            }
            ClientEvent::Topic { room, topic, by } => out.push(Line::notice(if by.is_empty() {
                format!(
                    "topic of {}: {}",
                    render::room(&room),
                    render::clean(&topic)
                )
            } else {
                format!(
                    "{} set the topic of {}: {}",
                    render::clean(&by),
                    render::room(&room),
                    render::clean(&topic)
                )
            })),
            ClientEvent::Kicked {
                room,
                nick,
                by,
                reason,
            } => out.push(Line::notice(format!(
                "{} was kicked from {} by {} ({})",
                render::clean(&nick),
                render::room(&room),
                render::clean(&by),
                render::clean(&reason)
            ))),
            ClientEvent::Away { nick, message } => out.push(Line::notice(if message.is_empty() {
                format!("{} is not away", render::clean(&nick))
            } else {
                format!(
                    "{} is away: {}",
                    render::clean(&nick),
                    render::clean(&message)
                )
            })),
            ClientEvent::Whois {
                nick,
                away,
                idle_secs,
                rooms,
            } => {
                let rooms: Vec<String> = rooms.iter().map(|r| render::room(&r.nick)).collect();
                out.push(Line::notice(format!(
                    "{}: in {}; idle {idle_secs} s{}",
                    render::clean(&nick),
                    rooms.join(", "),
                    if away.is_empty() {
                        String::new()
                    } else {
                        format!("; away: {}", render::clean(&away))
                    }
                )))
            }
            ClientEvent::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            } => out.push(Line::notice(format!(
                "{} set {}{} {} in {}",
                render::clean(&by),
                if on { '+' } else { '-' },
                mode.letter() as char,
                render::clean(&nick),
                render::room(&room)
            ))),
            ClientEvent::NickChanged { old, new } => {
                out.push(render::nick_changed(&old, &new, &me))
            }
            ClientEvent::Pong { token } => {
                if let Some(pos) = self.pings.iter().position(|(t, _)| *t == token) {
                    let (_, sent) = self.pings.swap_remove(pos);
                    let ms = now.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                    out.push(Line::notice(format!("pong from the server in {ms:.2} ms")));
                }
            }
            ClientEvent::Error {
                code,
                request_type,
                request_seq,
                message,
            } => {
                out.push(render::server_error(code, request_type, &message));
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
                    self.hello_refused = true;
                    out.push(Line::notice("pick another nick with /nick NAME"));
                }
            }
            ClientEvent::Bye { code, reason } => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchboard::core::{Config, ConnId, Server};

    /// A core server and sessions wired together in memory.
    struct Harness {
        server: Server,
        now: Instant,
        users: Vec<(ConnId, Session, Vec<Line>)>,
    }

    impl Harness {
        fn new() -> Self {
            let config = Config {
                msg_rate: 0,
                ..Config::default()
            };
            Harness {
                server: Server::new(config),
                now: Instant::now(),
                users: Vec::new(),
            }
        }

        fn connect(&mut self, nick: &str) -> usize {
            let id = self.server.open(self.now);
            self.users
                .push((id, Session::new(nick, Vec::new()), Vec::new()));
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
                while let Some(id) = self.server.poll_close() {
                    while let Some(t) = self.server.take_transmit(id) {
                        self.deliver(id, &t.data);
                    }
                    self.server.handle_close(id, self.now);
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
            ["* you joined #rust", "* #rust: @alice (1)"]
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
    fn a_taken_nick_can_be_replaced() {
        let mut h = Harness::new();
        h.connect("alice");
        let second = h.connect("Alice");
        assert_eq!(
            h.screen(second),
            [
                "!! sign-in failed: nick `Alice` is taken (NickTaken, code 21)",
                "* pick another nick with /nick NAME"
            ]
        );
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
        assert_eq!(h.screen(a), ["!! not in #three: /join three first"]);
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
                "* #go: @alice (1)",
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
        assert_eq!(h.screen(alice), ["* #rust: @alice, bob (2)"]);
        h.type_line(alice, "/who go");
        assert_eq!(h.screen(alice), ["* #go: @bob (1)"]);
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
                "* #rust: @alice (1)"
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
}
