//! What the user types, parsed into commands.

use switchboard::core::{RoomMode, RoomRule};

/// One line of user input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Text for the current room.
    Say(String),
    /// Join a room (and make it current).
    Join(String),
    /// Join a room that has a key (and make it current).
    JoinKey {
        /// The room.
        room: String,
        /// The room's key.
        key: String,
    },
    /// Invite someone into a room.
    Invite {
        /// The room, or the current one.
        room: Option<String>,
        /// Who.
        nick: String,
    },
    /// Set or clear a room rule (key, limit, flags, ban masks).
    Rule {
        /// The room, or the current one.
        room: Option<String>,
        /// Which rule.
        rule: RoomRule,
        /// Set or clear it.
        on: bool,
        /// The key, limit or mask (empty for the others).
        arg: String,
    },
    /// List a room's rules (the current room's when `None`).
    Rules(Option<String>),
    /// Leave a room (the current one when `None`).
    Leave {
        /// The room, or the current one.
        room: Option<String>,
        /// Why, shown to the others (may be empty).
        reason: String,
    },
    /// A direct message.
    Msg {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// List the server's rooms.
    Rooms,
    /// List a room's members (the current room's when `None`).
    Who(Option<String>),
    /// Change nickname (or pick one after a refused hello).
    Nick(String),
    /// Make a room this client is in the current one.
    Switch(String),
    /// Show a room's topic (`text` `None`), or set it (`Some`; empty clears it).
    Topic {
        /// The room, or the current one.
        room: Option<String>,
        /// The new topic.
        text: Option<String>,
    },
    /// Talk to one person: plain lines go to them (`None`: back to the current room).
    Query(Option<String>),
    /// Remove someone from a room.
    Kick {
        /// The room, or the current one.
        room: Option<String>,
        /// Who.
        nick: String,
        /// Why, shown to everyone in the room (may be empty).
        reason: String,
    },
    /// Set or clear a mode of a room.
    Mode {
        /// The room, or the current one.
        room: Option<String>,
        /// Which mode.
        mode: RoomMode,
        /// Set or clear it.
        on: bool,
        /// The member it applies to (empty for the topic lock).
        nick: String,
    },
    /// Mark this client away with a message, or back when it is empty.
    Away(String),
    /// Ask about someone.
    Whois(String),
    /// Fetch older messages of the current room (how many; default 50).
    History(Option<u16>),
    /// Measure the round trip to the server.
    Ping,
    /// End the session.
    Quit(String),
    /// Show the commands.
    Help,
}

/// The help text, one entry a line.
pub const HELP: &[&str] = &[
    "Commands (a line not starting with / goes to the current room):",
    "  /join ROOM [KEY]         join a room (with its key) and make it current (alias /j)",
    "  /leave [ROOM [REASON]]   leave a room, the current one by default (alias /part)",
    "  /switch ROOM             make another joined room current (alias /r)",
    "  /msg NICK TEXT           send a direct message (aliases /m, /w)",
    "  /query [NICK]            plain lines go to NICK; alone: back to the room",
    "  /me TEXT                 an action in the current room: * you TEXT",
    "  /who [ROOM]              list a room's members, the current one by default",
    "  /rooms                   list every room on the server",
    "  /topic [#ROOM] [TEXT]    show or set the room's topic; /topic - clears it",
    "  /away [MESSAGE]          mark yourself away; alone (or /back): back again",
    "  /whois NICK              someone's rooms, idle time and away message",
    "  /nick NAME               change your nickname",
    "  /history [N]             N older messages of the current room (default 50)",
    "  /ping                    measure the round trip to the server",
    "  /quit [REASON]           leave the server (also Ctrl-D)",
    "  /help                    this list",
    "  //TEXT                   say TEXT starting with a single /",
    "Tab completes commands, nicks of the current room and #rooms.",
    "Operators of a room (its creator and whoever gets /op) can also, in the current",
    "room or the #ROOM given first:",
    "  /kick [#ROOM] NICK [REASON]  remove someone from the room",
    "  /op, /deop [#ROOM] NICK      give or take operator status",
    "  /voice, /devoice [#ROOM] NICK  give or take voice",
    "  /lock, /unlock [#ROOM]   let only operators set the topic, or anyone again",
    "  /invite NICK [#ROOM]     invite someone (needed to join a +i room)",
    "  /mode [#ROOM] CHANGE     one rule change: +k KEY, -k, +l N, -l, +i, -i, +m, -m,",
    "                           +n, -n, +s, -s, +b MASK, -b MASK",
    "  /ban [#ROOM] NICK|MASK   ban a mask (a bare nick means nick!*@*)",
    "  /unban [#ROOM] NICK|MASK lift a ban",
    "  /rules [#ROOM]           list the room's rules: modes, key, limit, bans",
];

