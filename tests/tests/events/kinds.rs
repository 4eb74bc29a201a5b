//! Each kind of event, with its data exactly as agreed: `lease` as `GET`
//! shows the lease, `release` and `expire` (both reasons), `port`, `scan`
//! and `name`.

use super::support::{Event, Stream, lease, lease_as_shown, name_as_listed, open};
use crate::fixture::Server;
use crate::trust::users::euid;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// A kind of event, and a test of its data.
type Wanted<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

/// Events until each of `wanted` (a kind and a test of its data) has
/// come; the first event of each, in the order of `wanted`.
fn each(stream: &mut Stream, wanted: &[Wanted]) -> Vec<Event> {
    let mut found: Vec<Option<Event>> = vec![None; wanted.len()];
    let mut ids = Vec::new();
    while found.iter().any(Option::is_none) {
        let event = stream.next();
        ids.extend(event.id);
        for ((kind, test), slot) in wanted.iter().zip(&mut found) {
            if slot.is_none() && event.kind == *kind && test(&event.data) {
                *slot = Some(event.clone());
            }
        }
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must increase: {ids:?}"
    );
    found.into_iter().flatten().collect()
}

fn id_of(lease: &Value) -> String {
    lease["id"].as_str().expect("a lease id").to_string()
}

#[test]
fn a_lease_is_told_as_get_shows_it_when_granted_and_renewed_then_its_release() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    let granted = lease(&server, r#"{"ttl_secs":600,"owner":"ci job","name":"web"}"#);
    let id = id_of(&granted);
    let found = each(
        &mut stream,
        &[
            ("lease", &|d| d["id"] == *id),
            ("name", &|d| d["name"] == "web"),
        ],
    );
    assert_eq!(
        stream.other.first().map(String::as_str),
        Some("retry: 1000")
    );
    assert_eq!(found[0].data, lease_as_shown(&server, &id));
    assert_eq!(found[0].data, granted);
    assert_eq!(found[1].data, name_as_listed(&server, "web"));
    assert_eq!(found[1].data["live"], true);

    let renew = format!("/api/v1/ports/leases/{id}/renew");
    let (status, renewed) = server
        .json_request("POST", &renew, r#"{"ttl_secs":1200}"#)
        .unwrap();
    assert_eq!(status, 200, "{renewed}");
    let event = stream.find("lease", |d| d["id"] == *id);
    assert_eq!(event.data, lease_as_shown(&server, &id));
    assert_ne!(event.data["expires_at"], granted["expires_at"]);
    assert_eq!(event.data["ttl_secs"], 1200);

    let path = format!("/api/v1/ports/leases/{id}");
    assert_eq!(server.json_request("DELETE", &path, "").unwrap().0, 200);
    let event = stream.find("release", |d| d["id"] == *id);
    let expected = json!({"id": id, "ports": granted["ports"], "owner": "ci job",
        "uid": euid(), "name": "web", "reason": "released"});
    assert_eq!(event.data, expected);
}

#[test]
fn a_lease_past_its_ttl_expires_with_reason_ttl() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    let granted = lease(&server, r#"{"ttl_secs":1}"#);
    let id = id_of(&granted);
    let event = stream.find("expire", |d| d["id"] == *id);
    let expected = json!({"id": id, "ports": granted["ports"], "owner": null,
        "uid": euid(), "name": null, "reason": "ttl"});
    assert_eq!(event.data, expected);
}

#[test]
fn a_lease_whose_process_exits_expires_with_reason_owner_exited() {
    // No rescan comes within the test's patience: the exit is seen as the
    // kernel reports it, by the pidfd the server watches.
    let server = Server::start(&["--refresh-secs", "3600"]);
    let mut stream = open(&server, None);
    let mut owner = Command::new("sleep").arg("60").spawn().unwrap();
    let body = format!(r#"{{"pid":{},"owner":"tests","ttl_secs":600}}"#, owner.id());
    let granted = lease(&server, &body);
    let id = id_of(&granted);
    stream.find("lease", |d| d["id"] == *id);
    owner.kill().unwrap();
    owner.wait().unwrap();
    let event = stream.find("expire", |d| d["id"] == *id);
    let expected = json!({"id": id, "ports": granted["ports"], "owner": "tests",
        "uid": euid(), "name": null, "reason": "owner_exited"});
    assert_eq!(event.data, expected);
}

#[test]
fn a_port_change_is_told_then_the_stream_closes() {
    let mut server = Server::start(&[]);
    let mut stream = open(&server, None);
    let old = server.port;
    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let new = reply.json()["new_port"].as_u64().unwrap();
    let event = stream.find("port", |_| true);
    assert_eq!(event.data, json!({"from": old, "to": new}));
    assert!(stream.ends(), "the stream stays open after the port moved");
    server.port = new as u16;
    let mut again = open(&server, event.id);
    let granted = lease(&server, "{}");
    let next = again.find("lease", |_| true);
    assert_eq!(next.data, granted);
    assert!(next.id > event.id, "{next:?} after {event:?}");
}

#[test]
fn a_port_taken_and_let_go_outside_dynport_is_told_by_the_scan() {
    let server = Server::start(&["--refresh-secs", "1"]);
    let (start, end) = server.range();
    let table = server.get("/api/v1/tools/port/state").json();
    let port = (start..=end)
        .find(|p| *p != server.port && table["ports"][p.to_string()].is_null())
        .unwrap_or_else(|| panic!("no free port in {table}"));
    let mut stream = open(&server, None);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("a free port of the range binds");
    let change = json!({"port": port, "from": "free", "to": "in_use"});
    let event = stream.find("scan", |d| contains(d, &change));
    assert_changes_shape(&event.data);
    drop(listener);
    let change = json!({"port": port, "from": "in_use", "to": "free"});
    stream.find("scan", |d| contains(d, &change));
}

fn contains(scan: &Value, change: &Value) -> bool {
    scan["changes"]
        .as_array()
        .is_some_and(|c| c.contains(change))
}

/// Every change names a port and two different states of the agreed five.
fn assert_changes_shape(scan: &Value) {
    let states = ["free", "in_use", "leased", "server", "excluded"];
    assert_eq!(crate::fixture::keys(scan), ["changes"], "{scan}");
    for change in scan["changes"].as_array().unwrap() {
        assert_eq!(
            crate::fixture::keys(change),
            ["from", "port", "to"],
            "{scan}"
        );
        assert!(change["port"].is_u64(), "{scan}");
        let (from, to) = (
            change["from"].as_str().unwrap(),
            change["to"].as_str().unwrap(),
        );
        assert!(
            states.contains(&from) && states.contains(&to) && from != to,
            "{scan}"
        );
    }
}

#[test]
fn an_alias_set_removed_and_forgotten_is_told_as_the_names_list_shows_it() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    let call = |method: &str, body: &str| {
        let reply = server.request(method, "/api/v1/names/db", &[], body);
        assert_eq!(reply.status, 200, "{method}: {:?}", reply.json());
    };
    call("PUT", r#"{"port":5432}"#);
    let event = stream.find("name", |d| d["name"] == "db");
    assert_eq!(event.data, name_as_listed(&server, "db"));
    assert_eq!(
        (event.data["live"].clone(), event.data["port"].clone()),
        (json!(true), json!(5432))
    );
    call("DELETE", "");
    let event = stream.find("name", |d| d["name"] == "db");
    assert_eq!(event.data, name_as_listed(&server, "db"));
    assert_eq!(event.data["live"], false);
    call("DELETE", "");
    let event = stream.find("name", |d| d["name"] == "db");
    assert_eq!(event.data, json!({"name": "db", "gone": true}));
    let list = server.get("/api/v1/names").json();
    assert_eq!(list["names"], json!([]), "{list}");
}

#[test]
fn a_quiet_stream_gets_a_comment_every_15_s() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    let limit = Duration::from_secs(40);
    assert_eq!(stream.block(limit).as_deref(), Some("retry: 1000"));
    let started = Instant::now();
    assert_eq!(stream.block(limit).as_deref(), Some(": keepalive"));
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stream.block(limit).as_deref(), Some(": keepalive"));
}
