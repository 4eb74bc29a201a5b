//! The system calls std does not offer, wrapped once for the scanner, the
//! HTTP engine, the state directory and the configuration: opening a raw
//! socket, setting an option, reading into memory that was never zeroed,
//! random bytes, the effective uid, the limit on open descriptors, and
//! files opened, made, renamed and removed relative to a directory held
//! open.

pub(crate) mod epoll;
pub mod netlink;
pub mod process;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A new socket, closed on exec, owned by the returned descriptor.
pub fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments; no pointers.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets socket option `name` at `level` to `value`, whose type must be the
/// one the kernel expects for that option.
pub fn set_option<T>(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the descriptor is borrowed open for the whole call; `value`
    // is a live `T` and the length passed is its size; the kernel copies it
    // before returning.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The effective uid of this process: whom the files it trusts must belong to.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Reads from `fd` into the spare capacity of `buf`, at most until its
/// length reaches `limit`, and extends its length by what was read. The
/// buffer's spare room is never zeroed first, so pages no read reached are
/// never touched: an idle worker's buffer costs no memory.
pub fn read_into_spare(fd: &impl AsFd, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    let room = limit.saturating_sub(buf.len());
    buf.reserve(room);
    let spare = &mut buf.spare_capacity_mut()[..room];
    // SAFETY: the descriptor is borrowed open for the whole call, and
    // `spare` is writable memory of `room` bytes owned by `buf`, which the
    // kernel writes at most `room` bytes into.
    let rc = unsafe { libc::read(fd.as_fd().as_raw_fd(), spare.as_mut_ptr().cast(), room) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = rc as usize;
    // SAFETY: read(2) initialised the first `read` bytes of the spare room,
    // and `read <= room`.
    unsafe { buf.set_len(buf.len() + read) };
    Ok(read)
}

/// The pid and uid of the process at the other end of a Unix socket, as
/// the kernel recorded them when it connected (`SO_PEERCRED`).
pub fn peer_cred(fd: &impl AsFd) -> io::Result<(u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is borrowed open for the whole call; `cred` is
    // a live `ucred` and `len` its size, which the kernel writes at most.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid as u32, cred.uid))
}

/// 64 random bits from the kernel (getrandom(2)), for names no one can
/// guess in advance.
pub fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: `rest` is writable memory of `rest.len()` bytes that we
        // own for the whole call; getrandom(2) writes at most that many.
        let rc = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += rc as usize;
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// A descriptor of process `pid` that becomes readable when it exits
/// (pidfd_open(2), Linux 5.3), and never names a later process that reuses
/// the pid.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on integers; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The soft and hard limits on this process's open descriptors
/// (`RLIMIT_NOFILE`); `RLIM_INFINITY` reads as `u64::MAX`.
// `rlim_t` is 32 bits wide on some 32-bit targets.
#[allow(clippy::unnecessary_cast)]
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit the kernel writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Sets the soft limit on this process's open descriptors to `soft`,
/// keeping the hard limit `hard` as it is.
#[allow(clippy::unnecessary_cast)]
pub fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `limit` is a live rlimit the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `name` relative to the directory `dir` (the working directory
/// when `None`) with `flags` (`O_CLOEXEC` added) and, when it creates a
/// file, `mode`: one name resolved from a directory held open, never a
/// path from `/` that someone may have changed since.
pub fn open_at(
    dir: Option<BorrowedFd>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let base = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `name` is NUL-terminated and only read; `base` is an open
    // directory borrowed for the whole call, or AT_FDCWD.
    let fd = unsafe { libc::openat(base, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the directory `name` in `dir` with `mode` (less the umask).
pub fn mkdir_at(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and only read; `dir` is open.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
    check(rc)
}

/// Renames `from` to `to`, both in the directory `dir`.
pub fn rename_at(dir: BorrowedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    let fd = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated and only read; `dir` is open.
    let rc = unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) };
    check(rc)
}

/// Removes the file `name` (never a directory, and a link itself, not
/// what it points to) from the directory `dir`.
pub fn unlink_at(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and only read; `dir` is open.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    check(rc)
}

/// The target of the symbolic link `link`, itself opened with `O_PATH |
/// O_NOFOLLOW`: the link that was checked, not whatever has its name now.
pub fn read_link(link: BorrowedFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the empty name makes readlinkat(2) read the link `link` is
    // open on; `buf` is writable for `buf.len()` bytes, the most it writes.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Time since boot, suspend included (`CLOCK_BOOTTIME`): only ever forward.
pub fn boottime() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the kernel writes; CLOCK_BOOTTIME
    // exists on every Linux dynport runs on, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Makes the queue of connections a listener holds before they are
/// accepted as long as the host allows (`listen(2)` again on a listening
/// socket only changes it; the kernel caps it at `net.core.somaxconn`).
/// std's 128 fills in a moment when one user floods connects, and every
/// other user's connection is then dropped and retried a second later.
pub fn deepen_backlog(fd: &impl AsFd) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor borrowed open for it.
    if unsafe { libc::listen(fd.as_fd().as_raw_fd(), 65_535) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on (its affinity mask), at least 1.
/// std's `available_parallelism` also reads the cgroup's CPU quota, which
/// costs its parser in the binary for a figure only used to split work.
pub fn cpus() -> usize {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is this
    // thread, whose mask the process's threads share.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return 1;
    }
    // SAFETY: CPU_COUNT only reads the set.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

/// TCP states, from `<netinet/tcp.h>`.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_CLOSE_WAIT: u8 = 8;

/// The state of a TCP socket of this process, as `TCP_INFO` gives it
/// (`tcpi_state`, its first byte).
pub fn tcp_state(fd: &impl AsFd) -> io::Result<u8> {
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the descriptor is borrowed open for the call; the kernel
    // writes at most `len` bytes into `info`, the start of a `tcp_info`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[0])
}

/// Whether `ip` is one of this host's own addresses: loopback, or the
/// address of one of its interfaces (getifaddrs(3)). A peer at such an
/// address is a process of this host, whichever address it bound. When
/// the interfaces cannot be listed, every address counts as the host's
/// own: a caller is then unidentified, never taken for a remote one.
pub fn is_own_address(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = ip.to_canonical();
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for the kernel's list, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return true;
    }
    let mut found = false;
    let mut at = list;
    while !at.is_null() && !found {
        // SAFETY: `at` is an entry of the list getifaddrs returned, which
        // lives until freeifaddrs; `ifa_addr`, when set, points at a
        // sockaddr of the size its family says.
        let entry = unsafe { &*at };
        let address = match entry.ifa_addr {
            a if a.is_null() => None,
            a => match i32::from(unsafe { (*a).sa_family }) {
                libc::AF_INET => {
                    let v4 = unsafe { &*a.cast::<libc::sockaddr_in>() };
                    let octets = v4.sin_addr.s_addr.to_ne_bytes();
                    Some(IpAddr::V4(Ipv4Addr::from(octets)))
                }
                libc::AF_INET6 => {
                    let v6 = unsafe { &*a.cast::<libc::sockaddr_in6>() };
                    Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
                }
                _ => None,
            },
        };
        found = address == Some(ip);
        at = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Starts a TCP connection to `addr` without waiting for it: a non-blocking
/// stream, and whether it is connected already (`false`: the handshake is
/// under way; it is writable once it ends, and `take_error` then says how).
/// A refusal the kernel knows at once (nothing listens on a loopback port)
/// is the error itself.
pub fn connect_nonblocking(addr: std::net::SocketAddr) -> io::Result<(std::net::TcpStream, bool)> {
    let (domain, storage, len) = sockaddr(addr);
    let fd = socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
    // SAFETY: the descriptor is open; `storage` is a live sockaddr of `len`
    // bytes for the socket's family, which the kernel only reads.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    let stream = std::net::TcpStream::from(fd);
    if rc == 0 {
        return Ok((stream, true));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) => Ok((stream, false)),
        _ => Err(e),
    }
}

/// `addr` as the kernel takes it: family, address, and its length.
fn sockaddr(addr: std::net::SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all zeroes is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            (libc::AF_INET, storage, len)
        }
        std::net::SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            (libc::AF_INET6, storage, len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn read_into_spare_appends_what_arrived() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"hello").unwrap();
        let mut buf = b"ab".to_vec();
        assert_eq!(read_into_spare(&b, &mut buf, 100).unwrap(), 5);
        assert_eq!(buf, b"abhello");
    }

    #[test]
    fn read_into_spare_stops_at_the_limit() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"0123456789").unwrap();
        let mut buf = Vec::with_capacity(64);
        assert_eq!(read_into_spare(&b, &mut buf, 4).unwrap(), 4);
        assert_eq!(buf, b"0123");
        assert_eq!(read_into_spare(&b, &mut buf, 4).unwrap(), 0);
        assert_eq!(read_into_spare(&b, &mut buf, 10).unwrap(), 6);
        assert_eq!(buf, b"0123456789");
    }

    #[test]
    fn random_u64_differs_between_calls() {
        let a = random_u64().unwrap();
        let b = random_u64().unwrap();
        assert_ne!(a, b, "two draws of 64 random bits were equal");
    }

    #[test]
    fn read_into_spare_reports_would_block() {
        let (_a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut buf = Vec::new();
        let e = read_into_spare(&b, &mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(buf.is_empty());
    }

    #[test]
    fn loopback_and_the_hosts_interfaces_are_its_own_addresses() {
        for own in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_own_address(own.parse().unwrap()), "{own}");
        }
        // TEST-NET-3 is never assigned to a host.
        assert!(!is_own_address("203.0.113.77".parse().unwrap()));
        assert!(!is_own_address("2001:db8::77".parse().unwrap()));
    }

    #[test]
    fn a_connection_is_established_until_its_peer_closes_or_resets_it() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        deepen_backlog(&listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(tcp_state(&server).unwrap(), TCP_ESTABLISHED);
        client.shutdown(std::net::Shutdown::Write).unwrap();
        wait_for(|| tcp_state(&server).unwrap() == TCP_CLOSE_WAIT);
        let reset = TcpStream::connect(addr).unwrap();
        let (reset_server, _) = listener.accept().unwrap();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        set_option(&reset, libc::SOL_SOCKET, libc::SO_LINGER, &linger).unwrap();
        drop(reset);
        // TCP_CLOSE: a reset leaves nothing of the connection.
        wait_for(|| tcp_state(&reset_server).unwrap() == 7);
    }

    /// Polls `done` for up to 5 s.
    fn wait_for(mut done: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < until, "the state never came");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