/// Parses one line of input; `Ok(None)` for a blank line, `Err` with a usage hint for a
/// malformed command.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Command::Say(line.to_owned())));
    };
    if rest.starts_with('/') {
        return Ok(Some(Command::Say(rest.to_owned())));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    let command = match name.to_ascii_lowercase().as_str() {
        "join" | "j" => {
            const FORM: &str = "/join ROOM [KEY]";
            let (room, key) = split_word(args);
            let room = one_room(room, FORM)?;
            match key {
                "" => Command::Join(room),
                key => Command::JoinKey {
                    room,
                    key: one_word(key, FORM)?.to_owned(),
                },
            }
        }
        "invite" => {
            const FORM: &str = "/invite NICK [#ROOM]";
            let (nick, rest) = split_word(args);
            if nick.is_empty() || nick.starts_with('#') {
                return Err(usage(FORM));
            }
            Command::Invite {
                nick: nick.to_owned(),
                room: match rest {
                    "" => None,
                    rest => Some(one_room(rest, FORM)?),
                },
            }
        }
        "mode" => mode(args)?,
        "ban" => ban(args, "/ban [#ROOM] NICK|MASK", true)?,
        "unban" => ban(args, "/unban [#ROOM] NICK|MASK", false)?,
        "rules" => match args {
            "" => Command::Rules(None),
            _ => Command::Rules(Some(one_room(args, "/rules [#ROOM]")?)),
        },
        "leave" | "part" => {
            let (room, reason) = split_word(args);
            Command::Leave {
                room: (!room.is_empty()).then(|| room_name(room)),
                reason: reason.to_owned(),
            }
        }
        "switch" | "r" => Command::Switch(one_room(args, "/switch ROOM")?),
        // An action, as IRC clients send it (CTCP ACTION), so both kinds of client show it.
        "me" => match args {
            "" => return Err(usage("/me TEXT")),
            text => Command::Say(format!("\u{1}ACTION {text}\u{1}")),
        },
        "msg" | "m" | "w" | "whisper" | "tell" => {
            let (to, text) = split_word(args);
            if to.is_empty() || text.is_empty() {
                return Err(usage("/msg NICK TEXT"));
            }
            Command::Msg {
                to: to.to_owned(),
                text: text.to_owned(),
            }
        }
        "who" | "names" => match args {
            "" => Command::Who(None),
            _ => Command::Who(Some(one_room(args, "/who [ROOM]")?)),
        },
        "rooms" | "list" => no_args(args, "/rooms", Command::Rooms)?,
        "nick" => Command::Nick(one_word(args, "/nick NAME")?.to_owned()),
        "topic" => {
            let (room, args) = room_first(args);
            Command::Topic {
                room,
                text: match args {
                    "" => None,
                    CLEAR_TOPIC => Some(String::new()),
                    text => Some(text.to_owned()),
                },
            }
        }
        "query" => match args {
            "" => Command::Query(None),
            _ => Command::Query(Some(one_word(args, "/query [NICK]")?.to_owned())),
        },
        "kick" => {
            let (room, args) = room_first(args);
            let (nick, reason) = split_word(args);
            if nick.is_empty() {
                return Err(usage("/kick [#ROOM] NICK [REASON]"));
            }
            Command::Kick {
                room,
                nick: nick.to_owned(),
                reason: reason.to_owned(),
            }
        }
        "op" => member_mode(args, "/op [#ROOM] NICK", RoomMode::Operator, true)?,
        "deop" => member_mode(args, "/deop [#ROOM] NICK", RoomMode::Operator, false)?,
        "voice" => member_mode(args, "/voice [#ROOM] NICK", RoomMode::Voice, true)?,
        "devoice" => member_mode(args, "/devoice [#ROOM] NICK", RoomMode::Voice, false)?,
        "lock" => topic_lock(args, "/lock [#ROOM]", true)?,
        "unlock" => topic_lock(args, "/unlock [#ROOM]", false)?,
        "away" => Command::Away(args.to_owned()),
        "back" => no_args(args, "/back", Command::Away(String::new()))?,
        "whois" | "wi" => Command::Whois(one_word(args, "/whois NICK")?.to_owned()),
        "history" => Command::History(match args.trim() {
            "" => None,
            n => Some(
                n.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("usage: /history [N], N from 1")?,
            ),
        }),
        "ping" => no_args(args, "/ping", Command::Ping)?,
        "quit" | "exit" | "q" => Command::Quit(args.to_owned()),
        "help" | "h" | "?" => Command::Help,
        _ => return Err(format!("unknown command /{name}; /help lists the commands")),
    };
    Ok(Some(command))
}

