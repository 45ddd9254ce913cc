//! A one-line editor with history and completion, independent of any terminal library.

use unicode_width::UnicodeWidthChar;

/// A key press the editor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter.
    Enter,
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor to the start (Home, Ctrl-A).
    Home,
    /// Cursor to the end (End, Ctrl-E).
    End,
    /// Previous history entry.
    Up,
    /// Next history entry.
    Down,
    /// Delete to the start of the line (Ctrl-U).
    KillStart,
    /// Delete to the end of the line (Ctrl-K).
    KillEnd,
    /// Delete the word before the cursor (Ctrl-W).
    KillWord,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D: end of input on an empty line, else delete.
    Eof,
    /// Tab: complete the word before the cursor (the program supplies the candidates).
    Tab,
}

/// What a key press asks of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing the line.
    Edit,
    /// A finished line.
    Submit(String),
    /// The user wants out (Ctrl-D on an empty line).
    Eof,
    /// The user wants out now (Ctrl-C).
    Interrupt,
}

/// Most lines kept in history.
const HISTORY: usize = 500;

/// The line being typed, its cursor and the lines typed before.
#[derive(Debug, Default)]
pub struct Editor {
    line: Vec<char>,
    /// Position in `line`, in chars.
    cursor: usize,
    history: Vec<String>,
    /// The history entry shown, if browsing.
    browsing: Option<usize>,
    /// The unfinished line put aside while browsing.
    draft: Vec<char>,
}

impl Editor {
    /// An empty editor.
    pub fn new() -> Self {
        Editor::default()
    }

