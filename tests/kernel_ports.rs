//! The kernel's own ports through the real binary: the warning when the
//! managed range overlaps the host's ephemeral range, and `--reserve-kernel`
//! keeping leased and server ports in the host's `ip_local_reserved_ports`
//! (as root), never touching the entries of others, restoring the file's
//! first value when each test ends. A test binary of its own: these tests
//! change a file the whole host shares, so they run one at a time, and
//! their ports lie in the kernel's ephemeral range, from which the other
//! tests' outgoing connections would draw if they ran beside them.

#[path = "tests/fixture/mod.rs"]
mod fixture;

use crate::fixture::{Launch, TempDir, eventually, port_is_free, run_to_end};
use dynport::app::kernel_ports::{format_list, parse_list, parse_range};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";
const WAIT: Duration = Duration::from_secs(10);

/// The host's ephemeral range, or `None` after saying why the test is skipped.
fn ephemeral() -> Option<(u16, u16)> {
    match fs::read_to_string(PORT_RANGE).map(|t| parse_range(&t)) {
        Ok(Ok(range)) => Some((range.start, range.end)),
        other => {
            crate::fixture::skipped(format_args!("cannot read {PORT_RANGE}: {other:?}"));
            None
        }
    }
}

/// A window of `n` ports inside `(low, high)` that could all be bound just
/// now. Outgoing connections may hold any port there, so it is looked for.
fn free_window_in((low, high): (u16, u16), n: u16) -> (u16, u16) {
    let span = u32::from(high - low + 1 - n);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for attempt in 0..400u32 {
        let first = low + ((seed.wrapping_add(attempt * 7919)) % span) as u16;
        let last = first + n - 1;
        if (first..=last).all(port_is_free) {
            return (first, last);
        }
    }
    panic!("no window of {n} free ports in the ephemeral range {low}-{high}");
}

fn reserved() -> BTreeSet<u16> {
    let text = fs::read_to_string(RESERVED).expect("the reserved list is readable");
    parse_list(&text).expect("the kernel's list parses")
}

fn write_reserved(ports: &BTreeSet<u16>) {
    fs::write(RESERVED, format!("{}\n", format_list(ports))).expect("the reserved list is written");
}

