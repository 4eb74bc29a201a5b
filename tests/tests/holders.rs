//! Who holds a port, through the real binary: `holders` on
//! `GET /api/v1/tools/port/state?port=N` and `dynport who PORT`, for
//! sockets of a child process this test starts (`python3`), of the server
//! itself, and of another user when the tests run as root; and each
//! user's share of lookups (`share`).

mod share;

#[allow(dead_code)]
use crate::trust::users;

use crate::fixture::START_TIMEOUT;
use crate::fixture::{Launch, Server, TempDir, eventually, free_range, has_ipv6, run_dynport};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use users::{User, alice_and_bob, as_user, euid, server_as};

/// Held for writing by the test whose process holds many descriptors,
/// for reading by every test that expects a lookup to find its process:
/// an operator's lookup walks every process and would run out of time in
/// that one.
static HOG: RwLock<()> = RwLock::new(());

/// Binds what its arguments name on the port given first (`tcp`: a
/// listener on 127.0.0.1, `udp`: a socket on every address, IPv6 when `6`
/// is given), says `ready`, and holds them until its stdin closes.
const HOLD: &str = r#"
import socket, sys
port, kinds = int(sys.argv[1]), sys.argv[2:]
held = []
if "tcp" in kinds:
    t = socket.socket()
    t.bind(("127.0.0.1", port))
    t.listen()
    held.append(t)
if "udp" in kinds:
    family, every = (socket.AF_INET6, "::") if "6" in kinds else (socket.AF_INET, "0.0.0.0")
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((every, port))
    held.append(u)
print("ready", flush=True)
sys.stdin.read()
"#;

/// A `python3` process holding sockets on a port, killed when dropped.
struct Holding(Child);

impl Holding {
    /// Starts [`HOLD`] as `user` (this process's when `None`) and waits
    /// until its sockets are bound; `None`, saying so, without python3.
    fn start(port: u16, kinds: &[&str], user: Option<&User>) -> Option<Holding> {
        // By name: the other user's PATH finds it, not this one's.
        crate::fixture::require_tool("python3")?;
        let mut command = Command::new("python3");
        command.args(["-c", HOLD, &port.to_string()]).args(kinds);
        as_user(&mut command, user).current_dir("/");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let holding = Holding(child);
        assert_eq!(line, "ready\n", "python3 could not bind port {port}");
        Some(holding)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server on a fresh window of 4 ports, none excluded.
fn start() -> Server {
    Launch::with_range(free_range(4), &["--exclude", "none"]).start()
}

/// A port of the server's range other than its own.
fn other_port(server: &Server) -> u16 {
    let (first, _) = server.range();
    if server.port == first {
        first + 1
    } else {
        first
    }
}

fn port_state(port_of_server: u16, port: u16) -> Value {
    let path = format!("/api/v1/tools/port/state?port={port}");
    let reply = crate::fixture::request(port_of_server, "GET", &path, &[], b"").unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    reply.json()
}

fn holder(protocol: &str, address: &str, uid: u32, pid: Value, command: Value) -> Value {
    json!({"protocol": protocol, "address": address, "uid": uid, "pid": pid, "command": command})
}

/// The address a [`HOLD`] UDP socket is bound to, and the argument asking it.
fn udp_every() -> (&'static str, &'static str) {
    if has_ipv6() {
        ("::", "6")
    } else {
        ("0.0.0.0", "4")
    }
}

#[test]
fn holders_name_the_listener_the_udp_socket_and_the_process() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let port = other_port(&server);
    let (every, v) = udp_every();
    let Some(python) = Holding::start(port, &["tcp", "udp", v], None) else {
        return;
    };
    let body = port_state(server.port, port);
    let pid = json!(python.pid());
    let expected = [
        holder("tcp", "127.0.0.1", euid(), pid.clone(), json!("python3")),
        holder("udp", every, euid(), pid, json!("python3")),
    ];
    assert_eq!(body["holders"], json!(expected), "{body}");
    assert_eq!(body["port"], port);
    drop(python);
    let body = port_state(server.port, port);
    assert_eq!(body.get("holders"), None, "a free port has none: {body}");
}

#[test]
fn the_servers_own_port_is_held_by_dynport() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let body = port_state(server.port, server.port);
    let own = holder(
        "tcp",
        "127.0.0.1",
        euid(),
        json!(server.pid()),
        json!("dynport"),
    );
    assert_eq!(
        (&body["state"], &body["holders"]),
        (&json!("server"), &json!([own]))
    );
}

