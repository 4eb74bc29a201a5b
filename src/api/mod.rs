//! The router: dynport's endpoints as a plain function from a request to a
//! response, testable without sockets.

use crate::api::error::ApiError;
use crate::api::throttle::AuthThrottle;
use crate::app::App;
use crate::http::{Reply, Request, Response};
use crate::ports::principal::Principal;
use crate::ports::wire::ChangePortBody;
use crate::ports::{Counts, PortEntry, PortRange, PortState};
use crate::scan::LookupLimit;
use crate::state::ScanInfo;
use crate::util::time::now_rfc3339;
use serde::Serialize;
use std::sync::{Arc, Mutex};

pub mod error;
mod events;
mod guard;
mod holders;
mod leases;
mod metrics;
mod names;
mod query;
pub mod routing;
pub(crate) mod throttle;

pub use names::name_url;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;

const GET: &str = "GET, HEAD";
const POST: &str = "POST";
const GET_DELETE: &str = "GET, HEAD, DELETE";
const PUT_DELETE: &str = "PUT, DELETE";

/// Every endpoint, by path.
enum Route<'a> {
    Health,
    ServerPort,
    ChangePort,
    PortState,
    Overview,
    Metrics,
    Lease,
    Leases,
    OneLease(&'a str),
    Renew(&'a str),
    Names,
    OneName(&'a str),
    Events,
}

impl Route<'_> {
    fn resolve(path: &str) -> Option<Route<'_>> {
        let route = match path {
            "/healthz" => Route::Health,
            "/api/v1/server/port" => Route::ServerPort,
            "/api/v1/server/port/change" => Route::ChangePort,
            "/api/v1/tools/port/state" => Route::PortState,
            "/api/v1/system/overview" => Route::Overview,
            "/metrics" => Route::Metrics,
            "/api/v1/ports/lease" => Route::Lease,
            "/api/v1/ports/leases" => Route::Leases,
            "/api/v1/names" => Route::Names,
            "/api/v1/events" => Route::Events,
            _ if path.starts_with("/api/v1/names/") => {
                let name = &path["/api/v1/names/".len()..];
                if name.is_empty() || name.contains('/') {
                    return None;
                }
                Route::OneName(name)
            }
            _ => {
                let rest = path.strip_prefix("/api/v1/ports/leases/")?;
                match rest.split_once('/') {
                    None if !rest.is_empty() => Route::OneLease(rest),
                    Some((id, "renew")) if !id.is_empty() => Route::Renew(id),
                    _ => return None,
                }
            }
        };
        Some(route)
    }

    /// The methods this route answers, as the `Allow` header lists them.
    fn allow(&self) -> &'static str {
        match self {
            Route::ChangePort | Route::Lease | Route::Renew(_) => POST,
            Route::OneLease(_) => GET_DELETE,
            Route::OneName(_) => PUT_DELETE,
            _ => GET,
        }
    }
}

/// The API: dynport's state as its callers reach it, with what the edge
/// keeps of them. It derefs to the [`App`] it serves.
pub struct Api {
    app: Arc<App>,
    /// Failed token checks by peer, for the 429 and the log's rate limit.
    pub auth_throttle: Mutex<AuthThrottle>,
    /// Holder lookups by caller, for their share (one at a time, ten a
    /// second).
    pub holder_lookups: LookupLimit<Principal>,
}

impl Api {
    pub fn new(app: Arc<App>) -> Api {
        Api {
            app,
            auth_throttle: Mutex::default(),
            holder_lookups: LookupLimit::default(),
        }
    }
}

