//! Validation and case folding of nicknames, room names and message text.
//!
//! Every naming rule of the protocol lives here, so both wire protocols share them.

use crate::ErrorCode;

/// Characters besides ASCII letters that may start a nickname (the IRC "special" set).
const NICK_SPECIAL: &[u8] = b"[]\\`^{}|_";

/// Checks a nickname: 1 to `max_len` bytes, a letter or special first, then letters, digits,
/// specials or `-`.
pub fn validate_nick(nick: &str, max_len: usize) -> Result<(), ErrorCode> {
    let b = nick.as_bytes();
    let first_ok = b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || NICK_SPECIAL.contains(c));
    let rest_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || NICK_SPECIAL.contains(c));
    if first_ok && rest_ok && b.len() <= max_len {
        Ok(())
    } else {
        Err(ErrorCode::InvalidNick)
    }
}

/// Checks a room name: 1 to `max_len` bytes of ASCII letters, digits, `-`, `_` or `.`.
pub fn validate_room(room: &str, max_len: usize) -> Result<(), ErrorCode> {
    let b = room.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= max_len
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ErrorCode::InvalidRoom)
    }
}

/// Checks message text: 1 to `max_len` bytes with no NUL, CR or LF.
///
/// Line breaks are refused because a text protocol on the same rooms (IRC) cannot carry them.
pub fn validate_text(text: &str, max_len: usize) -> Result<(), ErrorCode> {
    if text.is_empty() {
        return Err(ErrorCode::InvalidText);
    }
    validate_reason(text, max_len)
}

/// Checks a reason (leave or quit): 0 to `max_len` bytes with no NUL, CR or LF.
pub fn validate_reason(text: &str, max_len: usize) -> Result<(), ErrorCode> {
    if text.len() <= max_len && !text.bytes().any(|c| matches!(c, 0 | b'\r' | b'\n')) {
        Ok(())
    } else {
        Err(ErrorCode::InvalidText)
    }
}

/// The case-folded key of a nickname or room name (ASCII case-insensitive).
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Whether `text` matches the glob `mask` (`*` any run, `?` one character), ASCII
/// case-insensitively: the rule for WHO masks and room bans.
pub fn mask_matches(mask: &str, text: &str) -> bool {
    let (m, t): (Vec<char>, Vec<char>) = (
        mask.chars().map(|c| c.to_ascii_lowercase()).collect(),
        text.chars().map(|c| c.to_ascii_lowercase()).collect(),
    );
    // Iterative matching with one backtrack point: linear memory, no recursion on
    // peer-controlled input.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < m.len() && (m[i] == '?' || m[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < m.len() && m[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    m[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        assert!(validate_nick("alice", 32).is_ok());
        assert!(validate_nick("[bob]_2-x", 32).is_ok());
        assert!(validate_nick("", 32).is_err());
        assert!(validate_nick("2pac", 32).is_err());
        assert!(validate_nick("-x", 32).is_err());
        assert!(validate_nick("has space", 32).is_err());
        assert!(validate_nick("é", 32).is_err());
        assert!(validate_nick("abcd", 3).is_err());
        assert!(validate_nick("abc", 3).is_ok());
    }

    #[test]
    fn rooms() {
        assert!(validate_room("rust-lang.dev_1", 64).is_ok());
        assert!(validate_room("", 64).is_err());
        assert!(validate_room("#rust", 64).is_err());
        assert!(validate_room("a b", 64).is_err());
        assert!(validate_room("abcd", 3).is_err());
    }

    #[test]
    fn texts() {
        assert!(validate_text("hi ünïcode", 64).is_ok());
        assert!(validate_text("", 64).is_err());
        assert!(validate_text("a\nb", 64).is_err());
        assert!(validate_text("a\rb", 64).is_err());
        assert!(validate_text("a\0b", 64).is_err());
        assert!(validate_text("abcd", 3).is_err());
        assert!(validate_reason("", 3).is_ok());
    }

    #[test]
    fn masks() {
        assert!(mask_matches("*", "anything"));
        assert!(mask_matches("*", ""));
        assert!(mask_matches("coolni*", "coolNick"));
        assert!(!mask_matches("coolni*", "otherNick"));
        assert!(mask_matches("a?c", "ABC"));
        assert!(!mask_matches("a?c", "ac"));
        assert!(mask_matches("*!*@*.example", "bob!~b@host.example"));
        assert!(!mask_matches("*!*@*.example", "bob!~b@host.example.org"));
        assert!(mask_matches("b*b*b", "bxbyb"));
        assert!(!mask_matches("b*b*b", "bxby"));
        // A literal `*` in the text is a character like any other, also where a star
        // has to give it back to what follows.
        assert!(mask_matches("*?", "a*"));
        assert!(mask_matches("a*", "a*"));
        assert!(!mask_matches("*b", "a*"));
    }

    #[test]
    fn folding() {
        assert_eq!(fold("AlIcE[]"), "alice[]");
    }
}
