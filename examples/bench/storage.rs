//! Storage: what a lease change costs as leases grow. dynport on a range of
//! 22,000 ports without a quota, some of them leased first for an hour, 64
//! at a time; then the lease loop of `leases.rs`, the server's memory and
//! the state file's size. Then start-up with 20,000 leases in the state, and
//! `GET /api/v1/ports/leases` with 5,000. And, with every run of the part,
//! the server's memory at rest holding 20,000 ports in 5,000 leases.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{self, Client};
use crate::leases::{Endpoint, LeaseLoad, lease_load};
use crate::procs::{self, Child, TempDir};
use crate::servers::{self, Server};
use crate::{LEASE_CLIENTS, Options, table};

/// 22,000 ports, below the kernel's usual ephemeral range (32768-60999).
pub const RANGE: &str = "10000-31999";
/// Ports leased before each lease loop.
pub const FILLED: [usize; 4] = [0, 1_000, 5_000, 20_000];
/// Ports per lease while filling.
pub const FILL_CHUNK: usize = 64;
/// Leases in the state for the start-up rows.
pub const STARTUP_LEASES: usize = 20_000;
/// Leases held at rest, and ports in each, for the memory row.
pub const REST_LEASES: usize = 5_000;
pub const REST_CHUNK: usize = 4;
/// Leases listed by the list rows.
pub const LIST_LEASES: usize = 5_000;
/// Lists timed.
const LISTS: usize = 20;
/// The flags of every server here besides `--range` and `--state-dir`.
const FLAGS: [&str; 2] = ["--max-ports-per-uid", "none"];

/// One lease loop after `leased` ports were leased first.
pub struct Filled {
    pub leased: usize,
    /// How long leasing them took, `FILL_CHUNK` at a time on one connection.
    pub fill: Duration,
    pub loads: Vec<LeaseLoad>,
    /// The most VmRSS seen during the loads (KiB).
    pub rss_kib: u64,
    /// The state file after the loads, once the server stopped.
    pub state_bytes: u64,
}

/// Everything the storage part measured.
#[derive(Default)]
pub struct Storage {
    pub filled: Vec<Filled>,
    /// Spawn to first answer with `STARTUP_LEASES` leases in the state, sorted.
    pub startups: Vec<Duration>,
    /// VmRSS (KiB) after the first answer of each start-up, the most seen.
    pub startup_rss_kib: u64,
    /// The state file the start-ups read.
    pub startup_state_bytes: u64,
    /// `GET /api/v1/ports/leases` with `LIST_LEASES` leases, sorted.
    pub lists: Vec<Duration>,
    pub list_bytes: usize,
    /// VmRSS (KiB) 2 s after `REST_LEASES` leases of `REST_CHUNK` ports
    /// were granted, nothing else asked.
    pub rest_rss_kib: u64,
}

/// Every storage figure; with `--filled`, only the lease loops after those
/// fills (to look at one closely).
pub fn storage(options: &Options) -> io::Result<Storage> {
    let mut storage = Storage::default();
    let levels = options.filled.clone().unwrap_or(FILLED.to_vec());
    storage.filled = lease_loops(options, &levels)?;
    storage.rest_rss_kib = at_rest(options)?;
    if options.filled.is_none() {
        startups(options, &mut storage)?;
        lists(options, &mut storage)?;
    }
    Ok(storage)
}

fn start(options: &Options, name: &'static str) -> io::Result<Server> {
    servers::start_dynport_with(&options.dynport, name, Some(RANGE), &FLAGS)
}

