//! A fair share of the portserver for each user: one user's flood of
//! silent clients is cut at 64 waiting, and another user's request is
//! still answered.

use super::support::{connect, lease_of, metric, start, unique_name};
use super::{ask_as, port_in};
use crate::trust::users::{Proc, alice_and_bob, as_user};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Silent clients the flood opens, as many as once kept another user's
/// request from being answered.
const FLOOD: usize = 1100;
/// The clients of one uid that may wait for their line at once.
const PER_UID: usize = 64;
const UNAVAILABLE: &str = "dynport_lease_denials_total{reason=\"unavailable\"}";

#[test]
fn one_users_silent_clients_never_crowd_out_another_users_request() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let address = unique_name("flood");
    let server = start(8, &address, &[]);
    // alice's helper inherits this process's limits and raises its soft
    // limit to them: room for the flood.
    raise_nofile(FLOOD as u64 + 256);
    let mut command = Command::new(crate::fixture::for_everyone(
        &std::env::current_exe().unwrap(),
    ));
    command
        .args([
            "portserver::fair::zz_hold_silent_clients",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("DYNPORT_TEST_PORTSERVER", &address)
        .env("DYNPORT_TEST_COUNT", FLOOD.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut flood = Proc(as_user(&mut command, Some(&alice)).spawn().unwrap());
    let mut lines = BufReader::new(flood.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("holding ") {
        line.clear();
        let read = lines.read_line(&mut line).unwrap();
        assert_ne!(read, 0, "the flood helper ended before holding its clients");
    }
    assert_eq!(line.trim_end(), format!("holding {FLOOD} silent clients"));

    // bob asks while alice's clients wait (they are cut after 5 s).
    let sleeper = Proc::sleep_as(&bob);
    let answer = ask_as(&bob, &address, &format!("{}\n", sleeper.pid()));
    let port = port_in(&answer);
    let lease = lease_of(&server, port).unwrap();
    assert_eq!(
        [&lease["uid"], &lease["pid"]],
        [&json!(bob.uid), &json!(sleeper.pid())]
    );
    // Every client of alice's past the 64th was closed at once.
    let closed = (FLOOD - PER_UID) as u64;
    crate::fixture::eventually(
        Duration::from_secs(10),
        "alice's clients past the 64th to be refused",
        || metric(&server, UNAVAILABLE) == closed,
    );
    let said = format!(
        "portserver: uid {} has {PER_UID} clients waiting for their line already",
        alice.uid
    );
    assert_eq!(server.log().matches(&said).count(), 1, "{}", server.log());
    drop(flood);
}

/// Raises this process's limits on open descriptors to at least `wanted`
/// (only ever up: other tests share the process).
fn raise_nofile(wanted: u64) {
    let mut limits = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limits` is a live rlimit the kernel writes, then reads.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limits), 0);
        limits.rlim_cur = limits.rlim_cur.max(wanted);
        limits.rlim_max = limits.rlim_max.max(wanted);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limits), 0);
    }
}

#[test]
#[ignore = "a helper: the flood test runs it as another user"]
fn zz_hold_silent_clients() {
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let address = var("DYNPORT_TEST_PORTSERVER");
    let count: usize = var("DYNPORT_TEST_COUNT").parse().unwrap();
    let clients: Vec<_> = (0..count).map(|_| connect(&address)).collect();
    println!("holding {} silent clients", clients.len());
    // Until the test is done with them.
    let _ = std::io::stdin().lines().count();
}
