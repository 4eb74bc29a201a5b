//! One portserver request: the line a client sends (its pid in decimal and
//! `\n`), who may name that pid, and the lease request it becomes. Pure but
//! for [`lease_request`], which reads `/proc`.

use crate::app::metrics::Denial;
use crate::ports::lease::{LeaseRequest, Protocol};
use std::fmt;
use std::time::Duration;

/// The longest line read: a pid has at most 10 digits, so anything longer
/// is not a request.
pub const MAX_LINE: usize = 32;

/// A portpicker client holds its port for the life of its process; the
/// lease ends when the process does, and after a week (the longest TTL)
/// at the latest.
pub const TTL: Duration = Duration::from_secs(crate::ports::wire::MAX_TTL_SECS);

/// Why a client gets no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The line is not a decimal pid and `\n`; holds what came, escaped.
    Malformed(String),
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// The connection closed before the newline.
    Unfinished,
    /// No line within the deadline.
    Silent,
    /// Too many clients wait for their line already, and the caller's
    /// uid has as many of them as any.
    Busy,
    /// The caller's uid has [`super::MAX_WAITING_PER_UID`] clients waiting
    /// already.
    Crowded(u32),
    /// The kernel did not say who connected.
    NoPeer(String),
    /// pid 0 or 1: no process that uses ports.
    NotAClient(u32),
    /// No such process runs (or `/proc` hides it from dynport).
    NoProcess(u32),
    /// The process belongs to another uid and the peer is not root.
    OtherUser { pid: u32, pid_uid: u32, peer: u32 },
}

impl Refused {
    /// The reason `/metrics` counts it under.
    pub fn denial(&self) -> Denial {
        match self {
            Refused::OtherUser { .. } => Denial::Forbidden,
            Refused::Busy | Refused::Crowded(_) => Denial::Unavailable,
            _ => Denial::BadRequest,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Malformed(text) => write!(f, "{text} is not a pid and a newline"),
            Refused::TooLong => write!(f, "more than {MAX_LINE} bytes without a newline"),
            Refused::Unfinished => f.write_str("the client closed before its newline"),
            Refused::Silent => f.write_str("no request line within the deadline"),
            Refused::Busy => f.write_str("too many clients are waiting already"),
            Refused::Crowded(uid) => write!(
                f,
                "uid {uid} has {} clients waiting already",
                super::MAX_WAITING_PER_UID
            ),
            Refused::NoPeer(e) => write!(f, "the kernel did not say who connected: {e}"),
            Refused::NotAClient(pid) => write!(f, "pid {pid} cannot own a lease"),
            Refused::NoProcess(pid) => write!(f, "no process {pid} is running"),
            Refused::OtherUser { pid, pid_uid, peer } => write!(
                f,
                "process {pid} belongs to uid {pid_uid}, not to the caller (uid {peer})"
            ),
        }
    }
}

/// What the bytes read so far hold: `None` while the line is not complete.
pub fn parse_line(bytes: &[u8]) -> Result<Option<u32>, Refused> {
    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
        if bytes.len() > MAX_LINE {
            return Err(Refused::TooLong);
        }
        return Ok(None);
    };
    // Nothing may follow the line: the client waits for its answer.
    let digits = &bytes[..end];
    let is_pid = end + 1 == bytes.len()
        && (1..=10).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit);
    let pid = std::str::from_utf8(digits).ok().filter(|_| is_pid);
    match pid.and_then(|text| text.parse::<u32>().ok()) {
        Some(pid) => Ok(Some(pid)),
        None => Err(Refused::Malformed(escaped(bytes))),
    }
}

/// The spec's rule: a peer names a process of its own uid; uid 0 any.
/// `pid_uid` is the real uid of `pid`, `None` when no such process runs.
pub fn may_name(peer: u32, pid: u32, pid_uid: Option<u32>) -> Result<(), Refused> {
    if pid <= 1 {
        return Err(Refused::NotAClient(pid));
    }
    match pid_uid {
        None => Err(Refused::NoProcess(pid)),
        Some(pid_uid) if peer == 0 || pid_uid == peer => Ok(()),
        Some(pid_uid) => Err(Refused::OtherUser { pid, pid_uid, peer }),
    }
}

