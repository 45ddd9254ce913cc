//! What the three server examples share: command line and config file, logging, the
//! startup line and signals.
//!
//! Every field of the core's [`Config`] is one line in the `settings!` list below, which
//! makes it a flag (`--max-frame-len N`) and a config-file key (`max-frame-len = N`) at once.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use switchboard::core::Config;

/// The address served when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// What a server runs with: the command line over the config file over the defaults.
#[derive(Debug)]
pub struct Options {
    /// Address to listen on.
    pub listen: String,
    /// A second address to listen on, by convention IRC's port 6667; it serves the same
    /// rooms, and either protocol, like the first.
    pub irc_listen: Option<String>,
    /// Addresses to listen on with TLS (both protocols, like the others).
    pub tls_listen: Vec<String>,
    /// The certificate chain and private key files, PEM, when `tls_listen` is not empty.
    pub tls_files: Option<TlsFiles>,
    /// The core's limits and timers.
    pub config: Config,
    /// Whether to drop the per-connection log lines.
    pub quiet: bool,
    /// Room history: where and how much.
    pub history: HistoryFlags,
    /// The cluster to join, when `--cluster` is given.
    pub cluster: Option<ClusterFlags>,
    /// Whether the listeners share their ports with other processes (SO_REUSEPORT).
    pub reuse_port: bool,
}

/// The cluster flags: `--cluster redis://HOST:PORT` and `--node-name NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFlags {
    /// Where the cluster's Redis is.
    pub url: String,
    /// This node's name, unique in the cluster.
    pub node: String,
}

/// A node name for `--node-name`'s default: the host's name and this process's id, which
/// no other process on the host has at the same time.
fn default_node_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| node_name(h).is_ok())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", process::id())
}

/// `--node-name`: 1 to 64 letters, digits, `-`, `_` or `.` (it is part of Redis keys and
/// channel names, and of log lines).
fn node_name(value: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a node name (1 to 64 letters, digits, `-`, `_` or `.`)"
        ))
    }
}

/// Binds a listening socket on `addr`, with SO_REUSEPORT if `reuse_port` (so several
/// nodes on one machine share the port and the kernel spreads connections over them);
/// exits naming the address if it cannot.
pub fn listen(addr: &str, reuse_port: bool) -> std::net::TcpListener {
    bind(addr, reuse_port).unwrap_or_else(|e| bind_failed(addr, e))
}

fn bind(addr: &str, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    if !reuse_port {
        return std::net::TcpListener::bind(addr);
    }
    let mut last = None;
    for sa in addr.to_socket_addrs()? {
        let attempt = Socket::new(Domain::for_address(sa), Type::STREAM, None).and_then(|socket| {
            socket.set_reuse_address(true)?;
            set_reuse_port(&socket)?;
            socket.bind(&sa.into())?;
            socket.listen(1024)?;
            Ok(std::net::TcpListener::from(socket))
        });
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    }))
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn set_reuse_port(socket: &socket2::Socket) -> std::io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn set_reuse_port(_: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "--reuse-port is not supported on this system",
    ))
}

/// Opens the cluster the flags ask for, or exits naming what is wrong with it. Redis need
/// not be up yet: the node serves its own clients meanwhile and joins when it comes.
pub fn open_cluster(flags: &Option<ClusterFlags>) -> Option<switchboard::bus::Cluster> {
    let flags = flags.as_ref()?;
    let options =
        switchboard::core::ClusterOptions::new(&flags.node, switchboard::bus::incarnation());
    match switchboard::bus::Cluster::new(&flags.url, options) {
        Ok(cluster) => {
            log::info!(
                "node {} of the cluster on redis at {}",
                flags.node,
                cluster.address()
            );
            Some(cluster)
        }
        Err(e) => {
            eprintln!("--cluster: {e}");
            process::exit(2);
        }
    }
}

/// The history flags: `--data-dir`, `--no-history`/`--history`, `--history-max-messages`,
/// `--history-max-age`, `--history-on-join`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryFlags {
    /// Whether history is kept.
    pub enabled: bool,
    /// The directory holding the history file.
    pub data_dir: PathBuf,
    /// Messages kept per room (None: all).
    pub max_messages: Option<u64>,
    /// Age past which messages are dropped (None: never).
    pub max_age: Option<Duration>,
    /// Messages replayed to a joiner.
    pub on_join: u16,
}

impl Default for HistoryFlags {
    fn default() -> HistoryFlags {
        HistoryFlags {
            enabled: true,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_messages: None,
            max_age: None,
            on_join: DEFAULT_ON_JOIN,
        }
    }
}

/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./switchboard-data";

/// Messages replayed to a joiner when `--history-on-join` is not given.
const DEFAULT_ON_JOIN: u16 = 50;

/// `--history`: `1`/`on` keeps history, `0`/`off` keeps none.
fn history_switch(value: &str) -> Result<bool, String> {
    match value {
        "0" | "off" => Ok(false),
        "1" | "on" => Ok(true),
        _ => Err(format!("`{value}` is not 0 or 1")),
    }
}

