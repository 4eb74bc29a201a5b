//! The real server: how it picks its port, what it answers, what it writes
//! to its state file, and how it starts, stops, crashes and restarts.

use crate::fixture::{
    Launch, Server, TempDir, assert_rfc3339_utc, connect, exchange, free_range, has_ipv6, keys,
    poll_until, refuses, sorted,
};
use serde_json::{Value, json};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// The ports of the state file's `ports` map that are in `state`.
fn ports_in(state_file: &Value, state: &str) -> Vec<u16> {
    let ports = state_file["ports"].as_object().expect("ports is an object");
    let held = ports.iter().filter(|(_, e)| e["state"] == state);
    held.map(|(p, _)| p.parse().unwrap()).collect()
}

/// `state` of `port` as `GET /api/v1/tools/port/state?port=N` answers it.
fn port_state(server: &Server, port: u16) -> String {
    let reply = server.get(&format!("/api/v1/tools/port/state?port={port}"));
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let body = reply.json();
    assert_eq!(body["port"], port, "{body}");
    body["state"].as_str().unwrap().to_string()
}

fn listen_v4(port: u16) -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the test listener binds")
}

#[test]
fn start_answers_spec_fields_and_writes_state_and_log() {
    let server = Server::start(&[]);
    let (start, end) = server.range();
    let port = server.port;
    assert!((start..=end).contains(&port), "{port} not in {start}-{end}");

    let reply = server.get("/api/v1/server/port");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    // The lease part of the SPEC adds `excluded_ports` (and the `excluded` count).
    let fields = [
        "current_port",
        "port_manager_status",
        "port_range",
        "available_ports",
        "used_ports",
        "excluded_ports",
        "port_state",
        "server_port",
        "timestamp",
    ];
    assert_eq!(keys(&body), sorted(&fields), "{body}");
    let state_fields = [
        "free",
        "in_use",
        "server",
        "leased",
        "excluded",
        "last_scan",
    ];
    assert_eq!(keys(&body["port_state"]), sorted(&state_fields), "{body}");
    assert_eq!(body["current_port"], port);
    assert_eq!(body["server_port"], port);
    assert_eq!(body["port_manager_status"], "active");
    assert_eq!(body["port_range"], json!({"start": start, "end": end}));
    let count = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {body}"));
    let (available, used) = (count(&body["available_ports"]), count(&body["used_ports"]));
    assert_eq!(available + used, 8, "{body}");
    assert_eq!(count(&body["excluded_ports"]), 0, "{body}");
    let ps = &body["port_state"];
    assert_eq!(count(&ps["server"]), 1, "{body}");
    assert_eq!(count(&ps["leased"]), 0, "{body}");
    assert_eq!(count(&ps["free"]), available, "{body}");
    assert_eq!(count(&ps["in_use"]) + 1, used, "{body}");
    assert_rfc3339_utc(&ps["last_scan"]["at"]);
    assert_rfc3339_utc(&body["timestamp"]);

    let state = server.state();
    assert_eq!(state["version"], 1);
    assert_eq!(state["server_port"], port);
    assert_eq!(state["last_server_port"], port);
    assert_eq!(state["port_range"], json!({"start": start, "end": end}));
    assert_eq!(state["ports"][port.to_string()]["state"], "server");
    assert_eq!(state["server"]["pid"], server.pid());
    assert_eq!(state["server"]["host"], "127.0.0.1");
    assert_rfc3339_utc(&state["server"]["started_at"]);
    assert_rfc3339_utc(&state["updated_at"]);
    assert_eq!(ports_in(&state, "server"), vec![port]);

    let log = server.log();
    let selected = log.find(&format!("Selected dynamic port: {port}\n"));
    let listening = log.find(&format!("listening on http://127.0.0.1:{port}\n"));
    assert!(
        selected.is_some() && listening.is_some() && selected < listening,
        "log lines missing or out of order:\n{log}"
    );
}

#[test]
fn picks_lowest_free_port() {
    let launch = Launch::new(&[]);
    let (start, _) = launch.range;
    let _held = listen_v4(start);
    let server = launch.start();
    assert_eq!(server.port, start + 1, "{}", server.log());
    assert_eq!(port_state(&server, start), "in_use");
    assert_eq!(port_state(&server, start + 1), "server");
    assert_eq!(port_state(&server, start + 2), "free");
}

