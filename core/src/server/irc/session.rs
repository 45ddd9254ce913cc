//! IRC-only state of a connection and the IRCv3 capabilities offered.
//!
//! A leaf: it imports nothing of the server, so `conn.rs` can hold an `IrcSession`
//! without importing the IRC front.

use bytes::Bytes;

use crate::line::LineDecoder;

/// The IRCv3 capabilities offered, as bits of `IrcSession::caps`.
pub(crate) mod cap {
    pub const MULTI_PREFIX: u16 = 1;
    pub const USERHOST_IN_NAMES: u16 = 2;
    pub const AWAY_NOTIFY: u16 = 4;
    pub const ECHO_MESSAGE: u16 = 8;
    pub const EXTENDED_JOIN: u16 = 16;
    pub const INVITE_NOTIFY: u16 = 32;
    pub const CAP_NOTIFY: u16 = 64;
    pub const BATCH: u16 = 128;
    pub const LABELED_RESPONSE: u16 = 256;
    pub const SETNAME: u16 = 512;
    pub const SERVER_TIME: u16 = 1024;
    pub const MESSAGE_TAGS: u16 = 2048;
    /// `draft/chathistory`: offered only while history is on.
    pub const CHATHISTORY: u16 = 4096;
    /// Every capability with its name, in the order `CAP LS` lists them.
    pub const ALL: [(&str, u16); 13] = [
        ("away-notify", AWAY_NOTIFY),
        ("batch", BATCH),
        ("cap-notify", CAP_NOTIFY),
        ("draft/chathistory", CHATHISTORY),
        ("echo-message", ECHO_MESSAGE),
        ("extended-join", EXTENDED_JOIN),
        ("invite-notify", INVITE_NOTIFY),
        ("labeled-response", LABELED_RESPONSE),
        ("message-tags", MESSAGE_TAGS),
        ("multi-prefix", MULTI_PREFIX),
        ("server-time", SERVER_TIME),
        ("setname", SETNAME),
        ("userhost-in-names", USERHOST_IN_NAMES),
    ];
}

/// The parameters of registration, until it completes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registering {
    /// The nick asked for.
    pub nick: Option<String>,
    /// User name and real name from `USER`.
    pub user: Option<(String, String)>,
    pub password: Option<String>,
}

/// What the IRC command being handled carries beside its parameters.
#[derive(Debug, Default)]
pub(crate) struct Command {
    /// The label of the command being handled, until its replies are labelled; a command
    /// answered later (CHATHISTORY, from the store) takes it along.
    pub label: Option<String>,
    /// The client-only tags of the command being handled, valid ones only, as sent.
    pub client_tags: Option<String>,
    /// Lines the command being handled sends after its answer (and its label).
    pub deferred: Vec<Bytes>,
}

/// IRC-only state of one connection.
#[derive(Debug, Default)]
pub(crate) struct IrcSession {
    pub lines: LineDecoder,
    /// What `NICK`, `USER` and `PASS` gave before registration; `None` before the first
    /// of them and once registered (the connection holds them then), so a registered
    /// session does not keep the copies.
    pub(super) registering: Option<Box<Registering>>,
    /// Registration waits while capability negotiation is open.
    pub(super) negotiating: bool,
    /// User mode `i`: left out of `WHO` masks for users who share no channel with it. Set
    /// only through `Conns::change` (LUSERS counts it, census.rs).
    pub invisible: bool,
    /// User mode `o`: a server operator, after `OPER`. Set only through `Conns::change`.
    pub oper: bool,
    /// User mode `w`: receives WALLOPS.
    pub wallops: bool,
    /// Enabled IRCv3 capabilities ([`cap`] bits).
    pub caps: u16,
    /// Batches opened so far (labeled-response, chathistory), which names the next.
    pub batches: u64,
    /// The command being handled, when it carries a label or client tags or defers
    /// lines: most commands do none of that, and an idle session holds nothing here.
    pub command: Option<Box<Command>>,
}

impl IrcSession {
    /// The registration parameters received so far, made on first use.
    pub(crate) fn registering(&mut self) -> &mut Registering {
        self.registering.get_or_insert_with(Box::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every IRC connection holds one session (boxed): 216 bytes when registration's
    /// parameters and the per-command state were inline, a third of that since (issue
    /// 16). A field that makes it grow should be a decision, not an accident.
    #[test]
    fn session_does_not_grow_unnoticed() {
        let size = std::mem::size_of::<IrcSession>();
        println!("IrcSession: {size} bytes");
        assert!(size <= 64, "IrcSession grew to {size} bytes");
    }

    #[test]
    fn registration_parameters_are_made_on_first_use() {
        let mut s = IrcSession::default();
        assert!(s.registering.is_none());
        s.registering().nick = Some("a".into());
        s.registering().password = Some("p".into());
        let reg = s.registering.as_deref().expect("made");
        assert_eq!(reg.nick.as_deref(), Some("a"));
        assert_eq!(reg.password.as_deref(), Some("p"));
    }
}
