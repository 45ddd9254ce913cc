//! What the three server examples share: command-line flags, the startup line and signals.

use std::process;
use std::str::FromStr;
use std::time::Duration;

use switchboard::core::Config;

/// The address served when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// The parsed command line.
pub struct Options {
    /// Address to listen on.
    pub listen: String,
    /// A second address to listen on, by convention IRC's port 6667; it serves the same
    /// rooms, and either protocol, like the first.
    pub irc_listen: Option<String>,
    /// The core's limits and timers.
    pub config: Config,
    /// Whether to drop the per-connection log lines.
    pub quiet: bool,
    /// Room history: where and how much.
    pub history: HistoryFlags,
}

/// The history flags: `--data-dir`, `--no-history`/`--history`, `--history-max-messages`,
/// `--history-max-age`, `--history-on-join`.
pub struct HistoryFlags {
    /// Whether history is kept.
    pub enabled: bool,
    /// The directory holding the history file.
    pub data_dir: String,
    /// Messages kept per room (None: all).
    pub max_messages: Option<u64>,
    /// Age past which messages are dropped (None: never).
    pub max_age: Option<Duration>,
    /// Messages replayed to a joiner.
    pub on_join: u16,
}

/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./switchboard-data";

/// A duration such as `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
fn duration(value: &str) -> Result<Duration, String> {
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = number(digits)?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{value}` is not a duration: use a number and s, m, h or d"
            ))
        }
    };
    if n == 0 {
        return Err("a zero age keeps nothing: use --no-history".to_owned());
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Opens the history store the flags ask for, or exits naming what is wrong with it.
pub fn open_history(flags: &HistoryFlags) -> Option<switchboard::store::History> {
    use switchboard::store::{History, Retention, SqliteStore, Sync};
    if !flags.enabled {
        return None;
    }
    let retention = Retention {
        max_messages: flags.max_messages,
        max_age: flags.max_age,
    };
    let dir = std::path::Path::new(&flags.data_dir);
    let opened = SqliteStore::open(dir, retention, Sync::Normal).and_then(|store| {
        let opts = switchboard::core::HistoryOptions {
            on_join: flags.on_join,
            ..Default::default()
        };
        History::new(Box::new(store), opts)
    });
    match opened {
        Ok(history) => {
            eprintln!(
                "history in {} ({} rooms)",
                SqliteStore::file_in(dir).display(),
                history.room_count()
            );
            Some(history)
        }
        Err(e) => {
            eprintln!("cannot keep history: {e}");
            process::exit(1);
        }
    }
}

/// One flag that sets a field of [`Config`].
struct Flag {
    name: &'static str,
    /// What the value is, in the help text.
    value: &'static str,
    help: &'static str,
    set: fn(&mut Config, &str) -> Result<(), String>,
    get: fn(&Config) -> String,
}

fn number<T: FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}` is not a valid number here"))
}

/// A flag for a numeric field.
macro_rules! num {
    ($name:literal, $field:ident, $help:literal) => {
        Flag {
            name: $name,
            value: "N",
            help: $help,
            set: |c, v| {
                c.$field = number(v)?;
                Ok(())
            },
            get: |c| c.$field.to_string(),
        }
    };
}

/// A flag for a duration field, in milliseconds.
macro_rules! millis {
    ($name:literal, $field:ident, $help:literal) => {
        Flag {
            name: $name,
            value: "N",
            help: $help,
            set: |c, v| {
                c.$field = Duration::from_millis(number(v)?);
                Ok(())
            },
            get: |c| c.$field.as_millis().to_string(),
        }
    };
}

