//! Identity that cannot be forged and a fair share for each user, through
//! the real binary, attacked the way a hostile local user would: requests
//! sent on sockets closed or reset at once (so that their socket is a
//! TIME-WAIT mini-socket or gone by the time it could be looked up), token
//! guesses from rotating loopback addresses, a flood of connections, and
//! pipelined reads that are never read. The attacker is `dynport-alice`,
//! run through Debian's `/usr/bin/python3` for its raw sockets; without
//! root to make her, each test says it is skipped.

use crate::fixture::{EXIT_TIMEOUT, Launch, Server, eventually, free_range};
use crate::trust::users::{User, alice_and_bob, as_user};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TOKEN: &str = "a-token-everyone-on-this-host-knows";
const PYTHON: &str = "/usr/bin/python3";

/// Sends each change on a fresh socket and closes it at once, then again
/// resetting it (SO_LINGER 0), `rounds` times; then token guesses, closed
/// and reset, each reset one from its own 127.x.y.z address.
const FORGER: &str = r#"
import socket, struct, sys
port, token, bob_lease, rounds = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def req(method, path, body=b"", token=token):
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body
def hit(data, reset, source="127.0.0.1"):
    s = socket.socket()
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as e:
        print("not sent:", e, file=sys.stderr)
    s.close()
