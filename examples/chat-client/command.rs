//! What the user types, parsed into commands.

/// One line of user input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Text for the current room.
    Say(String),
    /// Join a room (and make it current).
    Join(String),
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
    "  /join ROOM               join a room and make it current (alias /j)",
    "  /leave [ROOM [REASON]]   leave a room, the current one by default (alias /part)",
    "  /switch ROOM             make another joined room current (alias /r)",
    "  /msg NICK TEXT           send a direct message (aliases /m, /w)",
    "  /who [ROOM]              list a room's members, the current one by default",
    "  /rooms                   list every room on the server",
    "  /nick NAME               change your nickname",
    "  /ping                    measure the round trip to the server",
    "  /quit [REASON]           leave the server (also Ctrl-D)",
    "  /help                    this list",
    "  //TEXT                   say TEXT starting with a single /",
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
        "join" | "j" => Command::Join(one_room(args, "/join ROOM")?),
        "leave" | "part" => {
            let (room, reason) = split_word(args);
            Command::Leave {
                room: (!room.is_empty()).then(|| room_name(room)),
                reason: reason.to_owned(),
            }
        }
        "switch" | "r" => Command::Switch(one_room(args, "/switch ROOM")?),
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
        "ping" => no_args(args, "/ping", Command::Ping)?,
        "quit" | "exit" | "q" => Command::Quit(args.to_owned()),
        "help" | "h" | "?" => Command::Help,
        _ => return Err(format!("unknown command /{name}; /help lists the commands")),
    };
    Ok(Some(command))
}

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
        assert_eq!(err("/join"), "usage: /join ROOM");
        assert_eq!(err("/join a b"), "usage: /join ROOM");
        assert_eq!(err("/join #"), "usage: /join ROOM");
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
