//! Promises of the wire specs that no other test pins down exactly, each one the answer to a
//! core mutant that used to survive the whole suite (docs/TESTING.md, mutation testing):
//! list parts fit the announced frame limit and are split only when they must be, a frame
//! body of exactly `max_frame_len` is accepted, `inbound_bytes` counts what the server holds,
//! the welcome announces the configured keepalive times, and an IRC `PONG` is answered with
//! nothing.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};
use support::Net;
use switchboard_core::packet::LENGTH_PREFIX;
use switchboard_core::{
    ClientEvent, ClientPacket, Config, DecodeError, FrameDecoder, Packet, ServerPacket,
};

/// The default configuration without flood control, changed by `change`.
fn quiet_with(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.msg_rate = 0;
    change(&mut config);
    config
}

fn quiet() -> Config {
    quiet_with(|_| {})
}

/// Bytes a string takes on the wire: a `u16` length, then the bytes.
fn str_len(s: &str) -> usize {
    2 + s.len()
}

/// Every frame the server sent to client `i`, decoded, with its body length.
fn frames(net: &Net, i: usize) -> Vec<(usize, ServerPacket)> {
    let mut decoder = FrameDecoder::new(u32::MAX);
    let mut input = &net.output[&net.id(i)][..];
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut input).expect("well-formed output") {
        let packet = ServerPacket::decode(frame.type_code, frame.payload).expect("a packet");
        out.push((1 + frame.payload.len(), packet));
    }
    assert!(
        input.is_empty() && decoder.buffered() == 0,
        "a partial frame"
    );
    out
}

/// Checks every Members and RoomList part client `i` got: each fits `max`, and each part but
/// a list's last is full (its successor's first entry would not have fit), so lists are
/// split exactly when they must be.
fn check_list_parts(net: &Net, i: usize, max: usize) -> Result<usize, String> {
    let frames = frames(net, i);
    let mut parts = 0;
    for (k, (len, packet)) in frames.iter().enumerate() {
        if *len > max {
            return Err(format!(
                "a {len}-byte frame over the {max}-byte limit: {packet:?}"
            ));
        }
        let next_entry = match (packet, frames.get(k + 1)) {
            (
                ServerPacket::Members { last: false, .. },
                Some((_, ServerPacket::Members { members, .. })),
            ) => members.first().map(|m| str_len(&m.nick) + 1),
            (
                ServerPacket::RoomList { last: false, .. },
                Some((_, ServerPacket::RoomList { rooms, .. })),
            ) => rooms.first().map(|r| str_len(&r.name) + 4),
            (ServerPacket::Members { last: false, .. }, _)
            | (ServerPacket::RoomList { last: false, .. }, _) => {
                return Err(format!("part {k} is not last and no part follows it"));
            }
            _ => None,
        };
        if matches!(
            packet,
            ServerPacket::Members { .. } | ServerPacket::RoomList { .. }
        ) {
            parts += 1;
        }
        if let Some(entry) = next_entry {
            if len + entry <= max {
                return Err(format!(
                    "a {len}-byte part split early: the next {entry}-byte entry fits in {max}"
                ));
            }
        }
    }
    Ok(parts)
}

/// A padded nickname or room name of `len` bytes, unique by `i`.
fn padded(prefix: char, i: usize, len: usize) -> String {
    let mut s = format!("{prefix}{i}");
    while s.len() < len {
        s.push('x');
    }
    s
}

#[test]
fn a_member_list_longer_than_a_frame_comes_in_full_parts_that_fit() {
    let max = 120;
    let mut net = Net::new(quiet_with(|c| c.max_frame_len = max as u32));
    let users: Vec<usize> = (0..30)
        .map(|i| net.native(&padded('u', i, 5 + i % 20)))
        .collect();
    for &u in &users {
        net.client(u).join("room");
        net.pump();
    }
    let last = *users.last().unwrap();
    net.client(last).list_members("room");
    net.client(last).list_rooms();
    net.pump();
    let parts = check_list_parts(&net, last, max).unwrap();
    // The join's list and the asked-for one, each in several parts, and the room list.
    assert!(parts >= 5, "{parts} parts");
    let members = net
        .events(last)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Members { members, .. } => Some(members.len()),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(members, vec![30, 30]);
}

