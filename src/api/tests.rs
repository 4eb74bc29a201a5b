//! The router, exercised without sockets.
use super::*;
use crate::app::{Facts, Serving, Start};
use crate::ports::{PortRange, PortTable};
use crate::scan::{Method, Scanner};
use crate::state::Store;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Records the listeners the router hands over instead of serving them.
#[derive(Default)]
struct FakeServing {
    listeners: Mutex<Vec<u16>>,
}

impl Serving for std::sync::Arc<FakeServing> {
    fn replace_listener(&self, listener: TcpListener) -> std::io::Result<()> {
        let port = listener.local_addr()?.port();
        self.listeners.lock().unwrap().push(port);
        Ok(())
    }
    fn stats(&self) -> crate::http::Stats {
        crate::http::Stats {
            requests_total: 7,
            ..Default::default()
        }
    }
}

struct Fixture {
    app: App,
    serving: std::sync::Arc<FakeServing>,
    dir: PathBuf,
    range: PortRange,
    _held: Vec<TcpListener>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An app over a window of free loopback ports: the first is the
/// server's, the second is held by another listener, the rest are free.
fn fixture(name: &str, token: Option<&str>) -> Fixture {
    let dir = std::env::temp_dir().join(format!("dynport-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (range, held) = free_window(6);
    let mut table = PortTable::new(range);
    table.apply_scan(&[range.start + 1], "2026-11-25T19:00:00Z");
    table.set_server_port(Some(range.start), "2026-11-25T19:00:00Z");
    let serving = std::sync::Arc::new(FakeServing::default());
    let facts = Facts {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        workers: 4,
        refresh_secs: 60,
        lease_ttl: std::time::Duration::from_secs(300),
        token: token.map(str::to_string),
        pid: 42,
        started: Instant::now(),
    };
    let start = Start {
        table,
        last_scan: None,
        started_at: "2026-11-25T19:00:00Z".to_string(),
    };
    let app = App::new(
        facts,
        Store::new(&dir),
        Scanner::with_method(Method::Probe),
        Box::new(std::sync::Arc::clone(&serving)),
        start,
    );
    app.save_now().unwrap();
    Fixture {
        app,
        serving,
        dir,
        range,
        _held: held,
    }
}

/// A window of `n` consecutive loopback ports, all free but the second,
/// which the returned listener holds.
fn free_window(n: u16) -> (PortRange, Vec<TcpListener>) {
    let seed = u16::try_from(std::process::id() % 2000).unwrap();
    for attempt in 0..200u16 {
        let start = 20000 + (seed * 7 + attempt * 37) % 12000;
        let range = PortRange::new(start, start + n - 1).unwrap();
        let free = range
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if let (true, Ok(held)) = (free, TcpListener::bind(("127.0.0.1", start + 1))) {
            return (range, vec![held]);
        }
    }
    panic!("no free window of {n} ports");
}

fn call(
    app: &App,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let res = handle(
        app,
        &Request::fake(method, target, headers, body.as_bytes()),
    );
    let value = serde_json::from_slice(&res.body).unwrap();
    (res.status, value)
}

#[test]
fn server_port_reports_counts_that_add_up() {
    let f = fixture("counts", None);
    let (status, body) = call(&f.app, "GET", "/api/v1/server/port", &[], "");
    assert_eq!(status, 200);
    assert_eq!(body["current_port"], f.range.start);
    assert_eq!(body["server_port"], f.range.start);
    assert_eq!(body["port_manager_status"], "active");
    assert_eq!(
        body["port_range"],
        json!({"start": f.range.start, "end": f.range.end})
    );
    assert_eq!(body["available_ports"], 4);
    assert_eq!(body["used_ports"], 2);
    assert_eq!(body["port_state"]["in_use"], 1);
    assert_eq!(body["port_state"]["server"], 1);
    assert_eq!(body["port_state"]["leased"], 0);
}

#[test]
fn one_port_state_and_range_check() {
    let f = fixture("oneport", None);
    let busy = format!("/api/v1/tools/port/state?port={}", f.range.start + 1);
    let (status, body) = call(&f.app, "GET", &busy, &[], "");
    assert_eq!((status, body["state"].clone()), (200, json!("in_use")));
    let free = format!("/api/v1/tools/port/state?port={}", f.range.start + 3);
    assert_eq!(call(&f.app, "GET", &free, &[], "").1["state"], "free");
    let (status, body) = call(&f.app, "GET", "/api/v1/tools/port/state?port=1", &[], "");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("port: 1 is outside"),
        "{body}"
    );
    let (status, _) = call(&f.app, "GET", "/api/v1/tools/port/state?port=abc", &[], "");
    assert_eq!(status, 400);
    let (status, body) = call(&f.app, "GET", "/api/v1/tools/port/state", &[], "");
    assert_eq!(status, 200);
    assert_eq!(body["counts"]["free"], 4);
    assert_eq!(
        body["ports"][(f.range.start + 1).to_string()]["state"],
        "in_use"
    );
}

#[test]
fn change_without_body_moves_to_next_free_port() {
    let f = fixture("next", None);
    let (status, body) = call(&f.app, "POST", "/api/v1/server/port/change", &[], "");
    let (old, new) = (f.range.start, f.range.start + 2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], format!("Port changed from {old} to {new}"));
    assert_eq!(
        (body["old_port"].clone(), body["new_port"].clone()),
        (json!(old), json!(new))
    );
    assert_eq!(*f.serving.listeners.lock().unwrap(), vec![new]);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(f.app.store().path()).unwrap()).unwrap();
    assert_eq!(saved["server_port"], new);
    assert_eq!(saved["last_server_port"], new);
    assert_eq!(saved["ports"][new.to_string()]["state"], "server");
    assert!(saved["ports"].get(old.to_string()).is_none());
}

