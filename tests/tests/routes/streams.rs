//! Tunnels stream both ways and hold on: server-sent events arrive as they
//! are sent, a WebSocket echoes and stays open while idle past the
//! engine's request timeout, as does a long poll, long bodies pass both
//! ways, a slow reader on either side (the client of a large answer, the
//! dev server of a large upload) does not grow dynport's memory, and a
//! dev server on `[::1]` alone is reached.

use super::backends::DevServer;
use super::ws::{self, CLOSE, PING, PONG, TEXT};
use super::{Conn, get, host, lease, start, text};
use crate::fixture::{has_ipv6, refuses, skipped};
use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

/// The engine's request timeout (5 s, not a flag), and a second more: an
/// open WebSocket idle this long must not get a 408 nor be closed.
const IDLE: Duration = Duration::from_secs(6);

#[test]
fn server_sent_events_arrive_before_the_answer_ends() {
    let server = start(&[]);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    let mut conn = Conn::open(p);
    conn.send(
        "GET",
        "/events",
        &host("web", p),
        &[("Accept", "text/event-stream")],
    );
    let head = conn.head().unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    // The backend holds the rest until the first event came through.
    assert_eq!(conn.chunk().as_deref(), Some(&b"data: first\n\n"[..]));
    web.release_events();
    assert_eq!(conn.chunk().as_deref(), Some(&b"data: second\n\n"[..]));
    assert_eq!(conn.chunk().as_deref(), Some(&b"data: third\n\n"[..]));
    assert_eq!(conn.chunk(), None);
    // The answer's end was seen: the connection goes on.
    conn.send("GET", "/", &host("web", p), &[]);
    assert_eq!(conn.answer().status, 200);
    assert_eq!(web.requests(), 2);
}

#[test]
fn a_websocket_echoes_and_stays_open_while_idle_past_the_request_timeout() {
    let server = start(&[]);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    let mut client = ws::Client::open(p, &host("web", p), "/ws");
    client.send_text("hello through dynport");
    let echo = client.recv().unwrap();
    assert_eq!(
        (echo.opcode, echo.payload.as_slice(), echo.masked),
        (TEXT, &b"hello through dynport"[..], false)
    );
    // Larger than a read of the tunnel's, with a 16-bit and a 64-bit length.
    for size in [40_000, 200_000] {
        let big = "y".repeat(size);
        client.send_text(&big);
        let echo = client.recv().unwrap();
        assert_eq!((echo.opcode, echo.payload.len()), (TEXT, size));
    }
    thread::sleep(IDLE);
    client.send(PING, b"are you there");
    let pong = client.recv().unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (PONG, &b"are you there"[..])
    );
    client.send_text("still here");
    assert_eq!(client.recv().unwrap().payload, b"still here");
    client.send(CLOSE, &1000u16.to_be_bytes());
    let close = client.recv().unwrap();
    assert_eq!(
        (close.opcode, close.payload),
        (CLOSE, 1000u16.to_be_bytes().to_vec())
    );
    // The backend ends it, and dynport passes the end on.
    let mut rest = Vec::new();
    client.stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    assert_eq!(web.requests(), 1);
}

#[test]
fn a_long_poll_is_answered_after_the_request_timeout() {
    let server = start(&[]);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    let mut conn = Conn::open(p);
    let longer = Some(IDLE * 3);
    conn.reader.get_ref().set_read_timeout(longer).unwrap();
    let wait = format!("/wait?{}", IDLE.as_millis());
    conn.send("GET", &wait, &host("web", p), &[]);
    let reply = conn.answer();
    assert_eq!((reply.status, text(&reply)), (200, "waited".into()));
    conn.send("GET", "/", &host("web", p), &[]);
    assert_eq!(conn.answer().status, 200);
    assert_eq!(web.targets(), [wait.as_str(), "/"]);
}

