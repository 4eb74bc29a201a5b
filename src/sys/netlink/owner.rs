//! Who owns a socket of this host: an exact `NETLINK_SOCK_DIAG` lookup of
//! one TCP connection by its four addresses and ports, and the owners of the
//! sockets listening on a port. The kernel's answer is what `ss -e` shows.

use super::{self as netlink, DiagSocket, InetDiagReqV2, InetDiagSockId, SOCK_DIAG_BY_FAMILY};
use std::cell::RefCell;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

/// Every TCP state: the lookup names one socket, whatever its state.
const ALL_STATES: u32 = !0;
/// `INET_DIAG_NOCOOKIE`: look the socket up by its addresses alone.
const NO_COOKIE: [u32; 2] = [!0, !0];
/// A reply to one lookup: one socket, or an error, well under this.
const REPLY_BUF_LEN: usize = 1024;

/// One lookup request: header and request, no filter.
#[repr(C)]
struct LookupRequest {
    header: libc::nlmsghdr,
    request: InetDiagReqV2,
}

// Sent as raw bytes, so it must have no padding.
const _: () = assert!(size_of::<LookupRequest>() == 16 + 56);

/// TCP states in which the client's end of a connection still speaks for
/// its owner: open, or shut for writing by the client (`nc -N`), which
/// still waits for its answer. From `<netinet/tcp.h>`.
const TCP_ESTABLISHED: u8 = 1;
const TCP_FIN_WAIT1: u8 = 4;
const TCP_FIN_WAIT2: u8 = 5;

/// Which ends of a connection may vouch for their owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vouching {
    /// A client's end, as dynport identifies a caller: a full socket that a
    /// descriptor still holds (nonzero inode), its connection open or
    /// half-closed by that client (which still waits for its answer).
    Held,
    /// A server's end, as the client checks who it talks to: a full socket,
    /// open or half-closed, held or still waiting in its listener's queue
    /// (which has no descriptor yet, and the listener's owner).
    Full,
}

/// The uid owning the TCP socket whose local end is `local` and remote end
/// `remote`, both on this host, when that socket can vouch for it as
/// `vouching` says. `None` for anything else: no such socket, a TIME-WAIT
/// or other mini-socket (which the kernel reports as uid 0), an orphan
/// whose descriptor was closed, or a socket in another state. Never a
/// guess: an owner found this way is exactly the user whose process holds
/// that end now.
///
/// For a connection accepted by dynport, `local` is the peer's address (the
/// client's own end) and `remote` dynport's. IPv4 clients of an IPv6
/// listener show as mapped addresses; their socket is an IPv4 one.
pub fn tcp_socket_uid(
    local: SocketAddr,
    remote: SocketAddr,
    vouching: Vouching,
) -> io::Result<Option<u32>> {
    let (l, r) = (local.ip().to_canonical(), remote.ip().to_canonical());
    let found = match (l, r) {
        (IpAddr::V4(_), IpAddr::V4(_)) => lookup(libc::AF_INET, local, remote, vouching)?,
        _ => None,
    };
    match found {
        Some(uid) => Ok(Some(uid)),
        None if l.is_ipv6() || local.is_ipv6() => lookup(libc::AF_INET6, local, remote, vouching),
        None => Ok(None),
    }
}

thread_local! {
    /// Each thread's netlink socket, kept between lookups: opening one per
    /// connection cost more than the lookup itself. Dropped after an error,
    /// so a socket kept is never one with a reply still on its way.
    static SOCKET: RefCell<Option<OwnedFd>> = const { RefCell::new(None) };
}

fn lookup(
    family: libc::c_int,
    local: SocketAddr,
    remote: SocketAddr,
    vouching: Vouching,
) -> io::Result<Option<u32>> {
    SOCKET.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fd = match slot.take() {
            Some(fd) => fd,
            None => netlink::open()?,
        };
        let found = ask(&fd, family, local, remote, vouching)?;
        *slot = Some(fd);
        Ok(found)
    })
}

