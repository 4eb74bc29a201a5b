//! `make bench`: dynport against a baseline build and two floors in the
//! same run, one table.
//!
//! The baseline is an earlier dynport (`--baseline PATH`; `make bench`
//! builds the commit before the trust work). Floor (a) is a bare tiny_http
//! 0.12 server (`examples/floor_tiny_http.rs`), floor (b) dynport's own
//! engine (`examples/floor_engine.rs`); both answer a fixed JSON body as long
//! as dynport's `GET /api/v1/server/port`. Load comes from `wrk`, in rounds
//! that alternate dynport, the baseline, floor a, floor b; then rounds of new
//! connections against dynport and the baseline. Then the figures no floor
//! has: scan time, startup, binary size, and lease grants in rounds that
//! alternate dynport over TCP, the baseline over TCP, dynport over its Unix
//! socket; and portpicker's grants from dynport's portserver socket beside
//! Google's own `portserver.py`; what a lease change costs as leases grow
//! (`storage.rs`); routing by name beside nginx and portless, and 1,000
//! WebSocket tunnels (`names.rs`).
//!
//! `bench [--rounds N] [--secs S] [--lease-secs S] [--lease-rounds N]
//! [--startup-runs N] [--filled N,N] [--dynport PATH] [--baseline PATH]
//! [--only get|scan|startup|lease|idle|holders|lookups|portserver|storage|pipelined|names]` (defaults 7, 3, 5, 3, 20,
//! `target/release/dynport`, no baseline, everything). Progress goes to
//! stderr, the table to stdout. Every server listens on 127.0.0.1 only.

mod client;
mod holders;
mod idle;
mod leases;
mod lookups;
mod names;
mod pipelined;
mod portserver;
mod procs;
mod proxies;
mod report;
mod scan;
mod servers;
mod storage;
mod table;
mod websocket;
mod wrk;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use client::Client;
use procs::Status;
use report::{BASELINE, DYNPORT, FLOOR_A, FLOOR_B, Results};
use servers::Server;

/// The request every throughput run makes.
const PATH: &str = "/api/v1/server/port";
/// Connection counts of the throughput runs.
pub const CONNS: [usize; 2] = [50, 256];
/// Idle connections held open to count threads and memory.
pub const IDLE_CONNS: usize = 1000;
/// Lease clients, each on one kept-alive connection.
pub const LEASE_CLIENTS: usize = 8;
/// Clients making new connections, each this many connections per round, in
/// this many rounds per server: 40,000 connections in a few seconds, whose
/// client ends stay in TIME_WAIT for a minute; the kernel reuses such ports
/// for new connections on loopback (`net.ipv4.tcp_tw_reuse = 2`, its
/// default).
pub const CHURN_THREADS: usize = 8;
const CHURN_EACH: usize = 500;
const CHURN_ROUNDS: usize = 5;

pub struct Options {
    pub rounds: usize,
    pub secs: u64,
    pub lease_secs: u64,
    pub lease_rounds: usize,
    pub startup_runs: usize,
    /// `--filled 0,20000`: the storage part's fill levels, and nothing else of it.
    pub filled: Option<Vec<usize>>,
    /// Only this part of the benchmark: `get`, `scan`, `startup`, `lease`,
    /// `idle`, `holders`, `lookups`, `portserver`, `storage`, `pipelined` or
    /// `names`.
    only: Option<String>,
    pub dynport: PathBuf,
    /// The dynport to compare with; its rows are left out without one.
    pub baseline: Option<PathBuf>,
    examples: PathBuf,
}

