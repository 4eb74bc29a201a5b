//! A test's own reader of the event stream: one connection to `GET
//! /api/v1/events`, its head checked, its events parsed as they come.

use crate::fixture::{Server, connect};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long an event may take to come: generous, for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// One event as the stream sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Option<u64>,
    pub kind: String,
    pub data: Value,
}

/// An open event stream.
pub struct Stream {
    conn: TcpStream,
    /// What came after the head and is not yet taken as events.
    buf: Vec<u8>,
    /// The answer's head, header names lower-cased.
    pub head: String,
    /// The blocks taken so far that were not events (`retry: …`, comments).
    pub other: Vec<String>,
    closed: bool,
}

/// The status, the head and the connection of `GET path` with `headers`.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, Stream) {
    let mut conn = connect(port).expect("the server accepts");
    let mut raw =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    conn.write_all(raw.as_bytes())
        .expect("the request goes out");
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut stream = Stream {
        conn,
        buf: Vec::new(),
        head: String::new(),
        other: Vec::new(),
        closed: false,
    };
    let deadline = Instant::now() + PATIENCE;
    let end = loop {
        if let Some(end) = stream.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        assert!(!stream.closed, "closed before a head: {:?}", stream.text());
        assert!(Instant::now() < deadline, "no head within {PATIENCE:?}");
        stream.fill();
    };
    let head = String::from_utf8_lossy(&stream.buf[..end]).into_owned();
    stream.buf.drain(..end + 4);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    stream.head = lower_names(&head);
    (status.expect("a status line"), head, stream)
}

/// A stream of `server`'s events after `last` (as `Last-Event-ID`), its
/// answer checked to be the agreed one.
pub fn open(server: &Server, last: Option<u64>) -> Stream {
    let last = last.map(|id| id.to_string());
    let headers: Vec<(&str, &str)> = last.iter().map(|id| ("Last-Event-ID", &**id)).collect();
    let (status, head, stream) = get(server.port, "/api/v1/events", &headers);
    assert_eq!(status, 200, "{head}\n{}", stream.text());
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-store",
        "connection: close",
    ] {
        assert!(
            stream.head.contains(&format!("\r\n{line}")),
            "no {line}: {head}"
        );
    }
    assert!(!stream.head.contains("content-length"), "{head}");
    stream
}

fn lower_names(head: &str) -> String {
    let lines = head.split("\r\n").map(|line| match line.split_once(':') {
        Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
        None => line.to_string(),
    });
    lines.collect::<Vec<_>>().join("\r\n")
}

impl Stream {
    /// What is buffered, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Reads what the server sent, waiting at most 200 ms.
    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        match self.conn.read(&mut chunk) {
            Ok(0) => self.closed = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.closed = true,
            Err(e) => panic!("reading the stream: {e}"),
        }
    }

    /// The body of an answer that is no stream, framed by its
    /// `Content-Length`.
    pub fn body(&mut self) -> String {
        let length = self
            .head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"));
        let length: usize = length
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length: {}", self.head));
        let deadline = Instant::now() + PATIENCE;
        while self.buf.len() < length && !self.closed && Instant::now() < deadline {
            self.fill();
        }
        assert_eq!(self.buf.len(), length, "{:?}", self.text());
        self.text()
    }

    /// The next block of the stream (up to a blank line), within `limit`.
    pub fn block(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.buf[..end].to_vec()).expect("UTF-8 events");
                self.buf.drain(..end + 2);
                return Some(block);
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            self.fill();
        }
    }

    /// The next event within `limit`, the blocks that are no event set
    /// aside; `None` when none came or the stream ended.
    pub fn next_within(&mut self, limit: Duration) -> Option<Event> {
        let deadline = Instant::now() + limit;
        loop {
            let block = self.block(deadline.saturating_duration_since(Instant::now()))?;
            match parse(&block) {
                Some(event) => return Some(event),
                None => self.other.push(block),
            }
        }
    }

    /// The next event; fails the test when none comes within [`PATIENCE`].
    pub fn next(&mut self) -> Event {
        self.next_within(PATIENCE).unwrap_or_else(|| {
            panic!(
                "no event within {PATIENCE:?} (closed: {}); buffered {:?}",
                self.closed,
                self.text()
            )
        })
    }

    /// Events up to and including the first for which `wanted` holds.
    pub fn until(&mut self, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = self.next();
            let done = wanted(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// The first event of `kind` for which `wanted` holds, others skipped.
    pub fn find(&mut self, kind: &str, wanted: impl Fn(&Value) -> bool) -> Event {
        let seen = self.until(|e| e.kind == kind && wanted(&e.data));
        seen.last().cloned().expect("until returns the event found")
    }

    /// Whether the server closed the stream within [`PATIENCE`], the
    /// events still to come taken first.
    pub fn ends(&mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while !self.closed && Instant::now() < deadline {
            self.fill();
        }
        self.closed
    }
}

/// A block's `id`, `event` and `data` fields; `None` for a block without
/// data (`retry: 1000`, a comment).
pub fn parse(block: &str) -> Option<Event> {
    let (mut id, mut kind, mut data) = (None, None, None::<String>);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.parse().expect("a decimal id")),
            "event" => kind = Some(value.to_string()),
            "data" => {
                assert!(data.is_none(), "one data line per event: {block:?}");
                data = Some(value.to_string());
            }
            _ => {}
        }
    }
    let data = data?;
    Some(Event {
        id,
        kind: kind.unwrap_or_else(|| panic!("an event without kind: {block:?}")),
        data: serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("data that is not JSON ({e}): {data:?}")),
    })
}

/// A lease of `server`'s with the body `body`: its JSON `lease`.
pub fn lease(server: &Server, body: &str) -> Value {
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", body)
        .expect("the lease is answered");
    assert_eq!(status, 201, "{answer}");
    answer["lease"].clone()
}

/// The lease `id` as `GET /api/v1/ports/leases/ID` shows it.
pub fn lease_as_shown(server: &Server, id: &str) -> Value {
    let path = format!("/api/v1/ports/leases/{id}");
    let (status, answer) = server.json_request("GET", &path, "").unwrap();
    assert_eq!(status, 200, "{answer}");
    answer["lease"].clone()
}

/// The name `name` as an item of `GET /api/v1/names` shows it.
pub fn name_as_listed(server: &Server, name: &str) -> Value {
    let (status, answer) = server.json_request("GET", "/api/v1/names", "").unwrap();
    assert_eq!(status, 200, "{answer}");
    let names = answer["names"].as_array().expect("a list of names");
    let found = names.iter().find(|n| n["name"] == name);
    found
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
}
