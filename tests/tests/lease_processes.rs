//! The processes of pid-bound leases when descriptors are scarce: past the
//! cap of pidfds (sized under the server's descriptor limit) a lease's
//! process is polled by pid and start time, the server never runs out of
//! descriptors for its connections, and every lease still ends with its
//! process.

use crate::fixture::{Launch, Server, eventually, free_range};
use crate::trust::users::{User, alice_and_bob, as_user};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// More pid-bound leases than the pidfds a limit of 1024 descriptors
/// allows (240), and as many as once ran such a server out of them.
const LEASES: usize = 1010;
/// Threads asking for the leases at once.
const ASKERS: usize = 4;

/// Processes that live until dropped.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(count: usize) -> Sleepers {
        let spawn = |_| {
            let sleep = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn();
            sleep.expect("sleep runs")
        };
        Sleepers((0..count).map(spawn).collect())
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }

    fn kill_all(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Leases one port for each of `pids`, from a few threads at once.
fn lease_each(server: &Server, pids: &[u32]) {
    std::thread::scope(|scope| {
        for share in pids.chunks(pids.len().div_ceil(ASKERS)) {
            scope.spawn(move || {
                for pid in share {
                    let body = format!(r#"{{"pid": {pid}, "ttl_secs": 3600}}"#);
                    let reply = server.post("/api/v1/ports/lease", &body, &[]);
                    assert_eq!(reply.status, 201, "lease for {pid}: {reply:?}");
                }
            });
        }
    });
}

/// `POST /api/v1/ports/lease` with curl as `user` over TCP: the status.
fn lease_as(user: &User, server: &Server) -> u16 {
    let url = format!("http://127.0.0.1:{}/api/v1/ports/lease", server.port);
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .args([
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        "{}",
    ])
    .arg(url);
    let out = as_user(&mut curl, Some(user)).output().expect("curl runs");
    let status = String::from_utf8_lossy(&out.stdout);
    status.parse().unwrap_or_else(|_| panic!("curl: {out:?}"))
}

fn live_leases(server: &Server) -> usize {
    let reply = server.get("/api/v1/ports/leases");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["leases"].as_array().unwrap().len()
}

#[test]
fn leases_past_the_pidfd_cap_are_polled_and_end_with_their_processes() {
    // No refresh pass in the test's time: only the poll ends leases.
    let args = ["--exclude", "none", "--refresh-secs", "3600"];
    let server = Launch::with_range(free_range(1100), &args)
        .nofile(1024)
        .start();
    let mut sleepers = Sleepers::spawn(LEASES);
    lease_each(&server, &sleepers.pids());
    let log = server.log();
    assert!(
        log.contains("open descriptor limit 1024: at most 240 connections"),
        "{log}"
    );
    assert!(
        log.contains("the cap of 240 pidfds is reached"),
        "no polling: {log}"
    );
    assert_eq!(live_leases(&server), LEASES);
    let bob = alice_and_bob().map(|(_, bob)| bob);
    if let Some(bob) = &bob {
        assert_eq!(lease_as(bob, &server), 201, "{}", server.log());
        assert_eq!(live_leases(&server), LEASES + 1);
    }

    sleepers.kill_all();
    // The polled processes' leases end by the poll alone; those of the
    // processes a pidfd watches end at the next lease change (or scan),
    // which this makes: a lease of the test's own, released at once.
    eventually(
        Duration::from_secs(30),
        "the leases of the killed processes to end",
        || {
            let lease = server.post("/api/v1/ports/lease", "{}", &[]);
            if lease.status == 201 {
                let id = lease.json()["lease"]["id"].as_str().unwrap().to_string();
                let path = format!("/api/v1/ports/leases/{id}");
                assert_eq!(server.request("DELETE", &path, &[], "").status, 200);
            }
            server.log().matches("ended (owner exited)").count() == LEASES
        },
    );
    let log = server.log();
    assert!(log.contains("no lease process is polled any more"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert_eq!(live_leases(&server), usize::from(bob.is_some()));
}