/// What `/topic` takes to mean "no topic" (an empty argument shows the topic instead).
pub const CLEAR_TOPIC: &str = "-";

fn member_mode(args: &str, form: &str, mode: RoomMode, on: bool) -> Result<Command, String> {
    let (room, args) = room_first(args);
    Ok(Command::Mode {
        room,
        mode,
        on,
        nick: one_word(args, form)?.to_owned(),
    })
}

/// The usage of `/mode`.
const MODE_FORM: &str = "/mode [#ROOM] +k KEY|-k|+l N|-l|+i|-i|+m|-m|+n|-n|+s|-s|+b MASK|-b MASK";

/// `/mode`: one rule change, checked here so a typo gets a usage line, not a server error.
fn mode(args: &str) -> Result<Command, String> {
    let (room, args) = room_first(args);
    let (change, arg) = split_word(args);
    let (on, letter) = match change.as_bytes() {
        [b'+', letter] => (true, *letter),
        [b'-', letter] => (false, *letter),
        _ => return Err(usage(MODE_FORM)),
    };
    let rule = match RoomRule::from_letter(letter) {
        Some(
            rule @ (RoomRule::Key
            | RoomRule::Limit
            | RoomRule::InviteOnly
            | RoomRule::Moderated
            | RoomRule::NoOutside
            | RoomRule::Secret
            | RoomRule::Ban),
        ) => rule,
        _ => return Err(usage(MODE_FORM)),
    };
    let needs_arg = matches!(rule, RoomRule::Ban) || (on && rule.takes_arg(true));
    let arg = if needs_arg {
        one_word(arg, MODE_FORM)?.to_owned()
    } else if arg.is_empty() {
        String::new()
    } else {
        return Err(usage(MODE_FORM));
    };
    if rule == RoomRule::Limit && !arg.is_empty() {
        match arg.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => return Err("usage: /mode [#ROOM] +l N, N from 1".to_owned()),
        }
    }
    let arg = if rule == RoomRule::Ban {
        ban_mask(&arg)
    } else {
        arg
    };
    Ok(Command::Rule {
        room,
        rule,
        on,
        arg,
    })
}

/// `/ban` and `/unban`.
fn ban(args: &str, form: &str, on: bool) -> Result<Command, String> {
    let (room, args) = room_first(args);
    Ok(Command::Rule {
        room,
        rule: RoomRule::Ban,
        on,
        arg: ban_mask(one_word(args, form)?),
    })
}

/// A ban mask as typed: a bare nick means `nick!*@*`.
fn ban_mask(word: &str) -> String {
    if word.contains(['!', '@']) {
        word.to_owned()
    } else {
        format!("{word}!*@*")
    }
}

fn topic_lock(args: &str, form: &str, on: bool) -> Result<Command, String> {
    let (room, args) = room_first(args);
    no_args(
        args,
        form,
        Command::Mode {
            room,
            mode: RoomMode::TopicLock,
            on,
            nick: String::new(),
        },
    )
}

/// A `#room` given as the first word (nicks never start with `#`), and the rest.
fn room_first(args: &str) -> (Option<String>, &str) {
    match split_word(args) {
        (word, rest) if word.len() > 1 && word.starts_with('#') => (Some(room_name(word)), rest),
        _ => (None, args),
    }
}