#[test]
fn a_room_list_longer_than_a_frame_comes_in_full_parts_that_fit() {
    let max = 100;
    let mut net = Net::new(quiet_with(|c| c.max_frame_len = max as u32));
    let a = net.native("alice");
    for r in 0..25 {
        net.client(a).join(&padded('r', r, 3 + r % 30));
    }
    net.pump();
    net.client(a).list_rooms();
    net.pump();
    check_list_parts(&net, a, max).unwrap();
    let lists: Vec<usize> = net
        .events(a)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::RoomList(rooms) => Some(rooms.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lists, vec![25]);
    let room_list_parts = frames(&net, a)
        .iter()
        .filter(|(_, p)| matches!(p, ServerPacket::RoomList { .. }))
        .count();
    assert!(room_list_parts > 1, "{room_list_parts} parts");
}

/// A room of members with drawn nick lengths, rooms with drawn name lengths and a drawn
/// frame limit.
#[derive(Debug, Clone)]
struct Lists {
    max_frame_len: usize,
    nicks: Vec<usize>,
    rooms: Vec<usize>,
}

impl Arbitrary for Lists {
    fn arbitrary(g: &mut Gen) -> Self {
        let nicks = (0..usize::arbitrary(g) % 25 + 1)
            .map(|_| usize::arbitrary(g) % 32 + 1)
            .collect();
        let rooms = (0..usize::arbitrary(g) % 20)
            .map(|_| usize::arbitrary(g) % 64 + 1)
            .collect();
        Lists {
            // Room for at least the longest entry and the room name (64 + 2 + 4 + 4 + 66).
            max_frame_len: 150 + usize::arbitrary(g) % 300,
            nicks,
            rooms,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        let fewer_nicks = (me.nicks.len() > 1).then(|| Lists {
            nicks: me.nicks[..me.nicks.len() - 1].to_vec(),
            ..me.clone()
        });
        let fewer_rooms = (!me.rooms.is_empty()).then(|| Lists {
            rooms: me.rooms[..me.rooms.len() - 1].to_vec(),
            ..me.clone()
        });
        Box::new(fewer_nicks.into_iter().chain(fewer_rooms))
    }
}

fn lists_fit(lists: Lists) -> TestResult {
    let mut net = Net::new(quiet_with(|c| c.max_frame_len = lists.max_frame_len as u32));
    let room = padded('q', 0, 64);
    let users: Vec<usize> = lists
        .nicks
        .iter()
        .enumerate()
        .map(|(i, &len)| net.native(&padded('n', i, len.max(i.to_string().len() + 1))))
        .collect();
    for &u in &users {
        net.client(u).join(&room);
        net.pump();
    }
    for (r, &len) in lists.rooms.iter().enumerate() {
        net.client(users[0])
            .join(&padded('r', r, len.max(r.to_string().len() + 1)));
    }
    net.pump();
    let last = *users.last().unwrap();
    net.client(last).list_members(&room);
    net.client(last).list_rooms();
    net.pump();
    if let Err(e) = check_list_parts(&net, last, lists.max_frame_len) {
        return TestResult::error(e);
    }
    let heard: Vec<usize> = net
        .events(last)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Members { room: r, members } if r == room => Some(members.len()),
            ClientEvent::RoomList(rooms) => Some(rooms.len()),
            _ => None,
        })
        .collect();
    let want = vec![users.len(), users.len(), 1 + lists.rooms.len()];
    if heard != want {
        return TestResult::error(format!("list lengths {heard:?}, not {want:?}"));
    }
    TestResult::passed()
}