    /// Applies one key.
    pub fn key(&mut self, key: Key) -> Action {
        match key {
            Key::Char(c) => {
                self.line.insert(self.cursor, c);
                self.cursor += 1;
            }
            Key::Enter => return Action::Submit(self.submit()),
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
            }
            Key::Delete if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
            }
            Key::Eof if self.line.is_empty() => return Action::Eof,
            Key::Eof => return self.key(Key::Delete),
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.line.len()),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.line.len(),
            Key::Up => self.browse_back(),
            Key::Down => self.browse_forward(),
            Key::KillStart => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            Key::KillEnd => self.line.truncate(self.cursor),
            Key::KillWord => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !self.line[start - 1].is_whitespace() {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::Interrupt => return Action::Interrupt,
            Key::Backspace | Key::Delete | Key::Tab => {}
        }
        Action::Edit
    }

    /// What to draw for a terminal `width` columns wide after `prompt`: the visible text and
    /// the cursor's column. Long lines scroll so the cursor stays in view.
    ///
    /// Columns are counted as terminals draw them: CJK characters and most emoji take two.
    pub fn view(&self, prompt: &str, width: usize) -> (String, usize) {
        let cols = |chars: &[char]| chars.iter().map(|&c| columns(c)).sum::<usize>();
        let prompt: Vec<char> = prompt.chars().collect();
        // The last column stays empty so the terminal never wraps the input line.
        let usable = width.saturating_sub(1).max(1);
        // A prompt that leaves fewer than 8 columns for text is dropped.
        let prompt = if cols(&prompt) + 8 <= usable {
            &prompt[..]
        } else {
            &[]
        };
        let room = usable - cols(prompt);
        // Scroll just enough that the text before the cursor and the cursor's cell fit.
        let mut start = 0;
        let mut before = cols(&self.line[..self.cursor]);
        while start < self.cursor && before + 1 > room {
            before -= columns(self.line[start]);
            start += 1;
        }
        let mut end = start;
        let mut used = 0;
        while end < self.line.len() && used + columns(self.line[end]) <= room {
            used += columns(self.line[end]);
            end += 1;
        }
        let text: String = prompt.iter().chain(&self.line[start..end]).collect();
        (text, cols(prompt) + before)
    }

    /// The word before the cursor, and whether it starts the line.
    pub fn word_before_cursor(&self) -> (String, bool) {
        let start = self.word_start();
        let word = self.line[start..self.cursor].iter().collect();
        let first = self.line[..start].iter().all(|c| c.is_whitespace());
        (word, first)
    }

    /// Completes the word before the cursor from `candidates` (which all start with it):
    /// one is put in whole, followed by `: ` for a nick starting the line and a space
    /// otherwise; several are completed as far as they agree, and returned to be shown.
    pub fn complete(&mut self, candidates: &[String]) -> Vec<String> {
        let (word, first) = self.word_before_cursor();
        let replacement = match candidates {
            [] => return Vec::new(),
            [one] => {
                let nick = !one.starts_with(['/', '#']);
                let suffix = if first && nick { ": " } else { " " };
                format!("{one}{suffix}")
            }
            [head, rest @ ..] => {
                let mut common: Vec<char> = head.chars().collect();
                for other in rest {
                    let agree = common
                        .iter()
                        .zip(other.chars())
                        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                        .count();
                    common.truncate(agree);
                }
                let common: String = common.into_iter().collect();
                // Never shorter than what was typed.
                if common.chars().count() > word.chars().count() {
                    common
                } else {
                    word
                }
            }
        };
        let (start, end) = (self.word_start(), self.cursor);
        let inserted: Vec<char> = replacement.chars().collect();
        let len = inserted.len();
        self.line.splice(start..end, inserted);
        self.cursor = start + len;
        if candidates.len() > 1 {
            candidates.to_vec()
        } else {
            Vec::new()
        }
    }

    /// Where the word before the cursor starts.
    fn word_start(&self) -> usize {
        let mut start = self.cursor;
        while start > 0 && !self.line[start - 1].is_whitespace() {
            start -= 1;
        }
        start
    }

    fn submit(&mut self) -> String {
        let line: String = std::mem::take(&mut self.line).into_iter().collect();
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    fn browse_back(&mut self) {
        let at = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.line);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.show(at);
    }

    fn browse_forward(&mut self) {
        match self.browsing {
            None => {}
            Some(i) if i + 1 < self.history.len() => self.show(i + 1),
            Some(_) => {
                self.browsing = None;
                self.line = std::mem::take(&mut self.draft);
                self.cursor = self.line.len();
            }
        }
    }

    fn show(&mut self, at: usize) {
        self.browsing = Some(at);
        self.line = self.history[at].chars().collect();
        self.cursor = self.line.len();
    }
}

