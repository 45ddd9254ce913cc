//! Kick, operator and voice over the native protocol alone: who hears what, what the
//! server's state becomes, and which error each refusal gets (docs/PROTOCOL.md, Kick and
//! SetMode). The IRC views of the same rules are tested in core/src/server/tests_irc.rs.

mod support;

use support::{errors, Net};
use switchboard_core::{ClientEvent, Config, ErrorCode, Member, RoomMode, RoomRule};

/// The default configuration without flood control.
fn quiet() -> Config {
    let mut config = Config::default();
    config.msg_rate = 0;
    config
}

/// alice (the creator, so operator), bob and carol in room `r`, their events taken; dave
/// signed on but in no room.
fn room_of_three() -> (Net, [usize; 4]) {
    let mut net = Net::new(quiet());
    let who = ["alice", "bob", "carol", "dave"].map(|n| net.native(n));
    for &i in &who[..3] {
        net.client(i).join("r");
        net.pump();
    }
    for i in who {
        net.events(i);
    }
    (net, who)
}

fn flags_of(net: &mut Net, asker: usize, nick: &str) -> u8 {
    member_of(net, asker, nick).flags
}

/// `nick`'s entry in room `r`'s member list, as `asker` is told it.
fn member_of(net: &mut Net, asker: usize, nick: &str) -> Member {
    net.client(asker).list_members("r");
    net.pump();
    net.events(asker)
        .into_iter()
        .find_map(|e| match e {
            ClientEvent::Members { members, .. } => members.into_iter().find(|m| m.nick == nick),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{nick} is not listed"))
}

#[test]
fn a_kick_is_heard_by_every_member_and_removes_only_the_target() {
    let (mut net, [a, b, c, d]) = room_of_three();
    net.client(a).kick("r", "BOB", "spam");
    net.pump();
    let kicked = ClientEvent::Kicked {
        room: "r".into(),
        nick: "bob".into(),
        by: "alice".into(),
        reason: "spam".into(),
    };
    for i in [a, b, c] {
        assert_eq!(net.events(i), vec![kicked.clone()], "client {i}");
    }
    assert!(net.events(d).is_empty());
    assert_eq!(
        net.server.room_members("r"),
        Some(vec!["alice".to_owned(), "carol".to_owned()])
    );
    assert!(net.client(b).room("r").is_none());
    assert!(net.client(a).room("r").is_some());
    // The kicked member no longer hears the room, and may come back.
    net.client(a).say("r", "bye bob");
    net.pump();
    assert!(net.events(b).is_empty());
    net.client(b).join("r");
    net.pump();
    assert_eq!(
        net.server.room_members("r"),
        Some(vec!["alice".into(), "carol".into(), "bob".into()])
    );
}

#[test]
fn an_operator_may_kick_itself_and_the_room_lives_on() {
    let (mut net, [a, b, _, _]) = room_of_three();
    net.client(a).kick("r", "alice", "");
    net.pump();
    assert!(matches!(&net.events(b)[..], [ClientEvent::Kicked { nick, .. }] if nick == "alice"));
    assert_eq!(
        net.server.room_members("r"),
        Some(vec!["bob".to_owned(), "carol".to_owned()])
    );
}

#[test]
fn kick_refusals_name_the_first_failed_check() {
    let (mut net, [a, b, c, d]) = room_of_three();
    let cases: [(usize, &str, &str, &str, ErrorCode); 7] = [
        (a, "nowhere", "bob", "", ErrorCode::NoSuchRoom),
        (a, "bad room!", "bob", "", ErrorCode::NoSuchRoom),
        (d, "r", "bob", "", ErrorCode::NotInRoom),
        // Not an operator, whoever the target: the rank is checked before the target.
        (b, "r", "carol", "", ErrorCode::NotOperator),
        (b, "r", "nobody", "", ErrorCode::NotOperator),
        (a, "r", "nobody", "", ErrorCode::NoSuchNick),
        (a, "r", "dave", "", ErrorCode::TargetNotInRoom),
    ];
    for (who, room, nick, reason, code) in cases {
        net.client(who).kick(room, nick, reason);
        net.pump();
        assert_eq!(errors(&net.events(who)), vec![code], "{room} {nick}");
        for i in [a, b, c, d] {
            assert!(net.events(i).is_empty(), "client {i} heard a refused kick");
        }
    }
    net.client(a).kick("r", "bob", "line\nbreak");
    net.pump();
    assert_eq!(errors(&net.events(a)), vec![ErrorCode::InvalidText]);
    assert_eq!(
        net.server.room_members("r"),
        Some(vec!["alice".into(), "bob".into(), "carol".into()])
    );
}

#[test]
fn operator_status_is_given_shown_used_and_taken_back() {
    let (mut net, [a, b, c, _]) = room_of_three();
    // bob may not kick until alice makes him an operator.
    net.client(b).kick("r", "carol", "");
    net.pump();
    assert_eq!(errors(&net.events(b)), vec![ErrorCode::NotOperator]);
    net.client(a).set_mode("r", RoomMode::Operator, true, "bob");
    net.pump();
    let opped = ClientEvent::ModeChanged {
        room: "r".into(),
        by: "alice".into(),
        mode: RoomMode::Operator,
        on: true,
        nick: "bob".into(),
    };
    for i in [a, b, c] {
        assert_eq!(net.events(i), vec![opped.clone()], "client {i}");
    }
    assert_eq!(flags_of(&mut net, c, "bob"), Member::OPERATOR);
    assert!(member_of(&mut net, c, "bob").is_operator());
    assert!(net.client(c).room("r").unwrap().is_operator("bob"));
    // Giving it again changes nothing and is answered with nothing.
    net.client(a).set_mode("r", RoomMode::Operator, true, "bob");
    net.pump();
    for i in [a, b, c] {
        assert!(net.events(i).is_empty(), "client {i}");
    }
    // As an operator, bob may take alice's status; then she may not act.
    net.client(b)
        .set_mode("r", RoomMode::Operator, false, "alice");
    net.pump();
    assert!(matches!(
        &net.events(c)[..],
        [ClientEvent::ModeChanged { by, on: false, nick, .. }] if by == "bob" && nick == "alice"
    ));
    assert_eq!(flags_of(&mut net, c, "alice"), 0);
    net.client(a).kick("r", "carol", "");
    net.client(a).set_mode("r", RoomMode::Voice, true, "carol");
    net.pump();
    assert_eq!(
        errors(&net.events(a)),
        vec![ErrorCode::NotOperator, ErrorCode::NotOperator]
    );
    net.client(b).kick("r", "carol", "now I may");
    net.pump();
    assert_eq!(
        net.server.room_members("r"),
        Some(vec!["alice".into(), "bob".into()])
    );
}

#[test]
fn voice_lets_a_member_speak_in_a_moderated_room_until_taken() {
    let (mut net, [a, b, c, _]) = room_of_three();
    net.client(a).set_rule("r", RoomRule::Moderated, true, "");
    net.pump();
    for i in [a, b, c] {
        net.events(i);
    }
    net.client(b).say("r", "hello?");
    net.pump();
    assert_eq!(errors(&net.events(b)), vec![ErrorCode::CannotSpeak]);
    assert!(net.events(c).is_empty());
    net.client(a).set_mode("r", RoomMode::Voice, true, "bob");
    net.pump();
    let voiced = ClientEvent::ModeChanged {
        room: "r".into(),
        by: "alice".into(),
        mode: RoomMode::Voice,
        on: true,
        nick: "bob".into(),
    };
    assert_eq!(net.events(c), vec![voiced.clone()]);
    assert_eq!(net.events(b), vec![voiced]);
    assert_eq!(flags_of(&mut net, c, "bob"), Member::VOICE);
    assert!(!member_of(&mut net, c, "bob").is_operator());
    net.client(b).say("r", "now I may");
    net.pump();
    assert!(matches!(
        &net.events(c)[..],
        [ClientEvent::Message { from, text, .. }] if from == "bob" && text == "now I may"
    ));
    // Voice gives no operator rights.
    net.client(b).kick("r", "carol", "");
    net.pump();
    let ev = net.events(b);
    assert_eq!(errors(&ev), vec![ErrorCode::NotOperator], "{ev:?}");
    // Taken back, bob is silent again; carol never had it.
    net.client(a).set_mode("r", RoomMode::Voice, false, "bob");
    net.pump();
    net.events(b);
    net.client(b).say("r", "still?");
    net.client(c).say("r", "me?");
    net.pump();
    assert!(errors(&net.events(b)).contains(&ErrorCode::CannotSpeak));
    assert!(errors(&net.events(c)).contains(&ErrorCode::CannotSpeak));
    assert_eq!(flags_of(&mut net, a, "bob"), 0);
}

#[test]
fn mode_refusals_name_the_first_failed_check() {
    let (mut net, [a, b, _, d]) = room_of_three();
    let cases: [(usize, &str, RoomMode, &str, ErrorCode); 6] = [
        (a, "nowhere", RoomMode::Voice, "bob", ErrorCode::NoSuchRoom),
        (d, "r", RoomMode::Voice, "bob", ErrorCode::NotInRoom),
        (b, "r", RoomMode::Voice, "bob", ErrorCode::NotOperator),
        (b, "r", RoomMode::TopicLock, "", ErrorCode::NotOperator),
        (a, "r", RoomMode::Voice, "nobody", ErrorCode::NoSuchNick),
        (
            a,
            "r",
            RoomMode::Operator,
            "dave",
            ErrorCode::TargetNotInRoom,
        ),
    ];
    for (who, room, mode, nick, code) in cases {
        net.client(who).set_mode(room, mode, true, nick);
        net.pump();
        assert_eq!(
            errors(&net.events(who)),
            vec![code],
            "{room} {mode:?} {nick}"
        );
    }
    // The topic lock takes no nick; clearing what is not set changes nothing.
    net.client(a).set_mode("r", RoomMode::TopicLock, false, "");
    net.client(a).set_mode("r", RoomMode::Voice, false, "bob");
    net.pump();
    assert!(net.events(a).is_empty());
    assert!(net.events(b).is_empty());
    assert_eq!(flags_of(&mut net, a, "bob"), 0);
}
