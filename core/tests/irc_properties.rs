//! quickcheck properties of the IRC codec: no panics, round trips, chunking.

use quickcheck::{quickcheck, Arbitrary, Gen};
use switchboard_core::irc::{Line, LineDecoder, Message, MAX_LINE};

/// A message of a form the server emits.
#[derive(Debug, Clone)]
struct Emitted(Message);

/// A word: a middle parameter (no space, no leading colon, not empty).
fn word(g: &mut Gen) -> String {
    let chars: Vec<char> = "abcXYZ019#@!._-[]{}|^`\\".chars().collect();
    let len = usize::arbitrary(g) % 12 + 1;
    (0..len)
        .map(|_| *g.choose(&chars).unwrap_or(&'a'))
        .collect()
}

/// Free text: anything but NUL, CR and LF.
fn text(g: &mut Gen) -> String {
    String::arbitrary(g)
        .chars()
        .filter(|c| !matches!(c, '\0' | '\r' | '\n'))
        .take(100)
        .collect()
}

impl Arbitrary for Emitted {
    fn arbitrary(g: &mut Gen) -> Self {
        let commands = [
            "PRIVMSG", "NOTICE", "JOIN", "PART", "QUIT", "NICK", "TOPIC", "KICK", "MODE", "PING",
            "PONG", "ERROR", "001", "353", "366", "433",
        ];
        let command = (*g.choose(&commands).unwrap_or(&"PING")).to_owned();
        let middles = usize::arbitrary(g) % 4;
        let mut params: Vec<String> = (0..middles).map(|_| word(g)).collect();
        if bool::arbitrary(g) {
            params.push(text(g));
        }
        let source = bool::arbitrary(g).then(|| format!("{}!{}@{}", word(g), word(g), word(g)));
        Emitted(Message {
            source,
            command,
            params,
        })
    }
}

fn lines_of(stream: &[u8], cuts: &[usize]) -> Vec<Line> {
    let mut dec = LineDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = cuts
            .get(i)
            .map_or(stream.len(), |c| c % 9 + 1)
            .min(stream.len() - pos);
        i += 1;
        let mut input = &stream[pos..pos + n];
        pos += n;
        while let Some(line) = dec.decode(&mut input) {
            out.push(line);
        }
        assert!(dec.buffered() < MAX_LINE);
    }
    out
}

quickcheck! {
    fn parsing_arbitrary_bytes_never_panics(bytes: Vec<u8>) -> bool {
        let _ = Message::parse(&bytes);
        true
    }

    fn emitted_messages_round_trip(m: Emitted) -> bool {
        let bytes = m.0.to_bytes();
        bytes.ends_with(b"\r\n")
            && Message::parse(&bytes[..bytes.len() - 2]) == Some(m.0)
    }

    fn a_stream_split_anywhere_parses_the_same(ms: Vec<Emitted>, cuts: Vec<usize>) -> bool {
        let mut stream = Vec::new();
        for m in &ms {
            stream.extend_from_slice(&m.0.to_bytes());
        }
        let whole = lines_of(&stream, &[]);
        let split = lines_of(&stream, &cuts);
        let parsed: Vec<Message> = split
            .iter()
            .filter_map(|l| match l {
                Line::Text(t) => Message::parse(t),
                Line::TooLong => None,
            })
            .collect();
        whole == split && parsed == ms.into_iter().map(|m| m.0).collect::<Vec<_>>()
    }

    fn arbitrary_streams_split_alike(bytes: Vec<u8>, cuts: Vec<usize>) -> bool {
        lines_of(&bytes, &[]) == lines_of(&bytes, &cuts)
    }
}
