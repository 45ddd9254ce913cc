//! quickcheck properties of the IRC codec: no panics, round trips, chunking.

use quickcheck::{quickcheck, Arbitrary, Gen};
use switchboard_core::line::{Line, LineDecoder, Message, MAX_LINE};

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

/// A command line built from the commands and parameters the server knows, so random
/// sequences reach deep into channel modes, invitations, operators and queries.
#[derive(Debug, Clone)]
struct Command(String);

impl Arbitrary for Command {
    fn arbitrary(g: &mut Gen) -> Self {
        let commands = [
            "PRIVMSG", "NOTICE", "JOIN", "PART", "NICK", "TOPIC", "KICK", "MODE", "INVITE", "WHO",
            "WHOIS", "WHOWAS", "ISON", "USERHOST", "LIST", "NAMES", "AWAY", "OPER", "KILL",
            "WALLOPS", "LUSERS", "MOTD", "TIME", "VERSION", "HELP", "LINKS", "CAP",
        ];
        let params = [
            "#r",
            "#s",
            "#r,#s",
            "0",
            "a",
            "b",
            "c",
            "*",
            "a*",
            "+i",
            "-i",
            "+w",
            "+o",
            "+k",
            "key",
            "+l",
            "3",
            "-l",
            "+b",
            "b!*@*",
            "-b",
            "+e",
            "+I",
            "+m",
            "+v",
            "+n",
            "-n",
            "+s",
            "+t",
            "+imnst",
            "-k",
            "%tcuihsnfdlaor,7",
            "o",
            "REQ",
            "LS",
            "302",
            ":echo-message labeled-response batch",
            "root",
            "pw",
            ":some text",
            ">1",
            "!#r*",
        ];
        let label = if bool::arbitrary(g) { "@label=x " } else { "" };
        let mut line = format!("{label}{}", g.choose(&commands).unwrap_or(&"PING"));
        for _ in 0..usize::arbitrary(g) % 4 {
            line.push(' ');
            line.push_str(g.choose(&params).unwrap_or(&"a"));
        }
        Command(line)
    }
}

quickcheck! {
    fn the_server_survives_any_command_sequence(cmds: Vec<(u8, Command)>) -> bool {
        use switchboard_core::{Config, Server};
        let mut config = Config::default();
        config.msg_rate = 0;
        config.operators = vec![("root".into(), switchboard_core::sha256::hex_digest(b"pw"))];
        let mut server = Server::new(config);
        let now = std::time::Instant::now();
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                let id = server.open(now);
                server.handle_input(id, format!("NICK {n}\r\nUSER {n} 0 * :{n}\r\n").as_bytes(), now);
                id
            })
            .collect();
        for (who, cmd) in &cmds {
            let id = ids[*who as usize % ids.len()];
            server.handle_input(id, format!("{}\r\n", cmd.0).as_bytes(), now);
        }
        // Every line the server wrote is valid UTF-8 and fits IRC's 512 bytes (tags aside).
        while let Some(t) = server.poll_transmit() {
            let Ok(text) = std::str::from_utf8(&t.data) else {
                return false;
            };
            for line in text.split_terminator("\r\n") {
                let body = match line.strip_prefix('@') {
                    Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
                    None => line,
                };
                if body.len() + 2 > MAX_LINE || line.contains(['\r', '\n', '\0']) {
                    return false;
                }
            }
            server.handle_written(t.conn, t.data.len());
        }
        true
    }
}