impl std::ops::Deref for Api {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// Who sent a request, from what the engine learned of its peer.
pub(crate) fn principal(peer: &crate::http::Peer) -> Principal {
    Principal::of(peer.uid, peer.local)
}

/// Answers one request.
pub fn handle(app: &Api, req: &Request) -> Reply {
    route(app, req).unwrap_or_else(|e| e.into_response().into())
}

/// The checks run in the order `guard` documents: Host, route, method,
/// then for a change: web page, identity, throttle, token.
fn route(app: &Api, req: &Request) -> Result<Reply, ApiError> {
    guard::host(req, &app.facts.allow_hosts)?;
    let route = Route::resolve(&req.path)
        .ok_or_else(|| ApiError::NotFound(format!("no such endpoint: {}", req.path)))?;
    let allow = route.allow();
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    if !allow.split(", ").any(|m| m == method) {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    if method != "GET" {
        guard::browser(req)?;
        guard::identified(app, req)?;
        guard::token(app, req).inspect_err(|_| {
            if matches!(route, Route::Lease) {
                app.metrics.deny(crate::app::metrics::Denial::Unauthorized);
            }
        })?;
    }
    let now = match route {
        Route::Health => json(200, &serde_json::json!({"status": "ok"})),
        Route::ServerPort => server_port(app),
        Route::ChangePort => change_port(app, req)?,
        Route::PortState => port_state(app, req)?,
        Route::Overview => overview(app),
        Route::Metrics => metrics::render(app),
        Route::Leases => leases::list(app, req.query.as_deref())?,
        Route::OneLease(id) if method == "GET" => leases::one(app, id)?,
        // Changes of leases answer once they are durable.
        Route::Lease => return leases::grant(app, req),
        Route::OneLease(id) => return leases::release(app, id, req),
        Route::Renew(id) => return leases::renew(app, id, req),
        Route::Names => names::list(app),
        Route::OneName(name) if method == "PUT" => return names::put(app, name, req),
        Route::OneName(name) => return names::delete(app, name, req),
        // An answer that goes on while events come.
        Route::Events => return events::stream(app, req),
    };
    Ok(Reply::Now(now))
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
    excluded: usize,
    last_scan: &'a Option<ScanInfo>,
}

#[derive(Serialize)]
struct ServerPort<'a> {
    current_port: Option<u16>,
    port_manager_status: &'static str,
    port_range: PortRange,
    available_ports: usize,
    used_ports: usize,
    excluded_ports: usize,
    port_state: PortStateSummary<'a>,
    server_port: Option<u16>,
}

/// The most asked-for answer: everything but its timestamp is serialised
/// once per change a read follows, not once per request.
fn server_port(app: &App) -> Response {
    let summary = app.summary();
    let head = summary
        .server_port_json
        .get_or_init(|| server_port_head(&summary));
    let mut body = Vec::with_capacity(head.len() + 40);
    body.extend_from_slice(head);
    body.extend_from_slice(b",\"timestamp\":\"");
    body.extend_from_slice(now_rfc3339().as_bytes());
    body.extend_from_slice(b"\"}");
    Response::json(200, body)
}

/// `GET /api/v1/server/port` for `summary` without its closing brace,
/// ready for the timestamp.
fn server_port_head(summary: &crate::app::Summary) -> Vec<u8> {
    let c = summary.counts;
    let mut head = serde_json::to_vec(&ServerPort {
        current_port: summary.server_port,
        port_manager_status: "active",
        port_range: summary.range,
        available_ports: c.free,
        used_ports: c.in_use + c.server + c.leased,
        excluded_ports: c.excluded,
        port_state: PortStateSummary {
            free: c.free,
            in_use: c.in_use,
            server: c.server,
            leased: c.leased,
            excluded: c.excluded,
            last_scan: &summary.last_scan,
        },
        server_port: summary.server_port,
    })
    .unwrap_or_default();
    head.pop();
    head
}

#[derive(Serialize)]
struct TableState<'a> {
    port_range: PortRange,
    counts: Counts,
    ports: PortMap,
    last_scan: &'a Option<ScanInfo>,
    timestamp: String,
}

/// Ports and their entries, in ascending order, written as a JSON object.
struct PortMap(Vec<(u16, PortEntry)>);

impl Serialize for PortMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(port, entry)| (port, entry)))
    }
}

#[derive(Serialize)]
struct OnePort<'a> {
    port: u16,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a str>,
    /// Which protocols hold an `in_use` port, as the whole table shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    protocols: Option<crate::ports::Protocols>,
    /// The sockets holding the port now; absent when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    holders: Option<Vec<crate::scan::Holder>>,
    /// Whether the lookup of their processes ended within its budget.
    complete: bool,
    timestamp: String,
}

