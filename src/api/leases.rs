//! The lease endpoints: grant, list, look up, renew and release.

use super::{ApiError, App, body_object, int_field, json};
use crate::app::Done;
use crate::http::Response;
use crate::lease::{DEFAULT_POOL, Lease, LeaseRequest, MAX_COUNT, MAX_OWNER_CHARS, MAX_TTL_SECS};
use crate::metrics::Denial;
use crate::process::is_alive;
use crate::time::{now_rfc3339, rfc3339};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// A lease as the API shows it.
#[derive(Serialize)]
pub struct LeaseView<'a> {
    id: &'a str,
    ports: &'a [u16],
    pool: &'a str,
    owner: Option<&'a str>,
    pid: Option<u32>,
    created_at: String,
    expires_at: String,
    ttl_secs: u64,
}

impl<'a> From<&'a Lease> for LeaseView<'a> {
    fn from(l: &'a Lease) -> LeaseView<'a> {
        LeaseView {
            id: &l.id,
            ports: &l.ports,
            pool: &l.pool,
            owner: l.owner.as_deref(),
            pid: l.pid,
            created_at: rfc3339(l.created_at),
            expires_at: rfc3339(l.expires_at),
            ttl_secs: l.ttl_secs,
        }
    }
}

#[derive(Serialize)]
struct Granted<'a> {
    status: &'static str,
    lease: LeaseView<'a>,
    timestamp: String,
}

pub fn grant(app: &App, body: &[u8]) -> Result<Response, ApiError> {
    let req = parse_request(app, body).inspect_err(|_| app.metrics.deny(Denial::BadRequest))?;
    Ok(answer_later(
        |done| app.grant(&req, done),
        |lease| json(201, &success(lease)),
    ))
}

/// Starts a change whose answer comes once it is durable: the worker is
/// free meanwhile, and `ok` makes the answer from the lease.
fn answer_later(
    start: impl FnOnce(Done<Lease>),
    ok: impl FnOnce(&Lease) -> Response + Send + 'static,
) -> Response {
    let (later, completion) = crate::http::later();
    start(Box::new(move |outcome| {
        completion.complete(match outcome {
            Ok(lease) => ok(&lease),
            Err(e) => e.into_response(),
        });
    }));
    Response::later(later)
}

fn success(lease: &Lease) -> Granted<'_> {
    Granted {
        status: "success",
        lease: lease.into(),
        timestamp: now_rfc3339(),
    }
}

/// Reads and checks a lease request body; every field is optional.
fn parse_request(app: &App, body: &[u8]) -> Result<LeaseRequest, ApiError> {
    let allowed = ["count", "port", "pool", "ttl_secs", "owner", "pid"];
    let fields = body_object(body, &allowed)?;
    let port = int_field(&fields, "port", 1, 65535)?.map(|p| p as u16);
    let count = int_field(&fields, "count", 1, MAX_COUNT as u64)?;
    if port.is_some() && count.is_some_and(|c| c != 1) {
        return Err(ApiError::BadRequest(
            "count: must be 1 when port asks for one exact port".to_string(),
        ));
    }
    let ttl = int_field(&fields, "ttl_secs", 1, MAX_TTL_SECS)?
        .map_or(app.facts.lease_ttl, Duration::from_secs);
    let pid = int_field(&fields, "pid", 1, u64::from(u32::MAX))?.map(|p| p as u32);
    let pid_start = match pid {
        Some(pid) => Some(
            crate::process::start_time(pid)
                .ok_or_else(|| ApiError::BadRequest(format!("pid: no process {pid} is running")))?,
        ),
        None => None,
    };
    Ok(LeaseRequest {
        count: count.map_or(1, |c| c as usize),
        port,
        pool: text_field(&fields, "pool", 64)?.unwrap_or_else(|| DEFAULT_POOL.to_string()),
        ttl,
        owner: text_field(&fields, "owner", MAX_OWNER_CHARS)?,
        pid,
        pid_start,
    })
}

/// An optional string field of at most `max` characters.
fn text_field(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match fields.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.chars().count() <= max => {
            Ok(Some(s.clone()))
        }
        Some(v) => Err(ApiError::BadRequest(format!(
            "{name}: must be a string of 1 to {max} characters, got {v}"
        ))),
    }
}

#[derive(Serialize)]
struct List<'a> {
    leases: Vec<LeaseView<'a>>,
    timestamp: String,
}

pub fn list(app: &App) -> Response {
    let view = app.view();
    let now = SystemTime::now();
    let leases = view
        .state
        .leases
        .values()
        .filter(|l| l.is_live(now, &is_alive))
        .map(LeaseView::from)
        .collect();
    json(
        200,
        &List {
            leases,
            timestamp: now_rfc3339(),
        },
    )
}

pub fn one(app: &App, id: &str) -> Result<Response, ApiError> {
    let view = app.view();
    let lease = view
        .state
        .leases
        .get(id)
        .filter(|l| l.is_live(SystemTime::now(), &is_alive))
        .ok_or_else(|| ApiError::NotFound(format!("no live lease {id}")))?;
    Ok(json(200, &success(lease)))
}

pub fn renew(app: &App, id: &str, body: &[u8]) -> Result<Response, ApiError> {
    let fields = body_object(body, &["ttl_secs"])?;
    let ttl = int_field(&fields, "ttl_secs", 1, MAX_TTL_SECS)?.map(Duration::from_secs);
    Ok(answer_later(
        |done| app.renew(id, ttl, done),
        |lease| json(200, &success(lease)),
    ))
}

#[derive(Serialize)]
struct Released<'a> {
    status: &'static str,
    released: &'a [u16],
    lease: LeaseView<'a>,
    timestamp: String,
}

pub fn release(app: &App, id: &str) -> Result<Response, ApiError> {
    Ok(answer_later(
        |done| app.release(id, done),
        |lease| {
            let released = Released {
                status: "success",
                released: &lease.ports,
                lease: lease.into(),
                timestamp: now_rfc3339(),
            };
            json(200, &released)
        },
    ))
}