/// `--history-max-messages`: at least one.
fn max_messages(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("0 keeps nothing: use --no-history".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{value}` is not a valid number here")),
    }
}

/// `--history-on-join`: at most 200, the page limit.
fn on_join(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(n) if n <= 200 => Ok(n),
        Ok(_) => Err("at most 200, the page limit".to_owned()),
        Err(_) => Err(format!("`{value}` is not a valid number here")),
    }
}

/// A duration such as `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
fn duration(value: &str) -> Result<Duration, String> {
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{value}` is not a duration: use a number and s, m, h or d"))?;
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
    let dir = flags.data_dir.as_path();
    let opened = SqliteStore::open(dir, retention, Sync::Normal).and_then(|store| {
        let opts = switchboard::core::HistoryOptions {
            on_join: flags.on_join,
            ..Default::default()
        };
        History::new(Box::new(store), opts)
    });
    match opened {
        Ok(history) => {
            log::info!(
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

/// How a value given for a `Config` field becomes that field, and back (for `--dump-config`
/// and the defaults in `--help`).
mod kind {
    use super::*;

    /// Taken as given.
    pub mod plain {
        pub fn to<T>(v: T) -> Result<T, String> {
            Ok(v)
        }
        pub fn from<T: Clone>(v: &T) -> Option<T> {
            Some(v.clone())
        }
    }

    /// A limit of 0 would make the server refuse everything.
    pub mod positive {
        pub fn to<T: PartialEq + Default>(v: T) -> Result<T, String> {
            if v == T::default() {
                return Err("must be at least 1 (0 would make the server unusable)".into());
            }
            Ok(v)
        }
        pub fn from<T: Clone>(v: &T) -> Option<T> {
            Some(v.clone())
        }
    }

    /// Milliseconds.
    pub mod millis {
        use super::*;
        pub fn to(v: u64) -> Result<Duration, String> {
            Ok(Duration::from_millis(v))
        }
        pub fn from(v: &Duration) -> Option<u64> {
            Some(v.as_millis().min(u64::MAX as u128) as u64)
        }
    }

    /// Milliseconds, at least one.
    /// Microseconds.
    pub mod micros {
        use super::*;
        pub fn to(v: u64) -> Result<Duration, String> {
            Ok(Duration::from_micros(v))
        }
        pub fn from(v: &Duration) -> Option<u64> {
            Some(v.as_micros().min(u64::MAX as u128) as u64)
        }
    }

    pub mod positive_millis {
        use super::*;
        pub fn to(v: u64) -> Result<Duration, String> {
            positive::to(v).map(Duration::from_millis)
        }
        pub use super::millis::from;
    }

    /// The server's name: one IRC word.
    pub mod server_name {
        pub fn to(v: String) -> Result<String, String> {
            if v.is_empty() || v.contains([' ', '\r', '\n', '\0']) {
                return Err(format!("`{v}` is not a server name (no spaces, not empty)"));
            }
            Ok(v)
        }
        pub use super::plain::from;
    }

    /// Optional text, on one line or several.
    pub mod text {
        pub fn to(v: String) -> Result<Option<String>, String> {
            if v.contains('\0') {
                return Err("holds a NUL byte".into());
            }
            Ok(Some(v))
        }
        pub fn from(v: &Option<String>) -> Option<String> {
            v.clone()
        }
    }

    /// A connection count; unlimited (the default) is left out of the config file and
    /// becomes one derived from the open-file limit.
    pub mod conn_limit {
        pub fn to(v: usize) -> Result<usize, String> {
            super::positive::to(v)
        }
        pub fn from(v: &usize) -> Option<usize> {
            (*v != usize::MAX).then_some(*v)
        }
    }

    /// An optional secret: not empty.
    pub mod secret {
        pub fn to(v: String) -> Result<Option<String>, String> {
            if v.is_empty() {
                return Err("an empty password is none: leave it out".into());
            }
            Ok(Some(v))
        }
        pub fn from(v: &Option<String>) -> Option<String> {
            v.clone()
        }
    }
}

/// Declares every `Config` field as a flag and a config-file key.
///
/// Each entry: doc line(s) (the help text), optional extra `#[arg(...)]` for clap, then
/// `flag_name: FlagType => config_field via kind;` with `kind` one of the modules in [`kind`].
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $(#[arg($($arg:tt)*)])?
        $name:ident: $ty:ty => $field:ident via $kind:ident;
    )*) => {
        /// A flag for every field of `Config`; unset flags leave the field alone.
        #[derive(clap::Args, serde::Serialize, Debug, Default)]
        #[serde(rename_all = "kebab-case")]
        pub struct ConfigFlags {
            $(
                $(#[doc = $doc])*
                #[arg(long, value_name = value_name::<$ty>() $(, $($arg)*)?)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        /// The config file: every flag as a key, each value with where it was written.
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct FileKeys {
            listen: Option<String>,
            irc_listen: Option<String>,
            tls_listen: Option<Vec<String>>,
            tls_cert: Option<PathBuf>,
            tls_key: Option<PathBuf>,
            motd_file: Option<toml::Spanned<PathBuf>>,
            quiet: Option<bool>,
            oper: Option<toml::Spanned<Vec<String>>>,
            data_dir: Option<PathBuf>,
            history: Option<bool>,
            history_max_messages: Option<toml::Spanned<u64>>,
            history_max_age: Option<toml::Spanned<String>>,
            history_on_join: Option<toml::Spanned<u16>>,
            cluster: Option<String>,
            node_name: Option<toml::Spanned<String>>,
            reuse_port: Option<bool>,
            $($name: Option<toml::Spanned<$ty>>,)*
        }

        impl ConfigFlags {
            /// The flags that reproduce `config`.
            fn of(config: &Config) -> ConfigFlags {
                ConfigFlags {
                    $($name: kind::$kind::from(&config.$field),)*
                }
            }

            /// Sets the fields given on the command line, else those in `file`.
            fn apply(self, file: &FileKeys, at: &FileAt, config: &mut Config) -> Result<(), String> {
                $(
                    if let Some(v) = self.$name {
                        config.$field = kind::$kind::to(v)
                            .map_err(|e| format!("--{}: {e}", flag(stringify!($name))))?;
                    } else if let Some(v) = &file.$name {
                        config.$field = kind::$kind::to(v.get_ref().clone())
                            .map_err(|e| at.error(v.span(), stringify!($name), e))?;
                    }
                )*
                Ok(())
            }

            /// The `Config` fields with a flag, for the test that every field has one.
            #[cfg(test)]
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The flag that sets the `Config` field `field`, for errors found by validation.
            fn flag_of(field: &str) -> Option<String> {
                [$((stringify!($field), stringify!($name))),*]
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map(|(_, name)| flag(name))
            }

            /// Each flag's id and its default, for the help text.
            fn defaults() -> Vec<(&'static str, Option<String>)> {
                let d = Config::default();
                vec![$((stringify!($name), kind::$kind::from(&d.$field).map(|v| show(&v))),)*]
            }
        }
    };
}

settings! {
    /// Largest frame body accepted, in bytes
    max_frame_len: u32 => max_frame_len via positive;
    /// Longest nickname, in bytes
    max_nick_len: u16 => max_nick_len via positive;
    /// Longest room name, in bytes
    max_room_len: u16 => max_room_len via positive;
    /// Longest message text, in bytes
    max_text_len: u16 => max_text_len via positive;
    /// Longest leave or quit reason, in bytes
    max_reason_len: u16 => max_reason_len via plain;
    /// Most rooms one connection may sit in
    max_rooms_per_conn: u16 => max_rooms_per_conn via positive;
    /// Unsent output at which a connection is closed as a slow consumer, in bytes
    max_outbound_bytes: usize => max_outbound_bytes via positive;
    /// Largest batch written at once, in bytes
    max_transmit_bytes: usize => max_transmit_bytes via positive;
    /// Unsent output past which a connection holds back whoever sends to it, in bytes;
    /// at --max-outbound-bytes or more, output pacing is off
    outbound_high_water: usize => outbound_high_water via positive;
    /// Longest a connection above the high-water mark holds senders back, in milliseconds
    outbound_stall_timeout_ms: u64 => outbound_stall_timeout via positive_millis;
    /// Longest output others caused waits to share one write, in microseconds; 0: none
    flush_delay_us: u64 => flush_delay via micros;
    /// Silence before the server pings, in milliseconds
    ping_interval_ms: u64 => ping_interval via positive_millis;
    /// Silence before the server closes, in milliseconds
    idle_timeout_ms: u64 => idle_timeout via positive_millis;
    /// Time a new connection has to say hello, in milliseconds
    hello_timeout_ms: u64 => hello_timeout via positive_millis;
    /// Sustained requests per second per connection; 0: no limit
    msg_rate: u32 => msg_rate via plain;
    /// Requests allowed at once above the rate
    msg_burst: u32 => msg_burst via plain;
    /// Received bytes held per connection; reading pauses when they are full
    max_inbound_bytes: usize => max_inbound_bytes via positive;
    /// Time a frame or line has from its first byte to its last, in milliseconds
    request_timeout_ms: u64 => request_timeout via positive_millis;
    /// Time to flush a closing connection, in milliseconds
    close_linger_ms: u64 => close_linger via millis;
    /// Longest room topic, in bytes
    max_topic_len: u16 => max_topic_len via plain;
    /// The server's name, source of its IRC replies
    server_name: String => server_name via server_name;
    /// Password every client must give (better from the environment: the process list
    /// shows flags)
    #[arg(env = "SWITCHBOARD_PASSWORD", hide_env_values = true)]
    password: String => password via secret;
    /// Message of the day for IRC clients (or --motd-file)
    motd: String => motd via text;
    /// Most connections from one IP address (loopback included); more are refused
    max_conns_per_ip: usize => max_conns_per_ip via positive;
    /// Most connections in all; more are refused [default: from the open-file limit]
    max_conns: usize => max_conns via conn_limit;
}

/// The placeholder for a flag's value in the help text: `TEXT` or `N`.
fn value_name<T>() -> &'static str {
    if std::any::type_name::<T>().ends_with("String") {
        "TEXT"
    } else {
        "N"
    }
}

/// The flag spelling of a field name.
fn flag(name: &str) -> String {
    name.replace('_', "-")
}

fn show(v: &impl Display) -> String {
    v.to_string()
}

/// The Switchboard chat server.
///
/// Both ports serve native and IRC clients alike. Each bound address is printed as
/// `listening on ADDR`, --listen's first. Ctrl-C or SIGTERM says bye to every client and
/// exits once that is written; a second signal exits at once.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
struct Cli {
    /// Read settings from this TOML file: every flag is a key (`max-frame-len = 1024`);
    /// flags given here override it
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free one [default: 127.0.0.1:7878]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Also listen here, for IRC clients by convention (port 6667)
    #[arg(long, value_name = "ADDR")]
    irc_listen: Option<String>,
    /// Also listen here with TLS, for either protocol (6697 by convention); may be given
    /// more than once
    #[arg(long, value_name = "ADDR")]
    tls_listen: Vec<String>,
    /// The TLS certificate chain, PEM (reloaded on SIGHUP)
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key, PEM (reloaded on SIGHUP)
    #[arg(long, value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Message of the day for IRC clients, from a file
    #[arg(long, value_name = "PATH")]
    motd_file: Option<PathBuf>,
    /// No log line per connection (warnings and errors only)
    #[arg(long)]
    quiet: bool,
    /// An IRC server operator: a name and the SHA-256 of its password in hex (`sha256sum`);
    /// repeatable
    #[arg(long, value_name = "NAME:SHA256")]
    oper: Vec<String>,
    /// Where history is kept [default: ./switchboard-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep no history (also --history 0)
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
    /// Keep history: 1 or on, 0 or off [default: 1]
    #[arg(long, value_name = "0|1", value_parser = history_switch)]
    history: Option<bool>,
    /// Messages kept per room [default: all]
    #[arg(long, value_name = "N", value_parser = max_messages)]
    history_max_messages: Option<u64>,
    /// Age past which messages go: 90s, 30m, 12h, 7d [default: never]
    #[arg(long, value_name = "AGE", value_parser = duration)]
    history_max_age: Option<Duration>,
    /// Messages replayed to a joiner [default: 50]
    #[arg(long, value_name = "N", value_parser = on_join)]
    history_on_join: Option<u16>,
    /// Join a cluster of servers sharing chat through this Redis
    #[arg(long, value_name = "redis://HOST:PORT")]
    cluster: Option<String>,
    /// This node's name in the cluster, unique there [default: host name and process id]
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    node_name: Option<String>,
    /// Share the listening ports with other processes (SO_REUSEPORT): several nodes on one
    /// machine serve one port
    #[arg(long)]
    reuse_port: bool,
    #[command(flatten)]
    config_flags: ConfigFlags,
    /// Print the settings in effect as a config file, and exit
    #[arg(long)]
    dump_config: bool,
    /// Print a completion script for SHELL, and exit
    #[arg(long, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,
}

const AFTER_HELP: &str = "\
Log lines go to standard error; RUST_LOG filters them (e.g. RUST_LOG=debug, or
RUST_LOG=switchboard_driver=warn). See switchboard.example.toml for a config file.";

/// The command line's grammar, with each `Config` flag's default in its help.
fn command(program: &'static str) -> clap::Command {
    let mut cmd = Cli::command().name(program);
    for (id, default) in ConfigFlags::defaults() {
        cmd = cmd.mut_arg(id, |arg| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            match default {
                Some(d) => arg.help(format!("{help} [default: {d}]")),
                None => arg.help(help),
            }
        });
    }
    cmd
}

/// Where config-file values came from, for error messages.
struct FileAt {
    path: PathBuf,
    text: String,
}

impl FileAt {
    fn error(&self, span: std::ops::Range<usize>, key: &str, e: impl Display) -> String {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        format!("{}:{line}: key `{}`: {e}", self.path.display(), flag(key))
    }
}

/// Parses the command line (and the config file it names); prints help, the version or an
/// error and exits when asked or wrong. Starts logging.
pub fn parse_args(program: &'static str) -> Options {
    let matches = command(program).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(shell) = cli.completions {
        clap_complete::generate(
            shell,
            &mut command(program),
            program,
            &mut std::io::stdout(),
        );
        process::exit(0);
    }
    let dump = cli.dump_config;
    let mut options = options(cli).unwrap_or_else(|e| {
        eprintln!("{program}: {e}");
        process::exit(2);
    });
    // The core reads no clock: it is told the wall-clock time at one instant.
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    options.config.wall_clock = Some((std::time::Instant::now(), unix));
    if dump {
        print!("{}", dump_config(&options));
        process::exit(0);
    }
    init_log(options.quiet);
    options
}

/// Merges the command line over the config file over the defaults.
fn options(cli: Cli) -> Result<Options, String> {
    let (file, at) = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config: cannot read {}: {e}", path.display()))?;
            let file: FileKeys =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            (
                file,
                FileAt {
                    path: path.clone(),
                    text,
                },
            )
        }
        None => (
            FileKeys::default(),
            FileAt {
                path: PathBuf::new(),
                text: String::new(),
            },
        ),
    };
    let history = history_flags(&cli, &file, &at)?;
    let mut config = Config::default();
    cli.config_flags.apply(&file, &at, &mut config)?;
    if let Some(path) = &cli.motd_file {
        config.motd = Some(read_motd(path).map_err(|e| format!("--motd-file: {e}"))?);
    } else if let Some(path) = &file.motd_file {
        let motd = read_motd(path.get_ref()).map_err(|e| at.error(path.span(), "motd_file", e))?;
        config.motd = Some(motd);
    }
    if !cli.oper.is_empty() {
        for v in &cli.oper {
            config
                .operators
                .push(operator(v).map_err(|e| format!("--oper: {e}"))?);
        }
    } else if let Some(list) = &file.oper {
        for v in list.get_ref() {
            let op = operator(v).map_err(|e| at.error(list.span(), "oper", e))?;
            config.operators.push(op);
        }
    }
    if config.max_conns == usize::MAX {
        config.max_conns = conn_budget();
    }
    let tls_listen = if cli.tls_listen.is_empty() {
        file.tls_listen.unwrap_or_default()
    } else {
        cli.tls_listen
    };
    let tls_files = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) if tls_listen.is_empty() => None,
        (None, _) => return Err("TLS needs --tls-cert (a PEM certificate chain)".into()),
        (_, None) => return Err("TLS needs --tls-key (a PEM private key)".into()),
    };
    if tls_files.is_some() && tls_listen.is_empty() {
        return Err("--tls-cert and --tls-key need --tls-listen ADDR".into());
    }
    if let Some(files) = &tls_files {
        // Fails at startup rather than at the first client.
        files.load()?;
    }
    let node = match (cli.node_name, &file.node_name) {
        (Some(name), _) => Some(name),
        (None, Some(name)) => {
            Some(node_name(name.get_ref()).map_err(|e| at.error(name.span(), "node_name", e))?)
        }
        (None, None) => None,
    };
    let cluster = match (cli.cluster.or(file.cluster), node) {
        (Some(url), node) => Some(ClusterFlags {
            url,
            node: node.unwrap_or_else(default_node_name),
        }),
        (None, Some(_)) => return Err("--node-name needs --cluster redis://HOST:PORT".into()),
        (None, None) => None,
    };
    // Values that cannot work together are refused by the flag that set them.
    config.validate().map_err(|e| {
        let flag = ConfigFlags::flag_of(e.field).unwrap_or_else(|| e.field.to_owned());
        format!("--{flag}: {}", e.message)
    })?;
    Ok(Options {
        tls_listen,
        tls_files,
        listen: cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        irc_listen: cli.irc_listen.or(file.irc_listen),
        config,
        quiet: cli.quiet || file.quiet.unwrap_or(false),
        history,
        cluster,
        reuse_port: cli.reuse_port || file.reuse_port.unwrap_or(false),
    })
}

