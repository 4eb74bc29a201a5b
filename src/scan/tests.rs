//! Scans of real sockets opened at run time, by every method.
//!
//! Ports come from a window of the host's non-ephemeral ports, picked at
//! random once per run and handed out 64 at a time, so that tests running in
//! parallel (and other processes' outgoing connections) stay out of each
//! other's ranges. Nothing assumes a port is free: each one is bound first.

use super::*;
use crate::ports::{Protocols, Seen};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::sync::Mutex;

const WINDOW: u16 = 64;

/// The first port of a window of `WINDOW` ports no other test of this run uses.
fn window() -> u16 {
    static NEXT: Mutex<u16> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
    if *next == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Below the default ephemeral range (32768-60999).
        *next = 15000 + ((nanos ^ std::process::id().wrapping_mul(7919)) % 14000) as u16;
    }
    let start = *next;
    *next += WINDOW;
    start
}

/// A listener on `ip` at the first port from `*next` that can be bound;
/// `*next` moves past it.
fn listen_from(ip: IpAddr, next: &mut u16) -> Option<(TcpListener, u16)> {
    while *next < u16::MAX - 1 {
        let port = *next;
        *next += 1;
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            return Some((listener, port));
        }
        if TcpListener::bind((ip, 0)).is_err() {
            return None; // this address cannot be bound at all (no IPv6, say)
        }
    }
    None
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const OTHER_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LOCALHOST6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Listeners on every kind of local address, and a port whose listener is
/// closed while a connection accepted from it lives on, all in one window.
struct Fixture {
    range: PortRange,
    /// The listening ports, each with the address it listens on.
    listening: Vec<(u16, IpAddr)>,
    not_listening: u16,
    _listeners: Vec<TcpListener>,
    _connection: (TcpStream, TcpStream),
}

impl Fixture {
    fn new() -> Fixture {
        let start = window();
        let mut next = start;
        let mut listening = Vec::new();
        let mut listeners = Vec::new();
        for ip in [LOCALHOST, ANY4, OTHER_LOOPBACK, LOCALHOST6, ANY6] {
            match listen_from(ip, &mut next) {
                Some((listener, port)) => {
                    listening.push((port, ip));
                    listeners.push(listener);
                }
                None if ip == LOCALHOST || ip == ANY4 => panic!("cannot listen on {ip}"),
                None => eprintln!("skipping listeners on {ip}: cannot bind it here"),
            }
        }
        let (closed, not_listening) = listen_from(LOCALHOST, &mut next).unwrap();
        let client = TcpStream::connect((LOCALHOST, not_listening)).unwrap();
        let (server, _) = closed.accept().unwrap();
        drop(closed);
        assert!(next < start + WINDOW, "window {start} too crowded");
        Fixture {
            range: PortRange::new(start, next - 1).unwrap(),
            listening,
            not_listening,
            _listeners: listeners,
            _connection: (client, server),
        }
    }
}

/// The ports of `range` that `method` sees, each with its protocols.
fn scan_seen(method: Method, range: PortRange) -> Vec<Seen> {
    let seen = Scanner::with_method(method)
        .scan_without_fallback(range)
        .unwrap_or_else(|e| panic!("{method} scan of {range} failed: {e}"));
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "{method}: {seen:?} not sorted and unique"
    );
    assert!(
        seen.iter().all(|(p, _)| range.contains(*p)),
        "{method}: {seen:?} outside {range}"
    );
    seen
}

/// The ports of `range` that `method` sees held in TCP.
fn scan(method: Method, range: PortRange) -> Vec<u16> {
    let seen = scan_seen(method, range);
    seen.iter()
        .filter(|(_, p)| p.tcp)
        .map(|(port, _)| *port)
        .collect()
}

fn single(port: u16) -> PortRange {
    PortRange::new(port, port).unwrap()
}

#[test]
fn every_method_finds_listeners_on_every_address_kind() {
    let fx = Fixture::new();
    for method in Method::ALL {
        let found = scan(method, fx.range);
        for (port, ip) in &fx.listening {
            assert!(
                found.contains(port),
                "{method} missed the listener on {ip}:{port}: {found:?}"
            );
        }
        let closed = fx.not_listening;
        assert!(
            !found.contains(&closed),
            "{method} reported closed listener {closed}: {found:?}"
        );
    }
}

