//! The servers under load: dynport (today's or the baseline build) on a
//! temporary state directory, and the two floors, each started, waited for
//! until it answers, and killed when dropped.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::procs::{Child, TempDir};

/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A server under load: dynport, the baseline or a floor.
pub struct Server {
    pub name: &'static str,
    pub port: u16,
    pub child: Child,
    state_dir: Option<TempDir>,
}

impl Server {
    /// dynport's state directory.
    pub fn state_dir(&self) -> Option<&Path> {
        Some(self.state_dir.as_ref()?.path())
    }

    /// Stops the server with SIGTERM (SIGKILL after 6 s) and hands back its
    /// state directory, which lives on.
    pub fn stop(self) -> Option<TempDir> {
        self.child.terminate(Duration::from_secs(6));
        self.state_dir
    }

    /// dynport's Unix socket: `STATE_DIR/dynport.sock`, its default.
    pub fn unix_socket(&self) -> Option<PathBuf> {
        Some(self.state_dir.as_ref()?.path().join("dynport.sock"))
    }
}

/// Starts the dynport binary `bin` as `name` with `--range` (one free port
/// when `None`), its own state directory and `--log-level warn`: flags the
/// baseline knows too, so both run alike.
pub fn start_dynport(bin: &Path, name: &'static str, range: Option<&str>) -> io::Result<Server> {
    start_dynport_with(bin, name, range, &[])
}

/// [`start_dynport`] with `extra` flags after the common ones.
pub fn start_dynport_with(
    bin: &Path,
    name: &'static str,
    range: Option<&str>,
    extra: &[&str],
) -> io::Result<Server> {
    let dir = TempDir::new(name)?;
    let range = match range {
        Some(range) => range.to_string(),
        None => {
            let port = free_port()?;
            format!("{port}-{port}")
        }
    };
    let mut cmd = Command::new(bin);
    cmd.args(["--range", &range, "--state-dir"])
        .arg(dir.path())
        .args(["--log-level", "warn"])
        .args(extra)
        .stdin(Stdio::null());
    let mut child = Child::spawn(&mut cmd, true)?;
    let port = wait_for_server_port(dir.path(), &mut child)?;
    wait_until_answering(port)?;
    eprintln!("bench: {name} (range {range}) serves on 127.0.0.1:{port}");
    Ok(Server {
        name,
        port,
        child,
        state_dir: Some(dir),
    })
}

/// dynport's port, from the state file it writes once it has bound it.
fn wait_for_server_port(dir: &Path, child: &mut Child) -> io::Result<u16> {
    let file = dir.join("dynamic_ports.json");
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if child.has_exited() {
            return Err(io::Error::other("dynport exited at start"));
        }
        let port = std::fs::read(&file)
            .ok()
            .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
            .and_then(|state| state["server_port"].as_u64())
            .and_then(|port| u16::try_from(port).ok());
        if let Some(port) = port {
            return Ok(port);
        }
        thread::sleep(Duration::from_millis(5));
    }
    Err(io::Error::other("dynport wrote no server_port within 10 s"))
}

pub fn wait_until_answering(port: u16) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match Client::connect(port).and_then(|mut c| c.request("GET", "/healthz", b"")) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Waits until dynport answers `GET /healthz` on its Unix socket.
pub fn wait_for_unix_socket(path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match Client::unix(path).and_then(|mut c| c.request("GET", "/healthz", b"")) {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => {
                return Err(io::Error::other(format!(
                    "GET /healthz on {} answered {status}",
                    path.display()
                )));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::other(format!(
                    "no answer on {}: {e}",
                    path.display()
                )));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Starts the floor `example` (in `examples`), answering `body` bytes with
/// 4 workers.
pub fn start_floor(
    examples: &Path,
    example: &str,
    name: &'static str,
    body: usize,
) -> io::Result<Server> {
    let mut cmd = Command::new(examples.join(example));
    cmd.args([body.to_string(), "4".to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = Child::spawn(&mut cmd, true)?;
    let addr = child.read_line_after("listening on http://")?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::other(format!("{example} printed {addr:?}: {e}")))?;
    wait_until_answering(addr.port())?;
    eprintln!("bench: {name} ({example}) serves on {addr}");
    Ok(Server {
        name,
        port: addr.port(),
        child,
        state_dir: None,
    })
}

/// A port of 127.0.0.1 free right now (the kernel's pick).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
