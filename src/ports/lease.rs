//! Leases: ports handed to other processes, as the API and the state file
//! show them. The rules that grant, renew and end them live with the port
//! table they change, in `ports/leases.rs`.

use crate::ports::Protocols;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// The pool that always exists and spans the whole range.
pub const DEFAULT_POOL: &str = "default";

/// The protocols a lease holds its ports in: `both` unless asked otherwise,
/// as portpicker checks both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Both,
    Tcp,
    Udp,
}

impl Protocol {
    pub fn protocols(self) -> Protocols {
        match self {
            Protocol::Both => Protocols::BOTH,
            Protocol::Tcp => Protocols::TCP,
            Protocol::Udp => Protocols::UDP,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Both => "both",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Ports handed to a client until released, expired, or its process exits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub ports: Vec<u16>,
    pub pool: String,
    pub owner: Option<String>,
    /// The principal that holds it: a local uid, `None` for `remote`
    /// (and for leases granted before principals existed).
    #[serde(default)]
    pub uid: Option<u32>,
    /// The protocols its ports were free in at the grant.
    #[serde(default)]
    pub protocol: Protocol,
    pub pid: Option<u32>,
    /// The start time of `pid` (clock ticks since boot), so that a reused
    /// pid does not keep a dead lease alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    #[serde(with = "crate::util::time::rfc3339_serde")]
    pub created_at: SystemTime,
    #[serde(with = "crate::util::time::rfc3339_serde")]
    pub expires_at: SystemTime,
    /// The life the lease was last given, reused by a renewal that names none.
    #[serde(default)]
    pub ttl_secs: u64,
}

impl Lease {
    /// Whether the lease still holds at `now`: its TTL has not passed and its
    /// process, when it has one, still runs.
    pub fn is_live(&self, now: SystemTime, alive: &dyn Fn(u32, Option<u64>) -> bool) -> bool {
        self.end_reason(now, alive).is_none()
    }

    pub(crate) fn end_reason(
        &self,
        now: SystemTime,
        alive: &dyn Fn(u32, Option<u64>) -> bool,
    ) -> Option<EndReason> {
        if self.expires_at <= now {
            Some(EndReason::Expired)
        } else if self.pid.is_some_and(|pid| !alive(pid, self.pid_start)) {
            Some(EndReason::OwnerExited)
        } else {
            None
        }
    }
}

/// What a client asks for; validated by the API (against the limits in
/// `crate::ports::wire`) before it gets here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRequest {
    pub count: usize,
    pub port: Option<u16>,
    pub pool: String,
    pub ttl: Duration,
    pub owner: Option<String>,
    /// The principal asking; see [`Lease::uid`].
    pub uid: Option<u32>,
    pub protocol: Protocol,
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
}

/// Why a lease could not be granted, renewed or released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// No pool has that name. 404.
    UnknownPool(String),
    /// No live lease has that id. 404.
    UnknownLease(String),
    /// A value that cannot be right, naming its field. 400.
    Invalid(String),
    /// The ports asked for cannot be had. 409.
    Unavailable(String),
    /// Not the caller's to do, or over its quota.
    Refused(crate::ports::principal::Refusal),
}

/// Why a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Released,
    Expired,
    OwnerExited,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Released => "released",
            EndReason::Expired => "expired",
            EndReason::OwnerExited => "owner exited",
        }
    }
}
