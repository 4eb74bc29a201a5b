//! Which leases of a loaded state file are kept: each must obey the rules a
//! new lease obeys, since the file may have been written by someone else.
//! What fails is dropped and counted by reason, never shown: its text is
//! exactly what cannot be trusted in a log line.

use crate::ports::PortRange;
use crate::ports::lease::{
    Lease, MAX_COUNT, MAX_OWNER_CHARS, MAX_TTL_SECS, is_id, is_port_list, owner_problem,
};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The configuration a loaded lease is checked against.
#[derive(Clone, Debug)]
pub struct LoadRules {
    range: PortRange,
    /// Every pool by name, `default` (the whole range) among them.
    pools: BTreeMap<String, PortRange>,
}

impl LoadRules {
    /// The rules of `range` and its named `pools`; the pool `default` is added.
    pub fn new<'a>(
        range: PortRange,
        pools: impl IntoIterator<Item = (&'a str, PortRange)>,
    ) -> LoadRules {
        let mut all: BTreeMap<String, PortRange> =
            pools.into_iter().map(|(n, r)| (n.to_string(), r)).collect();
        all.insert(crate::ports::lease::DEFAULT_POOL.to_string(), range);
        LoadRules { range, pools: all }
    }
}

/// Why a loaded lease was dropped; each dropped lease counts under its first.
/// An id obeys [`crate::ports::lease::is_id`] and is the key the lease is stored
/// under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flaw {
    Id,
    Owner,
    Name,
    PortCount,
    OutOfRange,
    UnknownPool,
    OutsidePool,
    TooLong,
    Overlap,
}

impl fmt::Display for Flaw {
    /// What is wrong, with the limits `crate::ports::lease` sets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::Id => f.write_str("malformed id"),
            Flaw::Owner => write!(
                f,
                "owner empty, unprintable or over {MAX_OWNER_CHARS} characters"
            ),
            Flaw::Name => f.write_str("name not DNS labels of a-z, 0-9 and -"),
            Flaw::PortCount => write!(f, "no ports, a port twice, or more than {MAX_COUNT} ports"),
            Flaw::OutOfRange => f.write_str("port outside the managed range"),
            Flaw::UnknownPool => f.write_str("pool not configured"),
            Flaw::OutsidePool => f.write_str("port outside its pool"),
            Flaw::TooLong => write!(f, "expiry or TTL more than {MAX_TTL_SECS} s away"),
            Flaw::Overlap => f.write_str("port in another lease too"),
        }
    }
}

/// The outcome of [`check_leases`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The leases that obey every rule, by id.
    pub kept: BTreeMap<String, Lease>,
    /// How many were dropped, by reason.
    pub dropped: BTreeMap<Flaw, usize>,
}

impl Checked {
    pub fn dropped_count(&self) -> usize {
        self.dropped.values().sum()
    }
}

impl fmt::Display for Checked {
    /// `2 dropped (1 pool not configured; 1 port in another lease too), 3 kept`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dropped (", self.dropped_count())?;
        for (i, (flaw, n)) in self.dropped.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{n} {flaw}")?;
        }
        write!(f, "), {} kept", self.kept.len())
    }
}

/// Checks every loaded lease against `rules` at `now`, keeping those that
/// pass (moved, not copied: a state may hold tens of thousands). A lease
/// sharing a port with another is dropped along with it: the file cannot
/// say which of them is the real one.
pub fn check_leases(
    loaded: BTreeMap<String, Lease>,
    rules: &LoadRules,
    now: SystemTime,
) -> Checked {
    // Checked in place: 20,000 leases are not moved to a new list.
    let mut kept = loaded;
    let mut dropped = BTreeMap::new();
    kept.retain(|key, lease| match flaw(key, lease, rules, now) {
        Some(flaw) => {
            *dropped.entry(flaw).or_insert(0) += 1;
            false
        }
        None => true,
    });
    let (mut held, mut shared_ports) = (PortSet::new(), PortSet::new());
    for &port in kept.values().flat_map(|l| &l.ports) {
        if !held.insert(port) {
            shared_ports.insert(port);
        }
    }
    let before = kept.len();
    kept.retain(|_, l| !l.ports.iter().any(|p| shared_ports.contains(*p)));
    if kept.len() < before {
        dropped.insert(Flaw::Overlap, before - kept.len());
    }
    Checked { kept, dropped }
}

