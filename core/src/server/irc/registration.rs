//! Registration: CAP negotiation, PASS, NICK, USER, then the welcome.

use super::cap;
use crate::server::cluster::Replay;
use crate::server::conn::Phase;
use crate::server::Server;
use crate::{ConnId, ErrorCode};

impl Server {
    pub(super) fn irc_cap(&mut self, id: ConnId, p: &[&str]) {
        let server = self.config.server_name.clone();
        let nick = match self.nick(id) {
            n if n.is_empty() => "*".to_owned(),
            n => n,
        };
        let sub = p
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let registered = self.conns.get(&id).is_some_and(|c| c.phase == Phase::Ready);
        match sub.as_str() {
            "LS" => {
                let v302 = p.get(1).and_then(|v| v.parse::<u32>().ok()) >= Some(302);
                if let Some(s) = self.session(id) {
                    s.negotiating = !registered;
                    // Version 302 implies cap-notify.
                    if v302 {
                        s.caps |= cap::CAP_NOTIFY;
                    }
                }
                let offered = self.irc_offered();
                let all: Vec<&str> = cap::ALL
                    .iter()
                    .filter(|(_, bit)| offered & bit != 0)
                    .map(|(name, _)| *name)
                    .collect();
                self.line(id, Some(&server), "CAP", &[&nick, "LS", &all.join(" ")]);
            }
            "LIST" => {
                let caps = self.irc_caps(id);
                let on: Vec<&str> = cap::ALL
                    .iter()
                    .filter(|(_, bit)| caps & bit != 0)
                    .map(|(name, _)| *name)
                    .collect();
                self.line(id, Some(&server), "CAP", &[&nick, "LIST", &on.join(" ")]);
            }
            "REQ" => {
                let asked = p.get(1).copied().unwrap_or("");
                // All or nothing: one unknown name refuses the whole request.
                let mut add = 0;
                let mut remove = 0;
                let mut known = true;
                let offered = self.irc_offered();
                for name in asked.split(' ').filter(|n| !n.is_empty()) {
                    let (off, name) = match name.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    match cap::ALL
                        .iter()
                        .find(|(n, bit)| *n == name && offered & bit != 0)
                    {
                        Some((_, bit)) if off => remove |= bit,
                        Some((_, bit)) => add |= bit,
                        None => known = false,
                    }
                }
                let answer = if known && !asked.trim().is_empty() {
                    if let Some(s) = self.session(id) {
                        s.negotiating = !registered;
                        s.caps = (s.caps | add) & !remove;
                    }
                    "ACK"
                } else {
                    "NAK"
                };
                self.line(id, Some(&server), "CAP", &[&nick, answer, asked]);
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

    pub(super) fn irc_pass(&mut self, id: ConnId, p: &[&str], registered: bool) {
        if registered {
            return self.numeric(id, "462", &["You may not reregister"]);
        }
        match p.first() {
            Some(pass) => {
                let pass = (*pass).to_owned();
                if let Some(s) = self.session(id) {
                    s.registering().password = Some(pass);
                }
            }
            None => self.numeric(id, "461", &["PASS", "Not enough parameters"]),
        }
    }

    pub(crate) fn irc_nick(&mut self, id: ConnId, p: &[&str], registered: bool) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        if registered {
            if let Err(fail) = self.change_nick(id, nick) {
                if !self.cluster_park(id, || Replay::IrcNick(nick.to_owned())) {
                    self.irc_fail(id, &fail, "NICK");
                }
            }
            return;
        }
        if let Err(fail) = self.nick_free(id, nick) {
            return self.irc_fail(id, &fail, "NICK");
        }
        let nick = nick.to_owned();
        if let Some(s) = self.session(id) {
            s.registering().nick = Some(nick);
        }
        self.irc_try_register(id);
    }

    pub(super) fn irc_user(&mut self, id: ConnId, p: &[&str], registered: bool) {
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
        let realname = crate::line::cut(p[3], self.config.max_reason_len as usize).to_owned();
        if let Some(s) = self.session(id) {
            s.registering().user = Some((format!("~{user}"), realname));
        }
        self.irc_try_register(id);
    }

    /// Completes registration once NICK and USER are in and no CAP negotiation is open.
    pub(crate) fn irc_try_register(&mut self, id: ConnId) {
        // Only once: a late CAP END must not register again (and claim the nick the
        // session started with, which may no longer be the connection's).
        if self.conns.get(&id).is_none_or(|c| c.phase != Phase::Hello) {
            return;
        }
        let Some(s) = self.session(id) else {
            return;
        };
        if s.negotiating {
            return;
        }
        let Some(reg) = s.registering.as_deref() else {
            return;
        };
        let (Some(nick), Some((user, realname))) = (reg.nick.clone(), reg.user.clone()) else {
            return;
        };
        let given = reg.password.clone();
        if self.check_password(given.as_deref()).is_err() {
            self.numeric(id, "464", &["Password incorrect"]);
            self.close(id, ErrorCode::BadPassword, "bad password", "");
            return;
        }
        if let Err(fail) = self.register(id, &nick, &user, &realname) {
            if self.cluster_park(id, || Replay::IrcRegister) {
                return;
            }
            if let Some(s) = self.session(id) {
                s.registering().nick = None;
            }
            return self.irc_fail(id, &fail, "NICK");
        }
        // The connection holds them now; the session's copies would only take memory.
        if let Some(s) = self.session(id) {
            s.registering = None;
        }
        self.irc_welcome(id);
    }
}
