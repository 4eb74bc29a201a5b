//! Counters for `GET /metrics`, kept with relaxed atomics: each is read
//! alone, so no ordering between them is needed.

use super::usage::Usage;
use crate::ports::lease::EndReason;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Why a lease request was denied, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    BadRequest,
    UnknownPool,
    Unavailable,
    Unauthorized,
    Storage,
    /// The caller may not do it (another user's pid).
    Forbidden,
    /// Over `--max-ports-per-uid`.
    Quota,
    /// A caller of this host whose socket could not vouch for a user.
    Unidentified,
}

impl Denial {
    pub const ALL: [Denial; 8] = [
        Denial::BadRequest,
        Denial::UnknownPool,
        Denial::Unavailable,
        Denial::Unauthorized,
        Denial::Storage,
        Denial::Forbidden,
        Denial::Quota,
        Denial::Unidentified,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Denial::BadRequest => "bad_request",
            Denial::UnknownPool => "unknown_pool",
            Denial::Unavailable => "unavailable",
            Denial::Unauthorized => "unauthorized",
            Denial::Storage => "storage",
            Denial::Forbidden => "forbidden",
            Denial::Quota => "quota",
            Denial::Unidentified => "unidentified",
        }
    }
}

/// dynport's own counters; the HTTP engine counts requests itself.
#[derive(Debug, Default)]
pub struct Metrics {
    pub grants: AtomicU64,
    denials: [AtomicU64; Denial::ALL.len()],
    pub expiries: AtomicU64,
    pub owner_exits: AtomicU64,
    pub releases: AtomicU64,
    pub scans: AtomicU64,
    /// Duration of the last scan, in nanoseconds.
    pub last_scan_nanos: AtomicU64,
    pub state_writes: AtomicU64,
    pub state_write_failures: AtomicU64,
    /// Mutating requests with a missing or wrong token.
    pub auth_failures: AtomicU64,
    /// Lifetimes, grant latency, per-minute counts and peaks.
    usage: Mutex<Usage>,
}

impl Metrics {
    pub fn deny(&self, why: Denial) {
        self.denials[why as usize].fetch_add(1, Ordering::Relaxed);
        self.usage().per_minute.deny(epoch_secs());
    }

    /// A lease granted `latency` after its request was taken.
    pub fn granted(&self, latency: Duration) {
        Metrics::add(&self.grants, 1);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.usage().granted(nanos, epoch_secs());
    }

    /// A lease ended for `reason` after living `lived`.
    pub fn lease_ended(&self, reason: EndReason, lived: Duration) {
        let counter = match reason {
            EndReason::Released => &self.releases,
            EndReason::Expired => &self.expiries,
            EndReason::OwnerExited => &self.owner_exits,
        };
        Metrics::add(counter, 1);
        let nanos = u64::try_from(lived.as_nanos()).unwrap_or(u64::MAX);
        self.usage().ended(reason, nanos);
    }

    /// `ports` are leased after a change.
    pub fn leased_now(&self, ports: usize) {
        let ports = u32::try_from(ports).unwrap_or(u32::MAX);
        self.usage().leased(ports, epoch_secs());
    }

    /// What usage keeps, locked: a copy of a few kilobytes at most.
    pub fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn denials(&self, why: Denial) -> u64 {
        self.denials[why as usize].load(Ordering::Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Seconds since the Unix epoch, by the wall clock: usage's minutes are
/// the wall clock's.
pub fn epoch_secs() -> u64 {
    (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).map_or(0, |d| d.as_secs())
}