/// Every command name, for Tab completion.
pub const NAMES: &[&str] = &[
    "away", "back", "ban", "deop", "devoice", "help", "history", "invite", "join", "kick", "leave",
    "lock", "me", "mode", "msg", "nick", "op", "ping", "query", "quit", "rooms", "rules", "switch",
    "topic", "unban", "unlock", "voice", "who", "whois",
];

/// A room name as typed, without the `#` people tend to put in front.
fn room_name(word: &str) -> String {
    word.strip_prefix('#').unwrap_or(word).to_owned()
}

fn usage(form: &str) -> String {
    format!("usage: {form}")
}

/// The first word and the (trimmed) rest.
fn split_word(args: &str) -> (&str, &str) {
    match args.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (args, ""),
    }
}

fn one_word<'a>(args: &'a str, form: &str) -> Result<&'a str, String> {
    match split_word(args) {
        (word, "") if !word.is_empty() => Ok(word),
        _ => Err(usage(form)),
    }
}

fn one_room(args: &str, form: &str) -> Result<String, String> {
    let room = room_name(one_word(args, form)?);
    if room.is_empty() {
        return Err(usage(form));
    }
    Ok(room)
}

fn no_args(args: &str, form: &str, command: Command) -> Result<Command, String> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(usage(form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        match parse(line) {
            Ok(Some(c)) => c,
            other => panic!("{line:?} parsed to {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(line) {
            Err(e) => e,
            other => panic!("{line:?} should fail, parsed to {other:?}"),
        }
    }

    #[test]
    fn plain_lines_are_said() {
        assert_eq!(ok("hello there"), Command::Say("hello there".into()));
        assert_eq!(ok("  indented\n"), Command::Say("  indented".into()));
        assert_eq!(ok("//slash"), Command::Say("/slash".into()));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   \r\n"), Ok(None));
    }

    #[test]
    fn rooms_commands() {
        assert_eq!(ok("/join rust"), Command::Join("rust".into()));
        assert_eq!(ok("/J  #rust "), Command::Join("rust".into()));
        assert_eq!(ok("/switch #go"), Command::Switch("go".into()));
        assert_eq!(ok("/r go"), Command::Switch("go".into()));
        assert_eq!(ok("/who"), Command::Who(None));
        assert_eq!(ok("/who #rust"), Command::Who(Some("rust".into())));
        assert_eq!(ok("/rooms"), Command::Rooms);
        assert_eq!(err("/join"), "usage: /join ROOM [KEY]");
        assert_eq!(err("/join a b c"), "usage: /join ROOM [KEY]");
        assert_eq!(err("/join #"), "usage: /join ROOM [KEY]");
        assert_eq!(
            ok("/join #rust s3cret"),
            Command::JoinKey {
                room: "rust".into(),
                key: "s3cret".into()
            }
        );
        assert_eq!(err("/rooms x"), "usage: /rooms");
        assert_eq!(err("/who a b"), "usage: /who [ROOM]");
    }

    #[test]
    fn leave_defaults_to_current_room() {
        assert_eq!(
            ok("/leave"),
            Command::Leave {
                room: None,
                reason: String::new()
            }
        );
        assert_eq!(
            ok("/part #rust see you  later"),
            Command::Leave {
                room: Some("rust".into()),
                reason: "see you  later".into()
            }
        );
    }

    #[test]
    fn direct_messages_keep_their_spacing() {
        assert_eq!(
            ok("/msg bob  psst  there"),
            Command::Msg {
                to: "bob".into(),
                text: "psst  there".into()
            }
        );
        assert_eq!(
            ok("/w bob hi"),
            Command::Msg {
                to: "bob".into(),
                text: "hi".into()
            }
        );
        assert_eq!(err("/msg bob"), "usage: /msg NICK TEXT");
        assert_eq!(err("/msg"), "usage: /msg NICK TEXT");
    }

    #[test]
    fn topic_shows_sets_and_clears() {
        let topic = |room: Option<&str>, text: Option<&str>| Command::Topic {
            room: room.map(Into::into),
            text: text.map(Into::into),
        };
        assert_eq!(ok("/topic"), topic(None, None));
        assert_eq!(ok("/topic  "), topic(None, None));
        assert_eq!(
            ok("/TOPIC Rust 1.85  is out "),
            topic(None, Some("Rust 1.85  is out"))
        );
        assert_eq!(ok("/topic -"), topic(None, Some("")));
        assert_eq!(
            ok("/topic - not a clear"),
            topic(None, Some("- not a clear"))
        );
        assert_eq!(ok("/topic #go"), topic(Some("go"), None));
        assert_eq!(ok("/topic #go new one"), topic(Some("go"), Some("new one")));
        assert_eq!(ok("/topic # alone"), topic(None, Some("# alone")));
    }

    #[test]
    fn query_opens_and_closes_a_conversation() {
        assert_eq!(ok("/query bob"), Command::Query(Some("bob".into())));
        assert_eq!(ok("/query"), Command::Query(None));
        assert_eq!(err("/query bob carol"), "usage: /query [NICK]");
    }

    #[test]
    fn operator_commands() {
        let kick = |room: Option<&str>, nick: &str, reason: &str| Command::Kick {
            room: room.map(Into::into),
            nick: nick.into(),
            reason: reason.into(),
        };
        assert_eq!(ok("/kick bob"), kick(None, "bob", ""));
        assert_eq!(ok("/kick bob  too  loud"), kick(None, "bob", "too  loud"));
        assert_eq!(ok("/kick #go bob loud"), kick(Some("go"), "bob", "loud"));
        assert_eq!(err("/kick"), "usage: /kick [#ROOM] NICK [REASON]");
        assert_eq!(err("/kick #go"), "usage: /kick [#ROOM] NICK [REASON]");
        let mode = |room: Option<&str>, mode, on, nick: &str| Command::Mode {
            room: room.map(Into::into),
            mode,
            on,
            nick: nick.into(),
        };
        assert_eq!(ok("/op bob"), mode(None, RoomMode::Operator, true, "bob"));
        assert_eq!(
            ok("/op #go bob"),
            mode(Some("go"), RoomMode::Operator, true, "bob")
        );
        assert_eq!(
            ok("/deop bob"),
            mode(None, RoomMode::Operator, false, "bob")
        );
        assert_eq!(ok("/voice bob"), mode(None, RoomMode::Voice, true, "bob"));
        assert_eq!(
            ok("/Devoice bob "),
            mode(None, RoomMode::Voice, false, "bob")
        );
        assert_eq!(ok("/lock"), mode(None, RoomMode::TopicLock, true, ""));
        assert_eq!(ok("/unlock"), mode(None, RoomMode::TopicLock, false, ""));
        assert_eq!(
            ok("/unlock #rust"),
            mode(Some("rust"), RoomMode::TopicLock, false, "")
        );
        assert_eq!(err("/op"), "usage: /op [#ROOM] NICK");
        assert_eq!(err("/deop a b"), "usage: /deop [#ROOM] NICK");
        assert_eq!(err("/voice"), "usage: /voice [#ROOM] NICK");
        assert_eq!(err("/devoice"), "usage: /devoice [#ROOM] NICK");
        assert_eq!(err("/lock now"), "usage: /lock [#ROOM]");
    }

    #[test]
    fn room_rule_commands() {
        let rule = |room: Option<&str>, rule, on, arg: &str| Command::Rule {
            room: room.map(Into::into),
            rule,
            on,
            arg: arg.into(),
        };
        assert_eq!(ok("/mode +k pw"), rule(None, RoomRule::Key, true, "pw"));
        assert_eq!(
            ok("/mode #go -k"),
            rule(Some("go"), RoomRule::Key, false, "")
        );
        assert_eq!(ok("/mode +l 10"), rule(None, RoomRule::Limit, true, "10"));
        assert_eq!(ok("/mode -l"), rule(None, RoomRule::Limit, false, ""));
        assert_eq!(ok("/mode +i"), rule(None, RoomRule::InviteOnly, true, ""));
        assert_eq!(ok("/mode -m"), rule(None, RoomRule::Moderated, false, ""));
        assert_eq!(ok("/mode +n"), rule(None, RoomRule::NoOutside, true, ""));
        assert_eq!(ok("/mode -s"), rule(None, RoomRule::Secret, false, ""));
        assert_eq!(
            ok("/mode +b bob"),
            rule(None, RoomRule::Ban, true, "bob!*@*")
        );
        assert_eq!(
            ok("/mode -b *!*@10.*"),
            rule(None, RoomRule::Ban, false, "*!*@10.*")
        );
        let form = format!("usage: {MODE_FORM}");
        for bad in [
            "/mode",
            "/mode +k",
            "/mode -k pw",
            "/mode +i x",
            "/mode +x",
            "/mode k",
            "/mode +kl",
            "/mode +b",
            "/mode -b",
            "/mode +e x",
            "/mode #go",
        ] {
            assert_eq!(err(bad), form, "{bad}");
        }
        assert_eq!(err("/mode +l 0"), "usage: /mode [#ROOM] +l N, N from 1");
        assert_eq!(err("/mode +l lots"), "usage: /mode [#ROOM] +l N, N from 1");
        assert_eq!(ok("/ban bob"), rule(None, RoomRule::Ban, true, "bob!*@*"));
        assert_eq!(
            ok("/ban #go *!*@host"),
            rule(Some("go"), RoomRule::Ban, true, "*!*@host")
        );
        assert_eq!(
            ok("/unban #go bob"),
            rule(Some("go"), RoomRule::Ban, false, "bob!*@*")
        );
        assert_eq!(err("/ban"), "usage: /ban [#ROOM] NICK|MASK");
        assert_eq!(err("/unban a b"), "usage: /unban [#ROOM] NICK|MASK");
        assert_eq!(
            ok("/invite bob"),
            Command::Invite {
                room: None,
                nick: "bob".into()
            }
        );
        assert_eq!(
            ok("/invite bob #go"),
            Command::Invite {
                room: Some("go".into()),
                nick: "bob".into()
            }
        );
        assert_eq!(err("/invite"), "usage: /invite NICK [#ROOM]");
        assert_eq!(err("/invite #go"), "usage: /invite NICK [#ROOM]");
        assert_eq!(err("/invite bob go x"), "usage: /invite NICK [#ROOM]");
        assert_eq!(ok("/rules"), Command::Rules(None));
        assert_eq!(ok("/rules #go"), Command::Rules(Some("go".into())));
        assert_eq!(err("/rules a b"), "usage: /rules [#ROOM]");
    }

    #[test]
    fn away_and_whois() {
        assert_eq!(ok("/away"), Command::Away(String::new()));
        assert_eq!(ok("/back"), Command::Away(String::new()));
        assert_eq!(
            ok("/away gone  for lunch"),
            Command::Away("gone  for lunch".into())
        );
        assert_eq!(err("/back again"), "usage: /back");
        assert_eq!(ok("/whois bob"), Command::Whois("bob".into()));
        assert_eq!(
            ok("/me waves"),
            Command::Say("\u{1}ACTION waves\u{1}".into())
        );
        assert_eq!(err("/me"), "usage: /me TEXT");
        assert_eq!(err("/whois"), "usage: /whois NICK");
        assert_eq!(err("/whois bob carol"), "usage: /whois NICK");
    }

    #[test]
    fn history() {
        assert_eq!(ok("/history"), Command::History(None));
        assert_eq!(ok("/history 20"), Command::History(Some(20)));
        assert_eq!(err("/history 0"), "usage: /history [N], N from 1");
        assert_eq!(err("/history lots"), "usage: /history [N], N from 1");
    }

    #[test]
    fn every_command_is_in_the_help() {
        for name in [
            "join", "leave", "switch", "msg", "who", "rooms", "topic", "kick", "op", "deop",
            "voice", "devoice", "lock", "unlock", "away", "whois", "nick", "ping", "quit", "help",
            "me", "history", "invite", "mode", "ban", "unban", "rules",
        ] {
            let shown = format!("/{name}");
            assert!(
                HELP.iter()
                    .any(|h| h.split([' ', ',']).any(|word| word == shown)),
                "{shown} is not in the help"
            );
        }
    }

    #[test]
    fn session_commands() {
        assert_eq!(ok("/nick alice2"), Command::Nick("alice2".into()));
        assert_eq!(err("/nick"), "usage: /nick NAME");
        assert_eq!(err("/nick a b"), "usage: /nick NAME");
        assert_eq!(ok("/quit"), Command::Quit(String::new()));
        assert_eq!(ok("/QUIT bye all"), Command::Quit("bye all".into()));
        assert_eq!(ok("/help"), Command::Help);
        assert_eq!(ok("/ping"), Command::Ping);
        assert_eq!(
            err("/frobnicate now"),
            "unknown command /frobnicate; /help lists the commands"
        );
    }
}
