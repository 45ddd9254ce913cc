//! IRCv3 `draft/chathistory`: the `CHATHISTORY` command, checked here and answered from
//! the store through history's queries (`history.rs`). docs/IRC.md, History, has the wire
//! form and the order of checks.

use bytes::BytesMut;

use super::irc::{cap, parse_msgid};
use super::Server;
use crate::history::{format_iso, parse_iso, Bound, Range};
use crate::line::write_line;
use crate::name::fold;
use crate::ConnId;

/// The subcommands, as they are checked.
const SUBCOMMANDS: [&str; 6] = ["LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS"];

/// Why a CHATHISTORY command is refused: the `FAIL` code, its context parameters, the text.
struct Refusal {
    code: &'static str,
    context: Vec<String>,
    text: String,
}

fn refuse(code: &'static str, context: &[&str], text: String) -> Refusal {
    Refusal {
        code,
        context: context.iter().map(|c| (*c).to_owned()).collect(),
        text,
    }
}

/// What a checked query asks for.
enum Query {
    /// Messages of the room with key `key`.
    Room {
        key: String,
        range: Range,
        limit: u32,
    },
    /// `TARGETS` between two times.
    Targets { a_ms: u64, b_ms: u64, limit: usize },
}

impl Server {
    /// The capabilities offered to IRC clients: every one, `draft/chathistory` only while
    /// history is on.
    pub(super) fn irc_offered(&self) -> u16 {
        if self.history_enabled() {
            u16::MAX
        } else {
            !cap::CHATHISTORY
        }
    }

    /// `CHATHISTORY subcommand params...`.
    pub(super) fn irc_chathistory(&mut self, id: ConnId, p: &[&str]) {
        let sub = p
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        match self.chathistory_check(id, &sub, p) {
            Err(refusal) => {
                let server = self.config.server_name.clone();
                let mut params = vec!["CHATHISTORY", refusal.code];
                params.extend(refusal.context.iter().map(String::as_str));
                params.push(&refusal.text);
                let mut buf = BytesMut::new();
                write_line(&mut buf, Some(&server), "FAIL", &params, true);
                self.conns.send(id, buf.freeze());
            }
            Ok(Query::Room { key, range, limit }) => {
                let label = self.irc_take_label(id);
                self.history_query(id, &key, range, limit, &sub, label);
            }
            Ok(Query::Targets { a_ms, b_ms, limit }) => {
                let found = self.history_targets(id, a_ms, b_ms, limit);
                self.chathistory_targets(id, &found);
            }
        }
    }

    /// The label of the command being handled, taken so that its later answer carries it.
    fn irc_take_label(&mut self, id: ConnId) -> Option<String> {
        match &mut self.conns.get_mut(&id)?.proto {
            super::conn::Proto::Irc(s) => s.command.as_mut()?.label.take(),
            _ => None,
        }
    }

    /// Checks a CHATHISTORY command, in order: history on, a subcommand, a known one,
    /// enough parameters, the target, the references, the limit, the store's backlog.
    fn chathistory_check(&self, id: ConnId, sub: &str, p: &[&str]) -> Result<Query, Refusal> {
        let Some(max) = self.history_max_page() else {
            let shown = if sub.is_empty() { "*" } else { sub };
            return Err(refuse(
                "MESSAGE_ERROR",
                &[shown, "*"],
                "this server keeps no history".into(),
            ));
        };
        if sub.is_empty() {
            return Err(refuse(
                "NEED_MORE_PARAMS",
                &[],
                "CHATHISTORY needs a subcommand".into(),
            ));
        }
        if !SUBCOMMANDS.contains(&sub) {
            let shown: String = sub.chars().filter(|c| !c.is_control()).take(32).collect();
            return Err(refuse(
                "INVALID_PARAMS",
                &[&shown],
                format!("unknown subcommand; known: {}", SUBCOMMANDS.join(" ")),
            ));
        }
        let needed = if sub == "BETWEEN" { 5 } else { 4 };
        if p.len() < needed {
            let form = match sub {
                "BETWEEN" => "BETWEEN <target> <reference> <reference> <limit>",
                "TARGETS" => "TARGETS <timestamp> <timestamp> <limit>",
                "LATEST" => "LATEST <target> <* or reference> <limit>",
                _ => "<subcommand> <target> <reference> <limit>",
            };
            return Err(refuse(
                "NEED_MORE_PARAMS",
                &[sub],
                format!("missing parameters: CHATHISTORY {form}"),
            ));
        }
        let limit = |text: &str| -> Result<u32, Refusal> {
            match text.parse::<u32>() {
                Ok(n) if n >= 1 && n <= u32::from(max) => Ok(n),
                _ => Err(refuse(
                    "INVALID_PARAMS",
                    &[sub, &shown(text)],
                    format!("the limit must be a number from 1 to {max}"),
                )),
            }
        };
        if sub == "TARGETS" {
            let a = timestamp(sub, p[1])?;
            let b = timestamp(sub, p[2])?;
            let limit = limit(p[3])?;
            return Ok(Query::Targets {
                a_ms: a,
                b_ms: b,
                limit: limit as usize,
            });
        }
        let target = p[1];
        let key = self.chathistory_target(id, sub, target)?;
        let last_id = self.registry.room(&key).map_or(0, |r| r.seq);
        let reference = |text: &str, star: bool| -> Result<Bound, Refusal> {
            reference(sub, text, star, &key, last_id)
        };
        let range = match sub {
            "LATEST" => Range::Newest {
                after: reference(p[2], true)?,
                before: Bound::Open,
            },
            "BEFORE" => Range::Newest {
                after: Bound::Open,
                before: reference(p[2], false)?,
            },
            "AFTER" => Range::Oldest {
                after: reference(p[2], false)?,
                before: Bound::Open,
            },
            "AROUND" => Range::Around(reference(p[2], false)?),
            _ => {
                let (a, b) = (reference(p[2], false)?, reference(p[3], false)?);
                // The first reference later than the second: the newest messages between
                // them. Mixed kinds (an id and a time) cannot be compared here and are
                // taken in the order given.
                let backwards = match (a, b) {
                    (Bound::Id(x), Bound::Id(y)) | (Bound::Time(x), Bound::Time(y)) => x > y,
                    _ => false,
                };
                if backwards {
                    Range::Newest {
                        after: b,
                        before: a,
                    }
                } else {
                    Range::Oldest {
                        after: a,
                        before: b,
                    }
                }
            }
        };
        let limit = limit(p[needed - 1])?;
        if let Err(fail) = self.history_ready(target) {
            return Err(refuse("MESSAGE_ERROR", &[sub, target], fail.message));
        }
        Ok(Query::Room { key, range, limit })
    }