/// Holds the host's reserved list for one test and puts its first value
/// back when dropped, even when the test panics.
struct ReservedList {
    first: BTreeSet<u16>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl ReservedList {
    /// The list, when this process may write it; `None` after saying why
    /// the test is skipped.
    fn take() -> Option<ReservedList> {
        static ONE: Mutex<()> = Mutex::new(());
        let one = ONE.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = OpenOptions::new().write(true).open(RESERVED) {
            crate::fixture::skipped(format_args!("needs root to write {RESERVED} ({e})"));
            return None;
        }
        Some(ReservedList {
            first: reserved(),
            _one_at_a_time: one,
        })
    }

    /// The first value with `foreign` added, as another program would.
    fn add_foreign(&self, foreign: &[u16]) -> BTreeSet<u16> {
        let with: BTreeSet<u16> = self.first.iter().chain(foreign).copied().collect();
        write_reserved(&with);
        with
    }
}

impl Drop for ReservedList {
    fn drop(&mut self) {
        write_reserved(&self.first);
    }
}

/// Leases `port` with `ttl_secs` and returns the lease's id.
fn lease(server: &crate::fixture::Server, port: u16, ttl_secs: u64) -> String {
    let body = format!(r#"{{"port": {port}, "ttl_secs": {ttl_secs}}}"#);
    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", &body)
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["lease"]["id"].as_str().unwrap().to_string()
}

/// A port of `(first, last)` that is neither the server's nor in `not`.
fn other_port(server: &crate::fixture::Server, (first, last): (u16, u16), not: &[u16]) -> u16 {
    let mut ports = (first..=last).filter(|p| *p != server.port && !not.contains(p));
    ports.next().expect("the window has a port left")
}

fn release(server: &crate::fixture::Server, id: &str) {
    let path = format!("/api/v1/ports/leases/{id}");
    let (status, answer) = server.json_request("DELETE", &path, "").unwrap();
    assert_eq!(status, 200, "{answer}");
}

fn overview(server: &crate::fixture::Server) -> Value {
    server.get("/api/v1/system/overview").json()["port_manager"].clone()
}

#[test]
fn a_range_overlapping_the_kernels_is_warned_at_start() {
    let Some(kernel) = ephemeral() else { return };
    let (first, last) = free_window_in(kernel, 8);
    let server = Launch::with_range((first, last), &[]).start();
    let warning = format!(
        "the managed range {first}-{last} overlaps the kernel's ephemeral range {}-{} \
         (ports {first}-{last}): any outgoing connection can take a leased port there \
         before its holder binds it; narrow --range, or use --reserve-kernel",
        kernel.0, kernel.1
    );
    assert!(server.log().contains(&warning), "{}", server.log());
    let manager = overview(&server);
    let range = serde_json::json!({"start": kernel.0, "end": kernel.1});
    assert_eq!(manager["kernel_ephemeral_range"], range);
    assert_eq!(manager["kernel_reserved_ports"], Value::Null);
}

#[test]
fn a_range_below_the_kernels_is_not_warned() {
    let Some(kernel) = ephemeral() else { return };
    let server = Launch::new(&[]).start();
    let (first, last) = server.range();
    if last >= kernel.0 && first <= kernel.1 {
        crate::fixture::skipped(format_args!(
            "this host's ephemeral range reaches the fixture's ranges"
        ));
        return;
    }
    assert!(!server.log().contains("overlaps"), "{}", server.log());
}

#[test]
fn reserve_kernel_without_the_right_to_write_exits_2_naming_the_fix() {
    let dir = TempDir::new();
    let state = dir.path().join("state");
    let mut cmd = Command::new(crate::fixture::for_everyone(std::path::Path::new(
        crate::fixture::BIN,
    )));
    cmd.env_clear()
        .args(["--reserve-kernel", "--range", "40000-40010", "--state-dir"])
        .arg(&state);
    if fixture_euid() == 0 {
        // Root may write it: the refusal is what nobody (65534) gets.
        cmd.uid(65534).gid(65534);
    }
    let (status, _, stderr) = run_to_end(&mut cmd, WAIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    let message = format!(
        "--reserve-kernel (DYNPORT_RESERVE_KERNEL): cannot write {RESERVED}: Permission \
         denied (os error 13); run dynport as root (or with CAP_NET_ADMIN) where /proc/sys \
         is writable, or without --reserve-kernel"
    );
    assert!(stderr.contains(&message), "{stderr}");
    assert!(!state.exists(), "the state directory was created");
}

fn fixture_euid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

#[test]
fn reserve_kernel_follows_grants_releases_expiries_and_the_server() {
    let Some(kernel) = ephemeral() else { return };
    let Some(list) = ReservedList::take() else {
        return;
    };
    let window = free_window_in(kernel, 8);
    let (first, last) = window;
    // Another program's entries: one inside the managed range, one outside.
    let outside = match last.checked_add(100) {
        Some(port) if port <= kernel.1 => port,
        _ => first - 100,
    };
    let others = list.add_foreign(&[last, outside]);
    let args = [
        "--reserve-kernel",
        "--refresh-secs",
        "1",
        "--exclude",
        "none",
    ];
    let mut server = Launch::with_range(window, &args).start();
    let with = |ports: &[u16]| -> BTreeSet<u16> { others.iter().chain(ports).copied().collect() };
    assert_eq!(reserved(), with(&[server.port]), "the server's own port");
    assert_eq!(overview(&server)["kernel_reserved_ports"], 1);

    let port = other_port(&server, window, &[last]);
    let id = lease(&server, port, 300);
    assert_eq!(
        reserved(),
        with(&[server.port, port]),
        "reserved before the 201"
    );
    assert_eq!(overview(&server)["kernel_reserved_ports"], 2);
    release(&server, &id);
    assert_eq!(reserved(), with(&[server.port]), "freed before the 200");

    // A port another program reserves stays reserved after its lease.
    let id = lease(&server, last, 300);
    assert_eq!(overview(&server)["kernel_reserved_ports"], 1);
    release(&server, &id);
    assert_eq!(reserved(), with(&[server.port]));

    let short = other_port(&server, window, &[last, port]);
    lease(&server, short, 1);
    assert!(reserved().contains(&short));
    eventually(WAIT, "the expired lease's port to leave the list", || {
        !reserved().contains(&short)
    });

    let old = server.port;
    let (status, moved) = server
        .json_request("POST", "/api/v1/server/port/change", "")
        .unwrap();
    assert_eq!(status, 200, "{moved}");
    server.port = moved["new_port"].as_u64().unwrap() as u16;
    assert_ne!(server.port, old);
    assert_eq!(reserved(), with(&[server.port]), "the new server port only");

    // The old port closes within a second of the change: not that one.
    lease(&server, other_port(&server, window, &[last, old]), 300);
    assert!(server.term().success(), "{}", server.log());
    assert_eq!(
        reserved(),
        others,
        "dynport's entries gone, the others kept"
    );
}

#[test]
fn reserve_kernel_entries_outlive_a_crash_and_the_next_server_takes_them_back() {
    let Some(kernel) = ephemeral() else { return };
    let Some(list) = ReservedList::take() else {
        return;
    };
    let window = free_window_in(kernel, 8);
    let others = list.add_foreign(&[window.1]);
    let launch = Launch::with_range(window, &["--reserve-kernel", "--exclude", "none"]);
    let mut server = launch.start();
    let port = other_port(&server, window, &[window.1]);
    let id = lease(&server, port, 300);
    let held: BTreeSet<u16> = others.iter().chain(&[server.port, port]).copied().collect();
    server.kill9();
    assert_eq!(
        reserved(),
        held,
        "a crash leaves the entries, the lease lives on"
    );

    let mut next = launch.start();
    assert!(next.log().contains("taking back"), "{}", next.log());
    assert!(reserved().contains(&port) && reserved().contains(&next.port));
    release(&next, &id);
    assert!(!reserved().contains(&port), "a taken-back entry is removed");
    assert!(next.term().success(), "{}", next.log());
    assert_eq!(reserved(), others);
}
