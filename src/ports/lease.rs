//! Leases: ports handed to other processes, as the API and the state file
//! show them. The rules that grant, renew and end them live with the port
//! table they change, in `ports/leases.rs`.
//!
//! Owns the rule: a lease's validity. At most [`MAX_COUNT`] ports, each
//! once; a life of 1 to [`MAX_TTL_SECS`] seconds; an owner of printable
//! text; an id that is a short word of a URL path. A request is checked
//! by these (the API's bodies in `wire.rs`, and the port table again at the
//! grant), and so is every lease a state file brings back
//! (`state/leases.rs`): no other module writes them down.

use crate::ports::Protocols;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

/// The pool that always exists and spans the whole range.
pub const DEFAULT_POOL: &str = "default";

/// The most ports one lease may hold.
pub const MAX_COUNT: u32 = 64;
/// The longest life a lease may be given: a week.
pub const MAX_TTL_SECS: u64 = 604_800;
/// The longest `owner`, in characters.
pub const MAX_OWNER_CHARS: usize = 128;
/// The longest lease id kept. New ids are 16 hex digits; older or foreign
/// ones may differ, but an id is a word of a URL path, not a text.
pub const MAX_ID_CHARS: usize = 64;
/// How many ports one lease may hold.
pub const COUNT: RangeInclusive<u32> = 1..=MAX_COUNT;
/// The life a lease may be given, in seconds.
pub const TTL_SECS: RangeInclusive<u64> = 1..=MAX_TTL_SECS;

/// What is wrong with `owner`, if anything: it must be 1 to
/// [`MAX_OWNER_CHARS`] characters of printable text. The answer names no
/// field: `must be 1 to 128 characters long, got 0`.
pub fn owner_problem(owner: &str) -> Option<String> {
    let n = owner.chars().count();
    if !(1..=MAX_OWNER_CHARS).contains(&n) {
        return Some(format!(
            "must be 1 to {MAX_OWNER_CHARS} characters long, got {n}"
        ));
    }
    crate::util::text::printable_problem(owner).map(|problem| format!("contains {problem}"))
}

/// What is wrong with the life `ttl` asked for, if anything: it must be
/// 1 to [`MAX_TTL_SECS`] whole seconds. The answer names the field.
pub fn ttl_problem(ttl: Duration) -> Option<String> {
    let secs = ttl.as_secs();
    (!TTL_SECS.contains(&secs))
        .then(|| format!("ttl_secs: a lease lives 1 to {MAX_TTL_SECS} s, {secs} asked for"))
}

/// Whether `id` may name a lease: 1 to [`MAX_ID_CHARS`] ASCII letters,
/// digits, `-` or `_`.
pub fn is_id(id: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    !id.is_empty() && id.len() <= MAX_ID_CHARS && id.chars().all(word)
}

/// Whether a lease may hold `ports`: 1 to [`MAX_COUNT`] of them, none
/// given twice.
pub fn is_port_list(ports: &[u16]) -> bool {
    // At most 64 ports: a pairwise look for a port given twice needs no copy.
    let twice = || (1..ports.len()).any(|i| ports[..i].contains(&ports[i]));
    u32::try_from(ports.len()).is_ok_and(|n| COUNT.contains(&n)) && !twice()
}

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
    /// The name of its first port ([`crate::ports::names`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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

/// What a client asks for; validated by the API before it gets here, and
/// by the port table again ([`LeaseRequest::check`]).
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
    /// The name for its first port, lowercased ([`crate::ports::names::parse_name`]).
    pub name: Option<String>,
}

impl LeaseRequest {
    /// Whether the request obeys the rules of a lease: the error names the
    /// field at fault. An exact `port` is one port, whatever `count` says.
    pub fn check(&self) -> Result<(), String> {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        if self.port.is_none() && !COUNT.contains(&count) {
            return Err(format!(
                "count: a lease holds 1 to {MAX_COUNT} ports, {} asked for",
                self.count
            ));
        }
        if let Some(problem) = ttl_problem(self.ttl) {
            return Err(problem);
        }
        if let Some(problem) = self.owner.as_deref().and_then(owner_problem) {
            return Err(format!("owner: {problem}"));
        }
        match self.name.as_deref().map(crate::ports::names::parse_name) {
            Some(Ok(name)) if Some(&name) != self.name.as_ref() => {
                Err(format!("name: {name} must be given lowercased"))
            }
            Some(Err(problem)) => Err(problem),
            _ => Ok(()),
        }
    }
}

/// Why a lease could not be granted, renewed or released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// No pool has that name. 404.
    UnknownPool(String),
    /// No live lease has that id. 404.
    UnknownLease(String),
    /// No name is live or retained by that name. 404.
    UnknownName(String),
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
