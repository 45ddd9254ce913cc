//! A terminal chat client for Switchboard servers.
//!
//! ```sh
//! cargo run --example chat-client -- --nick alice [--server 127.0.0.1:7878]
//! ```
//!
//! It speaks through the core [`Client`](switchboard::core::Client) over plain `std::net`, so
//! it builds with any runtime feature. One thread reads the socket and one the keyboard; both
//! feed a channel that the main thread drains, so the session and the screen have one owner.
//! A lost connection is made again with growing pauses, and the rooms are joined again.

mod args;
mod command;
mod editor;
mod format;
mod net;
mod render;
mod session;
mod term;

use std::io::{self, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};

use args::Args;
use editor::{Action, Key};
use render::Line;
use session::{End, Session, Setup};
use term::Ui;

/// How long to wait for the server's goodbye after quitting.
const BYE_WAIT: Duration = Duration::from_secs(2);

/// Silence after connecting that suggests the server is something else (an HTTP server
/// waiting for a request line, say): a Switchboard server answers a hello at once.
const SILENT_WAIT: Duration = Duration::from_secs(5);

/// Something for the main thread to act on.
pub enum Input {
    /// A key, in line-editing mode.
    Key(Key),
    /// The terminal changed size.
    Resize,
    /// A whole line, in plain mode.
    Line(String),
    /// The keyboard is gone (end of input).
    StdinEof,
    /// Bytes from connection number `.0`.
    Net(u64, Vec<u8>),
    /// Connection `.0` ended: `None` for an orderly close, else the error.
    NetClosed(u64, Option<io::Error>),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(shell) = args.completions {
        let mut cmd = Args::command();
        clap_complete::generate(shell, &mut cmd, "chat-client", &mut io::stdout());
        return ExitCode::SUCCESS;
    }
    let (tx, rx) = mpsc::channel();
    let mut ui = Ui::start(args.plain, !args.no_colors, tx.clone());
    let ok = chat(&args, &tx, &rx, &mut ui);
    // Restores the terminal.
    drop(ui);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where lines go and keys are edited: the terminal, or a recorder in tests.
pub trait Screen {
    /// Prints lines above the input line.
    fn print(&mut self, lines: &[Line]);
    /// Changes the prompt.
    fn set_prompt(&mut self, prompt: String);
    /// Applies a key to the input line.
    fn key(&mut self, key: Key) -> Action;
    /// Draws the input line again.
    fn redraw(&mut self);
    /// Completes the word before the cursor from what `candidates` offers.
    fn complete(&mut self, candidates: &mut dyn FnMut(&str, bool) -> Vec<String>);
}

/// Connects, runs sessions and connects again after a lost connection, until the user
/// quits or connecting again cannot help; `true` when the user quit.
fn chat(args: &Args, tx: &Sender<Input>, rx: &Receiver<Input>, ui: &mut impl Screen) -> bool {
    let mut setup = Setup {
        nicks: args.nick.clone(),
        password: args.password.clone(),
        autojoin: args.join.clone(),
        current: None,
    };
    let tls = if args.tls || args.ca.is_some() {
        match net::tls_config(args.ca.as_deref()) {
            Ok(config) => Some(config),
            Err(e) => {
                ui.print(&[Line::error(e)]);
                return false;
            }
        }
    } else {
        None
    };
    let mut backoff = Backoff::default();
    let mut conn = 0;
    loop {
        conn += 1;
        let mut stream = match net::Conn::connect(&args.server, tls.as_ref()) {
            Ok(stream) => stream,
            Err(e) => {
                ui.print(&[Line::error(format!(
                    "cannot connect to {}: {e}",
                    args.server
                ))]);
                // The first connection failing is most likely a wrong address.
                if conn == 1 || args.no_reconnect {
                    return false;
                }
                match wait(ui, rx, backoff.next()) {
                    Some(ok) => return ok,
                    None => continue,
                }
            }
        };
        match stream.try_clone() {
            Ok(reader) => net::spawn_reader(reader, conn, tx.clone()),
            Err(e) => {
                ui.print(&[Line::error(e.to_string())]);
                return false;
            }
        }
        ui.print(&[Line::notice(format!("connected to {}", args.server))]);
        let mut session = Session::start(setup.clone());
        let end = run(&mut session, conn, &args.server, &mut stream, rx, ui);
        let _ = stream.shutdown(Shutdown::Both);
        match end {
            End::Quit => return true,
            End::Fatal => return false,
            End::Lost if args.no_reconnect => return false,
            End::Lost => {
                if session.signed_in() {
                    backoff = Backoff::default();
                }
                setup = session.successor();
                if let Some(ok) = wait(ui, rx, backoff.next()) {
                    return ok;
                }
            }
        }
    }
}

/// Pauses between connection attempts: 1 s, doubling up to 30 s.
#[derive(Debug, Default)]
struct Backoff {
    tries: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let secs = (1u64 << self.tries.min(5)).min(30);
        self.tries += 1;
        Duration::from_secs(secs)
    }
}

