//! Leases through the real binary: many clients at once, ends by TTL and by
//! the owner's exit, the token on every mutating endpoint, exclusions, and
//! leases kept across restarts.

mod common;

use common::{Server, TempDir, eventually, free_range, request};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::thread;

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
    let dir = TempDir::new("concurrent");
    let range = free_range(200);
    let server = Arc::new(Server::start(&dir.0, range, &["--exclude", "none"]));
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let server = Arc::clone(&server);
            thread::spawn(move || {
                let body = format!(r#"{{"count": {}, "owner": "client {i}"}}"#, 1 + i % 2);
                (0..8)
                    .map(|_| {
                        let (status, answer) = server
                            .request("POST", "/api/v1/ports/lease", &body)
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
    let state = dir.state();
    for (id, ports) in &granted {
        assert_eq!(
            state["leases"][id]["ports"],
            json!(ports),
            "lease {id} in the state file"
        );
    }
}

#[test]
fn lease_ends_when_its_owner_exits() {
    let dir = TempDir::new("owner");
    let server = Server::start(&dir.0, free_range(8), &["--refresh-secs", "1"]);
    let mut owner = Command::new("sleep").arg("30").spawn().unwrap();
    let body = format!(r#"{{"pid": {}}}"#, owner.id());
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", &body)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["lease"]["pid"], owner.id());
    let path = format!(
        "/api/v1/ports/leases/{}",
        answer["lease"]["id"].as_str().unwrap()
    );
    assert_eq!(server.request("GET", &path, "").unwrap().0, 200);
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert_eq!(server.request("GET", &path, "").unwrap().0, 404);
    eventually(10, "the refresh thread to end the lease", || {
        server.log().contains("ended (owner exited)") && dir.state()["leases"] == json!({})
    });
    let port = ports_of(&answer)[0].to_string();
    assert_eq!(dir.state()["ports"].get(&port), None);
}

#[test]
fn lease_ends_when_its_ttl_passes() {
    let dir = TempDir::new("ttl");
    let server = Server::start(&dir.0, free_range(8), &["--refresh-secs", "1"]);
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", r#"{"ttl_secs": 1}"#)
        .unwrap();
    assert_eq!(status, 201);
    let id = answer["lease"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        dir.state()["leases"][&id]["ports"],
        answer["lease"]["ports"]
    );
    eventually(10, "the lease to expire", || {
        server
            .log()
            .contains(&format!("lease {id} ended (expired)"))
            && dir.state()["leases"] == json!({})
    });
    let renew = format!("/api/v1/ports/leases/{id}/renew");
    assert_eq!(server.request("POST", &renew, "").unwrap().0, 404);
}

#[test]
fn token_is_required_on_every_mutating_endpoint() {
    let dir = TempDir::new("token");
    let token_file = dir.0.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    Command::new("chmod")
        .arg("600")
        .arg(&token_file)
        .status()
        .unwrap();
    let args = ["--token-file", token_file.to_str().unwrap()];
    let server = Server::start(&dir.0.join("state"), free_range(8), &args);
    let auth = [("Authorization", "Bearer s3cret")];
    let wrong = [("Authorization", "Bearer s3cre")];
    let lease = |headers: &[(&str, &str)]| {
        request(server.port, "POST", "/api/v1/ports/lease", "", headers).unwrap()
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
        let (status, answer) = request(server.port, method, path, "", &[]).unwrap();
        assert_eq!(status, 401, "{method} {path}: {answer}");
        assert_eq!(
            request(server.port, method, path, "", &wrong).unwrap().0,
            401
        );
    }
    for path in [
        "/api/v1/ports/leases",
        one.as_str(),
        "/api/v1/server/port",
        "/metrics",
    ] {
        let answer = request(server.port, "GET", path, "", &[]);
        assert!(
            path == "/metrics" || answer.unwrap().0 == 200,
            "GET {path} stays open"
        );
    }
    assert_eq!(
        request(server.port, "POST", &renew, "", &auth).unwrap().0,
        200
    );
    assert_eq!(
        request(server.port, "DELETE", &one, "", &auth).unwrap().0,
        200
    );
}

#[test]
fn excluded_ports_are_never_leased() {
    let dir = TempDir::new("exclude");
    let range = free_range(6);
    let excluded = format!("{},{}-{}", range.0 + 1, range.0 + 3, range.0 + 4);
    let server = Server::start(&dir.0, range, &["--exclude", &excluded]);
    let (_, port_info) = server.request("GET", "/api/v1/server/port", "").unwrap();
    assert_eq!(port_info["excluded_ports"], 3);
    assert_eq!(port_info["available_ports"], 2);
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", r#"{"count": 3}"#)
        .unwrap();
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", r#"{"count": 2}"#)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let mut want: Vec<u16> = (range.0..=range.1)
        .filter(|p| ![range.0 + 1, range.0 + 3, range.0 + 4, server.port].contains(p))
        .collect();
    want.sort_unstable();
    assert_eq!(ports_of(&answer), want);
    let reserve = format!(r#"{{"port": {}}}"#, range.0 + 3);
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", &reserve)
        .unwrap();
    assert_eq!(status, 409);
    assert!(
        answer["error"].as_str().unwrap().contains("excluded"),
        "{answer}"
    );
}

#[test]
fn leases_survive_a_clean_restart_and_the_server_keeps_off_them() {
    let dir = TempDir::new("restart");
    let range = free_range(6);
    let mut server = Server::start(&dir.0, range, &["--exclude", "none"]);
    let first = server.port;
    let (status, answer) = server
        .request("POST", "/api/v1/ports/lease", r#"{"count": 5}"#)
        .unwrap();
    assert_eq!(status, 201);
    assert!(server.terminate().success());
    assert!(server.log().contains("Port released successfully"));
    let state = dir.state();
    assert_eq!(state["server_port"], Value::Null);
    assert_eq!(state["last_server_port"], first);
    drop(server);
    let server = Server::start(&dir.0, range, &["--exclude", "none"]);
    assert_eq!(server.port, first, "the last port is taken again");
    let id = answer["lease"]["id"].as_str().unwrap();
    let (status, again) = server
        .request("GET", &format!("/api/v1/ports/leases/{id}"), "")
        .unwrap();
    assert_eq!(
        (status, again["lease"]["ports"].clone()),
        (200, answer["lease"]["ports"].clone())
    );
    let (status, _) = server.request("POST", "/api/v1/ports/lease", "").unwrap();
    assert_eq!(status, 409, "every port is leased or the server's");
}
