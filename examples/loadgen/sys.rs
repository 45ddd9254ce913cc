//! What the standard library does not offer: binding a source address before connecting,
//! the open-file limit, and reading another process's CPU time and memory.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

use rustix::net::{AddressFamily, SocketType};

/// Connects to `server` from `source` (port chosen by the kernel), without blocking.
///
/// Spreading connections over several loopback sources keeps ephemeral ports from running
/// out at high connection counts. The returned stream may still be connecting.
pub fn connect_from(source: IpAddr, server: SocketAddr) -> io::Result<TcpStream> {
    let family = match server {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
    if source.is_ipv4() == server.is_ipv4() {
        rustix::net::bind(&fd, &SocketAddr::new(source, 0))?;
    }
    rustix::io::ioctl_fionbio(&fd, true)?;
    match rustix::net::connect(&fd, &server) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from(fd))
}

/// The loopback source for connection `i`: 127.0.0.1 to 127.0.0.4 in turn, when the
/// server is on IPv4 loopback; otherwise the unspecified address of its family.
pub fn source_for(i: usize, server: SocketAddr) -> IpAddr {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 4) as u8))
        }
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// Raises the open-file soft limit to the hard limit; returns (before, after).
pub fn raise_nofile() -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    let before = lim.current.unwrap_or(u64::MAX);
    let mut raised = lim;
    raised.current = lim.maximum;
    if setrlimit(Resource::Nofile, raised).is_ok() {
        (before, lim.maximum.unwrap_or(u64::MAX))
    } else {
        (before, before)
    }
}

/// CPU time of a process (all its threads), in nanoseconds.
///
/// Sums the scheduler's per-thread run times (nanoseconds) when the kernel offers them;
/// otherwise the user and system times of `/proc/PID/stat`, in clock ticks (10 ms).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    if let Some(ns) = schedstat_ns(pid) {
        return Some(ns);
    }
    let (user, system) = user_system_ns(pid)?;
    Some(user + system)
}

/// User and system CPU time of a process from `/proc/PID/stat`, in nanoseconds (counted in
/// clock ticks, 10 ms).
pub fn user_system_ns(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let tick = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
    Some((utime * tick, stime * tick))
}

/// The run time of every live thread of `pid`, from `/proc/PID/task/*/schedstat`. Threads
/// that ended are missing from it; the servers and this generator keep theirs for a run.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time of the server and of this process over one phase of a run.
pub struct CpuMeter {
    server_pid: Option<u32>,
    start: std::time::Instant,
    server: Option<u64>,
    server_split: Option<(u64, u64)>,
    own: Option<u64>,
}

/// What a `CpuMeter` measured: CPU seconds over wall seconds, in percent of one core (a
/// process on several threads can pass 100).
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// The server's CPU time in the phase, if its pid was given.
    pub server_ns: Option<u64>,
    /// The server's CPU use, percent of a core.
    pub server_pct: Option<f64>,
    /// This load generator's CPU use (all its threads), percent of a core.
    pub loadgen_pct: Option<f64>,
    /// The share of the server's CPU time spent in the kernel, percent (from clock ticks).
    pub server_kernel_pct: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            start: std::time::Instant::now(),
            server: server_pid.and_then(cpu_ns),
            server_split: server_pid.and_then(user_system_ns),
            own: cpu_ns(std::process::id()),
        }
    }

    /// What was used since `start`.
    pub fn finish(&self) -> CpuUse {
        let wall = self.start.elapsed().as_nanos().max(1) as f64;
        let server_ns = match (self.server, self.server_pid.and_then(cpu_ns)) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let own_ns = match (self.own, cpu_ns(std::process::id())) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let split = match (self.server_split, self.server_pid.and_then(user_system_ns)) {
            (Some((u0, s0)), Some((u1, s1))) => {
                Some((u1.saturating_sub(u0), s1.saturating_sub(s0)))
            }
            _ => None,
        };
        CpuUse {
            server_kernel_pct: split
                .filter(|(u, s)| u + s > 0)
                .map(|(u, s)| s as f64 * 100.0 / (u + s) as f64),
            server_ns,
            server_pct: server_ns.map(|ns| ns as f64 * 100.0 / wall),
            loadgen_pct: own_ns.map(|ns| ns as f64 * 100.0 / wall),
        }
    }
}

impl CpuUse {
    /// A line for people: both processes' CPU use.
    pub fn describe(&self) -> String {
        let pct = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.0} %"));
        format!(
            "server {} / loadgen {} of a core (server: {} of its time in the kernel)",
            pct(self.server_pct),
            pct(self.loadgen_pct),
            pct(self.server_kernel_pct)
        )
    }

    /// JSON fields (with a leading comma): `"<prefix>server_cpu_pct"`,
    /// `"<prefix>loadgen_cpu_pct"` and `"<prefix>server_kernel_pct"`.
    pub fn json(&self, prefix: &str) -> String {
        let v = |p: Option<f64>| p.map_or("null".to_owned(), |p| format!("{p:.1}"));
        format!(
            ",\"{prefix}server_cpu_pct\":{},\"{prefix}loadgen_cpu_pct\":{},\"{prefix}server_kernel_pct\":{}",
            v(self.server_pct),
            v(self.loadgen_pct),
            v(self.server_kernel_pct)
        )
    }
}
