//! At most 8 open streams a user: the 9th is 429 with `Retry-After`, and
//! `dynport watch` says the server's refusal with exit 1; operators are
//! not counted; a stream closed makes room. The user is `dynport-alice`,
//! made when the tests run as root; otherwise the test says it is skipped.

use super::support::open;
use crate::fixture::{BIN, EXIT_TIMEOUT, Server, for_everyone, run_to_end};
use crate::trust::users::{alice_and_bob, as_user};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Opens 8 streams and prints each status; asks for a 9th and prints its
/// head (lines joined by `|`) and body; then, at a line on stdin, closes
/// one stream and asks again until it gets one (40 s at most: past a keepalive), prints
/// that status, and holds its streams until stdin closes.
const STREAMS: &str = r#"
import socket, sys, time
port = int(sys.argv[1])
def request():
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = [int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:")]
    while length and len(body) < length[0]:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return s, lines, body
held = []
for _ in range(8):
    s, lines, _ = request()
    held.append(s)
    print(lines[0].split(" ")[1], flush=True)
s, lines, body = request()
s.close()
print("|".join(lines), flush=True)
print(body.decode(), flush=True)
sys.stdin.readline()
held.pop(0).close()
deadline = time.monotonic() + 40
while True:
    s, lines, _ = request()
    status = lines[0].split(" ")[1]
    if status == "200" or time.monotonic() > deadline:
        break
    s.close()
    time.sleep(0.05)
held.append(s)
print(status, flush=True)
sys.stdin.read()
"#;

#[test]
fn a_users_ninth_stream_is_429_with_retry_after_and_operators_are_not_counted() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    // Debian's, which every user may run, not one of root's own.
    let python = Path::new("/usr/bin/python3");
    if !crate::fixture::require(
        python.exists(),
        format_args!("{} is not installed", python.display()),
    ) {
        return;
    }
    let server = Server::start(&[]);
    let mut command = Command::new(python);
    command.arg("-c").arg(STREAMS).arg(server.port.to_string());
    let mut child = as_user(&mut command, Some(&alice))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs as dynport-alice");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut line = || lines.next().expect("a line").expect("UTF-8");
    let statuses: Vec<String> = (0..8).map(|_| line()).collect();
    assert_eq!(statuses, ["200"; 8]);
    let head = line();
    let body = line();
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    let retry = head.split('|').find_map(|h| {
        h.to_ascii_lowercase()
            .strip_prefix("retry-after:")
            .map(str::to_string)
    });
    let retry: u64 = retry
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    assert!(retry >= 1, "{head}");
    let said: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let said = said["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();

    // `dynport watch` of hers is refused the same way: exit 1, the message.
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut watch = Command::new(for_everyone(Path::new(BIN)));
    as_user(watch.args(["watch", "--url", &url]), Some(&alice));
    let (status, out, err) = run_to_end(&mut watch, EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert_eq!(err, format!("dynport: {said}\n"));
    assert_eq!(out, "");

    // Root, an operator, opens more than 8 at once.
    let mine: Vec<_> = (0..10).map(|_| open(&server, None)).collect();
    assert_eq!(mine.len(), 10);

    // One of hers closed, she may open another.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    assert_eq!(line(), "200", "a stream closed makes room");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
