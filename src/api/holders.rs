//! Who holds a port, for `?port=N`: a lookup that shows the caller the
//! processes it may see (an operator every one, a local user their own, a
//! caller that is no local user none), within its budget, and at most
//! one at a time and ten a second for each caller but the operators.

use crate::api::error::ApiError;
use crate::http::Request;
use crate::ports::principal::{Principal, Rules};
use crate::scan::{Lookup, MAX_PER_SECOND, Refused, Scope};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The sockets holding `port` now, as the caller of `req` may see them.
pub fn lookup(app: &super::Api, req: &Request, port: u16) -> Result<Lookup, ApiError> {
    let who = super::principal(&req.peer);
    let rules = &app.facts.rules;
    // Held until the lookup ends: the caller's one at a time.
    let _permit = if rules.is_operator(who) {
        None
    } else {
        let began = app.holder_lookups.begin(who, Instant::now());
        Some(began.map_err(|r| refusal(who, r))?)
    };
    Ok(read(port, scope(rules, who)))
}

/// Whose processes `who` may see holding a socket, as `ss -p` shows them.
fn scope(rules: &Rules, who: Principal) -> Scope {
    if rules.is_operator(who) {
        return Scope::Every;
    }
    who.uid().map_or(Scope::Nothing, Scope::OwnedBy)
}

/// The 429 for a lookup that may not begin now.
fn refusal(who: Principal, refused: Refused) -> ApiError {
    let retry_after = refused.retry_after();
    let why = match refused {
        Refused::Running => format!("{who} has a holder lookup running; one at a time"),
        Refused::TooOften { .. } => format!(
            "{who} began {MAX_PER_SECOND} holder lookups within the last second, \
             the most one caller may"
        ),
        Refused::Crowded => "too many callers are looking up holders at once".to_string(),
    };
    ApiError::Throttled {
        retry_after,
        message: format!("{why}: try again in {retry_after} s"),
    }
}

/// How long one lookup may walk the processes. The unit tests, whose
/// operators walk every process of a host that may be busy, give it long
/// enough that only a walk that never ends is incomplete: they check what
/// a lookup finds, not how fast.
#[cfg(not(test))]
const BUDGET: std::time::Duration = crate::scan::LOOKUP_BUDGET;
#[cfg(test)]
const BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The lookup; when the socket table cannot be read, no holders and
/// `complete: false`, logged once as a warning.
fn read(port: u16, scope: Scope) -> Lookup {
    static WARNED: AtomicBool = AtomicBool::new(false);
    crate::scan::lookup(port, scope, BUDGET).unwrap_or_else(|e| {
        let once = !WARNED.swap(true, Ordering::Relaxed);
        let level = if once {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "who holds port {port}: cannot read the socket table: {e}"
        );
        Lookup {
            holders: Vec::new(),
            complete: false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{OPERATOR, answer, fixture, from_uid};
    use super::*;
    use serde_json::Value;

    /// The held port's state as `uid` asks: status, `Retry-After`, body.
    fn ask(app: &crate::api::Api, uid: Option<u32>, port: u16) -> (u16, Option<String>, Value) {
        let target = format!("/api/v1/tools/port/state?port={port}");
        let req = Request::fake("GET", &target, &[], b"").from_peer(from_uid(uid));
        let res = answer(app, &req);
        let retry = res
            .headers
            .iter()
            .find(|(k, _)| *k == "Retry-After")
            .map(|(_, v)| v.clone());
        (
            res.status,
            retry,
            serde_json::from_slice(&res.body).unwrap(),
        )
    }

    #[test]
    fn operators_see_the_process_and_others_only_the_socket_s_owner() {
        let f = fixture("holders-scope", None);
        let held = f.range.start + 1; // a listener of this test process
        let me = crate::sys::euid();
        let pid = Value::from(std::process::id());
        for (uid, sees) in [(Some(0), true), (Some(OPERATOR), true), (Some(me), true)] {
            let (status, _, body) = ask(&f.app, uid, held);
            assert_eq!((status, &body["complete"]), (200, &Value::Bool(true)));
            assert_eq!(body["holders"][0]["uid"], me, "{body}");
            let expected = if sees { &pid } else { &Value::Null };
            assert_eq!(&body["holders"][0]["pid"], expected, "as {uid:?}: {body}");
        }
        let other = if me == 1000 { 1001 } else { 1000 };
        for uid in [Some(other), None] {
            let (status, _, body) = ask(&f.app, uid, held);
            assert_eq!((status, &body["complete"]), (200, &Value::Bool(true)));
            let first = &body["holders"][0];
            assert_eq!(
                (&first["uid"], &first["pid"], &first["command"]),
                (&Value::from(me), &Value::Null, &Value::Null),
                "as {uid:?}: {body}"
            );
        }
    }

    #[test]
    fn a_second_lookup_while_one_runs_is_429_for_that_caller_only() {
        let f = fixture("holders-running", None);
        let port = f.range.start + 3;
        let running = f
            .app
            .holder_lookups
            .begin(Principal::User(1000), Instant::now())
            .unwrap();
        let (status, retry, body) = ask(&f.app, Some(1000), port);
        assert_eq!((status, retry.as_deref()), (429, Some("1")));
        assert_eq!(
            body["error"],
            "uid 1000 has a holder lookup running; one at a time: try again in 1 s"
        );
        assert_eq!(ask(&f.app, Some(1001), port).0, 200, "another caller");
        assert_eq!(ask(&f.app, Some(0), port).0, 200, "an operator");
        drop(running);
        assert_eq!(ask(&f.app, Some(1000), port).0, 200);
    }

    #[test]
    fn the_eleventh_lookup_within_a_second_is_429_and_operators_have_no_limit() {
        let f = fixture("holders-rate", None);
        let port = f.range.start + 3;
        let t0 = Instant::now();
        for _ in 1..MAX_PER_SECOND {
            drop(f.app.holder_lookups.begin(Principal::Remote, t0).unwrap());
        }
        assert_eq!(ask(&f.app, None, port).0, 200, "the tenth");
        let (status, retry, body) = ask(&f.app, None, port);
        assert_eq!((status, retry.as_deref()), (429, Some("1")));
        assert_eq!(
            body["error"],
            "remote callers began 10 holder lookups within the last second, \
             the most one caller may: try again in 1 s"
        );
        for _ in 0..3 * MAX_PER_SECOND {
            assert_eq!(ask(&f.app, Some(OPERATOR), port).0, 200);
        }
    }

    #[test]
    fn a_port_out_of_range_or_the_whole_table_is_no_lookup() {
        let f = fixture("holders-uncounted", None);
        for _ in 0..3 * MAX_PER_SECOND {
            assert_eq!(ask(&f.app, Some(1000), 1).0, 400);
            let req = Request::fake("GET", "/api/v1/tools/port/state", &[], b"")
                .from_peer(from_uid(Some(1000)));
            assert_eq!(answer(&f.app, &req).status, 200);
        }
        assert_eq!(f.app.holder_lookups.tracked(), 0);
    }
}