    /// The room key of a CHATHISTORY target: a channel the asker is in.
    fn chathistory_target(&self, id: ConnId, sub: &str, target: &str) -> Result<String, Refusal> {
        let invalid = |why: String| refuse("INVALID_TARGET", &[sub, &shown(target)], why);
        let Some(room) = target.strip_prefix('#') else {
            return Err(invalid(
                "only channels have history here (direct messages are not kept)".into(),
            ));
        };
        if let Err(fail) = self.check_room(room) {
            return Err(invalid(fail.message));
        }
        let key = fold(room);
        match self.registry.room(&key) {
            Some(r) if r.is_member(id) => Ok(key),
            _ => Err(invalid(format!("you are not on {}", shown(target)))),
        }
    }

    /// `BATCH +N draft/chathistory-targets`, a `CHATHISTORY TARGETS` line per room, `BATCH -N`
    /// (the lines alone without `batch`).
    fn chathistory_targets(&mut self, id: ConnId, found: &[(String, u64)]) {
        let server = self.config.server_name.clone();
        let batch = if self.irc_caps(id) & cap::BATCH != 0 {
            Some(format!("t{}", self.irc_next_batch(id)))
        } else {
            None
        };
        let mut out = BytesMut::new();
        if let Some(b) = &batch {
            let open = format!("+{b}");
            let params = [open.as_str(), "draft/chathistory-targets"];
            write_line(&mut out, Some(&server), "BATCH", &params, false);
        }
        for (room, ms) in found {
            if let Some(b) = &batch {
                out.extend_from_slice(format!("@batch={b} ").as_bytes());
            }
            let (chan, time) = (format!("#{room}"), format_iso(*ms));
            let params = ["TARGETS", chan.as_str(), time.as_str()];
            write_line(&mut out, Some(&server), "CHATHISTORY", &params, false);
        }
        if let Some(b) = &batch {
            write_line(&mut out, Some(&server), "BATCH", &[&format!("-{b}")], false);
        }
        if !out.is_empty() {
            self.conns.send(id, out.freeze());
        }
    }
}

/// A parameter as it may be shown back: no control characters, at most 64 characters.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A `timestamp=` reference.
fn timestamp(sub: &str, text: &str) -> Result<u64, Refusal> {
    text.strip_prefix("timestamp=")
        .and_then(parse_iso)
        .ok_or_else(|| {
            refuse(
                "INVALID_PARAMS",
                &[sub, &shown(text)],
                "expected timestamp=YYYY-MM-DDThh:mm:ss.sssZ".into(),
            )
        })
}

/// A message reference: `msgid=` one of the room's messages, `timestamp=`, or (where
/// `star`) `*` for none.
fn reference(sub: &str, text: &str, star: bool, key: &str, last_id: u64) -> Result<Bound, Refusal> {
    if star && text == "*" {
        return Ok(Bound::Open);
    }
    if let Some(msgid) = text.strip_prefix("msgid=") {
        return match parse_msgid(msgid) {
            Some((k, n)) if k == key && n <= last_id => Ok(Bound::Id(n)),
            _ => Err(refuse(
                "INVALID_PARAMS",
                &[sub, &shown(text)],
                "no such message in this channel".into(),
            )),
        };
    }
    if text.starts_with("timestamp=") {
        return timestamp(sub, text).map(Bound::Time);
    }
    let expected = if star {
        "expected *, msgid=ID or timestamp=TIME"
    } else {
        "expected msgid=ID or timestamp=TIME"
    };
    Err(refuse(
        "INVALID_PARAMS",
        &[sub, &shown(text)],
        expected.into(),
    ))
}
