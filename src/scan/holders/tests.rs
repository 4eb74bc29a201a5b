//! Tests of the holder lookup: the reply layout and the JSON without
//! sockets, then sockets of this test process looked up for real.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream, UdpSocket};

/// Every holder of `port`, as an operator sees them, within no deadline a
/// test reaches.
fn holders(port: u16) -> io::Result<Vec<Holder>> {
    let found = lookup(port, Scope::Every, Duration::from_secs(3600))?;
    assert!(found.complete, "{found:?}");
    Ok(found.holders)
}

fn own() -> (u32, u32, Option<String>) {
    let pid = std::process::id();
    (
        crate::sys::euid(),
        pid,
        procfd::command(Path::new("/proc"), pid),
    )
}

fn holder(protocol: Proto, address: IpAddr) -> Holder {
    let (uid, pid, command) = own();
    Holder {
        protocol,
        address,
        uid,
        pid: Some(pid),
        command,
    }
}

#[test]
fn a_reply_names_the_local_address_and_inode() {
    // inet_diag_msg: family, state, timer, retrans, then the socket id
    // (sport, dport, src, dst, ...), then expires, queues, uid, inode.
    let mut payload = vec![0u8; 72];
    payload[0] = libc::AF_INET6 as u8;
    payload[1] = 7;
    payload[4..6].copy_from_slice(&5353u16.to_be_bytes());
    payload[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
    payload[64..68].copy_from_slice(&1000u32.to_ne_bytes());
    payload[68..72].copy_from_slice(&987_654u32.to_ne_bytes());
    let s = netlink::read_socket(&payload).unwrap();
    assert_eq!((s.state, s.port, s.uid, s.inode), (7, 5353, 1000, 987_654));
    assert_eq!(s.address, IpAddr::V6(Ipv6Addr::LOCALHOST));
    payload[0] = libc::AF_INET as u8;
    payload[8..24].copy_from_slice(&[127, 0, 0, 9, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    let s = netlink::read_socket(&payload).unwrap();
    assert_eq!(s.address, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
}

#[test]
fn holders_serialise_as_the_api_shows_them() {
    let h = Holder {
        protocol: Proto::Tcp,
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        uid: 1000,
        pid: Some(4242),
        command: Some("python3".to_string()),
    };
    let text = serde_json::to_string(&h).unwrap();
    assert_eq!(
        text,
        r#"{"protocol":"tcp","address":"127.0.0.1","uid":1000,"pid":4242,"command":"python3"}"#
    );
    assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), h);
    let hidden = r#"{"protocol":"udp","address":"::","uid":0,"pid":null,"command":null}"#;
    let read: Holder = serde_json::from_str(hidden).unwrap();
    assert_eq!(
        (read.protocol, read.pid, &read.command),
        (Proto::Udp, None, &None)
    );
    assert_eq!(serde_json::to_string(&read).unwrap(), hidden);
}

#[test]
fn a_tcp_listener_and_a_udp_socket_on_one_port_are_both_holders() {
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let Ok(_udp) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)) else {
        crate::skipped(format_args!("UDP port {port} is taken on this host"));
        return;
    };
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let every = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        holders(port).unwrap(),
        [holder(Proto::Tcp, local), holder(Proto::Udp, every)]
    );
}

#[test]
fn ipv6_sockets_show_their_ipv6_address() {
    let Ok(tcp) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) else {
        crate::skipped(format_args!("this host has no IPv6 loopback"));
        return;
    };
    let port = tcp.local_addr().unwrap().port();
    let Ok(_udp) = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)) else {
        crate::skipped(format_args!("UDP port {port} is taken on this host"));
        return;
    };
    let local = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let every = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        holders(port).unwrap(),
        [holder(Proto::Tcp, local), holder(Proto::Udp, every)]
    );
}

#[test]
fn a_connected_udp_socket_still_holds_its_port() {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    udp.connect((Ipv4Addr::LOCALHOST, 9)).unwrap();
    let port = udp.local_addr().unwrap().port();
    let found = holders(port).unwrap();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(found.contains(&holder(Proto::Udp, local)), "{found:?}");
}

#[test]
fn the_local_end_of_a_tcp_connection_holds_no_port_as_a_listener() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let port = client.local_addr().unwrap().port();
    let found = holders(port).unwrap();
    // Only the established socket of this process is on that port; a UDP
    // socket of some other process could share the number, never a TCP one.
    assert!(found.iter().all(|h| h.protocol == Proto::Udp), "{found:?}");
    assert!(!found.iter().any(|h| h.pid == Some(std::process::id())));
}

#[test]
fn a_socket_no_process_is_found_for_keeps_its_uid_without_pid() {
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = tcp.local_addr().unwrap().port();
    // A /proc with no process in it: the socket's owner is unknown.
    let empty = std::env::temp_dir().join(format!("dynport-holders-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let far = Instant::now() + Duration::from_secs(3600);
    let found = lookup_in(&empty, port, Scope::Every, far).unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
    let expected = Holder {
        protocol: Proto::Tcp,
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        uid: crate::sys::euid(),
        pid: None,
        command: None,
    };
    assert_eq!(found.holders, [expected]);
    assert!(found.complete);
}

/// The one listener of this process on a fresh port, as one would see it
/// whose lookup shows no process.
fn hidden_listener() -> (TcpListener, u16, Holder) {
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let hidden = Holder {
        protocol: Proto::Tcp,
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        uid: crate::sys::euid(),
        pid: None,
        command: None,
    };
    (tcp, port, hidden)
}

#[test]
fn a_caller_sees_the_process_only_behind_its_own_sockets() {
    let (_tcp, port, hidden) = hidden_listener();
    let long = Duration::from_secs(3600);
    let own = lookup(port, Scope::OwnedBy(crate::sys::euid()), long).unwrap();
    assert_eq!(own.holders, [holder(Proto::Tcp, hidden.address)]);
    assert!(own.complete);
    let other = lookup(port, Scope::OwnedBy(crate::sys::euid() + 1), long).unwrap();
    assert_eq!(
        (&other.holders, other.complete),
        (&vec![hidden.clone()], true)
    );
    let nobody = lookup(port, Scope::Nothing, long).unwrap();
    assert_eq!((&nobody.holders, nobody.complete), (&vec![hidden], true));
}

#[test]
fn a_lookup_out_of_time_answers_the_sockets_it_found_as_incomplete() {
    let (_tcp, port, hidden) = hidden_listener();
    let found = lookup(port, Scope::Every, Duration::ZERO).unwrap();
    assert_eq!((found.holders, found.complete), (vec![hidden], false));
}
