//! `dynport watch` against a stand-in server on loopback: following the
//! server to its new port with the last id, and a refusal.

use super::*;
use crate::client::target::{BaseUrl, Source};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

/// Lines written, shared with the test.
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn url(port: u16) -> BaseUrl {
    BaseUrl::for_listener("127.0.0.1", port)
}

fn target(port: u16) -> Target {
    Target {
        url: url(port),
        source: Source::Flag,
        unix: None,
        owner: None,
        dir: None,
    }
}

/// Accepts one connection, answers `answer` once the request head is in,
/// closes it, and returns the head.
fn serve_once(listener: &TcpListener, answer: &str) -> String {
    let (mut conn, _) = listener.accept().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    conn.write_all(answer.as_bytes()).unwrap();
    String::from_utf8(head).unwrap()
}

/// A watch of the server at `port`, and what it prints.
fn watch(port: u16, opts: Options) -> (Watch, Arc<Mutex<Vec<u8>>>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let locate = Locate::Url(url(port), Source::Flag);
    let watch = Watch::new(
        target(port),
        &locate,
        None,
        opts,
        Box::new(Shared(Arc::clone(&out))),
    );
    (watch, out)
}

#[test]
fn follows_the_server_to_its_new_port_and_resumes_after_the_last_event() {
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let new = TcpListener::bind("127.0.0.1:0").unwrap();
    let (from, to) = (
        old.local_addr().unwrap().port(),
        new.local_addr().unwrap().port(),
    );
    let server = thread::spawn(move || {
        let stream = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 100\n\n\
             id: 41\nevent: scan\ndata: {{\"changes\":[]}}\n\n: keepalive\n\n\
             id: 42\nevent: port\ndata: {{\"from\":{from},\"to\":{to}}}\n\n"
        );
        let first = serve_once(&old, &stream);
        drop(old);
        let stream = "HTTP/1.1 200 OK\r\n\r\nid: 43\nevent: name\ndata: {\"name\":\"web\",\"gone\":true}\n\n";
        (first, serve_once(&new, stream))
    });
    let opts = Options {
        json: true,
        count: Some(3),
    };
    let (mut watch, out) = watch(from, opts);
    assert!(watch.follow().is_ok());
    let (first, second) = server.join().unwrap();
    assert!(
        first.starts_with("GET /api/v1/events HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(
        first.contains("\r\nAccept: text/event-stream\r\n"),
        "{first}"
    );
    assert!(!first.contains("Last-Event-ID"), "{first}");
    assert!(
        second.contains(&format!("\r\nHost: 127.0.0.1:{to}\r\n")),
        "{second}"
    );
    assert!(second.contains("\r\nLast-Event-ID: 42\r\n"), "{second}");
    let printed = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    let expected = format!(
        "{{\"id\":41,\"event\":\"scan\",\"data\":{{\"changes\":[]}}}}\n\
         {{\"id\":42,\"event\":\"port\",\"data\":{{\"from\":{from},\"to\":{to}}}}}\n\
         {{\"id\":43,\"event\":\"name\",\"data\":{{\"gone\":true,\"name\":\"web\"}}}}\n"
    );
    assert_eq!(printed, expected);
}

#[test]
fn a_refusal_ends_the_watch_with_the_servers_words() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let body = r#"{"status":"error","error":"Last-Event-ID: \u001b not an id"}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        serve_once(&listener, &answer)
    });
    let (mut watch, out) = watch(
        port,
        Options {
            json: false,
            count: None,
        },
    );
    watch.last_id = Some(7);
    let err = watch.follow().unwrap_err();
    assert_eq!(
        err,
        ClientError::Refused("Last-Event-ID: ? not an id".into())
    );
    assert!(server.join().unwrap().contains("\r\nLast-Event-ID: 7\r\n"));
    assert!(out.lock().unwrap().is_empty());
}

#[test]
fn no_server_at_the_start_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut watch, _) = watch(
        port,
        Options {
            json: false,
            count: None,
        },
    );
    let err = watch.follow().unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err:?}");
}
