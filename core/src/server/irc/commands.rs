//! Reading lines and dispatching commands; the commands that act on rooms, messages
//! and users.

use std::time::Instant;

use super::cap;
use super::chan;
use crate::line::{Line, Message};
use crate::packet::{RoomMode, RoomRule, ServerPacket};
use crate::rate::{Cost, Request};
use crate::server::cluster::Kind;
use crate::server::conn::{Phase, Proto};
use crate::server::irc::session::Command;
use crate::server::outcome::Fail;
use crate::server::rooms::Change;
use crate::server::{Fanout, Notice, Server};
use crate::{ConnId, ErrorCode};

/// What a command costs against the rate (see [`Cost::of`]).
fn irc_cost(command: &str) -> Cost {
    Cost::of(match command {
        "PING" | "PONG" => Request::Keepalive,
        "QUIT" => Request::Quit,
        _ => Request::Other,
    })
}

impl Server {
    /// Takes one line from the front of `input` and handles it; false if `input` held no
    /// whole line (its bytes are then buffered by the decoder).
    pub(crate) fn irc_step(&mut self, id: ConnId, input: &mut &[u8], now: Instant) -> bool {
        let Some(Proto::Irc(session)) = self.conns.get_mut(&id).map(|c| &mut c.proto) else {
            return false;
        };
        match session.lines.decode(input) {
            None => return false,
            Some(Line::TooLong) => {
                self.charge(id, Cost::Full, now);
                self.numeric(id, "417", &["Input line was too long"]);
            }
            Some(Line::Text(line)) => match Message::parse(&line) {
                Some(msg) => {
                    // UTF8ONLY: text meant for others must be UTF-8 as sent; other
                    // commands (a real name, say) are read lossily.
                    let text = matches!(msg.command.as_str(), "PRIVMSG" | "NOTICE");
                    let label = crate::line::label_tag(&line)
                        .filter(|_| self.irc_caps(id) & cap::LABELED_RESPONSE != 0);
                    let start = self.conns.get(&id).map_or(0, |c| c.out.len());
                    let client_tags = crate::line::client_tags(&line);
                    if let Some(s) = self.session(id) {
                        // Lines deferred outside a command (a replayed one) wait for this
                        // one's answer, as before.
                        let deferred = s.command.take().map(|c| c.deferred).unwrap_or_default();
                        let any = label.is_some() || client_tags.is_some() || !deferred.is_empty();
                        s.command = any.then(|| {
                            Box::new(Command {
                                label,
                                client_tags,
                                deferred,
                            })
                        });
                    }
                    if text && std::str::from_utf8(&line).is_err() {
                        self.charge(id, Cost::Full, now);
                        let server = self.config.server_name.clone();
                        let why = "Message rejected: it is not valid UTF-8";
                        self.line(
                            id,
                            Some(&server),
                            "FAIL",
                            &[&msg.command, "INVALID_UTF8", why],
                        );
                    } else {
                        self.irc_command(id, msg, now);
                    }
                    let command = self.session(id).and_then(|s| s.command.take());
                    if let Some(command) = command {
                        // A command answered later (CHATHISTORY) took its label along.
                        if let Some(label) = &command.label {
                            self.irc_label(id, start, label);
                        }
                        for bytes in command.deferred {
                            self.conns.send(id, bytes);
                        }
                    }
                }
                // Even an empty line costs something.
                None => self.charge(id, Cost::Cheap, now),
            },
        }
        true
    }

