//! What the host says is in use: the TCP ports of the range that some socket
//! is listening on, on any local address, IPv4 or IPv6.

use crate::ports::PortRange;
use std::io;

/// How a scan asks the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A NETLINK_SOCK_DIAG dump, as `ss` does.
    Netlink,
    /// Reading `/proc/net/tcp` and `/proc/net/tcp6`.
    ProcNet,
    /// Trying to bind every port.
    Probe,
}

impl Method {
    /// The name shown in the overview: `netlink`, `proc` or `probe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Netlink => "netlink",
            Method::ProcNet => "proc",
            Method::Probe => "probe",
        }
    }
}

/// Scans with the fastest method that works on this host.
#[derive(Debug)]
pub struct Scanner {}

impl Scanner {
    /// Picks netlink, else `/proc/net`, else probing, by trying each once.
    pub fn detect() -> Scanner {
        unimplemented!()
    }
    pub fn with_method(_method: Method) -> Scanner {
        unimplemented!()
    }
    pub fn method(&self) -> Method {
        unimplemented!()
    }
    /// The ports of `range` that are listened on, sorted, without duplicates.
    pub fn scan(&self, _range: PortRange) -> io::Result<Vec<u16>> {
        unimplemented!()
    }
}
