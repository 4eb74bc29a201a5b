//! UDP through the real binary: ports held by UDP sockets (IPv4 only, IPv6
//! only, both) show their protocols, are never leased for `both` or `udp`
//! and are leased for `tcp`; `dynport run --socket --protocol udp` hands
//! CMD a bound datagram socket.

use crate::fixture::{BIN, EXIT_TIMEOUT, Launch, free_range, has_ipv6, run_to_end};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;

/// UDP sockets on the last three ports of `range`: IPv4 only, IPv6 only
/// (IPv4 when the host has no IPv6), and both.
fn hold_in_udp(range: (u16, u16)) -> (Vec<u16>, Vec<UdpSocket>) {
    let ports = vec![range.1 - 2, range.1 - 1, range.1];
    let v6 = has_ipv6();
    let mut sockets = vec![UdpSocket::bind((Ipv4Addr::LOCALHOST, ports[0])).unwrap()];
    if v6 {
        sockets.push(UdpSocket::bind((Ipv6Addr::LOCALHOST, ports[1])).unwrap());
        sockets.push(UdpSocket::bind((Ipv6Addr::LOCALHOST, ports[2])).unwrap());
    } else {
        crate::fixture::skipped(format_args!("the IPv6 sockets: this host has no IPv6"));
        sockets.push(UdpSocket::bind((Ipv4Addr::LOCALHOST, ports[1])).unwrap());
    }
    sockets.push(UdpSocket::bind((Ipv4Addr::LOCALHOST, ports[2])).unwrap());
    (ports, sockets)
}

fn lease(server: &crate::fixture::Server, body: Value) -> (u16, Value) {
    server
        .json_request("POST", "/api/v1/ports/lease", &body.to_string())
        .unwrap()
}

#[test]
fn udp_held_ports_are_leased_for_tcp_only() {
    let range = free_range(10);
    let (held, _sockets) = hold_in_udp(range);
    let server = Launch::with_range(range, &["--exclude", "none"]).start();
    let state = server.state();
    for port in &held {
        let entry = &state["ports"][port.to_string()];
        assert_eq!(entry["state"], "in_use", "{port}: {state}");
        assert_eq!(entry["protocols"], json!(["udp"]), "{port}: {state}");
    }
    for &port in &held {
        for protocol in [None, Some("both"), Some("udp")] {
            let mut body = json!({ "port": port });
            if let Some(p) = protocol {
                body["protocol"] = json!(p);
            }
            let (status, answer) = lease(&server, body);
            assert_eq!(status, 409, "{port} {protocol:?}: {answer}");
        }
    }
    // The other ports of the range: the server's, then six free ones.
    let (status, answer) = lease(&server, json!({"count": 6}));
    assert_eq!(status, 201, "{answer}");
    let granted: Vec<u64> = serde_json::from_value(answer["lease"]["ports"].clone()).unwrap();
    assert!(
        granted.iter().all(|p| !held.contains(&(*p as u16))),
        "{granted:?}"
    );
    assert_eq!(answer["lease"]["protocol"], "both");
    let (status, answer) = lease(&server, json!({"protocol": "udp"}));
    assert_eq!(status, 409, "nothing left free in UDP: {answer}");
    for &port in &held {
        let (status, answer) = lease(&server, json!({"port": port, "protocol": "tcp"}));
        assert_eq!(status, 201, "{port}: {answer}");
        assert_eq!(answer["lease"]["protocol"], "tcp");
        let entry = &server.state()["ports"][port.to_string()];
        assert_eq!(entry["state"], "leased");
    }
}

#[test]
fn run_socket_with_udp_hands_cmd_a_bound_datagram_socket() {
    let server = Launch::new(&[]).start();
    let check = "import os, socket; \
        s = socket.socket(fileno=3); \
        print(s.type == socket.SOCK_DGRAM, s.getsockname()[1] == int(os.environ['PORT']))";
    let dir = server.launch.dir.path().to_str().unwrap().to_string();
    let mut run = Command::new(BIN);
    run.args([
        "run",
        "--state-dir",
        &dir,
        "--socket",
        "--protocol",
        "udp",
        "--",
    ])
    .args(["python3", "-c", check]);
    let (status, stdout, stderr) = run_to_end(&mut run, EXIT_TIMEOUT);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "True True", "{stderr}");
}
