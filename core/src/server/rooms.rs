//! Who holds which nickname and who sits in which room: the protocol-independent registry.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Instant;

use super::outcome::{fail, Outcome};
use crate::name::{fold, mask_matches};
use crate::packet::{Member, RoomInfo, RoomMode, RoomRule, ServerPacket};
use crate::{ConnId, ErrorCode};

/// One room: its display name, message counter, members in join order, topic and modes.
#[derive(Debug)]
pub(crate) struct Room {
    pub name: String,
    pub seq: u64,
    pub members: Vec<ConnId>,
    pub topic: String,
    pub topic_by: String,
    /// The topic's cluster version (Lamport stamp, node that set it); the highest wins.
    pub topic_stamp: (u64, String),
    /// Mode `t`: only operators may set the topic.
    pub topic_lock: bool,
    pub operators: Vec<ConnId>,
    pub voiced: Vec<ConnId>,
    /// When the room was made and its topic last set.
    pub created: Instant,
    pub topic_at: Instant,
    /// Mode `k`: the key a joiner must give; empty for none.
    pub key: String,
    /// Mode `l`: the most members; 0 for no limit.
    pub limit: u32,
    /// Mode `i`: only invited connections (or ban-exempt ones, see `exempt`) may join.
    pub invite_only: bool,
    /// Connections invited since they last joined.
    pub invited: Vec<ConnId>,
    /// Mode `m`: only operators and voiced members may speak.
    pub moderated: bool,
    /// Mode `n`: only members may speak (on by default).
    pub no_outside: bool,
    /// Mode `s`: hidden from room lists and WHOIS of non-members.
    pub secret: bool,
    /// Mode `b`: `nick!user@host` masks that may neither join nor speak.
    pub bans: Vec<String>,
    /// Mode `e`: masks exempt from the bans.
    pub exempts: Vec<String>,
    /// Mode `I`: masks that may join under `i` without an invitation.
    pub invexes: Vec<String>,
}

impl Room {
    pub fn is_member(&self, id: ConnId) -> bool {
        self.members.contains(&id)
    }

    pub fn is_operator(&self, id: ConnId) -> bool {
        self.operators.contains(&id)
    }

    /// The member flags of `id` here, leaving out away status.
    pub fn flags(&self, id: ConnId) -> u8 {
        let mut flags = 0;
        if self.operators.contains(&id) {
            flags |= Member::OPERATOR;
        }
        if self.voiced.contains(&id) {
            flags |= Member::VOICE;
        }
        flags
    }

    /// Whether a connection with source `source` (`nick!user@host`) is banned here.
    pub fn is_banned(&self, source: &str) -> bool {
        self.bans.iter().any(|m| mask_matches(m, source))
            && !self.exempts.iter().any(|m| mask_matches(m, source))
    }

    /// Whether an invitation-only room lets `source` in without an invitation (mode `I`).
    pub fn is_invite_exempt(&self, source: &str) -> bool {
        self.invexes.iter().any(|m| mask_matches(m, source))
    }

    /// Whether `id` (with source `source`) may speak here: the rule for mode `n`, `m` and
    /// `b`. Operators always may.
    pub fn may_speak(&self, id: ConnId, source: &str) -> bool {
        if self.is_operator(id) {
            return true;
        }
        let member = self.is_member(id);
        if self.no_outside && !member {
            return false;
        }
        if self.moderated && !self.voiced.contains(&id) {
            return false;
        }
        !self.is_banned(source) || self.voiced.contains(&id)
    }

    /// The room's flag modes as letters, in IRC order (`iklmnst`), without arguments.
    pub fn flag_letters(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (!self.key.is_empty(), 'k'),
            (self.limit > 0, 'l'),
            (self.moderated, 'm'),
            (self.no_outside, 'n'),
            (self.secret, 's'),
            (self.topic_lock, 't'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }

    fn remove(&mut self, id: ConnId) {
        self.members.retain(|m| *m != id);
        self.operators.retain(|m| *m != id);
        self.voiced.retain(|m| *m != id);
        self.invited.retain(|m| *m != id);
    }
}

/// Nicknames and rooms, keyed by their case-folded names.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: HashMap<String, Room>,
    nicks: HashMap<String, ConnId>,
    /// Nick, user name and real name of the last users who left or changed nick, newest
    /// last, for WHOWAS.
    gone: std::collections::VecDeque<(String, String, String)>,
    /// The most nicks held at once.
    max_nicks: usize,
}

