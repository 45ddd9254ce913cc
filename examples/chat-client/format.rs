//! IRC text formatting (mIRC control codes): bold, italics, underline, strike-through,
//! reverse and colours, parsed into plain text and styled spans.
//!
//! The plain text is what `--no-colors` shows; a terminal with colour applies the spans.

use crate::render;

/// How a stretch of text looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// `\x02`.
    pub bold: bool,
    /// `\x1d`.
    pub italic: bool,
    /// `\x1f`.
    pub underline: bool,
    /// `\x1e`.
    pub strike: bool,
    /// `\x16`: foreground and background swapped.
    pub reverse: bool,
    /// `\x03NN`: a colour of the 16 mIRC colours.
    pub fg: Option<u8>,
    /// `\x03NN,MM`: the background colour.
    pub bg: Option<u8>,
}

/// A styled stretch of a line's text, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Where it starts.
    pub start: usize,
    /// Where it ends (exclusive).
    pub end: usize,
    /// How it looks.
    pub style: Style,
}

impl Span {
    /// The same span `by` bytes further on.
    pub fn shifted(self, by: usize) -> Span {
        Span {
            start: self.start + by,
            end: self.end + by,
            ..self
        }
    }
}

/// The text without its formatting codes (other control characters made safe, as
/// [`render::clean`] does), and the styled spans of it.
pub fn parse(text: &str) -> (String, Vec<Span>) {
    let mut plain = String::with_capacity(text.len());
    let mut spans = Vec::new();
    let mut style = Style::default();
    let mut start = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let before = style;
        match c {
            '\u{2}' => style.bold = !style.bold,
            '\u{1d}' => style.italic = !style.italic,
            '\u{1f}' => style.underline = !style.underline,
            '\u{1e}' => style.strike = !style.strike,
            '\u{16}' => style.reverse = !style.reverse,
            // Monospace: a terminal is monospaced already.
            '\u{11}' => {}
            '\u{f}' => style = Style::default(),
            '\u{3}' => {
                let fg = number(&mut chars);
                let bg = match fg {
                    Some(_) if chars.peek() == Some(&',') => {
                        // A comma not followed by a digit is text.
                        let mut ahead = chars.clone();
                        ahead.next();
                        if ahead.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                            number(&mut chars)
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                match fg {
                    // A bare \x03 ends the colours.
                    None => (style.fg, style.bg) = (None, None),
                    Some(fg) => {
                        style.fg = colour(fg);
                        if let Some(bg) = bg {
                            style.bg = colour(bg);
                        }
                    }
                }
            }
            // Hex colours (\x04RRGGBB): dropped, with their digits.
            '\u{4}' => {
                for _ in 0..6 {
                    if chars.next_if(char::is_ascii_hexdigit).is_none() {
                        break;
                    }
                }
            }
            c => {
                plain.push_str(&render::clean(c.encode_utf8(&mut [0; 4])));
                continue;
            }
        }
        if style != before {
            if plain.len() > start && before != Style::default() {
                spans.push(Span {
                    start,
                    end: plain.len(),
                    style: before,
                });
            }
            start = plain.len();
        }
    }
    if plain.len() > start && style != Style::default() {
        spans.push(Span {
            start,
            end: plain.len(),
            style,
        });
    }
    (plain, spans)
}

/// One or two digits.
fn number(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<u8> {
    let first = chars.next_if(char::is_ascii_digit)?.to_digit(10)?;
    match chars.next_if(char::is_ascii_digit) {
        Some(second) => Some((first * 10 + second.to_digit(10)?) as u8),
        None => Some(first as u8),
    }
}

/// The 16 standard colours; 99 and the extended ones (16-98) show as the default.
fn colour(n: u8) -> Option<u8> {
    (n < 16).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize, style: Style) -> Span {
        Span { start, end, style }
    }

    #[test]
    fn bold_italics_underline_and_reset() {
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let (plain, spans) = parse("a \u{2}bold\u{2} word");
        assert_eq!(plain, "a bold word");
        assert_eq!(spans, [span(2, 6, bold)]);
        let both = Style {
            italic: true,
            ..bold
        };
        let (plain, spans) = parse("\u{2}b\u{1d}bi\u{f} plain \u{1f}u");
        assert_eq!(plain, "bbi plain u");
        let underline = Style {
            underline: true,
            ..Style::default()
        };
        assert_eq!(
            spans,
            [span(0, 1, bold), span(1, 3, both), span(10, 11, underline)]
        );
    }

    #[test]
    fn colours_with_and_without_background() {
        let (plain, spans) = parse("\u{3}4red\u{3} \u{3}12,01blue on black\u{3}99x");
        assert_eq!(plain, "red blue on blackx");
        let red = Style {
            fg: Some(4),
            ..Style::default()
        };
        let blue = Style {
            fg: Some(12),
            bg: Some(1),
            ..Style::default()
        };
        // 99 is the default foreground; the background stays.
        let black = Style {
            bg: Some(1),
            ..Style::default()
        };
        assert_eq!(
            spans,
            [span(0, 3, red), span(4, 17, blue), span(17, 18, black)]
        );
        // A comma after a colour without a digit is text; three digits are a colour and one.
        let (plain, _) = parse("\u{3}3,x \u{3}123");
        assert_eq!(plain, ",x 3");
    }

    #[test]
    fn other_control_characters_stay_harmless() {
        let (plain, spans) = parse("a\u{1b}[2Jb\u{4}ff00ffc");
        assert_eq!(plain, "a\u{FFFD}[2Jbc");
        assert!(spans.is_empty());
    }
}
