//! Soak run: mixed traffic from 256 kept-alive connections against the
//! release binary for `SOAK_SECS` (600 by default), sampling the server's
//! resident memory, threads and open descriptors every second. It fails
//! (exit 1) on any error answer, on memory growth beyond 1 MiB after the
//! first minute, or on threads or descriptors that do not stay flat.
//!
//! `make soak` runs it; traffic goes to 127.0.0.1 only and stops by itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 256;

/// One sample of the server process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: u64,
    rss_kib: u64,
    threads: u64,
    fds: usize,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let secs: u64 =
        std::env::var("SOAK_SECS").map_or(600, |s| s.parse().expect("SOAK_SECS is seconds"));
    let bin = std::env::var("DYNPORT_BIN").unwrap_or_else(|_| "target/release/dynport".to_string());
    let dir = std::env::temp_dir().join(format!("dynport-soak-{}", std::process::id()));
    // Mode 0755 whatever the umask: dynport refuses a directory others may write to.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .expect("a temporary state directory");
    let (server, port) = start(&bin, &dir);
    let pid = server.0.id();
    println!("soak: {CONNECTIONS} connections for {secs} s against pid {pid} on 127.0.0.1:{port}");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (stop, ok, errors) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&errors));
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || client(port, i, &stop, &ok, &errors))
                .expect("a client thread")
        })
        .collect();

    let began = Instant::now();
    let mut samples = Vec::new();
    while began.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_secs(1));
        if let Some(sample) = sample(pid, began.elapsed().as_secs()) {
            samples.push(sample);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    report(
        &samples,
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    )
}

fn start(bin: &str, dir: &std::path::Path) -> (Server, u16) {
    let port = (20000..32000u16)
        .step_by(37)
        .find(|p| (*p..*p + 64).all(|q| TcpListener::bind(("0.0.0.0", q)).is_ok()))
        .expect("a free window of ports");
    let mut child = Command::new(bin)
        .args([
            "--range",
            &format!("{port}-{}", port + 63),
            "--exclude",
            "none",
            "--log-level",
            "warn",
        ])
        .arg("--state-dir")
        .arg(dir)
        .env_clear()
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release binary (run `cargo build --release` first)");
    let stderr = child.stderr.take().expect("stderr");
    thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| eprintln!("server: {l}"))
    });
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        thread::sleep(Duration::from_millis(10));
    }
    (server, port)
}

/// One kept-alive connection's mixed traffic: reads of every kind, and now
/// and then a lease that it releases again.
fn client(port: u16, n: usize, stop: &AtomicBool, ok: &AtomicU64, errors: &AtomicU64) {
    let paths = [
        "/api/v1/server/port",
        "/api/v1/tools/port/state?port=20000",
        "/api/v1/system/overview",
        "/healthz",
        "/metrics",
        "/api/v1/ports/leases",
    ];
    let mut conn = None;
    let mut i = n;
    while !stop.load(Ordering::Relaxed) {
        let stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => BufReader::new(s),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        i += 1;
        let outcome = if i.is_multiple_of(50) {
            lease_and_release(stream)
        } else {
            exchange(stream, "GET", paths[i % paths.len()]).map(|(s, _, status)| (s, status))
        };
        match outcome {
            Some((stream, 200..=299)) => {
                ok.fetch_add(1, Ordering::Relaxed);
                conn = Some(stream);
            }
            _ if stop.load(Ordering::Relaxed) => {}
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn lease_and_release(stream: BufReader<TcpStream>) -> Option<(BufReader<TcpStream>, u16)> {
    let (stream, body, status) = exchange(stream, "POST", "/api/v1/ports/lease")?;
    if status == 409 {
        return Some((stream, 200));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let id = value["lease"]["id"].as_str()?;
    let (stream, _, status) = exchange(stream, "DELETE", &format!("/api/v1/ports/leases/{id}"))?;
    Some((stream, status))
}

/// One request and its answer on a kept-alive connection.
fn exchange(
    mut stream: BufReader<TcpStream>,
    method: &str,
    path: &str,
) -> Option<(BufReader<TcpStream>, Vec<u8>, u16)> {
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).ok()?;
    let mut status = 0;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if status == 0 {
            status = line.split(' ').nth(1)?.parse().ok()?;
        } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        } else if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((stream, body, status))
}

fn sample(pid: u32, secs: u64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Sample {
        secs,
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
    })
}

/// Prints the curves per minute and judges them.
fn report(samples: &[Sample], ok: u64, errors: u64) -> ExitCode {
    println!("\n| minute | RSS min (KiB) | RSS max (KiB) | threads min-max | fds min-max |");
    println!("| --- | --- | --- | --- | --- |");
    for (minute, chunk) in samples.chunks(60).enumerate() {
        let rss = |f: fn(u64, u64) -> u64| chunk.iter().map(|s| s.rss_kib).reduce(f).unwrap_or(0);
        let threads = (
            chunk.iter().map(|s| s.threads).min().unwrap_or(0),
            chunk.iter().map(|s| s.threads).max().unwrap_or(0),
        );
        let fds = (
            chunk.iter().map(|s| s.fds).min().unwrap_or(0),
            chunk.iter().map(|s| s.fds).max().unwrap_or(0),
        );
        println!(
            "| {} | {} | {} | {}-{} | {}-{} |",
            minute + 1,
            rss(u64::min),
            rss(u64::max),
            threads.0,
            threads.1,
            fds.0,
            fds.1
        );
    }
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.secs >= 60).collect();
    let base = settled.first().map_or(0, |s| s.rss_kib);
    let peak = settled.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let growth = peak.saturating_sub(base);
    let flat = |f: fn(&Sample) -> u64| {
        let values: Vec<u64> = samples.iter().skip(5).map(f).collect();
        values.iter().max().copied().unwrap_or(0) - values.iter().min().copied().unwrap_or(0)
    };
    let (thread_spread, fd_spread) = (flat(|s| s.threads), flat(|s| s.fds as u64));
    println!(
        "\nanswers: {ok} good, {errors} errors; RSS growth after the first minute: {growth} KiB; thread spread {thread_spread}; descriptor spread {fd_spread}"
    );
    let mut failed = false;
    for (bad, what) in [
        (errors > 0, "error answers"),
        (
            growth > 1024,
            "memory grew by more than 1 MiB after the first minute",
        ),
        (thread_spread > 0, "thread count changed"),
        (fd_spread > 4, "open descriptors changed by more than 4"),
        (samples.is_empty(), "no samples"),
    ] {
        if bad {
            println!("FAIL: {what}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        println!("PASS");
        ExitCode::SUCCESS
    }
}
