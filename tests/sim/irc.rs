//! IRC in the simulation: the commands a simulated IRC client sends (frames the model
//! reads as they are, not as the server parses them), a reader that turns the server's
//! IRC lines into the model's [`Out`] items, and the small IRC client itself.
//!
//! The comparison is at the level of parsed events: who received which join, part,
//! message, rule change or refusal. Lines that carry nothing the model predicts (the
//! welcome burst after `001`, `333`) are skipped by a fixed list; any other line fails.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use switchboard_core::{Config, ErrorCode, Member, RoomMode, RoomRule};

use crate::wire::{fold, Entry, Frame, Out, Piece, Tap, Unit};

/// One command an IRC client sends, as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Pass(String),
    Nick(String),
    /// `USER <user> 0 * :sim`.
    User(String),
    /// `JOIN <chan> [key]`; `chan` as sent (normally `#room`).
    Join {
        chan: String,
        key: String,
    },
    Part {
        chan: String,
        reason: String,
    },
    /// `PRIVMSG <target> :text` to a channel or a nick.
    Privmsg {
        target: String,
        text: String,
    },
    /// `MODE <chan> <+x|-x> [arg]`: one change.
    Mode {
        chan: String,
        on: bool,
        letter: char,
        arg: String,
    },
    Invite {
        nick: String,
        chan: String,
    },
    Kick {
        chan: String,
        nick: String,
        reason: String,
    },
    Topic {
        chan: String,
        topic: String,
    },
    Quit(String),
    Pong(String),
}

impl Cmd {
    /// The line as written on the wire, CR LF included.
    pub fn line(&self) -> String {
        let s = match self {
            Cmd::Pass(p) => format!("PASS {p}"),
            Cmd::Nick(n) => format!("NICK {n}"),
            Cmd::User(u) => format!("USER {u} 0 * :sim"),
            Cmd::Join { chan, key } if key.is_empty() => format!("JOIN {chan}"),
            Cmd::Join { chan, key } => format!("JOIN {chan} {key}"),
            Cmd::Part { chan, reason } if reason.is_empty() => format!("PART {chan}"),
            Cmd::Part { chan, reason } => format!("PART {chan} :{reason}"),
            Cmd::Privmsg { target, text } => format!("PRIVMSG {target} :{text}"),
            Cmd::Mode {
                chan,
                on,
                letter,
                arg,
            } => {
                let sign = if *on { '+' } else { '-' };
                if arg.is_empty() {
                    format!("MODE {chan} {sign}{letter}")
                } else {
                    format!("MODE {chan} {sign}{letter} {arg}")
                }
            }
            Cmd::Invite { nick, chan } => format!("INVITE {nick} {chan}"),
            Cmd::Kick { chan, nick, reason } => format!("KICK {chan} {nick} :{reason}"),
            Cmd::Topic { chan, topic } => format!("TOPIC {chan} :{topic}"),
            Cmd::Quit(r) => format!("QUIT :{r}"),
            Cmd::Pong(t) => format!("PONG :{t}"),
        };
        s + "\r\n"
    }

    /// Whether the rate charges this command a tenth (keepalive and quitting).
    pub fn cheap(&self) -> bool {
        matches!(self, Cmd::Pong(_) | Cmd::Quit(_))
    }
}

/// A parsed server line: source nick (before `!`), command, parameters.
struct Line {
    nick: String,
    command: String,
    params: Vec<String>,
}

/// Splits one IRC line (without CR LF) into its parts: the plain grammar, written here
/// again rather than taken from core.
fn parse(text: &str) -> Option<Line> {
    let mut rest = text;
    let mut nick = String::new();
    if let Some(r) = rest.strip_prefix(':') {
        let (source, r) = r.split_once(' ')?;
        nick = source.split('!').next().unwrap_or("").to_owned();
        rest = r;
    }
    let mut params = Vec::new();
    let (command, mut rest) = match rest.split_once(' ') {
        Some((c, r)) => (c.to_owned(), r),
        None => (rest.to_owned(), ""),
    };
    while !rest.is_empty() {
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_owned());
            break;
        }
        match rest.split_once(' ') {
            Some((p, r)) => {
                params.push(p.to_owned());
                rest = r;
            }
            None => {
                params.push(rest.to_owned());
                break;
            }
        }
    }
    Some(Line {
        nick,
        command,
        params,
    })
}

