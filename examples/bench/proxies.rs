//! The other servers of the names rows: nginx as the one backend (a small
//! static answer), nginx as a reverse proxy in front of it, and portless
//! 0.12's proxy. Each is found or installed into `target/` when missing,
//! runs from a temporary directory (configuration, pid file, logs, state)
//! on a port of 127.0.0.1 found free, and is killed with every process it
//! started when dropped or when the benchmark ends.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::procs::{self, Adopted, Child, TempDir};
use crate::servers::free_port;

/// What the backend answers every request with.
pub const BODY: &str = "dynport bench backend: a small static answer\n";
/// The portless release measured: the last one that runs on Debian's Node 20.
const PORTLESS: &str = "portless@0.12";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// nginx, master and worker, with its directory.
pub struct Nginx {
    pub port: u16,
    master: Option<Child>,
    worker: Option<Adopted>,
    _dir: TempDir,
}

impl Nginx {
    /// The worker's pid, whose `/proc` status `wrk` samples.
    pub fn pid(&self) -> u32 {
        self.worker.as_ref().map_or(0, Adopted::pid)
    }
}

/// nginx's fast shutdown (SIGTERM): the master stops its worker and waits
/// for it before it exits. Should it not exit in time, both are killed:
/// the master first, so that it cannot start a new worker, then the worker,
/// which outlives a killed master.
impl Drop for Nginx {
    fn drop(&mut self) {
        let stopped = self
            .master
            .take()
            .is_some_and(|master| master.terminate(Duration::from_secs(5)));
        if stopped && let Some(worker) = self.worker.take() {
            worker.disown();
        }
    }
}

/// nginx answering [`BODY`] to every request.
pub fn nginx_backend(bin: &Path) -> io::Result<Nginx> {
    let body = BODY.replace('\n', "\\n");
    let server = format!("location / {{ default_type text/plain; return 200 \"{body}\"; }}");
    start_nginx(bin, "nginx", "", &server)
}

/// nginx as a reverse proxy to `backend` on 127.0.0.1, with kept-alive
/// upstream connections.
pub fn nginx_proxy(bin: &Path, backend: u16) -> io::Result<Nginx> {
    let upstream = format!(
        "upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; \
         keepalive_requests 1000000; }}"
    );
    let server = "location / { proxy_pass http://backend; proxy_http_version 1.1; \
                  proxy_set_header Connection \"\"; }";
    start_nginx(bin, "nginx-proxy", &upstream, server)
}

/// One worker (`worker_processes 1`), no access log, kept-alive client
/// connections without a limit on their requests (nginx closes one after
/// 1,000 by default, which `wrk` would pay for and dynport does not ask).
fn start_nginx(bin: &Path, label: &str, http: &str, server: &str) -> io::Result<Nginx> {
    let dir = TempDir::new(label)?;
    let port = free_port()?;
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {http}\n  server {{ listen 127.0.0.1:{port}; {server} }}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null());
    let mut master = Child::spawn(&mut cmd, true)?;
    let worker = loop {
        if master.has_exited() {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            return Err(io::Error::other(format!("{label} exited at start: {log}")));
        }
        if let Some(&pid) = procs::children_of(master.pid())?.first() {
            break Adopted::new(pid);
        }
        thread::sleep(Duration::from_millis(5));
    };
    wait_listening(port)?;
    eprintln!("bench: {label} (worker_processes 1) serves on 127.0.0.1:{port}");
    Ok(Nginx {
        port,
        master: Some(master),
        worker: Some(worker),
        _dir: dir,
    })
}

/// portless's proxy, in plain HTTP, its state and HOME in a directory of
/// its own, with the route `web` to `backend`.
pub struct Portless {
    pub port: u16,
    pub host: String,
    node: Child,
    _dir: TempDir,
}

impl Portless {
    pub fn pid(&self) -> u32 {
        self.node.pid()
    }
}