/// Waits `pause` before connecting again, keeping the keyboard alive: `Some(true)` when the
/// user quits meanwhile, `None` to connect again.
fn wait(ui: &mut impl Screen, rx: &Receiver<Input>, pause: Duration) -> Option<bool> {
    ui.print(&[Line::notice(format!(
        "connecting again in {} s (/quit to give up)",
        pause.as_secs()
    ))]);
    ui.set_prompt("(not connected)> ".to_owned());
    let until = Instant::now() + pause;
    loop {
        let line = match next_input(rx, Some(until)) {
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => return Some(false),
            Ok(Input::Key(key)) => match ui.key(key) {
                Action::Submit(line) => line,
                Action::Eof | Action::Interrupt => return Some(true),
                Action::Edit => continue,
            },
            Ok(Input::Line(line)) => line,
            Ok(Input::StdinEof) => return Some(true),
            Ok(Input::Resize) => {
                ui.redraw();
                continue;
            }
            // What is left of the lost connection.
            Ok(Input::Net(..) | Input::NetClosed(..)) => continue,
        };
        if matches!(command::parse(&line), Ok(Some(command::Command::Quit(_)))) {
            return Some(true);
        }
        ui.print(&[Line::error("not connected; connecting again soon")]);
    }
}

/// Runs the session on connection `conn` until it ends.
fn run(
    session: &mut Session,
    conn: u64,
    server: &str,
    stream: &mut net::Conn,
    rx: &Receiver<Input>,
    ui: &mut impl Screen,
) -> End {
    let mut bye_by: Option<Instant> = None;
    let mut silent_by = Some(Instant::now() + SILENT_WAIT);
    loop {
        if let Err(e) = flush(session, stream) {
            ui.print(&[Line::error(format!("connection lost: {e}"))]);
            return session.end();
        }
        if session.is_closed() {
            return session.end();
        }
        ui.set_prompt(session.prompt());
        if session.quit_requested() && bye_by.is_none() {
            bye_by = Some(Instant::now() + BYE_WAIT);
        }
        let deadline = [session.poll_timeout(), bye_by, silent_by]
            .into_iter()
            .flatten()
            .min();
        let input = match next_input(rx, deadline) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if bye_by.is_some_and(|by| now >= by) {
                    ui.print(&[Line::notice("no goodbye from the server; closing anyway")]);
                    return End::Quit;
                }
                if silent_by.is_some_and(|by| now >= by) {
                    silent_by = None;
                    if !session.heard() {
                        ui.print(&[Line::error(format!(
                            "no answer from {server} in {} s: is it a Switchboard server?",
                            SILENT_WAIT.as_secs()
                        ))]);
                    }
                }
                ui.print(&session.handle_timeout(now));
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                ui.print(&[Line::error("the connection reader stopped")]);
                return End::Fatal;
            }
        };
        let now = Instant::now();
        let lines = match input {
            Input::Key(Key::Tab) => {
                ui.complete(&mut |word, first| session.complete(word, first));
                Vec::new()
            }
            Input::Key(key) => match ui.key(key) {
                Action::Submit(line) => session.handle_line(&line, now),
                Action::Eof | Action::Interrupt => {
                    session.quit("");
                    Vec::new()
                }
                Action::Edit => Vec::new(),
            },
            Input::Resize => {
                ui.redraw();
                Vec::new()
            }
            Input::Line(line) => session.handle_line(&line, now),
            Input::StdinEof => {
                session.quit("");
                Vec::new()
            }
            Input::Net(from, bytes) if from == conn => session.handle_input(&bytes, now),
            Input::NetClosed(from, error) if from == conn => {
                let line = match (session.quit_requested(), error) {
                    (true, _) => Line::notice("disconnected"),
                    (false, None) => Line::error("the server closed the connection"),
                    (false, Some(e)) => Line::error(format!("connection lost: {e}")),
                };
                ui.print(&[line]);
                return session.end();
            }
            // What is left of an earlier connection.
            Input::Net(..) | Input::NetClosed(..) => Vec::new(),
        };
        ui.print(&lines);
    }
}

