//! Commands that only read: NAMES, LIST, WHO, WHOIS, ISON, USERHOST, WHOWAS, and who
//! may see whom.

use std::time::Instant;

use super::chan;
use super::replies::{prefix, VERSION};
use crate::name::{fold, mask_matches};
use crate::server::conn::Proto;
use crate::server::Server;
use crate::ConnId;

impl Server {
    /// Whether `viewer` may see `whom` in WHO replies: itself, anyone visible, or an
    /// invisible user who shares a channel with it.
    pub(super) fn visible_to(&self, viewer: ConnId, whom: ConnId) -> bool {
        if viewer == whom {
            return true;
        }
        !self.is_invisible(whom) || self.share_room(viewer, whom)
    }

    pub(super) fn is_invisible(&self, id: ConnId) -> bool {
        matches!(self.conns.get(&id).map(|c| &c.proto), Some(Proto::Irc(s)) if s.invisible)
    }

    pub(super) fn share_room(&self, a: ConnId, b: ConnId) -> bool {
        self.conns.get(&a).is_some_and(|c| {
            c.rooms
                .iter()
                .any(|k| self.registry.room(k).is_some_and(|r| r.is_member(b)))
        })
    }

    pub(crate) fn is_oper(&self, id: ConnId) -> bool {
        matches!(self.conns.get(&id).map(|c| &c.proto), Some(Proto::Irc(s)) if s.oper)
    }

    pub(super) fn irc_names(&mut self, id: ConnId, p: &[&str]) {
        let Some(list) = p.first() else {
            return self.numeric(id, "366", &["*", "End of /NAMES list"]);
        };
        let params: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
        let several = params.len() > 1;
        for param in &params {
            let key = fold(param.strip_prefix('#').unwrap_or(param));
            let visible = self
                .registry
                .room(&key)
                .is_some_and(|r| !r.secret || r.is_member(id));
            if visible && param.starts_with('#') {
                self.irc_names_lines(id, &key, !several);
            } else if !several {
                self.numeric(id, "366", &[param, "End of /NAMES list"]);
            }
        }
        // A list of empty names (`NAMES ,`) still gets its end.
        if several || params.is_empty() {
            self.numeric(id, "366", &[list, "End of /NAMES list"]);
        }
    }

    /// `LIST [targets]`: each target a channel name, a mask (`*x*`), a negated mask
    /// (`!*x*`) or a member count bound (`>N`, `<N`); a room is listed if it passes every
    /// mask and bound and, when names are given, is one of them. Secret rooms are listed
    /// only to their members.
    pub(super) fn irc_list(&mut self, id: ConnId, p: &[&str]) {
        let mut names: Vec<String> = Vec::new();
        let mut masks: Vec<(bool, String)> = Vec::new();
        let (mut more, mut less) = (None::<usize>, None::<usize>);
        for t in p.first().map(|l| l.split(',')).into_iter().flatten() {
            if let Some(n) = t.strip_prefix('>') {
                more = n.parse().ok().or(more);
            } else if let Some(n) = t.strip_prefix('<') {
                less = n.parse().ok().or(less);
            } else if let Some(m) = t.strip_prefix('!') {
                masks.push((false, m.to_owned()));
            } else if t.contains(['*', '?']) {
                masks.push((true, t.to_owned()));
            } else if !t.is_empty() {
                names.push(fold(t.strip_prefix('#').unwrap_or(t)));
            }
        }
        let rows: Vec<(String, String, String)> = self
            .registry
            .sorted()
            .filter(|r| !r.secret || r.is_member(id))
            .filter(|r| names.is_empty() || names.contains(&fold(&r.name)))
            .filter(|r| {
                masks
                    .iter()
                    .all(|(want, m)| mask_matches(m, &chan(&r.name)) == *want)
            })
            .filter(|r| more.is_none_or(|n| r.members.len() > n))
            .filter(|r| less.is_none_or(|n| r.members.len() < n))
            .map(|r| (chan(&r.name), r.members.len().to_string(), r.topic.clone()))
            .collect();
        self.numeric(id, "321", &["Channel", "Users  Name"]);
        for (ch, count, topic) in rows {
            self.numeric(id, "322", &[&ch, &count, &topic]);
        }
        self.numeric(id, "323", &["End of /LIST"]);
    }

