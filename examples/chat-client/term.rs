//! The terminal: keyboard in, lines out.
//!
//! On a terminal the input line is edited in raw mode and stays at the bottom: incoming lines
//! are printed above it and it is redrawn, so what is being typed is never split. Without a
//! terminal (a pipe, a file, or `--plain`) lines are read and printed as they are.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::SystemTime;

use crossterm::cursor::MoveToColumn;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::{
    Attribute, Color, Print, ResetColor, SetAttribute, SetBackgroundColor, SetForegroundColor,
};
use crossterm::terminal::{self, Clear, ClearType};
use crossterm::QueueableCommand;

use crate::editor::{Action, Editor, Key};
use crate::format::Style;
use crate::render::{Kind, Line};
use crate::Input;

/// The screen and keyboard.
pub struct Ui {
    /// The line editor, in raw mode only.
    raw: Option<Raw>,
    colour: bool,
}

struct Raw {
    editor: Editor,
    prompt: String,
}

impl Ui {
    /// Sets up the terminal and starts the thread that reads the keyboard into `tx`;
    /// `colours: false` prints no colours or IRC formatting.
    pub fn start(plain: bool, colours: bool, tx: Sender<Input>) -> Ui {
        let tty = io::stdin().is_terminal() && io::stdout().is_terminal();
        let colour = colours && tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        // A terminal that refuses raw mode still works line by line.
        if plain || !tty || terminal::enable_raw_mode().is_err() {
            thread::spawn(move || read_lines(&tx));
            return Ui { raw: None, colour };
        }
        // A panic must not leave the terminal raw: restore it before the message prints.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = terminal::disable_raw_mode();
            previous(info);
        }));
        thread::spawn(move || read_keys(&tx));
        let raw = Raw {
            editor: Editor::new(),
            prompt: String::new(),
        };
        Ui {
            raw: Some(raw),
            colour,
        }
    }

    /// Prints lines above the input line.
    pub fn print(&mut self, lines: &[Line]) {
        if lines.is_empty() {
            return;
        }
        let now = SystemTime::now();
        // Output errors (a closed terminal, a full pipe) are not worth dying for.
        let _ = self.write_lines(lines, now);
    }

    /// Changes the prompt, redrawing the input line if it differs.
    pub fn set_prompt(&mut self, prompt: String) {
        if let Some(raw) = &mut self.raw {
            if raw.prompt != prompt {
                raw.prompt = prompt;
                self.redraw();
            }
        }
    }

    /// Applies a key to the input line.
    pub fn key(&mut self, key: Key) -> Action {
        let Some(raw) = &mut self.raw else {
            return Action::Edit;
        };
        let action = raw.editor.key(key);
        self.redraw();
        action
    }

    /// Tab: completes the word before the cursor from what `candidates` offers for it
    /// (the word, and whether it starts the line); several are listed above the line.
    pub fn complete(&mut self, candidates: &mut dyn FnMut(&str, bool) -> Vec<String>) {
        let Some(raw) = &mut self.raw else {
            return;
        };
        let (word, first) = raw.editor.word_before_cursor();
        let shown = raw.editor.complete(&candidates(&word, first));
        if shown.is_empty() {
            self.redraw();
        } else {
            self.print(&[Line::new(Kind::Help, shown.join("  "))]);
        }
    }

    /// Draws the input line again (after a resize, say).
    pub fn redraw(&mut self) {
        let mut out = io::stdout().lock();
        let _ = self.draw_input(&mut out).and_then(|()| out.flush());
    }

    fn write_lines(&self, lines: &[Line], now: SystemTime) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.raw.is_some() {
            out.queue(MoveToColumn(0))?
                .queue(Clear(ClearType::CurrentLine))?;
        }
        // Raw mode turns off the terminal's own newline translation.
        let newline = if self.raw.is_some() { "\r\n" } else { "\n" };
        for line in lines {
            let stamp = line.stamp(now);
            if self.colour {
                out.queue(SetForegroundColor(Color::DarkGrey))?
                    .queue(Print(stamp))?
                    .queue(ResetColor)?;
                let base = |out: &mut io::StdoutLock| -> io::Result<()> {
                    if let Some((colour, bold)) = colour_of(line.kind) {
                        out.queue(SetForegroundColor(colour))?;
                        if bold {
                            out.queue(SetAttribute(Attribute::Bold))?;
                        }
                    }
                    Ok(())
                };
                base(&mut out)?;
                let mut at = 0;
                for span in &line.spans {
                    let (Some(before), Some(styled)) = (
                        line.text.get(at..span.start),
                        line.text.get(span.start..span.end),
                    ) else {
                        break;
                    };
                    out.queue(Print(before))?;
                    styled_text(&mut out, styled, span.style)?;
                    base(&mut out)?;
                    at = span.end;
                }
                out.queue(Print(line.text.get(at..).unwrap_or_default()))?
                    .queue(SetAttribute(Attribute::Reset))?
                    .queue(ResetColor)?;
            } else {
                out.queue(Print(stamp))?.queue(Print(&line.text))?;
            }
            out.queue(Print(newline))?;
        }
        self.draw_input(&mut out)?;
        out.flush()
    }

    fn draw_input(&self, out: &mut impl Write) -> io::Result<()> {
        let Some(raw) = &self.raw else {
            return Ok(());
        };
        let width = terminal::size().map_or(80, |(cols, _)| cols as usize);
        let (text, col) = raw.editor.view(&raw.prompt, width);
        out.queue(MoveToColumn(0))?
            .queue(Clear(ClearType::CurrentLine))?
            .queue(Print(text))?
            .queue(MoveToColumn(col.min(u16::MAX as usize) as u16))?;
        Ok(())
    }
}

