//! Each user's share of holder lookups, through the real binary run as
//! root with two real local users: a socket held only inside an
//! `SCM_RIGHTS` message in flight (so no `/proc/*/fd` names it and a
//! lookup would walk every process) beside a process of many descriptors
//! makes a user's lookup stop at its budget (`complete: false`), more
//! than one at a time or ten a second is 429, and a user sees the process
//! behind only their own sockets while an operator sees every one.

use super::{HOG, Holding, cells, holder, other_port, port_state, start};
use crate::fixture::{BIN, EXIT_TIMEOUT, Server, for_everyone, run_to_end};
use crate::trust::users::{User, alice_and_bob, as_user};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A user's client: with `inflight`, first binds a TCP listener on the
/// port, sends it over a socketpair and closes it, so that only the
/// message in flight holds it; then has `fds` more descriptors open
/// (copies of one, which cost a walk as much as any), in as many child
/// processes as its hard `RLIMIT_NOFILE` asks (without `CAP_SYS_RESOURCE`
/// no one may raise it), each ending when it does; says `ready`, and for each
/// line `burst N` or `until429 N` asks the port's state: N requests at
/// once on N connections, or one after another until a 429 (at most N).
/// Prints each batch's answers as one JSON line.
const CLIENT: &str = r#"
import array, json, os, resource, socket, sys
port, server, inflight, fds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
sys.stdin.readline()
if inflight:
    l = socket.socket()
    l.bind(("127.0.0.1", port))
    l.listen()
    a, b = socket.socketpair()
    a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [l.fileno()]))])
    l.close()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
each, children = hard - 64, 0
alive_r, alive_w = os.pipe()
ready_r, ready_w = os.pipe()
while fds > 0:
    n, fds, children = min(fds, each), fds - each, children + 1
    if os.fork() == 0:
        os.close(alive_w)
        null = os.open("/dev/null", os.O_RDONLY)
        for _ in range(n):
            os.dup(null)
        os.write(ready_w, b"x")
        os.read(alive_r, 1)
        os._exit(0)
while children > 0:
    children -= len(os.read(ready_r, children))
print("ready", flush=True)
request = ("GET /api/v1/tools/port/state?port=%d HTTP/1.1\r\nHost: localhost\r\n"
           "Connection: close\r\n\r\n" % port).encode()
def answer(c):
    data = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((k.lower(), v) for k, v in (l.split(": ", 1) for l in lines[1:]))
    return {"status": int(lines[0].split()[1]), "retry_after": headers.get("retry-after"),
            "body": json.loads(body)}
for line in sys.stdin:
    kind, n = line.split()
    out = []
    if kind == "burst":
        conns = [socket.create_connection(("127.0.0.1", server)) for _ in range(int(n))]
        for c in conns:
            c.sendall(request)
        out = [answer(c) for c in conns]
    else:
        for _ in range(int(n)):
            c = socket.create_connection(("127.0.0.1", server))
            c.sendall(request)
            out.append(answer(c))
            if out[-1]["status"] == 429:
                break
    print(json.dumps(out), flush=True)
"#;

/// Descriptors the attacking client opens: a walk of them costs about
/// 4.5 µs each on a 2-core VM, so even a machine many times faster takes
/// more than a lookup's 100 ms.
const MANY_FDS: u32 = 200_000;

