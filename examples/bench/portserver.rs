//! `bench --only portserver`: grants per second through portpicker's
//! portserver protocol, dynport against Google's own `portserver.py` (from
//! the portpicker package) in the same run. [`CLIENTS`] Python processes
//! call `portpicker.get_port_from_port_server` in a loop for [`SECS`]
//! seconds; they stay alive meanwhile, so every port they got stays
//! leased. Rounds alternate the two servers, each round on a fresh one.

use crate::procs::{Child, TempDir};
use crate::table::{self, Row, ms, quantile};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Client processes asking at once.
pub const CLIENTS: usize = 8;
/// Seconds each server is under load per round.
const SECS: f64 = 3.0;
const ROUNDS: usize = 3;
/// Both servers hand out ports of this range, below the kernel's ephemeral
/// ports; wide enough that neither runs out.
const RANGE: (u16, u16) = (10000, 31999);
/// dynport's target: this many times the portserver's rate.
const TARGET_RATIO: f64 = 1.5;

/// The client: waits for the common start, asks until the end, prints
/// what it got as one JSON line, then holds its ports until killed.
const CLIENT: &str = r#"
import json, sys, time, portpicker
address, start, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
end, grants, failures, latencies = start + secs, 0, 0, []
while time.time() < end:
    began = time.perf_counter()
    port = portpicker.get_port_from_port_server(address)
    if port:
        grants += 1
        latencies.append(time.perf_counter() - began)
    else:
        failures += 1
print("result:", json.dumps({"grants": grants, "failures": failures,
                             "latencies": latencies}), flush=True)
sys.stdin.read()
"#;

/// One server's load over one round.
#[derive(Default)]
pub struct Load {
    pub grants: u64,
    pub failures: u64,
    pub latencies: Vec<Duration>,
    pub secs: f64,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.grants as f64 / self.secs
    }
}

/// The rounds of both servers.
#[derive(Default)]
pub struct Figures {
    pub dynport: Vec<Load>,
    pub google: Vec<Load>,
    /// Rounds in which dynport's state file and journal held fewer leases than the
    /// grants its clients were answered: answers given before they were
    /// durable.
    pub not_durable: usize,
}

/// Runs the rounds against `dynport` (the binary) and Google's `portserver.py`.
pub fn measure(dynport: &Path) -> io::Result<Figures> {
    let script = google_portserver()?;
    let dir = TempDir::new("portserver")?;
    let client = dir.path().join("client.py");
    std::fs::write(&client, CLIENT)?;
    let mut figures = Figures::default();
    for round in 1..=ROUNDS {
        let name = format!("dynport-bench-{}-{round}", std::process::id());
        let (load, durable) = against_dynport(dynport, &client, &name)?;
        report(round, "dynport", &load);
        figures.not_durable += usize::from(!durable);
        figures.dynport.push(load);
        let load = against_google(&script, &client, &format!("{name}-google"))?;
        report(round, "portserver.py", &load);
        figures.google.push(load);
    }
    Ok(figures)
}

fn report(round: usize, server: &str, load: &Load) {
    let p50 = ms(quantile(&load.latencies, 0.5));
    eprintln!(
        "bench: portserver round {round}/{ROUNDS}, {server:<13} {:>6.0} grants/s, p50 {p50:.3} ms, {} failed",
        load.rate(),
        load.failures
    );
}

/// dynport with a portserver socket; also whether its state file and
/// journal held every lease its clients were answered, once they were all
/// answered.
fn against_dynport(bin: &Path, client: &Path, name: &str) -> io::Result<(Load, bool)> {
    let state = TempDir::new("portserver-state")?;
    let range = format!("{}-{}", RANGE.0, RANGE.1);
    let address = format!("@{name}");
    let mut cmd = Command::new(bin);
    cmd.args(["--range", &range, "--max-ports-per-uid", "none"])
        .args(["--portserver-socket", &address, "--log-level", "warn"])
        .arg("--state-dir")
        .arg(state.path())
        .stdin(Stdio::null());
    let server = Child::spawn(&mut cmd, true)?;
    wait_for_socket(name)?;
    let clients = spawn_clients(client, &address)?;
    let leased_at_end = || leases_in(state.path());
    let (load, leased) = collect(clients, Some(&leased_at_end))?;
    let durable = leased.is_some_and(|leased| leased >= load.grants);
    server.terminate(Duration::from_secs(6));
    Ok((load, durable))
}

