//! The kernel's socket table over `NETLINK_SOCK_DIAG`, as `ss` reads it:
//! dumps of the sockets holding ports of a span (one request per address
//! family, answered in multipart messages until `NLMSG_DONE`), and the
//! exact lookup of one connection's owner (`owner.rs`).

mod owner;
pub use owner::{Vouching, tcp_socket_uid};

/// One transport protocol, as a scan asks about it and as `holders` names
/// it (`"tcp"`, `"udp"`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Ports `start` to `end`, both included: what a dump asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u16,
    pub end: u16,
}

impl Span {
    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}
use std::io;
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// `SOCK_DIAG_BY_FAMILY` from `<linux/sock_diag.h>`.
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCP_LISTEN` from `<netinet/tcp.h>`.
pub(crate) const TCP_LISTEN: u8 = 10;
/// `INET_DIAG_REQ_BYTECODE` from `<linux/inet_diag.h>`: a filter attribute.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Filter operations: source port `>=` and `<=` the port in the next op.
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// The kernel never puts more than about 32 KiB in one dump message.
pub(crate) const RECV_BUF_LEN: usize = 32 * 1024;
/// A kernel that does not answer within this is treated as a failed scan.
const RECV_TIMEOUT_SECS: libc::time_t = 2;

/// `struct inet_diag_sockid`. Ports and addresses are big-endian.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct InetDiagSockId {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub interface: u32,
    pub cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`: which sockets a dump should list.
#[repr(C)]
pub(crate) struct InetDiagReqV2 {
    pub family: u8,
    pub protocol: u8,
    pub ext: u8,
    pub pad: u8,
    pub states: u32,
    pub id: InetDiagSockId,
}

/// `struct inet_diag_msg`, the fixed part of each socket in a reply. Never
/// built: replies are read at its field offsets.
#[allow(dead_code)]
#[repr(C)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: InetDiagSockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// `struct inet_diag_bc_op`: one instruction of a filter. Jumps are byte
/// offsets; jumping just past the end (`len + 4`) rejects the socket.
#[repr(C)]
struct BcOp {
    code: u8,
    yes: u8,
    no: u16,
}

/// One dump request: header, request, and a filter keeping the range's ports.
#[repr(C)]
pub(crate) struct DumpRequest {
    header: libc::nlmsghdr,
    request: InetDiagReqV2,
    filter_attr: libc::nlattr,
    filter: [BcOp; 4],
}

pub(crate) const HEADER_LEN: usize = size_of::<libc::nlmsghdr>();
const MSG_LEN: usize = size_of::<InetDiagMsg>();
// The request is sent as raw bytes, so it must have no padding.
const _: () = assert!(size_of::<DumpRequest>() == 16 + 56 + 4 + 16);
const _: () = assert!(MSG_LEN == 72);

pub(crate) static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);

/// Appends to `out` the ports of `range` that a socket of `proto` holds
/// (a TCP listener, any bound UDP socket), IPv4 or IPv6, receiving the
/// kernel's replies into `buf`.
pub(crate) fn scan(
    range: Span,
    proto: Proto,
    buf: &mut Vec<u8>,
    out: &mut Vec<u16>,
) -> io::Result<()> {
    dump(range, range, proto, buf, out)
}

/// Asks the kernel for the sockets of `proto` on ports of `filter` and
/// keeps those on ports of `keep` (the same range, but for tests of the
/// kernel filter).
fn dump(
    filter: Span,
    keep: Span,
    proto: Proto,
    buf: &mut Vec<u8>,
    out: &mut Vec<u16>,
) -> io::Result<()> {
    let fd = open()?;
    buf.resize(RECV_BUF_LEN.max(buf.len()), 0);
    for family in [libc::AF_INET, libc::AF_INET6] {
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        send_request(&fd, &dump_request(family, proto, filter, seq))?;
        receive_dump(&fd, seq, buf, keep, proto, out)?;
    }
    Ok(())
}

pub(crate) fn open() -> io::Result<OwnedFd> {
    let fd = super::socket(libc::AF_NETLINK, libc::SOCK_DGRAM, libc::NETLINK_SOCK_DIAG)?;
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT_SECS,
        tv_usec: 0,
    };
    super::set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
    Ok(fd)
}