#[test]
fn long_and_chunked_bodies_pass_both_ways() {
    let server = start(&[]);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    let mut conn = Conn::open(p);
    let upload = vec![b'u'; 5 * 1024 * 1024];
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        host("web", p),
        upload.len()
    );
    let mut writer = conn.writer.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(&upload).unwrap();
    });
    let reply = conn.answer();
    sender.join().unwrap();
    assert_eq!(
        (reply.status, text(&reply)),
        (200, (5 * 1024 * 1024).to_string())
    );
    let chunked = format!(
        "POST /up HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n1000\r\n{}\r\n0\r\n\r\n",
        host("web", p),
        "z".repeat(0x1000)
    );
    conn.writer.write_all(chunked.as_bytes()).unwrap();
    let reply = conn.answer();
    assert_eq!(
        (reply.status, text(&reply)),
        (200, (5 + 0x1000).to_string())
    );
    conn.send("GET", "/big?12345678", &host("web", p), &[]);
    let reply = conn.answer();
    assert_eq!((reply.status, reply.body.len()), (200, 12_345_678));
    assert!(reply.body.iter().all(|&b| b == b'x'));
    assert_eq!(web.requests(), 3);
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_slow_reader_of_a_large_answer_does_not_grow_dynports_memory() {
    let server = start(&[]);
    let p = server.port;
    let _web = DevServer::start(lease(&server, "web"), "");
    // A first tunnel, so that what every tunnel needs is counted already.
    let warm = get(p, &host("web", p), "/big?1000000", &[]);
    assert_eq!(warm.body.len(), 1_000_000);
    let before = vm_rss_kib(server.pid());
    let size: usize = 128 * 1024 * 1024;
    let mut conn = Conn::open(p);
    conn.send("GET", &format!("/big?{size}"), &host("web", p), &[]);
    let head = conn.head().unwrap();
    assert!(
        head.contains(&format!("Content-Length: {size}\r\n")),
        "{head}"
    );
    let mut peak = before;
    // Not read at all for a second: the backend writes as fast as it can.
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(50));
        peak = peak.max(vm_rss_kib(server.pid()));
    }
    // Then read slowly, 64 KiB at a time, then fast to the end.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut reads = 0;
    while got < size {
        let n = conn.reader.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got} of {size} bytes");
        assert!(buf[..n].iter().all(|&b| b == b'x'));
        got += n;
        reads += 1;
        if reads % 32 == 0 {
            peak = peak.max(vm_rss_kib(server.pid()));
        }
        if got < 16 * 1024 * 1024 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(got, size);
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 4 * 1024,
        "VmRSS grew by {grown} KiB (from {before} KiB) for a slow reader of {size} bytes"
    );
}

#[test]
fn a_large_upload_to_a_slow_dev_server_does_not_grow_dynports_memory() {
    let server = start(&[]);
    let p = server.port;
    let _web = DevServer::start(lease(&server, "web"), "");
    let warm = get(p, &host("web", p), "/big?1000000", &[]);
    assert_eq!(warm.body.len(), 1_000_000);
    let before = vm_rss_kib(server.pid());
    let size: usize = 64 * 1024 * 1024;
    let mut conn = Conn::open(p);
    let head = format!(
        "POST /hold?1500 HTTP/1.1\r\nHost: {}\r\nContent-Length: {size}\r\n\r\n",
        host("web", p)
    );
    let mut writer = conn.writer.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The backend reads nothing for 1.5 s: the upload waits in the kernel's
    // buffers, not in dynport.
    let sender = thread::spawn(move || {
        writer.write_all(head.as_bytes()).unwrap();
        let block = vec![b'u'; 1024 * 1024];
        for _ in 0..size / block.len() {
            writer.write_all(&block).unwrap();
        }
    });
    let mut peak = before;
    for _ in 0..25 {
        thread::sleep(Duration::from_millis(50));
        peak = peak.max(vm_rss_kib(server.pid()));
    }
    let reply = conn.answer();
    sender.join().unwrap();
    assert_eq!((reply.status, text(&reply)), (200, size.to_string()));
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 4 * 1024,
        "VmRSS grew by {grown} KiB (from {before} KiB) for an upload of {size} bytes"
    );
}

#[test]
fn a_dev_server_on_the_ipv6_loopback_only_is_reached_there() {
    if !has_ipv6() {
        skipped(format_args!("this host has no IPv6 loopback"));
        return;
    }
    let server = start(&[]);
    let p = server.port;
    let port = lease(&server, "web");
    let web = DevServer::start_ipv6(port, "<p>v6</p>").expect("bind [::1]");
    assert!(refuses(port), "something listens on 127.0.0.1:{port}");
    let reply = get(p, &host("web", p), "/", &[]);
    assert_eq!((reply.status, text(&reply)), (200, "<p>v6</p>".into()));
    let mut client = ws::Client::open(p, &host("web", p), "/ws");
    client.send_text("v6");
    assert_eq!(client.recv().unwrap().payload, b"v6");
    assert_eq!(web.requests(), 2);
}