/// [`CLIENT`] as a user, killed when dropped.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    /// Starts it as `user` asking `server` about `port`; `None`, saying
    /// so, without python3.
    fn start(user: &User, server: &Server, port: u16, inflight: bool, fds: u32) -> Option<Client> {
        // By name: the other user's PATH finds it, not this one's.
        crate::fixture::require_tool("python3")?;
        let mut command = Command::new("python3");
        let args = [port, server.port, u16::from(inflight)].map(|n| n.to_string());
        command.args(["-c", CLIENT]).args(args).arg(fds.to_string());
        as_user(&mut command, Some(user)).current_dir("/");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut client = Client {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        writeln!(client.stdin, "go").unwrap();
        assert_eq!(client.line(), "ready\n", "the client could not set up");
        Some(client)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// The answers to one batch: `burst N` or `until429 N`.
    fn ask(&mut self, batch: &str) -> Vec<Value> {
        writeln!(self.stdin, "{batch}").unwrap();
        let line = self.line();
        let answers: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        answers.as_array().unwrap().clone()
    }

    /// One lookup's `body`, which must be a 200.
    fn one(&mut self) -> Value {
        let answer = self.ask("burst 1").remove(0);
        assert_eq!(answer["status"], 200, "{answer}");
        answer["body"].clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dynport who PORT` over TCP as `user`: exit status and stdout.
fn who_as(user: &User, server: &Server, port: u16) -> (Option<i32>, String) {
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut command = Command::new(for_everyone(std::path::Path::new(BIN)));
    command
        .args(["who", &port.to_string(), "--url", &url])
        .env_clear();
    let (status, stdout, stderr) = run_to_end(as_user(&mut command, Some(user)), EXIT_TIMEOUT);
    assert_eq!(stderr, "");
    (status.code(), stdout)
}

#[test]
fn issue_17_a_socket_in_flight_beside_many_descriptors_costs_a_user_one_bounded_lookup_at_a_time() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let _alone = HOG.write().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let port = other_port(&server);
    let Some(mut attacker) = Client::start(&alice, &server, port, true, MANY_FDS) else {
        return;
    };
    // The listener is alice's, held by no descriptor: no process to name.
    let hidden = [holder(
        "tcp",
        "127.0.0.1",
        alice.uid,
        Value::Null,
        Value::Null,
    )];
    let body = attacker.one();
    assert_eq!(
        (&body["holders"], &body["complete"]),
        (&json!(hidden), &json!(false)),
        "alice's lookup stops at its budget: {body}"
    );

    let (status, stdout) = who_as(&alice, &server, port);
    assert_eq!(status, Some(0), "{stdout}");
    assert!(
        stdout.ends_with(
            "the list may be incomplete: the lookup of processes stopped after 100 ms, \
             so a - under PID may be one not looked into\n"
        ),
        "{stdout}"
    );

    let answers = attacker.ask("burst 16");
    let refused: Vec<&Value> = answers.iter().filter(|a| a["status"] == 429).collect();
    let statuses: Vec<&Value> = answers.iter().map(|a| &a["status"]).collect();
    assert!(!refused.is_empty(), "16 at once: {statuses:?}");
    for answer in &answers {
        match answer["status"].as_u64() {
            Some(200) => assert_eq!(answer["body"]["complete"], false, "{answer}"),
            Some(429) => {
                assert_eq!(answer["retry_after"], "1", "{answer}");
                let error = answer["body"]["error"].as_str().unwrap_or_default();
                let why = format!(
                    "uid {} has a holder lookup running; one at a time",
                    alice.uid
                );
                let often = format!(
                    "uid {} began 10 holder lookups within the last second",
                    alice.uid
                );
                assert!(
                    error.starts_with(&why) || error.starts_with(&often),
                    "{answer}"
                );
            }
            _ => panic!("neither 200 nor 429: {answer}"),
        }
    }
    // The operator's lookup is not refused while alice is.
    assert_eq!(port_state(server.port, port)["holders"], json!(hidden));
}

#[test]
fn issue_17_a_user_gets_at_most_ten_lookups_a_second() {
    let Some((_, bob)) = alice_and_bob() else {
        return;
    };
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let port = other_port(&server);
    let Some(mut client) = Client::start(&bob, &server, port, false, 0) else {
        return;
    };
    let answers = client.ask("until429 200");
    let statuses: Vec<u64> = answers
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses[..10], [200; 10], "the first ten always pass");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let last = answers.last().unwrap();
    assert_eq!(last["retry_after"], "1", "{last}");
    let why = format!(
        "uid {} began 10 holder lookups within the last second, the most one caller may: \
         try again in 1 s",
        bob.uid
    );
    assert_eq!(last["body"]["error"], why.as_str());
}

#[test]
fn issue_17_a_user_sees_the_process_behind_only_their_own_sockets_and_an_operator_every_one() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let _shared = HOG.read().unwrap_or_else(|p| p.into_inner());
    let server = start();
    let (first, last) = server.range();
    let free: Vec<u16> = (first..=last).filter(|&p| p != server.port).collect();
    let (bobs_port, alices_port) = (free[0], free[1]);
    let Some(bobs) = Holding::start(bobs_port, &["tcp"], Some(&bob)) else {
        return;
    };
    let Some(alices) = Holding::start(alices_port, &["tcp"], Some(&alice)) else {
        return;
    };
    let shown = |user: &User, pid: u32| {
        json!([holder(
            "tcp",
            "127.0.0.1",
            user.uid,
            json!(pid),
            json!("python3")
        )])
    };
    let hidden = json!([holder(
        "tcp",
        "127.0.0.1",
        bob.uid,
        Value::Null,
        Value::Null
    )]);

    let mut as_alice = Client::start(&alice, &server, bobs_port, false, 0).unwrap();
    let body = as_alice.one();
    assert_eq!(
        (&body["holders"], &body["complete"]),
        (&hidden, &json!(true)),
        "{body}"
    );
    let mut as_bob = Client::start(&bob, &server, bobs_port, false, 0).unwrap();
    assert_eq!(as_bob.one()["holders"], shown(&bob, bobs.pid()));
    let operator = port_state(server.port, bobs_port);
    assert_eq!(operator["holders"], shown(&bob, bobs.pid()), "{operator}");

    let mut own = Client::start(&alice, &server, alices_port, false, 0).unwrap();
    assert_eq!(own.one()["holders"], shown(&alice, alices.pid()));
    let (status, stdout) = who_as(&alice, &server, bobs_port);
    let uid = bob.uid.to_string();
    let row = vec!["tcp", "127.0.0.1", &uid, "dynport-bob", "-", "-"];
    assert_eq!(
        (status, cells(&stdout).get(1)),
        (Some(0), Some(&row)),
        "{stdout}"
    );
}
