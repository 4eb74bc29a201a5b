//! Response encoding: the status line, `Content-Type`, `Content-Length`,
//! `Connection` and the handler's extra headers, appended to a reused buffer.

use std::io::{self, Write};

use super::Response;

/// Writes as much of `buf` as the socket takes without waiting.
pub(crate) fn write_some(stream: &mut impl Write, buf: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// The interim answer that tells a client to send the body it held back.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the connection goes on after a response, as far as its headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    /// The connection closes after this response.
    pub close: bool,
    /// An HTTP/1.0 client asked to keep the connection; it must hear so.
    pub keep_alive_10: bool,
    /// Answer to a `HEAD`: headers only, `Content-Length` of the full body.
    pub head_only: bool,
}

/// The status a handler's answer goes out with: a final status as it is;
/// anything else, including a 1xx (which is no answer), as 500.
fn sent_status(status: u16) -> u16 {
    if (200..=999).contains(&status) {
        status
    } else {
        500
    }
}

/// Appends the status line of `resp` and its `Content-Type` to `out`;
/// the status it goes out with.
fn status_line(out: &mut Vec<u8>, resp: &Response) -> u16 {
    let status = sent_status(resp.status);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_number(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    if !resp.content_type.is_empty() {
        push_header(out, "Content-Type", resp.content_type);
    }
    status
}

/// Appends the head of an answer that goes on (a feed) and its first
/// bytes to `out`: no length, and the connection closes after it, which is
/// where the answer ends. Returns the status it went out with.
pub(crate) fn encode_open(out: &mut Vec<u8>, resp: &Response, head_only: bool) -> u16 {
    let status = status_line(out, resp);
    out.extend_from_slice(b"\r\nConnection: close");
    for (name, value) in &resp.headers {
        push_extra_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    status
}

/// Appends the encoded `resp` to `out` and returns the status it went out
/// with. A 204 or 304 goes out without a body or `Content-Length`, whatever
/// the handler put in it, since the client reads no body after them.
pub(crate) fn encode(out: &mut Vec<u8>, resp: &Response, framing: Framing) -> u16 {
    let status = status_line(out, resp);
    let bodiless = matches!(status, 204 | 304);
    if !bodiless {
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_number(out, resp.body.len() as u64);
    }
    if framing.close {
        out.extend_from_slice(b"\r\nConnection: close");
    } else if framing.keep_alive_10 {
        out.extend_from_slice(b"\r\nConnection: keep-alive");
    }
    for (name, value) in &resp.headers {
        push_extra_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !framing.head_only && !bodiless {
        out.extend_from_slice(&resp.body);
    }
    status
}

/// The index into `Stats::by_class` for a status: 0 for 1xx … 4 for 5xx.
pub(crate) fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
}

/// A value with a line break would let a handler forge headers or a second
/// response; such a header is dropped rather than sent.
fn push_extra_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let breaks = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    if breaks(name) || breaks(value) {
        log::warn!("dropping response header {name:?}: it contains a line break");
        return;
    }
    push_header(out, name, value);
}

/// Decimal digits without going through `fmt`, which shows up on the hot
/// path; also how the lease list writes its numbers.
pub(crate) fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        508 => "Loop Detected",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Framing = Framing {
        close: false,
        keep_alive_10: false,
        head_only: false,
    };

    fn text(resp: &Response, framing: Framing) -> String {
        let mut out = Vec::new();
        encode(&mut out, resp, framing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keep_alive_answer_has_no_connection_header() {
        let resp = Response::json(200, b"{}".to_vec());
        assert_eq!(
            text(&resp, KEEP),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn closing_and_http10_answers_say_so() {
        let resp = Response::json(404, Vec::new());
        let close = Framing {
            close: true,
            ..KEEP
        };
        assert!(text(&resp, close).contains("\r\nConnection: close\r\n"));
        let ka10 = Framing {
            keep_alive_10: true,
            ..KEEP
        };
        assert!(text(&resp, ka10).contains("\r\nConnection: keep-alive\r\n"));
    }

    #[test]
    fn head_answer_keeps_the_length_and_drops_the_body() {
        let resp = Response::json(200, b"12345".to_vec());
        let head = Framing {
            head_only: true,
            ..KEEP
        };
        let t = text(&resp, head);
        assert!(t.contains("Content-Length: 5\r\n"));
        assert!(t.ends_with("\r\n\r\n"));
    }

    #[test]
    fn extra_headers_follow_and_line_breaks_are_refused() {
        let resp = Response::json(405, Vec::new())
            .with_header("Allow", "GET")
            .with_header("X-Bad", "a\r\nSet-Cookie: x");
        let t = text(&resp, KEEP);
        assert!(t.contains("\r\nAllow: GET\r\n"));
        assert!(!t.contains("X-Bad"));
        assert!(t.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    }

    #[test]
    fn no_content_and_not_modified_carry_no_body_nor_length() {
        for (status, line) in [(204, "204 No Content"), (304, "304 Not Modified")] {
            let resp = Response::json(status, b"stray".to_vec());
            assert_eq!(
                text(&resp, KEEP),
                format!("HTTP/1.1 {line}\r\nContent-Type: application/json\r\n\r\n")
            );
        }
    }

    #[test]
    fn a_handler_status_that_is_no_final_answer_goes_out_as_500() {
        let mut out = Vec::new();
        for status in [0, 100, 101, 199, 1000] {
            out.clear();
            let sent = encode(&mut out, &Response::json(status, b"{}".to_vec()), KEEP);
            assert_eq!(sent, 500, "{status}");
            assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        }
        for status in [200, 204, 404, 599, 999] {
            let sent = encode(&mut out, &Response::json(status, Vec::new()), KEEP);
            assert_eq!(sent, status);
        }
    }

    #[test]
    fn numbers_and_classes() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 65536, u64::MAX] {
            out.clear();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        assert_eq!(class_index(100), 0);
        assert_eq!(class_index(204), 1);
        assert_eq!(class_index(431), 3);
        assert_eq!(class_index(503), 4);
    }
}
