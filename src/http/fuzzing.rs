//! The seam for coverage-guided fuzzing (`fuzz/`, target `http_framing`):
//! bytes go through a worker's framing and answering exactly as a
//! connection's reads would, without a socket, and the answers are checked.
//! Not part of dynport's interface.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::conn::After;
use super::shared::Shared;
use super::worker::Worker;
use super::write::CONTINUE;
use super::{EngineConfig, Handler, Request, Response};

/// The most reads one input is cut into before the rest comes in one read.
const MAX_CUTS: usize = 16;

/// Feeds `data` to one connection and panics when an answer is malformed.
///
/// The input is `[limits, cuts, cut…, bytes…]`: `limits` below 0x80 keeps
/// the production limits (16 KiB head, 64 KiB body), otherwise it picks
/// small ones so that the limits are reachable with small inputs; `cuts % 16`
/// bytes follow, each the length (1 to 256) of one read, and what remains
/// arrives in a last read. A read never takes more than the worker's buffer
/// holds; the rest waits for the next read, as it would in the socket.
pub fn http_framing(data: &[u8]) {
    let Some((&limits, rest)) = data.split_first() else {
        return;
    };
    let Some((&cuts, rest)) = rest.split_first() else {
        return;
    };
    let cuts = usize::from(cuts) % MAX_CUTS;
    let (lengths, bytes) = rest.split_at(cuts.min(rest.len()));
    let mut reads = Vec::with_capacity(lengths.len() + 1);
    let mut left = bytes;
    for &n in lengths {
        let (read, after) = left.split_at((usize::from(n) + 1).min(left.len()));
        reads.push(read);
        left = after;
    }
    reads.push(left);
    let served = serve(&reads, config(limits));
    if let Err(problem) = check(&served) {
        panic!(
            "{problem}\noutput: {:?}",
            String::from_utf8_lossy(&served.output)
        );
    }
}

fn config(limits: u8) -> EngineConfig {
    let mut config = EngineConfig::default();
    if limits >= 0x80 {
        config.max_head_bytes = 64 + usize::from(limits & 0x7f);
        config.max_body_bytes = usize::from(limits & 0x1f) * 4;
    }
    config
}

/// What one connection made of its reads.
struct Served {
    output: Vec<u8>,
    /// The requests the handler saw, in order.
    requests: Vec<Request>,
    /// The connection closes (or lingers) after its last answer.
    closed: bool,
}

/// Runs the reads through a worker's framing as `Worker::read_turn` and
/// `Worker::answer` do: unused bytes wait for the next read, and the first
/// answer that ends the connection ends the reading.
fn serve(reads: &[&[u8]], config: EngineConfig) -> Served {
    let capacity = config.max_head_bytes + config.max_body_bytes;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::new(Shared::new(config).expect("an epoll instance for the fuzzed worker"));
    let mut worker = Worker::new(shared, recording_handler(Arc::clone(&requests)));
    let mut socket: VecDeque<&[u8]> = reads.iter().copied().filter(|r| !r.is_empty()).collect();
    let (mut pending, mut output) = (Vec::new(), Vec::new());
    let (mut started, mut continue_sent, mut closed) = (None, false, false);
    while let Some(read) = socket.pop_front() {
        let room = capacity - pending.len();
        assert!(room > 0, "an unfinished request fills the input buffer");
        let (now, later) = read.split_at(room.min(read.len()));
        if !later.is_empty() {
            socket.push_front(later);
        }
        let mut input = std::mem::take(&mut pending);
        input.extend_from_slice(now);
        worker.out.clear();
        let (pos, after) = worker.answer_each(&mut started, &mut continue_sent, &input);
        output.extend_from_slice(&worker.out);
        if after != After::KeepAlive {
            closed = true;
            break;
        }
        pending = input.split_off(pos);
    }
    let requests = std::mem::take(&mut *requests.lock().unwrap_or_else(PoisonError::into_inner));
    Served {
        output,
        requests,
        closed,
    }
}

