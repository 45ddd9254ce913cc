//! Unit tests of the registry and the room rules, written against the mutants
//! cargo-mutants found no test noticing (see docs/TESTING.md, "Mutation testing").

use std::time::Instant;

use super::{Registry, Room};
use crate::packet::{Member, RoomInfo};
use crate::{ConnId, ErrorCode};

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);
const C: ConnId = ConnId(3);

/// A registry with room `#r` (key `r`) made by `A`, then joined by `B`.
fn two_in_a_room() -> Registry {
    let mut reg = Registry::default();
    let now = Instant::now();
    reg.join("r", "R", A, now);
    reg.join("r", "R", B, now);
    reg
}

fn room(reg: &Registry) -> &Room {
    reg.room("r").expect("room r exists")
}

#[test]
fn the_creator_is_the_only_operator_and_members_keep_join_order() {
    let reg = two_in_a_room();
    let r = room(&reg);
    assert_eq!(r.members, vec![A, B]);
    assert!(r.is_member(A) && r.is_member(B) && !r.is_member(C));
    assert!(r.is_operator(A) && !r.is_operator(B));
    assert!(r.no_outside, "mode n is on by default");
    assert_eq!(r.flag_letters(), "n");
    assert_eq!(reg.room_count(), 1);
}

#[test]
fn flags_report_operator_and_voice_separately() {
    let mut reg = two_in_a_room();
    let r = reg.room_mut("r").unwrap();
    r.voiced.push(B);
    r.voiced.push(A);
    assert_eq!(r.flags(A), Member::OPERATOR | Member::VOICE);
    assert_eq!(r.flags(B), Member::VOICE);
    assert_eq!(r.flags(C), 0);
}

#[test]
fn a_ban_holds_unless_an_exemption_matches() {
    let mut reg = two_in_a_room();
    let r = reg.room_mut("r").unwrap();
    assert!(!r.is_banned("bob!~b@host"), "no bans, nobody banned");
    r.bans.push("bob!*@*".into());
    assert!(r.is_banned("bob!~b@host"));
    assert!(!r.is_banned("carol!~c@host"));
    r.exempts.push("*!*@trusted".into());
    assert!(
        r.is_banned("bob!~b@host"),
        "an exemption for others changes nothing"
    );
    assert!(!r.is_banned("bob!~b@trusted"));
}

#[test]
fn an_invite_exemption_lets_in_only_the_masks_it_names() {
    let mut reg = two_in_a_room();
    let r = reg.room_mut("r").unwrap();
    assert!(!r.is_invite_exempt("bob!~b@host"));
    r.invexes.push("bob!*@*".into());
    assert!(r.is_invite_exempt("bob!~b@host"));
    assert!(!r.is_invite_exempt("carol!~c@host"));
}

#[test]
fn who_may_speak_follows_modes_n_m_and_b() {
    let mut reg = two_in_a_room();
    let r = reg.room_mut("r").unwrap();
    // Mode n: members may, outsiders may not; without it outsiders may too.
    assert!(r.may_speak(B, "b!~b@h"));
    assert!(!r.may_speak(C, "c!~c@h"));
    r.no_outside = false;
    assert!(r.may_speak(C, "c!~c@h"));
    r.no_outside = true;
    // Mode m: only operators and voiced members.
    r.moderated = true;
    assert!(r.may_speak(A, "a!~a@h"));
    assert!(!r.may_speak(B, "b!~b@h"));
    r.voiced.push(B);
    assert!(r.may_speak(B, "b!~b@h"));
    r.moderated = false;
    // Mode b: a banned member is silenced unless voiced; an operator never is.
    r.bans.push("*!*@h".into());
    assert!(r.may_speak(B, "b!~b@h"), "voice overrides a ban");
    r.voiced.clear();
    assert!(!r.may_speak(B, "b!~b@h"));
    assert!(r.may_speak(A, "a!~a@h"));
    assert!(r.may_speak(B, "b!~b@elsewhere"));
}

#[test]
fn flag_letters_come_in_irc_order() {
    let mut reg = two_in_a_room();
    let r = reg.room_mut("r").unwrap();
    r.no_outside = false;
    assert_eq!(r.flag_letters(), "");
    r.invite_only = true;
    r.key = "k".into();
    r.limit = 1;
    r.moderated = true;
    r.no_outside = true;
    r.secret = true;
    r.topic_lock = true;
    assert_eq!(r.flag_letters(), "iklmnst");
    r.invite_only = false;
    r.limit = 0;
    r.secret = false;
    assert_eq!(r.flag_letters(), "kmnt");
}

