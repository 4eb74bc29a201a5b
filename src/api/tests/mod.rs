//! The router, exercised without sockets.
use super::*;
use crate::app::{Facts, Serving, Start};
use crate::http::{Peer, PeerAddr};
use crate::ports::principal::Rules;
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
pub(super) struct FakeServing {
    pub listeners: Mutex<Vec<u16>>,
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

/// The uid the app under test runs as: an operator of its host.
pub(super) const OPERATOR: u32 = 990;

pub(super) struct Fixture {
    pub app: super::Api,
    pub serving: std::sync::Arc<FakeServing>,
    dir: PathBuf,
    pub range: PortRange,
    _held: Vec<TcpListener>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An app over a window of free loopback ports: the first is the
/// server's, the second is held by another listener, the rest are free.
pub(super) fn fixture(name: &str, token: Option<&str>) -> Fixture {
    fixture_allowing(name, token, &[])
}

/// A fixture whose `Host` may also be one of `allow_hosts` (`--allow-host`).
pub(super) fn fixture_allowing(name: &str, token: Option<&str>, allow_hosts: &[&str]) -> Fixture {
    let dir = std::env::temp_dir().join(format!("dynport-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (range, held) = free_window(6);
    let mut table = PortTable::new(range, &[], "2026-11-25T19:00:00Z");
    table.set_name_retention(std::time::Duration::from_secs(7 * 86_400));
    table.apply_scan(
        &crate::ports::tcp_only(&[range.start + 1]),
        "2026-11-25T19:00:00Z",
    );
    table
        .set_server_port(range.start, "2026-11-25T19:00:00Z")
        .unwrap();
    let serving = std::sync::Arc::new(FakeServing::default());
    let facts = Facts {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        workers: 4,
        refresh_secs: 60,
        lease_ttl: std::time::Duration::from_secs(300),
        token: token.map(str::to_string),
        rules: Rules {
            server_uid: OPERATOR,
            max_ports_per_uid: Some(3),
            max_names_per_uid: 2,
            token_set: token.is_some(),
        },
        allow_hosts: allow_hosts.iter().map(|h| h.to_string()).collect(),
        unix_socket: Some("state/dynport.sock".into()),
        pid: 42,
        started: Instant::now(),
        pid_watches: 1024,
        routes: crate::config::RouteSettings {
            domains: vec!["localhost".to_string()],
            port: None,
        },
    };
    let start = Start {
        table,
        last_scan: None,
        started_at: "2026-11-25T19:00:00Z".to_string(),
    };
    let app = App::new(
        facts,
        Store::open(&dir).unwrap(),
        Scanner::with_method(Method::Probe),
        Box::new(std::sync::Arc::clone(&serving)),
        start,
    );
    app.save_now().unwrap();
    Fixture {
        app: super::Api::new(std::sync::Arc::new(app)),
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

/// The router's answer, waiting for one that comes later.
pub(super) fn answer(app: &super::Api, req: &Request) -> Response {
    handle(app, req).resolve()
}

/// A request from this host's uid `uid`, over TCP from loopback; without
/// a uid, from a remote caller (another host).
pub(super) fn from_uid(uid: Option<u32>) -> Peer {
    match uid {
        Some(_) => Peer {
            addr: PeerAddr::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            uid,
            pid: None,
            local: true,
        },
        None => Peer {
            addr: PeerAddr::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            uid: None,
            pid: None,
            local: false,
        },
    }
}

/// A caller of this host whose socket could not vouch for a user.
pub(super) fn unidentified() -> Peer {
    Peer {
        addr: PeerAddr::Ip(IpAddr::V4(Ipv4Addr::new(127, 9, 9, 9))),
        uid: None,
        pid: None,
        local: true,
    }
}

/// Calls as the server's own uid, an operator.
fn call(
    app: &super::Api,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    call_as(app, from_uid(Some(OPERATOR)), method, target, headers, body)
}

pub(super) fn call_as(
    app: &super::Api,
    peer: Peer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let req = Request::fake(method, target, headers, body.as_bytes()).from_peer(peer);
    let res = answer(app, &req);
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
    let stamp = body["timestamp"].as_str().unwrap();
    assert!(crate::util::time::parse_rfc3339(stamp).is_some(), "{stamp}");
    assert_eq!(body.as_object().unwrap().len(), 9, "{body}");
}

#[test]
fn one_port_shows_the_protocols_the_whole_table_shows() {
    let f = fixture("oneport-protocols", None);
    // A port of the window held in UDP alone, found by the next scan.
    let (udp, _socket) = (f.range.start + 2..=f.range.end)
        .find_map(|p| Some((p, std::net::UdpSocket::bind(("127.0.0.1", p)).ok()?)))
        .expect("a port of the window free in UDP");
    f.app.refresh().unwrap();
    let (_, whole) = call(&f.app, "GET", "/api/v1/tools/port/state", &[], "");
    for port in f.range.iter() {
        let target = format!("/api/v1/tools/port/state?port={port}");
        let (status, one) = call(&f.app, "GET", &target, &[], "");
        assert_eq!(status, 200, "{one}");
        let listed = &whole["ports"][port.to_string()]["protocols"];
        assert_eq!(
            &one["protocols"], listed,
            "port {port}: {one} against {whole}"
        );
        let shown = one.as_object().unwrap().contains_key("protocols");
        assert_eq!(shown, !listed.is_null(), "port {port}: {one}");
    }
    let held = format!("/api/v1/tools/port/state?port={}", f.range.start + 1);
    assert_eq!(
        call(&f.app, "GET", &held, &[], "").1["protocols"],
        json!(["tcp"])
    );
    let held = format!("/api/v1/tools/port/state?port={udp}");
    let (_, body) = call(&f.app, "GET", &held, &[], "");
    assert_eq!(
        (&body["state"], &body["protocols"]),
        (&json!("in_use"), &json!(["udp"]))
    );
    let server = format!("/api/v1/tools/port/state?port={}", f.range.start);
    assert_eq!(
        call(&f.app, "GET", &server, &[], "").1.get("protocols"),
        None
    );
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
            "port: invalid type: string \"x\", expected u16",
        ),
        (
            "{\"port\": 70000}".to_string(),
            400,
            "port: invalid value: integer `70000`, expected u16",
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
    let res = answer(
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
    let lower = [("Authorization", "bearer  s3cret")];
    assert_eq!(
        call(&f.app, "POST", "/api/v1/ports/lease", &lower, "").0,
        201
    );
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
    let res = answer(
        &f.app,
        &Request::fake("GET", "/api/v1/server/port/change", &[], b""),
    );
    assert_eq!(res.status, 405);
    assert!(res.headers.contains(&("Allow", "POST".to_string())));
    let res = answer(&f.app, &Request::fake("DELETE", "/healthz", &[], b""));
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
    let range = serde_json::json!({"start": f.range.start, "end": f.range.end});
    assert_eq!(
        body["port_manager"]["pools"],
        serde_json::json!({"default": range})
    );
    assert_eq!(body["port_manager"]["max_ports_per_uid"], 3);
    assert_eq!(
        body["state_file"],
        f.app.store().path().display().to_string()
    );
    assert!(body["memory_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn constant_time_eq_compares_exactly() {
    assert!(guard::constant_time_eq(b"abc", b"abc"));
    assert!(!guard::constant_time_eq(b"abc", b"abd"));
    assert!(!guard::constant_time_eq(b"abc", b"abcd"));
    assert!(!guard::constant_time_eq(b"", b"a"));
}

fn lease_body(f: &Fixture, body: &str) -> (u16, Value) {
    call(&f.app, "POST", "/api/v1/ports/lease", &[], body)
}

#[test]
fn lease_grant_answers_201_and_is_saved_first() {
    let f = fixture("lease", None);
    let body = r#"{"count": 2, "owner": "ci job 17", "ttl_secs": 600}"#;
    let (status, answer) = lease_body(&f, body);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["status"], "success");
    let lease = &answer["lease"];
    let (a, b) = (f.range.start + 2, f.range.start + 3);
    assert_eq!(lease["ports"], json!([a, b]));
    assert_eq!(lease["pool"], "default");
    assert_eq!(lease["owner"], "ci job 17");
    assert_eq!(lease["pid"], Value::Null);
    let created = crate::util::time::parse_rfc3339(lease["created_at"].as_str().unwrap()).unwrap();
    let expires = crate::util::time::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.duration_since(created).unwrap().as_secs(), 600);
    let id = lease["id"].as_str().unwrap();
    let durable = f.app.store().durable().unwrap().unwrap();
    assert_eq!(durable.leases[id].ports, vec![a, b], "in the journal");
    f.app.snapshot().unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(f.app.store().path()).unwrap()).unwrap();
    assert_eq!(saved["ports"][a.to_string()]["state"], "leased");
    assert_eq!(saved["ports"][a.to_string()]["lease_id"], id);
    assert_eq!(saved["leases"][id]["ports"], json!([a, b]));
}

#[test]
fn lease_request_errors_name_the_field() {
    let f = fixture("leasebad", None);
    let cases = [
        (
            r#"{"count": 0}"#,
            400,
            "count: must be an integer from 1 to 64",
        ),
        (
            r#"{"count": 65}"#,
            400,
            "count: must be an integer from 1 to 64",
        ),
        (
            r#"{"port": 3, "count": 2}"#,
            400,
            "count: must be 1 when port",
        ),
        (
            r#"{"ttl_secs": 604801}"#,
            400,
            "ttl_secs: must be an integer from 1 to 604800",
        ),
        (
            r#"{"owner": 5}"#,
            400,
            "owner: invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"pid": 4294967295}"#,
            400,
            "pid: no process 4294967295 is running",
        ),
        (r#"{"colour": 1}"#, 400, "colour: unknown field"),
        (r#"{"pool": "db"}"#, 404, "pool: no pool named db"),
        (
            r#"{"count": 5}"#,
            409,
            "pool default has 4 free ports, 5 asked for",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = lease_body(&f, body);
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    let owner = format!(r#"{{"owner": "{}"}}"#, "x".repeat(129));
    assert_eq!(lease_body(&f, &owner).0, 400);
    let reserved = format!(r#"{{"port": {}}}"#, f.range.start + 1);
    assert_eq!(lease_body(&f, &reserved).0, 409);
    assert_eq!(f.app.summary().counts.leased, 0);
}

#[test]
fn lease_list_renew_and_release() {
    let f = fixture("leaselife", None);
    let port = f.range.start + 4;
    let (_, answer) = lease_body(&f, &format!(r#"{{"port": {port}, "ttl_secs": 5}}"#));
    let id = answer["lease"]["id"].as_str().unwrap().to_string();
    let (status, list) = call(&f.app, "GET", "/api/v1/ports/leases", &[], "");
    assert_eq!(
        (status, list["leases"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let one = format!("/api/v1/ports/leases/{id}");
    assert_eq!(
        call(&f.app, "GET", &one, &[], "").1["lease"]["ports"],
        json!([port])
    );
    let renew = format!("{one}/renew");
    let (status, renewed) = call(&f.app, "POST", &renew, &[], r#"{"ttl_secs": 900}"#);
    assert_eq!(status, 200);
    let created =
        crate::util::time::parse_rfc3339(renewed["lease"]["created_at"].as_str().unwrap());
    let expires =
        crate::util::time::parse_rfc3339(renewed["lease"]["expires_at"].as_str().unwrap());
    assert!(
        expires
            .unwrap()
            .duration_since(created.unwrap())
            .unwrap()
            .as_secs()
            >= 900
    );
    let (status, released) = call(&f.app, "DELETE", &one, &[], "");
    assert_eq!((status, released["released"].clone()), (200, json!([port])));
    assert_eq!(call(&f.app, "GET", &one, &[], "").0, 404);
    assert_eq!(call(&f.app, "DELETE", &one, &[], "").0, 404);
    assert_eq!(call(&f.app, "POST", &renew, &[], "").0, 404);
    assert_eq!(f.app.summary().counts.leased, 0);
}

#[test]
fn token_guards_every_lease_mutation() {
    let f = fixture("leasetoken", Some("s3cret"));
    let auth = [("Authorization", "Bearer s3cret")];
    assert_eq!(lease_body(&f, "").0, 401);
    let (status, answer) = call(&f.app, "POST", "/api/v1/ports/lease", &auth, "");
    assert_eq!(status, 201);
    let one = format!(
        "/api/v1/ports/leases/{}",
        answer["lease"]["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&f.app, "POST", &format!("{one}/renew"), &[], "").0,
        401
    );
    assert_eq!(call(&f.app, "DELETE", &one, &[], "").0, 401);
    assert_eq!(call(&f.app, "GET", &one, &[], "").0, 200);
    assert_eq!(call(&f.app, "DELETE", &one, &auth, "").0, 200);
}

#[test]
fn metrics_use_the_prometheus_text_format() {
    let f = fixture("metrics", None);
    lease_body(&f, r#"{"name": "web"}"#);
    lease_body(&f, r#"{"pool": "nope"}"#);
    let res = answer(&f.app, &Request::fake("GET", "/metrics", &[], b""));
    assert_eq!(res.status, 200);
    assert_eq!(res.content_type, "text/plain; version=0.0.4");
    let text = String::from_utf8(res.body).unwrap();
    for line in [
        "dynport_ports{state=\"leased\"} 1",
        "dynport_ports{state=\"in_use\"} 1",
        "dynport_leases_active 1",
        "dynport_names{state=\"live\"} 1",
        "dynport_names{state=\"retained\"} 0",
        "dynport_lease_grants_total 1",
        "dynport_lease_denials_total{reason=\"unknown_pool\"} 1",
        "# TYPE dynport_scan_duration_seconds gauge",
        "dynport_http_requests_total{class=\"2xx\"} 0",
        "# TYPE dynport_state_writes_total counter",
        "dynport_state_write_failures_total 0",
        "dynport_pool_ports{pool=\"default\",state=\"leased\"} 1",
        "dynport_leased_ports{uid=\"other\"} 0",
        "# TYPE dynport_lease_grant_latency_seconds histogram",
        "dynport_lease_grant_latency_seconds_count 1",
        "dynport_lease_lifetime_seconds_bucket{reason=\"released\",le=\"+Inf\"} 0",
        "dynport_lease_lifetime_seconds_sum{reason=\"expired\"} 0",
        "dynport_leased_ports_peak{window=\"hour\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains(&format!("dynport_server_port {}", f.range.start)));
}

#[test]
fn usage_answers_json_and_refuses_parameters() {
    let f = fixture("usage", None);
    lease_body(&f, r#"{"count": 2}"#);
    lease_body(&f, r#"{"pool": "nope"}"#);
    let (status, body) = call(&f.app, "GET", "/api/v1/system/usage", &[], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pools"]["default"]["leased"], 2);
    assert_eq!(body["leased"], 2);
    assert_eq!(body["grant_latency"]["count"], 1);
    // Summed: the minute may turn between the lease and the read.
    let sum = |key: &str| -> u64 {
        let minutes = body["per_minute"][key].as_array().unwrap();
        assert_eq!(minutes.len(), 60);
        minutes.iter().map(|n| n.as_u64().unwrap()).sum()
    };
    assert_eq!((sum("grants"), sum("denials")), (1, 1));
    assert_eq!(
        body["peak_leased"],
        serde_json::json!({"hour": 2, "day": 2})
    );
    let (status, body) = call(&f.app, "GET", "/api/v1/system/usage?pool=x", &[], "");
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "query: unknown parameter \"pool\"; this endpoint takes none"
    );
}

#[test]
fn lease_paths_resolve_exactly() {
    let f = fixture("leasepaths", None);
    assert_eq!(call(&f.app, "GET", "/api/v1/ports/leases/", &[], "").0, 404);
    assert_eq!(
        call(&f.app, "GET", "/api/v1/ports/leases/a/b", &[], "").0,
        404
    );
    assert_eq!(
        call(&f.app, "GET", "/api/v1/ports/leases/a/renew", &[], "").0,
        405
    );
    let res = answer(
        &f.app,
        &Request::fake("PUT", "/api/v1/ports/leases/a", &[], b""),
    );
    assert_eq!(res.status, 405);
    assert!(
        res.headers
            .contains(&("Allow", "GET, HEAD, DELETE".to_string()))
    );
    assert_eq!(call(&f.app, "GET", "/api/v1/ports/lease", &[], "").0, 405);
}

mod bodies;
mod browsers;
mod lists;
mod names;
mod storage;
