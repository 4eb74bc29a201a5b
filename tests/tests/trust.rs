//! Trust through the real binary: who is asking (the Unix socket's peer
//! credentials, the owner of a loopback TCP connection), what each may do
//! with a lease, a pid, the server's port and a quota, the client that
//! sends nothing to another user's listener, and `dynport run` that keeps
//! the token from its command. Tests that need a second local user make
//! `dynport-alice` and `dynport-bob` when run as root, and say they are
//! skipped otherwise.

pub(crate) mod support;
pub(crate) mod users;

use crate::fixture::{EXIT_TIMEOUT, START_TIMEOUT, Server, TempDir, eventually};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{
    CHANGE, LEASE, Via, assert_fails, client, client_tcp, curl_as, dynport_as, has_curl, lease_of,
    over_socket, start, state_dir,
};
use users::{Proc, User, alice_and_bob, assert_reachable_by_all, euid, server_as};

#[test]
fn a_lease_records_the_uid_that_asked_over_the_socket_and_over_tcp() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let server = start(&[]);
    assert_reachable_by_all(server.dir().path());
    let by_socket = lease_of(&client(&server, Some(&alice), &["lease", "--json"]));
    let by_tcp = lease_of(&client_tcp(&server, Some(&alice), &["lease", "--json"]));
    for lease in [by_socket, by_tcp] {
        assert_eq!(lease["uid"], alice.uid, "{lease}");
        let id = lease["id"].as_str().unwrap().to_string();
        eventually(EXIT_TIMEOUT, "the lease in the state file", || {
            server.state()["leases"][&id]["uid"] == alice.uid
        });
    }
    if has_curl() {
        let (status, body) = curl_as(Some(&alice), Via::Unix(&server), "POST", LEASE, "{}");
        assert_eq!((status, &body["lease"]["uid"]), (201, &json!(alice.uid)));
    }
}

#[test]
fn bob_may_neither_renew_nor_release_alices_lease_but_alice_may() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let server = start(&[]);
    let lease = lease_of(&client(
        &server,
        Some(&alice),
        &["lease", "--json", "--ttl", "600"],
    ));
    let id = lease["id"].as_str().unwrap();
    let refused = format!("lease {id} belongs to uid {}", alice.uid);
    for args in [["release", id], ["renew", id]] {
        assert_fails(&client(&server, Some(&bob), &args), 1, &refused);
        assert_fails(&client_tcp(&server, Some(&bob), &args), 1, &refused);
    }
    if has_curl() {
        let path = format!("/api/v1/ports/leases/{id}");
        let (status, body) = curl_as(Some(&bob), Via::Unix(&server), "DELETE", &path, "");
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some(refused.as_str()))
        );
    }
    let one = format!("/api/v1/ports/leases/{id}");
    assert_eq!(server.get(&one).json()["lease"], lease, "bob changed it");

    let renewed = client(&server, Some(&alice), &["renew", id, "--ttl", "900"]);
    assert_eq!((renewed.code, renewed.stderr.as_str()), (0, ""));
    let expires = server.get(&one).json()["lease"]["expires_at"].clone();
    assert_eq!(renewed.stdout, format!("{}\n", expires.as_str().unwrap()));
    assert_ne!(expires, lease["expires_at"]);
    let released = client(&server, Some(&alice), &["release", id]);
    let port = &lease["ports"][0];
    assert_eq!((released.code, released.stdout), (0, format!("{port}\n")));
    assert_eq!(server.get(&one).status, 404);
}

#[test]
fn root_may_release_alices_lease_over_tcp() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let server = start(&[]);
    let lease = lease_of(&client(&server, Some(&alice), &["lease", "--json"]));
    let path = format!("/api/v1/ports/leases/{}", lease["id"].as_str().unwrap());
    // This test process is uid 0 and connects over TCP from loopback.
    let answer = server.request("DELETE", &path, &[], "");
    assert_eq!(answer.status, 200, "{}", answer.error());
    assert_eq!(answer.json()["released"], lease["ports"]);
    assert_eq!(server.get(&path).status, 404);
}

