//! Listening ports found by trying to bind each port, on `0.0.0.0` and on
//! `[::]`, with `SO_REUSEADDR` as servers bind. On Linux such a bind fails
//! with `EADDRINUSE` while any socket listens on the port on an overlapping
//! address, and a wildcard address overlaps every address of its family
//! (`[::]` without `IPV6_V6ONLY` overlaps the IPv4 ones too).
//!
//! It also fails while a socket *without* `SO_REUSEADDR` holds the port
//! without listening: the local port of an outgoing connection, and its
//! `TIME_WAIT` remains. Those ports are reported too; that is the price of
//! the method that needs nothing from the host.
//!
//! The probe binds but never listens, so no client can ever connect to it.

use super::Proto;
use crate::ports::PortRange;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// Appends to `out` the ports of `range` that cannot be bound in `proto`.
pub(super) fn scan(range: PortRange, proto: Proto, out: &mut Vec<u16>) -> io::Result<()> {
    let ipv6 = ipv6_available()?;
    for port in range.iter() {
        if in_use(Family::V4, proto, port)? || (ipv6 && in_use(Family::V6, proto, port)?) {
            out.push(port);
        }
    }
    Ok(())
}

/// False on a kernel without IPv6 (booted with `ipv6.disable=1`, or built
/// without it): no socket can listen on an IPv6 address there.
fn ipv6_available() -> io::Result<bool> {
    match socket(Family::V6, Proto::Tcp) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `port` can be bound in `proto` on every address of the host, as
/// a lease promises at its grant: one bind of `[::]` made dual-stack
/// (`IPV6_V6ONLY` off, whatever the host's default), which fails while
/// any IPv6 or IPv4 socket holds the port, or of `0.0.0.0` on a host
/// without IPv6. Bound, never listened on, and closed at once.
pub fn bindable(proto: Proto, port: u16) -> bool {
    let dual = socket(Family::V6, proto).and_then(|fd| {
        let off: libc::c_int = 0;
        crate::sys::set_option(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &off)?;
        bind_wildcard(&fd, Family::V6, port)
    });
    match dual {
        Ok(()) => true,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            ) =>
        {
            socket(Family::V4, proto)
                .and_then(|fd| bind_wildcard(&fd, Family::V4, port))
                .is_ok()
        }
        Err(_) => false,
    }
}

/// Whether binding the wildcard address of `family` on `port` fails because
/// the port is taken. A port this process may not bind (`EACCES`, below
/// `ip_unprivileged_port_start`) tells nothing and counts as not in use.
fn in_use(family: Family, proto: Proto, port: u16) -> io::Result<bool> {
    let fd = socket(family, proto)?;
    match bind_wildcard(&fd, family, port) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A TCP socket with `SO_REUSEADDR`, as servers bind; a UDP socket
/// without, so that its bind fails on any port a UDP socket holds.
fn socket(family: Family, proto: Proto) -> io::Result<OwnedFd> {
    let domain = match family {
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    if proto == Proto::Udp {
        return crate::sys::socket(domain, libc::SOCK_DGRAM, 0);
    }
    let fd = crate::sys::socket(domain, libc::SOCK_STREAM, 0)?;
    let on: libc::c_int = 1;
    crate::sys::set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &on)?;
    Ok(fd)
}

fn bind_wildcard(fd: &OwnedFd, family: Family, port: u16) -> io::Result<()> {
    let rc = match family {
        Family::V4 => {
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: libc::INADDR_ANY,
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `addr` is a live sockaddr_in and the length passed is
            // its size; bind(2) only reads it.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const addr).cast(),
                    socklen::<libc::sockaddr_in>(),
                )
            }
        }
        Family::V6 => {
            let addr = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            };
            // SAFETY: `addr` is a live sockaddr_in6 and the length passed is
            // its size; bind(2) only reads it.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const addr).cast(),
                    socklen::<libc::sockaddr_in6>(),
                )
            }
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn socklen<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, TcpListener, UdpSocket};

    /// A UDP socket on `[::]` for IPv6 alone, as some services bind.
    fn udp_v6_only() -> (UdpSocket, u16) {
        let fd = socket(Family::V6, Proto::Udp).unwrap();
        let on: libc::c_int = 1;
        crate::sys::set_option(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &on).unwrap();
        bind_wildcard(&fd, Family::V6, 0).unwrap();
        let socket = UdpSocket::from(fd);
        let port = socket.local_addr().unwrap().port();
        (socket, port)
    }

    #[test]
    fn a_port_held_in_one_family_is_not_bindable_in_that_protocol() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert!(!bindable(Proto::Tcp, port));
        drop(tcp);
        assert!(bindable(Proto::Tcp, port));

        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        assert!(!bindable(Proto::Udp, port));
        assert!(bindable(Proto::Tcp, port));
        drop(udp);

        if UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
            return crate::skipped(format_args!("no IPv6 on this host: the IPv6-only case"));
        }
        let (v6, port) = udp_v6_only();
        assert!(!bindable(Proto::Udp, port));
        drop(v6);
        assert!(bindable(Proto::Udp, port));
    }
}