changes = [
    req("POST", "/api/v1/ports/lease", b'{"count":20,"ttl_secs":600}'),
    req("POST", "/api/v1/ports/lease", b'{"ttl_secs":600}'),
    req("DELETE", "/api/v1/ports/leases/" + bob_lease),
    req("POST", "/api/v1/server/port/change"),
]
for i in range(rounds):
    for data in changes:
        hit(data, False)
        hit(data, True)
    guess = req("POST", "/api/v1/ports/lease", b"{}", token="guess%d" % i)
    hit(guess, False)
    hit(guess, True, "127.%d.%d.%d" % (1 + i // 250, 1 + i % 250, 1 + (7 * i) % 250))
print("done", flush=True)
"#;

/// Opens `n` connections that each send part of a request head and stop,
/// waits until the server has refused all it will (503 and close), prints
/// how many it refused and how many of those said `Retry-After`, and
/// holds the rest open until its stdin closes.
const FLOOD: &str = r#"
import resource, select, socket, sys, time
port, n, expected = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    socks.append(s)
by_fd = {s.fileno(): s for s in socks}
poller = select.poll()
for fd in by_fd:
    poller.register(fd, select.POLLIN)
refused, retry = 0, 0
until = time.monotonic() + 20
while refused < expected and time.monotonic() < until:
    for fd, _ in poller.poll(200):
        poller.unregister(fd)
        data = by_fd[fd].recv(4096)
        if data.startswith(b"HTTP/1.1 503"):
            refused += 1
            retry += b"\r\nretry-after: 1\r\n" in data.lower()
print(refused, retry, flush=True)
sys.stdin.read()
"#;

/// `python3 -c SCRIPT ARGS` as `user`, stdout piped.
fn python_as(user: &User, script: &str, args: &[String]) -> Child {
    let mut command = Command::new(PYTHON);
    command.arg("-c").arg(script).args(args).env_clear();
    as_user(&mut command, Some(user))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs as the attacking user")
}

/// Whether Debian's python3 is there, which `make test` installs: when it
/// is not, the test is skipped, or fails under CI or as root.
fn has_python() -> bool {
    let found = std::path::Path::new(PYTHON).exists();
    crate::fixture::require(
        found,
        format_args!("{PYTHON} is not installed (Debian package python3)"),
    )
}

/// The status of one request over the server's Unix socket, sent by a
/// process of `user`.
fn over_socket_as(user: &User, server: &Server, path: &str) -> u16 {
    let socket = server.dir().path().join("dynport.sock");
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
print(s.recv(4096).split(b" ")[1].decode(), flush=True)
"#;
    let args = [socket.to_str().unwrap().to_string(), path.to_string()];
    status_of(python_as(user, script, &args))
}

/// The same over TCP from loopback.
fn over_tcp_as(user: &User, server: &Server, path: &str) -> u16 {
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
print(s.recv(4096).split(b" ")[1].decode(), flush=True)
"#;
    status_of(python_as(
        user,
        script,
        &[server.port.to_string(), path.into()],
    ))
}

fn status_of(child: Child) -> u16 {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no status: {text:?}"))
}

/// The value of the `/metrics` line starting with `name ` (labels included
/// in `name`).
fn metric(server: &Server, name: &str) -> f64 {
    let text = String::from_utf8(server.get("/metrics").body).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Keeps the workers busy with reads and holder lookups on `threads`
/// connections of this process until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(server: &Server, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let port = server.port;
        let threads = (0..threads)
            .map(|i| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let paths = [
                        format!("/api/v1/tools/port/state?port={port}"),
                        "/api/v1/ports/leases".to_string(),
                        "/api/v1/tools/port/state".to_string(),
                    ];
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let path = &paths[(i + done as usize) % paths.len()];
                        if crate::fixture::request(port, "GET", path, &[], b"").is_ok() {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the load; how many requests it made.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

#[test]
fn changes_on_sockets_closed_or_reset_at_once_are_never_anyone_elses() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    if !has_python() {
        return;
    }
    let range = free_range(40);
    let server = Launch::with_range(
        range,
        &[
            "--exclude",
            "none",
            "--token",
            TOKEN,
            "--max-ports-per-uid",
            "8",
        ],
    )
    .start();
    crate::trust::users::assert_reachable_by_all(server.dir().path());
    let dir = server.dir().path().to_str().unwrap().to_string();
    let bobs = crate::trust::support::dynport_as(
        Some(&bob),
        &["lease", "--state-dir", &dir, "--json", "--ttl", "600"],
        &[("DYNPORT_TOKEN", TOKEN)],
    );
    let bobs = crate::trust::support::lease_of(&bobs);
    let bob_id = bobs["id"].as_str().unwrap().to_string();
    let server_port = server.port;

    let load = Load::start(&server, 6);
    let rounds = 100;
    let args = [
        server.port.to_string(),
        TOKEN.into(),
        bob_id.clone(),
        rounds.to_string(),
    ];
    let forger = python_as(&alice, FORGER, &args);
    let out = forger.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let served = load.stop();
    assert!(served > 0, "the load made no request");
    // The server did not move (unidentified, Alice may not move it).
    let state = server.state();
    assert_eq!(
        state["server_port"], server_port,
        "the server moved: {state}"
    );
    // Every attempt is over once no connection but this check's is open.
    eventually(EXIT_TIMEOUT, "the attempts to be over", || {
        metric(&server, "dynport_http_open_connections") <= 1.0
    });

    // Bob's lease stands, and every lease there is is Bob's or one Alice
    // was granted as herself, within her quota.
    let state = server.state();
    assert_eq!(state["leases"][&bob_id]["uid"], bob.uid, "{state}");
    assert_eq!(
        server.get("/api/v1/server/port").json()["server_port"],
        server_port
    );
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    let mut alices_ports = 0;
    for lease in leases.as_array().unwrap() {
        let uid = &lease["uid"];
        assert!(
            *uid == bob.uid || *uid == alice.uid,
            "not Bob's nor Alice's: {lease}"
        );
        if *uid == alice.uid {
            alices_ports += lease["ports"].as_array().unwrap().len();
        }
    }
    assert!(
        alices_ports <= 8,
        "Alice holds {alices_ports} ports, over her quota"
    );
    // Root's token is not throttled by what Alice sent.
    let bearer = format!("Bearer {TOKEN}");
    let lease = server.post("/api/v1/ports/lease", "{}", &[("Authorization", &bearer)]);
    assert_eq!(lease.status, 201, "{:?}", lease.error());
    assert_eq!(lease.json()["lease"]["uid"], 0);
    let unidentified = r#"dynport_lease_denials_total{reason="unidentified"}"#;
    eprintln!(
        "{} attempts refused as unidentified, under {served} requests of load",
        metric(&server, unidentified)
    );
}

#[test]
fn one_users_flood_of_connections_leaves_everyone_else_answered() {
    flood_of_connections(Launch::with_range(free_range(12), &["--exclude", "none"]));
}

#[test]
fn the_same_under_a_hard_limit_of_1024_descriptors() {
    flood_of_connections(Launch::with_range(free_range(12), &["--exclude", "none"]).nofile(1024));
}

/// Alice opens 1,030 connections, each with half a request; past her share
/// each is refused at once, and Bob and root are answered meanwhile.
fn flood_of_connections(launch: Launch) {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    if !has_python() {
        return;
    }
    let server = launch.start();
    crate::trust::users::assert_reachable_by_all(server.dir().path());
    let share = share_of(&server);
    let n = 1030;
    let mut flood = python_as(
        &alice,
        FLOOD,
        &[
            server.port.to_string(),
            n.to_string(),
            (n - share).to_string(),
        ],
    );
    let mut line = String::new();
    let stdout = flood.stdout.as_mut().unwrap();
    let mut byte = [0u8];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let expected = format!("{} {}", n - share, n - share);
    assert_eq!(line, expected, "refused and with Retry-After, of {n}");
    // While Alice holds her whole share, Bob and root are answered over TCP
    // and the Unix socket alike.
    assert_eq!(over_tcp_as(&bob, &server, "/healthz"), 200);
    assert_eq!(over_socket_as(&bob, &server, "/healthz"), 200);
    assert_eq!(server.get("/healthz").status, 200);
    let mut root = UnixStream::connect(server.dir().path().join("dynport.sock")).unwrap();
    root.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    root.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    drop(flood.stdin.take());
    let _ = flood.wait();
}

/// The connections one user may hold, as the server logged it at start.
pub(crate) fn share_of(server: &Server) -> usize {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("open connections at most"))
        .unwrap_or_else(|| panic!("no connection caps in the log: {log}"));
    let per_user = line.rsplit_once(", ").unwrap().1;
    per_user
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no share in {line:?}"))
}

/// Leases `n` single ports with owners of 128 characters, so that the
/// lease list is about 330 bytes a lease.
fn fill(server: &Server, n: usize) {
    let owner = "o".repeat(128);
    let mut stream = crate::fixture::connect(server.port).unwrap();
    let body = format!(r#"{{"owner":"{owner}","ttl_secs":600}}"#);
    let request = format!(
        "POST /api/v1/ports/lease HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..n {
        stream.write_all(request.as_bytes()).unwrap();
        let head = read_answer(&mut stream);
        assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    }
}

/// One answer with a `Content-Length` from a kept-alive connection; its head.
fn read_answer(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn pipelined_reads_no_one_reads_do_not_multiply_memory() {
    let server = Launch::with_range(free_range(520), &["--exclude", "none"]).start();
    fill(&server, 500);
    let list = server.get("/api/v1/ports/leases").body.len();
    assert!(list > 150_000, "the list is {list} bytes");
    let request = b"GET /api/v1/ports/leases HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(2000);
    // Four connections send 2,000 reads of it each, and read nothing.
    let stuck: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = crate::fixture::connect(server.port).unwrap();
            stream.write_all(&request).unwrap();
            stream
        })
        .collect();
    // Unbounded, the server grew by gigabytes within two seconds.
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(vm_rss_kib(server.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(peak < 64 * 1024, "VmRSS reached {peak} KiB");
    assert_eq!(server.get("/healthz").status, 200, "others are served");
    drop(stuck);

    // A client that does read gets every answer, in order, whole.
    let mut stream = crate::fixture::connect(server.port).unwrap();
    let reads = 300;
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let request = b"GET /api/v1/ports/leases HTTP/1.1\r\nHost: localhost\r\n\r\n";
        writer.write_all(&request.repeat(reads)).unwrap();
    });
    for i in 0..reads {
        let head = read_answer(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "answer {i}: {head}");
    }
    sender.join().unwrap();
}

/// Token guesses from a fresh 127.x.y.z address each: `read` ones print
/// each answer's status on a line; blind ones reset the socket at once
/// (the attacker then looks for a new lease in the list, which anyone may
/// read), the last of them with the right token.
const GUESSER: &str = r#"
import socket, struct, sys
port, guesses, mode, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
for i in range(guesses):
    s = socket.socket()
    s.bind(("127.%d.%d.%d" % (1 + i // 250, 1 + i % 250, 3 if mode == "read" else 4), 0))
    s.connect(("127.0.0.1", port))
    guess = token if mode == "blind" and i == guesses - 1 else "guess%d" % i
    s.sendall(b"POST /api/v1/ports/lease HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n" % guess.encode())
    if mode == "read":
        print(s.recv(4096).split(b" ")[1].decode(), flush=True)
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
"#;

#[test]
fn token_guesses_from_rotating_loopback_addresses_count_against_their_user() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    if !has_python() {
        return;
    }
    let server = Launch::with_range(free_range(12), &["--token", TOKEN]).start();
    let guess = |mode: &str| {
        let args = [
            server.port.to_string(),
            "25".into(),
            mode.into(),
            TOKEN.into(),
        ];
        python_as(&alice, GUESSER, &args)
            .wait_with_output()
            .unwrap()
    };
    let out = guess("read");
    let statuses: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    // More than 20 failures within a minute: 429 for the rest of it.
    let mut expected = vec!["401"; 21];
    expected.extend(["429"; 4]);
    assert_eq!(statuses, expected, "one user, whatever her address");
    // Blind guesses on reset sockets are hers too, or unidentified and
    // never checked: they were once a remote caller's, one throttle key per
    // address, so the right token among them leased a port.
    assert!(guess("blind").status.success());
    eventually(EXIT_TIMEOUT, "the guesses to be over", || {
        metric(&server, "dynport_http_open_connections") <= 1.0
    });
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    assert_eq!(leases, serde_json::json!([]), "a blind guess leased a port");
    // Root, on the same loopback, is not blocked by her guesses.
    let bearer = format!("Bearer {TOKEN}");
    let lease = server.post("/api/v1/ports/lease", "{}", &[("Authorization", &bearer)]);
    assert_eq!(lease.status, 201);
}

/// Each round: binds port P, queues `n` connections (so the server
/// accepts the next one a little later), sends a change from P and resets
/// it, which frees P at once; then waits for the holder to take P.
const PAIR_THIEF: &str = r#"
import os, socket, struct, sys, time
port, p, n, rounds, dir, path, body = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7].encode()
method = "POST" if body else "DELETE"
req = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
for i in range(rounds):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p))
    queued = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    open(f"{dir}/bound.{i}", "w").close()
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(req)
    except OSError as e:
        print("round", i, e, file=sys.stderr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    until = time.monotonic() + 5
    while not os.path.exists(f"{dir}/done.{i}") and time.monotonic() < until:
        time.sleep(0.001)
    for q in queued:
        q.close()
print("done", flush=True)
"#;

/// Each round: once the thief holds P, connects from P as soon as it is
/// free again (as a port the kernel picks would be), holds the
/// connection a moment, and says so.
const PAIR_HOLDER: &str = r#"
import os, socket, struct, sys, time
port, p, rounds, dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for i in range(rounds):
    until = time.monotonic() + 5
    while not os.path.exists(f"{dir}/bound.{i}") and time.monotonic() < until:
        time.sleep(0.0002)
    while time.monotonic() < until:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        time.sleep(0.05)
        # A reset leaves no TIME-WAIT on P for the thief's next round.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        break
    open(f"{dir}/done.{i}", "w").close()
print("done", flush=True)
"#;

/// A change sent from an address pair that another user's socket takes
/// over right after the sender resets it: the lookup then finds that
/// user's live socket, so the change must not be decided as theirs.
#[test]
fn a_change_on_a_reset_connection_is_never_the_next_owner_of_its_address_pair() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    if !has_python() {
        return;
    }
    let server = Launch::with_range(
        free_range(40),
        &["--exclude", "none", "--max-ports-per-uid", "8"],
    )
    .start();
    let roots = server
        .post("/api/v1/ports/lease", r#"{"ttl_secs":600}"#, &[])
        .json();
    let roots = roots["lease"]["id"].as_str().unwrap().to_string();
    let signals = crate::fixture::TempDir::new();
    std::fs::set_permissions(
        signals.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let p = free_range(1).0.to_string();
    let rounds = "30";
    let dir = signals.path().to_str().unwrap().to_string();
    let release = format!("/api/v1/ports/leases/{roots}");
    for (path, body) in [
        ("/api/v1/ports/lease", r#"{"count":20,"ttl_secs":600}"#),
        (release.as_str(), ""),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let port = server.port.to_string();
        let thief = python_as(
            &alice,
            PAIR_THIEF,
            &[
                port.clone(),
                p.clone(),
                "100".into(),
                rounds.into(),
                dir.clone(),
                path.into(),
                body.into(),
            ],
        );
        // The next owner of the pair is root: this process's own user.
        let holder = Command::new(PYTHON)
            .args(["-c", PAIR_HOLDER, &port, &p, rounds, &dir])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        for child in [thief, holder] {
            let out = child.wait_with_output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
        }
    }
    eventually(EXIT_TIMEOUT, "the attempts to be over", || {
        metric(&server, "dynport_http_open_connections") <= 1.0
    });
    let leases = server.get("/api/v1/ports/leases").json()["leases"].clone();
    let ids: Vec<&str> = leases
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&roots.as_str()),
        "root's lease was released: {leases}"
    );
    for lease in leases.as_array().unwrap() {
        let ports = lease["ports"].as_array().unwrap().len();
        assert!(
            ports < 20,
            "leased as someone else, over the quota: {lease}"
        );
    }
}
