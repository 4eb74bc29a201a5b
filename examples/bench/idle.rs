//! Idle means asleep: the voluntary context switches of all of dynport's
//! threads over 10 s with nothing to do (`--refresh-secs 60`, the default),
//! then over 10 s with 100 kept-alive connections open and idle, each
//! after one request (their idle timeout is 30 s, so nothing is due).

use std::io;
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
    eprintln!(
        "bench: idle: {alone} voluntary context switches in {} s; {kept_alive} with {KEPT_ALIVE} idle kept-alive connections",
        WINDOW.as_secs()
    );
    Ok(Idle { alone, kept_alive })
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