/// Every field of `Config`, in its order.
const FLAGS: &[Flag] = &[
    num!(
        "max-frame-len",
        max_frame_len,
        "largest frame body accepted, bytes"
    ),
    num!("max-nick-len", max_nick_len, "longest nickname, bytes"),
    num!("max-room-len", max_room_len, "longest room name, bytes"),
    num!("max-text-len", max_text_len, "longest message text, bytes"),
    num!(
        "max-reason-len",
        max_reason_len,
        "longest leave or quit reason, bytes"
    ),
    num!(
        "max-rooms-per-conn",
        max_rooms_per_conn,
        "most rooms one connection may sit in"
    ),
    num!(
        "max-outbound-bytes",
        max_outbound_bytes,
        "unsent output at which a connection is closed as a slow consumer"
    ),
    num!(
        "max-transmit-bytes",
        max_transmit_bytes,
        "largest batch written at once"
    ),
    millis!(
        "ping-interval-ms",
        ping_interval,
        "silence before the server pings"
    ),
    millis!(
        "idle-timeout-ms",
        idle_timeout,
        "silence before the server closes"
    ),
    millis!(
        "hello-timeout-ms",
        hello_timeout,
        "time a new connection has to say hello"
    ),
    num!(
        "msg-rate",
        msg_rate,
        "sustained requests per second per connection, 0: no limit"
    ),
    num!(
        "msg-burst",
        msg_burst,
        "requests allowed at once above the rate"
    ),
    num!(
        "flood-strikes",
        flood_strikes,
        "rate-limited requests in a row before closing"
    ),
    millis!(
        "close-linger-ms",
        close_linger,
        "time to flush a closing connection"
    ),
    num!("max-topic-len", max_topic_len, "longest room topic, bytes"),
    Flag {
        name: "server-name",
        value: "NAME",
        help: "the server's name, source of its IRC replies",
        set: |c, v| {
            if v.is_empty() || v.contains([' ', '\r', '\n', '\0']) {
                return Err(format!("`{v}` is not a server name (no spaces, not empty)"));
            }
            c.server_name = v.to_owned();
            Ok(())
        },
        get: |c| c.server_name.clone(),
    },
    Flag {
        name: "password",
        value: "PASS",
        help: "password every client must give (shows in the process list)",
        set: |c, v| {
            if v.is_empty() {
                return Err("an empty password is none: leave the flag out".to_owned());
            }
            c.password = Some(v.to_owned());
            Ok(())
        },
        get: |c| c.password.as_ref().map_or("none", |_| "set").to_owned(),
    },
    Flag {
        name: "motd",
        value: "TEXT",
        help: "message of the day for IRC clients (or --motd-file PATH)",
        set: |c, v| {
            c.motd = Some(v.to_owned());
            Ok(())
        },
        get: |c| c.motd.as_ref().map_or("none", |_| "set").to_owned(),
    },
];

fn usage(program: &str) -> String {
    let defaults = Config::default();
    let mut text = format!(
        "The Switchboard chat server.\n\n\
         Usage: {program} [--listen ADDR] [--irc-listen ADDR] [--quiet] [--FLAG VALUE]...\n\n\
         \x20 --listen ADDR{:pad$}address to listen on (default {DEFAULT_LISTEN}; port 0: any)\n\
         \x20 --irc-listen ADDR{:pad4$}also listen here, for IRC clients by convention (6667)\n\
         \x20 --motd-file PATH{:pad5$}message of the day for IRC clients, from a file\n\
         \x20 --quiet{:pad2$}no log line per connection\n\
         \x20 --data-dir DIR{:pad6$}where history is kept (default {DEFAULT_DATA_DIR})\n\
         \x20 --no-history{:pad7$}keep no history (also --history 0; --history 1: keep it)\n\
         \x20 --history-max-messages N{:pad8$}messages kept per room (default all)\n\
         \x20 --history-max-age AGE{:pad9$}age past which messages go: 90s, 30m, 12h, 7d\n\
         \x20 --history-on-join N{:pad10$}messages replayed to a joiner (default 50)\n\
         \x20 --help{:pad3$}this text\n",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        pad = 30 - "--listen ADDR".len(),
        pad4 = 30 - "--irc-listen ADDR".len(),
        pad5 = 30 - "--motd-file PATH".len(),
        pad2 = 30 - "--quiet".len(),
        pad3 = 30 - "--help".len(),
        pad6 = 30 - "--data-dir DIR".len(),
        pad7 = 30 - "--no-history".len(),
        pad8 = 30 - "--history-max-messages N".len(),
        pad9 = 30 - "--history-max-age AGE".len(),
        pad10 = 30 - "--history-on-join N".len(),
    );
    for flag in FLAGS {
        let left = format!("--{} {}", flag.name, flag.value);
        text += &format!(
            "  {left:30}{} (default {})\n",
            flag.help,
            (flag.get)(&defaults)
        );
    }
    text +=
        "\nEach bound address is printed as `listening on ADDR`, --listen's first. Both ports\n\
             serve native and IRC clients alike. Ctrl-C or SIGTERM says bye to every client and\n\
             exits once that is written; a second signal exits at once.\n";
    text
}

