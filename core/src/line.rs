//! The IRC line codec: line splitting with the 512-byte limit, parsing and serialising.
//!
//! Only the wire form lives here (named `line` so it is not taken for the IRC front);
//! what commands mean is in `server/irc/`. The supported
//! subset is described in docs/IRC.md.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// Most bytes in one line, counting the CR LF.
pub const MAX_LINE: usize = 512;

/// Most bytes of message tags a client may send before a line (IRCv3 message-tags: 4,094
/// of tag data, the `@` and the space), on top of [`MAX_LINE`].
pub const MAX_CLIENT_TAGS: usize = 4096;

/// Most parameters kept from one line.
const MAX_PARAMS: usize = 15;

/// What a [`LineDecoder`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line without its ending (CR LF or LF).
    Text(Vec<u8>),
    /// A line passed 512 bytes; it is dropped up to its end.
    TooLong,
}

/// Splits an IRC byte stream into lines, holding at most one partial line of at most
/// 512 bytes.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Dropping the rest of a line that was too long.
    skipping: bool,
}

impl LineDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of a partial line held between calls.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes from the front of `input` and returns the next line, if any.
    ///
    /// Call it again until it returns `None`, which means `input` is used up.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Line> {
        while !input.is_empty() {
            let (chunk, ended) = match input.iter().position(|b| *b == b'\n') {
                Some(i) => (&input[..i], true),
                None => (&input[..], false),
            };
            *input = &input[chunk.len() + usize::from(ended)..];
            if self.skipping {
                self.skipping = !ended;
                continue;
            }
            // Up to 511 bytes may wait for their LF: 510 of text and a CR; a line with
            // tags may have up to MAX_CLIENT_TAGS more, for its tags.
            let tagged = self.buf.first().or(chunk.first()) == Some(&b'@');
            let max = MAX_LINE - 1 + if tagged { MAX_CLIENT_TAGS } else { 0 };
            if self.buf.len() + chunk.len() > max {
                self.buf = Vec::new();
                self.skipping = !ended;
                return Some(Line::TooLong);
            }
            self.buf.extend_from_slice(chunk);
            if ended {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let tags = if tagged {
                    line.iter()
                        .position(|&b| b == b' ')
                        .map_or(line.len(), |i| i + 1)
                } else {
                    0
                };
                if tags > MAX_CLIENT_TAGS || line.len() - tags > MAX_LINE - 2 {
                    return Some(Line::TooLong);
                }
                return Some(Line::Text(line));
            }
        }
        None
    }
}

/// One parsed IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The source, without its colon, if the line had one.
    pub source: Option<String>,
    /// The command, upper-cased (or a three-digit numeric).
    pub command: String,
    /// The parameters, the trailing one without its colon.
    pub params: Vec<String>,
}

