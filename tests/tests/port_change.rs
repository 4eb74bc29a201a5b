//! `POST /api/v1/server/port/change` on the real server: moving, refusing,
//! the token, and a live move under concurrent requests.

use crate::fixture::{
    Launch, Server, connect, eventually, exchange, free_range, poll_until, refuses,
};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

const CHANGE: &str = "/api/v1/server/port/change";
/// How long the clients may take to get their exchanges through.
const PATIENCE: Duration = Duration::from_secs(10);

/// The first port after `current` that the server's table has free,
/// wrapping inside the range: what a change without a body must pick.
fn next_free_after(server: &Server, current: u16) -> u16 {
    let table = server.get("/api/v1/tools/port/state").json();
    let (start, end) = server.range();
    let taken = |p: u16| !table["ports"][p.to_string()].is_null();
    let after = (current + 1..=end).chain(start..current);
    after
        .into_iter()
        .find(|p| !taken(*p))
        .unwrap_or_else(|| panic!("no free port in {table}"))
}

/// Checks a successful change from `old` to `new` end to end.
fn assert_moved(server: &mut Server, reply: &crate::fixture::Reply, old: u16, new: u16) {
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let body = reply.json();
    assert_eq!(body["status"], "success", "{body}");
    let message = format!("Port changed from {old} to {new}");
    assert_eq!(body["message"], message.as_str(), "{body}");
    assert_eq!(body["old_port"], old, "{body}");
    assert_eq!(body["new_port"], new, "{body}");
    crate::fixture::assert_rfc3339_utc(&body["timestamp"]);
    let state = server.state();
    assert_eq!(state["server_port"], new, "{state}");
    assert_eq!(state["last_server_port"], new, "{state}");
    assert_eq!(
        state["ports"][new.to_string()]["state"],
        "server",
        "{state}"
    );
    assert!(
        poll_until(PATIENCE, || refuses(old)),
        "port {old} still accepts {PATIENCE:?} after the change"
    );
    server.port = new;
    let now = server.get("/api/v1/server/port").json();
    assert_eq!(now["current_port"], new, "{now}");
    let logged = format!("Server port changed from {old} to {new}\n");
    server.wait_for_log(&logged, PATIENCE);
}