/// The first rule `lease`, stored under `key`, breaks.
fn flaw(key: &str, lease: &Lease, rules: &LoadRules, now: SystemTime) -> Option<Flaw> {
    if key != lease.id || !is_id(&lease.id) {
        return Some(Flaw::Id);
    }
    if lease.owner.as_deref().and_then(owner_problem).is_some() {
        return Some(Flaw::Owner);
    }
    let name = lease.name.as_deref();
    if name.is_some_and(|n| crate::ports::names::parse_name(n).ok().as_deref() != Some(n)) {
        return Some(Flaw::Name);
    }
    ports_flaw(lease, rules).or_else(|| time_flaw(lease, now))
}

/// Every port of 1-65535 as one bit: 8 KiB, whatever the number of leases.
struct PortSet(Vec<u64>);

impl PortSet {
    fn new() -> PortSet {
        PortSet(vec![0; 1024])
    }

    /// Adds `port`; whether it was not there yet.
    fn insert(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, 1u64 << (port % 64));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port) / 64] & (1u64 << (port % 64)) != 0
    }
}

fn ports_flaw(lease: &Lease, rules: &LoadRules) -> Option<Flaw> {
    let ports = &lease.ports;
    if !is_port_list(ports) {
        return Some(Flaw::PortCount);
    }
    if !ports.iter().all(|p| rules.range.contains(*p)) {
        return Some(Flaw::OutOfRange);
    }
    let Some(pool) = rules.pools.get(&lease.pool) else {
        return Some(Flaw::UnknownPool);
    };
    (!ports.iter().all(|p| pool.contains(*p))).then_some(Flaw::OutsidePool)
}

