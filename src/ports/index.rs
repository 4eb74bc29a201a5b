//! What a lease change asks of the live leases, kept ready so that it costs
//! the same with 20,000 leases as with one: which leases' ends have come,
//! which processes leases are tied to, and how many ports each principal
//! holds. Kept in step by the table alone, at every lease it puts in or
//! takes out.

use crate::ports::SharedText;
use crate::ports::lease::Lease;
use crate::util::hash::IdHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;
use std::time::SystemTime;

/// Lease ids, hashed by [`IdHasher`]: the one copy of each id the table
/// shares with the lease's ports and its key.
type Ids = HashSet<SharedText, BuildHasherDefault<IdHasher>>;

/// A process a lease is tied to: its pid and, when known, its start time.
pub type Process = (u32, Option<u64>);

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct LeaseIndex {
    /// The leases ending at each time, soonest first. Leases granted
    /// together end in the same second, so the ids of a time are hashed,
    /// not ordered: a lease goes in and out without comparing ids.
    ends: BTreeMap<SystemTime, Ids>,
    /// The leases tied to each process.
    tied: BTreeMap<Process, Ids>,
    /// The leased ports of each principal (`None`: remote): a few on any
    /// host, so ordered rather than hashed.
    held: BTreeMap<Option<u32>, usize>,
}

impl LeaseIndex {
    /// Adds `lease`, whose id is `id`.
    pub(super) fn add(&mut self, lease: &Lease, id: &SharedText) {
        let ending = self.ends.entry(lease.expires_at).or_default();
        ending.insert(id.clone());
        if let Some(pid) = lease.pid {
            let ids = self.tied.entry((pid, lease.pid_start)).or_default();
            ids.insert(id.clone());
        }
        *self.held.entry(lease.uid).or_default() += lease.ports.len();
    }

    /// Takes `lease` out; its id as the index held it, when it did.
    pub(super) fn remove(&mut self, lease: &Lease) -> Option<SharedText> {
        let mut taken = None;
        if let Some(ending) = self.ends.get_mut(&lease.expires_at) {
            taken = ending.take(lease.id.as_str());
            if ending.is_empty() {
                self.ends.remove(&lease.expires_at);
            }
        }
        if let Some(pid) = lease.pid {
            let process = (pid, lease.pid_start);
            if let Some(ids) = self.tied.get_mut(&process) {
                ids.remove(lease.id.as_str());
                if ids.is_empty() {
                    self.tied.remove(&process);
                }
            }
        }
        if let Some(held) = self.held.get_mut(&lease.uid) {
            *held = held.saturating_sub(lease.ports.len());
            if *held == 0 {
                self.held.remove(&lease.uid);
            }
        }
        taken
    }

    /// The leases whose end is at or before `now`.
    pub(super) fn ended_by(&self, now: SystemTime) -> impl Iterator<Item = &str> {
        (self.ends.range(..=now))
            .flat_map(|(_, ids)| ids)
            .map(|id| &**id)
    }

    /// The soonest end of any lease.
    pub(super) fn next_end(&self) -> Option<SystemTime> {
        self.ends.first_key_value().map(|(end, _)| *end)
    }

    /// Every process some lease is tied to, each once, with its leases.
    pub(super) fn tied(&self) -> impl Iterator<Item = (Process, &Ids)> {
        self.tied.iter().map(|(process, ids)| (*process, ids))
    }

    /// Whether some lease is tied to a process with `pid`.
    pub(super) fn ties_pid(&self, pid: u32) -> bool {
        self.tied
            .range((pid, None)..=(pid, Some(u64::MAX)))
            .next()
            .is_some()
    }

    pub(super) fn held_by(&self, uid: Option<u32>) -> usize {
        self.held.get(&uid).copied().unwrap_or(0)
    }

    /// Each principal holding leased ports, with how many.
    pub(super) fn held(&self) -> impl Iterator<Item = (Option<u32>, usize)> + '_ {
        self.held.iter().map(|(&uid, &n)| (uid, n))
    }
}
