//! Who holds which nickname and who sits in which room: the protocol-independent registry.

use std::collections::HashMap;

use crate::name::fold;
use crate::packet::RoomInfo;
use crate::{ConnId, ErrorCode};

/// One room: its display name, its message counter and its members in join order.
#[derive(Debug)]
pub(crate) struct Room {
    pub name: String,
    pub seq: u64,
    pub members: Vec<ConnId>,
}

/// Nicknames and rooms, keyed by their case-folded names.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: HashMap<String, Room>,
    nicks: HashMap<String, ConnId>,
}

impl Registry {
    /// Takes `nick` for `conn`, or says who holds it. Re-claiming one's own nick succeeds.
    pub fn claim_nick(&mut self, nick: &str, conn: ConnId) -> Result<(), ErrorCode> {
        match self.nicks.entry(fold(nick)) {
            std::collections::hash_map::Entry::Occupied(e) if *e.get() != conn => {
                Err(ErrorCode::NickTaken)
            }
            e => {
                e.insert_entry(conn);
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

    /// Adds `conn` to the room `key`, creating it (named `name`) if needed.
    pub fn join(&mut self, key: &str, name: &str, conn: ConnId) -> &Room {
        let room = self.rooms.entry(key.to_owned()).or_insert_with(|| Room {
            name: name.to_owned(),
            seq: 0,
            members: Vec::new(),
        });
        room.members.push(conn);
        room
    }

    /// Removes `conn` from room `key`; drops the room when it empties.
    pub fn leave(&mut self, key: &str, conn: ConnId) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.members.retain(|m| *m != conn);
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// Every room with its member count, sorted by folded name.
    pub fn list(&self) -> Vec<RoomInfo> {
        let mut keys: Vec<&String> = self.rooms.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let room = &self.rooms[k];
                RoomInfo {
                    name: room.name.clone(),
                    members: room.members.len() as u32,
                }
            })
            .collect()
    }
}
