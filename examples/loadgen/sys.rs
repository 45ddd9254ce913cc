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

/// User plus system CPU time of a process, in nanoseconds.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let hz = rustix::param::clock_ticks_per_second();
    Some((utime + stime) * 1_000_000_000 / hz.max(1))
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
