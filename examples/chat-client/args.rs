//! Command-line arguments.

use clap::Parser;
use switchboard::core::name::validate_nick;

/// The port servers listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// A terminal client for a Switchboard chat server (or any server speaking its protocol).
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "chat-client", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Nicknames to ask for, in order (comma-separated or repeated); when all are taken,
    /// the first with `_` appended, as irssi does
    #[arg(short, long, required = true, value_delimiter = ',', value_parser = nick)]
    pub nick: Vec<String>,
    /// The server, HOST or HOST:PORT (port 7878 when left out)
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:7878", value_parser = server)]
    pub server: String,
    /// The server's password; better set SWITCHBOARD_PASSWORD, which the process list does
    /// not show
    #[arg(long, env = "SWITCHBOARD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A room to join once signed in (may be repeated)
    #[arg(short, long, value_name = "ROOM", value_parser = room)]
    pub join: Vec<String>,
    /// Connect with TLS, checking the server's certificate against the system's trusted
    /// roots (or --ca)
    #[arg(long)]
    pub tls: bool,
    /// Trust this PEM certificate (a self-signed server's) instead of the system's roots;
    /// implies --tls
    #[arg(long, value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// Read plain lines, without line editing (automatic when standard input or output is
    /// not a terminal)
    #[arg(long)]
    pub plain: bool,
    /// Show IRC bold, colours and underlines as plain text
    #[arg(long)]
    pub no_colors: bool,
    /// Do not reconnect (and rejoin the rooms) after a lost connection
    #[arg(long)]
    pub no_reconnect: bool,
    /// Print a completion script for SHELL, and exit
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
}

const AFTER_HELP: &str = "\
Type /help once connected for the chat commands. Times are shown in UTC.
Exit status: 0 after /quit, Ctrl-D or Ctrl-C; 1 when the connection fails or the
server ends the session for good; 2 for bad arguments.";

/// A nickname as the protocol spells them (the length limit is the server's to tell).
fn nick(s: &str) -> Result<String, String> {
    if validate_nick(s, usize::MAX).is_err() {
        return Err(
            "a letter or one of []\\`^{}|_ first, then letters, digits, - or those".to_owned(),
        );
    }
    Ok(s.to_owned())
}

/// A room name, with or without its `#`.
fn room(s: &str) -> Result<String, String> {
    let name = s.strip_prefix('#').unwrap_or(s);
    if name.is_empty() {
        return Err("a room needs a name".to_owned());
    }
    Ok(name.to_owned())
}

/// `HOST:PORT`, the default port added when there is none (`::1` and `[::1]` are hosts).
pub fn server(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty address".to_owned());
    }
    let has_port = match s.rsplit_once(':') {
        // `[::1]:7878` and `host:7878`; a bare IPv6 address has more than one colon.
        Some((host, port)) => {
            (host.ends_with(']') || !host.contains(':')) && port.parse::<u16>().is_ok()
        }
        None => false,
    };
    if has_port {
        return Ok(s.to_owned());
    }
    if let Some((_, port)) = s.rsplit_once(':').filter(|(h, _)| !h.contains(':')) {
        return Err(format!("`{port}` is not a port number"));
    }
    if s.contains(':') && !s.starts_with('[') {
        return Ok(format!("[{s}]:{DEFAULT_PORT}"));
    }
    Ok(format!("{s}:{DEFAULT_PORT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(std::iter::once("chat-client").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_forms() {
        let args = parse(&["--nick", "alice"]).unwrap();
        assert_eq!(args.server, "127.0.0.1:7878");
        assert_eq!(args.nick, ["alice"]);
        assert!(args.join.is_empty() && !args.plain && !args.no_colors && !args.no_reconnect);
        let args = parse(&[
            "-s",
            "127.0.0.2:9000",
            "--nick=bob,bob2",
            "-n",
            "bobby",
            "-j",
            "#rust",
            "--join=go",
            "--plain",
            "--no-colors",
            "--no-reconnect",
        ])
        .unwrap();
        assert_eq!(args.server, "127.0.0.2:9000");
        assert_eq!(args.nick, ["bob", "bob2", "bobby"]);
        assert_eq!(args.join, ["rust", "go"]);
        assert!(args.plain && args.no_colors && args.no_reconnect);
    }

    #[test]
    fn a_server_without_a_port_gets_7878() {
        assert_eq!(server("example.org"), Ok("example.org:7878".into()));
        assert_eq!(server("127.0.0.1"), Ok("127.0.0.1:7878".into()));
        assert_eq!(server("example.org:6667"), Ok("example.org:6667".into()));
        assert_eq!(server("::1"), Ok("[::1]:7878".into()));
        assert_eq!(server("[::1]"), Ok("[::1]:7878".into()));
        assert_eq!(server("[::1]:9000"), Ok("[::1]:9000".into()));
        assert_eq!(server("host:x"), Err("`x` is not a port number".into()));
    }

    #[test]
    fn the_password_comes_from_the_environment() {
        // The only test that sets it.
        std::env::set_var("SWITCHBOARD_PASSWORD", "sesame");
        let args = parse(&["--nick", "alice"]);
        std::env::remove_var("SWITCHBOARD_PASSWORD");
        assert_eq!(args.unwrap().password.as_deref(), Some("sesame"));
        assert_eq!(
            parse(&["--nick", "a", "--password=open"])
                .unwrap()
                .password
                .as_deref(),
            Some("open")
        );
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse(&[]).unwrap_err().contains("--nick"));
        assert!(parse(&["--nick"]).unwrap_err().contains("--nick"));
        let e = parse(&["--nick", "a", "--port", "1"]).unwrap_err();
        assert!(e.contains("--port") && !e.contains("--no-reconnect"), "{e}");
        let e = parse(&["--nick", "2fast"]).unwrap_err();
        assert!(e.contains("2fast") && e.contains("a letter"), "{e}");
        assert!(parse(&["--nick", "a", "--join", "#"])
            .unwrap_err()
            .contains("needs a name"));
    }
}