/// A dump of the sockets of `family` and `proto` on a port of `range`: TCP
/// listeners, UDP sockets in any state (bound or connected, each holds its
/// port).
pub(crate) fn dump_request(
    family: libc::c_int,
    proto: Proto,
    range: Span,
    seq: u32,
) -> DumpRequest {
    let (protocol, states) = match proto {
        Proto::Tcp => (libc::IPPROTO_TCP, 1 << TCP_LISTEN),
        Proto::Udp => (libc::IPPROTO_UDP, !0),
    };
    // Accept when start <= sport, else reject (jump past the end); then
    // accept when sport <= end, else reject.
    let filter = [
        BcOp {
            code: INET_DIAG_BC_S_GE,
            yes: 8,
            no: 16 + 4,
        },
        BcOp {
            code: 0,
            yes: 0,
            no: range.start,
        },
        BcOp {
            code: INET_DIAG_BC_S_LE,
            yes: 8,
            no: 8 + 4,
        },
        BcOp {
            code: 0,
            yes: 0,
            no: range.end,
        },
    ];
    DumpRequest {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<DumpRequest>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            nlmsg_seq: seq,
            nlmsg_pid: 0,
        },
        request: InetDiagReqV2 {
            family: family as u8,
            protocol: protocol as u8,
            ext: 0,
            pad: 0,
            states,
            id: InetDiagSockId::default(),
        },
        filter_attr: libc::nlattr {
            nla_len: (size_of::<libc::nlattr>() + size_of::<[BcOp; 4]>()) as u16,
            nla_type: INET_DIAG_REQ_BYTECODE,
        },
        filter,
    }
}

/// Sends `request` to the kernel. Only for the padding-free `#[repr(C)]`
/// requests of this module and `owner.rs`, whose layouts are asserted.
pub(crate) fn send_request<T>(fd: &OwnedFd, request: &T) -> io::Result<()> {
    let len = size_of::<T>();
    // SAFETY: `request` is a live, padding-free #[repr(C)] value of `len`
    // bytes; the kernel only reads it. An unconnected netlink socket sends
    // to the kernel.
    let sent = unsafe { libc::send(fd.as_raw_fd(), (&raw const *request).cast(), len, 0) };
    match sent {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != len => Err(io::Error::other("short send of netlink request")),
        _ => Ok(()),
    }
}

/// Reads the replies to request `seq` until `NLMSG_DONE`.
fn receive_dump(
    fd: &OwnedFd,
    seq: u32,
    buf: &mut [u8],
    range: Span,
    proto: Proto,
    out: &mut Vec<u16>,
) -> io::Result<()> {
    loop {
        let len = receive(fd, buf)?;
        if parse_replies(&buf[..len], seq, &mut |s| held_in(s, range, proto, out))? {
            return Ok(());
        }
    }
}

/// Keeps the port of a socket holding a port of `range`: a TCP socket
/// when it listens, a UDP socket whatever its state.
fn held_in(socket: DiagSocket, range: Span, proto: Proto, out: &mut Vec<u16>) {
    let holds = proto == Proto::Udp || socket.state == TCP_LISTEN;
    if holds && range.contains(socket.port) {
        out.push(socket.port);
    }
}

/// What a reply says of one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DiagSocket {
    pub state: u8,
    /// Its local port.
    pub port: u16,
    /// The user that owns it, as `ss -e` shows.
    pub uid: u32,
    /// Its local address.
    pub address: IpAddr,
    /// Its inode, as `/proc/PID/fd` links name it (`socket:[INODE]`).
    pub inode: u32,
}

/// One datagram into `buf`; its length, which is an error when it did not fit.
pub(crate) fn receive(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes. With
        // MSG_TRUNC the kernel still writes at most that many and returns
        // the datagram's full length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n > buf.len() {
            let msg = format!("netlink reply of {n} bytes did not fit {} bytes", buf.len());
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        return Ok(n);
    }
}

/// Reads one datagram of netlink messages, handing each socket in it to
/// `on_socket`. True once the dump `seq` is done. Messages of other sequence
/// numbers are skipped.
pub(crate) fn parse_replies(
    mut data: &[u8],
    seq: u32,
    on_socket: &mut dyn FnMut(DiagSocket),
) -> io::Result<bool> {
    while data.len() >= HEADER_LEN {
        let len = read_u32(data, 0) as usize;
        if len < HEADER_LEN || len > data.len() {
            return Err(invalid(format!("netlink message length {len}")));
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let payload = &data[HEADER_LEN..len];
        if read_u32(data, 8) == seq {
            match i32::from(kind) {
                libc::NLMSG_DONE => return done(payload).map(|()| true),
                libc::NLMSG_ERROR => return Err(error(payload)),
                _ if kind == SOCK_DIAG_BY_FAMILY => on_socket(read_socket(payload)?),
                _ => {}
            }
        }
        data = &data[align(len).min(data.len())..];
    }
    Ok(false)
}

/// The socket in one `inet_diag_msg`.
pub(crate) fn read_socket(payload: &[u8]) -> io::Result<DiagSocket> {
    if payload.len() < MSG_LEN {
        return Err(invalid(format!("inet_diag_msg of {} bytes", payload.len())));
    }
    let at = offset_of!(InetDiagMsg, id) + offset_of!(InetDiagSockId, sport);
    Ok(DiagSocket {
        state: payload[offset_of!(InetDiagMsg, state)],
        port: u16::from_be_bytes([payload[at], payload[at + 1]]),
        uid: read_u32(payload, offset_of!(InetDiagMsg, uid)),
        address: read_address(payload),
        inode: read_u32(payload, offset_of!(InetDiagMsg, inode)),
    })
}

/// The local address of an `inet_diag_msg`: IPv4 in the first four bytes
/// of `src` for an `AF_INET` socket, all sixteen otherwise.
fn read_address(payload: &[u8]) -> IpAddr {
    let at = offset_of!(InetDiagMsg, id) + offset_of!(InetDiagSockId, src);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&payload[at..at + 16]);
    if i32::from(payload[offset_of!(InetDiagMsg, family)]) == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(octets))
    }
}

