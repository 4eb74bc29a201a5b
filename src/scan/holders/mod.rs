//! Who holds a port, as `ss -ltnup 'sport = :PORT'` answers it: every
//! socket bound to that one port (TCP listeners and UDP sockets, IPv4 and
//! IPv6) from a `NETLINK_SOCK_DIAG` dump filtered to it, then the process
//! holding each socket, found by its inode in `/proc/*/fd` among the
//! processes the caller may see, within a time budget. Asked only on
//! demand, never by the periodic scan.

use super::netlink::{self, DiagSocket, RECV_BUF_LEN, TCP_LISTEN};
use super::{Proto, procfd};
use crate::ports::PortRange;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod limit;

pub use limit::{LookupLimit, MAX_PER_SECOND, Permit, Refused};
pub use procfd::Scope;

/// The most wall-clock time one lookup takes: past it, it answers what it
/// found with `complete: false`.
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(100);

/// One socket holding a port, as `GET /api/v1/tools/port/state?port=N`
/// shows it in `holders` and `dynport who` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub protocol: Proto,
    /// The local address it is bound to; `0.0.0.0` or `::` for every one.
    pub address: IpAddr,
    /// The user that owns the socket, from the kernel's socket table.
    pub uid: u32,
    /// The process holding it; `null` when it is not the caller's to see
    /// (another user's, unless an operator asks), when dynport may not
    /// read its `/proc/PID/fd` (another user's, unless dynport is root),
    /// or when the lookup ran out of time before it got to it.
    pub pid: Option<u32>,
    /// That process's command name (`/proc/PID/comm`).
    pub command: Option<String>,
}

/// What one lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// Every socket holding the port, TCP before UDP, each by address.
    pub holders: Vec<Holder>,
    /// Whether every process of the lookup's scope was looked into (or
    /// every socket's process found) within the budget. The sockets
    /// themselves are always all there: only a `pid` may be missing.
    pub complete: bool,
}

/// Every socket holding `port` now, with the processes of `scope` holding
/// them, looked for until `budget` has passed since the call. An error
/// when the kernel's socket table cannot be read.
pub fn lookup(port: u16, scope: Scope, budget: Duration) -> io::Result<Lookup> {
    let deadline = Instant::now() + budget;
    lookup_in(Path::new("/proc"), port, scope, deadline)
}

/// [`lookup`], with the processes looked up under `proc_root`.
fn lookup_in(proc_root: &Path, port: u16, scope: Scope, deadline: Instant) -> io::Result<Lookup> {
    let sockets = sockets_on(port)?;
    let inodes: Vec<u64> = sockets.iter().map(|(_, s)| u64::from(s.inode)).collect();
    let found = procfd::find(proc_root, &inodes, scope, deadline);
    let mut holders: Vec<Holder> = sockets
        .into_iter()
        .map(|(protocol, s)| {
            let pid = found.owners.get(&u64::from(s.inode)).copied();
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
    Ok(Lookup {
        holders,
        complete: found.complete,
    })
}

/// The sockets bound to `port` that hold it: TCP listeners and UDP sockets
/// (bound, or bound and connected), IPv4 and IPv6, with their protocol.
fn sockets_on(port: u16) -> io::Result<Vec<(Proto, DiagSocket)>> {
    let fd = netlink::open()?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut found = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        for family in [libc::AF_INET, libc::AF_INET6] {
            let mut keep = |s: DiagSocket| {
                if s.port == port && (proto == Proto::Udp || s.state == TCP_LISTEN) {
                    found.push((proto, s));
                }
            };
            match dump(&fd, family, proto, port, &mut buf, &mut keep) {
                // A kernel without this family or protocol's diag module
                // (IPv6 disabled, no udp_diag): it has no such sockets.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
    }
    Ok(found)
}

/// Asks for the sockets of `family` and `proto` on `port` and hands each
/// to `on_socket`, until the kernel says the dump is done.
fn dump(
    fd: &OwnedFd,
    family: libc::c_int,
    proto: Proto,
    port: u16,
    buf: &mut [u8],
    on_socket: &mut dyn FnMut(DiagSocket),
) -> io::Result<()> {
    let seq = netlink::NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let one = PortRange {
        start: port,
        end: port,
    };
    netlink::send_request(
        fd,
        &netlink::dump_request(family, proto, super::span(one), seq),
    )?;
    loop {
        let len = netlink::receive(fd, buf)?;
        if netlink::parse_replies(&buf[..len], seq, on_socket)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
