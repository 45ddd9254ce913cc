//! The connection to the server, over plain `std::net`.

use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use crate::Input;

/// How long to try each address of the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may block before the server counts as gone: a server that stops
/// reading must not freeze the keyboard.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` (`host:port`), trying each address it resolves to.
pub fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last_error = None;
    for target in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Chat lines are small and should leave at once.
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
    }))
}

/// Starts a thread that forwards what the server sends into `tx`, ending with
/// [`Input::NetClosed`]; every input carries `conn`, the connection's number.
pub fn spawn_reader(mut stream: TcpStream, conn: u64, tx: Sender<Input>) {
    thread::spawn(move || {
        let mut buf = vec![0; 16 * 1024];
        loop {
            let input = match stream.read(&mut buf) {
                Ok(0) => Input::NetClosed(conn, None),
                Ok(n) => Input::Net(conn, buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Input::NetClosed(conn, Some(e)),
            };
            let stop = matches!(input, Input::NetClosed(..));
            if tx.send(input).is_err() || stop {
                return;
            }
        }
    });
}
