//! `make bench`: dynport against two floors in the same run, one table.
//!
//! Floor (a) is a bare tiny_http 0.12 server (`examples/floor_tiny_http.rs`),
//! floor (b) dynport's own engine (`examples/floor_engine.rs`); both answer a
//! fixed JSON body as long as dynport's `GET /api/v1/server/port`. Load comes
//! from `wrk`, in rounds that alternate dynport, floor a, floor b. Then the
//! figures no floor has: scan time, startup, binary size, lease grants, and
//! portpicker's grants from dynport beside Google's `portserver.py`.
//!
//! `bench [--rounds N] [--secs S] [--lease-secs S] [--startup-runs N] [--dynport PATH]
//! [--only get|scan|startup|lease|portserver]` (defaults 7, 3, 5, 20,
//! `target/release/dynport`, everything). Progress goes to
//! stderr, the table to stdout. Every server listens on 127.0.0.1 only.

mod client;
mod portserver;
mod procs;
mod report;
mod scan;
mod table;
mod wrk;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use client::Client;
use procs::{Child, Status, TempDir};
use report::Results;

/// The request every throughput run makes.
const PATH: &str = "/api/v1/server/port";
/// Connection counts of the throughput runs.
pub const CONNS: [usize; 2] = [50, 256];
/// Idle connections held open to count threads and memory.
pub const IDLE_CONNS: usize = 1000;
/// Lease clients, each on one kept-alive connection.
pub const LEASE_CLIENTS: usize = 8;
/// The range of the lease server: wide, so any free port in it will do.
const LEASE_RANGE: &str = "20000-29999";

pub struct Options {
    pub rounds: usize,
    pub secs: u64,
    pub lease_secs: u64,
    pub startup_runs: usize,
    /// Only this part of the benchmark: `get`, `scan`, `startup`, `lease`
    /// or `portserver`.
    only: Option<String>,
    dynport: PathBuf,
    examples: PathBuf,
}

