//! Replies to the requester: numerics, labeled-response wrapping, and the replies
//! several commands share (welcome, ISUPPORT, MOTD, topic, NAMES, WHO lines, errors).

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::cap;
use super::chan;
use crate::history::format_utc;
use crate::line::{write_line, MAX_LINE};
use crate::server::conn::Phase;
use crate::server::outcome::{Away, Fail};
use crate::server::Server;
use crate::{ConnId, ErrorCode};

/// The version shown in `002`, `004` and `WHOIS`.
pub(super) const VERSION: &str = concat!("switchboard-", env!("CARGO_PKG_VERSION"));

/// Appends `line` (without its CR LF) with one more tag, merged into its tags if it has
/// some, and CR LF.
pub(super) fn add_tag(out: &mut BytesMut, tag: &str, line: &[u8]) {
    out.extend_from_slice(b"@");
    out.extend_from_slice(tag.as_bytes());
    match line.strip_prefix(b"@") {
        Some(tagged) => {
            out.extend_from_slice(b";");
            out.extend_from_slice(tagged);
        }
        None => {
            out.extend_from_slice(b" ");
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Every prefix of a member, highest first (`multi-prefix`).
pub(super) fn all_prefixes(flags: u8) -> &'static str {
    use crate::packet::Member;
    match (flags & Member::OPERATOR != 0, flags & Member::VOICE != 0) {
        (true, true) => "@+",
        (true, false) => "@",
        (false, true) => "+",
        (false, false) => "",
    }
}

/// A member's prefix in NAMES and WHO: `@` for operators, `+` for voice.
pub(super) fn prefix(flags: u8) -> &'static str {
    use crate::packet::Member;
    if flags & Member::OPERATOR != 0 {
        "@"
    } else if flags & Member::VOICE != 0 {
        "+"
    } else {
        ""
    }
}

/// The constant parts of the welcome burst, built once per server rather than at every
/// registration (again only if history is switched on later, which adds two tokens).
#[derive(Debug)]
pub(crate) struct Constants {
    /// The history page size the tokens were built for.
    history: Option<u16>,
    /// The `005` lines' tokens, space-separated, at most 13 a line as clients expect.
    isupport: Vec<String>,
    /// The MOTD's `375` head and `372` lines, if one is configured.
    motd: Option<(String, Vec<String>)>,
}

impl Constants {
    fn new(c: &crate::Config, history: Option<u16>) -> Self {
        let mut tokens = vec![
            format!("AWAYLEN={}", c.max_reason_len),
            "CASEMAPPING=ascii".to_owned(),
            format!("CHANLIMIT=#:{}", c.max_rooms_per_conn),
            "CHANMODES=beI,k,l,imnst".to_owned(),
            format!("CHANNELLEN={}", c.max_room_len as usize + 1),
            "CHANTYPES=#".to_owned(),
            "ELIST=MNU".to_owned(),
            "WHOX".to_owned(),
            "EXCEPTS=e".to_owned(),
            "INVEX=I".to_owned(),
            format!("KICKLEN={}", c.max_reason_len),
            "MAXLIST=b:100,e:100,I:100".to_owned(),
            "MODES=4".to_owned(),
            "NETWORK=Switchboard".to_owned(),
            format!("NICKLEN={}", c.max_nick_len),
            "PREFIX=(ov)@+".to_owned(),
            "TARGMAX=JOIN:,PART:,PRIVMSG:,NOTICE:,NAMES:,LIST:,KICK:,WHOIS:1,ISON:,USERHOST:5"
                .to_owned(),
            format!("TOPICLEN={}", c.max_topic_len),
            "UTF8ONLY".to_owned(),
        ];
        if let Some(max) = history {
            tokens.push(format!("CHATHISTORY={max}"));
            tokens.push("MSGREFTYPES=msgid,timestamp".to_owned());
        }
        let motd = c.motd.as_ref().map(|text| {
            let head = format!("- {} Message of the day -", c.server_name);
            (head, text.lines().map(|line| format!("- {line}")).collect())
        });
        Constants {
            history,
            isupport: tokens.chunks(13).map(|line| line.join(" ")).collect(),
            motd,
        }
    }
}

impl Server {
    /// Queues one line to a connection; its last parameter is text (`:`-prefixed).
    pub(super) fn line(
        &mut self,
        id: ConnId,
        source: Option<&str>,
        command: &str,
        params: &[&str],
    ) {
        let mut buf = BytesMut::new();
        write_line(&mut buf, source, command, params, true);
        self.conns.send(id, buf.freeze());
    }

    /// Queues a numeric reply: `:server NNN <nick or *> params...`.
    pub(crate) fn numeric(&mut self, id: ConnId, code: &str, params: &[&str]) {
        let nick = self.reply_nick(id);
        let mut buf = BytesMut::new();
        self.numeric_line(&mut buf, &nick, code, params);
        self.conns.send(id, buf.freeze());
    }

    /// Queues the lines written in `buf`, each its own entry as if queued one by one (a
    /// transmit passes `max_transmit_bytes` only with a single line), all in the one
    /// allocation they were written into.
    fn send_lines(&mut self, id: ConnId, mut buf: BytesMut) {
        // Lines end in CR LF and hold no LF of their own (`write_line` cleans them out).
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1).freeze();
            self.conns.send(id, line);
        }
        if !buf.is_empty() {
            self.conns.send(id, buf.freeze());
        }
    }

    /// The nick numerics address: the connection's, or `*` before it has one.
    fn reply_nick(&self, id: ConnId) -> String {
        match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        }
    }

    /// Appends a numeric reply for `nick` to `buf`, for replies of several lines that
    /// leave as one buffer.
    fn numeric_line(&self, buf: &mut BytesMut, nick: &str, code: &str, params: &[&str]) {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(nick);
        all.extend_from_slice(params);
        write_line(buf, Some(&self.config.server_name), code, &all, true);
    }

    /// labeled-response: wraps what the labelled command queued for its sender (output
    /// entries from `start` on): nothing becomes `ACK`, one line gets the label tag, more
    /// become a `labeled-response` batch.
    pub(super) fn irc_label(&mut self, id: ConnId, start: usize, label: &str) {
        let server = self.config.server_name.clone();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase == Phase::Closing || conn.out.len() < start {
            return;
        }
        let taken: Vec<Bytes> = conn.out.drain(start..).collect();
        let bytes: usize = taken.iter().map(Bytes::len).sum();
        conn.queued -= bytes;
        let text: Vec<u8> = taken.concat();
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        let mut out = BytesMut::new();
        match lines.as_slice() {
            [] => {
                out.extend_from_slice(format!("@label={label} :{server} ACK\r\n").as_bytes());
            }
            [one] => {
                add_tag(&mut out, &format!("label={label}"), one);
            }
            many => {
                let n = self.irc_next_batch(id);
                let head = format!("@label={label} :{server} BATCH +lr{n} labeled-response\r\n");
                out.extend_from_slice(head.as_bytes());
                for line in many {
                    add_tag(&mut out, &format!("batch=lr{n}"), line);
                }
                out.extend_from_slice(format!(":{server} BATCH -lr{n}\r\n").as_bytes());
            }
        }
        self.conns.send(id, out.freeze());
    }

    /// The welcome burst (`001` to `004`, ISUPPORT, LUSERS, MOTD), written into one
    /// buffer (its constant lines built once per server) and sent in the turn's one write.
    pub(super) fn irc_welcome(&mut self, id: ConnId) {
        let source = self.source(id);
        let nick = self.reply_nick(id);
        let server = &self.config.server_name;
        let mut buf = BytesMut::with_capacity(2048);
        let welcome = format!("Welcome to the Switchboard network, {source}");
        self.numeric_line(&mut buf, &nick, "001", &[&welcome]);
        let host = format!("Your host is {server}, running version {VERSION}");
        self.numeric_line(&mut buf, &nick, "002", &[&host]);
        let runs = format!("This server runs {VERSION}");
        self.numeric_line(&mut buf, &nick, "003", &[&runs]);
        let my_info = [server.as_str(), VERSION, "iow", "Ibeiklmnostv", "Ibeklov"];
        self.numeric_line(&mut buf, &nick, "004", &my_info);
        self.isupport_lines(&mut buf, &nick);
        self.lusers_lines(&mut buf, &nick);
        self.motd_lines(&mut buf, &nick);
        self.send_lines(id, buf);
    }

    /// `005`: what this server supports, each token true of it.
    pub(super) fn irc_isupport(&mut self, id: ConnId) {
        let nick = self.reply_nick(id);
        let mut buf = BytesMut::new();
        self.isupport_lines(&mut buf, &nick);
        self.send_lines(id, buf);
    }

    fn isupport_lines(&mut self, buf: &mut BytesMut, nick: &str) {
        self.build_irc_constants();
        let Some(constants) = self.irc_constants.as_deref() else {
            return;
        };
        for tokens in &constants.isupport {
            let params = [nick, tokens, "are supported by this server"];
            write_line(buf, Some(&self.config.server_name), "005", &params, true);
        }
    }

    /// Builds the welcome burst's constant lines if they are not built yet (or were
    /// built before history was switched on).
    fn build_irc_constants(&mut self) {
        let history = self.history_max_page();
        if self
            .irc_constants
            .as_ref()
            .is_none_or(|c| c.history != history)
        {
            self.irc_constants = Some(Box::new(Constants::new(&self.config, history)));
        }
    }

    pub(super) fn irc_motd(&mut self, id: ConnId) {
        let nick = self.reply_nick(id);
        let mut buf = BytesMut::new();
        self.motd_lines(&mut buf, &nick);
        self.send_lines(id, buf);
    }

    fn motd_lines(&mut self, buf: &mut BytesMut, nick: &str) {
        self.build_irc_constants();
        match self.irc_constants.as_deref().and_then(|c| c.motd.as_ref()) {
            Some((head, lines)) => {
                self.numeric_line(buf, nick, "375", &[head]);
                for line in lines {
                    self.numeric_line(buf, nick, "372", &[line]);
                }
                self.numeric_line(buf, nick, "376", &["End of /MOTD command."]);
            }
            None => self.numeric_line(buf, nick, "422", &["MOTD File is missing"]),
        }
    }

    /// Replies to a refused operation with the numeric IRC clients expect.
    pub(crate) fn irc_fail(&mut self, id: ConnId, fail: &Fail, command: &str) {
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
            ErrorCode::BadRoomKey => self.numeric(id, "475", &[&ch, "Cannot join channel (+k)"]),
            ErrorCode::RoomFull => self.numeric(id, "471", &[&ch, "Cannot join channel (+l)"]),
            ErrorCode::InviteOnlyRoom => {
                self.numeric(id, "473", &[&ch, "Cannot join channel (+i)"])
            }
            ErrorCode::Banned => self.numeric(id, "474", &[&ch, "Cannot join channel (+b)"]),
            ErrorCode::CannotSpeak => self.numeric(id, "404", &[&ch, "Cannot send to channel"]),
            ErrorCode::TargetInRoom => {
                self.numeric(id, "443", &[t, command, "is already on channel"])
            }
            _ => self.numeric(id, "400", &[command, &fail.message]),
        }
    }

    /// `NotInRoom` for a room that does not exist reads better as `NoSuchRoom`.
    pub(crate) fn room_fail(&self, room: &str, fail: Fail) -> Fail {
        if fail.code == ErrorCode::NotInRoom && self.room_key(room).is_err() {
            Fail {
                code: ErrorCode::NoSuchRoom,
                ..fail
            }
        } else {
            fail
        }
    }

    /// `301`: the user reached is away.
    pub(super) fn irc_away_reply(&mut self, id: ConnId, away: Option<Away>) {
        if let Some(away) = away {
            self.numeric(id, "301", &[&away.nick, &away.message]);
        }
    }

    pub(super) fn irc_topic_reply(&mut self, id: ConnId, key: &str, always: bool) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let (ch, topic) = (chan(&room.name), room.topic.clone());
        let by = room.topic_by.clone();
        let at = self.config.unix_time(room.topic_at).to_string();
        if !topic.is_empty() {
            self.numeric(id, "332", &[&ch, &topic]);
            // Who set it and when: history knows the time across restarts (history.rs).
            let at = self
                .history_times(key)
                .filter(|t| t.1 > 0)
                .map_or(at, |t| t.1.to_string());
            self.numeric(id, "333", &[&ch, &by, &at]);
        } else if always {
            self.numeric(id, "331", &[&ch, "No topic is set"]);
        }
    }

    /// `353` lines for a room, then `366` unless `end` is false (a NAMES of several
    /// channels ends with one `366` naming them all).
    pub(super) fn irc_names_reply(&mut self, id: ConnId, key: &str) {
        self.irc_names_lines(id, key, true);
    }

    pub(super) fn irc_names_lines(&mut self, id: ConnId, key: &str, end: bool) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let ch = chan(&room.name);
        let kind = if room.secret { "@" } else { "=" };
        let caps = self.irc_caps(id);
        let server = &self.config.server_name;
        let names: Vec<String> = room
            .members
            .iter()
            .filter_map(|&m| self.conns.get(&m).map(|c| (c, room.flags(m))))
            .map(|(c, flags)| {
                let pre = if caps & cap::MULTI_PREFIX != 0 {
                    all_prefixes(flags)
                } else {
                    prefix(flags)
                };
                if caps & cap::USERHOST_IN_NAMES != 0 {
                    format!("{pre}{}!{}@{server}", c.nick, c.user())
                } else {
                    format!("{pre}{}", c.nick)
                }
            })
            .collect();
        // Keep each 353 well inside one line.
        let budget = MAX_LINE - 2 - self.config.server_name.len() - ch.len() - 80;
        let mut line = String::new();
        for name in names {
            if !line.is_empty() && line.len() + 1 + name.len() > budget {
                self.numeric(id, "353", &[kind, &ch, &line]);
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&name);
        }
        if !line.is_empty() {
            self.numeric(id, "353", &[kind, &ch, &line]);
        }
        if end {
            self.numeric(id, "366", &[&ch, "End of /NAMES list"]);
        }
    }

    /// The WHO state of `whom` with room flags `flags`: `H` (here) or `G` (gone, away),
    /// `*` for a server operator, then its prefix (every prefix with `multi`).
    fn who_state(&self, whom: ConnId, flags: u8, multi: bool) -> String {
        let away = self.conns.get(&whom).is_some_and(|c| !c.away.is_empty());
        let prefixes = if multi {
            all_prefixes(flags)
        } else {
            prefix(flags)
        };
        format!(
            "{}{}{prefixes}",
            if away { 'G' } else { 'H' },
            if self.is_oper(whom) { "*" } else { "" },
        )
    }

    /// One `352` line for `whom`, seen in `channel` (or `*`) with room flags `flags`.
    pub(super) fn who_line(&mut self, id: ConnId, channel: &str, whom: ConnId, flags: u8) {
        let server = self.config.server_name.clone();
        let multi = self.irc_caps(id) & cap::MULTI_PREFIX != 0;
        let state = self.who_state(whom, flags, multi);
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
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

    /// One WHOX `354` line: the fields asked for, in the fixed order `tcuihsnfdlaor`.
    pub(super) fn whox_line(
        &mut self,
        id: ConnId,
        channel: &str,
        whom: ConnId,
        flags: u8,
        spec: &str,
    ) {
        let (fields, token) = spec.split_once(',').unwrap_or((spec, ""));
        let server = self.config.server_name.clone();
        // The `f` field shows the highest prefix only.
        let state = self.who_state(whom, flags, false);
        let Some(c) = self.conns.get(&whom) else {
            return;
        };
        let mut out: Vec<String> = Vec::new();
        for f in "tcuihsnfdlaor".chars().filter(|f| fields.contains(*f)) {
            out.push(match f {
                't' => match token
                    .chars()
                    .filter(|c| c.is_ascii_digit())
                    .take(3)
                    .collect()
                {
                    t if String::is_empty(&t) => "0".to_owned(),
                    t => t,
                },
                'c' => channel.to_owned(),
                'u' => c.user().to_owned(),
                // No addresses are shown, as everywhere else.
                'i' => "255.255.255.255".to_owned(),
                'h' | 's' => server.clone(),
                'n' => c.nick.clone(),
                'f' => state.clone(),
                'd' => "0".to_owned(),
                // Idle time is shown only in WHOIS.
                'l' => "0".to_owned(),
                // No accounts exist.
                'a' => "0".to_owned(),
                'o' => "n/a".to_owned(),
                _ => c.realname.clone(),
            });
        }
        if out.is_empty() {
            return;
        }
        let params: Vec<&str> = out.iter().map(String::as_str).collect();
        // The real name is last and may hold spaces, so it alone may be trailing.
        let mut buf = BytesMut::new();
        let nick = self.nick(id);
        let mut all = vec![nick.as_str()];
        all.extend_from_slice(&params);
        write_line(&mut buf, Some(&server), "354", &all, fields.contains('r'));
        self.conns.send(id, buf.freeze());
    }

    pub(super) fn irc_lusers(&mut self, id: ConnId) {
        let nick = self.reply_nick(id);
        let mut buf = BytesMut::new();
        self.lusers_lines(&mut buf, &nick);
        self.send_lines(id, buf);
    }

    fn lusers_lines(&self, buf: &mut BytesMut, nick: &str) {
        let users = self.registry.nick_count();
        let rooms = self.registry.room_count();
        // Kept as connections change (census.rs): this runs at every IRC registration, so
        // it must not visit every connection. Nick holders are the registered users.
        let census = self.conns.census();
        let (invisible, opers, unknown) = (census.invisible, census.opers, census.unknown);
        let text = format!(
            "There are {} users and {invisible} invisible on 1 servers",
            users.saturating_sub(invisible)
        );
        self.numeric_line(buf, nick, "251", &[&text]);
        self.numeric_line(
            buf,
            nick,
            "252",
            &[&opers.to_string(), "operator(s) online"],
        );
        let unknown = unknown.to_string();
        self.numeric_line(buf, nick, "253", &[&unknown, "unknown connection(s)"]);
        self.numeric_line(buf, nick, "254", &[&rooms.to_string(), "channels formed"]);
        let text = format!("I have {users} clients and 0 servers");
        self.numeric_line(buf, nick, "255", &[&text]);
        // The short form (no count parameters): clients read the text.
        let max = self.registry.max_nicks();
        let text = format!("Current local users {users}, max {max}");
        self.numeric_line(buf, nick, "265", &[&text]);
        let text = format!("Current global users {users}, max {max}");
        self.numeric_line(buf, nick, "266", &[&text]);
    }

    pub(super) fn irc_version(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        self.numeric(id, "351", &[VERSION, &server, "Switchboard chat server"]);
        self.irc_isupport(id);
    }

    pub(super) fn irc_time(&mut self, id: ConnId, now: Instant) {
        let server = self.config.server_name.clone();
        let unix = self.config.unix_time(now);
        self.numeric(
            id,
            "391",
            &[
                &server,
                &unix.to_string(),
                "0",
                &format!("{} UTC", format_utc(unix * 1000)),
            ],
        );
    }

    pub(super) fn irc_admin(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        self.numeric(id, "256", &[&server, "Administrative info"]);
        self.numeric(id, "257", &["Switchboard chat server"]);
        self.numeric(id, "258", &["No administrator is configured"]);
        self.numeric(id, "259", &["-"]);
    }

    pub(super) fn irc_info(&mut self, id: ConnId) {
        self.numeric(
            id,
            "371",
            &[&format!(
                "{VERSION}: a chat server for native and IRC clients"
            )],
        );
        self.numeric(id, "374", &["End of INFO list"]);
    }

    pub(super) fn irc_help(&mut self, id: ConnId, p: &[&str]) {
        let topic = p.first().map_or("*".to_owned(), |t| t.to_ascii_lowercase());
        let lines: &[&str] = &[
            "Switchboard speaks the IRC subset in its docs/IRC.md.",
            "Channels: JOIN PART TOPIC NAMES LIST INVITE KICK MODE",
            "Messages: PRIVMSG NOTICE AWAY",
            "Users: NICK WHO WHOIS WHOWAS ISON USERHOST",
            "Server: MOTD LUSERS VERSION TIME ADMIN INFO PING OPER KILL QUIT",
        ];
        self.numeric(id, "704", &[&topic, lines[0]]);
        for line in &lines[1..] {
            self.numeric(id, "705", &[&topic, line]);
        }
        self.numeric(id, "706", &[&topic, "End of /HELP"]);
    }
}