/// Parses the command line; prints help or an error and exits when asked or wrong.
pub fn parse_args(program: &str) -> Options {
    match parse(program, std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{program}: {message}\n\n{}", usage(program));
            process::exit(2);
        }
    }
}

fn parse(program: &str, args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        listen: DEFAULT_LISTEN.to_owned(),
        irc_listen: None,
        config: Config::default(),
        quiet: false,
        history: HistoryFlags {
            enabled: true,
            data_dir: DEFAULT_DATA_DIR.to_owned(),
            max_messages: None,
            max_age: None,
            on_join: 50,
        },
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument `{arg}`"));
        };
        // Both `--flag value` and `--flag=value`.
        let (name, inline) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (name, None),
        };
        match name {
            "help" => {
                print!("{}", usage(program));
                process::exit(0);
            }
            "quiet" => options.quiet = true,
            "no-history" => options.history.enabled = false,
            _ => {
                let flag = FLAGS.iter().find(|f| f.name == name);
                let own = [
                    "listen",
                    "irc-listen",
                    "motd-file",
                    "data-dir",
                    "history",
                    "history-max-messages",
                    "history-max-age",
                    "history-on-join",
                ];
                if flag.is_none() && !own.contains(&name) {
                    return Err(format!("unknown flag `--{name}`"));
                }
                let value = match inline {
                    Some(value) => value,
                    None => args
                        .next()
                        .ok_or_else(|| format!("`--{name}` needs a value"))?,
                };
                match (flag, name) {
                    (Some(flag), _) => (flag.set)(&mut options.config, &value)
                        .map_err(|e| format!("--{name}: {e}"))?,
                    (None, "irc-listen") => options.irc_listen = Some(value),
                    (None, "motd-file") => {
                        options.config.motd =
                            Some(read_motd(&value).map_err(|e| format!("--{name}: {e}"))?)
                    }
                    (None, "data-dir") => options.history.data_dir = value,
                    (None, "history") => {
                        options.history.enabled = match value.as_str() {
                            "0" | "off" => false,
                            "1" | "on" => true,
                            _ => return Err(format!("--{name}: `{value}` is not 0 or 1")),
                        }
                    }
                    (None, "history-max-messages") => {
                        let n: u64 = number(&value).map_err(|e| format!("--{name}: {e}"))?;
                        if n == 0 {
                            return Err(format!("--{name}: 0 keeps nothing: use --no-history"));
                        }
                        options.history.max_messages = Some(n);
                    }
                    (None, "history-max-age") => {
                        options.history.max_age =
                            Some(duration(&value).map_err(|e| format!("--{name}: {e}"))?)
                    }
                    (None, "history-on-join") => {
                        let n: u16 = number(&value).map_err(|e| format!("--{name}: {e}"))?;
                        if n > 200 {
                            return Err(format!("--{name}: at most 200, the page limit"));
                        }
                        options.history.on_join = n;
                    }
                    _ => options.listen = value,
                }
            }
        }
    }
    Ok(options)
}

/// The message of the day in the file at `path`.
fn read_motd(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if text.contains('\0') {
        return Err(format!("{path} holds a NUL byte"));
    }
    Ok(text)
}

/// Prints the bound address on standard output, for people and for scripts to parse.
pub fn announce(addr: std::io::Result<std::net::SocketAddr>) {
    match addr {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => eprintln!("cannot read the bound address: {e}"),
    }
}

/// Exits with a message when the listening socket could not be bound.
pub fn bind_failed(listen: &str, e: std::io::Error) -> ! {
    eprintln!("cannot listen on {listen}: {e}");
    process::exit(1);
}

/// Calls `shutdown` on the first Ctrl-C or SIGTERM; exits at once on the second.
#[cfg(unix)]
pub fn on_signal(shutdown: impl Fn() + Send + 'static) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("cannot catch signals, Ctrl-C will not say bye: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                eprintln!("shutting down (signal again to exit at once)");
                shutdown();
            }
            if signals.next().is_some() {
                process::exit(130);
            }
        });
    if let Err(e) = spawned {
        eprintln!("cannot catch signals, Ctrl-C will not say bye: {e}");
    }
}

/// Without Unix signals, Ctrl-C ends the process the default way.
#[cfg(not(unix))]
pub fn on_signal(_shutdown: impl Fn() + Send + 'static) {}
