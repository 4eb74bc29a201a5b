//! `GET /api/v1/events`: the event stream. Server-sent events, each with an
//! id; `Last-Event-ID` (or `?last_event_id=`, for clients that cannot set
//! a header) resumes after the event it names. The hub that keeps and
//! sends them is `crate::app::events`.

use super::{Api, ApiError, query};
use crate::app::events::{Refused, STREAMS_PER_PRINCIPAL};
use crate::http::{Reply, Request, Response};

/// How long a principal at its stream cap is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

pub fn stream(api: &Api, req: &Request) -> Result<Reply, ApiError> {
    let found = query::parse(req.query.as_deref(), &["last_event_id"])?;
    let header = req.header("last-event-id");
    let from_query = query::get(&found, "last_event_id");
    // An empty id is what a browser sends before it saw any.
    let raw = header
        .or(from_query)
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let last = raw.map(parse_id).transpose()?;
    let shown: String = raw.unwrap_or_default().chars().take(64).collect();
    let who = super::principal(&req.peer);
    let operator = api.facts.rules.is_operator(who);
    let (feed, first) = api
        .events
        .open(who, operator, last)
        .map_err(|refused| match refused {
            Refused::TooMany => ApiError::Throttled {
                retry_after: RETRY_AFTER_SECS,
                message: format!(
                    "{who} holds {STREAMS_PER_PRINCIPAL} event streams already, the most one \
                 user may; close one and try again"
                ),
            },
            Refused::UnknownId { last } => ApiError::BadRequest(match last {
                Some(last) => {
                    format!("Last-Event-ID: {shown} was never sent; the last event's id is {last}")
                }
                None => format!("Last-Event-ID: {shown} was never sent; no event was sent yet"),
            }),
        })?;
    let head = Response {
        status: 200,
        headers: vec![
            ("Cache-Control", "no-store".to_string()),
            ("X-Accel-Buffering", "no".to_string()),
        ],
        content_type: "text/event-stream",
        body: first,
    };
    Ok(Reply::Feed { head, feed })
}

/// An event id: decimal digits of a u64, or 400 naming `Last-Event-ID`.
fn parse_id(raw: &str) -> Result<u64, ApiError> {
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<u64>() {
        Ok(id) if digits => Ok(id),
        _ => Err(ApiError::BadRequest(format!(
            "Last-Event-ID: {:?} is not an event id (a decimal number dynport sent)",
            raw.chars().take(64).collect::<String>()
        ))),
    }
}
