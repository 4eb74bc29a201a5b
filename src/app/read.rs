//! What reads see: each takes the table's read lock only to copy what it
//! answers, and serialises after. No change is copied for readers: the
//! summary most answers need is made again only when a read follows a
//! change.

use super::metrics::epoch_secs;
use super::usage::{Holder, Usage, largest};
use super::{App, Held};
use crate::ports::lease::Lease;
use crate::ports::{Counts, PortEntry, PortRange, PortState};
use crate::state::ScanInfo;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// The small facts most answers need, as of one change.
#[derive(Debug)]
pub struct Summary {
    pub range: PortRange,
    pub server_port: Option<u16>,
    pub counts: Counts,
    pub last_scan: Option<ScanInfo>,
    /// Leases in the table, those not yet ended among them.
    pub leases: usize,
    /// `GET /api/v1/server/port` up to its timestamp, made once per summary.
    pub server_port_json: OnceLock<Vec<u8>>,
    /// The change it is as of.
    seq: u64,
}

impl Summary {
    pub(super) fn of(held: &Held) -> Summary {
        Summary {
            range: held.table.range(),
            server_port: held.table.server_port(),
            counts: held.table.counts(),
            last_scan: held.last_scan.clone(),
            leases: held.table.lease_count(),
            server_port_json: OnceLock::new(),
            seq: held.seq,
        }
    }
}

/// What `GET /api/v1/system/usage` and `/metrics` show of usage, as of
/// one moment.
#[derive(Debug)]
pub struct UsageReport {
    /// Each pool's ports by state, by pool name.
    pub pools: Vec<(String, Counts)>,
    /// Leased ports of the 50 principals holding most, then of the others.
    pub leased_by: Vec<(Holder, usize)>,
    /// Leased ports now.
    pub leased: usize,
    pub usage: Usage,
    /// Seconds since the Unix epoch, when it was taken.
    pub now_secs: u64,
}

/// How many principals usage names; the others are counted together.
pub const LARGEST_HOLDERS: usize = 50;

/// Which leases a list shows: those matching every field given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseFilter {
    /// The principal's uid; `Some(None)` for remote callers.
    pub uid: Option<Option<u32>>,
    pub pool: Option<String>,
    pub owner: Option<String>,
}

impl LeaseFilter {
    fn matches(&self, lease: &Lease) -> bool {
        self.uid.is_none_or(|uid| lease.uid == uid)
            && self.pool.as_ref().is_none_or(|p| lease.pool == *p)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| lease.owner.as_ref() == Some(o))
    }
}

impl App {
    /// The summary as of the latest change.
    pub fn summary(&self) -> Arc<Summary> {
        let generation = self.generation.load(Ordering::Acquire);
        {
            let cached = self.summary.read().unwrap_or_else(|p| p.into_inner());
            if cached.seq == generation {
                return Arc::clone(&cached);
            }
        }
        let fresh = Arc::new(Summary::of(&self.held_read()));
        let mut slot = self.summary.write().unwrap_or_else(|p| p.into_inner());
        if slot.seq < fresh.seq {
            *slot = Arc::clone(&fresh);
        }
        fresh
    }

    /// Usage as of now: the table's counts under its read lock, and a copy
    /// of what [`crate::app::metrics::Metrics`] keeps.
    pub fn usage(&self) -> UsageReport {
        let (pools, leased_by, leased) = {
            let held = self.held_read();
            let pools = held.table.pool_counts();
            let pools = pools.into_iter().map(|(name, c)| (name.to_string(), c));
            let leased_by = largest(held.table.ports_held(), LARGEST_HOLDERS);
            (pools.collect(), leased_by, held.table.leased_ports())
        };
        UsageReport {
            pools,
            leased_by,
            leased,
            usage: self.metrics.usage().clone(),
            now_secs: epoch_secs(),
        }
    }

    /// The ports that are not free, those in `state` only when given, in
    /// ascending order.
    pub fn port_entries(&self, state: Option<PortState>) -> Vec<(u16, PortEntry)> {
        let held = self.held_read();
        let entries = held.table.entries().iter();
        entries
            .filter(|(_, e)| state.is_none_or(|s| e.state == s))
            .map(|(port, entry)| (*port, entry.clone()))
            .collect()
    }

    /// The pools by name, `default` (the whole range) among them.
    pub fn pools(&self) -> std::collections::BTreeMap<String, PortRange> {
        self.held_read().table.pools().clone()
    }

    /// The state of one port; `None` when it is free.
    pub fn port_entry(&self, port: u16) -> Option<PortEntry> {
        self.held_read().table.state(port).cloned()
    }

    /// Calls `answer` with the leases `filter` matches whose time has not
    /// passed, by id, under the read lock: a list of thousands is written
    /// out without a copy of them, in a few milliseconds in which changes
    /// wait. Whether a lease's process still runs is the refresh thread's
    /// to find out: a list reads nothing per lease.
    pub fn with_leases<T>(
        &self,
        filter: &LeaseFilter,
        answer: impl FnOnce(&mut dyn Iterator<Item = &Lease>) -> T,
    ) -> T {
        let now = self.lease_now();
        let held = self.held_read();
        let mut leases = held
            .table
            .leases()
            .filter(|l| l.expires_at > now && filter.matches(l));
        answer(&mut leases)
    }

    /// The lease `id`, ended or not.
    pub fn lease(&self, id: &str) -> Option<Lease> {
        self.held_read().table.lease(id).cloned()
    }
}