#[test]
fn leaving_forgets_every_role_and_the_last_one_out_drops_the_room() {
    let mut reg = two_in_a_room();
    let now = Instant::now();
    {
        let r = reg.room_mut("r").unwrap();
        r.operators.push(B);
        r.voiced.push(B);
        r.invited.push(B);
    }
    reg.leave("r", B);
    let r = room(&reg);
    assert_eq!(r.members, vec![A]);
    assert_eq!(r.operators, vec![A]);
    assert!(r.voiced.is_empty() && r.invited.is_empty());
    // Rejoining is a plain join: no operator status, and an invitation is used up.
    reg.room_mut("r").unwrap().invited.push(C);
    reg.join("r", "R", C, now);
    let r = room(&reg);
    assert!(!r.is_operator(C));
    assert!(r.invited.is_empty(), "joining uses up the invitation");
    reg.leave("r", A);
    reg.leave("r", C);
    assert!(reg.room("r").is_none());
    assert_eq!(reg.room_count(), 0);
    reg.leave("r", A); // leaving a room that is gone is a no-op
}

#[test]
fn a_nick_is_held_case_insensitively_by_one_connection() {
    let mut reg = Registry::default();
    assert_eq!(reg.claim_nick("Alice", A), Ok(()));
    assert_eq!(reg.claim_nick("alice", B), Err(ErrorCode::NickTaken));
    assert_eq!(reg.claim_nick("ALICE", A), Ok(()), "re-claiming one's own");
    assert_eq!(reg.find_nick("aLiCe"), Some(A));
    assert_eq!(reg.nick_count(), 1);
    reg.release_nick("alice", B); // not B's: stays
    assert_eq!(reg.find_nick("alice"), Some(A));
    reg.release_nick("ALICE", A);
    assert_eq!(reg.find_nick("alice"), None);
    assert_eq!(reg.nick_count(), 0);
    assert_eq!(reg.claim_nick("alice", B), Ok(()));
}

#[test]
fn holders_are_in_id_order_and_the_peak_is_remembered() {
    let mut reg = Registry::default();
    for (nick, id) in [("c", C), ("a", A), ("b", B)] {
        reg.claim_nick(nick, id).unwrap();
    }
    assert_eq!(reg.holders(), vec![A, B, C]);
    assert_eq!(reg.max_nicks(), 3);
    reg.release_nick("a", A);
    reg.release_nick("b", B);
    assert_eq!(reg.max_nicks(), 3, "the peak outlives the nicks");
    reg.claim_nick("d", A).unwrap();
    assert_eq!(reg.max_nicks(), 3);
    assert_eq!(reg.holders(), vec![A, C]);
}

#[test]
fn whowas_keeps_the_last_256_newest_first() {
    let mut reg = Registry::default();
    reg.remember("Bob", "~b1", "first");
    reg.remember("carol", "~c", "c");
    reg.remember("bob", "~b2", "second");
    let was = reg.was("BOB");
    let users: Vec<&str> = was.iter().map(|(_, u, _)| u.as_str()).collect();
    assert_eq!(users, ["~b2", "~b1"]);
    assert_eq!(was[0].2, "second");
    assert!(reg.was("dave").is_empty());
    for i in 0..255 {
        reg.remember(&format!("n{i}"), "~n", "n");
    }
    // 258 remembered: the two oldest (the first bob and carol) are gone.
    assert_eq!(reg.was("bob").len(), 1);
    assert!(reg.was("carol").is_empty());
    assert_eq!(reg.was("n0").len(), 1);
}

#[test]
fn room_lists_are_sorted_and_hide_secret_rooms_from_outsiders() {
    let mut reg = Registry::default();
    let now = Instant::now();
    reg.join("zed", "Zed", A, now);
    reg.join("alpha", "Alpha", A, now);
    reg.join("alpha", "Alpha", B, now);
    reg.join("mid", "Mid", B, now);
    reg.room_mut("mid").unwrap().secret = true;
    let info = |name: &str, members| RoomInfo {
        name: name.into(),
        members,
    };
    assert_eq!(
        reg.list(),
        vec![info("Alpha", 2), info("Mid", 1), info("Zed", 1)]
    );
    assert_eq!(reg.list_for(A), vec![info("Alpha", 2), info("Zed", 1)]);
    assert_eq!(
        reg.list_for(B),
        vec![info("Alpha", 2), info("Mid", 1), info("Zed", 1)]
    );
    let names: Vec<&str> = reg.sorted().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "Mid", "Zed"]);
}