/// Numerics of the welcome burst and topic details the model does not predict.
const SKIPPED: &[&str] = &[
    "002", "003", "004", "005", "251", "252", "253", "254", "255", "265", "266", "375", "372",
    "376", "422", "333",
];

/// The refusal each error numeric stands for.
fn numeric_code(n: &str) -> Option<ErrorCode> {
    use ErrorCode::*;
    Some(match n {
        "401" => NoSuchNick,
        "403" => NoSuchRoom,
        "404" => CannotSpeak,
        "405" => TooManyRooms,
        "412" | "696" => InvalidText,
        "432" => InvalidNick,
        "433" => NickTaken,
        "441" => TargetNotInRoom,
        "442" => NotInRoom,
        "443" => TargetInRoom,
        "451" => HelloRequired,
        "462" => AlreadyRegistered,
        "464" => BadPassword,
        "471" => RoomFull,
        "473" => InviteOnlyRoom,
        "474" => Banned,
        "475" => BadRoomKey,
        "482" => NotOperator,
        _ => return None,
    })
}

fn room_of(chan: &str) -> Result<String, String> {
    chan.strip_prefix('#')
        .map(str::to_owned)
        .ok_or_else(|| format!("`{chan}` is not a channel"))
}

/// Reads one IRC connection's server output as [`Out`] items. A connection the server
/// closes before it knows the protocol gets a native bye: the first byte tells.
#[derive(Debug)]
pub struct IrcTap {
    buf: Vec<u8>,
    native: Option<Tap>,
    started: bool,
    names: Option<(String, Vec<Entry>)>,
    /// Bytes of skipped lines, counted into the next item.
    skipped: usize,
    /// An `ERROR` (or native bye) was seen: nothing may follow it.
    pub saw_bye: bool,
    cfg: Config,
}

impl IrcTap {
    pub fn new(cfg: &Config) -> Self {
        IrcTap {
            buf: Vec::new(),
            native: None,
            started: false,
            names: None,
            skipped: 0,
            saw_bye: false,
            cfg: cfg.clone(),
        }
    }