impl crate::Screen for Ui {
    fn print(&mut self, lines: &[Line]) {
        Ui::print(self, lines)
    }

    fn set_prompt(&mut self, prompt: String) {
        Ui::set_prompt(self, prompt)
    }

    fn key(&mut self, key: Key) -> Action {
        Ui::key(self, key)
    }

    fn redraw(&mut self) {
        Ui::redraw(self)
    }

    fn complete(&mut self, candidates: &mut dyn FnMut(&str, bool) -> Vec<String>) {
        Ui::complete(self, candidates)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        if self.raw.is_some() {
            // Leave a clean line for the shell's prompt.
            let mut out = io::stdout().lock();
            let _ = out
                .queue(MoveToColumn(0))
                .and_then(|o| o.queue(Clear(ClearType::CurrentLine)))
                .and_then(|o| o.flush());
            let _ = terminal::disable_raw_mode();
        }
    }
}

/// Prints `text` in an IRC style, then resets every attribute.
fn styled_text(out: &mut impl Write, text: &str, style: Style) -> io::Result<()> {
    let flags = [
        (style.bold, Attribute::Bold),
        (style.italic, Attribute::Italic),
        (style.underline, Attribute::Underlined),
        (style.strike, Attribute::CrossedOut),
        (style.reverse, Attribute::Reverse),
    ];
    for (on, attribute) in flags {
        if on {
            out.queue(SetAttribute(attribute))?;
        }
    }
    if let Some(fg) = style.fg {
        out.queue(SetForegroundColor(irc_colour(fg)))?;
    }
    if let Some(bg) = style.bg {
        out.queue(SetBackgroundColor(irc_colour(bg)))?;
    }
    out.queue(Print(text))?
        .queue(SetAttribute(Attribute::Reset))?
        .queue(ResetColor)?;
    Ok(())
}

