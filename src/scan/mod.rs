//! What the host says is in use: the ports of the range that some TCP
//! socket listens on or some UDP socket is bound to, on any local address,
//! IPv4 or IPv6.
//!
//! Three ways to ask, fastest first: a `NETLINK_SOCK_DIAG` dump (what `ss`
//! does), reading `/proc/net/tcp{,6}`, and trying to bind every port. Sockets
//! in other network namespaces are invisible to all three.

mod dirfd;
mod holders;
mod probe;
mod procfd;
mod procnet;

#[cfg(test)]
mod tests;

pub use holders::{
    Holder, LOOKUP_BUDGET, Lookup, LookupLimit, MAX_PER_SECOND, Permit, Refused, Scope, lookup,
};
pub use probe::bindable;

use crate::ports::{PortRange, Protocols, Seen};
pub use crate::sys::netlink::Proto;
use crate::sys::netlink::{self, Span};
use std::io;
use std::sync::{Mutex, PoisonError};

/// How a scan asks the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A NETLINK_SOCK_DIAG dump, as `ss` does.
    Netlink,
    /// Reading `/proc/net/tcp` and `/proc/net/tcp6`.
    ProcNet,
    /// Trying to bind every port.
    ///
    /// A bind also fails on a port that a socket without `SO_REUSEADDR`
    /// holds without listening, typically the local port of an outgoing
    /// connection or of its `TIME_WAIT` remains; so this method can report
    /// more ports than the other two, never fewer.
    Probe,
}

impl Method {
    /// Every method, fastest first: the order `detect` tries them and the
    /// order a failed scan falls back along.
    pub const ALL: [Method; 3] = [Method::Netlink, Method::ProcNet, Method::Probe];

    /// The name shown in the overview: `netlink`, `proc` or `probe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Netlink => "netlink",
            Method::ProcNet => "proc",
            Method::Probe => "probe",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scans with the fastest method that works on this host.
pub struct Scanner {
    method: Method,
    /// Reused by every scan (netlink replies, `/proc` file contents), so a
    /// periodic scan does not allocate once it has warmed up.
    buf: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// Picks netlink, else `/proc/net`, else probing, by trying each once.
    pub fn detect() -> Scanner {
        let probe_range = PortRange { start: 1, end: 1 };
        for method in [Method::Netlink, Method::ProcNet] {
            let scanner = Scanner::with_method(method);
            match scanner.scan_without_fallback(probe_range) {
                Ok(_) => {
                    log::debug!("port scan method: {method}");
                    return scanner;
                }
                Err(e) => log::info!("port scan method {method} unavailable: {e}"),
            }
        }
        log::debug!("port scan method: {}", Method::Probe);
        Scanner::with_method(Method::Probe)
    }

    /// A scanner that uses `method` first, whether or not it works here.
    pub fn with_method(method: Method) -> Scanner {
        Scanner {
            method,
            buf: Mutex::new(Vec::new()),
        }
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The ports of `range` that a TCP socket listens on or a UDP socket
    /// holds, sorted, each with the protocols that hold it.
    ///
    /// When the scanner's method fails, this scan falls back to the slower
    /// methods after it (with a warning) and fails only when all of them do.
    pub fn scan(&self, range: PortRange) -> io::Result<Vec<Seen>> {
        scan_chain(self.method, |method| self.scan_with(method, range))
    }

    /// Like [`Scanner::scan`], but with the scanner's method only: its error
    /// is returned as is. For measuring and comparing the methods.
    pub fn scan_without_fallback(&self, range: PortRange) -> io::Result<Vec<Seen>> {
        self.scan_with(self.method, range)
    }

    fn scan_with(&self, method: Method, range: PortRange) -> io::Result<Vec<Seen>> {
        let tcp = self.scan_by(method, range, Proto::Tcp)?;
        let udp = self.scan_by(method, range, Proto::Udp)?;
        Ok(merge(&tcp, &udp))
    }

    fn scan_by(&self, method: Method, range: PortRange, proto: Proto) -> io::Result<Vec<u16>> {
        let mut ports = Vec::new();
        match method {
            Method::Netlink => netlink::scan(span(range), proto, &mut self.buffer(), &mut ports)?,
            Method::ProcNet => procnet::scan(range, proto, &mut self.buffer(), &mut ports)?,
            Method::Probe => probe::scan(range, proto, &mut ports)?,
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(ports)
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while holding the buffer leaves nothing to repair: every
        // scan overwrites what it reads.
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The ports of two sorted lists, each with the protocols that hold it.
fn merge(tcp: &[u16], udp: &[u16]) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::with_capacity(tcp.len() + udp.len());
    seen.extend(tcp.iter().map(|&p| (p, Protocols::TCP)));
    seen.extend(udp.iter().map(|&p| (p, Protocols::UDP)));
    seen.sort_unstable_by_key(|(p, _)| *p);
    seen.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1 = first.1.union(later.1);
        }
        same
    });
    seen
}

/// Runs `scan` with `first`, then with each slower method in turn while the
/// previous one fails. Returns the first success, or the last error.
fn scan_chain<T>(first: Method, mut scan: impl FnMut(Method) -> io::Result<T>) -> io::Result<T> {
    let mut chain = Method::ALL.iter().copied().skip_while(|m| *m != first);
    let mut method = chain.next().unwrap_or(first);
    loop {
        match scan(method) {
            Ok(ports) => return Ok(ports),
            Err(e) => match chain.next() {
                Some(next) => {
                    log::warn!("port scan with {method} failed ({e}); trying {next}");
                    method = next;
                }
                None => return Err(e),
            },
        }
    }
}

/// A range of ports as the kernel's socket table is asked about it.
fn span(range: PortRange) -> Span {
    Span {
        start: range.start,
        end: range.end,
    }
}