/// The VmRSS (KiB) of a server on `RANGE`, no port excluded, 2 s after
/// `REST_LEASES` leases of `REST_CHUNK` ports, owner `dev-server`, were
/// granted on one kept-alive connection.
fn at_rest(options: &Options) -> io::Result<u64> {
    let flags = [FLAGS[0], FLAGS[1], "--exclude", "none"];
    let server = servers::start_dynport_with(&options.dynport, "rest", Some(RANGE), &flags)?;
    let mut client = Client::connect(server.port)?;
    let body = format!(r#"{{"count":{REST_CHUNK},"ttl_secs":3600,"owner":"dev-server"}}"#);
    for _ in 0..REST_LEASES {
        expect_201(client.request("POST", "/api/v1/ports/lease", body.as_bytes())?)?;
    }
    drop(client);
    thread::sleep(Duration::from_secs(2));
    let rss = procs::status(server.child.pid())?.rss_kib;
    server.stop();
    eprintln!(
        "bench: storage, {} ports in {REST_LEASES} leases, at rest: VmRSS {rss} KiB",
        REST_LEASES * REST_CHUNK
    );
    Ok(rss)
}

/// One server per fill level, all filled first; then rounds that take the
/// levels in turn, so that a machine getting busier or quieter weighs on
/// all of them alike; then each stops and leaves its state file.
fn lease_loops(options: &Options, levels: &[usize]) -> io::Result<Vec<Filled>> {
    let mut running = Vec::new();
    for &leased in levels {
        let server = start(options, "storage")?;
        let began = Instant::now();
        fill(server.port, leased)?;
        let fill = began.elapsed();
        let filled = Filled {
            leased,
            fill,
            loads: Vec::new(),
            rss_kib: 0,
            state_bytes: 0,
        };
        running.push((server, filled));
    }
    for round in 1..=options.lease_rounds {
        for (server, filled) in &mut running {
            lease_round(options, round, server, filled)?;
        }
    }
    let mut done = Vec::new();
    for (server, mut filled) in running {
        let dir = server
            .stop()
            .ok_or_else(|| io::Error::other("no state directory"))?;
        filled.state_bytes = std::fs::metadata(dir.path().join("dynamic_ports.json"))?.len();
        eprintln!(
            "bench: storage, {:>5} ports leased first in {:.2} s; state file {} bytes after the loads",
            filled.leased,
            filled.fill.as_secs_f64(),
            filled.state_bytes
        );
        done.push(filled);
    }
    Ok(done)
}

/// One lease loop against `server`, sampling its memory meanwhile.
fn lease_round(options: &Options, round: usize, server: &Server, f: &mut Filled) -> io::Result<()> {
    let duration = Duration::from_secs(options.lease_secs);
    let (load, rss) = sampled(server.child.pid(), || {
        lease_load(&Endpoint::Tcp(server.port), LEASE_CLIENTS, duration)
    })?;
    eprintln!(
        "bench: storage, {:>5} ports leased first, round {round}/{}: {:>5.0} grants/s, {} refused, p50 {:.3} ms, p99 {:.3} ms, {} KiB",
        f.leased,
        options.lease_rounds,
        load.per_sec(),
        load.failures,
        table::ms(table::quantile(&load.latencies, 0.5)),
        table::ms(table::quantile(&load.latencies, 0.99)),
        rss
    );
    f.rss_kib = f.rss_kib.max(rss);
    f.loads.push(load);
    Ok(())
}

/// Runs `work` while sampling the VmRSS of `pid` every 50 ms; returns what
/// `work` returned and the most seen (KiB).
fn sampled<T: Send>(pid: u32, work: impl FnOnce() -> io::Result<T> + Send) -> io::Result<(T, u64)> {
    thread::scope(|scope| {
        let running = scope.spawn(work);
        let mut most = 0;
        while !running.is_finished() {
            most = most.max(procs::status(pid)?.rss_kib);
            thread::sleep(Duration::from_millis(50));
        }
        let out = running
            .join()
            .map_err(|_| io::Error::other("a load panicked"))??;
        Ok((out, most.max(procs::status(pid)?.rss_kib)))
    })
}

/// Leases `ports` ports for an hour, `FILL_CHUNK` at a time, on one
/// kept-alive connection.
fn fill(port: u16, ports: usize) -> io::Result<()> {
    let mut client = Client::connect(port)?;
    let mut left = ports;
    while left > 0 {
        let count = left.min(FILL_CHUNK);
        let body = format!(r#"{{"count":{count},"ttl_secs":3600}}"#);
        expect_201(client.request("POST", "/api/v1/ports/lease", body.as_bytes())?)?;
        left -= count;
    }
    Ok(())
}

/// `count` one-port leases for an hour, from `LEASE_CLIENTS` clients at once.
fn grant_many(port: u16, count: usize) -> io::Result<()> {
    let each = count.div_ceil(LEASE_CLIENTS);
    let threads: Vec<_> = (0..LEASE_CLIENTS)
        .map(|i| {
            let mine = each.min(count.saturating_sub(i * each));
            thread::spawn(move || {
                let mut client = Client::connect(port)?;
                for _ in 0..mine {
                    let answer =
                        client.request("POST", "/api/v1/ports/lease", br#"{"ttl_secs":3600}"#)?;
                    expect_201(answer)?;
                }
                Ok::<_, io::Error>(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| io::Error::other("a granting client panicked"))??;
    }
    Ok(())
}

fn expect_201((status, body): (u16, Vec<u8>)) -> io::Result<()> {
    if status == 201 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "a lease answered {status}: {}",
        String::from_utf8_lossy(&body)
    )))
}

/// Start-up with `STARTUP_LEASES` leases in the state: granted by one
/// server, which then stops; each start then reads them.
fn startups(options: &Options, storage: &mut Storage) -> io::Result<()> {
    let server = start(options, "startup")?;
    let began = Instant::now();
    grant_many(server.port, STARTUP_LEASES)?;
    eprintln!(
        "bench: storage, {STARTUP_LEASES} one-port leases granted in {:.2} s",
        began.elapsed().as_secs_f64()
    );
    let dir = server
        .stop()
        .ok_or_else(|| io::Error::other("no state directory"))?;
    let runs = options.startup_runs.div_ceil(4);
    for _ in 0..runs {
        let (took, rss) = start_once(options, &dir)?;
        storage.startups.push(took);
        storage.startup_rss_kib = storage.startup_rss_kib.max(rss);
    }
    storage.startups.sort_unstable();
    storage.startup_state_bytes = std::fs::metadata(dir.path().join("dynamic_ports.json"))?.len();
    eprintln!(
        "bench: storage, start-up with {STARTUP_LEASES} leases: median {:.2} ms of {runs}, VmRSS {} KiB, state file {} bytes",
        table::ms(table::quantile(&storage.startups, 0.5)),
        storage.startup_rss_kib,
        storage.startup_state_bytes
    );
    Ok(())
}

/// Spawns dynport on the state of `dir` and times it to its first answer,
/// on the port it served last (it tries that one first); returns the time
/// and its VmRSS then.
fn start_once(options: &Options, dir: &TempDir) -> io::Result<(Duration, u64)> {
    let port = last_server_port(dir.path())?;
    let mut cmd = Command::new(&options.dynport);
    cmd.args(["--range", RANGE, "--state-dir"])
        .arg(dir.path())
        .args(["--log-level", "warn"])
        .args(FLAGS)
        .stdin(Stdio::null());
    let began = Instant::now();
    let child = Child::spawn(&mut cmd, false)?;
    let stream = loop {
        match TcpStream::connect(client::addr(port)) {
            Ok(stream) => break stream,
            Err(_) if began.elapsed() < Duration::from_secs(10) => thread::yield_now(),
            Err(e) => return Err(e),
        }
    };
    let (status, _) = Client::tcp(stream)?.request("GET", "/healthz", b"")?;
    let took = began.elapsed();
    if status != 200 {
        return Err(io::Error::other(format!("/healthz answered {status}")));
    }
    let rss = procs::status(child.pid())?.rss_kib;
    child.terminate(Duration::from_secs(6));
    Ok((took, rss))
}

fn last_server_port(dir: &Path) -> io::Result<u16> {
    let bytes = std::fs::read(dir.join("dynamic_ports.json"))?;
    let state: serde_json::Value = serde_json::from_slice(&bytes)?;
    state["last_server_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| io::Error::other("no last_server_port in the state file"))
}

/// Waits (10 s at most) until the state file holds every change, as it
/// does a second or so after the last one: the lists are timed on a server
/// at rest, not beside the writing of the 5,000 grants just made. (A
/// dynport without a journal has nothing to wait for.)
fn settle(server: &Server) -> io::Result<()> {
    let dir = server
        .state_dir()
        .ok_or_else(|| io::Error::other("no state directory"))?;
    let journal = dir.join("dynamic_ports.journal");
    let deadline = Instant::now() + Duration::from_secs(10);
    // The journal is its header alone once the state file caught up.
    while std::fs::metadata(&journal).is_ok_and(|m| m.len() > 64) {
        if Instant::now() > deadline {
            return Err(io::Error::other(
                "the state file did not catch up within 10 s",
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `GET /api/v1/ports/leases` with `LIST_LEASES` leases, `LISTS` times on
/// one kept-alive connection.
fn lists(options: &Options, storage: &mut Storage) -> io::Result<()> {
    let server = start(options, "list")?;
    grant_many(server.port, LIST_LEASES)?;
    settle(&server)?;
    let mut client = Client::connect(server.port)?;
    for _ in 0..LISTS {
        let began = Instant::now();
        let (status, body) = client.request("GET", "/api/v1/ports/leases", b"")?;
        storage.lists.push(began.elapsed());
        if status != 200 {
            return Err(io::Error::other(format!("the list answered {status}")));
        }
        storage.list_bytes = body.len();
    }
    storage.lists.sort_unstable();
    eprintln!(
        "bench: storage, GET /api/v1/ports/leases with {LIST_LEASES} leases: median {:.2} ms, {} bytes",
        table::ms(table::quantile(&storage.lists, 0.5)),
        storage.list_bytes
    );
    server.stop();
    Ok(())
}
