//! The trust tests' way to the server: started on a fresh window, asked
//! through the client (over the Unix socket or TCP) or curl as some user,
//! or over the socket straight from this process.

use super::users::{User, as_user};
use crate::fixture::{BIN, EXIT_TIMEOUT, Launch, Server, free_range};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

pub const LEASE: &str = "/api/v1/ports/lease";
pub const CHANGE: &str = "/api/v1/server/port/change";

/// A server on a fresh window of 12 ports, none excluded.
pub fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--exclude", "none"];
    args.extend(extra);
    Launch::with_range(free_range(12), &args).start()
}

pub fn state_dir(server: &Server) -> &str {
    server.dir().path().to_str().unwrap()
}

/// `dynport COMMAND --state-dir DIR REST…` as `user`: the client finds the
/// server through the state file and talks over its Unix socket.
pub fn client(server: &Server, user: Option<&User>, args: &[&str]) -> Out {
    let mut all = vec![args[0], "--state-dir", state_dir(server)];
    all.extend(&args[1..]);
    dynport_as(user, &all, &[])
}

/// The same over TCP: `--url http://127.0.0.1:PORT`.
pub fn client_tcp(server: &Server, user: Option<&User>, args: &[&str]) -> Out {
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut all = vec![args[0], "--url", &url];
    all.extend(&args[1..]);
    dynport_as(user, &all, &[])
}

/// The lease a successful `dynport lease --json` printed.
pub fn lease_of(out: &Out) -> Value {
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    out.json()["lease"].clone()
}

/// Checks a client run failed with exit `code` and exactly `message`.
pub fn assert_fails(out: &Out, code: i32, message: &str) {
    let expected = format!("dynport: {message}\n");
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (code, "", expected.as_str())
    );
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `dynport args` as `user` (this process when `None`) in an
/// environment of `PATH` and `env` only.
pub fn dynport_as(user: Option<&User>, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut command = Command::new(crate::fixture::for_everyone(std::path::Path::new(BIN)));
    command.args(args).env_clear().envs(env.iter().copied());
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    run(as_user(&mut command, user))
}

fn run(command: &mut Command) -> Out {
    let (status, stdout, stderr) = crate::fixture::run_to_end(command, EXIT_TIMEOUT);
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Whether curl is installed, which `make test` installs: when it is not,
/// the curl part is skipped, or fails under CI or as root.
pub fn has_curl() -> bool {
    crate::fixture::require_tool("curl").is_some()
}

/// Where curl sends a request: TCP to the server's port, or its socket.
pub enum Via<'a> {
    Tcp(&'a Server),
    Unix(&'a Server),
}

/// `curl -X METHOD` of `path` as `user`, a POST or PUT with `body`
/// (perhaps empty, still with its `Content-Length`): the status and the
/// JSON body.
pub fn curl_as(
    user: Option<&User>,
    via: Via,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut command = Command::new("curl");
    command.args(["-sS", "-X", method, "-w", "\n%{http_code}"]);
    let url = match via {
        Via::Tcp(server) => format!("http://127.0.0.1:{}{path}", server.port),
        Via::Unix(server) => {
            let socket = server.dir().path().join("dynport.sock");
            command.arg("--unix-socket").arg(socket);
            format!("http://localhost{path}")
        }
    };
    if method == "POST" || method == "PUT" {
        command.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    let out = run(as_user(command.arg(url), user));
    assert_eq!(out.code, 0, "curl failed: {out:?}");
    let (body, status) = out.stdout.rsplit_once('\n').expect("curl printed a status");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status.parse().expect("a status code"), json)
}

/// One request over the server's Unix socket, from this process.
pub fn over_socket(server: &Server, method: &str, path: &str, body: &str) -> crate::fixture::Reply {
    let socket = server.dir().path().join("dynport.sock");
    let mut stream = UnixStream::connect(socket).expect("the socket accepts");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    crate::fixture::parse_reply(&answer).unwrap()
}