/// The terminal colour nearest each of the 16 mIRC colours.
fn irc_colour(n: u8) -> Color {
    const COLOURS: [Color; 16] = [
        Color::White,
        Color::Black,
        Color::DarkBlue,
        Color::DarkGreen,
        Color::Red,
        Color::DarkRed,
        Color::DarkMagenta,
        Color::DarkYellow,
        Color::Yellow,
        Color::Green,
        Color::DarkCyan,
        Color::Cyan,
        Color::Blue,
        Color::Magenta,
        Color::DarkGrey,
        Color::Grey,
    ];
    COLOURS[usize::from(n) % 16]
}

/// The colour (and boldness) of a kind of line; `None` for the terminal's own.
fn colour_of(kind: Kind) -> Option<(Color, bool)> {
    match kind {
        Kind::Message | Kind::Help => None,
        Kind::Mention => Some((Color::Yellow, true)),
        Kind::Direct => Some((Color::Magenta, false)),
        Kind::Notice => Some((Color::DarkCyan, false)),
        Kind::Error => Some((Color::Red, true)),
        Kind::History => Some((Color::DarkGrey, false)),
    }
}

/// Reads keys until the terminal goes away.
fn read_keys(tx: &Sender<Input>) {
    loop {
        let input = match event::read() {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => match map_key(key) {
                Some(key) => Input::Key(key),
                None => continue,
            },
            Ok(Event::Resize(..)) => Input::Resize,
            Ok(_) => continue,
            Err(_) => Input::StdinEof,
        };
        let stop = matches!(input, Input::StdinEof);
        if tx.send(input).is_err() || stop {
            return;
        }
    }
}

/// Reads plain lines until end of input.
fn read_lines(tx: &Sender<Input>) {
    let stdin = io::stdin();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let input = match stdin.lock().read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => Input::StdinEof,
            // Invalid UTF-8 is shown as `�` rather than dropping the line.
            Ok(_) => Input::Line(String::from_utf8_lossy(&buf).into_owned()),
        };
        let stop = matches!(input, Input::StdinEof);
        if tx.send(input).is_err() || stop {
            return;
        }
    }
}

/// The editor key for a key event, with the usual Emacs-style control keys.
fn map_key(key: KeyEvent) -> Option<Key> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            'c' => Key::Interrupt,
            'd' => Key::Eof,
            'a' => Key::Home,
            'e' => Key::End,
            'b' => Key::Left,
            'f' => Key::Right,
            'p' => Key::Up,
            'n' => Key::Down,
            'u' => Key::KillStart,
            'k' => Key::KillEnd,
            'w' => Key::KillWord,
            'h' => Key::Backspace,
            // Ctrl-J is a raw newline, as in a pasted block.
            'j' | 'm' => Key::Enter,
            _ => return None,
        },
        KeyCode::Char(_) if alt => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Tab => Key::Tab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        map_key(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_map_to_editor_keys() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key(KeyCode::Char('x'), none), Some(Key::Char('x')));
        assert_eq!(
            key(KeyCode::Char('X'), KeyModifiers::SHIFT),
            Some(Key::Char('X'))
        );
        assert_eq!(key(KeyCode::Char('c'), ctrl), Some(Key::Interrupt));
        assert_eq!(key(KeyCode::Char('d'), ctrl), Some(Key::Eof));
        assert_eq!(key(KeyCode::Char('w'), ctrl), Some(Key::KillWord));
        assert_eq!(key(KeyCode::Char('j'), ctrl), Some(Key::Enter));
        assert_eq!(key(KeyCode::Char('z'), ctrl), None);
        assert_eq!(key(KeyCode::Char('x'), KeyModifiers::ALT), None);
        assert_eq!(key(KeyCode::Enter, none), Some(Key::Enter));
        assert_eq!(key(KeyCode::Up, none), Some(Key::Up));
        assert_eq!(key(KeyCode::Tab, none), Some(Key::Tab));
        assert_eq!(key(KeyCode::BackTab, none), None);
        assert_eq!(colour_of(Kind::Error), Some((Color::Red, true)));
    }
}