#[test]
fn all_methods_agree_on_the_same_range() {
    let fx = Fixture::new();
    // Another process may open or close a listener in the range between two
    // scans: retry, and accept only a result that held for a whole round.
    let mut last = Vec::new();
    for _ in 0..5 {
        let round: Vec<Vec<u16>> = [
            Method::Netlink,
            Method::ProcNet,
            Method::Probe,
            Method::Netlink,
        ]
        .into_iter()
        .map(|method| scan(method, fx.range))
        .collect();
        if round.windows(2).all(|w| w[0] == w[1]) {
            assert!(round[0].len() >= fx.listening.len());
            return;
        }
        last = round;
    }
    panic!(
        "netlink, proc, probe, netlink disagree on {}: {last:?}",
        fx.range
    );
}

#[test]
fn closed_listener_disappears_while_its_connection_lives() {
    let mut next = window();
    let (listener, port) = listen_from(LOCALHOST, &mut next).unwrap();
    let mut client = TcpStream::connect((LOCALHOST, port)).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    for method in Method::ALL {
        assert_eq!(
            scan(method, single(port)),
            vec![port],
            "{method} before close"
        );
    }
    drop(listener);
    for method in Method::ALL {
        assert_eq!(
            scan(method, single(port)),
            Vec::<u16>::new(),
            "{method} after close"
        );
    }
    client.write_all(b"x").unwrap();
    let mut byte = [0];
    server.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"x", "the connection on {port} should still be up");
}

#[test]
fn outgoing_connection_port_counts_only_for_probe() {
    let mut next = window();
    let (listener, port) = listen_from(LOCALHOST, &mut next).unwrap();
    let client = TcpStream::connect((LOCALHOST, port)).unwrap();
    let _server = listener.accept().unwrap();
    let local = client.local_addr().unwrap().port();
    assert_eq!(scan(Method::Netlink, single(local)), Vec::<u16>::new());
    assert_eq!(scan(Method::ProcNet, single(local)), Vec::<u16>::new());
    // The client socket has no SO_REUSEADDR, so binding its port fails:
    // the probe cannot tell it from a listener (see `Method::Probe`).
    assert_eq!(scan(Method::Probe, single(local)), vec![local]);
}

#[test]
fn listener_on_ipv4_and_ipv6_is_reported_once() {
    let mut next = window();
    let (_v4, port) = listen_from(LOCALHOST, &mut next).unwrap();
    let Ok(_v6) = TcpListener::bind((LOCALHOST6, port)) else {
        eprintln!("skipping: cannot listen on [::1]:{port}");
        return;
    };
    for method in Method::ALL {
        assert_eq!(scan(method, single(port)), vec![port], "{method}");
    }
}

#[test]
fn scan_leaves_out_ports_outside_the_range() {
    let mut next = window();
    let (_low, low) = listen_from(LOCALHOST, &mut next).unwrap();
    let (_high, high) = listen_from(LOCALHOST, &mut next).unwrap();
    for method in Method::ALL {
        let upper = scan(method, PortRange::new(low + 1, high).unwrap());
        assert!(
            upper.contains(&high) && !upper.contains(&low),
            "{method}: {upper:?}"
        );
        let lower = scan(method, PortRange::new(low, high - 1).unwrap());
        assert!(
            lower.contains(&low) && !lower.contains(&high),
            "{method}: {lower:?}"
        );
    }
}

#[test]
fn detect_picks_the_first_method_that_works() {
    let works = |method| {
        Scanner::with_method(method)
            .scan_without_fallback(single(1))
            .is_ok()
    };
    let expected = [Method::Netlink, Method::ProcNet]
        .into_iter()
        .find(|m| works(*m))
        .unwrap_or(Method::Probe);
    assert_eq!(Scanner::detect().method(), expected);
}

