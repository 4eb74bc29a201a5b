//! Who may do what, through the router: each principal's 403s and allowed
//! cases, pid ownership, port changes and the quota, without sockets.
use super::tests::{OPERATOR, call_as, fixture, from_uid};
use crate::http::Peer;
use serde_json::Value;

const ALICE: Option<u32> = Some(1000);
const BOB: Option<u32> = Some(1001);
const REMOTE: Option<u32> = None;

fn lease(app: &crate::api::Api, uid: Option<u32>, body: &str) -> (u16, Value) {
    call_as(app, from_uid(uid), "POST", "/api/v1/ports/lease", &[], body)
}

fn lease_id(app: &crate::api::Api, uid: Option<u32>) -> String {
    let (status, body) = lease(app, uid, "{}");
    assert_eq!(status, 201, "{body}");
    body["lease"]["id"].as_str().unwrap().to_string()
}

fn one(app: &crate::api::Api, id: &str) -> Value {
    let (status, body) = call_as(
        app,
        Peer::default(),
        "GET",
        &format!("/api/v1/ports/leases/{id}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{body}");
    body["lease"].clone()
}

#[test]
fn a_lease_records_its_principal() {
    let f = fixture("trust-uid", None);
    let id = lease_id(&f.app, ALICE);
    assert_eq!(one(&f.app, &id)["uid"], 1000);
    let id = lease_id(&f.app, REMOTE);
    assert_eq!(one(&f.app, &id)["uid"], Value::Null);
    f.app.snapshot().unwrap();
    let state = std::fs::read_to_string(f.app.store().path()).unwrap();
    assert!(state.contains("\"uid\": 1000"), "{state}");
}

#[test]
fn another_user_may_neither_renew_nor_release_and_nothing_changes() {
    let f = fixture("trust-other", None);
    let id = lease_id(&f.app, ALICE);
    let before = one(&f.app, &id);
    let renew = format!("/api/v1/ports/leases/{id}/renew");
    let path = format!("/api/v1/ports/leases/{id}");
    let refused = format!("lease {id} belongs to uid 1000");
    for (method, target, body) in [("POST", &renew, r#"{"ttl_secs":5}"#), ("DELETE", &path, "")] {
        for who in [BOB, REMOTE] {
            let (status, answer) = call_as(&f.app, from_uid(who), method, target, &[], body);
            assert_eq!(status, 403, "{method} by {who:?}: {answer}");
            assert_eq!(answer["error"], refused.as_str());
        }
    }
    assert_eq!(one(&f.app, &id), before);
}

#[test]
fn owner_root_and_the_server_uid_may_renew_and_release() {
    let f = fixture("trust-allowed", None);
    for who in [ALICE, Some(0), Some(OPERATOR)] {
        let id = lease_id(&f.app, ALICE);
        let renew = format!("/api/v1/ports/leases/{id}/renew");
        let (status, body) = call_as(
            &f.app,
            from_uid(who),
            "POST",
            &renew,
            &[],
            r#"{"ttl_secs":60}"#,
        );
        assert_eq!(status, 200, "renew by {who:?}: {body}");
        let path = format!("/api/v1/ports/leases/{id}");
        let (status, body) = call_as(&f.app, from_uid(who), "DELETE", &path, &[], "");
        assert_eq!(status, 200, "release by {who:?}: {body}");
    }
}

#[test]
fn remote_leases_belong_to_remote_callers() {
    let f = fixture("trust-remote", None);
    let id = lease_id(&f.app, REMOTE);
    let path = format!("/api/v1/ports/leases/{id}");
    let (status, body) = call_as(&f.app, from_uid(ALICE), "DELETE", &path, &[], "");
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        format!("lease {id} belongs to a remote caller")
    );
    let (status, _) = call_as(&f.app, from_uid(REMOTE), "DELETE", &path, &[], "");
    assert_eq!(status, 200);
}

#[test]
fn a_pid_must_belong_to_the_caller() {
    let f = fixture("trust-pid", None);
    let me = std::process::id();
    let my_uid = crate::sys::process::own_uid();
    let body = format!(r#"{{"pid":{me}}}"#);
    let (status, answer) = lease(&f.app, Some(my_uid), &body);
    assert_eq!(status, 201, "{answer}");
    let stranger = if my_uid == 1000 { 1001 } else { 1000 };
    let (status, answer) = lease(&f.app, Some(stranger), &body);
    assert_eq!(status, 403);
    let expected = format!(
        "pid: process {me} belongs to uid {my_uid}, not to the caller (uid {})",
        stranger
    );
    assert_eq!(answer["error"], expected.as_str());
    let (status, answer) = lease(&f.app, REMOTE, &body);
    assert_eq!(status, 403);
    assert_eq!(
        answer["error"],
        format!("pid: a remote caller may not tie a lease to process {me}")
    );
    let (status, answer) = lease(&f.app, Some(0), r#"{"pid":1}"#);
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("pid: 1 cannot"),
        "{answer}"
    );
    assert_eq!(
        f.app
            .metrics
            .denials(crate::app::metrics::Denial::Forbidden),
        2
    );
}

#[test]
fn port_change_needs_an_operator_or_a_remote_caller_with_the_token() {
    let f = fixture("trust-change", None);
    let change = "/api/v1/server/port/change";
    for who in [ALICE, REMOTE] {
        let (status, body) = call_as(&f.app, from_uid(who), "POST", change, &[], "");
        assert_eq!(status, 403, "{who:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("only uid 0, dynport's own uid 990")
        );
    }
    assert!(f.serving.listeners.lock().unwrap().is_empty());
    let (status, body) = call_as(&f.app, from_uid(Some(OPERATOR)), "POST", change, &[], "");
    assert_eq!(status, 200, "{body}");

    let gated = fixture("trust-change-token", Some("s3cret"));
    let bearer = [("Authorization", "Bearer s3cret")];
    let (status, body) = call_as(&gated.app, from_uid(REMOTE), "POST", change, &bearer, "");
    assert_eq!(status, 200, "{body}");
    let (status, _) = call_as(&gated.app, from_uid(ALICE), "POST", change, &bearer, "");
    assert_eq!(status, 403);
}

#[test]
fn quota_refuses_what_would_exceed_it_and_spares_operators() {
    let f = fixture("trust-quota", None);
    let (status, body) = lease(&f.app, Some(OPERATOR), r#"{"count":4}"#);
    assert_eq!(status, 201, "an operator is not counted: {body}");
    let id = body["lease"]["id"].as_str().unwrap();
    let path = format!("/api/v1/ports/leases/{id}");
    let (status, _) = call_as(&f.app, from_uid(Some(OPERATOR)), "DELETE", &path, &[], "");
    assert_eq!(status, 200);
    let (status, _) = lease(&f.app, ALICE, r#"{"count":2}"#);
    assert_eq!(status, 201);
    let (status, body) = lease(&f.app, ALICE, r#"{"count":2}"#);
    assert_eq!(status, 409);
    assert_eq!(
        body["error"],
        "quota: uid 1000 may hold at most 3 leased ports (--max-ports-per-uid) and holds 2; \
         2 more would exceed it"
    );
    assert_eq!(f.app.metrics.denials(crate::app::metrics::Denial::Quota), 1);
    let (status, _) = lease(&f.app, BOB, r#"{"count":2}"#);
    assert_eq!(status, 201, "another user has a quota of their own");
}

#[test]
fn an_unidentified_caller_reads_but_every_change_is_403_before_the_token() {
    use super::tests::unidentified;
    let f = fixture("trust-unidentified", Some("s3cret"));
    let id = {
        let bearer = [("Authorization", "Bearer s3cret")];
        let peer = from_uid(Some(OPERATOR));
        let (status, body) = call_as(&f.app, peer, "POST", "/api/v1/ports/lease", &bearer, "{}");
        assert_eq!(status, 201, "{body}");
        body["lease"]["id"].as_str().unwrap().to_string()
    };
    let expected = "could not tell who is asking: the client's socket closed or changed \
                    before it was identified; connect over the Unix socket state/dynport.sock";
    let path = format!("/api/v1/ports/leases/{id}");
    let renew = format!("{path}/renew");
    let changes = [
        ("POST", "/api/v1/ports/lease", "{}"),
        ("DELETE", path.as_str(), ""),
        ("POST", renew.as_str(), ""),
        ("POST", "/api/v1/server/port/change", ""),
    ];
    // With the right token, a wrong one (which would count against the
    // throttle) and none: the same 403, and nothing changes.
    for token in ["Bearer s3cret", "Bearer guess", ""] {
        for (method, target, body) in changes {
            let headers: &[(&str, &str)] = match token {
                "" => &[],
                t => &[("Authorization", t)],
            };
            let (status, answer) = call_as(&f.app, unidentified(), method, target, headers, body);
            assert_eq!((status, answer["error"].as_str()), (403, Some(expected)));
        }
    }
    assert_eq!(
        f.app
            .metrics
            .denials(crate::app::metrics::Denial::Unidentified),
        12
    );
    assert_eq!(
        f.app
            .metrics
            .denials(crate::app::metrics::Denial::Unauthorized),
        0
    );
    assert_eq!(
        f.app.auth_throttle.lock().unwrap().tracked(),
        0,
        "never throttled"
    );
    assert_eq!(one(&f.app, &id)["id"], id.as_str(), "still leased");
    assert!(f.serving.listeners.lock().unwrap().is_empty(), "not moved");
    // Reads are everyone's; a web page is told it is a web page first.
    let (status, _) = call_as(
        &f.app,
        unidentified(),
        "GET",
        "/api/v1/ports/leases",
        &[],
        "",
    );
    assert_eq!(status, 200);
    let origin = [("Origin", "http://evil.example")];
    let (status, answer) = call_as(
        &f.app,
        unidentified(),
        "POST",
        "/api/v1/ports/lease",
        &origin,
        "{}",
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some(crate::api::guard::FROM_WEB_PAGE))
    );
}
