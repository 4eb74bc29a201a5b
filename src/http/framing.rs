//! Where HTTP messages end in a stream that passes through a tunnel: a
//! body of a known length, a chunked body, the end of a head. The tunnel
//! copies bytes as they come and only watches them go by with these, so it
//! knows when a backend's answer is complete without holding any of it.

/// What is left of a message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// This many bytes.
    Length(u64),
    /// A chunked body, at this point of its framing.
    Chunked(Chunked),
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// In a chunk's size line: the size so far, how many digits, and
    /// whether an extension (`;...`) began.
    Size {
        size: u64,
        digits: u8,
        extension: bool,
    },
    /// In a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: its line end.
    DataEnd { cr: bool },
    /// After the last chunk: at the start of a trailer line.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// The blank line that ends the body began with `\r`.
    LastLine,
}

/// A chunked stream that breaks the rules: the connection cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Broken;

impl Chunked {
    pub const START: Chunked = Chunked::Size {
        size: 0,
        digits: 0,
        extension: false,
    };
}

impl Body {
    /// Follows the body through `input`: how many bytes of it belong to
    /// the body, and whether the body ends there.
    pub fn advance(&mut self, input: &[u8]) -> Result<(usize, bool), Broken> {
        match self {
            Body::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= n as u64;
                Ok((n, *left == 0))
            }
            Body::Chunked(state) => advance_chunked(state, input),
        }
    }
}

/// The longest chunk size line accepted, in hex digits (2^64 - 1 bytes).
const MAX_SIZE_DIGITS: u8 = 16;

fn advance_chunked(state: &mut Chunked, input: &[u8]) -> Result<(usize, bool), Broken> {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        match state {
            Chunked::Data(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                *left -= n as u64;
                i += n;
                if *left == 0 {
                    *state = Chunked::DataEnd { cr: false };
                }
                continue;
            }
            Chunked::Size {
                size,
                digits,
                extension,
            } => match b {
                b'\n' if *digits == 0 => return Err(Broken),
                b'\n' if *size == 0 => *state = Chunked::TrailerStart,
                b'\n' => *state = Chunked::Data(*size),
                b'\r' => {}
                _ if *extension => {}
                b';' | b' ' | b'\t' if *digits > 0 => *extension = true,
                _ => {
                    let digit = (b as char).to_digit(16).ok_or(Broken)?;
                    if *digits >= MAX_SIZE_DIGITS {
                        return Err(Broken);
                    }
                    *size = (*size << 4) | u64::from(digit);
                    *digits += 1;
                }
            },
            Chunked::DataEnd { cr } => match b {
                b'\r' if !*cr => *cr = true,
                b'\n' => *state = Chunked::START,
                _ => return Err(Broken),
            },
            Chunked::TrailerStart => match b {
                b'\r' => *state = Chunked::LastLine,
                b'\n' => return Ok((i + 1, true)),
                _ => *state = Chunked::Trailer,
            },
            Chunked::Trailer => {
                if b == b'\n' {
                    *state = Chunked::TrailerStart;
                }
            }
            Chunked::LastLine => match b {
                b'\n' => return Ok((i + 1, true)),
                _ => return Err(Broken),
            },
        }
        i += 1;
    }
    Ok((i, false))
}

/// Where the blank line ending a head is in `buf`, searching from `from`
/// (where the previous search stopped, so that a head sent a byte at a
/// time is not searched over and over): the head's length.
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// What the framing headers of a head say of its body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` was sent; `chunked` whether its last coding is
    /// chunked.
    pub transfer_encoding: bool,
    pub chunked: bool,
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

/// Reads the headers that frame a message; `None` for contradictions a
/// tunnel must not pass on (two lengths, a length with a coding, a length
/// that is not a number).
pub(crate) fn headers(headers: &[httparse::Header<'_>]) -> Option<Headers> {
    let mut f = Headers::default();
    let mut upgrade_header = false;
    let mut connection_upgrade = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let digits = h.value.trim_ascii();
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
            if f.content_length.is_some_and(|old| old != n) {
                return None;
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            f.transfer_encoding = true;
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            f.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                f.close |= token.eq_ignore_ascii_case(b"close");
                f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_header = true;
        }
    }
    if f.transfer_encoding && f.content_length.is_some() {
        return None;
    }
    f.upgrade = upgrade_header && connection_upgrade;
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(input: &[u8]) -> Result<(usize, bool), Broken> {
        Body::Chunked(Chunked::START).advance(input)
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let body = b"5\r\nhello\r\n0\r\n\r\nGET /next";
        assert_eq!(chunked(body), Ok((body.len() - 9, true)));
        let trailers = b"3;ext=1\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(chunked(trailers), Ok((trailers.len(), true)));
        let hex = b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        assert_eq!(chunked(hex), Ok((hex.len(), true)));
    }

    #[test]
    fn a_chunked_body_may_arrive_a_byte_at_a_time() {
        let body = b"5\r\nhello\r\n0\r\nA: b\r\n\r\n";
        let mut state = Body::Chunked(Chunked::START);
        for (i, b) in body.iter().enumerate() {
            let (n, done) = state.advance(std::slice::from_ref(b)).unwrap();
            assert_eq!(n, 1);
            assert_eq!(done, i == body.len() - 1, "at byte {i}");
        }
    }

    #[test]
    fn broken_chunked_framing_is_refused() {
        assert_eq!(chunked(b"x\r\n"), Err(Broken));
        assert_eq!(chunked(b"\r\n"), Err(Broken));
        assert_eq!(chunked(b"2\r\nabX"), Err(Broken));
        assert_eq!(chunked(b"11111111111111111\r\n"), Err(Broken));
        assert_eq!(chunked(b"0\r\n\rX"), Err(Broken));
    }

    #[test]
    fn a_length_body_takes_what_it_is_owed() {
        let mut body = Body::Length(5);
        assert_eq!(body.advance(b"hel"), Ok((3, false)));
        assert_eq!(body.advance(b"loGET"), Ok((2, true)));
    }

    #[test]
    fn a_head_ends_at_its_blank_line_wherever_the_search_starts() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(head_end(head, 0), Some(head.len() - 4));
        assert_eq!(head_end(head, 26), Some(head.len() - 4));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nx", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    }

    fn framing(raw: &[(&str, &str)]) -> Option<Headers> {
        let list: Vec<httparse::Header<'_>> = raw
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        headers(&list)
    }

    #[test]
    fn framing_headers_that_could_smuggle_a_request_are_refused() {
        assert_eq!(
            framing(&[("Content-Length", "1"), ("Content-Length", "2")]),
            None
        );
        assert_eq!(
            framing(&[("Transfer-Encoding", "chunked"), ("Content-Length", "2")]),
            None
        );
        assert_eq!(framing(&[("Content-Length", "+2")]), None);
        assert_eq!(framing(&[("Content-Length", "99999999999999999999")]), None);
        let f = framing(&[("Transfer-Encoding", "gzip, chunked")]).unwrap();
        assert!(f.chunked);
        let f = framing(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
        ])
        .unwrap();
        assert!(f.upgrade && f.keep_alive && !f.close);
        assert!(!framing(&[("Upgrade", "websocket")]).unwrap().upgrade);
    }
}