/// The history flags given on the command line, else in `file`.
fn history_flags(cli: &Cli, file: &FileKeys, at: &FileAt) -> Result<HistoryFlags, String> {
    let mut h = HistoryFlags {
        enabled: match (cli.no_history, cli.history, file.history) {
            (true, _, _) => false,
            (false, Some(on), _) => on,
            (false, None, Some(on)) => on,
            (false, None, None) => true,
        },
        ..HistoryFlags::default()
    };
    if let Some(dir) = cli.data_dir.clone().or_else(|| file.data_dir.clone()) {
        h.data_dir = dir;
    }
    h.max_messages = match (cli.history_max_messages, &file.history_max_messages) {
        (Some(n), _) => Some(n),
        (None, Some(n)) => Some(
            max_messages(&n.get_ref().to_string())
                .map_err(|e| at.error(n.span(), "history_max_messages", e))?,
        ),
        (None, None) => None,
    };
    h.max_age = match (cli.history_max_age, &file.history_max_age) {
        (Some(age), _) => Some(age),
        (None, Some(age)) => {
            Some(duration(age.get_ref()).map_err(|e| at.error(age.span(), "history_max_age", e))?)
        }
        (None, None) => None,
    };
    h.on_join = match (cli.history_on_join, &file.history_on_join) {
        (Some(n), _) => n,
        (None, Some(n)) => on_join(&n.get_ref().to_string())
            .map_err(|e| at.error(n.span(), "history_on_join", e))?,
        (None, None) => DEFAULT_ON_JOIN,
    };
    Ok(h)
}