impl Message {
    /// Parses one line (without its ending). Invalid UTF-8 is replaced lossily; message
    /// tags are skipped. `None` for a line with no command.
    pub fn parse(line: &[u8]) -> Option<Message> {
        let text = String::from_utf8_lossy(line);
        let mut rest = text.trim_start_matches(' ');
        if rest.starts_with('@') {
            rest = rest
                .split_once(' ')
                .map_or("", |(_, r)| r)
                .trim_start_matches(' ');
        }
        let mut source = None;
        if let Some(s) = rest.strip_prefix(':') {
            let (src, r) = s.split_once(' ').unwrap_or((s, ""));
            source = Some(src.to_owned());
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if params.len() == MAX_PARAMS - 1 || rest.starts_with(':') {
                params.push(rest.strip_prefix(':').unwrap_or(rest).to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r;
        }
        Some(Message {
            source,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// A message with no source.
    pub fn new(command: &str, params: &[&str]) -> Message {
        Message {
            source: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Appends the message as one line ending in CR LF, cutting the last parameter (at a
    /// character boundary) if the line would pass 512 bytes.
    pub fn write(&self, buf: &mut BytesMut) {
        let params: Vec<&str> = self.params.iter().map(String::as_str).collect();
        write_line(buf, self.source.as_deref(), &self.command, &params, false);
    }

    /// The message as one line.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.write(&mut buf);
        buf.freeze()
    }
}

/// The value of a line's `label` message tag, if it has one made only of ASCII letters,
/// digits and `-_.+/=` (at most 64 bytes); other labels are ignored, so a label never needs
/// escaping when it is sent back.
pub fn label_tag(line: &[u8]) -> Option<String> {
    let tags = line.strip_prefix(b"@")?;
    let end = tags.iter().position(|&b| b == b' ').unwrap_or(tags.len());
    tags[..end]
        .split(|&b| b == b';')
        .find_map(|tag| tag.strip_prefix(b"label="))
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+/=".contains(b))
        })
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The client-only tags (`+name[=value]`) of a line, joined with `;` as sent (values stay
/// escaped, so they are relayed as they came); tags with a malformed name or a value that
/// is not valid UTF-8 or holds a NUL, CR or LF are dropped. `None` if none is left.
pub fn client_tags(line: &[u8]) -> Option<String> {
    let tags = line.strip_prefix(b"@")?;
    let end = tags.iter().position(|&b| b == b' ').unwrap_or(tags.len());
    let kept: Vec<&str> = tags[..end]
        .split(|&b| b == b';')
        .filter_map(|tag| std::str::from_utf8(tag).ok())
        .filter(|tag| {
            let (name, value) = tag.split_once('=').unwrap_or((tag, ""));
            let Some(name) = name.strip_prefix('+') else {
                return false;
            };
            let (vendor, key) = name.rsplit_once('/').unwrap_or(("", name));
            let key_ok =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let vendor_ok = vendor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            key_ok && vendor_ok && !value.contains(['\0', '\r', '\n'])
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(";"))
}

/// Appends `:source COMMAND params... :last` and CR LF, at most 512 bytes in all.
///
/// Only the last parameter may hold spaces or start with a colon; it is cut to fit. It gets
/// its colon when it needs one, or always with `trailing` (for text, as clients expect).
pub fn write_line(
    buf: &mut BytesMut,
    source: Option<&str>,
    command: &str,
    params: &[&str],
    trailing: bool,
) {
    let start = buf.len();
    if let Some(src) = source {
        buf.put_u8(b':');
        buf.put_slice(clean(src).as_bytes());
        buf.put_u8(b' ');
    }
    buf.put_slice(clean(command).as_bytes());
    if let Some((last, middle)) = params.split_last() {
        for p in middle {
            buf.put_u8(b' ');
            buf.put_slice(clean(p).as_bytes());
        }
        buf.put_u8(b' ');
        let last = clean(last);
        if trailing || last.is_empty() || last.contains(' ') || last.starts_with(':') {
            buf.put_u8(b':');
        }
        let room = (MAX_LINE - 2).saturating_sub(buf.len() - start);
        buf.put_slice(cut(&last, room).as_bytes());
    }
    // A line longer than the limit before its last parameter (a peer's long field echoed
    // in the middle, say) is cut as a whole rather than sent oversized, at a character
    // boundary: everything written is UTF-8, so back off over continuation bytes.
    if buf.len() - start > MAX_LINE - 2 {
        let mut end = start + MAX_LINE - 2;
        while end > start && buf[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        buf.truncate(end);
    }
    buf.put_slice(b"\r\n");
}

/// A field as it may appear in a line: NUL, CR and LF, which would end or corrupt the line
/// (and let a peer's text forge lines in another client's stream), become U+FFFD.
fn clean(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        Cow::Owned(s.replace(['\0', '\r', '\n'], "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits text into pieces that each fit in `max` bytes, at character boundaries.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let part = cut(rest, max);
        parts.push(part);
        rest = &rest[part.len()..];
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_only_tags_are_kept_as_sent_and_bad_ones_dropped() {
        let line = b"@+a=1;b=2;+x.org/c=\\s;label=z;+d;+=e;+bad_key=1;+ok=\xff PRIVMSG a b";
        assert_eq!(client_tags(line).as_deref(), Some("+a=1;+x.org/c=\\s;+d"));
        assert_eq!(client_tags(b"@label=x PRIVMSG a b"), None);
        assert_eq!(client_tags(b"PRIVMSG a b"), None);
    }

    #[test]
    fn labels() {
        assert_eq!(label_tag(b"@label=ab1;x=y PING z"), Some("ab1".into()));
        assert_eq!(label_tag(b"@x=y;label=q.w PING z"), Some("q.w".into()));
        assert_eq!(label_tag(b"@x=y PING :label=no"), None);
        assert_eq!(label_tag(b"PING label=no"), None);
        assert_eq!(label_tag(b"@label=a\\sb PING"), None);
        assert_eq!(label_tag(b"@label= PING"), None);
    }

    fn lines(dec: &mut LineDecoder, mut input: &[u8]) -> Vec<Line> {
        std::iter::from_fn(|| dec.decode(&mut input)).collect()
    }

    #[test]
    fn crlf_and_bare_lf() {
        let mut dec = LineDecoder::new();
        assert_eq!(
            lines(&mut dec, b"NICK a\r\nUSER b 0 * :c\nPIN"),
            vec![
                Line::Text(b"NICK a".to_vec()),
                Line::Text(b"USER b 0 * :c".to_vec())
            ]
        );
        assert_eq!(dec.buffered(), 3);
        assert_eq!(
            lines(&mut dec, b"G x\r\n"),
            vec![Line::Text(b"PING x".to_vec())]
        );
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut dec = LineDecoder::new();
        let mut got = Vec::new();
        for b in b"PRIVMSG #a :hi there\r\n" {
            got.extend(lines(&mut dec, std::slice::from_ref(b)));
        }
        assert_eq!(got, vec![Line::Text(b"PRIVMSG #a :hi there".to_vec())]);
    }

    #[test]
    fn long_line_is_refused_before_buffering_and_skipped() {
        let mut dec = LineDecoder::new();
        let long = vec![b'x'; 2000];
        assert_eq!(lines(&mut dec, &long), vec![Line::TooLong]);
        assert_eq!(dec.buffered(), 0);
        assert_eq!(
            lines(&mut dec, b"yyy\r\nPING a\r\n"),
            vec![Line::Text(b"PING a".to_vec())]
        );
        // 510 bytes of text and CR LF is the longest line accepted.
        let mut max = vec![b'a'; 510];
        max.extend_from_slice(b"\r\n");
        assert!(matches!(&lines(&mut dec, &max)[..], [Line::Text(t)] if t.len() == 510));
        let mut over = vec![b'a'; 511];
        over.extend_from_slice(b"\r\n");
        assert_eq!(lines(&mut dec, &over), vec![Line::TooLong]);
        assert_eq!(
            lines(&mut dec, b"PING b\n"),
            vec![Line::Text(b"PING b".to_vec())]
        );
    }

    #[test]
    fn tags_have_their_own_allowance() {
        let mut dec = LineDecoder::new();
        // 4,094 bytes of tag data, then a 510-byte message: accepted.
        let mut line = b"@".to_vec();
        line.extend(vec![b't'; 4094]);
        line.push(b' ');
        line.extend(vec![b'a'; 510]);
        line.extend_from_slice(b"\r\n");
        assert!(matches!(&lines(&mut dec, &line)[..], [Line::Text(t)] if t.len() == 4096 + 510));
        // One more byte of tags, or of message: refused.
        let mut more_tags = b"@t".to_vec();
        more_tags.extend_from_slice(&line[1..]);
        assert_eq!(lines(&mut dec, &more_tags), vec![Line::TooLong]);
        let mut more_text = line[..line.len() - 2].to_vec();
        more_text.extend_from_slice(b"a\r\n");
        assert_eq!(lines(&mut dec, &more_text), vec![Line::TooLong]);
        // An untagged line has no such allowance.
        let mut plain = vec![b'a'; 600];
        plain.extend_from_slice(b"\r\n");
        assert_eq!(lines(&mut dec, &plain), vec![Line::TooLong]);
        assert_eq!(
            lines(&mut dec, b"PING c\n"),
            vec![Line::Text(b"PING c".to_vec())]
        );
    }

    #[test]
    fn parse_forms() {
        let m = Message::parse(b"@time=x :nick!u@h privmsg #chan :hello  world").unwrap();
        assert_eq!(m.source.as_deref(), Some("nick!u@h"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#chan", "hello  world"]);
        let m = Message::parse(b"JOIN   #a,#b  key").unwrap();
        assert_eq!(m.params, vec!["#a,#b", "key"]);
        let m = Message::parse(b"USER u 0 * :").unwrap();
        assert_eq!(m.params, vec!["u", "0", "*", ""]);
        assert_eq!(Message::parse(b""), None);
        assert_eq!(Message::parse(b"   "), None);
        let m = Message::parse(b"PRIVMSG #a :caf\xff").unwrap();
        assert_eq!(m.params[1], "caf\u{fffd}");
    }

    #[test]
    fn write_forms() {
        let m = Message {
            source: Some("srv".into()),
            command: "001".into(),
            params: vec!["ann".into(), "Welcome here".into()],
        };
        assert_eq!(&m.to_bytes()[..], b":srv 001 ann :Welcome here\r\n");
        assert_eq!(
            &Message::new("PING", &["tok"]).to_bytes()[..],
            b"PING tok\r\n"
        );
        assert_eq!(&Message::new("X", &[""]).to_bytes()[..], b"X :\r\n");
        let long = "é".repeat(400);
        let line = Message::new("PRIVMSG", &["#a", &long]).to_bytes();
        assert!(line.len() <= MAX_LINE);
        assert!(std::str::from_utf8(&line).is_ok());
    }

    #[test]
    fn line_breaks_and_nul_in_fields_are_replaced() {
        // Found by fuzzing: a nick, PING token or USER real name holding a NUL or a bare
        // CR was echoed as is, so one client could forge lines in another's stream.
        let m = Message {
            source: Some("s\r".into()),
            command: "C\0".into(),
            params: vec!["a\0b".into(), "x\ry\nz".into()],
        };
        assert_eq!(
            std::str::from_utf8(&m.to_bytes()).unwrap(),
            ":s\u{fffd} C\u{fffd} a\u{fffd}b x\u{fffd}y\u{fffd}z\r\n"
        );
    }

    #[test]
    fn a_line_cut_as_a_whole_stays_utf8() {
        // Found by fuzzing: a long middle parameter made the line be cut at byte 510, in
        // the middle of a character.
        for pad in 0..3 {
            let middle = format!("{}{}", "x".repeat(pad), "é".repeat(300));
            let line = Message::new("432", &["*", &middle, "Erroneous nickname"]).to_bytes();
            assert!(line.len() <= MAX_LINE && line.ends_with(b"\r\n"));
            assert!(std::str::from_utf8(&line).is_ok(), "{line:?}");
            assert!(line.len() >= MAX_LINE - 1, "cut more than a character");
        }
    }

    #[test]
    fn a_partial_line_is_refused_as_soon_as_it_cannot_fit() {
        // 511 bytes may wait for their LF (510 of text and a CR); the 512th is refused at
        // once, not when the LF comes, so a peer cannot park more than that.
        let mut dec = LineDecoder::new();
        assert_eq!(lines(&mut dec, &[b'a'; 511]), vec![]);
        assert_eq!(dec.buffered(), 511);
        assert_eq!(lines(&mut dec, b"a"), vec![Line::TooLong]);
        assert_eq!(dec.buffered(), 0);
        assert_eq!(
            lines(&mut dec, b"aa\r\nPING d\r\n"),
            vec![Line::Text(b"PING d".to_vec())]
        );
        // A tagged line: as much again as its tags may take.
        let mut tagged = b"@".to_vec();
        tagged.extend(vec![b't'; 511 + MAX_CLIENT_TAGS - 1]);
        assert_eq!(lines(&mut dec, &tagged), vec![]);
        assert_eq!(dec.buffered(), 511 + MAX_CLIENT_TAGS);
        assert_eq!(lines(&mut dec, b"t"), vec![Line::TooLong]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_bare_lf_line_has_the_same_limit_as_a_crlf_one() {
        let mut dec = LineDecoder::new();
        let mut max = vec![b'a'; 510];
        max.push(b'\n');
        assert!(matches!(&lines(&mut dec, &max)[..], [Line::Text(t)] if t.len() == 510));
        let mut over = vec![b'a'; 511];
        over.push(b'\n');
        assert_eq!(lines(&mut dec, &over), vec![Line::TooLong]);
    }

    #[test]
    fn tags_past_their_allowance_are_refused_even_before_a_short_message() {
        let mut dec = LineDecoder::new();
        // `@`, 4,094 bytes of tag data and the space: the most tags a line may carry.
        for (data, ok) in [(4094, true), (4095, false)] {
            let mut line = b"@".to_vec();
            line.extend(vec![b't'; data]);
            line.extend_from_slice(b" PING x\r\n");
            let got = lines(&mut dec, &line);
            assert_eq!(matches!(&got[..], [Line::Text(_)]), ok, "{data}: {got:?}");
        }
        // Tags with no message after them count whole.
        let mut line = b"@".to_vec();
        line.extend(vec![b't'; 4096]);
        line.extend_from_slice(b"\r\n");
        assert_eq!(lines(&mut dec, &line), vec![Line::TooLong]);
    }

    #[test]
    fn the_fifteenth_parameter_takes_the_rest_of_the_line() {
        let m = Message::parse(b"CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 :17 x").unwrap();
        assert_eq!(m.params.len(), MAX_PARAMS);
        assert_eq!(m.params[13], "14");
        assert_eq!(m.params[14], "15 16 :17 x");
    }

    #[test]
    fn client_tags_with_a_bad_vendor_or_a_line_break_in_the_value_are_dropped() {
        let line = b"@+v_x/k=1;+v.x/k=2;+k=a\0b;+j=a\rb;+i=a\nb;+h=c PRIVMSG a b";
        assert_eq!(client_tags(line).as_deref(), Some("+v.x/k=2;+h=c"));
        let line = b"@+v.x/k=1;+v.x/k=2;+h=c PRIVMSG a b";
        assert_eq!(client_tags(line).as_deref(), Some("+v.x/k=1;+v.x/k=2;+h=c"));
    }

    #[test]
    fn long_lines_are_cut_to_exactly_512_bytes_after_others_in_the_buffer() {
        let mut buf = BytesMut::new();
        Message::new("PING", &["a"]).write(&mut buf);
        let first = buf.len();
        let long = "x".repeat(600);
        Message::new("PRIVMSG", &["#a", &long]).write(&mut buf);
        assert_eq!(buf.len() - first, MAX_LINE);
        // Cut as a whole (a long middle parameter), after another line.
        Message::new("432", &["*", &long, "Erroneous nickname"]).write(&mut buf);
        assert_eq!(buf.len() - first, 2 * MAX_LINE);
        let text = std::str::from_utf8(&buf).unwrap();
        let got: Vec<usize> = text.split_inclusive("\r\n").map(str::len).collect();
        assert_eq!(got, [first, MAX_LINE, MAX_LINE]);
    }

    #[test]
    fn text_of_exactly_the_limit_is_one_piece() {
        assert_eq!(split_text("abcd", 4), ["abcd"]);
        assert_eq!(split_text("abcdefgh", 4), ["abcd", "efgh"]);
        assert_eq!(split_text("", 4), [""]);
    }

    #[test]
    fn split_text_respects_boundaries() {
        let parts = split_text("aé€😀b", 3);
        assert!(parts.iter().all(|p| p.len() <= 4));
        assert_eq!(parts.concat(), "aé€😀b");
    }
}
