//! The fixture of the client tests: a real server on a port window found
//! free at run time, a temporary state directory, the client run with a
//! time bound, and every process killed when its handle drops.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dynport");
/// Far beyond what any step needs, so that only a hang fails on it.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// Ports per server: one for the server, the rest to lease.
const WINDOW: u16 = 10;

/// A child process killed and reaped when dropped.
pub struct Proc(Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit, failing the test after [`PATIENCE`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "process {} hung", self.pid());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // Through kill(1), as a user would, and without unsafe code here.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU16 = AtomicU16::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("dynport-client-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A window of `WINDOW` ports that could all be bound just now. Windows of
/// one test run never overlap: they step up from one random base.
pub fn free_window() -> (u16, u16) {
    static BASE: OnceLock<u16> = OnceLock::new();
    static NEXT: Mutex<u16> = Mutex::new(0);
    let base = *BASE.get_or_init(|| 20000 + (RandomState::new().hash_one(0u8) % 10000) as u16);
    let mut next = NEXT.lock().unwrap();
    loop {
        let start = base + *next * WINDOW;
        *next += 1;
        assert!(start < 32000 + WINDOW, "no free port window found");
        let end = start + WINDOW - 1;
        let all_free = (start..=end).all(|p| TcpListener::bind(("0.0.0.0", p)).is_ok());
        if all_free {
            return (start, end);
        }
    }
}

/// A running `dynport` server with its own state directory.
pub struct Server {
    proc: Option<Proc>,
    dir: TempDir,
    pub range: (u16, u16),
}

impl Server {
    pub fn start() -> Server {
        Server::with(&[])
    }

    pub fn with(extra: &[&str]) -> Server {
        let dir = TempDir::new();
        let range = free_window();
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let child = Command::new(BIN)
            .args(["--range", &format!("{}-{}", range.0, range.1)])
            .arg("--state-dir")
            .arg(&dir.0)
            .args(["--exclude", "none", "--log-level", "debug"])
            .args(extra)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server {
            proc: Some(Proc(child)),
            dir,
            range,
        };
        server.wait_until_serving();
        server
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.0.join("dynamic_ports.json")
    }

    pub fn state_dir(&self) -> &str {
        self.dir.0.to_str().unwrap()
    }

    /// The port the state file says the server listens on.
    pub fn port(&self) -> Option<u16> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        let state: serde_json::Value = serde_json::from_str(&text).ok()?;
        state["server"].as_object()?;
        state["server_port"].as_u64().map(|p| p as u16)
    }

    fn wait_until_serving(&self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(port) = self.port()
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let mut proc = self.proc.take().unwrap();
        proc.signal(15);
        assert!(proc.wait().success(), "{}", self.log());
    }

    /// Runs the client against this server, through its state directory.
    pub fn client(&self, args: &[&str]) -> Out {
        // Right after the command's name: `run` passes what follows CMD to CMD.
        let mut all = vec![args[0], "--state-dir", self.state_dir()];
        all.extend(&args[1..]);
        client(&all, &[])
    }

    pub fn in_range(&self, text: &str) -> u16 {
        let port: u16 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a port: {text:?}"));
        assert!(
            (self.range.0..=self.range.1).contains(&port),
            "{port} not in {:?}",
            self.range
        );
        port
    }

    /// The live leases, from `dynport leases --json`.
    pub fn leases(&self) -> Vec<serde_json::Value> {
        let out = self.client(&["leases", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let body: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        body["leases"].as_array().unwrap().clone()
    }
}

/// What a client invocation printed and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn client(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().envs(env.iter().copied());
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    finish(&mut command)
}

/// Runs `command` to its end within [`PATIENCE`], capturing its output.
pub fn finish(command: &mut Command) -> Out {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let readers = [
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    ];
    let mut proc = Proc(child);
    let status = proc.wait();
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

/// Starts `dynport run ARGS` in the background, its stdout piped.
pub fn spawn_run(server: &Server, args: &[&str]) -> (Proc, BufReader<ChildStdout>) {
    let mut child = Command::new(BIN)
        .arg("run")
        .args(["--state-dir", server.state_dir()])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (Proc(child), stdout)
}

/// Polls `GET /` on `port` until it answers 200.
pub fn wait_for_http(port: u16) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            conn.set_read_timeout(Some(PATIENCE)).unwrap();
            let _ = conn.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = conn.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.0 200") {
                return true;
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether `pid` has exited (a zombie counts: nothing may reap it here).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
    }
}

pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(50));
    }
}
