//! Request framing. httparse only splits the text of a head; deciding where a
//! request ends, whether the connection stays open and which requests are
//! refused before the handler sees them is done here, on plain bytes.

use super::Request;

/// How many header lines a head may carry; more is answered like an
/// oversized head (431), which is what it usually is.
const MAX_HEADERS: usize = 64;

/// The size limits framing enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_head: usize,
    pub max_body: usize,
}

/// A request refused by the engine itself: the status and the words for the
/// JSON error body. The connection is closed after the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reject {
    pub status: u16,
    pub message: &'static str,
}

impl Reject {
    const fn new(status: u16, message: &'static str) -> Reject {
        Reject { status, message }
    }
}

/// A whole request cut out of the front of a buffer.
#[derive(Debug)]
pub(crate) struct Framed {
    pub request: Request,
    /// Bytes of the buffer the request took, head and body.
    pub len: usize,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
    /// An HTTP/1.0 request that asked to be kept alive: the answer must say
    /// `Connection: keep-alive`, since 1.0 closes by default.
    pub http10: bool,
    /// A `HEAD` request: answer with the headers of the `GET` only.
    pub head_only: bool,
}

/// What the front of a buffer holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    Complete(Framed),
    /// More bytes are needed. `send_continue` is set when the head is complete,
    /// asked for `100-continue`, and no byte of the body has arrived yet.
    Partial {
        send_continue: bool,
    },
    Invalid(Reject),
    /// A complete head that the router claims (its `Host` names a route):
    /// framing and the limits are not the engine's business, the route's.
    Divert {
        head_len: usize,
    },
}

/// What the framing headers of one head say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Framing {
    content_length: Option<u64>,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses the request at the front of `buf`.
pub(crate) fn parse(buf: &[u8], limits: Limits) -> Parsed {
    parse_routed(buf, limits, &|_| false)
}

/// Parses the request at the front of `buf`, unless `claims`, given the
/// value of its `Host` header once its head is complete, says it goes to a
/// route instead.
pub(crate) fn parse_routed(
    buf: &[u8],
    limits: Limits,
    claims: &dyn Fn(Option<&[u8]>) -> bool,
) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head => n,
        Ok(httparse::Status::Complete(_)) => return Parsed::Invalid(HEAD_TOO_LARGE),
        // Without the blank line yet, the head is already too long once the
        // buffer holds the limit: the rest of it makes it longer still. (Waiting
        // instead would leave an unfinished request that fills the worker's
        // buffer when the body limit is 0.)
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Parsed::Invalid(HEAD_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => {
            return Parsed::Partial {
                send_continue: false,
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(HEAD_TOO_LARGE),
        Err(_) => return Parsed::Invalid(MALFORMED),
    };
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value);
    if claims(host) {
        return Parsed::Divert { head_len };
    }
    let framing = match read_framing(req.headers) {
        Ok(f) => f,
        Err(reject) => return Parsed::Invalid(reject),
    };
    let body_len = match body_length(&framing, limits) {
        Ok(n) => n,
        Err(reject) => return Parsed::Invalid(reject),
    };
    let http10 = req.version == Some(0);
    let total = head_len + body_len;
    if buf.len() < total {
        let send_continue = framing.expect_continue && !http10 && buf.len() == head_len;
        return Parsed::Partial { send_continue };
    }
    let keep_alive = if http10 {
        framing.keep_alive && !framing.close
    } else {
        !framing.close
    };
    let method = req.method.unwrap_or("GET");
    let head_only = method == "HEAD";
    // The handler sees a HEAD as the GET it mirrors, so routes need not know
    // about HEAD; the engine drops the body when writing.
    let method = if head_only { "GET" } else { method };
    let request = build_request(
        method,
        req.path.unwrap_or("/"),
        req.headers,
        &buf[head_len..total],
    );
    Parsed::Complete(Framed {
        request,
        len: total,
        keep_alive,
        http10: http10 && keep_alive,
        head_only,
    })
}

