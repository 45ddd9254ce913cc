//! Command-line flags.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::session::Protocol;

/// Drive a running Switchboard server over loopback and report what it delivered.
///
/// Fan-out (the default mode): each client says hello and joins one room; the first
/// --senders clients send. Idle capacity (--idle N): N connections say hello, join rooms of
/// 100 and sit.
///
/// Prints a table and then one JSON line. Exits 1 if any phase fails or any message is lost
/// or duplicated.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// Server address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub server: SocketAddr,
    /// Another server of the same cluster: clients are spread over --server and each
    /// --also in turn (client i on the (i mod n)-th); repeatable
    #[arg(long, value_name = "ADDR")]
    pub also: Vec<SocketAddr>,
    /// Connect with TLS, trusting this PEM certificate (the server's, self-signed)
    #[arg(long, value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// The protocol the clients speak
    #[arg(long, value_enum, default_value = "native")]
    pub protocol: Protocol,
    /// Connections; each says hello and joins one room
    #[arg(long = "clients", value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    clients_n: u32,
    /// Rooms; client i joins room i mod R
    #[arg(long = "rooms", value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rooms_n: u32,
    /// The first S clients send
    #[arg(long = "senders", value_name = "S", default_value_t = 10)]
    senders_n: u32,
    /// Messages per sender
    #[arg(long, value_name = "M", default_value_t = 1000)]
    pub messages: u32,
    /// Message text size, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Closed loop: each sender keeps at most W messages not yet received by every member
    /// of its room
    #[arg(long, value_name = "W", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,
    /// Paced instead: R messages per second in all, spread over the senders
    #[arg(long, value_name = "MSGS_PER_S", value_parser = positive)]
    pub rate: Option<f64>,
    /// Idle capacity: open N connections that say hello, join rooms of 100 and sit
    #[arg(long, value_name = "N")]
    pub idle: Option<usize>,
    /// How long the idle connections sit before each must answer a ping, in seconds
    #[arg(long = "hold", value_name = "SECS", default_value_t = 5.0, value_parser = positive)]
    hold_secs: f64,
    /// Read the server's CPU time and memory from /proc/PID
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Deadline for each phase, in seconds
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 60.0, value_parser = positive)]
    timeout_secs: f64,
    /// No progress on standard error
    #[arg(long)]
    pub quiet: bool,
    /// Connections set up (connect and hello, or join) at once; more than the server's
    /// listen backlog (often 128) makes connects wait for SYN retransmits
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub concurrency: usize,
    /// Threads that run the clients (default: the number of cores)
    #[arg(long = "threads", value_name = "K", value_parser = clap::value_parser!(u32).range(1..=256))]
    threads_n: Option<u32>,
    #[arg(skip)]
    pub threads: usize,
    /// Filled in by `parse`.
    #[arg(skip)]
    pub clients: usize,
    #[arg(skip)]
    pub rooms: usize,
    #[arg(skip)]
    pub senders: usize,
    #[arg(skip)]
    pub hold: Duration,
    #[arg(skip)]
    pub timeout: Duration,
}

/// A positive number.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err("must be positive".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

impl Args {
    /// The server client `i` connects to.
    pub fn server_for(&self, i: usize) -> SocketAddr {
        match i % (1 + self.also.len()) {
            0 => self.server,
            k => self.also[k - 1],
        }
    }

    /// Parses the process arguments; exits with a message when they are wrong.
    pub fn get() -> Args {
        Args::from_parsed(Args::parse()).unwrap_or_else(|e| {
            use clap::CommandFactory;
            Args::command()
                .error(clap::error::ErrorKind::ArgumentConflict, e)
                .exit()
        })
    }

    /// Checks what clap cannot and fills in the derived fields.
    fn from_parsed(mut a: Args) -> Result<Args, String> {
        if a.senders_n > a.clients_n {
            return Err("--senders cannot exceed --clients".into());
        }
        a.clients = a.clients_n as usize;
        a.rooms = a.rooms_n as usize;
        a.senders = a.senders_n as usize;
        a.hold = Duration::from_secs_f64(a.hold_secs);
        a.timeout = Duration::from_secs_f64(a.timeout_secs);
        a.threads = match a.threads_n {
            Some(k) => k as usize,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let a = Args::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Args::from_parsed(a)
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.clients, a.rooms, a.senders, a.window), (100, 1, 10, 16));
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert!(a.threads >= 1);
        assert_eq!(parse(&["--threads", "3"]).unwrap().threads, 3);
        let a = parse(&[
            "--clients=20",
            "--senders",
            "20",
            "--protocol",
            "irc",
            "--hold",
            "0.5",
        ])
        .unwrap();
        assert_eq!((a.clients, a.senders, a.protocol), (20, 20, Protocol::Irc));
        assert_eq!(a.hold, Duration::from_millis(500));
        let a = parse(&["--server=127.0.0.1:1", "--also=127.0.0.1:2"]).unwrap();
        let ports: Vec<u16> = (0..4).map(|i| a.server_for(i).port()).collect();
        assert_eq!(ports, [1, 2, 1, 2]);
    }

    #[test]
    fn mistakes_name_the_flag() {
        assert!(parse(&["--clients", "0"])
            .unwrap_err()
            .contains("--clients"));
        assert!(parse(&["--rate=-1"]).unwrap_err().contains("--rate"));
        assert!(parse(&["--threads=0"]).unwrap_err().contains("--threads"));
        assert!(parse(&["--protocol", "smtp"])
            .unwrap_err()
            .contains("--protocol"));
        assert_eq!(
            parse(&["--clients", "5", "--senders", "6"]).unwrap_err(),
            "--senders cannot exceed --clients"
        );
    }
}