/// A server under load: dynport or a floor.
struct Server {
    name: &'static str,
    port: u16,
    child: Child,
    _state_dir: Option<TempDir>,
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench: {e}");
            eprintln!(
                "usage: bench [--rounds N] [--secs S] [--lease-secs S] [--startup-runs N] [--dynport PATH] [--only get|scan|startup|lease|portserver]"
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = procs::install_cleanup() {
        eprintln!("bench: {e}");
        return ExitCode::FAILURE;
    }
    procs::raise_file_limit();
    procs::remove_stale_dirs();
    let began = Instant::now();
    let outcome = run(&options);
    procs::clean_up();
    match outcome {
        Ok(results) => {
            eprintln!("bench: done in {:.0} s", began.elapsed().as_secs_f64());
            print!("{}", report::render(&results, &options));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> io::Result<Results> {
    let mut results = Results {
        load_before: loadavg(),
        ..Results::default()
    };
    if options.wants("get") {
        if !procs::on_path("wrk") {
            return Err(io::Error::other(
                "wrk is not installed (apt-get install wrk)",
            ));
        }
        serve_get(options, &mut results)?;
    }
    if options.wants("scan") {
        results.scans = Some(scan::scans()?);
    }
    if options.wants("startup") {
        results.startups = startups(options)?;
    }
    if options.wants("lease") {
        results.lease = Some(leases(options)?);
    }
    if options.wants("portserver") {
        results.portserver = Some(portserver::measure(&options.dynport)?);
    }
    results.binary_bytes = std::fs::metadata(&options.dynport)?.len();
    results.binary_stripped = !file_contains(&options.dynport, b".symtab\0")?;
    results.load_after = loadavg();
    Ok(results)
}

/// dynport and the floors answering `GET /api/v1/server/port`: throughput,
/// latency, threads and memory.
fn serve_get(options: &Options, results: &mut Results) -> io::Result<()> {
    let dynport = start_dynport(&options.dynport, "GET", None)?;
    let (_, body) = Client::connect(dynport.port)?.request("GET", PATH, b"")?;
    results.body_bytes = body.len();
    let floor_a = start_floor(options, "floor_tiny_http", "floor a", body.len())?;
    let floor_b = start_floor(options, "floor_engine", "floor b", body.len())?;
    let servers = [dynport, floor_a, floor_b];
    for (i, server) in servers.iter().enumerate() {
        Client::connect(server.port)?.request("GET", PATH, b"")?;
        thread::sleep(Duration::from_millis(200));
        results.idle[i] = procs::status(server.child.pid())?;
    }
    throughput(options, &servers, results)?;
    for (i, server) in servers.iter().enumerate() {
        results.with_idle_conns[i] = hold_idle(server)?;
    }
    let [dynport, floor_a, floor_b] = servers;
    drop((floor_a, floor_b));
    results.clean_exit = dynport.child.terminate(Duration::from_secs(6));
    Ok(())
}

/// The 1-minute load average, to show how busy the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Rounds of `wrk`, each taking the servers in turn at every connection count.
fn throughput(options: &Options, servers: &[Server; 3], results: &mut Results) -> io::Result<()> {
    for server in servers {
        wrk::run(server.port, PATH, CONNS[0], 1, server.child.pid())?; // warm-up
    }
    for round in 1..=options.rounds {
        for (c, &conns) in CONNS.iter().enumerate() {
            for (s, server) in servers.iter().enumerate() {
                let run = wrk::run(server.port, PATH, conns, options.secs, server.child.pid())?;
                let mut errors = match run.errors {
                    0 => String::new(),
                    n => format!(", {n} ERRORS"),
                };
                if report::starved(&run, conns) {
                    errors.push_str(", STARVED: left out");
                }
                eprintln!(
                    "bench: round {round}/{}, {conns:>3} conns, {:<8} {:>9.0} req/s, p99 {:>7.3} ms, {:>3.0} conns served, {} threads, {} KiB{errors}",
                    options.rounds,
                    server.name,
                    run.rps,
                    run.p99_ms,
                    run.served_conns,
                    run.during.threads,
                    run.during.rss_kib,
                );
                results.runs[c][s].push(run);
            }
        }
    }
    Ok(())
}

/// Threads and memory while `IDLE_CONNS` connections sit idle.
fn hold_idle(server: &Server) -> io::Result<Status> {
    let idle = client::idle_connections(server.port, IDLE_CONNS)?;
    thread::sleep(Duration::from_millis(500));
    let status = procs::status(server.child.pid())?;
    eprintln!(
        "bench: {IDLE_CONNS} idle connections, {:<8} {} threads, {} KiB",
        server.name, status.threads, status.rss_kib
    );
    drop(idle);
    thread::sleep(Duration::from_millis(200));
    Ok(status)
}

fn start_dynport(bin: &Path, label: &str, range: Option<&str>) -> io::Result<Server> {
    let dir = TempDir::new(label)?;
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
        .stdin(Stdio::null());
    let mut child = Child::spawn(&mut cmd, true)?;
    let port = wait_for_server_port(dir.path(), &mut child)?;
    wait_until_answering(port)?;
    eprintln!("bench: dynport (range {range}) serves on 127.0.0.1:{port}");
    Ok(Server {
        name: "dynport",
        port,
        child,
        _state_dir: Some(dir),
    })
}

/// dynport's port, from the state file it writes once it has bound it.
fn wait_for_server_port(dir: &Path, child: &mut Child) -> io::Result<u16> {
    let file = dir.join("dynamic_ports.json");
    let deadline = Instant::now() + Duration::from_secs(10);
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

fn wait_until_answering(port: u16) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(port).and_then(|mut c| c.request("GET", "/healthz", b"")) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn start_floor(
    options: &Options,
    example: &str,
    name: &'static str,
    body: usize,
) -> io::Result<Server> {
    let mut cmd = Command::new(options.examples.join(example));
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
        _state_dir: None,
    })
}

/// A port of 127.0.0.1 free right now (the kernel's pick).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn startups(options: &Options) -> io::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(options.startup_runs);
    for _ in 0..options.startup_runs {
        times.push(client::startup_once(&options.dynport, free_port()?)?);
    }
    times.sort_unstable();
    eprintln!(
        "bench: startup to first answer: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        table::ms(times[0]),
        table::ms(table::quantile(&times, 0.5)),
        table::ms(times[times.len() - 1])
    );
    Ok(times)
}

fn leases(options: &Options) -> io::Result<client::LeaseLoad> {
    let server = start_dynport(&options.dynport, "lease", Some(LEASE_RANGE))?;
    let duration = Duration::from_secs(options.lease_secs);
    let writes_before = state_writes(server.port)?;
    let mut load = client::lease_load(server.port, LEASE_CLIENTS, duration)?;
    load.state_writes = state_writes(server.port)? - writes_before;
    eprintln!(
        "bench: leases: {} grants in {:.2} s, {} refused, p50 {:.3} ms, p99 {:.3} ms, {} state-file writes",
        load.grants,
        load.elapsed.as_secs_f64(),
        load.failures,
        table::ms(table::quantile(&load.latencies, 0.5)),
        table::ms(table::quantile(&load.latencies, 0.99)),
        load.state_writes,
    );
    server.child.terminate(Duration::from_secs(6));
    Ok(load)
}

/// dynport's count of state-file writes, from `GET /metrics`.
fn state_writes(port: u16) -> io::Result<u64> {
    let (_, body) = Client::connect(port)?.request("GET", "/metrics", b"")?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| {
            line.strip_prefix("dynport_state_writes_total ")?
                .parse()
                .ok()
        })
        .ok_or_else(|| io::Error::other("no dynport_state_writes_total in /metrics"))
}

fn file_contains(path: &Path, needle: &[u8]) -> io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}

impl Options {
    fn wants(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

fn parse_args() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let examples = exe.parent().ok_or("no directory")?.to_path_buf();
    let release = examples.parent().ok_or("no target directory")?;
    let mut options = Options {
        rounds: 7,
        secs: 3,
        lease_secs: 5,
        startup_runs: 20,
        only: None,
        dynport: release.join("dynport"),
        examples: examples.clone(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|e| format!("{text:?}: {e}"));
        match arg.as_str() {
            "--rounds" => options.rounds = number(value()?)?.max(1) as usize,
            "--secs" => options.secs = number(value()?)?.max(1),
            "--lease-secs" => options.lease_secs = number(value()?)?.max(1),
            "--startup-runs" => options.startup_runs = number(value()?)?.max(1) as usize,
            "--dynport" => options.dynport = PathBuf::from(value()?),
            "--only" => match value()?.as_str() {
                part @ ("get" | "scan" | "startup" | "lease" | "portserver") => {
                    options.only = Some(part.to_string())
                }
                other => {
                    return Err(format!(
                        "--only {other:?}: get, scan, startup, lease or portserver"
                    ));
                }
            },
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(options)
}