impl Registry {
    /// Takes `nick` for `conn`, or says someone else holds it. Re-claiming one's own succeeds.
    pub fn claim_nick(&mut self, nick: &str, conn: ConnId) -> Result<(), ErrorCode> {
        match self.nicks.entry(fold(nick)) {
            Entry::Occupied(e) if *e.get() != conn => Err(ErrorCode::NickTaken),
            Entry::Occupied(_) => Ok(()),
            Entry::Vacant(e) => {
                e.insert(conn);
                self.max_nicks = self.max_nicks.max(self.nicks.len());
                Ok(())
            }
        }
    }

    /// Frees `nick` if `conn` holds it.
    pub fn release_nick(&mut self, nick: &str, conn: ConnId) {
        let key = fold(nick);
        if self.nicks.get(&key) == Some(&conn) {
            self.nicks.remove(&key);
        }
    }

    /// Records a user who left or changed nick, keeping the last 256.
    pub fn remember(&mut self, nick: &str, user: &str, realname: &str) {
        if self.gone.len() == 256 {
            self.gone.pop_front();
        }
        self.gone
            .push_back((nick.to_owned(), user.to_owned(), realname.to_owned()));
    }

    /// The recorded users who held `nick`, newest first.
    pub fn was(&self, nick: &str) -> Vec<(String, String, String)> {
        self.gone
            .iter()
            .rev()
            .filter(|(n, _, _)| n.eq_ignore_ascii_case(nick))
            .cloned()
            .collect()
    }

    /// The connection holding `nick`.
    pub fn find_nick(&self, nick: &str) -> Option<ConnId> {
        self.nicks.get(&fold(nick)).copied()
    }

    /// Every connection holding a nick, in id order.
    pub fn holders(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.nicks.values().copied().collect();
        ids.sort();
        ids
    }

    /// The most nicks held at once since the server started.
    pub fn max_nicks(&self) -> usize {
        self.max_nicks
    }

    pub fn nick_count(&self) -> usize {
        self.nicks.len()
    }

    pub fn room(&self, key: &str) -> Option<&Room> {
        self.rooms.get(key)
    }

    pub fn room_mut(&mut self, key: &str) -> Option<&mut Room> {
        self.rooms.get_mut(key)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Adds `conn` to the room `key`, creating it (named `name`, with `conn` its operator)
    /// if needed.
    pub fn join(&mut self, key: &str, name: &str, conn: ConnId, now: Instant) -> &Room {
        let room = self.rooms.entry(key.to_owned()).or_insert_with(|| Room {
            created: now,
            topic_at: now,
            key: String::new(),
            limit: 0,
            invite_only: false,
            invited: Vec::new(),
            moderated: false,
            no_outside: true,
            secret: false,
            bans: Vec::new(),
            exempts: Vec::new(),
            invexes: Vec::new(),
            name: name.to_owned(),
            seq: 0,
            members: Vec::new(),
            topic: String::new(),
            topic_by: String::new(),
            topic_stamp: (0, String::new()),
            topic_lock: false,
            operators: vec![conn],
            voiced: Vec::new(),
        });
        room.members.push(conn);
        room.invited.retain(|m| *m != conn);
        room
    }

    /// Removes `conn` from room `key`; drops the room when it empties.
    pub fn leave(&mut self, key: &str, conn: ConnId) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove(conn);
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// Every room with its member count, sorted by folded name.
    pub fn list(&self) -> Vec<RoomInfo> {
        self.sorted()
            .map(|room| RoomInfo {
                name: room.name.clone(),
                members: room.members.len() as u32,
            })
            .collect()
    }

    /// The rooms `viewer` may see listed (secret ones only if it sits in them), sorted.
    pub fn list_for(&self, viewer: ConnId) -> Vec<RoomInfo> {
        self.sorted()
            .filter(|room| !room.secret || room.is_member(viewer))
            .map(|room| RoomInfo {
                name: room.name.clone(),
                members: room.members.len() as u32,
            })
            .collect()
    }

    /// Every room, sorted by folded name.
    pub fn sorted(&self) -> impl Iterator<Item = &Room> {
        let mut keys: Vec<&String> = self.rooms.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| &self.rooms[k])
    }
}