/// `GET /api/v1/tools/port/state`: every port that is not free, those in
/// one state with `?state=`, or one port with `?port=N`.
fn port_state(app: &Api, req: &Request) -> Result<Response, ApiError> {
    let found = query::parse(req.query.as_deref(), &["port", "state"])?;
    let state = query::get(&found, "state").map(parse_state).transpose()?;
    let summary = app.summary();
    let range = summary.range;
    let Some(port) = query::get(&found, "port").map(parse_port).transpose()? else {
        return Ok(json(
            200,
            &TableState {
                port_range: range,
                counts: summary.counts,
                ports: PortMap(app.port_entries(state)),
                last_scan: &summary.last_scan,
                timestamp: now_rfc3339(),
            },
        ));
    };
    if state.is_some() {
        return Err(ApiError::BadRequest(
            "state: give port or state, not both".to_string(),
        ));
    }
    if !range.contains(port) {
        return Err(ApiError::BadRequest(format!(
            "port: {port} is outside the managed range {range}"
        )));
    }
    let found = holders::lookup(app, req, port)?;
    let entry = app.port_entry(port);
    Ok(json(
        200,
        &OnePort {
            port,
            state: entry.as_ref().map_or("free", |e| e.state.as_str()),
            since: entry.as_ref().map(|e| &*e.since),
            protocols: entry.as_ref().and_then(|e| e.protocols),
            holders: Some(found.holders).filter(|h| !h.is_empty()),
            complete: found.complete,
            timestamp: now_rfc3339(),
        },
    ))
}

/// The `port` parameter of a query string.
fn parse_port(value: &str) -> Result<u16, ApiError> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(ApiError::BadRequest(format!(
            "port: {value:?} is not a port number (1-65535)"
        ))),
    }
}

/// The `state` parameter: a state a port that is not free can be in.
fn parse_state(value: &str) -> Result<PortState, ApiError> {
    let states = [
        PortState::InUse,
        PortState::Leased,
        PortState::Server,
        PortState::Excluded,
    ];
    states
        .into_iter()
        .find(|s| s.as_str() == value)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state: {value:?} is not in_use, leased, server or excluded"
            ))
        })
}

#[derive(Serialize)]
struct PortManager<'a> {
    status: &'static str,
    port_range: PortRange,
    counts: Counts,
    refresh_secs: u64,
    scan_method: &'static str,
    last_scan: &'a Option<ScanInfo>,
    /// `ip_local_port_range` as read at start; `null` when it could not be.
    kernel_ephemeral_range: Option<PortRange>,
    /// Entries dynport holds in `ip_local_reserved_ports`; `null` without
    /// `--reserve-kernel`.
    kernel_reserved_ports: Option<usize>,
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
    let summary = app.summary();
    let facts = &app.facts;
    json(
        200,
        &Overview {
            name: "dynport",
            version: env!("CARGO_PKG_VERSION"),
            pid: facts.pid,
            uptime_secs: facts.started.elapsed().as_secs(),
            host: facts.host.to_string(),
            server_port: summary.server_port,
            workers: facts.workers,
            requests_total: app.http_stats().requests_total,
            port_manager: PortManager {
                status: "active",
                port_range: summary.range,
                counts: summary.counts,
                refresh_secs: facts.refresh_secs,
                scan_method: app.scan_method(),
                last_scan: &summary.last_scan,
                kernel_ephemeral_range: app.kernel_ports().and_then(|k| k.ephemeral),
                kernel_reserved_ports: app.kernel_reserved_count(),
            },
            state_file: app.store().path().display().to_string(),
            memory_rss_bytes: crate::sys::process::memory_rss_bytes(),
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
    let requested = change_body(&req.body)?;
    let who = principal(&req.peer);
    app.facts.rules.may_change_port(who)?;
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
    let body: ChangePortBody = crate::ports::wire::parse(body).map_err(ApiError::BadRequest)?;
    Ok(body.port)
}