#[test]
fn ports_bound_on_other_addresses_are_in_use() {
    let launch = Launch::new(&[]);
    let (start, _) = launch.range;
    let (p, q) = (start + 2, start + 3);
    let _v6 = if has_ipv6() {
        Some(TcpListener::bind((Ipv6Addr::LOCALHOST, p)).expect("binds [::1]"))
    } else {
        crate::fixture::skipped(format_args!("the [::1] part: no IPv6 on this host"));
        None
    };
    let _other = TcpListener::bind(("127.0.0.2", q)).expect("binds 127.0.0.2");
    let server = launch.start();
    assert_eq!(server.port, start, "{}", server.log());
    if has_ipv6() {
        assert_eq!(port_state(&server, p), "in_use");
    }
    assert_eq!(port_state(&server, q), "in_use");

    let reply = server.get("/api/v1/tools/port/state");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let expected: Vec<u16> = if has_ipv6() { vec![p, q] } else { vec![q] };
    assert_eq!(ports_in(&body, "in_use"), expected, "{body}");
    assert_eq!(ports_in(&body, "server"), vec![start], "{body}");
    let in_use = expected.len() as u64;
    let counts =
        json!({"free": 7 - in_use, "in_use": in_use, "server": 1, "leased": 0, "excluded": 0});
    assert_eq!(body["counts"], counts, "{body}");
    assert_eq!(ports_in(&server.state(), "in_use"), expected);
}

#[test]
fn restart_reuses_last_port() {
    let mut server = Server::start(&[]);
    let (start, _) = server.range();
    assert_eq!(server.port, start, "{}", server.log());
    let target = start + 5;
    let body = format!(r#"{{"port": {target}}}"#);
    let reply = server.post("/api/v1/server/port/change", &body, &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(server.term().code(), Some(0), "{}", server.log());

    let again = server.relaunch().start();
    assert_eq!(again.port, target, "{}", again.log());
    assert!(
        again
            .log()
            .contains(&format!("Selected dynamic port: {target}\n"))
    );
    assert_eq!(again.state()["server_port"], target);
}

#[test]
fn sigterm_releases_port_and_exits_0() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let status = server.term();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        server.log().contains("Port released successfully"),
        "{}",
        server.log()
    );
    let state = server.state();
    assert_eq!(state["server_port"], Value::Null, "{state}");
    assert_eq!(state["server"], Value::Null, "{state}");
    assert_eq!(state["last_server_port"], port, "{state}");
    assert_eq!(ports_in(&state, "server"), Vec::<u16>::new(), "{state}");
    assert!(refuses(port), "port {port} still accepts after exit");
}

#[test]
fn sigint_shuts_down_cleanly_too() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let status = server.signal_and_wait(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(server.log().contains("Port released successfully"));
    let state = server.state();
    assert_eq!(state["server_port"], Value::Null, "{state}");
    assert_eq!(state["server"], Value::Null, "{state}");
    assert_eq!(state["last_server_port"], port, "{state}");
}

#[test]
fn second_server_on_same_dir_exits_1_and_changes_nothing() {
    let first = Server::start(&[]);
    let before = first.state_bytes();
    let names = first.dir().names();

    let mut second = first.relaunch().spawn();
    let status = second.wait_exit(crate::fixture::EXIT_TIMEOUT);
    let log = second.log();
    assert_eq!(status.code(), Some(1), "{log}");
    let dir = first.dir().path().display().to_string();
    assert!(
        log.contains(&dir),
        "the message does not name {dir}:\n{log}"
    );
    let pid = format!("pid {}", first.pid());
    assert!(
        log.contains(&pid),
        "the message does not name {pid}:\n{log}"
    );
    assert!(!log.contains("listening on"), "{log}");

    assert_eq!(first.state_bytes(), before, "the state file changed");
    assert_eq!(first.dir().names(), names);
    let reply = first.get("/api/v1/server/port");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["current_port"], first.port);
}