/// The settings in `options` as a config file that reproduces them.
fn dump_config(options: &Options) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Own<'a> {
        listen: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        irc_listen: Option<&'a str>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tls_listen: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_cert: Option<&'a Path>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_key: Option<&'a Path>,
        quiet: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        oper: Vec<String>,
        data_dir: String,
        history: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        history_max_messages: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        history_max_age: Option<String>,
        history_on_join: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        node_name: Option<&'a str>,
        reuse_port: bool,
    }
    let own = Own {
        listen: &options.listen,
        irc_listen: options.irc_listen.as_deref(),
        tls_listen: &options.tls_listen,
        tls_cert: options.tls_files.as_ref().map(|f| f.cert.as_path()),
        tls_key: options.tls_files.as_ref().map(|f| f.key.as_path()),
        quiet: options.quiet,
        oper: (options.config.operators.iter())
            .map(|(name, hash)| format!("{name}:{hash}"))
            .collect(),
        data_dir: options.history.data_dir.display().to_string(),
        history: options.history.enabled,
        history_max_messages: options.history.max_messages,
        history_max_age: (options.history.max_age).map(|d| format!("{}s", d.as_secs())),
        history_on_join: options.history.on_join,
        cluster: options.cluster.as_ref().map(|c| c.url.as_str()),
        node_name: options.cluster.as_ref().map(|c| c.node.as_str()),
        reuse_port: options.reuse_port,
    };
    let mut text = toml::to_string(&own).unwrap_or_default();
    text += &toml::to_string(&ConfigFlags::of(&options.config)).unwrap_or_default();
    text
}