/// A handler whose answer depends on the request in ways the checker can
/// predict: `/status/N` answers N, `/empty` has no body, `X-Echo` comes back.
fn recording_handler(seen: Arc<Mutex<Vec<Request>>>) -> Handler {
    Arc::new(move |req: &Request| {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut resp = Response::json(handler_status(req), expected_body(req))
            .with_header("X-Fuzz-Seq", seen.len().to_string());
        if req.path == "/no-type" {
            resp.content_type = "";
        }
        if let Some(echo) = req.header("x-echo") {
            resp = resp.with_header("X-Echo", echo);
        }
        seen.push(req.clone());
        resp.into()
    })
}

/// Any status but those that cannot carry a body (1xx, 204, 304), which
/// dynport's router never answers.
fn handler_status(req: &Request) -> u16 {
    let status = req
        .path
        .strip_prefix("/status/")
        .and_then(|n| n.parse().ok());
    status
        .filter(|s| !(100..200).contains(s) && *s != 204 && *s != 304)
        .unwrap_or(200)
}

/// Never starts with `HTTP`, so a body left out (for `HEAD`) is told apart
/// from one sent.
fn expected_body(req: &Request) -> Vec<u8> {
    if req.path == "/empty" {
        return Vec::new();
    }
    format!("fuzz:{} {} {}", req.method, req.path, req.body.len()).into_bytes()
}

/// One answer's head, as a client reads it.
struct Head {
    status: u16,
    content_length: usize,
    close: bool,
    seq: Option<usize>,
    len: usize,
}

/// Checks that the output is a sequence of well-formed answers: one per
/// request the handler saw, in order, each with a `Content-Length` that
/// matches its body, at most one `100 Continue` before each, the engine's
/// own refusals closing, and nothing after an answer that closes.
fn check(served: &Served) -> Result<(), String> {
    let out = &served.output;
    let (mut pos, mut answered, mut continued) = (0, 0, false);
    let mut last_closed = false;
    while pos < out.len() {
        if last_closed {
            return Err(format!("bytes after an answer that closes, at {pos}"));
        }
        if out[pos..].starts_with(CONTINUE) {
            if continued {
                return Err(format!("a second 100 Continue at {pos}"));
            }
            (continued, pos) = (true, pos + CONTINUE.len());
            continue;
        }
        let head = read_head(&out[pos..])?;
        pos += head.len;
        let body_len = match head.seq {
            Some(seq) if seq != answered => {
                return Err(format!("answer {seq} where {answered} was due"));
            }
            Some(seq) => {
                let req = served.requests.get(seq).ok_or("an answer to no request")?;
                answered += 1;
                handler_body(req, &head, &out[pos..])?
            }
            None if continued => return Err("a refusal after 100 Continue".to_string()),
            None => refusal_body(&head, &out[pos..])?,
        };
        pos += body_len;
        (continued, last_closed) = (false, head.close);
    }
    if answered != served.requests.len() {
        return Err(format!(
            "{} requests, {answered} answers",
            served.requests.len()
        ));
    }
    if served.closed != last_closed {
        return Err(format!(
            "connection closed: {}, last answer says close: {last_closed}",
            served.closed
        ));
    }
    Ok(())
}

fn read_head(out: &[u8]) -> Result<Head, String> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(out) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("an answer's head is cut off".to_string()),
        Err(e) => return Err(format!("an answer's head does not parse: {e}")),
    };
    if resp.version != Some(1) || resp.reason.is_none_or(str::is_empty) {
        return Err("the status line is not HTTP/1.1 with a reason".to_string());
    }
    let value = |name: &str| {
        let mut found = resp.headers.iter().filter(|h| h.name == name);
        let first = found.next().map(|h| String::from_utf8_lossy(h.value));
        match found.next() {
            Some(_) => Err(format!("{name} twice")),
            None => Ok(first),
        }
    };
    let content_length = value("Content-Length")?
        .ok_or("no Content-Length")?
        .parse()
        .map_err(|e| format!("Content-Length: {e}"))?;
    let close = match value("Connection")?.as_deref() {
        None | Some("keep-alive") => false,
        Some("close") => true,
        Some(other) => return Err(format!("Connection: {other}")),
    };
    let seq = match value("X-Fuzz-Seq")? {
        Some(n) => Some(n.parse().map_err(|_| "X-Fuzz-Seq is not a number")?),
        None => None,
    };
    Ok(Head {
        status: resp.code.ok_or("no status")?,
        content_length,
        close,
        seq,
        len,
    })
}