#[test]
fn many_listeners_spanning_several_netlink_datagrams_are_all_found() {
    // About 100 bytes each: 500 sockets overflow the first 4 KiB datagram
    // of a dump and the 32 KiB ones after it.
    let listeners: Vec<TcpListener> = (0..500)
        .map(|_| TcpListener::bind((LOCALHOST, 0)).unwrap())
        .collect();
    let mut ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.sort_unstable();
    let range = PortRange::new(ports[0], ports[ports.len() - 1]).unwrap();
    for method in [Method::Netlink, Method::ProcNet] {
        let found = scan(method, range);
        let missed: Vec<&u16> = ports.iter().filter(|p| !found.contains(p)).collect();
        assert!(missed.is_empty(), "{method} missed {missed:?}");
    }
}

#[test]
fn detected_scanner_finds_a_listener_and_is_shareable() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let mut next = window();
    let (_listener, port) = listen_from(LOCALHOST, &mut next).unwrap();
    let scanner = Scanner::detect();
    shareable(&scanner);
    assert_eq!(
        scanner.scan(single(port)).unwrap(),
        vec![(port, Protocols::TCP)]
    );
    assert_eq!(
        scanner.scan(single(port)).unwrap(),
        vec![(port, Protocols::TCP)],
        "buffer reuse"
    );
}

#[test]
fn failed_scan_falls_back_to_the_slower_methods() {
    let mut tried = Vec::new();
    let ports = scan_chain(Method::Netlink, |method| {
        tried.push(method);
        match method {
            Method::Netlink => Err(io::Error::other("no netlink")),
            _ => Ok::<_, io::Error>(vec![3000]),
        }
    });
    assert_eq!(ports.unwrap(), vec![3000]);
    assert_eq!(tried, vec![Method::Netlink, Method::ProcNet]);

    tried.clear();
    let err = scan_chain(Method::ProcNet, |method| {
        tried.push(method);
        Err::<Vec<u16>, _>(io::Error::other(method.as_str()))
    });
    assert_eq!(err.unwrap_err().to_string(), "probe");
    assert_eq!(tried, vec![Method::ProcNet, Method::Probe]);
}

#[test]
fn method_names_are_the_overview_names() {
    let names: Vec<String> = Method::ALL.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["netlink", "proc", "probe"]);
    for method in Method::ALL {
        assert_eq!(Scanner::with_method(method).method(), method);
    }
}

/// A UDP socket on `ip` at the first port from `*next` that both TCP and UDP
/// can bind; `*next` moves past it.
fn udp_from(ip: IpAddr, next: &mut u16) -> Option<(std::net::UdpSocket, u16)> {
    while *next < u16::MAX - 1 {
        let port = *next;
        *next += 1;
        if TcpListener::bind((ip, port)).is_err() {
            continue;
        }
        if let Ok(socket) = std::net::UdpSocket::bind((ip, port)) {
            return Some((socket, port));
        }
        if std::net::UdpSocket::bind((ip, 0)).is_err() {
            return None;
        }
    }
    None
}

#[test]
fn every_method_sees_udp_sockets_on_ipv4_and_ipv6() {
    let start = window();
    let mut next = start;
    let mut sockets = Vec::new();
    let mut expected = Vec::new();
    for ip in [LOCALHOST, ANY4, LOCALHOST6, ANY6] {
        match udp_from(ip, &mut next) {
            Some((socket, port)) => {
                sockets.push(socket);
                expected.push((port, Protocols::UDP));
            }
            None => println!("skipped {ip}: no such address on this host"),
        }
    }
    let (listener, both) = listen_from(LOCALHOST, &mut next).unwrap();
    let udp = std::net::UdpSocket::bind((LOCALHOST, both)).unwrap();
    expected.push((both, Protocols::BOTH));
    expected.sort_unstable_by_key(|(p, _)| *p);
    let range = PortRange::new(start, next).unwrap();
    for method in Method::ALL {
        let seen: Vec<Seen> = scan_seen(method, range)
            .into_iter()
            .filter(|(p, _)| expected.iter().any(|(e, _)| e == p))
            .collect();
        assert_eq!(seen, expected, "{method}");
    }
    drop((sockets, listener, udp));
}