/// One question on `fd`, and its answer: replies to other questions (none,
/// unless one timed out) are passed over.
fn ask(
    fd: &OwnedFd,
    family: libc::c_int,
    local: SocketAddr,
    remote: SocketAddr,
    vouching: Vouching,
) -> io::Result<Option<u32>> {
    let seq = netlink::NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    netlink::send_request(fd, &lookup_request(family, local, remote, seq))?;
    let mut buf = [0u8; REPLY_BUF_LEN];
    loop {
        let len = netlink::receive(fd, &mut buf)?;
        let mut found = None;
        match netlink::parse_replies(&buf[..len], seq, &mut |s: DiagSocket| found = Some(s)) {
            Ok(_) => match found {
                Some(socket) => return Ok(vouched_owner(&socket, vouching)),
                None => continue,
            },
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// The owner of `socket` when it can vouch for it; see [`tcp_socket_uid`].
fn vouched_owner(socket: &DiagSocket, vouching: Vouching) -> Option<u32> {
    let live = matches!(
        socket.state,
        TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2
    );
    // A socket no descriptor holds counts for a server's end only while it
    // is established: waiting in its listener's queue. Closed by its owner
    // it may already be a TIME-WAIT mini-socket, which the table shows in
    // the state it left (FIN-WAIT-2) and with uid 0.
    let held = socket.inode != 0 || (vouching == Vouching::Full && socket.state == TCP_ESTABLISHED);
    (live && held).then_some(socket.uid)
}

fn lookup_request(
    family: libc::c_int,
    local: SocketAddr,
    remote: SocketAddr,
    seq: u32,
) -> LookupRequest {
    LookupRequest {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<LookupRequest>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: seq,
            nlmsg_pid: 0,
        },
        request: InetDiagReqV2 {
            family: family as u8,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: ALL_STATES,
            id: InetDiagSockId {
                sport: local.port().to_be_bytes(),
                dport: remote.port().to_be_bytes(),
                src: address(family, local.ip()),
                dst: address(family, remote.ip()),
                // A link-local connection is bound to its interface, and
                // the kernel finds it only when asked with that index.
                interface: scope(local).max(scope(remote)),
                cookie: NO_COOKIE,
            },
        },
    }
}

/// The interface a link-local IPv6 address is scoped to; 0 for any other.
fn scope(addr: SocketAddr) -> u32 {
    match addr {
        SocketAddr::V6(v6) => v6.scope_id(),
        SocketAddr::V4(_) => 0,
    }
}

/// An address as `inet_diag_sockid` holds it: network byte order, IPv4 in
/// the first word, IPv4 as a mapped address for an IPv6 socket.
fn address(family: libc::c_int, ip: IpAddr) -> [u32; 4] {
    let octets = match (family, ip.to_canonical()) {
        (libc::AF_INET, IpAddr::V4(v4)) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&v4.octets());
            o
        }
        (_, IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
        (_, IpAddr::V6(v6)) => v6.octets(),
    };
    let mut words = [0u32; 4];
    for (word, chunk) in words.iter_mut().zip(octets.chunks_exact(4)) {
        *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

    fn own_uid() -> u32 {
        // SAFETY: getuid(2) cannot fail and takes no arguments.
        unsafe { libc::getuid() }
    }

    /// The client's end of a connection is found, with this process's uid,
    /// looked up as the server sees it.
    fn finds_connection(listen: IpAddr) {
        let listener = TcpListener::bind((listen, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        assert_eq!(
            tcp_socket_uid(peer, local, Vouching::Held).unwrap(),
            Some(own_uid())
        );
        drop(client);
    }

    #[test]
    fn owner_of_an_ipv4_connection() {
        finds_connection(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn owner_of_an_ipv6_connection() {
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
            crate::skipped(format_args!("this host has no IPv6 loopback"));
            return;
        }
        finds_connection(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn owner_of_an_ipv4_client_of_an_ipv6_listener() {
        let Ok(listener) = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)) else {
            crate::skipped(format_args!("this host has no IPv6"));
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        assert!(peer.is_ipv6(), "{peer} should be a mapped address");
        let local = accepted.local_addr().unwrap();
        assert_eq!(
            tcp_socket_uid(peer, local, Vouching::Held).unwrap(),
            Some(own_uid())
        );
    }

    #[test]
    fn no_such_connection_is_none() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(tcp_socket_uid(nobody, addr, Vouching::Held).unwrap(), None);
    }

    /// A connection accepted from loopback: the client, the server's end,
    /// and the client's address as the server sees it.
    fn connection() -> (TcpStream, TcpStream, SocketAddr, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        (client, accepted, peer, local)
    }

    /// Waits (at most 5 s) for the kernel to move the client's end into
    /// `state`, as the socket table shows it.
    fn wait_for_state(peer: SocketAddr, local: SocketAddr, state: u8) -> DiagSocket {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let fd = netlink::open().unwrap();
            let mut found = None;
            let seq = netlink::NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
            netlink::send_request(&fd, &lookup_request(libc::AF_INET, peer, local, seq)).unwrap();
            let mut buf = [0u8; REPLY_BUF_LEN];
            let len = netlink::receive(&fd, &mut buf).unwrap();
            let _ = netlink::parse_replies(&buf[..len], seq, &mut |s| found = Some(s));
            match found {
                Some(s) if s.state == state => return s,
                _ if std::time::Instant::now() > deadline => panic!("no socket in state {state}"),
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }

    #[test]
    fn a_client_that_shut_its_writing_side_is_still_its_owner() {
        let (client, _accepted, peer, local) = connection();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        wait_for_state(peer, local, TCP_FIN_WAIT2);
        assert_eq!(
            tcp_socket_uid(peer, local, Vouching::Held).unwrap(),
            Some(own_uid())
        );
    }

    #[test]
    fn a_closed_client_whose_socket_is_an_orphan_has_no_owner() {
        let (client, _accepted, peer, local) = connection();
        drop(client);
        let orphan = wait_for_state(peer, local, TCP_FIN_WAIT2);
        assert_eq!(orphan.inode, 0);
        assert_eq!(tcp_socket_uid(peer, local, Vouching::Held).unwrap(), None);
        // Closed by its owner, it speaks for no one, as a server's end
        // either: it may already be a mini-socket of uid 0.
        assert_eq!(tcp_socket_uid(peer, local, Vouching::Full).unwrap(), None);
    }

    #[test]
    fn a_server_end_still_in_its_listeners_queue_is_the_listeners_owners() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // Not accepted: no descriptor holds the server's end yet.
        let (server, me) = (client.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(
            tcp_socket_uid(server, me, Vouching::Full).unwrap(),
            Some(own_uid())
        );
        assert_eq!(tcp_socket_uid(server, me, Vouching::Held).unwrap(), None);
    }

    #[test]
    fn a_time_wait_mini_socket_is_never_root() {
        let (client, accepted, peer, local) = connection();
        drop(client);
        wait_for_state(peer, local, TCP_FIN_WAIT2);
        drop(accepted);
        let mini = wait_for_state(peer, local, 6);
        assert_eq!((mini.uid, mini.inode), (0, 0), "the kernel's view of it");
        for vouching in [Vouching::Held, Vouching::Full] {
            assert_eq!(tcp_socket_uid(peer, local, vouching).unwrap(), None);
        }
    }

    /// A link-local address of this host and its interface, from
    /// `/proc/net/if_inet6`.
    fn link_local() -> Option<std::net::SocketAddrV6> {
        let table = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
        table.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = fields.first()?;
            if !hex.starts_with("fe80") {
                return None;
            }
            let bytes: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<_, _>>()
                .ok()?;
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let index = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            Some(std::net::SocketAddrV6::new(
                Ipv6Addr::from(octets),
                0,
                0,
                index,
            ))
        })
    }

    #[test]
    fn owner_of_a_link_local_connection() {
        let Some(addr) = link_local() else {
            crate::skipped(format_args!("this host has no link-local IPv6 address"));
            return;
        };
        let Ok(listener) = TcpListener::bind(addr) else {
            crate::skipped(format_args!("{addr} cannot be bound"));
            return;
        };
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        assert_eq!(
            tcp_socket_uid(peer, local, Vouching::Held).unwrap(),
            Some(own_uid())
        );
    }
}