#[test]
fn change_without_body_moves_to_next_free_then_to_asked_port() {
    let mut server = Server::start(&[]);
    let (_, end) = server.range();
    let old = server.port;
    let next = next_free_after(&server, old);
    let reply = server.post(CHANGE, "", &[]);
    assert_moved(&mut server, &reply, old, next);

    let reply = server.post(CHANGE, &format!(r#"{{"port": {end}}}"#), &[]);
    assert_moved(&mut server, &reply, next, end);
    let state = server.state();
    assert_eq!(state["ports"][next.to_string()], serde_json::Value::Null);

    // From the end of the range, the next free port wraps to its start.
    let wrapped = next_free_after(&server, end);
    assert!(wrapped < end, "{wrapped}");
    let reply = server.post(CHANGE, "", &[]);
    assert_moved(&mut server, &reply, end, wrapped);
}

/// Posts `body` to the change endpoint and returns the status and error text.
fn refused_change(server: &Server, body: &str) -> (u16, String) {
    let reply = server.post(CHANGE, body, &[]);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    (reply.status, reply.error())
}

#[test]
fn refused_changes_leave_everything_as_it_was() {
    let launch = Launch::new(&[]);
    let (start, end) = launch.range;
    let seen_busy = TcpListener::bind((Ipv4Addr::LOCALHOST, start + 3)).unwrap();
    let server = launch.start();
    // Bound after the first scan: only the bind itself can find it taken.
    let unseen_busy = TcpListener::bind((Ipv4Addr::LOCALHOST, start + 4)).unwrap();
    let port = server.port;
    let before = server.state_bytes();

    for busy in [&seen_busy, &unseen_busy] {
        let busy = busy.local_addr().unwrap().port();
        let (status, error) = refused_change(&server, &format!(r#"{{"port": {busy}}}"#));
        assert_eq!(status, 409, "port {busy}: {error}");
    }
    for outside in [start - 1, end + 1] {
        let (status, error) = refused_change(&server, &format!(r#"{{"port": {outside}}}"#));
        assert_eq!(status, 400, "port {outside}: {error}");
        assert!(error.contains("port"), "{error}");
    }
    let (status, error) = refused_change(&server, r#"{"port":"x"}"#);
    assert_eq!((status, error.contains("port")), (400, true), "{error}");
    let (status, error) = refused_change(&server, "not json");
    assert_eq!(status, 400, "{error}");
    let (status, error) = refused_change(&server, &format!(r#"{{"port": {port}}}"#));
    assert_eq!(status, 409, "{error}");

    let reply = server.get(CHANGE);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    reply.error();
    let reply = server.get("/api/v1/no/such/path");
    assert_eq!(reply.status, 404);
    assert!(!reply.error().is_empty());

    assert_eq!(
        server.get("/api/v1/server/port").json()["current_port"],
        port
    );
    assert_eq!(
        String::from_utf8_lossy(&server.state_bytes()),
        String::from_utf8_lossy(&before),
        "the state file changed"
    );
    assert!(!server.log().contains("Server port changed"));
}

#[test]
fn token_guards_change_but_not_reads() {
    let server = Server::start(&["--token", "s3cret"]);
    let old = server.port;
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let reply = server.post(CHANGE, "", &headers);
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        reply.error();
    }
    for path in [
        "/healthz",
        "/api/v1/server/port",
        "/api/v1/tools/port/state",
        "/api/v1/system/overview",
    ] {
        assert_eq!(server.get(path).status, 200, "GET {path}");
    }
    assert_eq!(
        server.get("/api/v1/server/port").json()["current_port"],
        old
    );

    let next = next_free_after(&server, old);
    let reply = server.post(CHANGE, "", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["new_port"], next);
}

/// What one client thread saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
}

/// GETs the server port on fresh connections to whatever port is current
/// until told to stop, counting each exchange made in `exchanges`. A
/// refused connection is retried; every connection that got through must
/// get a whole 200.
fn hammer(current: &AtomicU16, stop: &AtomicBool, exchanges: &AtomicU64) -> Tally {
    let mut tally = Tally::default();
    let raw = b"GET /api/v1/server/port HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    while !stop.load(Ordering::Relaxed) {
        let port = current.load(Ordering::Relaxed);
        let stream = match connect(port) {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => {
                // ECONNRESET here: the handshake completed, then the
                // server's side was reset. That is a lost connection too.
                tally.failed.push(format!("port {port}: connect: {e}"));
                continue;
            }
        };
        let result = exchange(stream, raw);
        exchanges.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(reply) if reply.status == 200 && answers_port(&reply.body) => {
                tally.ok += 1;
            }
            Ok(reply) => tally.failed.push(format!("port {port}: {reply:?}")),
            Err(e) => tally.failed.push(format!("port {port}: {e}")),
        }
    }
    tally
}

/// Waits until each client has made `n` more exchanges than it had made
/// when called.
fn wait_for_exchanges(exchanges: &[Arc<AtomicU64>], n: u64) {
    let count = |e: &Arc<AtomicU64>| e.load(Ordering::Relaxed);
    let from: Vec<u64> = exchanges.iter().map(count).collect();
    eventually(
        PATIENCE,
        &format!("{n} more exchanges of each client"),
        || exchanges.iter().zip(&from).all(|(e, f)| count(e) >= f + n),
    );
}

fn answers_port(body: &[u8]) -> bool {
    let body = serde_json::from_slice::<serde_json::Value>(body);
    body.is_ok_and(|b| b["current_port"].is_u64())
}

#[test]
fn live_changes_under_concurrent_requests_lose_nothing() {
    let mut server = Launch::new(&[]).range(free_range(16)).start();
    let current = Arc::new(AtomicU16::new(server.port));
    let stop = Arc::new(AtomicBool::new(false));
    let exchanges: Vec<Arc<AtomicU64>> = (0..8).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let clients: Vec<_> = exchanges
        .iter()
        .map(|made| {
            let (current, stop) = (Arc::clone(&current), Arc::clone(&stop));
            let made = Arc::clone(made);
            thread::spawn(move || hammer(&current, &stop, &made))
        })
        .collect();

    wait_for_exchanges(&exchanges, 1);
    let mut moves = Vec::new();
    for _ in 0..5 {
        let old = server.port;
        let reply = server.post(CHANGE, "", &[]);
        assert_eq!(reply.status, 200, "{:?}", reply.json());
        assert_eq!(reply.json()["old_port"], old);
        let new = reply.json()["new_port"].as_u64().unwrap() as u16;
        current.store(new, Ordering::Relaxed);
        server.port = new;
        moves.push((old, new));
        // Two, so that each client has made one that began after the move.
        wait_for_exchanges(&exchanges, 2);
    }
    stop.store(true, Ordering::Relaxed);

    let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for (i, tally) in tallies.iter().enumerate() {
        assert!(tally.ok > 0, "client {i} got nothing through: {tally:?}");
        assert_eq!(
            tally.failed,
            Vec::<String>::new(),
            "client {i}; moves {moves:?}"
        );
    }
    assert_eq!(server.state()["server_port"], server.port);
}