#[test]
fn refresh_thread_sees_ports_come_and_go() {
    let server = Server::start(&["--refresh-secs", "1"]);
    let (_, end) = server.range();
    assert_ne!(server.port, end, "{}", server.log());
    let in_file = |s: &Server| s.state()["ports"][end.to_string()]["state"].clone();

    let held = listen_v4(end);
    let seen = poll_until(Duration::from_secs(5), || {
        port_state(&server, end) == "in_use"
    });
    assert!(seen, "port {end} not seen in use:\n{}", server.log());
    // The refresh thread writes the state file right after the scan.
    let written = poll_until(Duration::from_secs(5), || in_file(&server) == "in_use");
    assert!(written, "{}", server.state());

    drop(held);
    let gone = poll_until(Duration::from_secs(5), || {
        port_state(&server, end) == "free"
    });
    assert!(gone, "port {end} not seen free again:\n{}", server.log());
    let written = poll_until(Duration::from_secs(5), || in_file(&server) == Value::Null);
    assert!(written, "{}", server.state());
    let log = server.log();
    let loud = log
        .lines()
        .find(|l| l.contains("[INFO]") && l.contains("scan"));
    assert_eq!(loud, None, "the periodic scan logs above debug");
}

#[test]
fn corrupt_state_file_is_kept_aside() {
    let dir = Arc::new(TempDir::new());
    let original = br#"{"version": 1, "tru"#;
    std::fs::write(dir.state_file(), original).unwrap();
    let server = Launch::new(&[]).dir(Arc::clone(&dir)).start();

    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("[WARN]") && l.contains("dynamic_ports.json.corrupt-"))
        .unwrap_or_else(|| panic!("no warning naming the kept file:\n{log}"));
    let prefix = dir.path().join("dynamic_ports.json.corrupt-");
    let prefix = prefix.to_str().unwrap();
    let at = warning
        .find(prefix)
        .unwrap_or_else(|| panic!("the warning does not name {prefix}: {warning}"));
    let digits: String = warning[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!digits.is_empty(), "no unix seconds in {warning}");
    let kept = format!("{prefix}{digits}");
    assert_eq!(std::fs::read(&kept).unwrap(), original);

    let state = server.state();
    assert_eq!(state["version"], 1);
    assert_eq!(state["server_port"], server.port);
    let names = dir.names();
    let expected = [
        "dynamic_ports.journal",
        "dynamic_ports.json",
        "dynamic_ports.lock",
        "dynport.sock",
    ];
    let mut expected: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
    expected.push(format!("dynamic_ports.json.corrupt-{digits}"));
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn crashed_server_is_taken_over_on_same_port() {
    let mut server = Server::start(&[]);
    let (start, _) = server.range();
    let target = start + 4;
    let body = format!(r#"{{"port": {target}}}"#);
    let reply = server.post("/api/v1/server/port/change", &body, &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    server.kill9();
    assert_eq!(server.state()["server"]["pid"], server.pid());

    let again = server.relaunch().start();
    assert!(again.log().contains("taking over"), "{}", again.log());
    assert_eq!(again.port, target, "{}", again.log());
    let state = again.state();
    assert_eq!(state["server"]["pid"], again.pid());
    assert_eq!(ports_in(&state, "server"), vec![target], "{state}");
}

#[test]
fn fallback_port_when_range_is_taken() {
    let (only, _) = free_range(1);
    let (fallback, _) = free_range(1);
    let _held = listen_v4(only);
    let fb = fallback.to_string();
    let server = Launch::new(&["--fallback-port", &fb])
        .range((only, only))
        .start();
    assert_eq!(server.port, fallback, "{}", server.log());
    let log = server.log();
    assert!(
        log.contains(&format!("Using fallback port: {fallback}\n")),
        "{log}"
    );
    let reply = server.get("/api/v1/server/port");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["server_port"], fallback);
}

/// Waits for `server` to exit 1 and gives its error line.
fn exits_1_with_error(server: &mut crate::fixture::Server) -> String {
    let status = server.wait_exit(crate::fixture::EXIT_TIMEOUT);
    let log = server.log();
    assert_eq!(status.code(), Some(1), "{log}");
    log.lines()
        .find(|l| l.contains("[ERROR]"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"))
        .to_string()
}

#[test]
fn nothing_bindable_exits_1() {
    let (only, _) = free_range(1);
    let (fallback, _) = free_range(1);
    let _held = (listen_v4(only), listen_v4(fallback));
    let fb = fallback.to_string();
    let mut server = Launch::new(&["--fallback-port", &fb])
        .range((only, only))
        .spawn();
    let error = exits_1_with_error(&mut server);
    assert!(error.contains(&format!("{only}-{only}")), "{error}");
    assert!(
        error.contains(&format!("fallback port {fallback}")),
        "{error}"
    );
}

/// A fallback port inside the range is the server's only when the table
/// says it is free: an excluded one is refused, and start fails.
#[test]
fn fallback_port_that_is_excluded_is_not_taken() {
    let (held, excluded) = free_range(2);
    let _held = listen_v4(held);
    let fb = excluded.to_string();
    let mut server = Launch::new(&["--fallback-port", &fb, "--exclude", &fb])
        .range((held, excluded))
        .spawn();
    let error = exits_1_with_error(&mut server);
    let expected = format!(
        "no port of {held}-{excluded} could be bound on 127.0.0.1, and the fallback port \
         {excluded} may not be used: port {excluded} is not free: it is excluded"
    );
    assert!(error.ends_with(&expected), "{error}");
    let log = server.log();
    assert!(!log.contains("Using fallback port"), "{log}");
}

/// Sends `raw` on a fresh connection and returns the status of the answer,
/// checking it is a JSON error after which the server closes.
fn raw_status(server: &Server, raw: &[u8]) -> u16 {
    let stream = connect(server.port).unwrap();
    let reply = exchange(stream, raw).unwrap_or_else(|e| panic!("no answer: {e}"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    reply.error();
    reply.status
}

#[test]
fn hostile_requests_are_answered_and_server_lives_on() {
    let mut server = Server::start(&[]);
    let huge = b"POST /api/v1/server/port/change HTTP/1.1\r\nHost: x\r\n\
                 Content-Length: 99999999999\r\n\r\n";
    assert_eq!(raw_status(&server, huge), 413);
    assert_eq!(server.get("/healthz").status, 200);

    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw_status(&server, &big), 431);

    assert_eq!(
        raw_status(&server, b"\x00\x01\x02 garbage \xff\r\n\r\n"),
        400
    );

    let mut stream = connect(server.port).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    drop(stream);
    assert!(server.is_running(), "{}", server.log());
    let reply = server.get("/api/v1/server/port");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["current_port"], server.port);
}

#[test]
fn healthz_and_overview() {
    let server = Server::start(&["--workers", "3", "--refresh-secs", "7"]);
    let reply = server.get("/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "ok"}));

    let first = server.get("/api/v1/system/overview").json();
    let (start, end) = server.range();
    assert_eq!(first["name"], "dynport");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["pid"], server.pid());
    assert!(
        first["uptime_secs"].as_u64().is_some_and(|s| s < 60),
        "{first}"
    );
    assert_eq!(first["host"], "127.0.0.1");
    assert_eq!(first["server_port"], server.port);
    assert_eq!(first["workers"], 3);
    let pm = &first["port_manager"];
    assert_eq!(pm["status"], "active", "{first}");
    assert_eq!(pm["port_range"], json!({"start": start, "end": end}));
    assert_eq!(pm["refresh_secs"], 7, "{first}");
    assert_eq!(pm["counts"]["server"], 1, "{first}");
    let total: u64 = ["free", "in_use", "server", "leased", "excluded"]
        .iter()
        .map(|k| pm["counts"][k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 8, "{first}");
    assert_rfc3339_utc(&pm["last_scan"]["at"]);
    assert!(pm["last_scan"]["duration_ms"].is_number(), "{first}");
    assert!(pm["last_scan"]["in_use"].is_u64(), "{first}");
    let state_file = server.dir().state_file();
    assert_eq!(first["state_file"], state_file.to_str().unwrap());
    assert!(
        first["memory_rss_bytes"].as_u64().is_some_and(|m| m > 0),
        "{first}"
    );
    assert_rfc3339_utc(&first["timestamp"]);

    let second = server.get("/api/v1/system/overview").json();
    let count = |v: &Value| v["requests_total"].as_u64().unwrap();
    assert!(count(&second) > count(&first), "{first}\n{second}");
}
