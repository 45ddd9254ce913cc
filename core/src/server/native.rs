//! The native protocol front: frames in, chat operations, native replies out.

use std::time::Instant;

use super::cluster::Replay;
use super::conn::{Phase, Proto};
use super::outcome::{Away, Fail};
use super::rooms::Change;
use super::{chunks, Server};
use crate::config::MAX_ERROR_TEXT;
use crate::packet::{str_wire_len, ClientPacket, Member, Packet, ServerPacket, PROTOCOL_VERSION};
use crate::rate::cost_of;
use crate::{ConnId, DecodeError, ErrorCode};

impl Server {
    /// Takes one frame from the front of `input` and handles it; false if `input` held
    /// no whole frame (its bytes are then buffered by the decoder).
    pub(super) fn native_step(&mut self, id: ConnId, input: &mut &[u8], now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let Proto::Native(decoder) = &mut conn.proto else {
            return false;
        };
        let seq = conn.requests.wrapping_add(1);
        let decoded = match decoder.decode(input) {
            Ok(None) => return false,
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
        true
    }

    /// A peer broke the framing or packet rules: tell it why and close it.
    fn violation(&mut self, id: ConnId, request_type: u8, seq: u32, e: DecodeError) {
        let msg = e.to_string();
        self.native_error(id, e.code(), request_type, seq, msg.clone());
        self.close(id, e.code(), &msg, "protocol error");
    }

    pub(super) fn native_error(
        &mut self,
        id: ConnId,
        code: ErrorCode,
        request_type: u8,
        seq: u32,
        mut message: String,
    ) {
        // An error quotes what the peer sent, which may be as long as a frame.
        if message.len() > MAX_ERROR_TEXT {
            let cut = crate::line::cut(&message, MAX_ERROR_TEXT - 3).len();
            message.truncate(cut);
            message.push_str("...");
        }
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

    pub(super) fn native_packet(
        &mut self,
        id: ConnId,
        seq: u32,
        packet: ClientPacket,
        now: Instant,
    ) {
        let request_type = packet.type_code();
        // Requests that may wait for a cluster nick claim are kept to be replayed.
        let replay = (self.cluster.is_some()
            && matches!(
                packet,
                ClientPacket::Hello { .. } | ClientPacket::Nick { .. }
            ))
        .then(|| packet.clone());
        // Every request counts against the rate; those that only keep a session alive or
        // end it are cheap.
        self.charge(id, cost_of(&packet), now);
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
            (_, ClientPacket::Join { room, key }) => self.join(id, &room, &key, now).map(|k| {
                self.native_room_state(id, &k);
                self.history_on_join(id, &k);
            }),
            (_, ClientPacket::Leave { room, reason }) => self.leave(id, &room, &reason),
            (_, ClientPacket::Say { room, text }) => self.say(id, &room, text, false, now),
            (_, ClientPacket::Whisper { to, text }) => {
                self.whisper(id, &to, text, false, now).map(|reached| {
                    if let Some(away) = reached.away {
                        self.native_away(id, away);
                    }
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
            (_, ClientPacket::SetTopic { room, topic }) => self.set_topic(id, &room, &topic, now),
            (_, ClientPacket::Kick { room, nick, reason }) => self.kick(id, &room, &nick, &reason),
            (_, ClientPacket::Away { message }) => self.set_away(id, &message).map(|()| {
                // The confirmation: one's own nick and the message (empty: back).
                let away = Away {
                    nick: self.nick(id),
                    message,
                };
                self.native_away(id, away);
            }),
            (_, ClientPacket::Whois { nick }) => self.whois(id, &nick, now).map(|w| {
                let reply = ServerPacket::WhoisReply {
                    nick: w.nick,
                    away: w.away,
                    idle_secs: w.idle_secs.min(u32::MAX as u64) as u32,
                    rooms: (w.rooms.into_iter())
                        .map(|(nick, flags)| Member { nick, flags })
                        .collect(),
                };
                self.send_packet(id, &reply);
            }),
            (
                _,
                ClientPacket::SetMode {
                    room,
                    mode,
                    on,
                    nick,
                },
            ) => self.set_room_mode(id, &room, Change::mode(mode, &nick), on),
            (
                _,
                ClientPacket::SetRule {
                    room,
                    rule,
                    on,
                    arg,
                },
            ) => self.set_room_mode(id, &room, Change::rule(rule, &arg), on),
            (_, ClientPacket::Invite { room, nick }) => {
                self.invite(id, &room, &nick).map(|reached| {
                    let target = reached.target;
                    // The inviter's confirmation, unless it invited itself (told already),
                    // then whether the invitee is away, as after a whisper.
                    if target != id {
                        let invited = ServerPacket::Invited {
                            room: self.room_name(&room),
                            by: self.nick(id),
                            nick: self.nick(target),
                        };
                        self.send_packet(id, &invited);
                    }
                    if let Some(away) = reached.away {
                        self.native_away(id, away);
                    }
                })
            }
            (_, ClientPacket::ListRules { room }) => self.room_key(&room).map(|key| {
                self.native_rules(id, &key);
            }),
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
            if let Some(packet) = replay {
                if self.cluster_park(id, || Replay::Native(seq, packet)) {
                    return;
                }
            }
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
        self.check_password(Some(password))?;
        // A native client has no user name of its own: its nick at sign-on stands in, so
        // that IRC bans by user name (`*!*~alice@*`) single it out.
        let user = format!("~{}", crate::line::cut(nick, 16));
        self.register(id, nick, &user, "")?;
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

    fn native_away(&mut self, to: ConnId, away: Away) {
        let away = ServerPacket::Away {
            nick: away.nick,
            message: away.message,
        };
        self.send_packet(to, &away);
    }

    /// A room's rules; the key only for members.
    fn native_rules(&mut self, id: ConnId, key: &str) {
        let Some(r) = self.registry.room(key) else {
            return;
        };
        let rules = ServerPacket::Rules {
            room: r.name.clone(),
            modes: r.flag_letters(),
            key: if r.is_member(id) {
                r.key.clone()
            } else {
                String::new()
            },
            limit: r.limit,
            bans: r.bans.clone(),
        };
        self.send_packet(id, &rules);
    }

    fn native_room_list(&mut self, id: ConnId) {
        let rooms = self.registry.list_for(id);
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

    /// Bytes left for list entries in one frame body after the type code, flag, count and
    /// `fixed` bytes of other fields.
    fn list_budget(&self, fixed: usize) -> usize {
        (self.config.max_frame_len as usize).saturating_sub(1 + 1 + 2 + fixed)
    }
}
