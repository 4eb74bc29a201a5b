//! Leases through the real binary: many clients at once, reads while a
//! write is stuck, ends by TTL and by the owner's exit, the token on every
//! mutating endpoint, exclusions, and leases kept across restarts.

use crate::fixture::{Launch, OpenGate, Server, TempDir, eventually, free_range, json_request};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn ports_of(answer: &Value) -> Vec<u16> {
    answer["lease"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u16)
        .collect()
}

#[test]
fn concurrent_leases_never_share_a_port() {
    let range = free_range(200);
    let server = Arc::new(Launch::with_range(range, &["--exclude", "none"]).start());
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let server = Arc::clone(&server);
            thread::spawn(move || {
                let body = format!(r#"{{"count": {}, "owner": "client {i}"}}"#, 1 + i % 2);
                (0..8)
                    .map(|_| {
                        let (status, answer) = server
                            .json_request("POST", "/api/v1/ports/lease", &body)
                            .unwrap();
                        assert_eq!(status, 201, "{answer}");
                        (
                            answer["lease"]["id"].as_str().unwrap().to_string(),
                            ports_of(&answer),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let granted: Vec<(String, Vec<u16>)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(granted.len(), 128);
    let mut seen = BTreeSet::new();
    for port in granted.iter().flat_map(|(_, ports)| ports) {
        assert!(seen.insert(*port), "port {port} granted twice");
        assert!((range.0..=range.1).contains(port) && *port != server.port);
    }
    assert_eq!(seen.len(), 192);
    let state = server.state();
    for (id, ports) in &granted {
        assert_eq!(
            state["leases"][id]["ports"],
            json!(ports),
            "lease {id} in the state file"
        );
    }
}

/// The refresh thread rewrites the state file through a temporary file of
/// a random name about a second after a lease change; the open of that file
/// is held up (a fanotify permission event) for as long as the test likes.
/// Meanwhile reads and lease changes are answered: a commit goes to the
/// journal, never waits for the snapshot. Needs root for fanotify.
#[test]
fn answers_go_on_while_the_state_file_waits_for_its_write() {
    let server = Arc::new(Server::start(&[]));
    let before = server.state_bytes();
    let prefix = ".dynamic_ports.json.tmp-";
    let Some(gate) = OpenGate::watch(server.dir().path(), server.pid(), prefix) else {
        return;
    };
    let (status, first) = server
        .json_request("POST", "/api/v1/ports/lease", "{}")
        .unwrap();
    assert_eq!(status, 201, "{first}");
    let tmp = gate.wait_held(Duration::from_secs(10));
    let mut granted = vec![first["lease"]["id"].as_str().unwrap().to_string()];
    for _ in 0..5 {
        for path in ["/api/v1/server/port", "/api/v1/system/overview", "/metrics"] {
            assert_eq!(server.get(path).status, 200, "{path}");
        }
        let (status, answer) = server
            .json_request("POST", "/api/v1/ports/lease", "{}")
            .unwrap();
        assert_eq!(status, 201, "{answer}");
        granted.push(answer["lease"]["id"].as_str().unwrap().to_string());
    }
    let release = format!("/api/v1/ports/leases/{}", granted.remove(0));
    assert_eq!(server.json_request("DELETE", &release, "").unwrap().0, 200);
    let listed = server.get("/api/v1/ports/leases").json()["leases"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed}");
    assert_eq!(
        server.state_bytes(),
        before,
        "the snapshot is still held up"
    );
    let durable = server.state()["leases"].clone();
    let ids: Vec<&String> = durable.as_object().unwrap().keys().collect();
    let mut expected: Vec<&String> = granted.iter().collect();
    expected.sort();
    assert_eq!(ids, expected, "every acknowledged change is in the journal");

    // The open then fails: the snapshot is dropped and tried again later,
    // and the journal still holds every change.
    gate.answer(false);
    eventually(
        Duration::from_secs(10),
        "the snapshot to be written",
        || server.snapshot()["leases"] == durable,
    );
    assert!(!tmp.exists(), "the server removes what it could not write");
    assert!(
        server.log().contains("Operation not permitted"),
        "{}",
        server.log()
    );
}

#[test]
fn lease_ends_when_its_owner_exits() {
    let server = Server::start(&["--refresh-secs", "1"]);
    let mut owner = Command::new("sleep").arg("30").spawn().unwrap();
    let body = format!(r#"{{"pid": {}}}"#, owner.id());
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", &body)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["lease"]["pid"], owner.id());
    let path = format!(
        "/api/v1/ports/leases/{}",
        answer["lease"]["id"].as_str().unwrap()
    );
    assert_eq!(server.json_request("GET", &path, "").unwrap().0, 200);
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert_eq!(server.json_request("GET", &path, "").unwrap().0, 404);
    let ten = Duration::from_secs(10);
    eventually(ten, "the refresh thread to end the lease", || {
        server.log().contains("ended (owner exited)") && server.state()["leases"] == json!({})
    });
    let port = ports_of(&answer)[0].to_string();
    assert_eq!(server.state()["ports"].get(&port), None);
}

#[test]
fn lease_ends_when_its_ttl_passes() {
    let server = Server::start(&["--refresh-secs", "1"]);
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"ttl_secs": 1}"#)
        .unwrap();
    assert_eq!(status, 201);
    let id = answer["lease"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        server.state()["leases"][&id]["ports"],
        answer["lease"]["ports"]
    );
    eventually(Duration::from_secs(10), "the lease to expire", || {
        server
            .log()
            .contains(&format!("lease {id} ended (expired)"))
            && server.state()["leases"] == json!({})
    });
    let renew = format!("/api/v1/ports/leases/{id}/renew");
    assert_eq!(server.json_request("POST", &renew, "").unwrap().0, 404);
}

#[test]
fn token_is_required_on_every_mutating_endpoint() {
    // The token file lives outside the state directory.
    let dir = TempDir::new();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    Command::new("chmod")
        .arg("600")
        .arg(&token_file)
        .status()
        .unwrap();
    let args = ["--token-file", token_file.to_str().unwrap()];
    let server = Server::start(&args);
    let auth = [("Authorization", "Bearer s3cret")];
    let wrong = [("Authorization", "Bearer s3cre")];
    let lease = |headers: &[(&str, &str)]| {
        json_request(server.port, "POST", "/api/v1/ports/lease", headers, "").unwrap()
    };
    assert_eq!(lease(&[]).0, 401);
    assert_eq!(lease(&wrong).0, 401);
    let (status, answer) = lease(&auth);
    assert_eq!(status, 201);
    let one = format!(
        "/api/v1/ports/leases/{}",
        answer["lease"]["id"].as_str().unwrap()
    );
    let renew = format!("{one}/renew");
    for (method, path) in [
        ("POST", renew.as_str()),
        ("DELETE", one.as_str()),
        ("POST", "/api/v1/server/port/change"),
    ] {
        let (status, answer) = json_request(server.port, method, path, &[], "").unwrap();
        assert_eq!(status, 401, "{method} {path}: {answer}");
        assert_eq!(
            json_request(server.port, method, path, &wrong, "")
                .unwrap()
                .0,
            401
        );
    }
    for path in [
        "/api/v1/ports/leases",
        one.as_str(),
        "/api/v1/server/port",
        "/metrics",
    ] {
        let answer = json_request(server.port, "GET", path, &[], "");
        assert!(
            path == "/metrics" || answer.unwrap().0 == 200,
            "GET {path} stays open"
        );
    }
    assert_eq!(
        json_request(server.port, "POST", &renew, &auth, "")
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        json_request(server.port, "DELETE", &one, &auth, "")
            .unwrap()
            .0,
        200
    );
}

#[test]
fn excluded_ports_are_never_leased() {
    let range = free_range(6);
    let excluded = format!("{},{}-{}", range.0 + 1, range.0 + 3, range.0 + 4);
    let server = Launch::with_range(range, &["--exclude", &excluded]).start();
    let (_, port_info) = server
        .json_request("GET", "/api/v1/server/port", "")
        .unwrap();
    assert_eq!(port_info["excluded_ports"], 3);
    assert_eq!(port_info["available_ports"], 2);
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"count": 3}"#)
        .unwrap();
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"count": 2}"#)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let mut want: Vec<u16> = (range.0..=range.1)
        .filter(|p| ![range.0 + 1, range.0 + 3, range.0 + 4, server.port].contains(p))
        .collect();
    want.sort_unstable();
    assert_eq!(ports_of(&answer), want);
    let reserve = format!(r#"{{"port": {}}}"#, range.0 + 3);
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", &reserve)
        .unwrap();
    assert_eq!(status, 409);
    assert!(
        answer["error"].as_str().unwrap().contains("excluded"),
        "{answer}"
    );
}

#[test]
fn leases_survive_a_clean_restart_and_the_server_keeps_off_them() {
    let mut server = Launch::with_range(free_range(6), &["--exclude", "none"]).start();
    let first = server.port;
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"count": 5}"#)
        .unwrap();
    assert_eq!(status, 201);
    assert!(server.term().success());
    assert!(server.log().contains("Port released successfully"));
    let state = server.state();
    assert_eq!(state["server_port"], Value::Null);
    assert_eq!(state["last_server_port"], first);
    let again = server.relaunch();
    drop(server);
    let server = again.start();
    assert_eq!(server.port, first, "the last port is taken again");
    let id = answer["lease"]["id"].as_str().unwrap();
    let (status, again) = server
        .json_request("GET", &format!("/api/v1/ports/leases/{id}"), "")
        .unwrap();
    assert_eq!(
        (status, again["lease"]["ports"].clone()),
        (200, answer["lease"]["ports"].clone())
    );
    let (status, _) = server
        .json_request("POST", "/api/v1/ports/lease", "")
        .unwrap();
    assert_eq!(status, 409, "every port is leased or the server's");
}

#[test]
fn bad_owners_and_unknown_fields_are_refused_and_nothing_is_leased() {
    let server = Server::start(&[]);
    let refused = [
        (
            json!({"owner": "build\u{202E}txt"}).to_string(),
            "owner: contains a bidirectional control (U+202E)",
        ),
        (
            json!({"owner": "two\nlines"}).to_string(),
            "owner: contains a control character (U+000A)",
        ),
        (
            r#"{"ttl_sec": 600}"#.to_string(),
            "ttl_sec: unknown field `ttl_sec`, expected one of `count`, `port`, `pool`, `ttl_secs`, `owner`, `pid`, `protocol`, `name`",
        ),
        (
            r#"{"count": 1, "count": 2}"#.to_string(),
            "count: given more than once; give each field once",
        ),
    ];
    for (body, message) in refused {
        let (status, answer) = server
            .json_request("POST", "/api/v1/ports/lease", &body)
            .unwrap();
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(message)),
            "{body}"
        );
    }
    assert_eq!(server.state()["leases"], json!({}));
    let body = json!({"owner": "Zoë's 构建 🚀"}).to_string();
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", &body)
        .unwrap();
    assert_eq!(
        (status, answer["lease"]["owner"].as_str()),
        (201, Some("Zoë's 构建 🚀"))
    );
}

/// A lease ends when its time is up, not at the next scan (here a minute
/// away): the refresh thread sleeps until the next lease's end. No scan
/// runs between the grant and the end.
#[test]
fn a_lease_ends_when_due_not_at_the_next_scan() {
    let server = Server::start(&["--refresh-secs", "60"]);
    let scans = || {
        let body = String::from_utf8(server.get("/metrics").body).unwrap();
        let line = body
            .lines()
            .find_map(|l| l.strip_prefix("dynport_scans_total "));
        line.expect("dynport_scans_total in /metrics").to_string()
    };
    let before = scans();
    let began = std::time::Instant::now();
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"ttl_secs": 1}"#)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let ended = format!(
        "lease {} ended (expired)",
        answer["lease"]["id"].as_str().unwrap()
    );
    crate::fixture::eventually(Duration::from_secs(10), &ended, || {
        server.log().contains(&ended)
    });
    assert_eq!(scans(), before, "a scan ran before the lease ended");
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "ended {took:?} after its 1 s grant"
    );
}
