//! Idle means asleep: the voluntary context switches of all of dynport's
//! threads over 10 s with nothing to do (`--refresh-secs 60`, the default),
//! then over 10 s with 100 kept-alive connections open and idle, each
//! after one request (their idle timeout is 30 s, so nothing is due), then
//! over 10 s with one event stream open (`GET /api/v1/events`) and nothing
//! happening. A stream's keep-alive comment goes out on a 15 s tick shared
//! by every stream: the window starts just after a tick, so it sees none,
//! and what it measures is that an open stream costs nothing between them.

use std::io::{self, Read, Write};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::client::Client;
use crate::servers::start_dynport;

/// How long each window is watched.
const WINDOW: Duration = Duration::from_secs(10);
/// Kept-alive connections open in the second window.
const KEPT_ALIVE: usize = 100;

/// Context switches over the two windows.
pub struct Idle {
    pub alone: u64,
    pub kept_alive: u64,
    pub event_stream: u64,
}

pub fn idle(bin: &Path) -> io::Result<Idle> {
    let server = start_dynport(bin, "idle", None)?;
    let pid = server.child.pid();
    Client::connect(server.port)?.request("GET", "/healthz", b"")?;
    thread::sleep(Duration::from_secs(1));
    let alone = switches_over(pid, WINDOW)?;
    let mut clients = (0..KEPT_ALIVE)
        .map(|_| Client::connect(server.port))
        .collect::<io::Result<Vec<_>>>()?;
    for client in &mut clients {
        client.request("GET", "/healthz", b"")?;
    }
    thread::sleep(Duration::from_millis(500));
    let kept_alive = switches_over(pid, WINDOW)?;
    drop(clients);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port))?;
    stream.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 512];
    let n = stream.read(&mut head)?;
    if !head[..n].starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other("the event stream did not open"));
    }
    // Just after a keep-alive tick: read the next comment, then watch.
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut comment = [0u8; 64];
    if stream.read(&mut comment)? == 0 {
        return Err(io::Error::other("the event stream closed"));
    }
    thread::sleep(Duration::from_millis(200));
    let event_stream = switches_over(pid, WINDOW)?;
    drop(stream);
    eprintln!(
        "bench: idle: {alone} voluntary context switches in {} s; {kept_alive} with {KEPT_ALIVE} idle kept-alive connections; {event_stream} with one event stream",
        WINDOW.as_secs()
    );
    Ok(Idle {
        alone,
        kept_alive,
        event_stream,
    })
}

/// How many voluntary context switches all threads of `pid` made in `window`.
fn switches_over(pid: u32, window: Duration) -> io::Result<u64> {
    let before = switches(pid)?;
    thread::sleep(window);
    Ok(switches(pid)?.saturating_sub(before))
}

fn switches(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .ok_or_else(|| io::Error::other("no voluntary_ctxt_switches in /proc"))?;
        total += line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}