    /// Decodes `data`; each finished item comes with its size in bytes.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<(Out, usize)>) -> Result<(), String> {
        if !self.started && !data.is_empty() {
            self.started = true;
            if data[0] == 0 {
                self.native = Some(Tap::new(&self.cfg));
            }
        }
        if let Some(tap) = &mut self.native {
            tap.feed(data, out)?;
            self.saw_bye = tap.saw_bye;
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
            let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
            let size = raw.len() + std::mem::take(&mut self.skipped);
            let text = std::str::from_utf8(&raw[..end])
                .map_err(|_| "server sent an IRC line that is not UTF-8".to_owned())?;
            if self.saw_bye {
                return Err(format!("server sent {text:?} after ERROR"));
            }
            match self.item(text)? {
                Some(item) => out.push((item, size)),
                None => self.skipped = size,
            }
        }
        Ok(())
    }

    fn item(&mut self, text: &str) -> Result<Option<Out>, String> {
        let l = parse(text).ok_or_else(|| format!("unparsable line {text:?}"))?;
        let p = &l.params;
        let arg = |i: usize| -> Result<&str, String> {
            p.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("{text:?} lacks parameter {i}"))
        };
        if l.command == "ERROR" {
            // A close for output overflow may cut a NAMES reply short.
            self.names = None;
        }
        if self.names.is_some() && l.command != "353" && l.command != "366" {
            return Err(format!("{text:?} inside a NAMES reply"));
        }
        let item = match l.command.as_str() {
            c if SKIPPED.contains(&c) => return Ok(None),
            "001" => Out::Welcome {
                nick: arg(0)?.to_owned(),
            },
            "332" => Out::Topic {
                room: room_of(arg(1)?)?,
                topic: arg(2)?.to_owned(),
                by: String::new(),
            },
            "353" => {
                let room = room_of(arg(2)?)?;
                let entry = self.names.get_or_insert_with(|| (room.clone(), Vec::new()));
                if entry.0 != room {
                    return Err(format!("NAMES of {} continued as {room}", entry.0));
                }
                for name in arg(3)?.split(' ').filter(|n| !n.is_empty()) {
                    let (flags, nick) = match name.as_bytes()[0] {
                        b'@' => (Member::OPERATOR, &name[1..]),
                        b'+' => (Member::VOICE, &name[1..]),
                        _ => (0, name),
                    };
                    entry.1.push((nick.to_owned(), flags));
                }
                return Ok(None);
            }
            "366" => {
                let room = room_of(arg(1)?)?;
                let (r, nicks) = self.names.take().unwrap_or((room.clone(), Vec::new()));
                if r != room {
                    return Err(format!("NAMES of {r} ended as {room}"));
                }
                Out::Members { room, nicks }
            }
            "341" => Out::Invited {
                room: room_of(arg(2)?)?,
                by: arg(0)?.to_owned(),
                nick: arg(1)?.to_owned(),
            },
            "301" => Out::Away {
                nick: arg(1)?.to_owned(),
                message: arg(2)?.to_owned(),
            },
            n if n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
                let code = numeric_code(n).ok_or_else(|| format!("unexpected numeric {text:?}"))?;
                Out::Error {
                    code,
                    request_type: 0,
                    request_seq: 0,
                }
            }
            "JOIN" => Out::Joined {
                room: room_of(arg(0)?)?,
                nick: l.nick,
            },
            "PART" => Out::Left {
                room: room_of(arg(0)?)?,
                nick: l.nick,
                reason: Some(p.get(1).cloned().unwrap_or_default()),
            },
            "QUIT" => Out::Quit { nick: l.nick },
            "PRIVMSG" => {
                let target = arg(0)?;
                match target.strip_prefix('#') {
                    Some(room) => Out::Message {
                        room: room.to_owned(),
                        from: l.nick,
                        seq: 0,
                        text: arg(1)?.to_owned(),
                    },
                    None => Out::Direct {
                        from: l.nick,
                        to: target.to_owned(),
                        text: arg(1)?.to_owned(),
                    },
                }
            }
            "NICK" => Out::NickChanged {
                old: l.nick,
                new: arg(0)?.to_owned(),
            },
            "TOPIC" => Out::Topic {
                room: room_of(arg(0)?)?,
                topic: arg(1)?.to_owned(),
                by: l.nick,
            },
            "KICK" => Out::Kicked {
                room: room_of(arg(0)?)?,
                nick: arg(1)?.to_owned(),
                by: l.nick,
                reason: arg(2)?.to_owned(),
            },
            "INVITE" => Out::Invited {
                room: room_of(arg(1)?)?,
                by: l.nick,
                nick: arg(0)?.to_owned(),
            },
            "MODE" => {
                let room = room_of(arg(0)?)?;
                let change = arg(1)?;
                let (on, letter) = match change.as_bytes() {
                    [b'+', c] => (true, *c),
                    [b'-', c] => (false, *c),
                    _ => return Err(format!("MODE with more than one change: {text:?}")),
                };
                let a = p.get(2).cloned().unwrap_or_default();
                if p.len() > 3 {
                    return Err(format!("MODE with extra parameters: {text:?}"));
                }
                if let Some(mode) = RoomMode::from_letter(letter) {
                    Out::ModeChanged {
                        room,
                        by: l.nick,
                        mode,
                        on,
                        nick: a,
                    }
                } else if let Some(rule) = RoomRule::from_letter(letter) {
                    Out::RuleChanged {
                        room,
                        by: l.nick,
                        rule,
                        on,
                        arg: a,
                    }
                } else {
                    return Err(format!("MODE with unknown letter: {text:?}"));
                }
            }
            "PING" => Out::Ping,
            "ERROR" => {
                self.saw_bye = true;
                Out::ErrorLine
            }
            _ => return Err(format!("unexpected line {text:?}")),
        };
        Ok(Some(item))
    }
}

