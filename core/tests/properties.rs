//! quickcheck properties of the wire format: round trips, chunking, and hostile bytes.

use std::time::Instant;

use bytes::BytesMut;
use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};
use switchboard_core::{
    ClientPacket, Config, DecodeError, ErrorCode, FrameDecoder, Limits, Member, Packet, RoomInfo,
    RoomMode, RoomRule, Server, ServerPacket,
};

#[derive(Debug, Clone)]
struct AnyClient(ClientPacket);

#[derive(Debug, Clone)]
struct AnyServer(ServerPacket);

fn s(g: &mut Gen) -> String {
    String::arbitrary(g)
}

fn mode(g: &mut Gen) -> RoomMode {
    *g.choose(&[RoomMode::TopicLock, RoomMode::Operator, RoomMode::Voice])
        .unwrap_or(&RoomMode::Voice)
}

fn rule(g: &mut Gen) -> RoomRule {
    let letters = b"klimnsbeI";
    RoomRule::from_letter(*g.choose(letters).unwrap_or(&b'k')).unwrap_or(RoomRule::Key)
}

fn members(g: &mut Gen) -> Vec<Member> {
    Vec::<(String, u8)>::arbitrary(g)
        .into_iter()
        .map(|(nick, flags)| Member { nick, flags })
        .collect()
}

fn code(g: &mut Gen) -> ErrorCode {
    ErrorCode::from_u16(u16::arbitrary(g))
}

impl Arbitrary for AnyClient {
    fn arbitrary(g: &mut Gen) -> Self {
        let p = match u8::arbitrary(g) % 19 {
            0 => ClientPacket::Hello {
                version: u16::arbitrary(g),
                nick: s(g),
                password: s(g),
            },
            1 => ClientPacket::Join {
                room: s(g),
                key: s(g),
            },
            16 => ClientPacket::SetRule {
                room: s(g),
                rule: rule(g),
                on: bool::arbitrary(g),
                arg: s(g),
            },
            17 => ClientPacket::Invite {
                room: s(g),
                nick: s(g),
            },
            18 => ClientPacket::ListRules { room: s(g) },
            2 => ClientPacket::Leave {
                room: s(g),
                reason: s(g),
            },
            3 => ClientPacket::Say {
                room: s(g),
                text: s(g),
            },
            4 => ClientPacket::Whisper {
                to: s(g),
                text: s(g),
            },
            5 => ClientPacket::Nick { nick: s(g) },
            6 => ClientPacket::ListRooms,
            7 => ClientPacket::ListMembers { room: s(g) },
            8 => ClientPacket::Ping {
                token: u64::arbitrary(g),
            },
            9 => ClientPacket::Pong {
                token: u64::arbitrary(g),
            },
            10 => ClientPacket::Quit { reason: s(g) },
            11 => ClientPacket::SetTopic {
                room: s(g),
                topic: s(g),
            },
            12 => ClientPacket::Kick {
                room: s(g),
                nick: s(g),
                reason: s(g),
            },
            13 => ClientPacket::Away { message: s(g) },
            14 => ClientPacket::Whois { nick: s(g) },
            _ => ClientPacket::SetMode {
                room: s(g),
                mode: mode(g),
                on: bool::arbitrary(g),
                nick: s(g),
            },
        };
        AnyClient(p)
    }
}

impl Arbitrary for AnyServer {
    fn arbitrary(g: &mut Gen) -> Self {
        let p = match u8::arbitrary(g) % 20 {
            0 => ServerPacket::Welcome {
                version: u16::arbitrary(g),
                nick: s(g),
                limits: Limits {
                    max_frame_len: u32::arbitrary(g),
                    max_nick_len: u16::arbitrary(g),
                    max_room_len: u16::arbitrary(g),
                    max_text_len: u16::arbitrary(g),
                    max_reason_len: u16::arbitrary(g),
                    max_rooms: u16::arbitrary(g),
                    ping_interval_ms: u32::arbitrary(g),
                    idle_timeout_ms: u32::arbitrary(g),
                    msg_rate: u32::arbitrary(g),
                    msg_burst: u32::arbitrary(g),
                },
            },
            1 => ServerPacket::Joined {
                room: s(g),
                nick: s(g),
            },
            2 => ServerPacket::Left {
                room: s(g),
                nick: s(g),
                reason: s(g),
            },
            3 => ServerPacket::Message {
                room: s(g),
                from: s(g),
                seq: u64::arbitrary(g),
                text: s(g),
            },
            4 => ServerPacket::Direct {
                from: s(g),
                to: s(g),
                text: s(g),
            },
            5 => ServerPacket::RoomList {
                rooms: Vec::<(String, u32)>::arbitrary(g)
                    .into_iter()
                    .map(|(name, members)| RoomInfo { name, members })
                    .collect(),
                last: bool::arbitrary(g),
            },
            6 => ServerPacket::Members {
                room: s(g),
                members: members(g),
                last: bool::arbitrary(g),
            },
            7 => ServerPacket::NickChanged {
                old: s(g),
                new: s(g),
            },
            8 => ServerPacket::Ping {
                token: u64::arbitrary(g),
            },
            9 => ServerPacket::Pong {
                token: u64::arbitrary(g),
            },
            10 => ServerPacket::Error {
                code: code(g),
                request_type: u8::arbitrary(g),
                request_seq: u32::arbitrary(g),
                message: s(g),
            },
            11 => ServerPacket::Bye {
                code: code(g),
                reason: s(g),
            },
            12 => ServerPacket::Topic {
                room: s(g),
                topic: s(g),
                by: s(g),
            },
            13 => ServerPacket::Kicked {
                room: s(g),
                nick: s(g),
                by: s(g),
                reason: s(g),
            },
            14 => ServerPacket::Away {
                nick: s(g),
                message: s(g),
            },
            15 => ServerPacket::WhoisReply {
                nick: s(g),
                away: s(g),
                idle_secs: u32::arbitrary(g),
                rooms: members(g),
            },
            17 => ServerPacket::RuleChanged {
                room: s(g),
                by: s(g),
                rule: rule(g),
                on: bool::arbitrary(g),
                arg: s(g),
            },
            18 => ServerPacket::Invited {
                room: s(g),
                by: s(g),
                nick: s(g),
            },
            19 => ServerPacket::Rules {
                room: s(g),
                modes: s(g),
                key: s(g),
                limit: u32::arbitrary(g),
                bans: Vec::<String>::arbitrary(g),
            },
            _ => ServerPacket::ModeChanged {
                room: s(g),
                by: s(g),
                mode: mode(g),
                on: bool::arbitrary(g),
                nick: s(g),
            },
        };
        AnyServer(p)
    }
}

