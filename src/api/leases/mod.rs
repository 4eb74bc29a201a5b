//! The lease endpoints: grant, list, look up, renew and release.

use super::{ApiError, App, json, query};
use crate::app::metrics::Denial;
use crate::app::{Done, LeaseFilter};
use crate::http::{Reply, Request, Response};
use crate::ports::lease::{DEFAULT_POOL, Lease, LeaseRequest};
use crate::ports::principal::Refusal;
use crate::ports::wire::{self, LeaseAnswer, LeaseBody, ReleasedAnswer, RenewBody, Status};
use crate::sys::process::is_alive;
use crate::util::time::now_rfc3339;
use std::sync::Arc;
use std::time::Duration;

mod list_json;

pub use crate::ports::wire::LeaseView;

pub fn grant(app: &App, request: &Request) -> Result<Reply, ApiError> {
    let who = super::principal(&request.peer);
    let mut req =
        parse_request(app, &request.body).inspect_err(|_| app.metrics.deny(Denial::BadRequest))?;
    req.uid = who.uid();
    if let Some(pid) = req.pid {
        let rules = &app.facts.rules;
        rules
            .may_name_pid(who, pid, crate::sys::process::real_uid(pid))
            .inspect_err(|refusal| {
                app.metrics.deny(match refusal {
                    Refusal::Forbidden(_) => Denial::Forbidden,
                    _ => Denial::BadRequest,
                })
            })?;
    }
    let metrics = Arc::clone(&app.metrics);
    Ok(answer_later(
        |done| {
            app.grant(
                &req,
                Box::new(move |outcome| {
                    if let Err(e) = &outcome {
                        metrics.deny(e.denial());
                    }
                    done(outcome)
                }),
            )
        },
        |lease| json(201, &success(lease)),
    ))
}

/// Starts a change whose answer comes once it is durable: the worker is
/// free meanwhile, and `ok` makes the answer from the lease.
fn answer_later(
    start: impl FnOnce(Done<Lease>),
    ok: impl FnOnce(&Lease) -> Response + Send + 'static,
) -> Reply {
    let (later, completion) = crate::http::later();
    start(Box::new(move |outcome| {
        completion.complete(match outcome {
            Ok(lease) => ok(&lease),
            Err(e) => ApiError::from(e).into_response(),
        });
    }));
    Reply::Later(later)
}

fn success(lease: &Lease) -> LeaseAnswer<LeaseView<'_>> {
    LeaseAnswer {
        status: Status::Success,
        lease: lease.into(),
        timestamp: now_rfc3339(),
    }
}

/// Reads and checks a lease request body into what the lease table is
/// asked for; every field is optional.
fn parse_request(app: &App, body: &[u8]) -> Result<LeaseRequest, ApiError> {
    let body: LeaseBody = wire::parse(body).map_err(ApiError::BadRequest)?;
    let pid_start = match body.pid {
        Some(pid) => Some(
            crate::sys::process::start_time(pid)
                .ok_or_else(|| ApiError::BadRequest(format!("pid: no process {pid} is running")))?,
        ),
        None => None,
    };
    Ok(LeaseRequest {
        count: body.count.map_or(1, |c| c as usize),
        port: body.port,
        pool: body.pool.unwrap_or_else(|| DEFAULT_POOL.to_string()),
        ttl: body
            .ttl_secs
            .map_or(app.facts.lease_ttl, Duration::from_secs),
        owner: body.owner,
        uid: None,
        protocol: body.protocol.unwrap_or_default(),
        pid: body.pid,
        pid_start,
        name: (body.name.as_deref())
            .map(crate::ports::names::parse_name)
            .transpose()
            .map_err(ApiError::BadRequest)?,
    })
}

/// `GET /api/v1/ports/leases`, filtered by `uid`, `pool` and `owner` when
/// given. Reads nothing per lease: see [`App::with_leases`].
pub fn list(app: &App, query: Option<&str>) -> Result<Response, ApiError> {
    let found = query::parse(query, &["uid", "pool", "owner"])?;
    let uid = query::get(&found, "uid")
        .map(|v| match v {
            "remote" => Ok(None),
            _ => v.parse::<u32>().map(Some).map_err(|_| {
                ApiError::BadRequest(format!("uid: {v:?} is not a uid (a number, or remote)"))
            }),
        })
        .transpose()?;
    let filter = LeaseFilter {
        uid,
        pool: query::get(&found, "pool").map(str::to_string),
        owner: query::get(&found, "owner").map(str::to_string),
    };
    let timestamp = now_rfc3339();
    Ok(app.with_leases(&filter, |leases| {
        let mut body = Vec::new();
        list_json::write_list(&mut body, leases, &timestamp);
        Response::json(200, body)
    }))
}

pub fn one(app: &App, id: &str) -> Result<Response, ApiError> {
    let lease = app
        .lease(id)
        .filter(|l| l.is_live(app.lease_now(), &is_alive))
        .ok_or_else(|| ApiError::NotFound(format!("no live lease {id}")))?;
    Ok(json(200, &success(&lease)))
}

pub fn renew(app: &App, id: &str, request: &Request) -> Result<Reply, ApiError> {
    let body: RenewBody = wire::parse(&request.body).map_err(ApiError::BadRequest)?;
    let ttl = body.ttl_secs.map(Duration::from_secs);
    let who = super::principal(&request.peer);
    Ok(answer_later(
        |done| app.renew(id, ttl, who, done),
        |lease| json(200, &success(lease)),
    ))
}

pub fn release(app: &App, id: &str, request: &Request) -> Result<Reply, ApiError> {
    let who = super::principal(&request.peer);
    Ok(answer_later(
        |done| app.release(id, who, done),
        |lease| {
            let released = ReleasedAnswer {
                status: Status::Success,
                released: lease.ports.clone(),
                lease: LeaseView::from(lease),
                timestamp: now_rfc3339(),
            };
            json(200, &released)
        },
    ))
}