/// An operator entry, `NAME:SHA256`, as the core keeps it: the name and the hash in lower case.
fn operator(v: &str) -> Result<(String, String), String> {
    let (name, hash) = v
        .split_once(':')
        .ok_or_else(|| format!("`{v}` is not NAME:SHA256"))?;
    let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if name.is_empty() || name.contains([' ', '\r', '\n', '\0']) || !hex {
        return Err(format!(
            "`{v}` is not NAME:SHA256 (a name, then 64 hex digits: `sha256sum`)"
        ));
    }
    Ok((name.to_owned(), hash.to_ascii_lowercase()))
}

/// Connections the open-file limit leaves room for: one descriptor each, less headroom for
/// listeners, logs and connections being refused.
fn conn_budget() -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(soft) = limit.current {
            let soft = usize::try_from(soft).unwrap_or(usize::MAX);
            return soft.saturating_sub(soft / 10 + 64).max(1);
        }
    }
    usize::MAX
}

/// The TLS certificate chain and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// A rustls server configuration from the files: TLS 1.2 and 1.3, no client
    /// certificates, ring's cipher suites.
    pub fn load(&self) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("--tls-cert {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--tls-cert {}: no certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("--tls-key {}: {e}", self.key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        Ok(std::sync::Arc::new(config))
    }

    /// Reloads the files into `replace` on every SIGHUP, logging the outcome; a bad file
    /// keeps the certificate in force.
    #[cfg(unix)]
    pub fn reload_on_hangup(
        self,
        replace: impl Fn(std::sync::Arc<rustls::ServerConfig>) + Send + 'static,
    ) {
        use signal_hook::consts::SIGHUP;
        let mut signals = match signal_hook::iterator::Signals::new([SIGHUP]) {
            Ok(signals) => signals,
            Err(e) => {
                log::warn!("cannot catch SIGHUP, the certificate will not reload: {e}");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match self.load() {
                        Ok(config) => {
                            replace(config);
                            log::info!(
                                "SIGHUP: reloaded the TLS certificate from {}",
                                self.cert.display()
                            );
                        }
                        Err(e) => log::error!("SIGHUP: kept the old TLS certificate: {e}"),
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot watch for SIGHUP, the certificate will not reload: {e}");
        }
    }

    /// Without Unix signals the certificate is read once.
    #[cfg(not(unix))]
    pub fn reload_on_hangup(
        self,
        _replace: impl Fn(std::sync::Arc<rustls::ServerConfig>) + Send + 'static,
    ) {
    }
}

/// The message of the day in the file at `path`.
fn read_motd(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.contains('\0') {
        return Err(format!("{} holds a NUL byte", path.display()));
    }
    Ok(text)
}

/// Log lines to standard error, `info` and up (`warn` with `--quiet`) unless RUST_LOG
/// says otherwise.
fn init_log(quiet: bool) {
    let level = if quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}

/// Prints the bound address on standard output, for people and for scripts to parse.
pub fn announce(addr: std::io::Result<std::net::SocketAddr>) {
    match addr {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => log::error!("cannot read the bound address: {e}"),
    }
}

/// Exits with a message when the server cannot start.
pub fn fail(e: &str) -> ! {
    eprintln!("{e}");
    process::exit(1);
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
            log::warn!("cannot catch signals, Ctrl-C will not say bye: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                log::warn!("shutting down (signal again to exit at once)");
                shutdown();
            }
            if signals.next().is_some() {
                process::exit(130);
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot catch signals, Ctrl-C will not say bye: {e}");
    }
}

/// Without Unix signals, Ctrl-C ends the process the default way.
#[cfg(not(unix))]
pub fn on_signal(_shutdown: impl Fn() + Send + 'static) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[String]) -> Result<Options, String> {
        let matches = command("test-server")
            .try_get_matches_from(
                std::iter::once("test-server".to_owned()).chain(args.iter().cloned()),
            )
            .map_err(|e| e.to_string())?;
        options(Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?)
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("switchboard-{}-{name}", process::id()));
        std::fs::write(&path, text).expect("write a temporary file");
        path
    }

    #[test]
    fn every_config_field_has_a_flag() {
        // The field names as `Config`'s Debug prints them: `name: value` after `{` or `, `.
        let debug = format!("{:?}", Config::default());
        let body = &debug[debug.find('{').expect("a struct") + 1..];
        let fields: Vec<&str> = body
            .split(", ")
            .filter_map(|part| part.trim().split_once(": ").map(|(name, _)| name))
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        assert!(fields.len() >= 19, "{fields:?}");
        // Operators have their own repeatable flag (`--oper`); the wall clock is read at start.
        let own = ["operators", "wall_clock"];
        for field in fields.into_iter().filter(|f| !own.contains(f)) {
            assert!(
                ConfigFlags::FIELDS.contains(&field),
                "Config::{field} has no flag: add it to settings! in examples/common/mod.rs"
            );
        }
    }

    /// Every flag set to a value other than its default, as `--flag=value`.
    fn every_flag_changed() -> Vec<String> {
        let defaults = toml::to_string(&ConfigFlags::of(&Config::default())).expect("toml");
        let table: toml::Table = defaults.parse().expect("a table");
        let mut args: Vec<String> = table
            .iter()
            .map(|(key, value)| match value {
                toml::Value::Integer(n) => format!("--{key}={}", n + 7),
                toml::Value::String(s) => format!("--{key}={s}x"),
                other => panic!("{key}: no changed value for {other:?}"),
            })
            .collect();
        // Fields without a default (none) are missing from the defaults' dump.
        args.push("--password=hunter2".into());
        args.push("--motd=hello there".into());
        args.push(format!("--oper=root:{}", "ab".repeat(32)));
        args.push("--max-conns=1000".into());
        args.extend([
            "--listen=127.0.0.1:0".into(),
            "--irc-listen=127.0.0.1:0".into(),
        ]);
        args.push("--quiet".into());
        args.extend([
            "--data-dir=/tmp/switchboard-round-trip".into(),
            "--history=0".into(),
            "--history-max-messages=1000".into(),
            "--history-max-age=7d".into(),
            "--history-on-join=20".into(),
        ]);
        args
    }

    #[test]
    fn config_file_round_trips_every_flag() {
        let args = every_flag_changed();
        let from_flags = parse(&args).expect("every flag parses");
        let debug = format!("{:?}", from_flags.config);
        let default = format!("{:?}", Config::default());
        // Each field changed: the Debug texts differ at every field.
        // (The wall clock is not a setting: it is read at start.)
        let settings = |text: &str| -> Vec<String> {
            (text.split(", "))
                .filter(|f| !f.starts_with("wall_clock"))
                .map(str::to_owned)
                .collect()
        };
        for (a, b) in settings(&debug).iter().zip(settings(&default).iter()) {
            assert_ne!(a, b, "a flag did not change its field");
        }
        let path = temp_file("round-trip.toml", &dump_config(&from_flags));
        let from_file = parse(&[format!("--config={}", path.display())]).expect("the dump parses");
        std::fs::remove_file(&path).ok();
        assert_eq!(format!("{:?}", from_file.config), debug);
        assert_eq!(from_file.listen, from_flags.listen);
        assert_eq!(from_file.irc_listen, from_flags.irc_listen);
        assert!(from_file.quiet);
        assert_ne!(from_flags.history, HistoryFlags::default());
        assert_eq!(from_file.history, from_flags.history);
    }

    #[test]
    fn history_flags_parse_and_refuse_what_keeps_nothing() {
        let h = parse(&[]).expect("no flags").history;
        assert_eq!(h, HistoryFlags::default());
        let h = parse(&["--no-history".into()]).expect("parses").history;
        assert!(!h.enabled);
        let h = parse(&["--history-max-age=12h".into(), "--history-on-join=0".into()])
            .expect("parses")
            .history;
        assert_eq!(h.max_age, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(h.on_join, 0);
        for (bad, says) in [
            ("--history=2", "not 0 or 1"),
            ("--history-max-messages=0", "use --no-history"),
            ("--history-max-age=0d", "use --no-history"),
            ("--history-max-age=3w", "not a duration"),
            ("--history-on-join=201", "at most 200"),
        ] {
            let e = parse(&[bad.into()]).unwrap_err();
            let flag = bad.split('=').next().unwrap_or(bad);
            assert!(e.contains(flag) && e.contains(says), "{bad}: {e}");
        }
        let e = parse(&["--no-history".into(), "--history=1".into()]).unwrap_err();
        assert!(e.contains("--history"), "{e}");
        let path = temp_file("history.toml", "history-max-age = \"5x\"\n");
        let e = parse(&[format!("--config={}", path.display())]).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(e.contains(":1: key `history-max-age`"), "{e}");
    }

    #[test]
    fn cluster_flags_parse_and_refuse_bad_names() {
        let o = parse(&[]).expect("no flags");
        assert_eq!((o.cluster, o.reuse_port), (None, false));
        let o = parse(&[
            "--cluster=redis://127.0.0.1:6379".into(),
            "--node-name=n1".into(),
            "--reuse-port".into(),
        ])
        .expect("parses");
        let c = o.cluster.expect("a cluster");
        assert_eq!(
            (c.url.as_str(), c.node.as_str()),
            ("redis://127.0.0.1:6379", "n1")
        );
        assert!(o.reuse_port);
        // Without --node-name each process on a host gets a name of its own.
        let c = parse(&["--cluster=redis://127.0.0.1:6379".into()])
            .expect("parses")
            .cluster
            .expect("a cluster");
        assert!(
            c.node.ends_with(&format!("-{}", process::id())),
            "{}",
            c.node
        );
        assert!(node_name(&c.node).is_ok(), "{}", c.node);
        for (args, says) in [
            (&["--node-name=a b".to_owned()][..], "not a node name"),
            (&["--node-name=".to_owned()][..], "not a node name"),
            (&["--node-name=n1".to_owned()][..], "needs --cluster"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        let path = temp_file(
            "cluster.toml",
            "cluster = \"redis://h:1\"\nnode-name = \"x/y\"\n",
        );
        let e = parse(&[format!("--config={}", path.display())]).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(e.contains(":2: key `node-name`"), "{e}");
    }

    #[test]
    fn flags_override_the_file() {
        let path = temp_file("override.toml", "msg-rate = 3\nmsg-burst = 4\n");
        let options = parse(&[
            format!("--config={}", path.display()),
            "--msg-rate=5".into(),
        ]);
        std::fs::remove_file(&path).ok();
        let config = options.expect("parses").config;
        assert_eq!((config.msg_rate, config.msg_burst), (5, 4));
    }

    #[test]
    fn bad_values_name_the_flag_or_the_line_and_key() {
        let e = parse(&["--max-frame-len".into(), "0".into()]).unwrap_err();
        assert!(e.contains("--max-frame-len: must be at least 1"), "{e}");
        let e = parse(&["--max-nick-len=0".into()]).unwrap_err();
        assert!(e.contains("--max-nick-len"), "{e}");
        let e = parse(&["--bogus".into()]).unwrap_err();
        assert!(
            e.contains("--bogus") && !e.contains("--max-frame-len"),
            "{e}"
        );
        let path = temp_file("bad.toml", "listen = \"127.0.0.1:0\"\n\nmax-nick-len = 0\n");
        let e = parse(&[format!("--config={}", path.display())]).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(e.ends_with("bad.toml:3: key `max-nick-len`: must be at least 1 (0 would make the server unusable)"), "{e}");
        let path = temp_file("unknown.toml", "max-nik-len = 3\n");
        let e = parse(&[format!("--config={}", path.display())]).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            e.contains("line 1") && e.contains("unknown field `max-nik-len`"),
            "{e}"
        );
    }

    #[test]
    fn password_from_the_environment() {
        // Only this test sets the variable; clap reads it when parsing.
        std::env::set_var("SWITCHBOARD_PASSWORD", "from-env");
        let options = parse(&[]);
        std::env::remove_var("SWITCHBOARD_PASSWORD");
        assert_eq!(
            options.expect("parses").config.password.as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn tls_flags_are_checked_at_startup() {
        let err = parse(&["--tls-listen=127.0.0.1:0".into()]).unwrap_err();
        assert!(err.contains("--tls-cert"), "{err}");
        let err = parse(&["--tls-cert=c.pem".into(), "--tls-key=k.pem".into()]).unwrap_err();
        assert!(err.contains("--tls-listen"), "{err}");
        let missing = std::env::temp_dir().join("switchboard-no-such-cert.pem");
        let err = parse(&[
            "--tls-listen=127.0.0.1:0".into(),
            format!("--tls-cert={}", missing.display()),
            "--tls-key=k.pem".into(),
        ])
        .unwrap_err();
        assert!(err.starts_with("--tls-cert "), "{err}");
    }

    /// A self-signed certificate and key, PEM, written to two files.
    fn cert_files(name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().expect("a key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        TlsFiles {
            cert: temp_file(&format!("{name}-cert.pem"), &cert.pem()),
            key: temp_file(&format!("{name}-key.pem"), &key.serialize_pem()),
        }
    }

    #[cfg(unix)]
    #[test]
    fn sighup_reloads_the_certificate_files() {
        use std::sync::mpsc;
        let files = cert_files("reload");
        let first = files.load().expect("the first certificate loads");
        let (tx, reloaded) = mpsc::channel();
        files.clone().reload_on_hangup(move |config| {
            let _ = tx.send(config);
        });
        // New files in place, as a renewal leaves them; then the signal.
        let renewed = cert_files("renewed");
        std::fs::copy(&renewed.cert, &files.cert).expect("copy");
        std::fs::copy(&renewed.key, &files.key).expect("copy");
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).expect("raise SIGHUP");
        let config = reloaded
            .recv_timeout(Duration::from_secs(10))
            .expect("reloaded after SIGHUP");
        assert!(!std::sync::Arc::ptr_eq(&config, &first));
        // A broken file is refused (logged) and nothing is replaced.
        std::fs::write(&files.key, "not a key").expect("write");
        assert!(files.load().is_err());
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/switchboard.example.toml");
        let options = parse(&[format!("--config={path}")]).expect("the example parses");
        assert_eq!(options.listen, DEFAULT_LISTEN);
    }
}