/// The length of the body that follows a handler's answer: its whole body,
/// or none at all for a `HEAD` (which the handler saw as a `GET`).
fn handler_body(req: &Request, head: &Head, rest: &[u8]) -> Result<usize, String> {
    let body = expected_body(req);
    // The engine answers a status it cannot send as 500.
    let status = Some(handler_status(req))
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(500);
    if head.status != status || head.content_length != body.len() {
        return Err(format!(
            "{} {}: answered {} with Content-Length {}, expected {status} and {}",
            req.method,
            req.path,
            head.status,
            head.content_length,
            body.len()
        ));
    }
    if rest.starts_with(&body) {
        return Ok(body.len());
    }
    let head_only = req.method == "GET" && (rest.is_empty() || rest.starts_with(b"HTTP/1.1 "));
    if head_only {
        Ok(0)
    } else {
        Err(format!("{} {}: body does not match", req.method, req.path))
    }
}

/// The length of the body of one of the engine's own refusals.
fn refusal_body(head: &Head, rest: &[u8]) -> Result<usize, String> {
    if ![400, 411, 413, 431].contains(&head.status) || !head.close {
        return Err(format!(
            "refusal {} (close: {}) is not one framing makes",
            head.status, head.close
        ));
    }
    let body = rest
        .get(..head.content_length)
        .ok_or("a refusal's body is cut off")?;
    // The engine's own words (plain text, one line) unless a server words
    // them: see `EngineConfig::error_response`.
    let text = std::str::from_utf8(body).map_err(|e| format!("a refusal's body: {e}"))?;
    if text.len() < 2 || !text.ends_with('\n') || text[..text.len() - 1].contains('\n') {
        return Err(format!("a refusal's body: {text:?}"));
    }
    Ok(body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(reads: &[&[u8]], limits: u8) -> String {
        let served = serve(reads, config(limits));
        check(&served).unwrap();
        String::from_utf8(served.output).unwrap()
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_checked() {
        let input = b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /empty HTTP/1.1\r\nConnection: close\r\n\r\n";
        let out = output(&[&input[..10], &input[10..]], 0);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nX-Fuzz-Seq: 0\r\n\r\nfuzz:GET /1 0\
             HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nX-Fuzz-Seq: 1\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\nX-Fuzz-Seq: 2\r\n\r\n"
        );
    }

    #[test]
    fn checker_refuses_a_content_length_that_is_not_the_body_length() {
        let mut served = serve(&[b"GET /1 HTTP/1.1\r\n\r\n"], config(0));
        let text = String::from_utf8(served.output).unwrap();
        served.output = text.replace("Length: 13", "Length: 14").into_bytes();
        assert_eq!(
            check(&served).unwrap_err(),
            "GET /1: answered 200 with Content-Length 14, expected 200 and 13"
        );
    }

    /// Found by `http_framing`: with a body limit of 0, an unfinished head of
    /// exactly the head limit was kept waiting and filled the worker's buffer
    /// (the worker then closed without an answer). It is refused with 431.
    #[test]
    fn fuzz_http_framing_unfinished_head_at_the_limit_fills_the_buffer() {
        let mut input = vec![0x80, 0];
        input.extend_from_slice(b"GET / HTTP/1.1\r\nX-Long: ");
        input.resize(2 + 100, b'a');
        http_framing(&input);
        let out = output(&[&input[2..]], 0x80);
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(out.contains("\r\nConnection: close\r\n"));
    }
}
