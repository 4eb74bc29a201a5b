//! Lease grants: `LEASE_CLIENTS` clients, each on one kept-alive
//! connection, lease a port and release it again, in rounds that take in
//! turn dynport over TCP, the baseline over TCP and dynport over its Unix
//! socket.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::servers::{self, Server};
use crate::{LEASE_CLIENTS, Options, table};

/// The ranges of the lease servers: wide, so that any free port in them
/// will do, and apart, so that neither's probe binds ever meet the other's.
const LEASE_RANGE: &str = "20000-24999";
const BASELINE_LEASE_RANGE: &str = "25000-29999";

/// Where a load connects: a TCP port of 127.0.0.1, or a Unix socket.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Tcp(u16),
    Unix(PathBuf),
}

/// What one lease load measured.
pub struct LeaseLoad {
    pub grants: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// Latency of every granted `POST /api/v1/ports/lease`, sorted.
    pub latencies: Vec<Duration>,
    /// State-file writes the server made meanwhile (from its `/metrics`).
    pub state_writes: u64,
}

impl LeaseLoad {
    pub fn per_sec(&self) -> f64 {
        self.grants as f64 / self.elapsed.as_secs_f64()
    }

    /// Grants and releases carried by one state-file write: each must be in
    /// the state file before its answer, and group commit lets one write
    /// carry several.
    pub fn changes_per_write(&self) -> f64 {
        (2 * self.grants) as f64 / self.state_writes.max(1) as f64
    }
}

/// Every lease load, one per round of each kind.
#[derive(Default)]
pub struct Leases {
    /// dynport over TCP.
    pub tcp: Vec<LeaseLoad>,
    /// The baseline over TCP; empty without `--baseline`.
    pub baseline: Vec<LeaseLoad>,
    /// dynport over its Unix socket.
    pub unix: Vec<LeaseLoad>,
}

/// `options.lease_rounds` rounds, each running the kinds in turn for
/// `options.lease_secs`, against one dynport and one baseline that live
/// through every round.
pub fn leases(options: &Options) -> io::Result<Leases> {
    let dynport = servers::start_dynport(&options.dynport, "dynport", Some(LEASE_RANGE))?;
    let socket = dynport
        .unix_socket()
        .ok_or_else(|| io::Error::other("dynport has no state directory"))?;
    servers::wait_for_unix_socket(&socket)?;
    let baseline = match &options.baseline {
        Some(bin) => Some(servers::start_dynport(
            bin,
            "baseline",
            Some(BASELINE_LEASE_RANGE),
        )?),
        None => None,
    };
    let duration = Duration::from_secs(options.lease_secs);
    let mut leases = Leases::default();
    for round in 1..=options.lease_rounds {
        let run = |server: &Server, endpoint: Endpoint, how: &str| {
            let load = lease_run(server, &endpoint, duration)?;
            log_run(round, options.lease_rounds, server.name, how, &load);
            Ok::<_, io::Error>(load)
        };
        leases
            .tcp
            .push(run(&dynport, Endpoint::Tcp(dynport.port), "TCP")?);
        if let Some(baseline) = &baseline {
            let load = run(baseline, Endpoint::Tcp(baseline.port), "TCP")?;
            leases.baseline.push(load);
        }
        leases
            .unix
            .push(run(&dynport, Endpoint::Unix(socket.clone()), "Unix")?);
    }
    for server in [Some(dynport), baseline].into_iter().flatten() {
        server.child.terminate(Duration::from_secs(6));
    }
    Ok(leases)
}

fn log_run(round: usize, rounds: usize, name: &str, how: &str, load: &LeaseLoad) {
    eprintln!(
        "bench: lease round {round}/{rounds}, {name:<8} {how:<4} {:>5.0} grants/s, {} refused, p50 {:.3} ms, p99 {:.3} ms, {:.2} changes per state-file write",
        load.per_sec(),
        load.failures,
        table::ms(table::quantile(&load.latencies, 0.5)),
        table::ms(table::quantile(&load.latencies, 0.99)),
        load.changes_per_write(),
    );
}

/// One lease load on `endpoint`, with the server's state-file writes
/// meanwhile (read over TCP).
fn lease_run(server: &Server, endpoint: &Endpoint, duration: Duration) -> io::Result<LeaseLoad> {
    let writes_before = state_writes(server.port)?;
    let mut load = lease_load(endpoint, LEASE_CLIENTS, duration)?;
    load.state_writes = state_writes(server.port)? - writes_before;
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

/// `clients` threads, each on one kept-alive connection to `endpoint`,
/// lease a port and release it again until `duration` has passed.
pub fn lease_load(
    endpoint: &Endpoint,
    clients: usize,
    duration: Duration,
) -> io::Result<LeaseLoad> {
    let began = Instant::now();
    let deadline = began + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let endpoint = endpoint.clone();
            thread::spawn(move || match endpoint {
                Endpoint::Tcp(port) => lease_loop(Client::connect(port)?, deadline),
                Endpoint::Unix(path) => lease_loop(Client::unix(&path)?, deadline),
            })
        })
        .collect();
    let mut load = LeaseLoad {
        grants: 0,
        failures: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        state_writes: 0,
    };
    for thread in threads {
        let (latencies, failures) = thread
            .join()
            .map_err(|_| io::Error::other("a lease client panicked"))??;
        load.grants += latencies.len() as u64;
        load.failures += failures;
        load.latencies.extend(latencies);
    }
    load.elapsed = began.elapsed();
    load.latencies.sort_unstable();
    Ok(load)
}

fn lease_loop<S: Read + Write>(
    mut client: Client<S>,
    deadline: Instant,
) -> io::Result<(Vec<Duration>, u64)> {
    let (mut latencies, mut failures) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let (status, body) = client.request("POST", "/api/v1/ports/lease", b"{}")?;
        let took = sent.elapsed();
        if status != 201 {
            failures += 1;
            continue;
        }
        latencies.push(took);
        let id = lease_id(&body)?;
        let (status, body) =
            client.request("DELETE", &format!("/api/v1/ports/leases/{id}"), b"")?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            return Err(io::Error::other(format!(
                "release answered {status}: {text}"
            )));
        }
    }
    Ok((latencies, failures))
}

fn lease_id(body: &[u8]) -> io::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value["lease"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("a 201 without lease.id"))
}
