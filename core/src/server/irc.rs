//! The IRC front: lines in, chat operations, IRC replies and numerics out.
//!
//! An IRC channel `#name` is the room `name`; nicknames are shared with native clients.
//! The supported subset is documented in docs/IRC.md.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::chat::{Admit, Fail};
use super::conn::{Phase, Proto};
use super::Server;
use crate::irc::{split_text, write_line, Line, LineDecoder, Message, MAX_LINE};
use crate::name::fold;
use crate::packet::{RoomMode, ServerPacket};
use crate::{ConnId, ErrorCode};

/// The version shown in `002`, `004` and `WHOIS`.
const VERSION: &str = concat!("switchboard-", env!("CARGO_PKG_VERSION"));

/// IRC-only state of one connection.
#[derive(Debug, Default)]
pub(crate) struct IrcSession {
    pub lines: LineDecoder,
    /// The nick asked for before registration.
    nick: Option<String>,
    /// User name and real name from `USER`.
    user: Option<(String, String)>,
    password: Option<String>,
    /// Registration waits while capability negotiation is open.
    negotiating: bool,
    /// User mode `i`, recorded and reported; it changes nothing, since `WHO` never lists
    /// users by mask.
    invisible: bool,
}

/// How a notice relayed to a room or a nick reads in IRC, or `None` if IRC has no form of it.
pub(crate) fn relay(packet: &ServerPacket, source: &str, notice: bool) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    let src = Some(source);
    match packet {
        ServerPacket::Joined { room, .. } => {
            write_line(&mut buf, src, "JOIN", &[&chan(room)], false)
        }
        ServerPacket::Left { room, reason, .. } => {
            let chan = chan(room);
            if reason.is_empty() {
                write_line(&mut buf, src, "PART", &[&chan], false);
            } else {
                write_line(&mut buf, src, "PART", &[&chan, reason], true);
            }
        }
        ServerPacket::Message { room, text, .. } => {
            write_text(&mut buf, source, notice, &chan(room), text);
        }
        ServerPacket::Direct { to, text, .. } => write_text(&mut buf, source, notice, to, text),
        ServerPacket::NickChanged { new, .. } => write_line(&mut buf, src, "NICK", &[new], false),
        ServerPacket::Topic { room, topic, .. } => {
            write_line(&mut buf, src, "TOPIC", &[&chan(room), topic], true);
        }
        ServerPacket::Kicked {
            room, nick, reason, ..
        } => write_line(&mut buf, src, "KICK", &[&chan(room), nick, reason], true),
        ServerPacket::ModeChanged {
            room,
            mode,
            on,
            nick,
            ..
        } => {
            let flag = format!("{}{}", if *on { '+' } else { '-' }, mode.letter() as char);
            let chan = chan(room);
            if mode.takes_nick() {
                write_line(&mut buf, src, "MODE", &[&chan, &flag, nick], false);
            } else {
                write_line(&mut buf, src, "MODE", &[&chan, &flag], false);
            }
        }
        _ => return None,
    }
    Some(buf.freeze())
}

/// `PRIVMSG` or `NOTICE` lines carrying `text`, split so each line fits 512 bytes.
fn write_text(buf: &mut BytesMut, source: &str, notice: bool, target: &str, text: &str) {
    let command = if notice { "NOTICE" } else { "PRIVMSG" };
    // ":" source " " command " " target " :" text CR LF
    let overhead = 1 + source.len() + 1 + command.len() + 1 + target.len() + 2 + 2;
    for part in split_text(text, MAX_LINE.saturating_sub(overhead)) {
        write_line(buf, Some(source), command, &[target, part], true);
    }
}

/// The server's keepalive ping.
pub(crate) fn ping(token: u64) -> Bytes {
    Message::new("PING", &[&token.to_string()]).to_bytes()
}

/// The last line before the server closes an IRC connection.
pub(crate) fn error_line(reason: &str) -> Bytes {
    let mut buf = BytesMut::new();
    write_line(
        &mut buf,
        None,
        "ERROR",
        &[&format!("Closing Link: {reason}")],
        true,
    );
    buf.freeze()
}