#[test]
fn list_parts_always_fit_and_are_split_only_when_they_must() {
    quickcheck(lists_fit as fn(Lists) -> TestResult);
}

/// A frame of `len` body bytes: type code 0x7F and filler (the decoder does not parse it).
fn raw_frame(len: u32) -> Vec<u8> {
    let mut f = len.to_be_bytes().to_vec();
    f.push(0x7F);
    f.resize(LENGTH_PREFIX + len as usize, b'.');
    f
}

#[test]
fn the_decoder_takes_a_body_of_exactly_the_limit_and_refuses_one_more() {
    for max in [1u32, 2, 100, 65_536] {
        // Whole in one input (the copy-free path)...
        let frame = raw_frame(max);
        let mut d = FrameDecoder::new(max);
        let mut input = &frame[..];
        let got = d.decode(&mut input).unwrap().expect("a frame");
        assert_eq!(1 + got.payload.len(), max as usize);
        assert!(input.is_empty());
        // ...and a byte at a time (the buffered path).
        let mut d = FrameDecoder::new(max);
        let mut whole = 0;
        for b in &frame {
            let mut input = std::slice::from_ref(b);
            if let Some(f) = d.decode(&mut input).unwrap() {
                assert_eq!(1 + f.payload.len(), max as usize);
                whole += 1;
            }
        }
        assert_eq!(whole, 1);
        // One byte more is refused on either path, from the prefix alone.
        let over = (max + 1).to_be_bytes();
        let mut d = FrameDecoder::new(max);
        let err = d.decode(&mut &over[..]).unwrap_err();
        assert!(matches!(err, DecodeError::FrameTooLarge { .. }), "{err:?}");
        let mut d = FrameDecoder::new(max);
        assert!(d.decode(&mut &over[..2]).unwrap().is_none());
        let err = d.decode(&mut &over[2..]).unwrap_err();
        assert!(matches!(err, DecodeError::FrameTooLarge { .. }), "{err:?}");
    }
}

#[test]
fn the_server_accepts_a_request_of_exactly_max_frame_len() {
    let max = 200;
    let mut net = Net::new(quiet_with(|c| c.max_frame_len = max as u32));
    let a = net.native("alice");
    net.client(a).join("r");
    net.pump();
    net.events(a);
    // Type code, room "r", then text to make the body exactly `max`.
    let text = "x".repeat(max - 1 - str_len("r") - 2);
    let say = ClientPacket::Say {
        room: "r".into(),
        text: text.clone(),
    };
    let mut buf = BytesMut::new();
    say.encode_frame(&mut buf);
    assert_eq!(buf.len(), LENGTH_PREFIX + max);
    net.client(a).send(&say);
    net.pump();
    assert_eq!(
        net.events(a),
        vec![ClientEvent::Message {
            room: "r".into(),
            from: "alice".into(),
            seq: 1,
            text,
        }]
    );
}

#[test]
fn inbound_bytes_counts_a_partial_frame_a_partial_line_and_queued_requests() {
    let mut net = Net::new(quiet());
    let a = net.native("alice");
    let id = net.id(a);
    assert_eq!(net.server.inbound_bytes(id), 0);
    // Half a ping frame waits in the decoder.
    let ping = ClientPacket::Ping { token: 7 }.to_frame();
    net.server.handle_input(id, &ping[..6], net.now);
    assert_eq!(net.server.inbound_bytes(id), 6);
    net.server.handle_input(id, &ping[6..], net.now);
    net.pump();
    assert_eq!(net.server.inbound_bytes(id), 0);
    // An IRC connection's partial line.
    let irc = net.raw();
    net.send(irc, b"NICK bob\r\nUSER bob 0 * :Bob\r\n");
    net.take_text(irc);
    net.server.handle_input(irc, b"PRIVMSG ali", net.now);
    assert_eq!(net.server.inbound_bytes(irc), 11);
    // Over the rate, whole requests wait in the inbound queue.
    let mut net = Net::new(quiet_with(|c| {
        c.msg_rate = 1;
        c.msg_burst = 1;
    }));
    let a = net.native("alice");
    let id = net.id(a);
    let mut burst = Vec::new();
    for token in 0..5 {
        burst.extend_from_slice(&ClientPacket::Ping { token }.to_frame());
    }
    net.server.handle_input(id, &burst, net.now);
    let held = net.server.inbound_bytes(id);
    assert!(held > 0 && held <= burst.len(), "{held} of {}", burst.len());
    for _ in 0..100 {
        net.advance(Duration::from_secs(1));
    }
    assert_eq!(net.server.inbound_bytes(id), 0);
}