fn main() -> ExitCode {
    if let Some(code) = lookups::client_mode(&std::env::args().collect::<Vec<_>>()) {
        return code;
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench: {e}");
            eprintln!(
                "usage: bench [--rounds N] [--secs S] [--lease-secs S] [--lease-rounds N] [--startup-runs N] [--filled N,N] [--dynport PATH] [--baseline PATH] [--only get|scan|startup|lease|idle|holders|lookups|portserver|storage|pipelined|names]"
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
        results.leases = Some(leases::leases(options)?);
    }
    if options.wants("idle") {
        results.idle_switches = Some(idle::idle(&options.dynport)?);
    }
    if options.wants("holders") {
        results.holders = Some(holders::measure()?);
    }
    if options.wants("lookups") {
        results.lookups = lookups::measure(&options.dynport)?;
    }
    if options.wants("portserver") {
        results.portserver = Some(portserver::measure(&options.dynport)?);
    }
    if options.wants("storage") {
        results.storage = Some(storage::storage(options)?);
    }
    if options.wants("pipelined") {
        results.pipelined = Some(pipelined::measure(&options.dynport)?);
    }
    if options.wants("names") {
        if !procs::on_path("wrk") {
            return Err(io::Error::other(
                "wrk is not installed (apt-get install wrk)",
            ));
        }
        results.names = Some(names::measure(options)?);
    }
    results.binary_bytes = std::fs::metadata(&options.dynport)?.len();
    results.binary_stripped = !file_contains(&options.dynport, b".symtab\0")?;
    results.load_after = loadavg();
    Ok(results)
}

/// dynport, the baseline and the floors answering `GET /api/v1/server/port`:
/// throughput, latency, threads and memory; then new connections.
fn serve_get(options: &Options, results: &mut Results) -> io::Result<()> {
    let dynport = servers::start_dynport(&options.dynport, "dynport", None)?;
    let (_, body) = Client::connect(dynport.port)?.request("GET", PATH, b"")?;
    results.body_bytes = body.len();
    let baseline = match &options.baseline {
        Some(bin) => Some(servers::start_dynport(bin, "baseline", None)?),
        None => None,
    };
    let examples = &options.examples;
    let floor_a = servers::start_floor(examples, "floor_tiny_http", "floor a", body.len())?;
    let floor_b = servers::start_floor(examples, "floor_engine", "floor b", body.len())?;
    let mut servers: Vec<(usize, Server)> = [
        (DYNPORT, Some(dynport)),
        (BASELINE, baseline),
        (FLOOR_A, Some(floor_a)),
        (FLOOR_B, Some(floor_b)),
    ]
    .into_iter()
    .filter_map(|(s, server)| Some((s, server?)))
    .collect();
    for (s, server) in &servers {
        Client::connect(server.port)?.request("GET", PATH, b"")?;
        thread::sleep(Duration::from_millis(200));
        results.idle[*s] = Some(procs::status(server.child.pid())?);
    }
    throughput(options, &servers, results)?;
    churn(&servers, results)?;
    for (s, server) in &servers {
        results.with_idle_conns[*s] = Some(hold_idle(server)?);
    }
    let (_, dynport) = servers.remove(0);
    drop(servers);
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
fn throughput(
    options: &Options,
    servers: &[(usize, Server)],
    results: &mut Results,
) -> io::Result<()> {
    for (_, server) in servers {
        wrk::run(server.port, PATH, CONNS[0], 1, server.child.pid())?; // warm-up
    }
    for round in 1..=options.rounds {
        for (c, &conns) in CONNS.iter().enumerate() {
            for (s, server) in servers {
                let run = wrk::run(server.port, PATH, conns, options.secs, server.child.pid())?;
                let mut errors = match run.errors {
                    0 => String::new(),
                    n => format!(", {n} ERRORS"),
                };
                if report::starved(&run, conns) {
                    errors.push_str(", STARVED: left out");
                }
                eprintln!(
                    "bench: round {round}/{}, {conns:>3} conns, {:<8} {:>9.0} req/s, p50 {:>6.3} ms, p99 {:>7.3} ms, {:>3.0} conns served, {} threads, {} KiB{errors}",
                    options.rounds,
                    server.name,
                    run.rps,
                    run.p50_ms,
                    run.p99_ms,
                    run.served_conns,
                    run.during.threads,
                    run.during.rss_kib,
                );
                results.runs[c][*s].push(run);
            }
        }
    }
    Ok(())
}

/// Rounds of new connections, each taking dynport and the baseline in turn.
fn churn(servers: &[(usize, Server)], results: &mut Results) -> io::Result<()> {
    for round in 1..=CHURN_ROUNDS {
        for (s, server) in servers
            .iter()
            .filter(|(s, _)| *s == DYNPORT || *s == BASELINE)
        {
            let churn = client::fresh_connections(server.port, CHURN_THREADS, CHURN_EACH)?;
            eprintln!(
                "bench: new connections round {round}/{CHURN_ROUNDS}, {:<8} {} in {:.3} s, {:>6.0}/s, median {:.3} ms, p99 {:.3} ms",
                server.name,
                churn.times.len(),
                churn.elapsed.as_secs_f64(),
                churn.per_sec(),
                table::ms(table::quantile(&churn.times, 0.5)),
                table::ms(table::quantile(&churn.times, 0.99)),
            );
            results.churn[*s].push(churn);
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

fn startups(options: &Options) -> io::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(options.startup_runs);
    for _ in 0..options.startup_runs {
        times.push(client::startup_once(
            &options.dynport,
            servers::free_port()?,
        )?);
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

fn file_contains(path: &Path, needle: &[u8]) -> io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}

impl Options {
    /// Cargo's target directory, where the tools the bench installs are kept.
    pub fn target_dir(&self) -> PathBuf {
        let release = self.examples.parent().unwrap_or(Path::new("target"));
        release
            .parent()
            .unwrap_or(Path::new("target"))
            .to_path_buf()
    }

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
        lease_rounds: 3,
        startup_runs: 20,
        filled: None,
        only: None,
        dynport: release.join("dynport"),
        baseline: None,
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
            "--lease-rounds" => options.lease_rounds = number(value()?)?.max(1) as usize,
            "--startup-runs" => options.startup_runs = number(value()?)?.max(1) as usize,
            "--filled" => {
                let levels: Result<Vec<u64>, String> =
                    value()?.split(',').map(|n| number(n.to_string())).collect();
                options.filled = Some(levels?.into_iter().map(|n| n as usize).collect());
            }
            "--dynport" => options.dynport = PathBuf::from(value()?),
            "--baseline" => options.baseline = Some(existing(value()?, "--baseline")?),
            "--only" => match value()?.as_str() {
                part @ ("get" | "scan" | "startup" | "lease" | "idle" | "holders" | "lookups"
                | "portserver" | "storage" | "pipelined" | "names") => {
                    options.only = Some(part.to_string())
                }
                other => {
                    return Err(format!(
                        "--only {other:?}: get, scan, startup, lease, idle, holders, lookups, portserver, storage, pipelined or names"
                    ));
                }
            },
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(options)
}

/// A path that names a file, or an error naming the flag.
fn existing(path: String, flag: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{flag} {}: no such file", path.display()))
    }
}