    pub(super) fn irc_command(&mut self, id: ConnId, msg: Message, now: Instant) {
        let cmd = msg.command.as_str();
        // The one admission point: every command counts against the rate.
        self.charge(id, irc_cost(cmd), now);
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
            "JOIN" => self.irc_join(id, &p, now),
            "PART" => self.irc_part(id, &p),
            "PRIVMSG" => self.irc_privmsg(id, &p, false, now),
            "NOTICE" => self.irc_privmsg(id, &p, true, now),
            "NAMES" => self.irc_names(id, &p),
            "LIST" => self.irc_list(id, &p),
            "TOPIC" => self.irc_topic(id, &p, now),
            "WHO" => self.irc_who(id, &p),
            "WHOIS" => self.irc_whois(id, &p, now),
            "AWAY" => self.irc_away(id, &p),
            "KICK" => self.irc_kick(id, &p),
            "MODE" => self.irc_mode(id, &p),
            "INVITE" => self.irc_invite(id, &p),
            "ISON" => self.irc_ison(id, &p),
            "USERHOST" => self.irc_userhost(id, &p),
            "LUSERS" => self.irc_lusers(id),
            "MOTD" => self.irc_motd(id),
            "VERSION" => self.irc_version(id),
            "TIME" => self.irc_time(id, now),
            "ADMIN" => self.irc_admin(id),
            "INFO" => self.irc_info(id),
            "HELP" | "HELPOP" => self.irc_help(id, &p),
            "OPER" => self.irc_oper(id, &p),
            "KILL" => self.irc_kill(id, &p),
            "WHOWAS" => self.irc_whowas(id, &p),
            "LINKS" => {
                let server = self.config.server_name.clone();
                self.numeric(id, "364", &[&server, &server, "0 Switchboard chat server"]);
                self.numeric(id, "365", &["*", "End of /LINKS list"]);
            }
            "WALLOPS" => self.irc_wallops(id, &p),
            "SETNAME" => self.irc_setname(id, &p),
            "CHATHISTORY" => self.irc_chathistory(id, &p),
            "TAGMSG" => self.irc_tagmsg(id, &p, now),
            _ => {
                // Never echo control bytes back.
                let shown: String = cmd.chars().filter(|c| !c.is_control()).take(32).collect();
                self.numeric(id, "421", &[&shown, "Unknown command"])
            }
        }
    }

    /// The room name of an IRC channel parameter, or a `403` for one without `#`.
    pub(super) fn channel<'a>(&mut self, id: ConnId, param: &'a str) -> Option<&'a str> {
        let room = param.strip_prefix('#');
        if room.is_none() {
            self.numeric(id, "403", &[param, "No such channel"]);
        }
        room
    }

    pub(super) fn irc_join(&mut self, id: ConnId, p: &[&str], now: Instant) {
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
        let mut keys = p.get(1).map(|k| k.split(',')).into_iter().flatten();
        for param in list.split(',').filter(|s| !s.is_empty()) {
            let given = keys.next().unwrap_or("");
            let Some(room) = self.channel(id, param) else {
                continue;
            };
            match self.join(id, room, given, now) {
                Ok(key) => {
                    self.irc_topic_reply(id, &key, false);
                    self.irc_names_reply(id, &key);
                    self.history_on_join(id, &key);
                }
                Err(fail) => self.irc_fail(id, &fail, "JOIN"),
            }
        }
    }

    pub(super) fn irc_part(&mut self, id: ConnId, p: &[&str]) {
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

    pub(super) fn irc_privmsg(&mut self, id: ConnId, p: &[&str], notice: bool, now: Instant) {
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        // A NOTICE never triggers an error reply. A list of only empty names (`,`) names
        // nobody either: the message would otherwise vanish without a word.
        let named = |t: &&&str| t.split(',').any(|s| !s.is_empty());
        let Some(targets) = p.first().filter(named) else {
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
        if text.contains(['\0', '\r']) {
            if !notice {
                let why = format!("{command} text may not hold a NUL or a bare CR; not sent");
                self.numeric(id, "400", &[command, &why]);
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
                    .map(|reached| self.irc_away_reply(id, reached.away)),
            };
            match result {
                Ok(()) => {}
                Err(_) if notice => {}
                Err(fail) => self.irc_message_fail(id, target, &fail, command),
            }
        }
    }

    /// The reply to a message (PRIVMSG, NOTICE, TAGMSG) refused for `target`: `404` for a
    /// channel the sender must be in, else as [`Server::irc_fail`] says.
    pub(crate) fn irc_message_fail(&mut self, id: ConnId, target: &str, fail: &Fail, cmd: &str) {
        if fail.code == ErrorCode::NotInRoom {
            self.numeric(id, "404", &[target, "Cannot send to channel"]);
        } else {
            self.irc_fail(id, fail, cmd);
        }
    }

    pub(super) fn irc_topic(&mut self, id: ConnId, p: &[&str], now: Instant) {
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
                if let Err(fail) = self.set_topic(id, room, topic, now) {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "TOPIC");
                }
            }
        }
    }

    pub(super) fn irc_away(&mut self, id: ConnId, p: &[&str]) {
        let message = p.first().copied().unwrap_or("");
        match self.set_away(id, message) {
            Ok(()) if message.is_empty() => {
                self.numeric(id, "305", &["You are no longer marked as being away"])
            }
            Ok(()) => self.numeric(id, "306", &["You have been marked as being away"]),
            Err(fail) => self.irc_fail(id, &fail, "AWAY"),
        }
    }

    pub(super) fn irc_kick(&mut self, id: ConnId, p: &[&str]) {
        if p.len() < 2 {
            return self.numeric(id, "461", &["KICK", "Not enough parameters"]);
        }
        let kicker = self.nick(id);
        let reason = p.get(2).copied().unwrap_or(&kicker).to_owned();
        // One channel: every nick is kicked from it. Several: channels and nicks pair up.
        let chans: Vec<&str> = p[0].split(',').filter(|s| !s.is_empty()).collect();
        let nicks: Vec<&str> = p[1].split(',').filter(|s| !s.is_empty()).collect();
        for (i, nick) in nicks.into_iter().enumerate() {
            let target = match chans.as_slice() {
                [one] => *one,
                many => match many.get(i) {
                    Some(c) => *c,
                    None => break,
                },
            };
            let Some(room) = self.channel(id, target) else {
                continue;
            };
            match self.kick(id, room, nick, &reason) {
                Ok(()) => {}
                Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                    self.numeric(id, "441", &[nick, target, "They aren't on that channel"]);
                }
                Err(fail) => {
                    let fail = self.room_fail(room, fail);
                    self.irc_fail(id, &fail, "KICK");
                }
            }
        }
    }

    pub(super) fn irc_mode(&mut self, id: ConnId, p: &[&str]) {
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
            let (i, o, w) = self
                .session(id)
                .map_or((false, false, false), |s| (s.invisible, s.oper, s.wallops));
            let modes: String = [(i, 'i'), (o, 'o'), (w, 'w')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
            let modes = format!("+{modes}");
            return self.numeric(id, "221", &[&modes]);
        };
        let mut on = true;
        let mut applied = String::new();
        let mut unknown = false;
        // Through `change`: modes `i` and `o` are counted by LUSERS (census.rs).
        let done = self.conns.change(id, |conn| {
            let Proto::Irc(s) = &mut conn.proto else {
                return false;
            };
            for c in change.chars() {
                let flag = match c {
                    '+' => {
                        on = true;
                        continue;
                    }
                    '-' => {
                        on = false;
                        continue;
                    }
                    'i' => &mut s.invisible,
                    'w' => &mut s.wallops,
                    // `+o` comes only from OPER; anyone may drop it.
                    'o' if !on => &mut s.oper,
                    'o' => continue,
                    _ => {
                        unknown = true;
                        continue;
                    }
                };
                if *flag != on {
                    *flag = on;
                    applied.push(if on { '+' } else { '-' });
                    applied.push(c);
                }
            }
            true
        });
        if done != Some(true) {
            return;
        }
        if unknown {
            self.numeric(id, "501", &["Unknown MODE flag"]);
        }
        if !applied.is_empty() {
            let nick = self.nick(id);
            self.line(id, Some(&nick), "MODE", &[&nick, &applied]);
        }
    }

    /// `MODE #chan`: `324` with the flag modes and, to members, the key and limit, then
    /// `329`. `MODE #chan b` or `e` (or `+b`/`+e` alone): the list. Otherwise each letter
    /// is applied in order, taking arguments in order, by the same rules as native
    /// SetMode and SetRule; a missing argument skips that letter.
    pub(super) fn irc_room_mode(&mut self, id: ConnId, target: &str, room: &str, p: &[&str]) {
        let key = match self.room_key(room) {
            Ok(key) => key,
            Err(fail) => return self.irc_fail(id, &fail, "MODE"),
        };
        let Some(&change) = p.first() else {
            let Some(r) = self.registry.room(&key) else {
                return;
            };
            let mut modes = format!("+{}", r.flag_letters());
            let mut args: Vec<String> = Vec::new();
            if r.is_member(id) {
                if !r.key.is_empty() {
                    args.push(r.key.clone());
                }
                if r.limit > 0 {
                    args.push(r.limit.to_string());
                }
            } else {
                modes.retain(|c| c != 'k' && c != 'l');
            }
            // A room history restored may be older than this run (history.rs). This run's
            // time by history's clock when it has one, as for every other history time.
            let mut created = self.wall_ms(r.created).map_or(0, |ms| ms / 1000);
            if let Some(t) = self.history_times(&key).filter(|t| t.2 > 0) {
                created = created.min(t.2);
            }
            let created = created.to_string();
            let mut params = vec![target, modes.as_str()];
            params.extend(args.iter().map(String::as_str));
            self.numeric(id, "324", &params);
            return self.numeric(id, "329", &[target, &created]);
        };
        if p.len() == 1 && matches!(change, "b" | "+b" | "e" | "+e" | "I" | "+I") {
            let which = change.trim_start_matches('+');
            let list = self
                .registry
                .room(&key)
                .map(|r| match which {
                    "b" => r.bans.clone(),
                    "e" => r.exempts.clone(),
                    _ => r.invexes.clone(),
                })
                .unwrap_or_default();
            let (item, end, text) = match which {
                "b" => ("367", "368", "End of channel ban list"),
                "e" => ("348", "349", "End of channel exception list"),
                _ => ("346", "347", "End of channel invite list"),
            };
            for mask in list {
                self.numeric(id, item, &[target, &mask]);
            }
            return self.numeric(id, end, &[target, text]);
        }
        let mut args = p[1..].iter();
        let mut on = true;
        let mut changes: Vec<ServerPacket> = Vec::new();
        for c in change.chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                _ => {
                    let letter = if c.is_ascii() { c as u8 } else { 0 };
                    if let Some(mode) = RoomMode::from_letter(letter) {
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
                        match self.apply_room_mode(id, room, Change::mode(mode, nick), on) {
                            Ok(change) => changes.extend(change.map(|(_, n)| n)),
                            Err(fail) if fail.code == ErrorCode::TargetNotInRoom => {
                                self.numeric(
                                    id,
                                    "441",
                                    &[nick, target, "They aren't on that channel"],
                                );
                            }
                            Err(fail) => self.irc_fail(id, &fail, "MODE"),
                        }
                    } else if let Some(rule) = RoomRule::from_letter(letter) {
                        let arg = if rule.takes_arg(on) {
                            match args.next() {
                                Some(a) => *a,
                                // `MODE #c +b` with other letters: the list is not shown.
                                None => continue,
                            }
                        } else {
                            // `-k key` carries the old key; it is not needed.
                            if rule == RoomRule::Key && !on {
                                args.next();
                            }
                            ""
                        };
                        match self.apply_room_mode(id, room, Change::rule(rule, arg), on) {
                            Ok(change) => changes.extend(change.map(|(_, n)| n)),
                            Err(fail) if fail.code == ErrorCode::InvalidText => {
                                let letter = (letter as char).to_string();
                                let shown =
                                    if arg.is_empty() || arg.contains(' ') || rule == RoomRule::Key
                                    {
                                        "*"
                                    } else {
                                        crate::line::cut(arg, 100)
                                    };
                                self.numeric(id, "696", &[target, &letter, shown, &fail.message]);
                            }
                            Err(fail) => self.irc_fail(id, &fail, "MODE"),
                        }
                    } else {
                        let shown = if c.is_control() { '?' } else { c };
                        let shown = shown.to_string();
                        self.numeric(id, "472", &[&shown, "is unknown mode char to me"]);
                    }
                }
            }
        }
        self.relay_changes(id, &key, &changes);
    }

    pub(super) fn irc_invite(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            // The channels this user is invited to.
            let rooms: Vec<String> = self
                .registry
                .sorted()
                .filter(|r| r.invited.contains(&id))
                .map(|r| chan(&r.name))
                .collect();
            for ch in rooms {
                self.numeric(id, "336", &[&ch]);
            }
            return self.numeric(id, "337", &["End of /INVITE list"]);
        }
        if p.len() < 2 {
            return self.numeric(id, "461", &["INVITE", "Not enough parameters"]);
        }
        let (nick, target) = (p[0], p[1]);
        let Some(room) = self.channel(id, target) else {
            return;
        };
        match self.invite(id, room, nick) {
            Ok(reached) => {
                let n = self.nick(reached.target);
                let ch = chan(&self.room_name(room));
                self.numeric(id, "341", &[&n, &ch]);
                self.irc_away_reply(id, reached.away);
            }
            Err(fail) => {
                let fail = self.room_fail(room, fail);
                match fail.code {
                    ErrorCode::TargetInRoom => {
                        self.numeric(id, "443", &[nick, target, "is already on channel"])
                    }
                    _ => self.irc_fail(id, &fail, "INVITE"),
                }
            }
        }
    }

    /// `OPER name password`: `381` and user mode `+o` if the name is configured and the
    /// password's SHA-256 matches; `464` otherwise (the same reply for an unknown name).
    pub(super) fn irc_oper(&mut self, id: ConnId, p: &[&str]) {
        if p.len() < 2 {
            return self.numeric(id, "461", &["OPER", "Not enough parameters"]);
        }
        let hash = crate::sha256::hex_digest(p[1].as_bytes());
        let ok = self
            .config
            .operators
            .iter()
            .any(|(name, h)| name == p[0] && h.eq_ignore_ascii_case(&hash));
        if !ok {
            return self.numeric(id, "464", &["Password incorrect"]);
        }
        // Through `change`: operators are counted by LUSERS (census.rs).
        let newly = self.conns.change(id, |conn| match &mut conn.proto {
            Proto::Irc(s) => !std::mem::replace(&mut s.oper, true),
            _ => false,
        }) == Some(true);
        self.numeric(id, "381", &["You are now an IRC operator"]);
        if newly {
            let nick = self.nick(id);
            self.line(id, Some(&nick), "MODE", &[&nick, "+o"]);
        }
    }

    /// `KILL nick [:reason]`: server operators only (`481`); the target is closed with the
    /// reason and its peers see it quit.
    pub(super) fn irc_kill(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["KILL", "Not enough parameters"]);
        }
        if !self.is_oper(id) {
            return self.numeric(
                id,
                "481",
                &["Permission Denied- You're not an IRC operator"],
            );
        }
        let Some(whom) = self.registry.find_nick(p[0]) else {
            return self.numeric(id, "401", &[p[0], "No such nick/channel"]);
        };
        let killer = self.nick(id);
        let reason: String = p
            .get(1)
            .copied()
            .unwrap_or("no reason")
            .chars()
            .filter(|c| !c.is_control())
            .take(self.config.max_reason_len as usize)
            .collect();
        let why = format!("Killed ({killer} ({reason}))");
        if self.conns.get(&whom).is_some_and(|c| c.remote) {
            // A user of another node: its own node closes it (cluster.rs).
            let nick = self.nick(whom);
            return self.cluster_emit(id, |user| Kind::Kill { user, nick, why });
        }
        self.close(whom, ErrorCode::Quit, &why, &why);
    }

    /// `SETNAME :realname` (IRCv3 setname): changes the real name (the reason rules, or
    /// `FAIL SETNAME INVALID_REALNAME`); the sender and everyone sharing a channel with it
    /// who enabled `setname` get `SETNAME :realname`.
    pub(super) fn irc_setname(&mut self, id: ConnId, p: &[&str]) {
        let Some(&name) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "461", &["SETNAME", "Not enough parameters"]);
        };
        if let Err(fail) = self.set_realname(id, name) {
            let server = self.config.server_name.clone();
            let params = ["SETNAME", "INVALID_REALNAME", &fail.message];
            self.line(id, Some(&server), "FAIL", &params);
        }
    }

    /// `WALLOPS :text`: server operators only (`481`); every user with mode `w`, and the
    /// sender, gets it.
    pub(super) fn irc_wallops(&mut self, id: ConnId, p: &[&str]) {
        let Some(text) = p.first().filter(|t| !t.is_empty()) else {
            return self.numeric(id, "461", &["WALLOPS", "Not enough parameters"]);
        };
        if !self.is_oper(id) {
            return self.numeric(
                id,
                "481",
                &["Permission Denied- You're not an IRC operator"],
            );
        }
        let mut fan = Fanout::of(Notice::Wallops(text), id);
        for whom in self.registry.holders() {
            let wants = matches!(
                self.conns.get(&whom).map(|c| &c.proto),
                Some(Proto::Irc(s)) if s.wallops
            );
            if wants || whom == id {
                self.conns.deliver(whom, &mut fan);
            }
        }
    }
}
