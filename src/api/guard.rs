//! The checks a request passes before an endpoint sees it: the `Host` it
//! names (DNS rebinding), whether a web page sent it, and the token, with
//! the throttle on failed token checks.
//!
//! Order, for every request: 421 for a foreign `Host` (before routing, reads
//! included), then 404 and 405 (routing), then for a mutating request 403
//! when a web page sent it, 403 when a caller of this host could not be
//! identified, 429 when its peer is blocked, 401 for a missing or wrong
//! token. A page never reaches the token check, so it can neither
//! guess the token nor get a local peer blocked; and since dynport sends no
//! CORS headers, it cannot read any answer at all.

use super::{Api, App};
use crate::api::error::ApiError;
use crate::api::throttle::{Note, PeerKey};
use crate::app::metrics::{Denial, Metrics};
use crate::http::Request;
use crate::ports::principal::Principal;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::MutexGuard;
use std::time::Instant;

/// What a request from a web page is told.
pub const FROM_WEB_PAGE: &str = "requests from web pages may not change dynport";

/// Refuses a request whose `Host` names anything but an IP address,
/// `localhost` or an allowed name. A request without `Host` (HTTP/1.0)
/// passes: no browser sends one.
pub fn host(req: &Request, allowed: &[String]) -> Result<(), ApiError> {
    let hosts = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"));
    match hosts.map(|(_, v)| v).find(|v| !host_allowed(v, allowed)) {
        Some(foreign) => Err(ApiError::MisdirectedHost(foreign.clone())),
        None => Ok(()),
    }
}

/// Whether a `Host` value is `IPv4[:port]`, `[IPv6][:port]`, `localhost[:port]`
/// (any case) or one of `allowed` (lower-case) with or without a port.
pub fn host_allowed(value: &str, allowed: &[String]) -> bool {
    let Some((name, port)) = split_port(value.trim()) else {
        return false;
    };
    if port.is_some_and(|p| !is_port(p)) {
        return false;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok();
    }
    name.parse::<Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `name` and the port after its colon, if any; `None` for an IPv6 address
/// without brackets, which no client sends.
fn split_port(value: &str) -> Option<(&str, Option<&str>)> {
    if value.starts_with('[') {
        let end = value.find(']')? + 1;
        let (name, rest) = value.split_at(end);
        return match rest {
            "" => Some((name, None)),
            _ => Some((name, Some(rest.strip_prefix(':')?))),
        };
    }
    match value.split_once(':') {
        Some((name, port)) if !port.contains(':') => Some((name, Some(port))),
        Some(_) => None,
        None => Some((value, None)),
    }
}

/// Digits only (`u16::from_str` would take `+80`), 0 to 65535.
fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// Refuses a mutating request that a browser sent: it carries `Origin`
/// (any value, `null` too), or a `Sec-Fetch-Site` other than `none` (which
/// a browser sends only for what its user typed or bookmarked).
pub fn browser(req: &Request) -> Result<(), ApiError> {
    let from_page = req.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("origin")
            || (k.eq_ignore_ascii_case("sec-fetch-site") && !v.trim().eq_ignore_ascii_case("none"))
    });
    if !from_page {
        return Ok(());
    }
    // Any page can make a browser send these: debug, not warn, so that a
    // page cannot flood the log.
    log::debug!(
        "refused {} {} from a web page (Origin: {}, Sec-Fetch-Site: {})",
        req.method,
        req.path,
        req.header("origin").unwrap_or("-"),
        req.header("sec-fetch-site").unwrap_or("-")
    );
    Err(ApiError::Forbidden(FROM_WEB_PAGE.to_string()))
}

/// Refuses a change from a caller of this host whose socket could not vouch
/// for a user (it closed, reset or changed before it was identified):
/// such a caller is never taken for root or for a remote caller, and gets
/// no token check, so it can neither guess the token nor get anyone else
/// throttled.
pub fn identified(app: &App, req: &Request) -> Result<(), ApiError> {
    if super::principal(&req.peer) != Principal::Unidentified {
        return Ok(());
    }
    app.metrics.deny(Denial::Unidentified);
    let socket = match &app.facts.unix_socket {
        Some(path) => format!("connect over the Unix socket {}", path.display()),
        None => "connect over dynport's Unix socket (this server runs with --unix-socket none)"
            .to_string(),
    };
    log::debug!(
        "refused {} {} from an unidentified caller",
        req.method.escape_debug(),
        req.path.escape_debug()
    );
    Err(ApiError::Forbidden(format!(
        "could not tell who is asking: the client's socket closed or changed before it \
         was identified; {socket}"
    )))
}

/// Checks the bearer token, when one is configured, through the throttle:
/// a blocked peer gets 429 whatever its token, a failure is counted and
/// logged.
pub fn token(app: &Api, req: &Request) -> Result<(), ApiError> {
    let Some(token) = &app.facts.token else {
        return Ok(());
    };
    let key = PeerKey::of(&req.peer);
    let now = Instant::now();
    if let Err(blocked) = throttle(app).check(key, now) {
        if let Some(note) = blocked.note {
            log_note(key, req, &note);
        }
        return Err(ApiError::TooManyRequests {
            retry_after: blocked.retry_after,
        });
    }
    if constant_time_eq(given(req).as_bytes(), token.as_bytes()) {
        return Ok(());
    }
    Metrics::add(&app.metrics.auth_failures, 1);
    if let Some(note) = throttle(app).fail(key, now) {
        log_note(key, req, &note);
    }
    Err(ApiError::Unauthorized)
}

// The throttle holds counts only: after a panic elsewhere they are still
// counts, so a poisoned lock is taken over.
fn throttle(app: &Api) -> MutexGuard<'_, crate::api::throttle::AuthThrottle> {
    app.auth_throttle.lock().unwrap_or_else(|p| p.into_inner())
}

/// The token of an `Authorization: Bearer …` header, or "".
fn given(req: &Request) -> &str {
    req.header("authorization")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim())
}

fn log_note(key: PeerKey, req: &Request, note: &Note) {
    let quiet = match note.suppressed {
        0 => String::new(),
        n => format!("; {n} more since the last line"),
    };
    match note.blocked_secs {
        Some(secs) => log::warn!(
            "failed token checks: {key} is refused with 429 for {secs} s more, after {} \
             failures within a minute{quiet}",
            note.failures
        ),
        None => log::warn!(
            "failed token check: {} {} from {key}, {} within a minute{quiet}",
            req.method,
            req.path,
            note.failures
        ),
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