/// What IRC peers see when someone leaves the server.
pub(crate) fn quit_line(source: &str, reason: &str) -> Bytes {
    let mut buf = BytesMut::new();
    write_line(&mut buf, Some(source), "QUIT", &[reason], true);
    buf.freeze()
}

/// The IRC channel name of a room.
fn chan(room: &str) -> String {
    format!("#{room}")
}

/// A member's prefix in NAMES and WHO: `@` for operators, `+` for voice.
fn prefix(flags: u8) -> &'static str {
    use crate::packet::Member;
    if flags & Member::OPERATOR != 0 {
        "@"
    } else if flags & Member::VOICE != 0 {
        "+"
    } else {
        ""
    }
}

impl Server {
    /// Handles every whole line in `input`.
    pub(super) fn irc_input(&mut self, id: ConnId, mut input: &[u8], now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.phase == Phase::Closing {
                return;
            }
            let Proto::Irc(session) = &mut conn.proto else {
                return;
            };
            match session.lines.decode(&mut input) {
                None => break,
                Some(Line::TooLong) => self.numeric(id, "417", &["Input line was too long"]),
                Some(Line::Text(line)) => {
                    if let Some(msg) = Message::parse(&line) {
                        self.irc_command(id, msg, now);
                    }
                }
            }
            self.close_overflowed();
        }
    }

    fn session(&mut self, id: ConnId) -> Option<&mut IrcSession> {
        match &mut self.conns.get_mut(&id)?.proto {
            Proto::Irc(s) => Some(s),
            _ => None,
        }
    }

    /// Queues one line to a connection; its last parameter is text (`:`-prefixed).
    fn line(&mut self, id: ConnId, source: Option<&str>, command: &str, params: &[&str]) {
        let mut buf = BytesMut::new();
        write_line(&mut buf, source, command, params, true);
        self.conns.send(id, buf.freeze());
    }

    /// Queues a numeric reply: `:server NNN <nick or *> params...`.
    fn numeric(&mut self, id: ConnId, code: &str, params: &[&str]) {
        let nick = match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        };
        let server = self.config.server_name.clone();
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(nick.as_str());
        all.extend_from_slice(params);
        self.line(id, Some(&server), code, &all);
    }

    fn irc_command(&mut self, id: ConnId, msg: Message, now: Instant) {
        let cmd = msg.command.as_str();
        if !matches!(cmd, "PONG" | "QUIT") {
            match self.admit(id, now) {
                Admit::Yes => {}
                Admit::Closed => return,
                Admit::Limited => {
                    let server = self.config.server_name.clone();
                    let nick = self.nick(id);
                    let to = if nick.is_empty() { "*" } else { nick.as_str() };
                    let text = "rate limit exceeded; command dropped";
                    self.line(id, Some(&server), "NOTICE", &[to, text]);
                    return;
                }
            }
        }
        let registered = self.conns.get(&id).is_some_and(|c| c.phase == Phase::Ready);
        let p: Vec<&str> = msg.params.iter().map(String::as_str).collect();
        match cmd {
            "CAP" => self.irc_cap(id, &p),
            "PASS" => self.irc_pass(id, &p, registered),
            "NICK" => self.irc_nick(id, &p, registered),
            "USER" => self.irc_user(id, &p, registered),
            "PING" => match p.first() {
                Some(token) => {
                    let server = self.config.server_name.clone();
                    self.line(id, Some(&server), "PONG", &[&server, token]);
                }
                None => self.numeric(id, "461", &["PING", "Not enough parameters"]),
            },
            "PONG" => {}
            "QUIT" => self.quit(id, p.first().copied().unwrap_or("")),
            _ if !registered => self.numeric(id, "451", &["You have not registered"]),
            "JOIN" => self.irc_join(id, &p),
            "PART" => self.irc_part(id, &p),
            "PRIVMSG" => self.irc_privmsg(id, &p, false, now),
            "NOTICE" => self.irc_privmsg(id, &p, true, now),
            "NAMES" => self.irc_names(id, &p),
            "LIST" => self.irc_list(id, &p),
            "TOPIC" => self.irc_topic(id, &p),
            "WHO" => self.irc_who(id, &p),
            "WHOIS" => self.irc_whois(id, &p, now),
            "AWAY" => self.irc_away(id, &p),
            "KICK" => self.irc_kick(id, &p),
            "MODE" => self.irc_mode(id, &p),
            _ => self.numeric(id, "421", &[cmd, "Unknown command"]),
        }
    }

    fn irc_cap(&mut self, id: ConnId, p: &[&str]) {
        let server = self.config.server_name.clone();
        let nick = match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        };
        let sub = p
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        match sub.as_str() {
            // No capabilities are implemented, so none are offered and any request is refused.
            "LS" | "LIST" => {
                if sub == "LS" {
                    if let Some(s) = self.session(id) {
                        s.negotiating = true;
                    }
                }
                self.line(id, Some(&server), "CAP", &[&nick, &sub, ""]);
            }
            "REQ" => {
                if let Some(s) = self.session(id) {
                    s.negotiating = true;
                }
                let asked = p.get(1).copied().unwrap_or("");
                self.line(id, Some(&server), "CAP", &[&nick, "NAK", asked]);
            }
            "END" => {
                if let Some(s) = self.session(id) {
                    s.negotiating = false;
                }
                self.irc_try_register(id);
            }
            _ => self.numeric(id, "410", &[&sub, "Invalid CAP command"]),
        }
    }

    fn irc_pass(&mut self, id: ConnId, p: &[&str], registered: bool) {
        if registered {
            return self.numeric(id, "462", &["You may not reregister"]);
        }
        match p.first() {
            Some(pass) => {
                let pass = (*pass).to_owned();
                if let Some(s) = self.session(id) {
                    s.password = Some(pass);
                }
            }
            None => self.numeric(id, "461", &["PASS", "Not enough parameters"]),
        }
    }

    fn irc_nick(&mut self, id: ConnId, p: &[&str], registered: bool) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        if registered {
            if let Err(fail) = self.change_nick(id, nick) {
                self.irc_fail(id, &fail, "NICK");
            }
            return;
        }
        if self.check_nick(nick).is_err() {
            return self.numeric(id, "432", &[nick, "Erroneous nickname"]);
        }
        if self
            .registry
            .find_nick(nick)
            .is_some_and(|holder| holder != id)
        {
            return self.numeric(id, "433", &[nick, "Nickname is already in use"]);
        }
        let nick = nick.to_owned();
        if let Some(s) = self.session(id) {
            s.nick = Some(nick);
        }
        self.irc_try_register(id);
    }

    fn irc_user(&mut self, id: ConnId, p: &[&str], registered: bool) {
        if registered {
            return self.numeric(id, "462", &["You may not reregister"]);
        }
        if p.len() < 4 || p[0].is_empty() || p[3].is_empty() {
            return self.numeric(id, "461", &["USER", "Not enough parameters"]);
        }
        // User names reach other clients in sources, so only plain characters are kept.
        let user: String = p[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(16)
            .collect();
        let user = if user.is_empty() {
            "user".to_owned()
        } else {
            user
        };
        let realname = crate::irc::cut(p[3], self.config.max_reason_len as usize).to_owned();
        if let Some(s) = self.session(id) {
            s.user = Some((format!("~{user}"), realname));
        }
        self.irc_try_register(id);
    }

    /// Completes registration once NICK and USER are in and no CAP negotiation is open.
    fn irc_try_register(&mut self, id: ConnId) {
        // Only once: a late CAP END must not register again (and claim the nick the
        // session started with, which may no longer be the connection's).
        if self.conns.get(&id).is_none_or(|c| c.phase != Phase::Hello) {
            return;
        }
        let Some(s) = self.session(id) else {
            return;
        };
        let (Some(nick), Some((user, realname))) = (s.nick.clone(), s.user.clone()) else {
            return;
        };
        if s.negotiating {
            return;
        }
        let given = s.password.clone();
        if let Some(password) = &self.config.password {
            if given.as_deref() != Some(password.as_str()) {
                self.numeric(id, "464", &["Password incorrect"]);
                self.close(id, ErrorCode::BadPassword, "bad password", "");
                return;
            }
        }
        if let Err(fail) = self.register(id, &nick, &user, &realname) {
            if let Some(s) = self.session(id) {
                s.nick = None;
            }
            return self.irc_fail(id, &fail, "NICK");
        }
        self.irc_welcome(id);
    }

    fn irc_welcome(&mut self, id: ConnId) {
        let nick = self.nick(id);
        let source = self.source(id);
        let server = self.config.server_name.clone();
        let c = &self.config;
        let isupport = [
            "CASEMAPPING=ascii".to_owned(),
            "CHANTYPES=#".to_owned(),
            format!("CHANNELLEN={}", c.max_room_len as usize + 1),
            format!("NICKLEN={}", c.max_nick_len),
            format!("TOPICLEN={}", c.max_topic_len),
            format!("KICKLEN={}", c.max_reason_len),
            format!("AWAYLEN={}", c.max_reason_len),
            format!("CHANLIMIT=#:{}", c.max_rooms_per_conn),
            "PREFIX=(ov)@+".to_owned(),
            "CHANMODES=,,,t".to_owned(),
            "NETWORK=Switchboard".to_owned(),
        ];
        let motd = c.motd.clone();
        self.numeric(
            id,
            "001",
            &[&format!("Welcome to the Switchboard network, {source}")],
        );
        self.numeric(
            id,
            "002",
            &[&format!("Your host is {server}, running version {VERSION}")],
        );
        self.numeric(id, "003", &[&format!("This server runs {VERSION}")]);
        self.numeric(id, "004", &[&server, VERSION, "i", "otv", "ov"]);
        let mut tokens: Vec<&str> = isupport.iter().map(String::as_str).collect();
        tokens.push("are supported by this server");
        self.numeric(id, "005", &tokens);
        match motd {
            Some(text) => {
                self.numeric(id, "375", &[&format!("- {server} Message of the day -")]);
                for line in text.lines() {
                    self.numeric(id, "372", &[&format!("- {line}")]);
                }
                self.numeric(id, "376", &["End of /MOTD command."]);
            }
            None => self.numeric(id, "422", &["MOTD File is missing"]),
        }
        let _ = nick;
    }

    /// Replies to a refused operation with the numeric IRC clients expect.
    fn irc_fail(&mut self, id: ConnId, fail: &Fail, command: &str) {
        let t = fail.target.as_str();
        let ch = chan(t);
        match fail.code {
            ErrorCode::InvalidNick => self.numeric(id, "432", &[t, "Erroneous nickname"]),
            ErrorCode::NickTaken => self.numeric(id, "433", &[t, "Nickname is already in use"]),
            ErrorCode::NoSuchNick => self.numeric(id, "401", &[t, "No such nick/channel"]),
            ErrorCode::InvalidRoom | ErrorCode::NoSuchRoom => {
                self.numeric(id, "403", &[&ch, "No such channel"])
            }
            ErrorCode::NotInRoom => self.numeric(id, "442", &[&ch, "You're not on that channel"]),
            ErrorCode::TooManyRooms => {
                self.numeric(id, "405", &[&ch, "You have joined too many channels"])
            }
            ErrorCode::NotOperator => {
                self.numeric(id, "482", &[&ch, "You're not channel operator"])
            }
            ErrorCode::InvalidText => self.numeric(id, "412", &["No text to send"]),
            ErrorCode::AlreadyInRoom => {}
            _ => self.numeric(id, "400", &[command, &fail.message]),
        }
    }

    /// The room name of an IRC channel parameter, or a `403` for one without `#`.
    fn channel<'a>(&mut self, id: ConnId, param: &'a str) -> Option<&'a str> {
        let room = param.strip_prefix('#');
        if room.is_none() {
            self.numeric(id, "403", &[param, "No such channel"]);
        }
        room
    }

    fn irc_join(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["JOIN", "Not enough parameters"]);
        };
        if *list == "0" {
            let rooms = self.rooms_of(id);
            for room in rooms {
                let _ = self.leave(id, &room, "");
            }
            return;
        }
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let Some(room) = self.channel(id, param) else {
                continue;
            };
            match self.join(id, room) {
                Ok(key) => {
                    self.irc_topic_reply(id, &key, false);
                    self.irc_names_reply(id, &key);
                }
                Err(fail) => self.irc_fail(id, &fail, "JOIN"),
            }
        }
    }

    fn irc_part(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["PART", "Not enough parameters"]);
        };
        let reason = p.get(1).copied().unwrap_or("");
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let Some(room) = self.channel(id, param) else {
                continue;
            };
            if let Err(fail) = self.leave(id, room, reason) {
                let fail = self.room_fail(room, fail);
                self.irc_fail(id, &fail, "PART");
            }
        }
    }

    /// `NotInRoom` for a room that does not exist reads better as `NoSuchRoom`.
    fn room_fail(&self, room: &str, fail: Fail) -> Fail {
        if fail.code == ErrorCode::NotInRoom && self.room_key(room).is_err() {
            Fail {
                code: ErrorCode::NoSuchRoom,
                ..fail
            }
        } else {
            fail
        }
    }

    fn irc_privmsg(&mut self, id: ConnId, p: &[&str], notice: bool, now: Instant) {
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        // A NOTICE never triggers an error reply.
        let Some(targets) = p.first() else {
            if !notice {
                self.numeric(id, "411", &[&format!("No recipient given ({command})")]);
            }
            return;
        };
        let text = p.get(1).copied().unwrap_or("");
        if text.is_empty() {
            if !notice {
                self.numeric(id, "412", &["No text to send"]);
            }
            return;
        }
        for target in targets.split(',').filter(|s| !s.is_empty()) {
            let result = match target.strip_prefix('#') {
                Some(room) => self
                    .say(id, room, text.to_owned(), notice, now)
                    .map_err(|f| self.room_fail(room, f)),
                None => self
                    .whisper(id, target, text.to_owned(), notice, now)
                    .map(|to| {
                        if !notice {
                            self.irc_away_reply(id, to);
                        }
                    }),
            };
            match result {
                Ok(()) => {}
                Err(_) if notice => {}
                Err(fail) if fail.code == ErrorCode::NotInRoom => {
                    self.numeric(id, "404", &[target, "Cannot send to channel"]);
                }
                Err(fail) => self.irc_fail(id, &fail, command),
            }
        }
    }

    /// `301` if `whom` is away.
    fn irc_away_reply(&mut self, id: ConnId, whom: ConnId) {
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        if !c.away.is_empty() {
            let (nick, away) = (c.nick.clone(), c.away.clone());
            self.numeric(id, "301", &[&nick, &away]);
        }
    }

    fn irc_topic_reply(&mut self, id: ConnId, key: &str, always: bool) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let (ch, topic) = (chan(&room.name), room.topic.clone());
        if !topic.is_empty() {
            self.numeric(id, "332", &[&ch, &topic]);
        } else if always {
            self.numeric(id, "331", &[&ch, "No topic is set"]);
        }
    }

    fn irc_names_reply(&mut self, id: ConnId, key: &str) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let ch = chan(&room.name);
        let names: Vec<String> = self
            .members(key)
            .into_iter()
            .map(|m| format!("{}{}", prefix(m.flags), m.nick))
            .collect();
        // Keep each 353 well inside one line.
        let budget = MAX_LINE - 2 - self.config.server_name.len() - ch.len() - 80;
        let mut line = String::new();
        for name in names {
            if !line.is_empty() && line.len() + 1 + name.len() > budget {
                self.numeric(id, "353", &["=", &ch, &line]);
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&name);
        }
        if !line.is_empty() {
            self.numeric(id, "353", &["=", &ch, &line]);
        }
        self.numeric(id, "366", &[&ch, "End of /NAMES list"]);
    }

    fn irc_names(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "366", &["*", "End of /NAMES list"]);
        };
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let key = fold(param.strip_prefix('#').unwrap_or(param));
            if self.registry.room(&key).is_some() && param.starts_with('#') {
                self.irc_names_reply(id, &key);
            } else {
                self.numeric(id, "366", &[param, "End of /NAMES list"]);
            }
        }
    }

    fn irc_list(&mut self, id: ConnId, p: &[&str]) {
        let wanted: Option<Vec<String>> = p.first().map(|list| {
            list.split(',')
                .map(|c| fold(c.strip_prefix('#').unwrap_or(c)))
                .collect()
        });
        let rows: Vec<(String, String, String)> = self
            .registry
            .sorted()
            .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&fold(&r.name))))
            .map(|r| (chan(&r.name), r.members.len().to_string(), r.topic.clone()))
            .collect();
        self.numeric(id, "321", &["Channel", "Users  Name"]);
        for (ch, count, topic) in rows {
            self.numeric(id, "322", &[&ch, &count, &topic]);
        }
        self.numeric(id, "323", &["End of /LIST"]);
    }

    fn irc_topic(&mut self, id: ConnId, p: &[&str]) {
        let Some(param) = p.first() else {
            return self.numeric(id, "461", &["TOPIC", "Not enough parameters"]);
        };
        let Some(room) = self.channel(id, param) else {
            return;
        };
        match p.get(1) {
            None => match self.room_key(room) {
                Ok(key) => self.irc_topic_reply(id, &key, true),
                Err(fail) => self.irc_fail(id, &fail, "TOPIC"),
            },
            Some(topic) => {
                if let Err(fail) = self.set_topic(id, room, topic) {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "TOPIC");
                }
            }
        }
    }

    /// One `352` line for `whom`, seen in `channel` (or `*`) with room flags `flags`.
    fn who_line(&mut self, id: ConnId, channel: &str, whom: ConnId, flags: u8) {
        let server = self.config.server_name.clone();
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        let state = format!(
            "{}{}",
            if c.away.is_empty() { 'H' } else { 'G' },
            prefix(flags)
        );
        let (user, nick, real) = (
            c.user().to_owned(),
            c.nick.clone(),
            format!("0 {}", c.realname),
        );
        self.numeric(
            id,
            "352",
            &[channel, &user, &server, &server, &nick, &state, &real],
        );
    }

    fn irc_who(&mut self, id: ConnId, p: &[&str]) {
        let mask = p.first().copied().unwrap_or("*");
        if let Some(room) = mask.strip_prefix('#') {
            let key = fold(room);
            if let Some(r) = self.registry.room(&key) {
                let ch = chan(&r.name);
                let members: Vec<(ConnId, u8)> =
                    r.members.iter().map(|&m| (m, r.flags(m))).collect();
                for (m, flags) in members {
                    self.who_line(id, &ch, m, flags);
                }
            }
        } else if let Some(whom) = self.registry.find_nick(mask) {
            self.who_line(id, "*", whom, 0);
        }
        self.numeric(id, "315", &[mask, "End of WHO list"]);
    }

    fn irc_whois(&mut self, id: ConnId, p: &[&str], now: Instant) {
        // `WHOIS server nick` names a server first; only the nick matters here.
        let Some(&nick) = p.last() else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        let server = self.config.server_name.clone();
        let Some(whom) = self.registry.find_nick(nick) else {
            self.numeric(id, "401", &[nick, "No such nick/channel"]);
            return self.numeric(id, "318", &[nick, "End of /WHOIS list"]);
        };
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        let (n, user, real, away) = (
            c.nick.clone(),
            c.user().to_owned(),
            c.realname.clone(),
            c.away.clone(),
        );
        let idle = now
            .saturating_duration_since(c.last_said)
            .as_secs()
            .to_string();
        let chans: Vec<String> = c
            .rooms
            .iter()
            .filter_map(|k| self.registry.room(k))
            .map(|r| format!("{}{}", prefix(r.flags(whom)), chan(&r.name)))
            .collect();
        self.numeric(id, "311", &[&n, &user, &server, "*", &real]);
        if !chans.is_empty() {
            self.numeric(id, "319", &[&n, &chans.join(" ")]);
        }
        self.numeric(id, "312", &[&n, &server, VERSION]);
        if !away.is_empty() {
            self.numeric(id, "301", &[&n, &away]);
        }
        self.numeric(id, "317", &[&n, &idle, "seconds idle"]);
        self.numeric(id, "318", &[&n, "End of /WHOIS list"]);
    }

    fn irc_away(&mut self, id: ConnId, p: &[&str]) {
        let message = p.first().copied().unwrap_or("");
        match self.set_away(id, message) {
            Ok(()) if message.is_empty() => {
                self.numeric(id, "305", &["You are no longer marked as being away"])
            }
            Ok(()) => self.numeric(id, "306", &["You have been marked as being away"]),
            Err(fail) => self.irc_fail(id, &fail, "AWAY"),
        }
    }

    fn irc_kick(&mut self, id: ConnId, p: &[&str]) {
        if p.len() < 2 {
            return self.numeric(id, "461", &["KICK", "Not enough parameters"]);
        }
        let Some(room) = self.channel(id, p[0]) else {
            return;
        };
        let kicker = self.nick(id);
        let reason = p.get(2).copied().unwrap_or(&kicker).to_owned();
        for nick in p[1].split(',').filter(|s| !s.is_empty()) {
            match self.kick(id, room, nick, &reason) {
                Ok(()) => {}
                Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                    self.numeric(id, "441", &[nick, p[0], "They aren't on that channel"]);
                }
                Err(fail) => {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "KICK");
                }
            }
        }
    }

    fn irc_mode(&mut self, id: ConnId, p: &[&str]) {
        let Some(&target) = p.first() else {
            return self.numeric(id, "461", &["MODE", "Not enough parameters"]);
        };
        if let Some(room) = target.strip_prefix('#') {
            return self.irc_room_mode(id, target, room, &p[1..]);
        }
        // User modes: only one's own, and only `i`.
        if self.registry.find_nick(target) != Some(id) {
            if self.registry.find_nick(target).is_none() {
                return self.numeric(id, "401", &[target, "No such nick/channel"]);
            }
            return self.numeric(id, "502", &["Can't change mode for other users"]);
        }
        let Some(change) = p.get(1) else {
            let modes = if self.session(id).is_some_and(|s| s.invisible) {
                "+i"
            } else {
                "+"
            };
            return self.numeric(id, "221", &[modes]);
        };
        let mut on = true;
        let mut applied = String::new();
        for c in change.chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                'i' => {
                    if let Some(s) = self.session(id) {
                        if s.invisible != on {
                            s.invisible = on;
                            applied.push(if on { '+' } else { '-' });
                            applied.push('i');
                        }
                    }
                }
                _ => self.numeric(id, "501", &["Unknown MODE flag"]),
            }
        }
        if !applied.is_empty() {
            let nick = self.nick(id);
            self.line(id, Some(&nick), "MODE", &[&nick, &applied]);
        }
    }

    fn irc_room_mode(&mut self, id: ConnId, target: &str, room: &str, p: &[&str]) {
        let key = match self.room_key(room) {
            Ok(key) => key,
            Err(fail) => return self.irc_fail(id, &fail, "MODE"),
        };
        let Some(&change) = p.first() else {
            let locked = self.registry.room(&key).is_some_and(|r| r.topic_lock);
            return self.numeric(id, "324", &[target, if locked { "+t" } else { "+" }]);
        };
        // Clients ask for the ban list on join; there are no bans.
        if change == "b" || change == "+b" && p.len() == 1 {
            return self.numeric(id, "368", &[target, "End of channel ban list"]);
        }
        let mut args = p[1..].iter();
        let mut on = true;
        for c in change.chars() {
            let mode = match c {
                '+' => {
                    on = true;
                    continue;
                }
                '-' => {
                    on = false;
                    continue;
                }
                _ => RoomMode::from_letter(c as u8).filter(|_| c.is_ascii()),
            };
            let Some(mode) = mode else {
                self.numeric(id, "472", &[&c.to_string(), "is unknown mode char to me"]);
                continue;
            };
            let nick = if mode.takes_nick() {
                match args.next() {
                    Some(n) => *n,
                    None => {
                        self.numeric(id, "461", &["MODE", "Not enough parameters"]);
                        continue;
                    }
                }
            } else {
                ""
            };
            match self.set_mode(id, room, mode, on, nick) {
                Ok(()) => {}
                Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                    self.numeric(id, "441", &[nick, target, "They aren't on that channel"]);
                }
                Err(fail) => self.irc_fail(id, &fail, "MODE"),
            }
        }
    }
}