pub(crate) const MALFORMED: Reject = Reject::new(400, "malformed request");
const HEAD_TOO_LARGE: Reject = Reject::new(431, "request head too large (limit 16 KiB)");

/// Collects the headers that decide framing, refusing contradictions.
fn read_framing(headers: &[httparse::Header<'_>]) -> Result<Framing, Reject> {
    let mut f = Framing::default();
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if f.content_length.is_some_and(|old| old != n) {
                return Err(Reject::new(400, "conflicting Content-Length headers"));
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            f.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in text(h.value)?.split(',') {
                let token = token.trim();
                f.close |= token.eq_ignore_ascii_case("close");
                f.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            f.expect_continue |= text(h.value)?.trim().eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(f)
}

/// The body length the head announces, within the limits.
fn body_length(f: &Framing, limits: Limits) -> Result<usize, Reject> {
    match (f.transfer_encoding, f.content_length) {
        (true, Some(_)) => Err(Reject::new(
            400,
            "Transfer-Encoding together with Content-Length",
        )),
        (true, None) => Err(Reject::new(
            411,
            "chunked request bodies are not supported; send Content-Length",
        )),
        (false, Some(n)) if n > limits.max_body as u64 => {
            Err(Reject::new(413, "request body too large (limit 64 KiB)"))
        }
        (false, Some(n)) => Ok(n as usize),
        (false, None) => Ok(0),
    }
}

/// Digits only: no sign, no spaces inside, no list. A number too large for
/// u64 is certainly over the body limit, so it saturates into a 413.
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reject::new(400, "Content-Length is not a number"));
    }
    Ok(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn text(value: &[u8]) -> Result<&str, Reject> {
    std::str::from_utf8(value).map_err(|_| Reject::new(400, "header value is not UTF-8"))
}

/// The request a complete head describes, with no body: what the router
/// routes by. The method is as sent (`HEAD` too).
pub(crate) fn head_request(req: &httparse::Request<'_, '_>) -> Request {
    build_request(
        req.method.unwrap_or("GET"),
        req.path.unwrap_or("/"),
        req.headers,
        &[],
    )
}

/// The request in `head`, a complete head as [`Parsed::Divert`] found it.
pub(crate) fn parse_head(head: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => Some(head_request(&req)),
        _ => None,
    }
}

fn build_request(
    method: &str,
    target: &str,
    headers: &[httparse::Header<'_>],
    body: &[u8],
) -> Request {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    // Values that are not UTF-8 are left out: Request promises text, and no
    // header the handler relies on may legitimately carry other bytes.
    let headers = headers
        .iter()
        .filter_map(|h| {
            let value = std::str::from_utf8(h.value).ok()?;
            Some((h.name.to_ascii_lowercase(), value.to_string()))
        })
        .collect();
    Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body: body.to_vec(),
        peer: super::Peer::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 16 * 1024,
        max_body: 64 * 1024,
    };

    fn framed(buf: &[u8]) -> Framed {
        match parse(buf, LIMITS) {
            Parsed::Complete(f) => f,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn status(buf: &[u8]) -> u16 {
        match parse(buf, LIMITS) {
            Parsed::Invalid(r) => r.status,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn partial(buf: &[u8]) -> bool {
        match parse(buf, LIMITS) {
            Parsed::Partial { send_continue } => send_continue,
            other => panic!("expected a partial request, got {other:?}"),
        }
    }

    #[test]
    fn content_length_frames_the_body() {
        let f = framed(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET");
        assert_eq!(f.request.body, b"hello");
        assert_eq!(f.len, 44);
        assert_eq!(f.request.method, "POST");
    }

    #[test]
    fn body_not_yet_arrived_is_partial() {
        assert!(!partial(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel"
        ));
        assert!(!partial(b"GET /a HTTP/1.1\r\nHost: x\r\n"));
    }

    #[test]
    fn content_length_must_be_digits() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 400);
    }

    #[test]
    fn repeated_content_length_must_agree() {
        let same = b"POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(framed(same).request.body, b"ok");
        let differ = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok";
        assert_eq!(status(differ), 400);
    }

    #[test]
    fn oversized_content_length_is_413_from_the_head_alone() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n"),
            413
        );
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 999999999999999999999999999\r\n\r\n";
        assert_eq!(status(huge), 413);
        assert!(!partial(
            b"POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n"
        ));
    }

    #[test]
    fn chunked_is_411_and_with_content_length_400() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(status(both), 400);
    }

    #[test]
    fn head_over_the_limit_is_431() {
        let mut at_limit = b"GET / HTTP/1.1\r\nX: ".to_vec();
        at_limit.resize(LIMITS.max_head - 4, b'a');
        at_limit.extend_from_slice(b"\r\n\r\n");
        assert_eq!(at_limit.len(), LIMITS.max_head);
        assert_eq!(framed(&at_limit).len, LIMITS.max_head);

        let mut over = b"GET / HTTP/1.1\r\nX: ".to_vec();
        over.resize(LIMITS.max_head - 3, b'a');
        over.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&over), 431);
        // Unfinished and already at the limit: no need to wait for the rest.
        assert_eq!(status(&over[..LIMITS.max_head + 1]), 431);
        assert_eq!(status(&over[..LIMITS.max_head]), 431);
        assert!(!partial(&over[..LIMITS.max_head - 1]));
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(status(&head), 431);
    }

    #[test]
    fn malformed_request_line_is_400() {
        assert_eq!(status(b"GET / HTTP/1.1 extra\r\n\r\n"), 400);
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 400);
    }

    #[test]
    fn pipelined_requests_come_out_one_at_a_time() {
        let buf = b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\n\r\n";
        let mut pos = 0;
        let mut paths = Vec::new();
        while pos < buf.len() {
            let f = framed(&buf[pos..]);
            pos += f.len;
            paths.push(f.request.path);
        }
        assert_eq!(paths, ["/1", "/2", "/3"]);
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        let plain = framed(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!plain.keep_alive);
        assert!(!plain.http10);
        let ka = framed(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(ka.keep_alive);
        assert!(ka.http10);
    }

    #[test]
    fn http11_keeps_alive_unless_told_to_close() {
        assert!(framed(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!framed(b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive);
    }

    #[test]
    fn head_reaches_the_handler_as_get() {
        let f = framed(b"HEAD /x HTTP/1.1\r\n\r\n");
        assert!(f.head_only);
        assert_eq!(f.request.method, "GET");
        assert!(!framed(b"GET /x HTTP/1.1\r\n\r\n").head_only);
    }

    #[test]
    fn continue_is_asked_only_before_any_body_byte() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        assert!(partial(head));
        let mut some_body = head.to_vec();
        some_body.extend_from_slice(b"ab");
        assert!(!partial(&some_body));
        let v10 = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        assert!(!partial(v10));
        let too_big = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n";
        assert_eq!(status(too_big), 413);
    }

    #[test]
    fn query_is_split_from_the_path() {
        let f = framed(b"GET /api/v1/tools/port/state?port=3001&x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(f.request.path, "/api/v1/tools/port/state");
        assert_eq!(f.request.query.as_deref(), Some("port=3001&x=1"));
        assert_eq!(framed(b"GET /healthz HTTP/1.1\r\n\r\n").request.query, None);
    }

    #[test]
    fn header_names_are_lowercased_and_non_utf8_values_dropped() {
        let f = framed(b"GET / HTTP/1.1\r\nX-Token: abc\r\nX-Bin: \xff\xfe\r\n\r\n");
        assert_eq!(
            f.request.headers,
            [("x-token".to_string(), "abc".to_string())]
        );
        assert_eq!(f.request.header("X-TOKEN"), Some("abc"));
        assert_eq!(status(b"GET / HTTP/1.1\r\nConnection: \xff\r\n\r\n"), 400);
    }
}
