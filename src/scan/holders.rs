//! Who holds a port, as `ss -ltnup 'sport = :PORT'` answers it: every
//! socket bound to that one port (TCP listeners and UDP sockets, IPv4 and
//! IPv6) from a `NETLINK_SOCK_DIAG` dump filtered to it, then the process
//! holding each socket, found by its inode in `/proc/*/fd`. Asked only on
//! demand, never by the periodic scan.

use super::netlink::{
    self, BcOp, DiagSocket, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE, INET_DIAG_REQ_BYTECODE,
    InetDiagReqV2, InetDiagSockId, RECV_BUF_LEN, SOCK_DIAG_BY_FAMILY, TCP_LISTEN,
};
use super::procfd;
use serde::{Deserialize, Serialize};
use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The transport protocol of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as the API and `dynport who` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    fn number(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// The socket states that hold a port: a TCP listener, or a UDP socket
    /// in any state (bound, or bound and connected).
    fn states(self) -> u32 {
        match self {
            Protocol::Tcp => 1 << TCP_LISTEN,
            Protocol::Udp => !0,
        }
    }
}

/// One socket holding a port, as `GET /api/v1/tools/port/state?port=N`
/// shows it in `holders` and `dynport who` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub protocol: Protocol,
    /// The local address it is bound to; `0.0.0.0` or `::` for every one.
    pub address: IpAddr,
    /// The user that owns the socket, from the kernel's socket table.
    pub uid: u32,
    /// The process holding it; `null` when dynport may not read that
    /// process's `/proc/PID/fd` (another user's, unless dynport is root).
    pub pid: Option<u32>,
    /// That process's command name (`/proc/PID/comm`).
    pub command: Option<String>,
}

/// Every socket holding `port` now, TCP before UDP, each by address; empty
/// when none does. An error when the kernel's socket table cannot be read.
pub fn holders(port: u16) -> io::Result<Vec<Holder>> {
    holders_in(Path::new("/proc"), port)
}

/// [`holders`], with the processes looked up under `proc_root`.
fn holders_in(proc_root: &Path, port: u16) -> io::Result<Vec<Holder>> {
    let sockets = sockets_on(port)?;
    let inodes: Vec<u64> = sockets.iter().map(|(_, s)| u64::from(s.inode)).collect();
    let owners = procfd::find(proc_root, &inodes);
    let mut holders: Vec<Holder> = sockets
        .into_iter()
        .map(|(protocol, s)| {
            let pid = owners.get(&u64::from(s.inode)).copied();
            Holder {
                protocol,
                address: s.address,
                uid: s.uid,
                pid,
                command: pid.and_then(|pid| procfd::command(proc_root, pid)),
            }
        })
        .collect();
    holders.sort_by_key(|h| (h.protocol, h.address, h.pid));
    Ok(holders)
}

/// The sockets bound to `port` that hold it: TCP listeners and UDP sockets,
/// IPv4 and IPv6, with their protocol.
fn sockets_on(port: u16) -> io::Result<Vec<(Protocol, DiagSocket)>> {
    let fd = netlink::open()?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut found = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        for family in [libc::AF_INET, libc::AF_INET6] {
            let mut keep = |s: DiagSocket| {
                let state = 1u32.checked_shl(u32::from(s.state)).unwrap_or(0);
                if s.port == port && protocol.states() & state != 0 {
                    found.push((protocol, s));
                }
            };
            match dump(&fd, family, protocol, port, &mut buf, &mut keep) {
                // A kernel without this family or protocol's diag module
                // (IPv6 disabled, no udp_diag): it has no such sockets.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
    }
    Ok(found)
}

/// Asks for the sockets of `family` and `protocol` on `port` and hands each
/// to `on_socket`, until the kernel says the dump is done.
fn dump(
    fd: &OwnedFd,
    family: libc::c_int,
    protocol: Protocol,
    port: u16,
    buf: &mut [u8],
    on_socket: &mut dyn FnMut(DiagSocket),
) -> io::Result<()> {
    let seq = netlink::NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    netlink::send_request(fd, &port_request(family, protocol, port, seq))?;
    loop {
        let len = netlink::receive(fd, buf)?;
        if netlink::parse_replies(&buf[..len], seq, on_socket)? {
            return Ok(());
        }
    }
}

/// One dump request with a filter keeping one local port.
#[repr(C)]
struct PortRequest {
    header: libc::nlmsghdr,
    request: InetDiagReqV2,
    filter_attr: libc::nlattr,
    filter: [BcOp; 4],
}

// Sent as raw bytes, so it must have no padding.
const _: () = assert!(size_of::<PortRequest>() == 16 + 56 + 4 + 16);

fn port_request(family: libc::c_int, protocol: Protocol, port: u16, seq: u32) -> PortRequest {
    // Accept when port <= sport, else reject (jump past the end); then
    // accept when sport <= port, else reject. Jumps are byte offsets.
    let op = |code, yes, no| BcOp { code, yes, no };
    let filter = [
        op(INET_DIAG_BC_S_GE, 8, 16 + 4),
        op(0, 0, port),
        op(INET_DIAG_BC_S_LE, 8, 8 + 4),
        op(0, 0, port),
    ];
    PortRequest {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<PortRequest>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            nlmsg_seq: seq,
            nlmsg_pid: 0,
        },
        request: InetDiagReqV2 {
            family: family as u8,
            protocol: protocol.number(),
            ext: 0,
            pad: 0,
            states: protocol.states(),
            id: InetDiagSockId::default(),
        },
        filter_attr: libc::nlattr {
            nla_len: (size_of::<libc::nlattr>() + size_of::<[BcOp; 4]>()) as u16,
            nla_type: INET_DIAG_REQ_BYTECODE,
        },
        filter,
    }
}

#[cfg(test)]
mod tests;
