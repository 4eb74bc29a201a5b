//! What only the client tests need on top of the shared fixture: a server
//! whose whole window is leasable, the client run with a time bound in an
//! empty environment, and `dynport run` in the background, killed when its
//! handle drops.

use crate::fixture::{BIN, Launch, Server, free_range};
use std::io::{BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Far beyond what any step needs, so that only a hang fails on it.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// Ports per server: one for the server, the rest to lease.
const WINDOW: u16 = 10;

/// Starts a server with `extra` flags on a fresh window, nothing excluded.
pub fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--exclude", "none"];
    args.extend(extra);
    Launch::with_range(free_range(WINDOW), &args).start()
}

/// What the client tests ask of a server beyond the shared fixture.
pub trait ClientSide {
    /// The state directory, as the client's `--state-dir` takes it.
    fn state_dir(&self) -> &str;
    /// The port the state file says the server listens on.
    fn state_port(&self) -> u16;
    /// Runs the client against this server, through its state directory.
    fn client(&self, args: &[&str]) -> Out;
    /// `text` as a port, checked to lie in the server's range.
    fn in_range(&self, text: &str) -> u16;
    /// The live leases, from `dynport leases --json`.
    fn leases(&self) -> Vec<serde_json::Value>;
}

impl ClientSide for Server {
    fn state_dir(&self) -> &str {
        self.dir().path().to_str().unwrap()
    }

    fn state_port(&self) -> u16 {
        let state = self.state();
        state["server"]
            .as_object()
            .expect("a server in the state file");
        state["server_port"].as_u64().expect("a server port") as u16
    }

    fn client(&self, args: &[&str]) -> Out {
        // Right after the command's name: `run` passes what follows CMD to CMD.
        let mut all = vec![args[0], "--state-dir", self.state_dir()];
        all.extend(&args[1..]);
        client(&all, &[])
    }

    fn in_range(&self, text: &str) -> u16 {
        let port: u16 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a port: {text:?}"));
        let (first, last) = self.range();
        assert!(
            (first..=last).contains(&port),
            "{port} not in {:?}",
            self.range()
        );
        port
    }

    fn leases(&self) -> Vec<serde_json::Value> {
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

/// Runs the client with `args` in an environment of `env` and `PATH` only.
pub fn client(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().envs(env.iter().copied());
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    finish(&mut command)
}

/// Runs `command` to its end within [`PATIENCE`], capturing its output.
pub fn finish(command: &mut Command) -> Out {
    let (status, stdout, stderr) = crate::fixture::run_to_end(command, PATIENCE);
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// A child process killed and reaped when dropped.
pub struct Proc(Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit, failing the test after [`PATIENCE`].
    pub fn wait(&mut self) -> ExitStatus {
        let status = crate::fixture::wait_exit(&mut self.0, PATIENCE);
        status.unwrap_or_else(|| panic!("process {} hung", self.pid()))
    }

    pub fn signal(&self, signal: libc::c_int) {
        crate::fixture::send_signal(&self.0, signal);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Polls `GET /` on `port` until it answers 200. The answer is HTTP/1.0,
/// from the command `run` started, so not for the fixture's client.
pub fn wait_for_http(port: u16) -> bool {
    crate::fixture::poll_until(PATIENCE, || {
        let Ok(mut conn) = crate::fixture::connect(port) else {
            return false;
        };
        let _ = conn.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut reply = String::new();
        let _ = conn.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.0 200")
    })
}

/// Whether `pid` has exited (a zombie counts: nothing may reap it here).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
    }
}
