//! Request bodies through the router: printable owners, unknown and
//! repeated keys in every body, and the client's bodies and answer types
//! agreeing with the server's.

use super::*;
use crate::client::api::lease_body as client_body;
use crate::client::args::LeaseOptions;
use crate::ports::lease::Lease;
use crate::ports::wire::{LeaseAnswer, ReleasedAnswer};

fn owner_body(owner: &str) -> String {
    json!({ "owner": owner }).to_string()
}

#[test]
fn owners_that_are_not_printable_are_400_naming_owner() {
    let f = fixture("ownerbad", None);
    let before = std::fs::read(f.app.store().path()).unwrap();
    let cases = [
        ("a\nb", "a control character (U+000A)"),
        ("nul\u{0}", "a control character (U+0000)"),
        ("\u{1B}[31mred", "a control character (U+001B)"),
        ("del\u{7F}", "a control character (U+007F)"),
        ("next\u{85}line", "a control character (U+0085)"),
        ("\u{9F}", "a control character (U+009F)"),
        ("x\u{202A}", "a bidirectional control (U+202A)"),
        ("gpj.\u{202E}exe", "a bidirectional control (U+202E)"),
        ("\u{2066}x", "a bidirectional control (U+2066)"),
        ("x\u{2069}", "a bidirectional control (U+2069)"),
        ("zero\u{200B}width", "a zero-width character (U+200B)"),
        ("rlm\u{200F}", "a zero-width character (U+200F)"),
        ("\u{FEFF}bom", "a zero-width character (U+FEFF)"),
    ];
    for (owner, problem) in cases {
        let (status, answer) = lease_body(&f, &owner_body(owner));
        assert_eq!(status, 400, "{owner:?} -> {answer}");
        assert_eq!(
            answer["error"],
            format!("owner: contains {problem}"),
            "{owner:?}"
        );
    }
    assert_eq!(f.app.summary().counts.leased, 0);
    assert_eq!(std::fs::read(f.app.store().path()).unwrap(), before);
}

#[test]
fn printable_owners_in_any_script_are_granted() {
    let f = fixture("ownergood", None);
    for owner in [
        "Zoë's café build",
        "构建 任务 17",
        "deploy 🚀",
        "  spaced  out  ",
    ] {
        let (status, answer) = lease_body(&f, &owner_body(owner));
        assert_eq!(status, 201, "{owner:?} -> {answer}");
        assert_eq!(answer["lease"]["owner"], owner);
    }
}

/// `(path, body, exact message)` for each body the API takes.
fn refused_bodies(id: &str) -> Vec<(String, &'static str, String)> {
    let lease = "/api/v1/ports/lease".to_string();
    let renew = format!("/api/v1/ports/leases/{id}/renew");
    let change = "/api/v1/server/port/change".to_string();
    let twice = |key: &str| format!("{key}: given more than once; give each field once");
    vec![
        (
            lease.clone(),
            r#"{"ttl_sec": 5}"#,
            "ttl_sec: unknown field `ttl_sec`, expected one of `count`, `port`, `pool`, `ttl_secs`, `owner`, `pid`, `protocol`, `name`".to_string(),
        ),
        (lease, r#"{"count":1,"count":2}"#, twice("count")),
        (
            renew.clone(),
            r#"{"ttl": 60}"#,
            "ttl: unknown field `ttl`, expected `ttl_secs`".to_string(),
        ),
        (renew, r#"{"ttl_secs":60,"ttl_secs":60}"#, twice("ttl_secs")),
        (
            change.clone(),
            r#"{"port": null, "to": 1}"#,
            "to: unknown field `to`, expected `port`".to_string(),
        ),
        (change, r#"{"port":1,"port":1}"#, twice("port")),
    ]
}

#[test]
fn unknown_fields_and_repeated_keys_are_400_naming_them_in_every_body() {
    let f = fixture("bodykeys", None);
    let (_, granted) = lease_body(&f, "{}");
    let id = granted["lease"]["id"].as_str().unwrap().to_string();
    let before = std::fs::read(f.app.store().path()).unwrap();
    for (path, body, message) in refused_bodies(&id) {
        let (status, answer) = call(&f.app, "POST", &path, &[], body);
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(message.as_str())),
            "{path} {body}"
        );
    }
    assert_eq!(f.app.summary().counts.leased, 1);
    assert!(f.serving.listeners.lock().unwrap().is_empty());
    assert_eq!(std::fs::read(f.app.store().path()).unwrap(), before);
}

#[test]
fn the_server_grants_what_the_clients_body_asks_for() {
    let f = fixture("clientbody", None);
    let opts = LeaseOptions {
        count: Some(1),
        port: Some(f.range.start + 3),
        pool: Some("default".to_string()),
        ttl: Some(700),
        owner: Some("ci job 17".to_string()),
        pid: Some(std::process::id()),
        protocol: None,
    };
    let sent = serde_json::to_string(&client_body(&opts)).unwrap();
    let res = answer(
        &f.app,
        &Request::fake("POST", "/api/v1/ports/lease", &[], sent.as_bytes())
            .from_peer(super::from_uid(Some(crate::sys::process::own_uid()))),
    );
    assert_eq!(res.status, 201);
    let read: LeaseAnswer<Lease> = serde_json::from_slice(&res.body).unwrap();
    let durable = f.app.store().durable().unwrap().unwrap();
    let saved: Lease = durable.leases[&read.lease.id].clone();
    assert!(saved.pid_start.is_some(), "{saved:?}");
    // The API does not show when the process started; all else is the same.
    assert_eq!(
        read.lease,
        Lease {
            pid_start: None,
            ..saved.clone()
        }
    );
    assert_eq!(
        (
            read.lease.ports,
            read.lease.owner,
            read.lease.pid,
            read.lease.ttl_secs
        ),
        (vec![f.range.start + 3], opts.owner, opts.pid, 700)
    );
    let one = format!("/api/v1/ports/leases/{}", saved.id);
    let me = super::from_uid(Some(crate::sys::process::own_uid()));
    let res = answer(
        &f.app,
        &Request::fake("DELETE", &one, &[], b"").from_peer(me),
    );
    let released: ReleasedAnswer<Lease> = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(released.released, vec![f.range.start + 3]);
    assert_eq!(released.lease.id, saved.id);
}
