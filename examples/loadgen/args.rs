//! Command-line flags.

use std::net::SocketAddr;
use std::time::Duration;

use crate::session::Protocol;

pub const USAGE: &str = "\
loadgen: drive a running Switchboard server over loopback and report what it delivered.

USAGE:
  loadgen [--server ADDR] --clients N [--rooms R] [--senders S] [--messages M] [--size BYTES]
          (--window W | --rate MSGS_PER_S) [--protocol native|irc] [--server-pid PID]
  loadgen [--server ADDR] --idle N [--hold SECS] [--protocol native|irc] [--server-pid PID]

FAN-OUT (default mode):
  --clients N       connections; each says hello and joins one room (default 100)
  --rooms R         rooms; client i joins room i mod R (default 1)
  --senders S       the first S clients send (default 10)
  --messages M      messages per sender (default 1000)
  --size BYTES      message text size (default 64)
  --window W        closed loop: each sender keeps at most W messages not yet received by
                    every member of its room (default 16)
  --rate R          paced instead: R messages per second in all, spread over the senders

IDLE CAPACITY:
  --idle N          open N connections that say hello, join rooms of 100 and sit
  --hold SECS       how long they sit before each must answer a ping (default 5)

COMMON:
  --server ADDR     server address (default 127.0.0.1:7878)
  --protocol P      native (default) or irc
  --server-pid PID  read the server's CPU time and memory from /proc/PID
  --timeout SECS    deadline for each phase (default 60)
  --quiet           no progress on stderr
  -h, --help        this text

Prints a table and then one JSON line. Exits 1 if any phase fails or any message is lost
or duplicated.";

/// What to run.
#[derive(Debug, Clone)]
pub struct Args {
    pub server: SocketAddr,
    pub protocol: Protocol,
    pub clients: usize,
    pub rooms: usize,
    pub senders: usize,
    pub messages: u32,
    pub size: usize,
    pub window: u32,
    pub rate: Option<f64>,
    pub idle: Option<usize>,
    pub hold: Duration,
    pub server_pid: Option<u32>,
    pub timeout: Duration,
    pub quiet: bool,
}

impl Args {
    /// Parses the process arguments; `Err` carries the message to print.
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            server: "127.0.0.1:7878".parse().map_err(|e| format!("{e}"))?,
            protocol: Protocol::Native,
            clients: 100,
            rooms: 1,
            senders: 10,
            messages: 1000,
            size: 64,
            window: 16,
            rate: None,
            idle: None,
            hold: Duration::from_secs(5),
            server_pid: None,
            timeout: Duration::from_secs(60),
            quiet: false,
        };
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "-h" | "--help" => return Err(USAGE.to_owned()),
                "--server" => a.server = num(&flag, &value()?)?,
                "--protocol" => {
                    a.protocol = match value()?.as_str() {
                        "native" => Protocol::Native,
                        "irc" => Protocol::Irc,
                        other => return Err(format!("unknown protocol `{other}`")),
                    }
                }
                "--clients" => a.clients = num(&flag, &value()?)?,
                "--rooms" => a.rooms = num(&flag, &value()?)?,
                "--senders" => a.senders = num(&flag, &value()?)?,
                "--messages" => a.messages = num(&flag, &value()?)?,
                "--size" => a.size = num(&flag, &value()?)?,
                "--window" => a.window = num(&flag, &value()?)?,
                "--rate" => a.rate = Some(num(&flag, &value()?)?),
                "--idle" => a.idle = Some(num(&flag, &value()?)?),
                "--hold" => a.hold = Duration::from_secs_f64(num(&flag, &value()?)?),
                "--server-pid" => a.server_pid = Some(num(&flag, &value()?)?),
                "--timeout" => a.timeout = Duration::from_secs_f64(num(&flag, &value()?)?),
                "--quiet" => a.quiet = true,
                other => return Err(format!("unknown flag `{other}`\n\n{USAGE}")),
            }
        }
        if a.clients == 0 || a.rooms == 0 || a.window == 0 {
            return Err("--clients, --rooms and --window must be at least 1".into());
        }
        if a.senders > a.clients {
            return Err("--senders cannot exceed --clients".into());
        }
        if a.rate.is_some_and(|r| r <= 0.0) {
            return Err("--rate must be positive".into());
        }
        Ok(a)
    }
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v}: {e}"))
}