/// Starts `portless proxy start --no-tls -p PORT --foreground` and
/// registers `portless alias web BACKEND`. HOME and `PORTLESS_STATE_DIR`
/// point into a temporary directory, so `~/.portless` is never read or
/// written; in plain HTTP it makes no certificate and trusts none, and
/// `PORTLESS_SYNC_HOSTS=0` keeps it out of `/etc/hosts`.
pub fn portless(cli: &Path, backend: u16) -> io::Result<Portless> {
    let dir = TempDir::new("portless")?;
    let home = dir.path().to_path_buf();
    let port = free_port()?;
    let portless = |args: &[&str]| {
        let mut cmd = Command::new("node");
        cmd.arg(cli)
            .args(args)
            .env("HOME", &home)
            .env("PORTLESS_STATE_DIR", home.join("state"))
            .env("PORTLESS_SYNC_HOSTS", "0")
            .env("PORTLESS_HTTPS", "0")
            .env("PORTLESS_LAN", "0")
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    };
    // Its log (a line for each connection `wrk` closes) goes to a file.
    let log = std::fs::File::create(home.join("portless.log"))?;
    let mut cmd = portless(&[
        "proxy",
        "start",
        "--no-tls",
        "-p",
        &port.to_string(),
        "--foreground",
    ]);
    cmd.stderr(log);
    let node = Child::spawn(&mut cmd, true)?;
    let host = format!("web.localhost:{port}");
    let started = Portless {
        port,
        host: host.clone(),
        node,
        _dir: dir,
    };
    wait_listening(port)?;
    let status = portless(&["alias", "web", &backend.to_string()]).status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "portless alias web {backend}: {status}"
        )));
    }
    // The proxy reads its routes file again a little after it changes.
    wait_for_backend(port, &host)?;
    if let Ok(children) = procs::children_of(started.pid())
        && !children.is_empty()
    {
        return Err(io::Error::other(format!(
            "portless's proxy started processes {children:?}; the bench expects one"
        )));
    }
    eprintln!("bench: portless 0.12 (plain HTTP) serves web.localhost on 127.0.0.1:{port}");
    Ok(started)
}

/// Waits until something listens on 127.0.0.1:`port`.
fn wait_listening(port: u16) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match std::net::TcpStream::connect(crate::client::addr(port)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits until `Host: host` on `port` gets the backend's answer.
pub fn wait_for_backend(port: u16, host: &str) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let got = Client::connect(port).and_then(|mut c| c.request_to(host, "GET", "/", b""));
        match got {
            Ok((200, body)) if body == BODY.as_bytes() => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                return Err(io::Error::other(format!(
                    "Host: {host} on 127.0.0.1:{port} answered {status} {body:?}, not the backend's answer"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

/// nginx: the one on PATH or in /usr/sbin, else Debian's package unpacked
/// into `target/bench-nginx` (`apt-get download nginx`, `dpkg-deb -x`), so
/// that no nginx service is installed or started on the host.
pub fn nginx_binary(target: &Path) -> io::Result<PathBuf> {
    let unpacked = target.join("bench-nginx");
    let found = ["/usr/sbin/nginx".into(), unpacked.join("usr/sbin/nginx")]
        .into_iter()
        .chain(on_path("nginx"))
        .find(|p: &PathBuf| p.is_file());
    if let Some(found) = found {
        return Ok(found);
    }
    eprintln!(
        "bench: nginx is missing: unpacking Debian's package into {}",
        unpacked.display()
    );
    std::fs::create_dir_all(&unpacked)?;
    let download = || {
        run(Command::new("apt-get")
            .args(["download", "nginx"])
            .current_dir(&unpacked))
    };
    if download().is_err() {
        run(Command::new("apt-get").arg("update"))?;
        download()?;
    }
    let deb = std::fs::read_dir(&unpacked)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| io::Error::other("apt-get download nginx left no .deb"))?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    Ok(unpacked.join("usr/sbin/nginx"))
}

/// portless 0.12's command line, installed with npm into
/// `target/bench-portless` when missing.
pub fn portless_cli(target: &Path) -> io::Result<PathBuf> {
    let prefix = target.join("bench-portless");
    let cli = prefix.join("node_modules/portless/dist/cli.js");
    let manifest = prefix.join("node_modules/portless/package.json");
    let installed = std::fs::read_to_string(&manifest).is_ok_and(|m| m.contains("\"0.12."));
    if !installed {
        eprintln!("bench: installing {PORTLESS} into {}", prefix.display());
        std::fs::create_dir_all(&prefix)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(PORTLESS))
        .map_err(|e| {
            io::Error::other(format!(
                "npm install {PORTLESS} (needs node 20 and npm): {e}"
            ))
        })?;
    }
    Ok(cli)
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `cmd` to its end; an error unless it succeeded.
fn run(cmd: &mut Command) -> io::Result<()> {
    let status = cmd.stdin(Stdio::null()).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?}: {status}")))
    }
}
