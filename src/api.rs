//! The router: dynport's endpoints as a plain function from a request to a
//! response, testable without sockets.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::ports::{Counts, PortEntry, PortRange};
use crate::state::ScanInfo;
use crate::time::now_rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;

const GET: &str = "GET, HEAD";
const POST: &str = "POST";

/// Answers one request.
pub fn handle(app: &App, req: &Request) -> Response {
    route(app, req).unwrap_or_else(ApiError::into_response)
}

fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let allow = match req.path.as_str() {
        "/healthz"
        | "/api/v1/server/port"
        | "/api/v1/tools/port/state"
        | "/api/v1/system/overview" => GET,
        "/api/v1/server/port/change" => POST,
        _ => return Err(ApiError::NotFound(req.path.clone())),
    };
    let method_ok = match allow {
        GET => req.method == "GET" || req.method == "HEAD",
        _ => req.method == "POST",
    };
    if !method_ok {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    match req.path.as_str() {
        "/healthz" => Ok(json(200, &serde_json::json!({"status": "ok"}))),
        "/api/v1/server/port" => Ok(server_port(app)),
        "/api/v1/tools/port/state" => port_state(app, req.query.as_deref()),
        "/api/v1/system/overview" => Ok(overview(app)),
        _ => change_port(app, req),
    }
}

fn json<T: Serialize>(status: u16, body: &T) -> Response {
    // Serialising plain structs and maps into a Vec cannot fail.
    Response::json(status, serde_json::to_vec(body).unwrap_or_default())
}

#[derive(Serialize)]
struct PortStateSummary<'a> {
    free: usize,
    in_use: usize,
    server: usize,
    leased: usize,
    last_scan: &'a Option<ScanInfo>,
}

#[derive(Serialize)]
struct ServerPort<'a> {
    current_port: Option<u16>,
    port_manager_status: &'static str,
    port_range: PortRange,
    available_ports: usize,
    used_ports: usize,
    port_state: PortStateSummary<'a>,
    server_port: Option<u16>,
    timestamp: String,
}

fn server_port(app: &App) -> Response {
    let view = app.view();
    let c = view.counts;
    json(
        200,
        &ServerPort {
            current_port: view.state.server_port,
            port_manager_status: "active",
            port_range: view.state.port_range,
            available_ports: c.free,
            used_ports: view.state.port_range.len() - c.free,
            port_state: PortStateSummary {
                free: c.free,
                in_use: c.in_use,
                server: c.server,
                leased: c.leased,
                last_scan: &view.state.last_scan,
            },
            server_port: view.state.server_port,
            timestamp: now_rfc3339(),
        },
    )
}

#[derive(Serialize)]
struct TableState<'a> {
    port_range: PortRange,
    counts: Counts,
    ports: &'a BTreeMap<u16, PortEntry>,
    last_scan: &'a Option<ScanInfo>,
    timestamp: String,
}

#[derive(Serialize)]
struct OnePort<'a> {
    port: u16,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a str>,
    timestamp: String,
}

fn port_state(app: &App, query: Option<&str>) -> Result<Response, ApiError> {
    let view = app.view();
    let range = view.state.port_range;
    let Some(port) = query_port(query)? else {
        return Ok(json(
            200,
            &TableState {
                port_range: range,
                counts: view.counts,
                ports: &view.state.ports,
                last_scan: &view.state.last_scan,
                timestamp: now_rfc3339(),
            },
        ));
    };
    if !range.contains(port) {
        return Err(ApiError::BadRequest(format!(
            "port: {port} is outside the managed range {range}"
        )));
    }
    let entry = view.state.ports.get(&port);
    Ok(json(
        200,
        &OnePort {
            port,
            state: entry.map_or("free", |e| e.state.as_str()),
            since: entry.map(|e| e.since.as_str()),
            timestamp: now_rfc3339(),
        },
    ))
}

/// The `port` parameter of a query string, when there is one.
fn query_port(query: Option<&str>) -> Result<Option<u16>, ApiError> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("port="))
    else {
        return Ok(None);
    };
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(ApiError::BadRequest(format!(
            "port: {value:?} is not a port number (1-65535)"
        ))),
    }
}

#[derive(Serialize)]
struct PortManager<'a> {
    status: &'static str,
    port_range: PortRange,
    counts: Counts,
    refresh_secs: u64,
    scan_method: &'static str,
    last_scan: &'a Option<ScanInfo>,
}

#[derive(Serialize)]
struct Overview<'a> {
    name: &'static str,
    version: &'static str,
    pid: u32,
    uptime_secs: u64,
    host: String,
    server_port: Option<u16>,
    workers: usize,
    requests_total: u64,
    port_manager: PortManager<'a>,
    state_file: String,
    memory_rss_bytes: Option<u64>,
    timestamp: String,
}

fn overview(app: &App) -> Response {
    let view = app.view();
    let facts = &app.facts;
    json(
        200,
        &Overview {
            name: "dynport",
            version: env!("CARGO_PKG_VERSION"),
            pid: facts.pid,
            uptime_secs: facts.started.elapsed().as_secs(),
            host: facts.host.to_string(),
            server_port: view.state.server_port,
            workers: facts.workers,
            requests_total: app.http_stats().requests_total,
            port_manager: PortManager {
                status: "active",
                port_range: view.state.port_range,
                counts: view.counts,
                refresh_secs: facts.refresh_secs,
                scan_method: app.scan_method(),
                last_scan: &view.state.last_scan,
            },
            state_file: app.store().path().display().to_string(),
            memory_rss_bytes: crate::process::memory_rss_bytes(),
            timestamp: now_rfc3339(),
        },
    )
}

#[derive(Serialize)]
struct Changed {
    status: &'static str,
    message: String,
    old_port: u16,
    new_port: u16,
    timestamp: String,
}

fn change_port(app: &App, req: &Request) -> Result<Response, ApiError> {
    authorize(app, req)?;
    let requested = change_body(&req.body)?;
    let (old, new) = app.change_port(requested)?;
    Ok(json(
        200,
        &Changed {
            status: "success",
            message: format!("Port changed from {old} to {new}"),
            old_port: old,
            new_port: new,
            timestamp: now_rfc3339(),
        },
    ))
}

/// The optional body of a port change: nothing, or `{"port": N}`.
fn change_body(body: &[u8]) -> Result<Option<u16>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body: not valid JSON: {e}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(ApiError::BadRequest(
            "body: must be a JSON object".to_string(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "port") {
        return Err(ApiError::BadRequest(format!(
            "{unknown}: unknown field (the body takes only \"port\")"
        )));
    }
    match fields.get("port") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(port) if port > 0 => Ok(Some(port)),
            _ => Err(ApiError::BadRequest(format!(
                "port: must be an integer from 1 to 65535, got {v}"
            ))),
        },
    }
}

/// Checks the bearer token, when one is configured, in constant time.
fn authorize(app: &App, req: &Request) -> Result<(), ApiError> {
    let Some(token) = &app.facts.token else {
        return Ok(());
    };
    let given = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
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
}
