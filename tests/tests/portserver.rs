//! portpicker's portserver protocol through the real binary: Python's own
//! `portpicker` gets leased ports that no two processes share and that come
//! back when their process exits; bad, silent and foreign requests get no
//! answer and leave no lease; the socket is set up and refused as the API's
//! own is. Tests that need portpicker say they are skipped without it
//! (`make test` installs it); tests that need a second local user make one
//! when run as root and say they are skipped otherwise.

mod fair;
mod support;
#[allow(dead_code)]
use crate::trust::users;

use crate::fixture::{EXIT_TIMEOUT, TempDir, eventually, free_range, run_dynport};
use serde_json::json;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use support::{
    Holder, ask, ask_once, connect, has_portpicker, lease_of, leases, metric, read_to_close, start,
    unique_name,
};
use users::{Proc, User, alice_and_bob, as_user, euid};

const BAD_REQUESTS: &str = "dynport_lease_denials_total{reason=\"bad_request\"}";

/// The port in an answer, which must be exactly a port and a newline.
fn port_in(answer: &str) -> u16 {
    let digits = answer.strip_suffix('\n');
    let port = digits.and_then(|d| d.parse().ok());
    port.unwrap_or_else(|| panic!("{answer:?} is not a port and a newline"))
}

fn own_command_name() -> String {
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    comm.trim_end().to_string()
}

#[test]
fn portpicker_gets_a_port_leased_to_its_own_process() {
    if !has_portpicker() {
        return;
    }
    let address = unique_name("one");
    let server = start(8, &address, &[]);
    let holder = Holder::spawn(&address, 1).ready();
    let port = holder.ports[0];
    let (first, last) = server.range();
    assert!(
        (first..=last).contains(&port),
        "{port} is outside the range"
    );
    assert_eq!(holder.bindable, [true], "port {port} cannot be bound");
    let lease = lease_of(&server, port)
        .unwrap_or_else(|| panic!("port {port} is not leased: {:?}", leases(&server)));
    let fields = [
        "pid", "owner", "uid", "pool", "ports", "ttl_secs", "protocol",
    ];
    let fields = fields.map(|f| lease[f].clone());
    let expected = [
        json!(holder.pid),
        json!("python3"),
        json!(euid()),
        json!("default"),
        json!([port]),
        json!(604_800),
        json!("both"),
    ];
    assert_eq!(fields, expected, "{lease}");
    let id = lease["id"].as_str().unwrap().to_string();
    assert_eq!(server.state()["leases"][&id]["pid"], holder.pid);

    holder.finish();
    // The refresh pass ends it: logged, and out of the state file.
    server.wait_for_log(&format!("lease {id} ended (owner exited)"), EXIT_TIMEOUT);
    eventually(EXIT_TIMEOUT, "the lease out of the state file", || {
        server.state()["leases"].get(&id).is_none()
    });
    assert_eq!(lease_of(&server, port), None);
}

#[test]
fn a_port_comes_back_to_the_pool_once_its_process_exits() {
    if !has_portpicker() {
        return;
    }
    let address = unique_name("back");
    // Two ports: the server's own and one to lease.
    let server = start(2, &address, &[]);
    let holder = Holder::spawn(&address, 1).ready();
    let port = holder.ports[0];
    assert!(lease_of(&server, port).is_some());
    assert_eq!(ask_once(&address), None, "a second port out of one");
    holder.finish();
    eventually(EXIT_TIMEOUT, "the port to be handed out again", || {
        ask_once(&address) == Some(port)
    });
}

#[test]
fn a_port_held_in_udp_alone_is_not_handed_out() {
    let address = unique_name("udp");
    // Two ports: the server's own and one to lease, which a UDP socket holds.
    let server = start(2, &address, &[]);
    let (first, last) = server.range();
    let free = if server.port == first { last } else { first };
    let held = std::net::UdpSocket::bind(("0.0.0.0", free)).unwrap();
    let me = format!("{}\n", std::process::id());
    assert_eq!(
        ask(&address, me.as_bytes()),
        "",
        "port {free} is held in UDP"
    );
    assert!(leases(&server).is_empty());
    drop(held);
    assert_eq!(port_in(&ask(&address, me.as_bytes())), free);
}

