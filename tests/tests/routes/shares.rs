//! Tunnels count in the connection share of the client's user: a second
//! local user (`dynport-alice`, made when the tests run as root) holds
//! WebSocket tunnels up to `--max-connections-per-uid`, and her next
//! connection is refused with 503, while other users still get through.

use super::backends::DevServer;
use super::{host, lease, start, ws};
use crate::fairness::share_of;
use crate::trust::users::{Proc, User, alice_and_bob, as_user};
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdout, Command, Stdio};

const PYTHON: &str = "/usr/bin/python3";
const SHARE: usize = 4;

/// Opens `n` WebSocket tunnels through `Host: host` and prints their
/// statuses on a line, then the status of one more connection; after a
/// line on stdin closes them all, then prints the status of a new one
/// (retried while the server has not yet seen the closes), and holds that
/// one until stdin closes.
const TUNNELS: &str = r#"
import socket, sys, time
port, n, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def tunnel():
    s = socket.create_connection(("127.0.0.1", port))
    data = b""
    try:
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        return s, type(e).__name__
    return s, data.split(b" ")[1].decode() if data else "closed"
held = [tunnel() for _ in range(n)]
print(" ".join(status for _, status in held), flush=True)
extra, status = tunnel()
print(status, flush=True)
extra.close()
sys.stdin.readline()
for s, _ in held:
    s.close()
until = time.monotonic() + 10
while True:
    s, status = tunnel()
    if status == "101" or time.monotonic() > until:
        break
    s.close()
    time.sleep(0.05)
print(status, flush=True)
sys.stdin.read()
"#;

fn python_as(user: &User, args: &[String]) -> Proc {
    let mut command = Command::new(PYTHON);
    command.arg("-c").arg(TUNNELS).args(args).env_clear();
    let child = as_user(&mut command, Some(user))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs as the second user");
    Proc(child)
}

fn line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn websocket_tunnels_count_in_the_clients_connection_share() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let present = std::path::Path::new(PYTHON).exists();
    if !crate::fixture::require(present, format_args!("{PYTHON} is not installed")) {
        return;
    }
    let server = start(&["--max-connections-per-uid", &SHARE.to_string()]);
    assert_eq!(share_of(&server), SHARE);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    let args = [p.to_string(), SHARE.to_string(), host("web", p)];
    let mut tunnels = python_as(&alice, &args);
    let mut out = BufReader::new(tunnels.0.stdout.take().unwrap());
    assert_eq!(line(&mut out), ["101"; SHARE].join(" "));
    assert_eq!(line(&mut out), "503", "a tunnel past the share");
    assert_eq!(web.requests(), SHARE);
    // Others are not held back by her tunnels: root, and Bob.
    let mut mine = ws::Client::open(p, &host("web", p), "/ws");
    mine.send_text("root");
    assert_eq!(mine.recv().unwrap().payload, b"root");
    let mut bobs = python_as(&bob, &[p.to_string(), "1".into(), host("web", p)]);
    let mut bob_out = BufReader::new(bobs.0.stdout.take().unwrap());
    assert_eq!(line(&mut bob_out), "101");
    drop(bobs);
    // Her tunnels closed, her share is hers again.
    let mut stdin = tunnels.0.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    assert_eq!(line(&mut out), "101", "a tunnel after hers closed");
}