#[test]
fn change_errors_leave_everything_as_it_was() {
    let f = fixture("errors", None);
    let before = std::fs::read(f.app.store().path()).unwrap();
    let cases = [
        (
            format!("{{\"port\": {}}}", f.range.start + 1),
            409,
            "is not free",
        ),
        (
            format!("{{\"port\": {}}}", f.range.start),
            409,
            "already the server's port",
        ),
        (format!("{{\"port\": {}}}", f.range.end + 1), 400, "port: "),
        (
            "{\"port\": \"x\"}".to_string(),
            400,
            "port: must be an integer",
        ),
        (
            "{\"port\": 70000}".to_string(),
            400,
            "port: must be an integer",
        ),
        ("{\"prot\": 1}".to_string(), 400, "prot: unknown field"),
        ("not json".to_string(), 400, "body: not valid JSON"),
        ("[1]".to_string(), 400, "body: must be a JSON object"),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = call(&f.app, "POST", "/api/v1/server/port/change", &[], &body);
        assert_eq!(got, status, "{body} -> {answer}");
        assert_eq!(answer["status"], "error");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(needle), "{body} -> {message}");
    }
    assert!(f.serving.listeners.lock().unwrap().is_empty());
    assert_eq!(std::fs::read(f.app.store().path()).unwrap(), before);
}

#[test]
fn token_guards_mutations_only() {
    let f = fixture("token", Some("s3cret"));
    let res = handle(
        &f.app,
        &Request::fake("POST", "/api/v1/server/port/change", &[], b""),
    );
    assert_eq!(res.status, 401);
    assert!(
        res.headers
            .contains(&("WWW-Authenticate", "Bearer".to_string()))
    );
    let wrong = [("Authorization", "Bearer s3cre")];
    let (status, _) = call(&f.app, "POST", "/api/v1/server/port/change", &wrong, "");
    assert_eq!(status, 401);
    let right = [("Authorization", "Bearer s3cret")];
    let (status, _) = call(&f.app, "POST", "/api/v1/server/port/change", &right, "");
    assert_eq!(status, 200);
    assert_eq!(call(&f.app, "GET", "/api/v1/server/port", &[], "").0, 200);
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let f = fixture("routes", None);
    let (status, body) = call(&f.app, "GET", "/nope", &[], "");
    assert_eq!(
        (status, body["error"].clone()),
        (404, json!("no such endpoint: /nope"))
    );
    let res = handle(
        &f.app,
        &Request::fake("GET", "/api/v1/server/port/change", &[], b""),
    );
    assert_eq!(res.status, 405);
    assert!(res.headers.contains(&("Allow", "POST".to_string())));
    let res = handle(&f.app, &Request::fake("DELETE", "/healthz", &[], b""));
    assert_eq!(res.status, 405);
    assert!(res.headers.contains(&("Allow", "GET, HEAD".to_string())));
    assert_eq!(call(&f.app, "HEAD", "/healthz", &[], "").0, 200);
}

#[test]
fn overview_names_everything() {
    let f = fixture("overview", None);
    let (status, body) = call(&f.app, "GET", "/api/v1/system/overview", &[], "");
    assert_eq!(status, 200);
    assert_eq!(body["name"], "dynport");
    assert_eq!(body["pid"], 42);
    assert_eq!(body["requests_total"], 7);
    assert_eq!(body["workers"], 4);
    assert_eq!(body["port_manager"]["refresh_secs"], 60);
    assert_eq!(body["port_manager"]["scan_method"], "probe");
    assert_eq!(
        body["state_file"],
        f.app.store().path().display().to_string()
    );
    assert!(body["memory_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn constant_time_eq_compares_exactly() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(!constant_time_eq(b"", b"a"));
}