#[test]
fn only_root_may_move_the_server_not_alice_over_tcp_or_the_socket() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    if !has_curl() {
        return;
    }
    let server = start(&[]);
    let old = server.port;
    let refused = format!(
        "only uid 0, dynport's own uid 0 or a remote caller with the token may change \
         the server's port; the caller is uid {}",
        alice.uid
    );
    for via in [Via::Tcp(&server), Via::Unix(&server)] {
        let (status, body) = curl_as(Some(&alice), via, "POST", CHANGE, "");
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some(refused.as_str()))
        );
    }
    assert_eq!(
        server.get("/api/v1/server/port").json()["current_port"],
        old
    );
    let (status, body) = curl_as(None, Via::Tcp(&server), "POST", CHANGE, "");
    assert_eq!((status, &body["old_port"]), (200, &json!(old)), "{body}");
    assert_ne!(body["new_port"], old);
    let moved = body["new_port"].clone();
    let (status, body) = curl_as(None, Via::Unix(&server), "POST", CHANGE, "");
    assert_eq!((status, &body["old_port"]), (200, &moved), "{body}");
}

#[test]
fn a_lease_may_name_only_a_pid_of_the_callers_own() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let server = start(&[]);
    let (bobs, alices) = (Proc::sleep_as(&bob), Proc::sleep_as(&alice));
    let spoofed = bobs.pid().to_string();
    let refused = format!(
        "pid: process {spoofed} belongs to uid {}, not to the caller (uid {})",
        bob.uid, alice.uid
    );
    let out = client(&server, Some(&alice), &["lease", "--pid", &spoofed]);
    assert_fails(&out, 1, &refused);
    let one = "pid: 1 cannot own a lease; give the pid of the process that uses the ports";
    assert_fails(
        &client(&server, Some(&alice), &["lease", "--pid", "1"]),
        1,
        one,
    );
    if has_curl() {
        let body = format!(r#"{{"pid":{spoofed}}}"#);
        let (status, answer) = curl_as(Some(&alice), Via::Unix(&server), "POST", LEASE, &body);
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some(refused.as_str()))
        );
        let (status, answer) = curl_as(
            Some(&alice),
            Via::Tcp(&server),
            "POST",
            LEASE,
            r#"{"pid":1}"#,
        );
        assert_eq!((status, answer["error"].as_str()), (400, Some(one)));
    }
    let own = alices.pid().to_string();
    let lease = lease_of(&client(
        &server,
        Some(&alice),
        &["lease", "--json", "--pid", &own],
    ));
    assert_eq!(
        (&lease["pid"], &lease["uid"]),
        (&json!(alices.pid()), &json!(alice.uid))
    );
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    assert_eq!(leases, json!([lease]), "only alice's own pid got a lease");
}

#[test]
fn quota_caps_the_ports_each_uid_holds_but_not_roots() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let server = start(&["--max-ports-per-uid", "3"]);
    let lease =
        |user: Option<&User>, count: &str| client(&server, user, &["lease", "--count", count]);
    let two = lease(Some(&alice), "2");
    assert_eq!((two.code, two.stdout.lines().count()), (0, 2), "{two:?}");
    let over = format!(
        "quota: uid {} may hold at most 3 leased ports (--max-ports-per-uid) and holds 2; \
         2 more would exceed it",
        alice.uid
    );
    assert_fails(&lease(Some(&alice), "2"), 1, &over);
    let denials = |n: u32| {
        let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
        let line = format!("dynport_lease_denials_total{{reason=\"quota\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    };
    denials(1);
    assert_eq!(lease(Some(&bob), "2").code, 0, "bob has a quota of his own");
    assert_eq!(lease(None, "4").code, 0, "root is not counted");
    if has_curl() {
        let (status, body) = curl_as(
            Some(&alice),
            Via::Unix(&server),
            "POST",
            LEASE,
            r#"{"count":2}"#,
        );
        assert_eq!((status, body["error"].as_str()), (409, Some(over.as_str())));
        denials(2);
    }
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    assert_eq!(leases.as_array().unwrap().len(), 3, "{leases}");
}

#[test]
fn the_client_sends_nothing_to_another_uids_listener_on_a_dead_servers_port() {
    let Some((_, bob)) = alice_and_bob() else {
        return;
    };
    let mut server = start(&[]);
    let port = server.port;
    server.kill9();
    // The dead server's socket file stays: the client tries it, then TCP.
    assert!(server.dir().path().join("dynport.sock").exists());
    let bobs_dir = TempDir::new();
    let log = server.dir().path().join("squatter.log");
    let squatter = server_as(&bob, port, bobs_dir.path(), &log);
    let listening = format!("listening on http://127.0.0.1:{port}");
    eventually(START_TIMEOUT, "bob's listener", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&listening))
    });
    let token = [("DYNPORT_TOKEN", "root-token-bob-must-never-see")];
    let out = dynport_as(None, &["lease", "--state-dir", state_dir(&server)], &token);
    let refused = format!(
        "something else listens at http://127.0.0.1:{port}: its socket belongs to uid {}, \
         while the server's state file belongs to uid {}; the server is not running there, \
         so nothing was sent (pass --url to trust an address as given)",
        bob.uid,
        euid()
    );
    assert_fails(&out, 3, &refused);
    // Its count is of the requests answered before this one: none.
    let overview =
        crate::fixture::request(port, "GET", "/api/v1/system/overview", &[], b"").unwrap();
    let overview = overview.json();
    assert_eq!(overview["pid"], squatter.pid(), "{overview}");
    assert_eq!(
        overview["requests_total"], 0,
        "bob's listener got a request"
    );
}