/// Decodes a whole stream fed in the given chunk sizes (cycled); also returns the bytes of a
/// partial frame left at the end.
fn decode_all<P: Packet>(stream: &[u8], chunks: &[usize]) -> Result<(Vec<P>, usize), DecodeError> {
    let mut dec = FrameDecoder::new(1 << 20);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .map_or(stream.len(), |c| c % 17 + 1)
            .min(stream.len() - pos);
        i += 1;
        let mut input = &stream[pos..pos + n];
        pos += n;
        while let Some(f) = dec.decode(&mut input)? {
            out.push(P::decode(f.type_code, f.payload)?);
        }
    }
    Ok((out, dec.buffered()))
}

/// Decoding either fails with an error, or yields packets that encode back to exactly the
/// bytes consumed, with only a partial frame left over.
fn canonical<P: Packet>(bytes: &[u8], chunks: &[usize]) -> bool {
    match decode_all::<P>(bytes, chunks) {
        Err(_) => true,
        Ok((packets, rest)) => {
            let mut again = BytesMut::new();
            for p in &packets {
                p.encode_frame(&mut again);
            }
            again[..] == bytes[..bytes.len() - rest]
        }
    }
}

quickcheck! {
    fn client_packets_round_trip(p: AnyClient) -> bool {
        let frame = p.0.to_frame();
        ClientPacket::decode(frame[4], &frame[5..]) == Ok(p.0)
    }

    fn server_packets_round_trip(p: AnyServer) -> bool {
        let frame = p.0.to_frame();
        ServerPacket::decode(frame[4], &frame[5..]) == Ok(p.0)
    }

    fn any_chunking_gives_the_same_frames(ps: Vec<AnyServer>, chunks: Vec<usize>) -> bool {
        let mut stream = BytesMut::new();
        for p in &ps {
            p.0.encode_frame(&mut stream);
        }
        let want: Vec<ServerPacket> = ps.into_iter().map(|p| p.0).collect();
        decode_all::<ServerPacket>(&stream, &chunks) == Ok((want, 0))
    }

    fn client_streams_chunk_alike(ps: Vec<AnyClient>, chunks: Vec<usize>) -> bool {
        let mut stream = BytesMut::new();
        for p in &ps {
            p.0.encode_frame(&mut stream);
        }
        let want: Vec<ClientPacket> = ps.into_iter().map(|p| p.0).collect();
        decode_all::<ClientPacket>(&stream, &chunks) == Ok((want, 0))
    }

    fn arbitrary_bytes_end_in_frames_or_a_clear_error(bytes: Vec<u8>, chunks: Vec<usize>) -> bool {
        // A panic fails the property; so does a success that is not exactly what was sent.
        canonical::<ClientPacket>(&bytes, &chunks) && canonical::<ServerPacket>(&bytes, &chunks)
    }

    fn hostile_bytes_after_valid_frames(ps: Vec<AnyClient>, junk: Vec<u8>, chunks: Vec<usize>) -> bool {
        let mut stream = BytesMut::new();
        for p in &ps {
            p.0.encode_frame(&mut stream);
        }
        stream.extend_from_slice(&junk);
        canonical::<ClientPacket>(&stream, &chunks)
    }

    fn server_survives_arbitrary_bytes(prefix_hello: bool, bytes: Vec<u8>, chunks: Vec<usize>) -> TestResult {
        let mut config = Config::default();
        config.max_frame_len = 256;
        let max_inbound = config.max_inbound_bytes;
        let mut server = Server::new(config);
        let now = Instant::now();
        let bystander = server.open(now);
        server.handle_input(bystander, &ClientPacket::Hello { version: 1, nick: "calm".into(), password: String::new() }.to_frame(), now);
        let id = server.open(now);
        if prefix_hello {
            server.handle_input(id, &ClientPacket::Hello { version: 1, nick: "wild".into(), password: String::new() }.to_frame(), now);
        }
        let mut pos = 0;
        for c in chunks.iter().chain(std::iter::once(&usize::MAX)) {
            let n = (c % 13 + 1).min(bytes.len() - pos).min(server.read_budget(id));
            if n == 0 {
                break;
            }
            server.handle_input(id, &bytes[pos..pos + n], now);
            pos += n;
            if pos == bytes.len() {
                break;
            }
        }
        // Whatever happened, only the sender was affected and memory stayed bounded.
        if server.inbound_bytes(id) > max_inbound + 256 + 4 {
            return TestResult::error("inbound bytes past the limit");
        }
        while server.poll_transmit().is_some() {}
        TestResult::from_bool(server.nick_of(bystander) == Some("calm"))
    }
}
