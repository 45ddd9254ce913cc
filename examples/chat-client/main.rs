//! A terminal chat client for Switchboard servers.
//!
//! ```sh
//! cargo run --example chat-client -- --nick alice [--server 127.0.0.1:7878]
//! ```
//!
//! It speaks through the core [`Client`](switchboard::core::Client) over plain `std::net`, so
//! it builds with any runtime feature. One thread reads the socket and one the keyboard; both
//! feed a channel that the main thread drains, so the session and the screen have one owner.

mod args;
mod command;
mod editor;
mod net;
mod render;
mod session;
mod term;

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use args::{Parsed, USAGE};
use editor::{Action, Key};
use render::Line;
use session::Session;
use term::Ui;

/// How long to wait for the server's goodbye after quitting.
const BYE_WAIT: Duration = Duration::from_secs(2);

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
    /// Bytes from the server.
    Net(Vec<u8>),
    /// The connection ended: `None` for an orderly close, else the error.
    NetClosed(Option<io::Error>),
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chat-client: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut stream = match net::connect(&args.server) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("chat-client: cannot connect to {}: {e}", args.server);
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = mpsc::channel();
    match stream.try_clone() {
        Ok(reader) => net::spawn_reader(reader, tx.clone()),
        Err(e) => {
            eprintln!("chat-client: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut ui = Ui::start(args.plain, tx);
    ui.print(&[Line::notice(format!("connected to {}", args.server))]);
    let session = Session::new(&args.nick, args.join);
    let ok = run(session, &mut stream, &rx, &mut ui);
    let _ = stream.shutdown(Shutdown::Both);
    // Restores the terminal.
    drop(ui);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the session until it ends; `true` when it ended as the user asked.
fn run(mut session: Session, stream: &mut TcpStream, rx: &Receiver<Input>, ui: &mut Ui) -> bool {
    let mut bye_by: Option<Instant> = None;
    loop {
        if let Err(e) = flush(&mut session, stream) {
            ui.print(&[Line::error(format!("connection lost: {e}"))]);
            return session.quit_requested();
        }
        if session.is_closed() {
            return session.ended_cleanly();
        }
        ui.set_prompt(session.prompt());
        if session.quit_requested() && bye_by.is_none() {
            bye_by = Some(Instant::now() + BYE_WAIT);
        }
        let deadline = [session.poll_timeout(), bye_by].into_iter().flatten().min();
        let input = match next_input(rx, deadline) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if bye_by.is_some_and(|by| now >= by) {
                    ui.print(&[Line::notice("no goodbye from the server; closing anyway")]);
                    return true;
                }
                ui.print(&session.handle_timeout(now));
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                ui.print(&[Line::error("the connection reader stopped")]);
                return false;
            }
        };
        let now = Instant::now();
        let lines = match input {
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
            Input::Net(bytes) => session.handle_input(&bytes, now),
            Input::NetClosed(error) => {
                let line = match (session.quit_requested(), error) {
                    (true, _) => Line::notice("disconnected"),
                    (false, None) => Line::error("the server closed the connection"),
                    (false, Some(e)) => Line::error(format!("connection lost: {e}")),
                };
                ui.print(&[line]);
                return session.quit_requested();
            }
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
fn flush(session: &mut Session, stream: &mut TcpStream) -> io::Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        stream.write_all(&bytes)?;
    }
    Ok(())
}
