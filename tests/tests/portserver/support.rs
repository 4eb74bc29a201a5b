//! The portserver tests' tools: a server with a portserver socket of its
//! own, raw protocol clients, and Python processes that pick ports through
//! the real `portpicker` and hold them until told to exit.

use crate::fixture::{Launch, Server, free_range};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a raw client waits for the server to answer or close.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A portserver name no other test (nor test run) uses.
pub fn unique_name(test: &str) -> String {
    format!("@dynport-test-{}-{test}", std::process::id())
}

/// A server on a fresh window of `ports` ports, none excluded, serving the
/// portserver protocol on `address`, its refresh pass every second.
pub fn start(ports: u16, address: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--exclude",
        "none",
        "--refresh-secs",
        "1",
        "--portserver-socket",
        address,
    ];
    args.extend(extra);
    Launch::with_range(free_range(ports), &args).start()
}

/// Connects to `address` (a path, or `@name`).
pub fn connect(address: &str) -> UnixStream {
    let stream = match address.strip_prefix('@') {
        Some(name) => {
            let addr = SocketAddr::from_abstract_name(name).unwrap();
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(address),
    };
    let stream = stream.unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    stream
}

/// Sends `request` and reads until the server closes: what it answered.
pub fn ask(address: &str, request: &[u8]) -> String {
    let mut stream = connect(address);
    // The server may close before it has read all of a bad request.
    let _ = stream.write_all(request);
    read_to_close(&mut stream)
}

/// Everything the server writes until it closes; fails after the timeout.
/// A server that closes with bytes of ours unread resets the connection
/// (Linux does that for Unix sockets): that is a close too.
pub fn read_to_close(stream: &mut UnixStream) -> String {
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the portserver neither answered nor closed: {e}"),
    }
    String::from_utf8(answer).unwrap()
}

/// The live leases, from the API.
pub fn leases(server: &Server) -> Vec<Value> {
    let reply = server.get("/api/v1/ports/leases");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["leases"].as_array().unwrap().clone()
}

/// The live lease holding `port`.
pub fn lease_of(server: &Server, port: u16) -> Option<Value> {
    let holds = |l: &Value| l["ports"].as_array().unwrap().contains(&port.into());
    leases(server).into_iter().find(holds)
}

/// A counter of `GET /metrics`, by its whole name with labels.
pub fn metric(server: &Server, name: &str) -> u64 {
    let body = String::from_utf8(server.get("/metrics").body).unwrap();
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
    let value = line.unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"));
    value.parse().unwrap()
}

/// Whether `python3` can import portpicker, which `make test-deps`
/// installs: when it cannot, the test is skipped, or fails under CI or as
/// root ([`crate::fixture::require`]).
pub fn has_portpicker() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        let status = Command::new("python3")
            .args(["-c", "import portpicker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        status.is_ok_and(|s| s.success())
    });
    crate::fixture::require(
        found,
        format_args!(
            "python3 cannot import portpicker (pip package portpicker, Debian package python3-portpicker)"
        ),
    )
}

/// Picks `count` ports through `portpicker.pick_unused_port()`, checks
/// each can be bound in TCP and UDP, prints it all as one JSON line and
/// holds the ports until its stdin closes.
const HOLDER: &str = r#"
import json, os, socket, sys, portpicker

def bindable(port):
    # As a server binds: SO_REUSEADDR for TCP, so that the TIME_WAIT left
    # by a connection of another test on this port does not count; dynport
    # checks the same way.
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", port))
            s.close()
        return True
    except OSError:
        return False

ports = [portpicker.pick_unused_port() for _ in range(int(sys.argv[1]))]
print(json.dumps({"pid": os.getpid(), "ports": ports,
                  "bindable": [bindable(p) for p in ports]}), flush=True)
sys.stdin.read()
"#;

/// Asks the portserver once, without portpicker's fallback: the port, or
/// `null` when the server gave none.
const ASK_ONCE: &str = r#"
import os, portpicker
print(portpicker.get_port_from_port_server(os.environ["PORTSERVER_ADDRESS"]))
"#;

/// A Python process holding the ports portpicker gave it.
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    pub pid: u32,
    pub ports: Vec<u16>,
    pub bindable: Vec<bool>,
}

impl Holder {
    /// Starts a holder of `count` ports against `address`; `ready` reads
    /// what it picked.
    pub fn spawn(address: &str, count: usize) -> Holder {
        let mut child = Command::new("python3")
            .args(["-c", HOLDER, &count.to_string()])
            .env("PORTSERVER_ADDRESS", address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take();
        Holder {
            child,
            stdin,
            pid: 0,
            ports: Vec::new(),
            bindable: Vec::new(),
        }
    }

    /// Waits for the line the holder prints once it has its ports.
    pub fn ready(mut self) -> Holder {
        let mut line = String::new();
        let stdout = self.child.stdout.as_mut().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let got: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the holder printed {line:?}: {e}"));
        self.pid = got["pid"].as_u64().unwrap() as u32;
        let ports = got["ports"].as_array().unwrap().iter();
        self.ports = ports.map(|p| p.as_u64().unwrap() as u16).collect();
        let bindable = got["bindable"].as_array().unwrap().iter();
        self.bindable = bindable.map(|b| b.as_bool().unwrap()).collect();
        self
    }

    /// Lets the holder exit, and waits for it.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the holder exited with {status}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `portpicker.get_port_from_port_server` in a process of its own.
pub fn ask_once(address: &str) -> Option<u16> {
    let out = Command::new("python3")
        .args(["-c", ASK_ONCE])
        .env("PORTSERVER_ADDRESS", address)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    match text.trim() {
        "None" => None,
        port => Some(port.parse().unwrap_or_else(|_| panic!("printed {text:?}"))),
    }
}