/// Google's portserver.py from the portpicker package.
fn against_google(script: &Path, client: &Path, name: &str) -> io::Result<Load> {
    let pool = format!("--portserver_static_pool={}-{}", RANGE.0, RANGE.1);
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(pool)
        .arg(format!("--portserver_address=@{name}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let server = Child::spawn(&mut cmd, true)?;
    wait_for_socket(name)?;
    let clients = spawn_clients(client, &format!("@{name}"))?;
    let (load, _) = collect(clients, None)?;
    server.terminate(Duration::from_secs(6));
    Ok(load)
}

/// pip installs `portserver.py` as a script, not a module: in the scripts
/// directory of python3 (or of its user scheme), or somewhere on PATH.
fn google_portserver() -> io::Result<PathBuf> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sysconfig as s; print(s.get_path('scripts')); print(s.get_path('scripts', 'posix_user'))")
        .output()?;
    let scripts = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = scripts.lines().map(PathBuf::from);
    let found = dirs
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join("portserver.py"))
        .find(|script| script.is_file());
    found.ok_or_else(|| {
        io::Error::other("portserver.py not found: pip install portpicker (make test-deps)")
    })
}

fn wait_for_socket(name: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::os::unix::net::UnixStream::connect_addr(&addr) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// The clients, told to start together once all of them have had time to
/// load Python and portpicker.
fn spawn_clients(client: &Path, address: &str) -> io::Result<Vec<Child>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = (now.as_secs_f64() + 2.0).to_string();
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut cmd = Command::new("python3");
        cmd.arg(client)
            .args([address, &start, &SECS.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        clients.push(Child::spawn(&mut cmd, true)?);
    }
    Ok(clients)
}

/// Adds up what the clients printed, then runs `leased` while they all
/// still hold their ports, and stops them.
fn collect(
    clients: Vec<Child>,
    leased: Option<&dyn Fn() -> io::Result<u64>>,
) -> io::Result<(Load, Option<u64>)> {
    let mut load = Load {
        secs: SECS,
        ..Load::default()
    };
    let mut clients = clients;
    for client in &mut clients {
        let out = client.read_line_after("result: ")?;
        let got: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("a client printed {out:?}: {e}")))?;
        load.grants += got["grants"].as_u64().unwrap_or(0);
        load.failures += got["failures"].as_u64().unwrap_or(0);
        let latencies = got["latencies"].as_array().into_iter().flatten();
        let latencies = latencies.filter_map(|s| s.as_f64().map(Duration::from_secs_f64));
        load.latencies.extend(latencies);
    }
    load.latencies.sort_unstable();
    let leased = leased.map(|f| f()).transpose()?;
    drop(clients);
    Ok((load, leased))
}

/// The leases durable in dynport's state directory: the state file and
/// the journal after it, read as the next start reads them.
fn leases_in(dir: &Path) -> io::Result<u64> {
    let state = dynport::state::Store::open(dir)?
        .durable()
        .map_err(io::Error::other)?;
    Ok(state.map_or(0, |s| s.leases.len() as u64))
}

/// The table's rows: both rates (medians of the rounds) and their ratio.
pub fn rows(rows: &mut Vec<Row>, f: &Figures) {
    let median = |loads: &[Load]| table::median(&loads.iter().map(Load::rate).collect::<Vec<_>>());
    let (ours, google) = (median(&f.dynport), median(&f.google));
    let ratio = ours / google.max(1.0);
    rows.push(Row::dynport(
        &format!("portserver grants/s, {CLIENTS} portpicker processes"),
        format!("{ours:.0}"),
    ));
    rows.push(Row::dynport(
        "  Google's portserver.py, same load",
        format!("{google:.0}"),
    ));
    rows.push(Row::check(
        "  dynport / portserver.py",
        format!("{ratio:.2}x"),
        &format!(">= {TARGET_RATIO}x, durable"),
        ratio >= TARGET_RATIO && f.not_durable == 0,
    ));
    if f.not_durable > 0 {
        rows.push(Row::dynport(
            "  rounds with answers not in the state file or journal",
            f.not_durable.to_string(),
        ));
    }
    let mut all: Vec<Duration> = f.dynport.iter().flat_map(|l| l.latencies.clone()).collect();
    all.sort_unstable();
    rows.push(Row::dynport(
        "  grant latency p50 (ms)",
        format!("{:.3}", ms(quantile(&all, 0.5))),
    ));
}