#[test]
fn run_keeps_the_token_from_cmd_and_names_the_lease_after_the_program_only() {
    const TOKEN: &str = "trust-test-token-0123456789";
    let server = start(&["--token", TOKEN]);
    let scratch = TempDir::new();
    let env = [
        ("DYNPORT_TOKEN", TOKEN),
        ("DYNPORT_TOKEN_FILE", "/nonexistent"),
    ];
    run_and_check(&server, &scratch.path().join("env-1"), &env);
    let token_file = scratch.path().join("token");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&token_file)
        .unwrap();
    writeln!(file, "{TOKEN}").unwrap();
    let env = [("DYNPORT_TOKEN_FILE", token_file.to_str().unwrap())];
    run_and_check(&server, &scratch.path().join("env-2"), &env);
}

/// `dynport run -- /bin/sh -c SCRIPT OUT --password=hunter2` with `env`:
/// CMD writes its environment to OUT and waits for a line on its stdin;
/// meanwhile its lease is checked; then it exits 7, and so does `run`.
fn run_and_check(server: &Server, out: &Path, env: &[(&str, &str)]) {
    let script = r#"env > "$0.tmp" && mv "$0.tmp" "$0" && read line && exit 7"#;
    let mut command = Command::new(crate::fixture::BIN);
    command
        .args([
            "run",
            "--state-dir",
            state_dir(server),
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .arg(out)
        .arg("--password=hunter2")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut run = Proc(command.spawn().expect("dynport run starts"));
    eventually(START_TIMEOUT, "CMD's environment", || out.exists());
    let seen = std::fs::read_to_string(out).unwrap();
    let names: Vec<&str> = seen.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PORT"), "{seen}");
    assert!(!names.iter().any(|n| n.starts_with("DYNPORT_")), "{seen}");
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    let lease = &leases[0];
    assert_eq!(leases.as_array().unwrap().len(), 1, "{leases}");
    assert_eq!(lease["owner"], "dynport run sh", "never the arguments");
    assert_eq!(
        (&lease["uid"], &lease["pid"]),
        (&json!(euid()), &json!(run.pid()))
    );
    assert!(
        seen.contains(&format!("PORT={}\n", lease["ports"][0])),
        "{seen}"
    );
    run.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = crate::fixture::wait_exit(&mut run.0, EXIT_TIMEOUT).expect("run exits");
    let mut stderr = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(7), ""));
    assert_eq!(
        server.get("/api/v1/ports/leases").json()["leases"],
        json!([])
    );
}

#[test]
fn the_unix_socket_is_open_to_every_user_and_goes_with_the_server() {
    let mut server = start(&[]);
    let socket = server.dir().path().join("dynport.sock");
    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o666, "srw-rw-rw-");
    let health = over_socket(&server, "GET", "/healthz", "");
    assert_eq!(
        (health.status, health.body.as_slice()),
        (200, &br#"{"status":"ok"}"#[..])
    );
    let granted = over_socket(&server, "POST", LEASE, "{}");
    assert_eq!(
        (granted.status, &granted.json()["lease"]["uid"]),
        (201, &json!(euid()))
    );
    if has_curl() {
        let (status, body) = curl_as(None, Via::Unix(&server), "GET", "/healthz", "");
        assert_eq!((status, body), (200, json!({"status": "ok"})));
    }
    assert!(server.term().success(), "{}", server.log());
    assert!(
        std::fs::symlink_metadata(&socket).is_err(),
        "the socket stayed"
    );
}

#[test]
fn unix_socket_none_makes_no_socket_and_the_client_uses_tcp() {
    let server = start(&["--unix-socket", "none"]);
    assert!(!server.dir().names().contains(&"dynport.sock".to_string()));
    let lease = lease_of(&client(&server, None, &["lease", "--json"]));
    assert_eq!(lease["uid"], euid());
}