fn time_flaw(lease: &Lease, now: SystemTime) -> Option<Flaw> {
    let longest = Duration::from_secs(MAX_TTL_SECS);
    let too_far = lease
        .expires_at
        .duration_since(now)
        .is_ok_and(|left| left > longest);
    (too_far || lease.ttl_secs > MAX_TTL_SECS).then_some(Flaw::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000)
    }

    fn rules() -> LoadRules {
        let range = PortRange::new(3000, 3099).unwrap();
        LoadRules::new(range, [("web", PortRange::new(3000, 3009).unwrap())])
    }

    fn lease(id: &str, ports: &[u16]) -> Lease {
        Lease {
            id: id.to_string(),
            ports: ports.to_vec(),
            pool: "default".to_string(),
            owner: Some("ci job 17".to_string()),
            uid: None,
            protocol: crate::ports::lease::Protocol::Both,
            pid: None,
            pid_start: None,
            created_at: now(),
            expires_at: now() + Duration::from_secs(300),
            ttl_secs: 300,
            name: None,
        }
    }

    fn check(leases: Vec<Lease>) -> Checked {
        let loaded = leases.into_iter().map(|l| (l.id.clone(), l)).collect();
        check_leases(loaded, &rules(), now())
    }

    fn dropped_for(lease: Lease) -> Vec<Flaw> {
        check(vec![lease]).dropped.into_keys().collect()
    }

    #[test]
    fn a_sound_lease_is_kept() {
        let ok = lease("0123456789abcdef", &[3050, 3051]);
        let checked = check(vec![ok.clone()]);
        assert_eq!(checked.kept.values().cloned().collect::<Vec<_>>(), vec![ok]);
        assert_eq!(checked.dropped_count(), 0);
    }

    #[test]
    fn ids_must_be_short_url_words_matching_their_key() {
        for id in ["", "a b", "a\n[ERROR] forged", "a/b", "é", &"x".repeat(65)] {
            assert_eq!(dropped_for(lease(id, &[3050])), vec![Flaw::Id], "{id:?}");
        }
        assert_eq!(dropped_for(lease(&"x".repeat(64), &[3050])), vec![]);
        let loaded = BTreeMap::from([("other".to_string(), lease("a", &[3050]))]);
        let checked = check_leases(loaded, &rules(), now());
        assert_eq!(checked.dropped, BTreeMap::from([(Flaw::Id, 1)]));
    }

    #[test]
    fn owners_must_be_printable_and_at_most_128_characters() {
        let with = |owner: &str| Lease {
            owner: Some(owner.to_string()),
            ..lease("a", &[3050])
        };
        for owner in [
            "",
            "x\n2026-01-01T00:00:00Z [ERROR] forged",
            "\u{202e}gpj",
            "a\u{200b}",
        ] {
            assert_eq!(dropped_for(with(owner)), vec![Flaw::Owner], "{owner:?}");
        }
        assert_eq!(dropped_for(with(&"é".repeat(129))), vec![Flaw::Owner]);
        assert_eq!(dropped_for(with(&"é".repeat(128))), vec![]);
        let none = Lease {
            owner: None,
            ..lease("a", &[3050])
        };
        assert_eq!(dropped_for(none), vec![]);
    }

    #[test]
    fn port_lists_obey_the_count_rules() {
        let many: Vec<u16> = (3000..3098).collect();
        assert_eq!(dropped_for(lease("a", &many)), vec![Flaw::PortCount]);
        assert_eq!(dropped_for(lease("a", &many[..65])), vec![Flaw::PortCount]);
        assert_eq!(dropped_for(lease("a", &many[..64])), vec![]);
        assert_eq!(dropped_for(lease("a", &[])), vec![Flaw::PortCount]);
        assert_eq!(
            dropped_for(lease("a", &[3050, 3050])),
            vec![Flaw::PortCount]
        );
    }

    #[test]
    fn ports_must_lie_in_the_range_and_the_pool() {
        assert_eq!(
            dropped_for(lease("a", &[3050, 3100])),
            vec![Flaw::OutOfRange]
        );
        assert_eq!(dropped_for(lease("a", &[80])), vec![Flaw::OutOfRange]);
        let in_pool = |pool: &str, ports: &[u16]| Lease {
            pool: pool.to_string(),
            ..lease("a", ports)
        };
        assert_eq!(dropped_for(in_pool("web", &[3009])), vec![]);
        assert_eq!(
            dropped_for(in_pool("web", &[3009, 3010])),
            vec![Flaw::OutsidePool]
        );
        assert_eq!(dropped_for(in_pool("db", &[3050])), vec![Flaw::UnknownPool]);
    }

    #[test]
    fn expiry_and_ttl_are_at_most_a_week_away() {
        let week = Duration::from_secs(MAX_TTL_SECS);
        let expiring = |after: Duration| Lease {
            expires_at: now() + after,
            ..lease("a", &[3050])
        };
        assert_eq!(dropped_for(expiring(week)), vec![]);
        let late = week + Duration::from_secs(1);
        assert_eq!(dropped_for(expiring(late)), vec![Flaw::TooLong]);
        let year_2099 = Duration::from_secs(4_081_000_000 - 1_790_000_000);
        assert_eq!(dropped_for(expiring(year_2099)), vec![Flaw::TooLong]);
        let past = Lease {
            expires_at: now() - week,
            ..lease("a", &[3050])
        };
        assert_eq!(
            dropped_for(past),
            vec![],
            "an ended lease is ended, not dropped"
        );
        let long_ttl = Lease {
            ttl_secs: MAX_TTL_SECS + 1,
            ..lease("a", &[3050])
        };
        assert_eq!(dropped_for(long_ttl), vec![Flaw::TooLong]);
    }

    #[test]
    fn leases_sharing_a_port_are_all_dropped() {
        let checked = check(vec![
            lease("a", &[3050, 3051]),
            lease("b", &[3051]),
            lease("c", &[3052]),
            lease("d", &[3052]),
            lease("e", &[3053]),
        ]);
        let kept: Vec<&str> = checked.kept.keys().map(String::as_str).collect();
        assert_eq!(kept, vec!["e"]);
        assert_eq!(checked.dropped, BTreeMap::from([(Flaw::Overlap, 4)]));
    }

    #[test]
    fn a_lease_dropped_for_a_flaw_takes_no_port_from_another() {
        let bad_owner = Lease {
            owner: Some("\u{7}".to_string()),
            ..lease("a", &[3050])
        };
        let checked = check(vec![bad_owner, lease("b", &[3050])]);
        assert_eq!(checked.kept.len(), 1);
        assert_eq!(checked.dropped, BTreeMap::from([(Flaw::Owner, 1)]));
    }

    #[test]
    fn each_flaw_names_the_limit_it_breaks() {
        let said = |flaw: Flaw| flaw.to_string();
        assert_eq!(
            said(Flaw::Owner),
            "owner empty, unprintable or over 128 characters"
        );
        assert_eq!(
            said(Flaw::PortCount),
            "no ports, a port twice, or more than 64 ports"
        );
        assert_eq!(said(Flaw::TooLong), "expiry or TTL more than 604800 s away");
    }

    #[test]
    fn the_summary_counts_by_reason_without_any_lease_text() {
        let checked = check(vec![
            lease("a\nforged", &[3050]),
            lease("b", &[3050, 3100]),
            lease("c", &[3051]),
            lease("d", &[3060]),
        ]);
        assert_eq!(
            checked.to_string(),
            "2 dropped (1 malformed id; 1 port outside the managed range), 2 kept"
        );
    }
}