#[test]
fn the_welcome_announces_the_configured_keepalive_times() {
    for (ping, idle) in [(30_000, 90_000), (1_500, 4_000), (250, 251)] {
        let mut net = Net::new(quiet_with(|c| {
            c.ping_interval = Duration::from_millis(ping);
            c.idle_timeout = Duration::from_millis(idle)
        }));
        let id = net.server.open(net.now);
        let mut client = switchboard_core::Client::new("alice");
        client.set_paced(false);
        net.clients.push((id, client));
        net.pump();
        match &net.events(0)[..] {
            [ClientEvent::Welcome { limits, .. }] => {
                assert_eq!(u64::from(limits.ping_interval_ms), ping);
                assert_eq!(u64::from(limits.idle_timeout_ms), idle);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_irc_pong_is_answered_with_nothing() {
    let mut net = Net::new(quiet());
    let i = net.raw();
    net.send(i, b"NICK bob\r\nUSER bob 0 * :Bob\r\n");
    assert!(net.take_text(i).contains(" 001 bob "));
    net.send(i, b"PONG :switchboard.local\r\nPONG x\r\n");
    assert_eq!(net.take_text(i), "");
    // Still registered and answering.
    net.send(i, b"PING t\r\n");
    assert!(net.take_text(i).contains("PONG"));
}

#[test]
fn the_decoder_reports_what_it_holds_and_drops_a_large_buffer_once_done() {
    let big = raw_frame(10_000);
    let small = raw_frame(8);
    let mut d = FrameDecoder::new(65_536);
    // A large frame arriving in pieces is held, and its memory is counted.
    let mut input = &big[..5_000];
    assert!(d.decode(&mut input).unwrap().is_none());
    assert_eq!(d.buffered(), 5_000);
    assert!(d.capacity() >= 5_000, "capacity {}", d.capacity());
    let mut input = &big[5_000..];
    let frame = d.decode(&mut input).unwrap().expect("the large frame");
    assert_eq!(frame.payload.len(), 9_999);
    // The next call lets the large buffer go (an idle connection keeps no large buffer)...
    let mut input = &small[..3];
    assert!(d.decode(&mut input).unwrap().is_none());
    assert_eq!(d.buffered(), 3);
    assert!(d.capacity() < 4_096, "capacity {}", d.capacity());
    // ...and the small frame after it decodes whole.
    let mut input = &small[3..];
    let frame = d.decode(&mut input).unwrap().expect("the small frame");
    assert_eq!(frame.payload.len(), 7);
}

#[test]
fn a_string_past_the_u16_length_is_cut_at_a_character_boundary() {
    // 80,000 bytes of a two-byte character: byte 65,535 falls inside one.
    let text = "é".repeat(40_000);
    let say = ClientPacket::Say {
        room: "r".into(),
        text,
    };
    let frame = say.to_frame();
    let mut decoder = FrameDecoder::new(u32::MAX);
    let got = decoder.decode(&mut &frame[..]).unwrap().expect("a frame");
    match ClientPacket::decode(got.type_code, got.payload).unwrap() {
        ClientPacket::Say { room, text } => {
            assert_eq!(room, "r");
            assert_eq!(text, "é".repeat(32_767));
        }
        other => panic!("{other:?}"),
    }
}