#[test]
fn twenty_processes_asking_five_ports_each_never_share_one() {
    if !has_portpicker() {
        return;
    }
    let address = unique_name("many");
    let server = start(104, &address, &[]);
    let spawned: Vec<Holder> = (0..20).map(|_| Holder::spawn(&address, 5)).collect();
    let holders: Vec<Holder> = spawned.into_iter().map(Holder::ready).collect();
    let mut seen = HashSet::new();
    for holder in &holders {
        assert_eq!(holder.ports.len(), 5);
        assert_eq!(holder.bindable, [true; 5], "pid {}", holder.pid);
        for &port in &holder.ports {
            assert!(seen.insert(port), "port {port} was handed out twice");
            let lease = lease_of(&server, port).unwrap_or_else(|| panic!("{port} not leased"));
            assert_eq!(lease["pid"], holder.pid, "{lease}");
        }
    }
    assert_eq!(leases(&server).len(), 100);
    holders.into_iter().for_each(Holder::finish);
    eventually(EXIT_TIMEOUT, "every lease to end", || {
        leases(&server).is_empty()
    });
}

#[test]
fn malformed_requests_get_no_answer_and_leave_no_lease() {
    let address = unique_name("malformed");
    let server = start(8, &address, &[]);
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let me = std::process::id();
    let requests = [
        "abc\n".to_string(),
        "0\n".to_string(),
        "1\n".to_string(),
        "-5\n".to_string(),
        " 42\n".to_string(),
        format!("{}\n", gone.id()),
        format!("{}\n", "9".repeat(40)),
        format!("{me}\n{me}\n"),
    ];
    for request in &requests {
        let answer = ask(&address, request.as_bytes());
        assert_eq!(answer, "", "{request:?} got an answer");
    }
    let mut unfinished = connect(&address);
    unfinished.write_all(me.to_string().as_bytes()).unwrap();
    unfinished.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut unfinished), "");
    assert_eq!(leases(&server), Vec::<serde_json::Value>::new());
    let refused = requests.len() as u64 + 1;
    eventually(EXIT_TIMEOUT, "every refusal counted", || {
        metric(&server, BAD_REQUESTS) == refused
    });
    // Each was judged on what it said, none cut off for saying nothing.
    assert!(!server.log().contains("no request line within the deadline"));
    assert!(server.log().contains(r#"portserver: refused uid"#));
    assert!(
        server
            .log()
            .contains(r#""abc\n" is not a pid and a newline"#)
    );

    let answer = ask(&address, format!("{me}\n").as_bytes());
    let lease = lease_of(&server, port_in(&answer)).expect("the good request is leased");
    assert_eq!(
        (&lease["pid"], &lease["owner"]),
        (&json!(me), &json!(own_command_name()))
    );
}

#[test]
fn a_silent_client_is_cut_off_after_five_seconds_and_holds_up_no_one() {
    let address = unique_name("silent");
    let server = start(8, &address, &[]);
    let started = Instant::now();
    let silent = connect(&address);
    let mut partial = connect(&address);
    partial.write_all(b"123").unwrap();
    let waiters = [("silent", silent), ("partial", partial)].map(|(name, mut stream)| {
        let waiter = thread::spawn(move || (read_to_close(&mut stream), started.elapsed()));
        (name, waiter)
    });
    let me = std::process::id();
    port_in(&ask(&address, format!("{me}\n").as_bytes()));
    for (name, waiter) in &waiters {
        assert!(
            !waiter.is_finished(),
            "the {name} client was cut off before the good request was answered"
        );
    }
    for (name, waiter) in waiters {
        let (answer, after) = waiter.join().unwrap();
        assert_eq!(answer, "", "the {name} client got an answer");
        assert!(
            after >= Duration::from_millis(4500),
            "the {name} client was cut after {after:?}"
        );
    }
    assert_eq!(leases(&server).len(), 1);
    assert!(server.log().contains("no request line within the deadline"));
}

#[test]
fn a_socket_file_is_open_to_all_replaced_when_stale_and_removed_at_exit() {
    let dir = TempDir::new();
    let path = dir.path().join("portserver.sock");
    let address = path.to_str().unwrap().to_string();
    let mut server = start(8, &address, &[]);
    let mode = std::fs::symlink_metadata(&path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
    let me = std::process::id();
    port_in(&ask(&address, format!("{me}\n").as_bytes()));

    server.kill9();
    assert!(path.exists(), "a killed server cannot remove its socket");
    let mut again = server.relaunch().start();
    port_in(&ask(&address, format!("{me}\n").as_bytes()));
    assert!(again.term().success());
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn a_socket_path_held_by_anything_else_is_refused_at_start() {
    let dir = TempDir::new();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "keep").unwrap();
    let live = unique_name("taken");
    let _holder = start(8, &live, &[]);
    for (address, why) in [
        (
            plain.to_str().unwrap(),
            "is not a socket; remove it or give --portserver-socket another path",
        ),
        (
            live.as_str(),
            "is taken by another process (another portserver?)",
        ),
    ] {
        let state = TempDir::new();
        let (first, last) = free_range(4);
        let range = format!("{first}-{last}");
        let args = [
            "--range",
            &range,
            "--portserver-socket",
            address,
            "--state-dir",
        ];
        let state_dir = state.path().to_str().unwrap();
        let (status, _, stderr) = run_dynport(&[&args[..], &[state_dir]].concat(), &[]);
        assert_eq!(status.code(), Some(1), "{stderr}");
        let expected = format!("cannot serve the portserver protocol on {address}");
        assert!(
            stderr.contains(&expected) && stderr.contains(why),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep");
}

#[test]
fn an_unknown_portserver_pool_is_a_usage_error() {
    let (status, _, stderr) = run_dynport(&["--portserver-pool", "nope"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"--portserver-pool: no pool named "nope"; the pools are default"#),
        "{stderr}"
    );
}

#[test]
fn users_may_name_only_their_own_processes_and_the_quota_holds() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let address = unique_name("users");
    let server = start(8, &address, &["--max-ports-per-uid", "1"]);
    let sleeper = Proc::sleep_as(&alice);
    let line = format!("{}\n", sleeper.pid());

    assert_eq!(
        ask_as(&bob, &address, &line),
        "",
        "bob named alice's process"
    );
    assert!(leases(&server).is_empty());
    let forbidden = "dynport_lease_denials_total{reason=\"forbidden\"}";
    assert_eq!(metric(&server, forbidden), 1);

    let port = port_in(&ask_as(&alice, &address, &line));
    let lease = lease_of(&server, port).unwrap();
    let fields = ["uid", "pid", "owner"].map(|f| lease[f].clone());
    assert_eq!(
        fields,
        [json!(alice.uid), json!(sleeper.pid()), json!("sleep")]
    );
    assert_eq!(ask_as(&alice, &address, &line), "", "over alice's quota");
    assert_eq!(
        metric(&server, "dynport_lease_denials_total{reason=\"quota\"}"),
        1
    );

    let port = port_in(&ask(&address, line.as_bytes()));
    let lease = lease_of(&server, port).unwrap();
    assert_eq!(
        (&lease["uid"], &lease["pid"]),
        (&json!(0), &json!(sleeper.pid()))
    );
}

/// Sends `line` to the portserver as `user`, from this very test binary
/// running [`zz_ask_for_another_user`] (nothing else here can connect as
/// another user), and returns the answer.
fn ask_as(user: &User, address: &str, line: &str) -> String {
    let mut command = Command::new(crate::fixture::for_everyone(
        &std::env::current_exe().unwrap(),
    ));
    command
        .args([
            "portserver::zz_ask_for_another_user",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("DYNPORT_TEST_PORTSERVER", address)
        .env("DYNPORT_TEST_LINE", line);
    let out = as_user(&mut command, Some(user)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("portserver answered: "));
    let answer = answer.unwrap_or_else(|| panic!("the helper failed: {out:?}"));
    serde_json::from_str(answer).unwrap()
}

#[test]
#[ignore = "a helper: ask_as runs it as another user"]
fn zz_ask_for_another_user() {
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (address, line) = (var("DYNPORT_TEST_PORTSERVER"), var("DYNPORT_TEST_LINE"));
    let answer = ask(&address, line.as_bytes());
    println!("portserver answered: {}", json!(answer));
}
