//! The native protocol front: frames in, chat operations, native replies out.

use std::time::Instant;

use super::chat::{Admit, Fail};
use super::conn::{Phase, Proto};
use super::{chunks, Server};
use crate::packet::{str_wire_len, ClientPacket, Member, Packet, ServerPacket, PROTOCOL_VERSION};
use crate::{ConnId, DecodeError, ErrorCode};

impl Server {
    /// Handles every whole frame in `input`.
    pub(super) fn native_input(&mut self, id: ConnId, mut input: &[u8], now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.phase == Phase::Closing {
                return;
            }
            let Proto::Native(decoder) = &mut conn.proto else {
                return;
            };
            let seq = conn.requests.wrapping_add(1);
            let decoded = match decoder.decode(&mut input) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    conn.requests = seq;
                    ClientPacket::decode(frame.type_code, frame.payload)
                        .map_err(|e| (frame.type_code, e))
                }
                Err(e) => Err((0, e)),
            };
            match decoded {
                Ok(packet) => self.native_packet(id, seq, packet, now),
                Err((request_type, e)) => self.violation(id, request_type, seq, e),
            }
            self.close_overflowed();
        }
    }

    /// A peer broke the framing or packet rules: tell it why and close it.
    fn violation(&mut self, id: ConnId, request_type: u8, seq: u32, e: DecodeError) {
        let msg = e.to_string();
        self.native_error(id, e.code(), request_type, seq, msg.clone());
        self.close(id, e.code(), &msg, "protocol error");
    }

    fn native_error(
        &mut self,
        id: ConnId,
        code: ErrorCode,
        request_type: u8,
        seq: u32,
        message: String,
    ) {
        self.send_packet(
            id,
            &ServerPacket::Error {
                code,
                request_type,
                request_seq: seq,
                message,
            },
        );
    }

    fn native_packet(&mut self, id: ConnId, seq: u32, packet: ClientPacket, now: Instant) {
        let request_type = packet.type_code();
        // Flood control counts every request but pongs and quits, which only end things.
        if !matches!(
            packet,
            ClientPacket::Pong { .. } | ClientPacket::Quit { .. }
        ) {
            match self.admit(id, now) {
                Admit::Yes => {}
                Admit::Closed => return,
                Admit::Limited => {
                    let msg = "rate limit exceeded; request dropped".to_owned();
                    self.native_error(id, ErrorCode::RateLimited, request_type, seq, msg);
                    return;
                }
            }
        }
        let Some(phase) = self.conns.get(&id).map(|c| c.phase) else {
            return;
        };
        let result = match (phase, packet) {
            (_, ClientPacket::Quit { reason }) => {
                self.quit(id, &reason);
                Ok(())
            }
            (_, ClientPacket::Pong { .. }) => Ok(()),
            (
                Phase::Hello,
                ClientPacket::Hello {
                    version,
                    nick,
                    password,
                },
            ) => self.native_hello(id, version, &nick, &password),
            (Phase::Hello, _) => Err(Fail {
                code: ErrorCode::HelloRequired,
                target: String::new(),
                message: "say hello first".into(),
            }),
            (_, ClientPacket::Hello { .. }) => Err(Fail {
                code: ErrorCode::AlreadyRegistered,
                target: String::new(),
                message: "hello was already accepted".into(),
            }),
            (_, ClientPacket::Join { room }) => self.join(id, &room).map(|key| {
                self.native_room_state(id, &key);
                self.history_on_join(id, &key);
            }),
            (_, ClientPacket::Leave { room, reason }) => self.leave(id, &room, &reason),
            (_, ClientPacket::Say { room, text }) => self.say(id, &room, text, false, now),
            (_, ClientPacket::Whisper { to, text }) => {
                self.whisper(id, &to, text, false, now).map(|target| {
                    self.native_away_of(id, target);
                })
            }
            (_, ClientPacket::Nick { nick }) => self.change_nick(id, &nick),
            (_, ClientPacket::ListRooms) => {
                self.native_room_list(id);
                Ok(())
            }
            (_, ClientPacket::ListMembers { room }) => self.room_key(&room).map(|key| {
                self.native_members(id, &key);
            }),
            (_, ClientPacket::Ping { token }) => {
                self.send_packet(id, &ServerPacket::Pong { token });
                Ok(())
            }
            (_, ClientPacket::SetTopic { room, topic }) => self.set_topic(id, &room, &topic),
            (_, ClientPacket::Kick { room, nick, reason }) => self.kick(id, &room, &nick, &reason),
            (_, ClientPacket::Away { message }) => self.set_away(id, &message).map(|()| {
                self.native_away_of(id, id);
            }),
            (_, ClientPacket::Whois { nick }) => self.native_whois(id, &nick, now),
            (
                _,
                ClientPacket::SetMode {
                    room,
                    mode,
                    on,
                    nick,
                },
            ) => self.set_mode(id, &room, mode, on, &nick),
            (
                _,
                ClientPacket::History {
                    room,
                    before,
                    limit,
                },
            ) => self.history_request(id, &room, before, limit),
        };
        if let Err(fail) = result {
            self.native_error(id, fail.code, request_type, seq, fail.message);
            if matches!(
                fail.code,
                ErrorCode::UnsupportedVersion | ErrorCode::BadPassword
            ) {
                self.close(id, fail.code, "hello refused", "");
            }
        }
    }

    fn native_hello(
        &mut self,
        id: ConnId,
        version: u16,
        nick: &str,
        password: &str,
    ) -> Result<(), Fail> {
        if version != PROTOCOL_VERSION {
            return Err(Fail {
                code: ErrorCode::UnsupportedVersion,
                target: String::new(),
                message: format!(
                    "version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            });
        }
        if self
            .config
            .password
            .as_deref()
            .is_some_and(|p| p != password)
        {
            return Err(Fail {
                code: ErrorCode::BadPassword,
                target: String::new(),
                message: "wrong server password".into(),
            });
        }
        self.register(id, nick, "", "")?;
        let welcome = ServerPacket::Welcome {
            version: PROTOCOL_VERSION,
            nick: nick.to_owned(),
            limits: self.config.limits(),
        };
        self.send_packet(id, &welcome);
        Ok(())
    }

    /// What a joiner learns: the member list, then the topic if there is one.
    fn native_room_state(&mut self, id: ConnId, key: &str) {
        self.native_members(id, key);
        if let Some(room) = self.registry.room(key) {
            if !room.topic.is_empty() {
                let topic = ServerPacket::Topic {
                    room: room.name.clone(),
                    topic: room.topic.clone(),
                    by: room.topic_by.clone(),
                };
                self.send_packet(id, &topic);
            }
        }
    }

    /// Tells `to` the away status of `whom` (for whispers, only if away).
    fn native_away_of(&mut self, to: ConnId, whom: ConnId) {
        let Some(conn) = self.conns.get(&whom) else {
            return;
        };
        if whom != to && conn.away.is_empty() {
            return;
        }
        let away = ServerPacket::Away {
            nick: conn.nick.clone(),
            message: conn.away.clone(),
        };
        self.send_packet(to, &away);
    }

    fn native_room_list(&mut self, id: ConnId) {
        let rooms = self.registry.list();
        let budget = self.list_budget(0);
        for (part, last) in chunks(rooms, budget, |r| str_wire_len(&r.name) + 4) {
            self.send_packet(id, &ServerPacket::RoomList { rooms: part, last });
        }
    }

    /// Sends a room's member list to one connection, split to fit the frame limit.
    fn native_members(&mut self, id: ConnId, key: &str) {
        let Some(room) = self.registry.room(key) else {
            return;
        };
        let name = room.name.clone();
        let members = self.members(key);
        let budget = self.list_budget(str_wire_len(&name));
        for (part, last) in chunks(members, budget, |m: &Member| str_wire_len(&m.nick) + 1) {
            self.send_packet(
                id,
                &ServerPacket::Members {
                    room: name.clone(),
                    members: part,
                    last,
                },
            );
        }
    }

    fn native_whois(&mut self, id: ConnId, nick: &str, now: Instant) -> Result<(), Fail> {
        let Some(target) = self.registry.find_nick(nick) else {
            return Err(Fail {
                code: ErrorCode::NoSuchNick,
                target: nick.to_owned(),
                message: format!("no one is called `{nick}`"),
            });
        };
        let Some(conn) = self.conns.get(&target) else {
            return Ok(());
        };
        let rooms = conn
            .rooms
            .iter()
            .filter_map(|k| self.registry.room(k))
            .map(|r| Member {
                nick: r.name.clone(),
                flags: r.flags(target),
            })
            .collect();
        let reply = ServerPacket::WhoisReply {
            nick: conn.nick.clone(),
            away: conn.away.clone(),
            idle_secs: now
                .saturating_duration_since(conn.last_said)
                .as_secs()
                .min(u32::MAX as u64) as u32,
            rooms,
        };
        self.send_packet(id, &reply);
        Ok(())
    }

    /// Bytes left for list entries in one frame body after the type code, flag, count and
    /// `fixed` bytes of other fields.
    fn list_budget(&self, fixed: usize) -> usize {
        (self.config.max_frame_len as usize).saturating_sub(1 + 1 + 2 + fixed)
    }
}
