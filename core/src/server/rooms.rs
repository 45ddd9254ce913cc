//! Who holds which nickname and who sits in which room: the protocol-independent registry.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::name::fold;
use crate::packet::{Member, RoomInfo};
use crate::{ConnId, ErrorCode};

/// One room: its display name, message counter, members in join order, topic and modes.
#[derive(Debug)]
pub(crate) struct Room {
    pub name: String,
    pub seq: u64,
    pub members: Vec<ConnId>,
    pub topic: String,
    pub topic_by: String,
    /// Mode `t`: only operators may set the topic.
    pub topic_lock: bool,
    pub operators: Vec<ConnId>,
    pub voiced: Vec<ConnId>,
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

    fn remove(&mut self, id: ConnId) {
        self.members.retain(|m| *m != id);
        self.operators.retain(|m| *m != id);
        self.voiced.retain(|m| *m != id);
    }
}

/// Nicknames and rooms, keyed by their case-folded names.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: HashMap<String, Room>,
    nicks: HashMap<String, ConnId>,
}

impl Registry {
    /// Takes `nick` for `conn`, or says someone else holds it. Re-claiming one's own succeeds.
    pub fn claim_nick(&mut self, nick: &str, conn: ConnId) -> Result<(), ErrorCode> {
        match self.nicks.entry(fold(nick)) {
            Entry::Occupied(e) if *e.get() != conn => Err(ErrorCode::NickTaken),
            Entry::Occupied(_) => Ok(()),
            Entry::Vacant(e) => {
                e.insert(conn);
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

    /// The connection holding `nick`.
    pub fn find_nick(&self, nick: &str) -> Option<ConnId> {
        self.nicks.get(&fold(nick)).copied()
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
    pub fn join(&mut self, key: &str, name: &str, conn: ConnId) -> &Room {
        let room = self.rooms.entry(key.to_owned()).or_insert_with(|| Room {
            name: name.to_owned(),
            seq: 0,
            members: Vec::new(),
            topic: String::new(),
            topic_by: String::new(),
            topic_lock: false,
            operators: vec![conn],
            voiced: Vec::new(),
        });
        room.members.push(conn);
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

    /// Every room, sorted by folded name.
    pub fn sorted(&self) -> impl Iterator<Item = &Room> {
        let mut keys: Vec<&String> = self.rooms.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| &self.rooms[k])
    }
}
