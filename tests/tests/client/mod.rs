//! The command-line client against the real server: both are this crate's
//! binary, started on a port window found free at run time and a temporary
//! state directory. Every process a test starts is killed when it ends.

mod names;
mod support;

use crate::fixture::{BIN, eventually, free_range};
use std::io::{BufRead, Read};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::{ClientSide, PATIENCE, client, finish, gone, spawn_run, start, wait_for_http};

#[test]
fn lease_prints_one_port_in_range() {
    let server = start(&[]);
    let out = server.client(&["lease"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(out.stdout.lines().count(), 1);
    server.in_range(&out.stdout);
}

#[test]
fn lease_count_3_prints_three_distinct_ports() {
    let server = start(&[]);
    let out = server.client(&["lease", "--count", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut ports: Vec<u16> = out.stdout.lines().map(|l| server.in_range(l)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "{}", out.stdout);
}

#[test]
fn lease_json_prints_the_servers_answer() {
    let server = start(&[]);
    let out = server.client(&["lease", "--json", "--owner", "ci job 17", "--ttl", "600"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["lease"]["owner"], "ci job 17");
    assert_eq!(body["lease"]["pool"], "default");
    assert_eq!(body["lease"]["ports"].as_array().unwrap().len(), 1);
}

/// This process's uid, as `/proc` tells it.
fn own_uid() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn leases_table_lists_each_lease() {
    let server = start(&[]);
    let port = server.client(&["lease", "--owner", "table test"]).stdout;
    let id = server.leases()[0]["id"].as_str().unwrap().to_string();
    let out = server.client(&["leases"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PORTS", "POOL", "OWNER", "UID", "PID", "EXPIRES"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // The client reached the server over its Unix socket, as this uid.
    let uid = own_uid();
    assert_eq!(
        row[..7],
        [&id, port.trim(), "default", "table", "test", &uid, "-"]
    );
    let expiry = row[7..].join(" ");
    assert!(
        expiry.ends_with("Z (in 5m)") || expiry.contains("Z (in 4m 5"),
        "{expiry}"
    );
}

#[test]
fn release_by_port_and_by_id() {
    let server = start(&[]);
    let first = server.client(&["lease"]).stdout;
    let second = server.client(&["lease", "--count", "2"]).stdout;
    let out = server.client(&["release", first.trim()]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, first.as_str()),
        "{}",
        out.stderr
    );
    let leases = server.leases();
    assert_eq!(leases.len(), 1);
    let id = leases[0]["id"].as_str().unwrap();
    let out = server.client(&["release", id]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, second.as_str()),
        "{}",
        out.stderr
    );
    assert!(server.leases().is_empty());
    let out = server.client(&["release", first.trim()]);
    let expected = format!("dynport: no live lease holds port {}\n", first.trim());
    assert_eq!((out.code, out.stderr), (1, expected));
    let out = server.client(&["release", id]);
    assert_eq!(
        (out.code, out.stderr),
        (1, format!("dynport: no live lease {id}\n"))
    );
}

#[test]
fn renew_prints_the_new_expiry() {
    let server = start(&[]);
    server.client(&["lease", "--ttl", "60"]);
    let id = server.leases()[0]["id"].as_str().unwrap().to_string();
    let out = server.client(&["renew", &id, "--ttl", "3600"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expires = humantime::parse_rfc3339(out.stdout.trim()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3590), "{left:?}");
    assert_eq!(server.leases()[0]["expires_at"], out.stdout.trim());
}

#[test]
fn status_shows_the_range_and_counts() {
    let server = start(&[]);
    server.client(&["lease", "--count", "2"]);
    let out = server.client(&["status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (a, b) = server.range();
    let url = format!("http://127.0.0.1:{}", server.state_port());
    for line in [
        format!("url          {url}"),
        format!("range        {a}-{b}"),
        "leased       2".to_string(),
        "server       1".to_string(),
        format!("state file   {}", server.dir().state_file().display()),
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{line:?} in\n{}",
            out.stdout
        );
    }
    let out = server.client(&["status", "--json"]);
    let body: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["name"], "dynport");
}

#[test]
fn url_prints_the_servers_base_url() {
    let server = start(&[]);
    let out = server.client(&["url"]);
    let expected = format!("http://127.0.0.1:{}\n", server.state_port());
    assert_eq!((out.code, out.stdout), (0, expected));
}

#[test]
fn unknown_pool_is_refused_with_the_servers_message() {
    let server = start(&[]);
    let out = server.client(&["lease", "--pool", "nope"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, "dynport: pool: no pool named nope\n");
}

#[test]
fn a_token_is_needed_when_the_server_has_one() {
    let server = start(&["--token", "s3cret"]);
    let out = server.client(&["lease"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--token"), "{}", out.stderr);
    let dir = server.state_dir();
    let env = [("DYNPORT_TOKEN", "s3cret"), ("DYNPORT_STATE_DIR", dir)];
    let out = client(&["lease"], &env);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    server.in_range(&out.stdout);
    // Given on the command line, where every user can read it: a warning.
    let out = client(
        &["lease", "--token", "s3cret"],
        &[("DYNPORT_STATE_DIR", dir)],
    );
    let warning = "dynport: warning: --token on the command line can be read by every \
                   user of this host (ps, /proc/PID/cmdline); give it with --token-file or \
                   DYNPORT_TOKEN instead\n";
    assert_eq!((out.code, out.stderr.as_str()), (0, warning));
    server.in_range(&out.stdout);
}

#[test]
fn a_stopped_server_is_exit_3_naming_the_state_file() {
    let mut server = start(&[]);
    let status = server.term();
    assert!(status.success(), "{}", server.log());
    let out = server.client(&["leases"]);
    assert_eq!(out.code, 3);
    let expected = format!(
        "dynport: no server is running: {} says the server shut down",
        server.dir().state_file().display()
    );
    assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
}

#[test]
fn nothing_at_the_url_is_exit_3_naming_the_url() {
    let port = free_range(1).0;
    let url = format!("http://127.0.0.1:{port}");
    let out = client(&["status", "--url", &url], &[]);
    assert_eq!(out.code, 3);
    let expected = format!("dynport: cannot reach the dynport server at {url} (given by --url): ");
    assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
}

#[test]
fn a_bad_option_is_exit_2_with_a_hint() {
    let out = client(&["lease", "--count", "many"], &[]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "dynport: --count: expected a whole number, got 'many'\n\
         Try 'dynport lease --help' for more information.\n"
    );
    let out = client(&["run", "--help"], &[]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with("Usage: dynport run [OPTIONS] [--] CMD [ARGS...]")
    );
}

#[test]
fn an_owner_with_a_control_character_is_refused_before_asking_the_server() {
    let out = client(
        &[
            "lease",
            "--owner",
            "two\nlines",
            "--url",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "dynport: --owner: contains a control character (U+000A)\n\
         Try 'dynport lease --help' for more information.\n"
    );
}

#[test]
fn port_from_command_substitution() {
    let server = start(&[]);
    let script = format!(
        r#"PORT=$("{BIN}" lease --state-dir "{}") && echo "port=$PORT""#,
        server.state_dir()
    );
    let out = finish(Command::new("sh").args(["-c", &script]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let port = out.stdout.trim().strip_prefix("port=").unwrap();
    server.in_range(port);
}

#[test]
fn run_gives_the_command_its_port_and_releases_it_after() {
    let server = start(&[]);
    let out = server.client(&["run", "--", "sh", "-c", "echo $PORT; echo ${PORTS:-none}"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    server.in_range(lines[0]);
    assert_eq!(lines[1], "none");
    assert!(server.leases().is_empty());
}

#[test]
fn run_exits_with_the_commands_status() {
    let server = start(&[]);
    let out = server.client(&["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let out = server.client(&["run", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code, 128 + 9, "{}", out.stderr);
    // A path, so that no directory of PATH this user may not search makes
    // it "cannot run" (126) instead of "not found" (127).
    let out = server.client(&["run", "--", "/nonexistent/dynport-no-such-command"]);
    assert_eq!(out.code, 127, "{}", out.stderr);
    assert!(server.leases().is_empty());
}

const SOCKET_SCRIPT: &str = r#"
import os, socket, sys
assert os.environ["LISTEN_FDS"] == "1", os.environ["LISTEN_FDS"]
assert os.environ["LISTEN_PID"] == str(os.getpid()), os.environ["LISTEN_PID"]
s = socket.socket(fileno=3)
port = s.getsockname()[1]
assert str(port) == os.environ["PORT"]
print(port, flush=True)
conn, _ = s.accept()
conn.sendall(b"hello from fd 3\n")
conn.close()
"#;

#[test]
fn run_socket_passes_the_listener_on_fd_3() {
    let server = start(&[]);
    let (mut run, mut stdout) =
        spawn_run(&server, &["--socket", "--", "python3", "-c", SOCKET_SCRIPT]);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = server.in_range(&line);
    let leases = server.leases();
    assert_eq!(leases[0]["ports"][0], port);
    assert_eq!(leases[0]["pid"], run.pid());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hello from fd 3\n");
    assert_eq!(run.wait().code(), Some(0));
    assert!(server.leases().is_empty());
}

#[test]
fn run_http_server_serves_on_the_port_and_stops_on_sigterm() {
    let server = start(&[]);
    let script = r#"exec python3 -m http.server "$PORT" --bind 127.0.0.1"#;
    let (mut run, _stdout) = spawn_run(&server, &["--ttl", "2", "--", "sh", "-c", script]);
    eventually(PATIENCE, "the lease", || !server.leases().is_empty());
    let first = server.leases()[0].clone();
    let port = first["ports"][0].as_u64().unwrap() as u16;
    assert!(wait_for_http(port), "nothing served on {port}");
    // Past its 2 s life: run renews the same lease, until a renewal made
    // after the first end (to whole seconds) sets its end a life later.
    let end = |lease: &serde_json::Value| {
        humantime::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap()
    };
    let first_end = end(&first);
    eventually(PATIENCE, "a renewal after the lease's first end", || {
        let leases = server.leases();
        assert_eq!(leases.len(), 1, "the lease ended: {leases:?}");
        assert_eq!(leases[0]["id"], first["id"], "{leases:?}");
        end(&leases[0]) >= first_end + Duration::from_secs(3)
    });
    run.signal(15);
    assert_eq!(run.wait().code(), Some(128 + 15));
    assert!(server.leases().is_empty());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn killing_run_ends_the_command_and_the_lease() {
    let server = start(&["--refresh-secs", "1"]);
    let (run, mut stdout) = spawn_run(&server, &["--", "sh", "-c", "echo $$; exec sleep 60"]);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let command_pid: u32 = line.trim().parse().unwrap();
    assert_eq!(server.leases().len(), 1);
    run.signal(9);
    eventually(PATIENCE, "the command to get SIGTERM", || gone(command_pid));
    eventually(PATIENCE, "the server to end the lease", || {
        server.leases().is_empty()
    });
    drop(run);
    assert!(gone(command_pid));
}

#[test]
fn state_dir_and_url_from_the_environment() {
    let server = start(&[]);
    let expected = format!("http://127.0.0.1:{}\n", server.state_port());
    let out = client(&["url"], &[("DYNPORT_STATE_DIR", server.state_dir())]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, expected.as_str()),
        "{}",
        out.stderr
    );
    let out = client(&["leases"], &[("DYNPORT_URL", expected.trim())]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("ID "), "{}", out.stdout);
}