/// The columns a character takes on a terminal.
fn columns(c: char) -> usize {
    c.width().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(e: &mut Editor, s: &str) {
        for c in s.chars() {
            assert_eq!(e.key(Key::Char(c)), Action::Edit);
        }
    }

    #[test]
    fn editing_keys() {
        let mut e = Editor::new();
        typed(&mut e, "helo world");
        for _ in 0..7 {
            e.key(Key::Left);
        }
        typed(&mut e, "l");
        assert_eq!(e.view("> ", 80), ("> hello world".into(), 6));
        e.key(Key::End);
        e.key(Key::KillWord);
        assert_eq!(e.view("", 80).0, "hello ");
        e.key(Key::Home);
        e.key(Key::Delete);
        e.key(Key::Eof);
        assert_eq!(e.view("", 80), ("llo ".into(), 0));
        e.key(Key::Right);
        e.key(Key::KillEnd);
        e.key(Key::Backspace);
        e.key(Key::Backspace);
        assert_eq!(e.view("", 80), ("".into(), 0));
        assert_eq!(e.key(Key::Eof), Action::Eof);
        typed(&mut e, "ab");
        e.key(Key::Left);
        e.key(Key::KillStart);
        assert_eq!(e.view("", 80), ("b".into(), 0));
        assert_eq!(e.key(Key::Interrupt), Action::Interrupt);
        assert_eq!(e.key(Key::Enter), Action::Submit("b".into()));
        assert_eq!(e.view("", 80), ("".into(), 0));
    }

    #[test]
    fn history_keeps_the_draft() {
        let mut e = Editor::new();
        e.key(Key::Up);
        typed(&mut e, "one");
        e.key(Key::Enter);
        typed(&mut e, "two");
        e.key(Key::Enter);
        e.key(Key::Enter);
        typed(&mut e, "dra");
        e.key(Key::Up);
        assert_eq!(e.view("", 80).0, "two");
        e.key(Key::Up);
        e.key(Key::Up);
        assert_eq!(e.view("", 80).0, "one");
        e.key(Key::Down);
        assert_eq!(e.view("", 80).0, "two");
        e.key(Key::Down);
        assert_eq!(e.view("", 80), ("dra".into(), 3));
        e.key(Key::Up);
        assert_eq!(e.key(Key::Enter), Action::Submit("two".into()));
    }

    #[test]
    fn long_lines_scroll_to_keep_the_cursor_visible() {
        let mut e = Editor::new();
        typed(&mut e, "abcdefghijklmnopqrstuvwxyz");
        // 20 columns: 19 usable, 2 for the prompt, 17 for text.
        let (text, col) = e.view("> ", 20);
        assert_eq!(text, "> klmnopqrstuvwxyz");
        assert_eq!(col, 18);
        e.key(Key::Home);
        assert_eq!(e.view("> ", 20), ("> abcdefghijklmnopq".into(), 2));
        // Too narrow for the prompt: text only.
        assert_eq!(e.view("a long prompt> ", 12), ("abcdefghijk".into(), 0));
        assert_eq!(e.view("> ", 0).1, 0);
    }

    #[test]
    fn wide_characters_place_the_cursor_by_columns() {
        let mut e = Editor::new();
        typed(&mut e, "日本語 ok");
        // Three two-column characters, a space and two letters.
        assert_eq!(e.view("> ", 80), ("> 日本語 ok".into(), 2 + 9));
        e.key(Key::Home);
        e.key(Key::Right);
        assert_eq!(e.view("> ", 80).1, 4);
        typed(&mut e, "🎉");
        assert_eq!(e.view("", 80), ("日🎉本語 ok".into(), 4));
        // 12 columns: 11 usable, 2 for the prompt, 9 for text; the cursor at the end.
        e.key(Key::End);
        let (text, col) = e.view("> ", 12);
        assert_eq!(text, "> 本語 ok");
        assert_eq!(col, 2 + 7);
        e.key(Key::Home);
        assert_eq!(e.view("> ", 12), ("> 日🎉本語 ".into(), 2));
        // A wide character that does not fit whole is left out rather than cut.
        assert_eq!(e.view("> ", 11), ("> 日🎉本語".into(), 2));
    }

    #[test]
    fn tab_completes_what_the_program_offers() {
        let mut e = Editor::new();
        typed(&mut e, "al");
        assert_eq!(e.word_before_cursor(), ("al".into(), true));
        assert!(e.complete(&["alice".into()]).is_empty());
        assert_eq!(e.view("", 80).0, "alice: ");
        typed(&mut e, "see /jo");
        assert_eq!(e.word_before_cursor(), ("/jo".into(), false));
        e.key(Key::Enter);
        typed(&mut e, "hi ca");
        let shown = e.complete(&["carol".into(), "Carla".into()]);
        assert_eq!(shown, ["carol", "Carla"]);
        assert_eq!(e.view("", 80), ("hi car".into(), 6));
        e.complete(&["carol".into()]);
        assert_eq!(e.view("", 80).0, "hi carol ");
        e.key(Key::Enter);
        typed(&mut e, "/jo");
        e.complete(&["/join".into()]);
        assert_eq!(e.view("", 80).0, "/join ");
        assert!(e.complete(&[]).is_empty());
        assert_eq!(e.view("", 80).0, "/join ");
    }
}