/// Lines an IRC client writes, with the frames the model reads from them.
pub fn piece(cmds: &[Cmd]) -> Piece {
    let mut bytes = Vec::new();
    let mut units = Vec::new();
    for c in cmds {
        let line = c.line();
        bytes.extend_from_slice(line.as_bytes());
        units.push(Unit {
            at: bytes.len() as u64,
            len: line.len(),
            frame: Frame::Irc(c.clone()),
        });
    }
    Piece {
        bytes: Bytes::from(bytes),
        units,
    }
}

/// The simulated IRC client: it keeps its nick, its channels and their members from what
/// the server told it, answers pings, and writes what it is told to send.
#[derive(Debug)]
pub struct IrcPeer {
    pub nick: String,
    pub registered: bool,
    pub closed: bool,
    /// Folded room key: (name, member nicks).
    pub rooms: BTreeMap<String, (String, BTreeSet<String>)>,
    tap: IrcTap,
    out: Vec<Cmd>,
}

impl IrcPeer {
    /// A client that registers as `nick`, giving `password` if any.
    pub fn new(cfg: &Config, nick: &str, password: Option<&str>) -> Self {
        let mut out = Vec::new();
        if let Some(p) = password {
            out.push(Cmd::Pass(p.to_owned()));
        }
        out.push(Cmd::Nick(nick.to_owned()));
        out.push(Cmd::User(nick.to_owned()));
        IrcPeer {
            nick: nick.to_owned(),
            registered: false,
            closed: false,
            rooms: BTreeMap::new(),
            tap: IrcTap::new(cfg),
            out,
        }
    }

    pub fn send(&mut self, cmd: Cmd) {
        self.out.push(cmd);
    }

    /// What it has to write, if anything.
    pub fn poll_transmit(&mut self) -> Option<Piece> {
        if self.out.is_empty() {
            return None;
        }
        Some(piece(&std::mem::take(&mut self.out)))
    }

    /// Reads server bytes into items, updating its own view and answering pings.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<Vec<Out>, String> {
        let mut items = Vec::new();
        self.tap.feed(data, &mut items)?;
        let items: Vec<Out> = items.into_iter().map(|(o, _)| o).collect();
        for item in &items {
            self.apply(item);
        }
        Ok(items)
    }

    fn is_me(&self, nick: &str) -> bool {
        nick.eq_ignore_ascii_case(&self.nick)
    }

    fn apply(&mut self, item: &Out) {
        match item {
            Out::Welcome { nick } => {
                self.nick.clone_from(nick);
                self.registered = true;
            }
            Out::Ping => self.out.push(Cmd::Pong("sim".into())),
            Out::Joined { room, nick } if self.is_me(nick) => {
                self.rooms
                    .insert(fold(room), (room.clone(), BTreeSet::new()));
            }
            Out::Joined { room, nick } => {
                if let Some(r) = self.rooms.get_mut(&fold(room)) {
                    r.1.insert(nick.clone());
                }
            }
            Out::Members { room, nicks } => {
                if let Some(r) = self.rooms.get_mut(&fold(room)) {
                    r.1 = nicks.iter().map(|(n, _)| n.clone()).collect();
                }
            }
            Out::Left { room, nick, .. } | Out::Kicked { room, nick, .. } => {
                if self.is_me(nick) {
                    self.rooms.remove(&fold(room));
                } else if let Some(r) = self.rooms.get_mut(&fold(room)) {
                    r.1.remove(nick);
                }
            }
            Out::Quit { nick } => {
                for r in self.rooms.values_mut() {
                    r.1.remove(nick);
                }
            }
            Out::NickChanged { old, new } => {
                if self.is_me(old) {
                    self.nick.clone_from(new);
                }
                for r in self.rooms.values_mut() {
                    if r.1.remove(old) {
                        r.1.insert(new.clone());
                    }
                }
            }
            Out::ErrorLine | Out::Bye { .. } => self.closed = true,
            _ => {}
        }
    }

    /// The names of the channels it is in.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.values().map(|(n, _)| n.clone()).collect()
    }

    /// Everyone it sees in its channels.
    pub fn peers(&self) -> Vec<String> {
        self.rooms
            .values()
            .flat_map(|(_, m)| m.iter().cloned())
            .collect()
    }
}
