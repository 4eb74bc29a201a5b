//! Routing by name through the real binary, against real backends written
//! here (`backends.rs`: HTTP, server-sent events, a WebSocket echo): each
//! rule of SPEC "Routing by name" with a test that fails when the rule is
//! broken. `forwarding.rs`: which requests reach which backend, and with
//! which headers; `pages.rs`: the pages dynport answers itself and the
//! routes listener; `restarts.rs`: a URL across restarts and port
//! changes; `streams.rs`: streaming, tunnels held open, memory, IPv6;
//! `shares.rs`: tunnels in a user's connection share; `browser.rs`:
//! Chromium through a name.

mod backends;
mod browser;
mod forwarding;
mod pages;
mod restarts;
mod shares;
mod streams;
pub(crate) mod ws;

use crate::fixture::{Launch, Reply, Server, connect, free_range};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A server on a fresh range of 8 ports, none excluded, with `extra` flags.
fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--exclude", "none"];
    args.extend(extra);
    Launch::with_range(free_range(8), &args).start()
}

/// Leases one port for `name` (as this test's user); the port.
fn lease(server: &Server, name: &str) -> u16 {
    let body = format!(r#"{{"name":"{name}","ttl_secs":600}}"#);
    let reply = server.post("/api/v1/ports/lease", &body, &[]);
    assert_eq!(
        reply.status,
        201,
        "lease {name}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let lease = &reply.json()["lease"];
    assert_eq!(lease["name"], name, "{lease}");
    lease["ports"][0].as_u64().expect("a leased port") as u16
}

/// Names `port` `name` with an alias.
fn alias(server: &Server, name: &str, port: u16) {
    let path = format!("/api/v1/names/{name}");
    let reply = server.request("PUT", &path, &[], &format!(r#"{{"port":{port}}}"#));
    assert!(
        reply.status == 200 || reply.status == 201,
        "alias {name} {port}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
}

/// `Host` for `name` on the routes domain `localhost` at `port`.
fn host(name: &str, port: u16) -> String {
    format!("{name}.localhost:{port}")
}

/// One `GET path` with `Host: host` and `extra` header lines, closing.
fn get(port: u16, host: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut conn = Conn::open(port);
    conn.send(
        "GET",
        path,
        host,
        &[extra, &[("Connection", "close")]].concat(),
    );
    conn.answer()
}

/// A connection kept alive: requests written one by one or pipelined,
/// answers read one by one.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = connect(port).expect("connect to dynport");
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Writes a request without a body.
    fn send(&mut self, method: &str, path: &str, host: &str, extra: &[(&str, &str)]) {
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in extra {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Reads one answer: its head, and its body by `Content-Length` or
    /// chunked (none when it has neither).
    fn answer(&mut self) -> Reply {
        let head = self.head().unwrap_or_else(|e| panic!("no answer: {e}"));
        let mut lines = head.trim_end().split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = reply.header("content-length") {
            reply.body = vec![0; n.parse().unwrap()];
            self.reader.read_exact(&mut reply.body).unwrap();
        } else if reply.header("transfer-encoding") == Some("chunked") {
            while let Some(chunk) = self.chunk() {
                reply.body.extend_from_slice(&chunk);
            }
        }
        reply
    }

    /// An answer's head, up to its blank line.
    fn head(&mut self) -> io::Result<String> {
        ws::read_head(&mut self.reader)
    }

    /// The next chunk of a chunked body; `None` for the last, empty one.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).unwrap();
        assert!(data.ends_with(b"\r\n"), "a chunk without its CRLF");
        data.truncate(size);
        (size > 0).then_some(data)
    }

    /// Whether the server closed the connection (after what was read).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset && rest.is_empty(),
        }
    }
}

/// The body as text.
fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// Every `(name, url)` pair of the objects in `json` that have both, at
/// any depth: the names a JSON page lists, whatever its outer shape.
fn listed(json: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    match json {
        serde_json::Value::Object(map) => {
            let name = map.get("name").and_then(|v| v.as_str());
            let url = map.get("url").and_then(|v| v.as_str());
            if let (Some(name), Some(url)) = (name, url) {
                found.push((name.to_string(), url.to_string()));
            }
            for value in map.values() {
                found.extend(listed(value));
            }
        }
        serde_json::Value::Array(items) => {
            for value in items {
                found.extend(listed(value));
            }
        }
        _ => {}
    }
    found.sort();
    found
}

/// The request head a `/echo` of the dev server sent back, checked as such.
fn echoed(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", text(reply));
    let head = text(reply);
    assert!(head.ends_with("\r\n\r\n"), "not an echoed head: {head:?}");
    head
}

/// The header lines named `name` (any case) of an echoed head, values only.
fn lines_named(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}