#[test]
fn who_prints_a_table_and_the_json_answer() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let port = other_port(&server);
    let dir = server.dir().path().to_str().unwrap();
    let (every, v) = udp_every();
    let Some(python) = Holding::start(port, &["tcp", "udp", v], None) else {
        return;
    };
    let (status, stdout, stderr) =
        run_dynport(&["who", &port.to_string(), "--state-dir", dir], &[]);
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
    let (uid, user, pid) = (
        euid().to_string(),
        user_name(euid()),
        python.pid().to_string(),
    );
    assert_eq!(
        cells(&stdout),
        [
            vec!["PROTO", "ADDRESS", "UID", "USER", "PID", "COMMAND"],
            vec!["tcp", "127.0.0.1", &uid, &user, &pid, "python3"],
            vec!["udp", every, &uid, &user, &pid, "python3"],
        ],
        "{stdout}"
    );

    let args = ["who", "--json", &port.to_string(), "--state-dir", dir];
    let (status, stdout, _) = run_dynport(&args, &[]);
    assert_eq!(status.code(), Some(0));
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["holders"][0]["pid"], python.pid(), "{printed}");
    assert_eq!(printed["holders"].as_array().map(Vec::len), Some(2));
}

#[test]
fn who_says_when_nothing_holds_the_port_and_refuses_a_port_outside_the_range() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let port = other_port(&server);
    let dir = server.dir().path().to_str().unwrap();
    let (status, stdout, stderr) =
        run_dynport(&["who", &port.to_string(), "--state-dir", dir], &[]);
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
    assert_eq!(
        stdout,
        format!("no socket holds port {port} (state: free)\n")
    );

    let (first, last) = server.range();
    let outside = (first - 1).to_string();
    let (status, stdout, stderr) = run_dynport(&["who", &outside, "--state-dir", dir], &[]);
    let message = format!("dynport: port: {outside} is outside the managed range {first}-{last}\n");
    assert_eq!(
        (status.code(), stdout.as_str(), stderr.as_str()),
        (Some(1), "", message.as_str())
    );

    let (status, _, stderr) = run_dynport(&["who", "--state-dir", dir], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.starts_with("dynport: missing PORT\n"), "{stderr}");
}

#[test]
fn a_root_server_shows_another_users_socket_with_its_process() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let server = start();
    let port = other_port(&server);
    let Some(python) = Holding::start(port, &["tcp"], Some(&alice)) else {
        return;
    };
    let body = port_state(server.port, port);
    let expected = holder(
        "tcp",
        "127.0.0.1",
        alice.uid,
        json!(python.pid()),
        json!("python3"),
    );
    assert_eq!(body["holders"], json!([expected]), "{body}");
    let dir = server.dir().path().to_str().unwrap();
    let (_, stdout, _) = run_dynport(&["who", &port.to_string(), "--state-dir", dir], &[]);
    let (uid, pid) = (alice.uid.to_string(), python.pid().to_string());
    let row = vec!["tcp", "127.0.0.1", &uid, "dynport-alice", &pid, "python3"];
    assert_eq!(cells(&stdout).get(1), Some(&row), "{stdout}");
}

#[test]
fn a_server_of_one_user_hides_the_process_behind_another_users_socket() {
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let (port, _) = free_range(1);
    let (dir, logs) = (TempDir::new(), TempDir::new());
    let log = logs.path().join("alice.log");
    let alices = server_as(&alice, port, dir.path(), &log);
    let listening = format!("listening on http://127.0.0.1:{port}");
    eventually(START_TIMEOUT, "alice's server", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&listening))
    });
    // Bob binds UDP on alice's server's own port, which is TCP.
    let Some(_bobs) = Holding::start(port, &["udp", "4"], Some(&bob)) else {
        return;
    };
    let body = port_state(port, port);
    let expected = [
        holder(
            "tcp",
            "127.0.0.1",
            alice.uid,
            json!(alices.pid()),
            json!("dynport"),
        ),
        holder("udp", "0.0.0.0", bob.uid, Value::Null, Value::Null),
    ];
    assert_eq!(body["holders"], json!(expected), "{body}");
}

/// The words of each line of a table.
fn cells(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// The name `/etc/passwd` gives `uid`, or `-`.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid.to_string())
        .map_or_else(|| "-".to_string(), |f| f[0].to_string())
}