    /// `WHO #chan [o]` lists a channel's members (invisible ones only to members; a secret
    /// channel only to members); `WHO mask [o]` lists the users whose nick, user name, host
    /// or real name match the mask (`*` or `0`: everyone), leaving out invisible users who
    /// share no channel with the asker. Flag `o`: server operators only.
    pub(super) fn irc_who(&mut self, id: ConnId, p: &[&str]) {
        let mask = p.first().copied().unwrap_or("*");
        // `o` before any `%`: operators only; after `%`: WHOX fields, then `,token`.
        let (flags, whox) = match p.get(1).map(|f| f.split_once('%')) {
            Some(Some((flags, fields))) => (flags, Some(fields)),
            Some(None) => (p[1], None),
            None => ("", None),
        };
        let opers_only = flags.contains('o');
        let mut lines: Vec<(String, ConnId, u8)> = Vec::new();
        if let Some(room) = mask.strip_prefix('#') {
            if let Some(r) = self.registry.room(&fold(room)) {
                let member = r.is_member(id);
                if !r.secret || member {
                    let ch = chan(&r.name);
                    for &m in &r.members {
                        lines.push((ch.clone(), m, r.flags(m)));
                    }
                    lines.retain(|(_, m, _)| member || self.visible_to(id, *m));
                }
            }
        } else {
            let m = if mask == "0" { "*" } else { mask };
            let server = self.config.server_name.clone();
            for whom in self.registry.holders() {
                let Some(c) = self.conns.get(&whom) else {
                    continue;
                };
                let hit = mask_matches(m, &c.nick)
                    || mask_matches(m, c.user())
                    || mask_matches(m, &server)
                    || mask_matches(m, &c.realname);
                // Invisibility hides users from masks only, not from their exact nick.
                let exact = !m.contains(['*', '?']);
                if hit && (exact || self.visible_to(id, whom)) {
                    lines.push(("*".to_owned(), whom, 0));
                }
            }
        }
        for (ch, whom, flags) in lines {
            if opers_only && !self.is_oper(whom) {
                continue;
            }
            match whox {
                Some(fields) => self.whox_line(id, &ch, whom, flags, fields),
                None => self.who_line(id, &ch, whom, flags),
            }
        }
        self.numeric(id, "315", &[mask, "End of WHO list"]);
    }

    pub(super) fn irc_whois(&mut self, id: ConnId, p: &[&str], now: Instant) {
        // `WHOIS server nick` names a server first; only the nick matters here.
        let Some(&nick) = p.last() else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        let server = self.config.server_name.clone();
        let w = match self.whois(id, nick, now) {
            Ok(w) => w,
            Err(fail) => {
                self.irc_fail(id, &fail, "WHOIS");
                return self.numeric(id, "318", &[nick, "End of /WHOIS list"]);
            }
        };
        let n = w.nick.as_str();
        let chans: Vec<String> = w
            .rooms
            .iter()
            .map(|(name, flags)| format!("{}{}", prefix(*flags), chan(name)))
            .collect();
        self.numeric(id, "311", &[n, &w.user, &server, "*", &w.realname]);
        if !chans.is_empty() {
            self.numeric(id, "319", &[n, &chans.join(" ")]);
        }
        self.numeric(id, "312", &[n, &server, VERSION]);
        if w.oper {
            self.numeric(id, "313", &[n, "is an IRC operator"]);
        }
        if !w.away.is_empty() {
            self.numeric(id, "301", &[n, &w.away]);
        }
        let (idle, signon) = (w.idle_secs, self.config.unix_time(w.signon));
        self.numeric(
            id,
            "317",
            &[
                n,
                &idle.to_string(),
                &signon.to_string(),
                "seconds idle, signon time",
            ],
        );
        self.numeric(id, "318", &[n, "End of /WHOIS list"]);
    }

    pub(super) fn irc_ison(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["ISON", "Not enough parameters"]);
        }
        let online: Vec<String> = p
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|n| self.registry.find_nick(n))
            .map(|c| self.nick(c))
            .collect();
        self.numeric(id, "303", &[&online.join(" ")]);
    }

    pub(super) fn irc_userhost(&mut self, id: ConnId, p: &[&str]) {
        if p.is_empty() {
            return self.numeric(id, "461", &["USERHOST", "Not enough parameters"]);
        }
        let server = self.config.server_name.clone();
        let mut replies = Vec::new();
        for n in p.iter().take(5) {
            let Some(whom) = self.registry.find_nick(n) else {
                continue;
            };
            let oper = if self.is_oper(whom) { "*" } else { "" };
            if let Some(c) = self.conns.get(&whom) {
                let away = if c.away.is_empty() { '+' } else { '-' };
                replies.push(format!("{}{oper}={away}{}@{server}", c.nick, c.user()));
            }
        }
        self.numeric(id, "302", &[&replies.join(" ")]);
    }

    pub(super) fn irc_whowas(&mut self, id: ConnId, p: &[&str]) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &["No nickname given"]);
        };
        let max = p
            .get(1)
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|&c| c > 0)
            .unwrap_or(usize::MAX);
        let server = self.config.server_name.clone();
        let was = self.registry.was(nick);
        if was.is_empty() {
            self.numeric(id, "406", &[nick, "There was no such nickname"]);
        }
        for (n, user, real) in was.into_iter().take(max) {
            self.numeric(id, "314", &[&n, &user, &server, "*", &real]);
            self.numeric(id, "312", &[&n, &server, VERSION]);
        }
        self.numeric(id, "369", &[nick, "End of WHOWAS"]);
    }
}