/// Waits for the next input, until `deadline` if there is one.
fn next_input(rx: &Receiver<Input>, deadline: Option<Instant>) -> Result<Input, RecvTimeoutError> {
    match deadline {
        Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
    }
}

/// Writes everything the session has queued for the server.
fn flush(session: &mut Session, stream: &mut net::Conn) -> io::Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        stream.write_all(&bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};

    /// A screen that keeps what is printed, for a test to wait on.
    #[derive(Clone, Default)]
    struct Recorder(Arc<(Mutex<Vec<String>>, Condvar)>);

    impl Recorder {
        /// Waits until `count` printed lines satisfy `want`; fails listing them after 10 s.
        fn wait_for(&self, what: &str, count: usize, want: impl Fn(&str) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let (lines, printed) = &*self.0;
            let mut lines = lines.lock().unwrap();
            while lines.iter().filter(|l| want(l)).count() < count {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "no {what} after 10 s; shown: {lines:#?}");
                lines = printed.wait_timeout(lines, left).unwrap().0;
            }
        }
    }

    impl Screen for Recorder {
        fn print(&mut self, shown: &[Line]) {
            let (lines, printed) = &*self.0;
            lines
                .lock()
                .unwrap()
                .extend(shown.iter().map(|l| l.text.clone()));
            printed.notify_all();
        }
        fn set_prompt(&mut self, _: String) {}
        fn key(&mut self, _: Key) -> Action {
            Action::Edit
        }
        fn redraw(&mut self) {}
        fn complete(&mut self, _: &mut dyn FnMut(&str, bool) -> Vec<String>) {}
    }

    /// A smol server on `addr`, on its own thread; returns its shutdown and the thread.
    #[cfg(feature = "smol")]
    fn serve(addr: std::net::SocketAddr) -> (impl FnOnce(), std::thread::JoinHandle<()>) {
        let server = switchboard::smol::Server::bind(addr, switchboard::core::Config::default())
            .expect("bind the server's port");
        let handle = server.handle();
        let thread = std::thread::spawn(move || server.run_blocking());
        (move || handle.shutdown(), thread)
    }

    #[cfg(feature = "smol")]
    #[test]
    fn reconnects_and_rejoins_after_the_server_restarts() {
        // A free port, used again by the restarted server.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let (stop, server) = serve(addr);
        let args = Args::try_parse_from([
            "chat-client",
            "--nick",
            "alice",
            "--server",
            &addr.to_string(),
            "--join",
            "rust",
        ])
        .expect("arguments");
        let (tx, rx) = mpsc::channel();
        let screen = Recorder::default();
        let client = {
            let (tx, mut screen) = (tx.clone(), screen.clone());
            std::thread::spawn(move || chat(&args, &tx, &rx, &mut screen))
        };
        screen.wait_for("join", 1, |l| l == "* #rust (1): @alice");
        stop();
        server.join().expect("server thread");
        screen.wait_for("reconnect notice", 1, |l| {
            l.starts_with("* connecting again in 1 s")
        });
        let (stop, server) = serve(addr);
        screen.wait_for("second sign-in", 2, |l| {
            l.starts_with("* signed in as alice")
        });
        screen.wait_for("rejoin", 2, |l| l == "* #rust (1): @alice");
        tx.send(Input::Line("/quit".into()))
            .expect("the client runs");
        assert!(
            client.join().expect("client thread"),
            "quit counts as success"
        );
        stop();
        server.join().expect("server thread");
    }

    #[test]
    fn no_reconnect_gives_up_when_the_server_goes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("its address").to_string();
        let args =
            Args::try_parse_from(["chat-client", "-n", "bob", "-s", &addr, "--no-reconnect"])
                .expect("arguments");
        let (tx, rx) = mpsc::channel();
        let screen = Recorder::default();
        let client = {
            let (tx, mut screen) = (tx.clone(), screen.clone());
            std::thread::spawn(move || chat(&args, &tx, &rx, &mut screen))
        };
        // Accept and hang up without a word: a lost connection.
        drop(listener.accept().expect("the client connects"));
        assert!(!client.join().expect("client thread"));
        let (lines, _) = &*screen.0;
        let lines = lines.lock().unwrap();
        assert!(
            !lines.iter().any(|l| l.contains("connecting again")),
            "{lines:?}"
        );
        // Closed or reset, depending on whether the hello was read.
        let lost = |l: &String| {
            l == "!! the server closed the connection" || l.starts_with("!! connection lost")
        };
        assert!(lines.iter().any(lost), "{lines:?}");
    }

    #[test]
    fn reconnects_back_off_up_to_half_a_minute() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|_| b.next().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