/// `NLMSG_DONE` carries the dump's outcome: 0 or a negative errno.
fn done(payload: &[u8]) -> io::Result<()> {
    match payload.get(..4) {
        Some(code) if read_i32(code) < 0 => Err(io::Error::from_raw_os_error(-read_i32(code))),
        _ => Ok(()),
    }
}

/// `NLMSG_ERROR` carries a negative errno (0 would be an acknowledgement,
/// which a dump never asks for).
pub(crate) fn error(payload: &[u8]) -> io::Error {
    match payload.get(..4).map(read_i32) {
        Some(code) if code < 0 => io::Error::from_raw_os_error(-code),
        Some(code) => invalid(format!("unexpected netlink acknowledgement {code}")),
        None => invalid("truncated netlink error message".to_string()),
    }
}

pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn read_i32(data: &[u8]) -> i32 {
    i32::from_ne_bytes([data[0], data[1], data[2], data[3]])
}

/// `NLMSG_ALIGN`: messages start on 4-byte boundaries.
pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const ALL: Span = Span {
        start: 1,
        end: 65535,
    };

    /// One netlink message: header, then `payload`, padded to 4 bytes.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&(libc::NLM_F_MULTI as u16).to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align(m.len()), 0);
        m
    }

    /// An `inet_diag_msg` (plus an attribute, as the kernel adds) for a
    /// socket in `state` on local `port`.
    fn socket(seq: u32, state: u8, port: u16) -> Vec<u8> {
        let mut payload = vec![0u8; MSG_LEN];
        payload[0] = libc::AF_INET as u8;
        payload[1] = state;
        payload[4..6].copy_from_slice(&port.to_be_bytes());
        payload.extend_from_slice(&[5, 0, 8, 0, 0, 0, 0, 0]);
        message(SOCK_DIAG_BY_FAMILY, seq, &payload)
    }

    fn parse(data: &[u8], seq: u32, range: Span) -> (io::Result<bool>, Vec<u16>) {
        let mut out = Vec::new();
        let done = parse_replies(data, seq, &mut |s| held_in(s, range, Proto::Tcp, &mut out));
        (done, out)
    }

    #[test]
    fn netlink_reply_yields_listening_ports_of_the_range() {
        let mut data = socket(7, TCP_LISTEN, 3000);
        data.extend(socket(7, TCP_LISTEN, 9001));
        data.extend(socket(7, 1, 3001)); // established
        data.extend(socket(7, TCP_LISTEN, 8080));
        let (done, ports) = parse(
            &data,
            7,
            Span {
                start: 3000,
                end: 9000,
            },
        );
        assert!(!done.unwrap());
        assert_eq!(ports, vec![3000, 8080]);
    }

    #[test]
    fn netlink_done_ends_the_dump_and_other_sequences_are_skipped() {
        let mut data = socket(6, TCP_LISTEN, 3000);
        data.extend(socket(7, TCP_LISTEN, 3002));
        data.extend(message(libc::NLMSG_DONE as u16, 7, &0i32.to_ne_bytes()));
        let (done, ports) = parse(&data, 7, ALL);
        assert!(done.unwrap());
        assert_eq!(ports, vec![3002]);
    }

    #[test]
    fn netlink_error_reply_becomes_its_errno() {
        let mut payload = (-libc::EPERM).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; HEADER_LEN]);
        let data = message(libc::NLMSG_ERROR as u16, 3, &payload);
        let err = parse(&data, 3, ALL).0.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        let data = message(libc::NLMSG_DONE as u16, 3, &(-libc::ENOBUFS).to_ne_bytes());
        let err = parse(&data, 3, ALL).0.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
    }

    #[test]
    fn netlink_malformed_reply_is_an_error() {
        let mut data = socket(1, TCP_LISTEN, 3000);
        data[0] = 200; // longer than the datagram
        assert_eq!(
            parse(&data, 1, ALL).0.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let data = message(SOCK_DIAG_BY_FAMILY, 1, &[0; 8]); // short inet_diag_msg
        assert_eq!(
            parse(&data, 1, ALL).0.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn netlink_kernel_filter_keeps_only_the_requested_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let only = Span {
            start: port,
            end: port,
        };
        dump(only, ALL, Proto::Tcp, &mut buf, &mut out).unwrap();
        assert_eq!(out, vec![port]);
        out.clear();
        let others = if port > 1 {
            Span {
                start: 1,
                end: port - 1,
            }
        } else {
            Span {
                start: 2,
                end: 65535,
            }
        };
        dump(others, ALL, Proto::Tcp, &mut buf, &mut out).unwrap();
        assert!(
            out.iter().all(|p| others.contains(*p)),
            "{out:?} outside {others:?}"
        );
    }
}