/// A change of a room mode (a member's `o` or `v`, or `t`) or rule, one type for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A mode; `nick` the member it is about (empty for `t`), `target` its connection
    /// once checked.
    Mode {
        mode: RoomMode,
        nick: String,
        target: Option<ConnId>,
    },
    /// A rule; `arg` its argument (a key, limit or mask), completed once checked.
    Rule { rule: RoomRule, arg: String },
}

impl Change {
    /// A mode change as asked for, about member `nick`.
    pub fn mode(mode: RoomMode, nick: &str) -> Self {
        Change::Mode {
            mode,
            nick: nick.to_owned(),
            target: None,
        }
    }

    /// A rule change as asked for, with argument `arg`.
    pub fn rule(rule: RoomRule, arg: &str) -> Self {
        Change::Rule {
            rule,
            arg: arg.to_owned(),
        }
    }

    /// The mode or rule letter.
    pub fn letter(&self) -> u8 {
        match self {
            Change::Mode { mode, .. } => mode.letter(),
            Change::Rule { rule, .. } => rule.letter(),
        }
    }

    /// Applies the (checked) change to a room; whether it changed anything, or why it
    /// cannot (a mask list is full). A mode about no member changes nothing.
    pub fn apply(&self, r: &mut Room, on: bool) -> Outcome<bool> {
        let changed = match self {
            Change::Mode { mode, target, .. } => match (mode, target) {
                (RoomMode::TopicLock, _) => std::mem::replace(&mut r.topic_lock, on) != on,
                (RoomMode::Operator, Some(t)) => toggle(&mut r.operators, *t, on),
                (RoomMode::Voice, Some(t)) => toggle(&mut r.voiced, *t, on),
                _ => false,
            },
            Change::Rule { rule, arg } => match rule {
                RoomRule::Key if on => std::mem::replace(&mut r.key, arg.clone()) != *arg,
                RoomRule::Key => !std::mem::take(&mut r.key).is_empty(),
                RoomRule::Limit if on => {
                    let n = arg.parse().unwrap_or(0);
                    std::mem::replace(&mut r.limit, n) != n
                }
                RoomRule::Limit => std::mem::replace(&mut r.limit, 0) != 0,
                RoomRule::InviteOnly => std::mem::replace(&mut r.invite_only, on) != on,
                RoomRule::Moderated => std::mem::replace(&mut r.moderated, on) != on,
                RoomRule::NoOutside => std::mem::replace(&mut r.no_outside, on) != on,
                RoomRule::Secret => std::mem::replace(&mut r.secret, on) != on,
                RoomRule::Ban | RoomRule::BanExempt | RoomRule::InviteExempt => {
                    let list = match rule {
                        RoomRule::Ban => &mut r.bans,
                        RoomRule::BanExempt => &mut r.exempts,
                        _ => &mut r.invexes,
                    };
                    let has = list.iter().any(|m| m.eq_ignore_ascii_case(arg));
                    if on && !has {
                        if list.len() >= 100 {
                            return Err(fail(
                                ErrorCode::InvalidText,
                                arg,
                                format!("`{}` already has 100 masks of that kind", r.name),
                            ));
                        }
                        list.push(arg.clone());
                    } else if !on && has {
                        list.retain(|m| !m.eq_ignore_ascii_case(arg));
                    }
                    has != on
                }
            },
        };
        Ok(changed)
    }

    /// The notice of the change in room `room`, made by `by`.
    pub fn notice(self, room: String, by: String, on: bool) -> ServerPacket {
        match self {
            Change::Mode { mode, nick, .. } => ServerPacket::ModeChanged {
                room,
                by,
                mode,
                on,
                nick,
            },
            Change::Rule { rule, arg } => ServerPacket::RuleChanged {
                room,
                by,
                rule,
                on,
                arg,
            },
        }
    }
}

/// Adds or removes `id` in a set kept as a Vec; whether anything changed.
fn toggle(set: &mut Vec<ConnId>, id: ConnId, on: bool) -> bool {
    let has = set.contains(&id);
    if on && !has {
        set.push(id);
    } else if !on && has {
        set.retain(|m| *m != id);
    }
    has != on
}

#[cfg(test)]
#[path = "tests_rooms.rs"]
mod tests;