/// The lease `peer` asks for `pid` from `pool`, once the rule lets it:
/// one port, tied to the process, owned by its command name.
pub fn lease_request(peer: u32, pid: u32, pool: &str) -> Result<LeaseRequest, Refused> {
    // Root may name any process: its uid is only read for others.
    let pid_uid = match peer {
        0 => Some(0),
        _ => crate::sys::process::real_uid(pid),
    };
    may_name(peer, pid, pid_uid)?;
    let (start, command) =
        crate::sys::process::start_and_command(pid).ok_or(Refused::NoProcess(pid))?;
    Ok(LeaseRequest {
        count: 1,
        port: None,
        pool: pool.to_string(),
        ttl: TTL,
        owner: owner_name(&command),
        uid: Some(peer),
        // portpicker's ports are free in TCP and UDP alike.
        protocol: Protocol::Both,
        pid: Some(pid),
        pid_start: Some(start),
        name: None,
    })
}

/// A process's command name when it is an owner the API would accept; any
/// process may set its own name to anything.
fn owner_name(command: &str) -> Option<String> {
    crate::ports::wire::owner("owner", command).ok()?;
    Some(command.to_string())
}

/// Client bytes made safe for a log line.
pub fn escaped(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_and_a_newline_is_a_request_and_nothing_else_is() {
        assert_eq!(parse_line(b"4242\n"), Ok(Some(4242)));
        assert_eq!(parse_line(b"4242"), Ok(None));
        assert_eq!(parse_line(b""), Ok(None));
        assert_eq!(parse_line(b"4294967295\n"), Ok(Some(u32::MAX)));
        for bad in [
            &b"abc\n"[..],
            b"\n",
            b"-5\n",
            b"+5\n",
            b" 5\n",
            b"5 \n",
            b"5\r\n",
            b"4294967296\n",
            b"12345678901\n",
            b"42\n42\n",
            b"\xff\n",
        ] {
            assert!(
                matches!(parse_line(bad), Err(Refused::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_line(b"a\x1b[31m\n"),
            Err(Refused::Malformed("\"a\\u{1b}[31m\\n\"".to_string()))
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_refused_before_its_newline() {
        assert_eq!(parse_line(&[b'1'; MAX_LINE]), Ok(None));
        assert_eq!(parse_line(&[b'1'; MAX_LINE + 1]), Err(Refused::TooLong));
    }

    #[test]
    fn a_peer_names_its_own_processes_and_root_names_any() {
        assert_eq!(may_name(1000, 4242, Some(1000)), Ok(()));
        assert_eq!(may_name(0, 4242, Some(1000)), Ok(()));
        let other = Refused::OtherUser {
            pid: 4242,
            pid_uid: 1001,
            peer: 1000,
        };
        assert_eq!(may_name(1000, 4242, Some(1001)), Err(other.clone()));
        assert_eq!(
            other.to_string(),
            "process 4242 belongs to uid 1001, not to the caller (uid 1000)"
        );
        assert_eq!(may_name(0, 4242, None), Err(Refused::NoProcess(4242)));
        assert_eq!(may_name(0, 0, Some(0)), Err(Refused::NotAClient(0)));
        assert_eq!(may_name(0, 1, Some(0)), Err(Refused::NotAClient(1)));
    }

    #[test]
    fn this_process_gets_a_week_long_lease_in_its_own_name() {
        let me = std::process::id();
        let uid = crate::sys::process::own_uid();
        let req = lease_request(uid, me, "web").unwrap();
        assert_eq!((req.count, req.port, req.pool.as_str()), (1, None, "web"));
        assert_eq!((req.uid, req.pid), (Some(uid), Some(me)));
        assert_eq!(req.pid_start, crate::sys::process::start_time(me));
        assert_eq!(req.ttl, Duration::from_secs(604_800));
        assert_eq!(req.protocol, Protocol::Both);
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(req.owner.as_deref(), Some(comm.trim_end()));
    }
}
