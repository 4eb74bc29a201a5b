//! The entry of every port of the range that is not free, and who may take
//! a port.
//!
//! Owns the rule: the server's port is never leased. A port that the
//! server, a lease or an exclusion holds is taken by no one else: only a
//! free port, or one the last scan saw in use, is taken, and an entry is
//! given back only by the holder it names. The map is private to this
//! module, so the table and its lease operations change it only through
//! the methods here.

use super::{PortEntry, PortRange, PortState, Seen, SharedText};
use std::collections::BTreeMap;

/// What takes a port: this server, or the lease with that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder<'a> {
    Server,
    Lease(&'a str),
}

impl Holder<'_> {
    /// Whether `entry` is this holder's.
    fn holds(self, entry: &PortEntry) -> bool {
        match self {
            Holder::Server => entry.state == PortState::Server,
            Holder::Lease(id) => {
                entry.state == PortState::Leased && entry.lease_id.as_deref() == Some(id)
            }
        }
    }
}

/// The ports that are not free, by port. Ports absent from it are free.
#[derive(Clone, Debug, Default)]
pub(super) struct Entries {
    map: BTreeMap<u16, PortEntry>,
    /// The texts the last entry was given: the next port taken most often
    /// shares them (the same second, the same lease), and then shares
    /// their one copy.
    last: Texts,
}

/// The last `since` and lease id given to an entry.
#[derive(Clone, Debug, Default)]
struct Texts {
    since: Option<SharedText>,
    lease_id: Option<SharedText>,
}

impl Texts {
    /// `text`, shared with `last` when it is the same.
    fn share(last: &mut Option<SharedText>, text: &str) -> SharedText {
        match last {
            Some(shared) if **shared == *text => shared.clone(),
            _ => last.insert(text.into()).clone(),
        }
    }

    fn entry(&mut self, state: PortState, since: &str) -> PortEntry {
        PortEntry {
            state,
            since: Texts::share(&mut self.since, since),
            lease_id: None,
            protocols: None,
        }
    }

    fn holder_entry(&mut self, holder: Holder<'_>, since: &str) -> PortEntry {
        match holder {
            Holder::Server => self.entry(PortState::Server, since),
            Holder::Lease(id) => PortEntry {
                lease_id: Some(Texts::share(&mut self.lease_id, id)),
                ..self.entry(PortState::Leased, since)
            },
        }
    }
}

/// Tables are the same when their entries are: what was shared is not
/// part of it.
impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.map == other.map
    }
}

impl Entries {
    /// The entries of a range whose ports are all free but `excluded`
    /// (those inside `range`), excluded since `now`.
    pub(super) fn excluding(range: PortRange, excluded: &[u16], now: &str) -> Entries {
        let mut last = Texts::default();
        let map = (excluded.iter().filter(|p| range.contains(**p)))
            .map(|&port| (port, last.entry(PortState::Excluded, now)))
            .collect();
        Entries { map, last }
    }

    pub(super) fn map(&self) -> &BTreeMap<u16, PortEntry> {
        &self.map
    }

    /// The copy of the lease id `id` that the last port taken for a lease
    /// holds, when that lease is `id`.
    pub(super) fn last_lease_id(&self, id: &str) -> Option<SharedText> {
        (self.last.lease_id.as_ref())
            .filter(|shared| ***shared == *id)
            .cloned()
    }

    pub(super) fn get(&self, port: u16) -> Option<&PortEntry> {
        self.map.get(&port)
    }

    /// Whether a holder may take `port`: it is free, or only the last scan
    /// saw it in use. The server, a lease or an exclusion keeps its port.
    pub(super) fn can_take(&self, port: u16) -> bool {
        self.map
            .get(&port)
            .is_none_or(|entry| entry.state == PortState::InUse)
    }

    /// Marks `port` held by `holder` since `since`, when it may take it
    /// ([`Entries::can_take`]); whether it did.
    pub(super) fn take(&mut self, port: u16, holder: Holder<'_>, since: &str) -> bool {
        if !self.can_take(port) {
            return false;
        }
        let entry = self.last.holder_entry(holder, since);
        self.map.insert(port, entry);
        true
    }

    /// Frees `port` when `holder` holds it; another holder's entry stays.
    pub(super) fn give_back(&mut self, port: u16, holder: Holder<'_>) {
        if self.map.get(&port).is_some_and(|entry| holder.holds(entry)) {
            self.map.remove(&port);
        }
    }

    /// Takes in what a scan of `range` saw in use at `now` (sorted by
    /// port); see [`super::PortTable::apply_scan`].
    pub(super) fn apply_scan(&mut self, range: PortRange, in_use: &[Seen], now: &str) -> bool {
        let before = self.map.len();
        let mut changed = false;
        let seen = |port: &u16| {
            in_use
                .binary_search_by_key(port, |(p, _)| *p)
                .ok()
                .map(|i| in_use[i].1)
        };
        self.map.retain(|port, entry| {
            if entry.state != PortState::InUse {
                return true;
            }
            let Some(protocols) = seen(port) else {
                return false;
            };
            if entry.protocols != Some(protocols) {
                entry.protocols = Some(protocols);
                changed = true;
            }
            true
        });
        changed |= self.map.len() != before;
        for &(port, protocols) in in_use.iter().filter(|(p, _)| range.contains(*p)) {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.map.entry(port) {
                slot.insert(PortEntry {
                    protocols: Some(protocols),
                    ..self.last.entry(PortState::InUse, now)
                });
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::tcp_only;

    fn entries() -> Entries {
        Entries::excluding(PortRange::new(100, 109).unwrap(), &[105, 200], "t0")
    }

    #[test]
    fn a_held_port_is_taken_by_no_other_holder() {
        let mut e = entries();
        assert!(e.take(100, Holder::Server, "t"));
        assert!(e.take(101, Holder::Lease("a"), "t"));
        for port in [100, 101, 105] {
            assert!(!e.take(port, Holder::Lease("b"), "t"), "port {port}");
            assert!(!e.take(port, Holder::Server, "t"), "port {port}");
        }
        assert_eq!(e.get(100).unwrap().state, PortState::Server);
        assert_eq!(e.get(101).unwrap().lease_id.as_deref(), Some("a"));
        assert_eq!(e.get(105).unwrap().state, PortState::Excluded);
        assert_eq!(e.get(200), None, "an exclusion outside the range");
    }

    #[test]
    fn a_port_seen_in_use_gives_way_to_a_holder() {
        let mut e = entries();
        e.apply_scan(PortRange::new(100, 109).unwrap(), &tcp_only(&[102]), "t1");
        assert!(e.can_take(102));
        assert!(e.take(102, Holder::Lease("a"), "t2"));
        assert_eq!(e.get(102).unwrap().since, "t2".into());
    }

    #[test]
    fn only_the_holder_gives_a_port_back() {
        let mut e = entries();
        e.take(100, Holder::Server, "t");
        e.take(101, Holder::Lease("a"), "t");
        e.give_back(100, Holder::Lease("a"));
        e.give_back(101, Holder::Lease("b"));
        e.give_back(101, Holder::Server);
        e.give_back(105, Holder::Server);
        assert_eq!(e.map().len(), 3);
        e.give_back(100, Holder::Server);
        e.give_back(101, Holder::Lease("a"));
        assert_eq!(e.map().keys().copied().collect::<Vec<_>>(), [105]);
    }
}
