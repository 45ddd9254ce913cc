//! Command-line arguments.

use switchboard::core::name::validate_nick;

/// The usage text for `--help`.
pub const USAGE: &str = "\
Usage: chat-client --nick NAME [--server ADDR] [--join ROOM]... [--plain]

A terminal client for a Switchboard chat server.

Options:
  -n, --nick NAME      the nickname to ask for (required)
  -s, --server ADDR    the server to connect to [default: 127.0.0.1:7878]
  -j, --join ROOM      a room to join once signed in (may be repeated)
      --plain          read plain lines, without line editing (automatic when
                       standard input or output is not a terminal)
  -h, --help           print this help

Type /help once connected for the chat commands. Times are shown in UTC.
Exit status: 0 after /quit, Ctrl-D or Ctrl-C; 1 when the connection fails or the
server ends the session; 2 for bad arguments.
";

/// The port servers listen on unless told otherwise.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7878";

/// What to run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Server address, `host:port`.
    pub server: String,
    /// Nickname to ask for.
    pub nick: String,
    /// Rooms to join once signed in.
    pub join: Vec<String>,
    /// Whether to skip line editing.
    pub plain: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the client.
    Run(Args),
    /// Print the usage and exit.
    Help,
}

/// Parses the arguments after the program name; `Err` says what is wrong.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut server = None;
    let mut nick = None;
    let mut join = Vec::new();
    let mut plain = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--nick alice` and `--nick=alice`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-s" | "--server" => server = Some(value("--server")?),
            "-n" | "--nick" => nick = Some(value("--nick")?),
            "-j" | "--join" => {
                let room = value("--join")?;
                join.push(room.strip_prefix('#').unwrap_or(&room).to_owned());
            }
            "--plain" if inline.is_none() => plain = true,
            _ => return Err(format!("unexpected argument `{arg}`")),
        }
    }
    let nick = nick.ok_or("--nick NAME is required")?;
    // The length limit is the server's to tell; the characters are fixed by the protocol.
    if validate_nick(&nick, usize::MAX).is_err() {
        return Err(format!(
            "`{nick}` is not a valid nick: a letter or one of []\\`^{{}}|_ first, then \
             letters, digits, - or those"
        ));
    }
    Ok(Parsed::Run(Args {
        server: server.unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
        nick,
        join,
        plain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_forms() {
        assert_eq!(
            parse_strs(&["--nick", "alice"]),
            Ok(Parsed::Run(Args {
                server: DEFAULT_SERVER.into(),
                nick: "alice".into(),
                join: vec![],
                plain: false,
            }))
        );
        assert_eq!(
            parse_strs(&[
                "-s",
                "127.0.0.2:9000",
                "--nick=bob",
                "-j",
                "#rust",
                "--join=go",
                "--plain"
            ]),
            Ok(Parsed::Run(Args {
                server: "127.0.0.2:9000".into(),
                nick: "bob".into(),
                join: vec!["rust".into(), "go".into()],
                plain: true,
            }))
        );
        assert_eq!(parse_strs(&["--nick", "x", "--help"]), Ok(Parsed::Help));
        assert_eq!(parse_strs(&["-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn mistakes_are_explained() {
        assert_eq!(parse_strs(&[]), Err("--nick NAME is required".into()));
        assert_eq!(parse_strs(&["--nick"]), Err("--nick needs a value".into()));
        assert_eq!(parse_strs(&["--nick="]), Err("--nick needs a value".into()));
        assert_eq!(
            parse_strs(&["--nick", "a", "--port", "1"]),
            Err("unexpected argument `--port`".into())
        );
        assert_eq!(
            parse_strs(&["--nick", "a", "--plain=yes"]),
            Err("unexpected argument `--plain=yes`".into())
        );
        assert!(parse_strs(&["--nick", "2fast"])
            .is_err_and(|e| e.starts_with("`2fast` is not a valid nick")));
    }
}
