//! The port table: the managed range and the state of every port in it.
//! Pure: no sockets, no clock; time is passed in.
//!
//! Each rule of the table has one owner, the one module that can break it
//! (each says so at its top):
//! - a leased port names a live lease: `leases.rs`, which alone reaches
//!   the live leases;
//! - the server's port is never leased: `entries.rs`, which alone reaches
//!   the ports' entries;
//! - the quota: `leases.rs`, whose `grant` is the one way in for a new
//!   lease;
//! - a lease's validity: `crate::ports::lease`, which the grant asks;
//! - names (validity, ownership, retention, their quota, sticky ports,
//!   aliases): `names.rs`, which alone reaches the names.

use serde::{Deserialize, Serialize};

mod entries;
mod index;
pub mod lease;
mod leases;
pub mod names;
pub mod principal;
pub(crate) mod wire;
use entries::{Entries, Holder};
pub use index::Process;
pub use leases::Loaded;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The managed range, both ends included. `start <= end`, and port 0 is never in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// A range from `start` to `end`, refused when it is empty or starts at port 0.
    pub fn new(start: u16, end: u16) -> Result<PortRange, String> {
        if start == 0 {
            return Err("port 0 is not a valid port".to_string());
        }
        if start > end {
            return Err(format!("start {start} is above end {end}"));
        }
        Ok(PortRange { start, end })
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never true: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// What holds a port that is not free. A free port has no entry at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Bound by another process, as the last scan saw it.
    InUse,
    /// This server's own listener.
    Server,
    /// Handed to a client by a lease.
    Leased,
    /// Never handed out nor chosen by the server.
    Excluded,
}

impl PortState {
    /// The name the API and the state file use.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::InUse => "in_use",
            PortState::Server => "server",
            PortState::Leased => "leased",
            PortState::Excluded => "excluded",
        }
    }
}

/// Which protocols hold a port, or are asked for: shown as
/// `["tcp"]`, `["udp"]` or `["tcp","udp"]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Protocols {
    pub tcp: bool,
    pub udp: bool,
}

impl Protocols {
    pub const TCP: Protocols = Protocols {
        tcp: true,
        udp: false,
    };
    pub const UDP: Protocols = Protocols {
        tcp: false,
        udp: true,
    };
    pub const BOTH: Protocols = Protocols {
        tcp: true,
        udp: true,
    };

    /// Whether the two share a protocol.
    pub fn overlaps(self, other: Protocols) -> bool {
        (self.tcp && other.tcp) || (self.udp && other.udp)
    }

    pub fn union(self, other: Protocols) -> Protocols {
        Protocols {
            tcp: self.tcp || other.tcp,
            udp: self.udp || other.udp,
        }
    }

    fn names(self) -> Vec<&'static str> {
        [(self.tcp, "tcp"), (self.udp, "udp")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

impl Serialize for Protocols {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Protocols {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Protocols, D::Error> {
        let mut protocols = Protocols::default();
        for name in Vec::<String>::deserialize(d)? {
            match name.as_str() {
                "tcp" => protocols.tcp = true,
                "udp" => protocols.udp = true,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown protocol {other:?}, expected tcp or udp"
                    )));
                }
            }
        }
        Ok(protocols)
    }
}

/// A port a scan saw in use, and by which protocols.
pub type Seen = (u16, Protocols);

/// A text that many port entries hold: one copy, and in each entry a
/// pointer of 8 bytes. It reads, compares and is written as its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedText(Arc<String>);

/// Hashed as its text, so that a set of them is searched by a `&str`.
impl std::hash::Hash for SharedText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl std::borrow::Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        self
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> SharedText {
        SharedText(Arc::new(text.to_string()))
    }
}

impl fmt::Debug for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for SharedText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SharedText, D::Error> {
        String::deserialize(d).map(|text| SharedText(Arc::new(text)))
    }
}

/// One port that is not free: its state and since when (RFC 3339).
///
/// The table holds an entry for every port that is not free, 20,000 of
/// them on a busy host, so the texts are shared: the ports taken in one
/// second share one `since`, and the ports of one lease one `lease_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortEntry {
    pub state: PortState,
    pub since: SharedText,
    /// The lease holding the port, for `leased` ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<SharedText>,
    /// Which protocols hold an `in_use` port. A state file from before UDP
    /// was scanned has none: its ports were seen in TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Protocols>,
}

impl PortEntry {
    pub fn new(state: PortState, since: &str) -> PortEntry {
        PortEntry {
            state,
            since: since.into(),
            lease_id: None,
            protocols: None,
        }
    }

    /// A port the scan saw held by `protocols`.
    pub fn in_use(protocols: Protocols, since: &str) -> PortEntry {
        PortEntry {
            protocols: Some(protocols),
            ..PortEntry::new(PortState::InUse, since)
        }
    }

    /// Whether a lease of `wanted` may take this port: only an `in_use`
    /// port held by other protocols only.
    pub fn leaves_room_for(&self, wanted: Protocols) -> bool {
        self.state == PortState::InUse && !self.protocols.unwrap_or(Protocols::TCP).overlaps(wanted)
    }
}

/// How many ports of the range are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub free: usize,
    pub in_use: usize,
    pub server: usize,
    pub leased: usize,
    pub excluded: usize,
}

impl Counts {
    /// Each state's name, as the API and `/metrics` write it, with its
    /// count.
    pub fn by_state(&self) -> [(&'static str, usize); 5] {
        [
            ("free", self.free),
            ("in_use", self.in_use),
            ("server", self.server),
            ("leased", self.leased),
            ("excluded", self.excluded),
        ]
    }

    /// The counts of `range`, whose ports not free have `entries`.
    fn of<'a>(range: PortRange, entries: impl Iterator<Item = &'a PortEntry>) -> Counts {
        let mut counts = Counts::default();
        let mut taken = 0;
        for entry in entries {
            taken += 1;
            match entry.state {
                PortState::InUse => counts.in_use += 1,
                PortState::Server => counts.server += 1,
                PortState::Leased => counts.leased += 1,
                PortState::Excluded => counts.excluded += 1,
            }
        }
        counts.free = range.len() - taken;
        counts
    }
}

/// A port the server may not move to: it is not free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortTaken {
    pub port: u16,
    /// What holds it.
    pub state: PortState,
}

impl fmt::Display for PortTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (port, state) = (self.port, self.state.as_str());
        write!(f, "port {port} is not free: it is {state}")
    }
}

/// The state of every port in the range. Ports absent from `entries` are free.
#[derive(Clone, Debug, PartialEq)]
pub struct PortTable {
    range: PortRange,
    entries: Entries,
    server_port: Option<u16>,
    /// The live leases, which only `leases.rs` reaches.
    leases: leases::Leases,
    /// Named pools, `default` (the whole range) among them.
    pools: BTreeMap<String, PortRange>,
    /// Where round-robin hand-out goes on in each pool.
    cursors: BTreeMap<String, u16>,
    /// The names of leases and ports, which only `names.rs` reaches.
    names: names::Names,
}

impl PortTable {
    /// A table where every port of `range` is free but `excluded` (those
    /// inside the range), which are never handed out nor chosen by the
    /// server, excluded since `now`.
    pub fn new(range: PortRange, excluded: &[u16], now: &str) -> PortTable {
        PortTable {
            range,
            entries: Entries::excluding(range, excluded, now),
            server_port: None,
            leases: leases::Leases::default(),
            pools: BTreeMap::from([(crate::ports::lease::DEFAULT_POOL.to_string(), range)]),
            cursors: BTreeMap::new(),
            names: names::Names::default(),
        }
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    pub fn server_port(&self) -> Option<u16> {
        self.server_port
    }

    /// The ports that are not free, in ascending order.
    pub fn entries(&self) -> &BTreeMap<u16, PortEntry> {
        self.entries.map()
    }

    /// The state of `port`, `None` when it is free.
    pub fn state(&self, port: u16) -> Option<&PortEntry> {
        self.entries.get(port)
    }

    pub fn is_free(&self, port: u16) -> bool {
        self.range.contains(port) && self.entries.get(port).is_none()
    }

    pub fn counts(&self) -> Counts {
        Counts::of(self.range, self.entries.map().values())
    }

    /// The ports of each pool by state, by pool name; `default` is the
    /// whole range.
    pub fn pool_counts(&self) -> Vec<(&str, Counts)> {
        let entries = self.entries.map();
        (self.pools.iter())
            .map(|(name, &r)| {
                (
                    name.as_str(),
                    Counts::of(r, entries.range(r.start..=r.end).map(|(_, e)| e)),
                )
            })
            .collect()
    }

    /// Takes in what a scan saw in use at `now` (sorted by port): newly
    /// bound ports turn `in_use`, ports no longer seen turn free, an
    /// `in_use` port shows the protocols that hold it now, and the ports
    /// this server holds keep their state. Returns whether anything changed.
    pub fn apply_scan(&mut self, in_use: &[Seen], now: &str) -> bool {
        self.entries.apply_scan(self.range, in_use, now)
    }

    /// Records that this server now listens on `port`. The port it left
    /// turns free; the next scan says whether someone else holds it. A port
    /// of the range that is not free is refused, and nothing changes; a
    /// port outside the range (the fallback port) is recorded without an
    /// entry.
    pub fn set_server_port(&mut self, port: u16, now: &str) -> Result<(), PortTaken> {
        self.server_may_take(port)?;
        self.clear_server_port();
        if self.range.contains(port) {
            // Free, or the server's own port just given back: taken.
            self.entries.take(port, Holder::Server, now);
        }
        self.server_port = Some(port);
        Ok(())
    }

    /// Records that this server listens on no port; the port it left
    /// turns free.
    pub fn clear_server_port(&mut self) {
        if let Some(old) = self.server_port.take() {
            self.entries.give_back(old, Holder::Server);
        }
    }

    /// Whether the server may listen on `port`: a port of the range only
    /// when it is free or already the server's; any port outside it.
    pub fn server_may_take(&self, port: u16) -> Result<(), PortTaken> {
        match self.entries.get(port) {
            Some(entry)
                if !(entry.state == PortState::Server && self.server_port == Some(port)) =>
            {
                Err(PortTaken {
                    port,
                    state: entry.state,
                })
            }
            _ => Ok(()),
        }
    }

    /// The free ports in the order the server tries them at start: `preferred`
    /// first when it is free, then every other free port, lowest first.
    pub fn start_candidates(&self, preferred: Option<u16>) -> Vec<u16> {
        let preferred = preferred.filter(|p| self.is_free(*p));
        let rest = self
            .range
            .iter()
            .filter(|p| self.is_free(*p) && Some(*p) != preferred);
        preferred.into_iter().chain(rest).collect()
    }

    /// The first free port after `current`, wrapping inside the range.
    pub fn next_free_after(&self, current: u16) -> Option<u16> {
        let after = (current.saturating_add(1)..=self.range.end).filter(|p| *p > current);
        let before = self.range.start..=current.min(self.range.end);
        after
            .chain(before)
            .find(|p| *p != current && self.is_free(*p))
    }
}

/// Ports seen in TCP only, as a scan reports them: for tests.
pub fn tcp_only(ports: &[u16]) -> Vec<Seen> {
    ports.iter().map(|&p| (p, Protocols::TCP)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(start: u16, end: u16) -> PortTable {
        PortTable::new(PortRange::new(start, end).unwrap(), &[], "t")
    }

    #[test]
    fn scan_records_which_protocols_hold_a_port() {
        let mut t = table(100, 110);
        assert!(t.apply_scan(&[(101, Protocols::UDP), (102, Protocols::BOTH)], "t1"));
        assert_eq!(t.state(101).unwrap().protocols, Some(Protocols::UDP));
        assert!(t.apply_scan(&[(101, Protocols::BOTH), (102, Protocols::BOTH)], "t2"));
        assert_eq!(t.state(101).unwrap().protocols, Some(Protocols::BOTH));
        assert_eq!(t.state(101).unwrap().since, "t1".into());
        let json = serde_json::to_string(t.state(102).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"state":"in_use","since":"t1","protocols":["tcp","udp"]}"#
        );
    }

    #[test]
    fn only_an_in_use_port_of_other_protocols_leaves_room() {
        let udp = PortEntry::in_use(Protocols::UDP, "t");
        assert!(udp.leaves_room_for(Protocols::TCP));
        assert!(!udp.leaves_room_for(Protocols::UDP));
        assert!(!udp.leaves_room_for(Protocols::BOTH));
        let old = PortEntry::new(PortState::InUse, "t");
        assert!(!old.leaves_room_for(Protocols::TCP));
        assert!(old.leaves_room_for(Protocols::UDP));
        assert!(!PortEntry::new(PortState::Leased, "t").leaves_room_for(Protocols::UDP));
    }

    #[test]
    fn range_refuses_reversed_and_zero() {
        assert_eq!(
            PortRange::new(9000, 3000),
            Err("start 9000 is above end 3000".to_string())
        );
        assert!(PortRange::new(0, 10).is_err());
        assert_eq!(PortRange::new(5, 5).unwrap().len(), 1);
        assert_eq!(PortRange::new(3000, 9000).unwrap().len(), 6001);
    }

    #[test]
    fn scan_marks_new_ports_and_frees_gone_ones() {
        let mut t = table(100, 110);
        assert!(t.apply_scan(&tcp_only(&[99, 101, 105, 111]), "t1"));
        assert_eq!(
            t.entries().keys().copied().collect::<Vec<_>>(),
            vec![101, 105]
        );
        assert_eq!(t.state(101).unwrap().since, "t1".into());
        assert!(!t.apply_scan(&tcp_only(&[101, 105]), "t2"));
        assert_eq!(t.state(101).unwrap().since, "t1".into());
        assert!(t.apply_scan(&tcp_only(&[105]), "t3"));
        assert!(t.is_free(101));
        assert_eq!(t.counts().in_use, 1);
        assert_eq!(t.counts().free, 10);
    }

    #[test]
    fn scan_keeps_server_port() {
        let mut t = table(100, 110);
        t.set_server_port(103, "t0").unwrap();
        assert!(!t.apply_scan(&tcp_only(&[103]), "t1"));
        assert!(!t.apply_scan(&tcp_only(&[]), "t2"));
        assert_eq!(t.state(103).unwrap().state, PortState::Server);
        assert_eq!(
            t.counts(),
            Counts {
                free: 10,
                in_use: 0,
                server: 1,
                leased: 0,
                excluded: 0,
            }
        );
    }

    #[test]
    fn moving_server_port_frees_old_one() {
        let mut t = table(100, 110);
        t.set_server_port(103, "t0").unwrap();
        t.set_server_port(104, "t1").unwrap();
        assert!(t.is_free(103));
        assert_eq!(t.server_port(), Some(104));
        t.clear_server_port();
        assert!(t.is_free(104));
        assert_eq!(t.server_port(), None);
    }

    #[test]
    fn the_server_takes_no_port_that_is_not_free() {
        let mut t = PortTable::new(PortRange::new(100, 110).unwrap(), &[105], "t0");
        t.apply_scan(&tcp_only(&[101]), "t0");
        t.set_server_port(103, "t0").unwrap();
        let before = t.clone();
        let refused = |port, state| Err(PortTaken { port, state });
        assert_eq!(t.set_server_port(101, "t1"), refused(101, PortState::InUse));
        assert_eq!(
            t.set_server_port(105, "t1"),
            refused(105, PortState::Excluded)
        );
        assert_eq!(t, before, "nothing changes on a refusal");
        assert_eq!(
            t.set_server_port(105, "t1").unwrap_err().to_string(),
            "port 105 is not free: it is excluded"
        );
        assert_eq!(t.set_server_port(103, "t1"), Ok(()), "its own port");
        assert_eq!(t.state(103).unwrap().since, "t1".into());
    }

    #[test]
    fn exclusions_come_with_the_table_and_stay() {
        let mut t = PortTable::new(PortRange::new(100, 110).unwrap(), &[99, 100, 110], "t0");
        assert_eq!(t.counts().excluded, 2);
        assert!(!t.apply_scan(&tcp_only(&[100]), "t1"));
        assert!(!t.apply_scan(&tcp_only(&[]), "t2"));
        assert_eq!(
            t.state(100),
            Some(&PortEntry::new(PortState::Excluded, "t0"))
        );
        assert_eq!(t.start_candidates(Some(100)).first(), Some(&101));
        assert!(t.set_server_port(110, "t3").is_err());
    }

    #[test]
    fn server_port_outside_range_is_not_in_table() {
        let mut t = table(100, 110);
        t.set_server_port(3000, "t0").unwrap();
        assert_eq!(t.server_port(), Some(3000));
        assert!(t.entries().is_empty());
    }

    #[test]
    fn start_candidates_prefer_last_port_when_free() {
        let mut t = table(100, 104);
        t.apply_scan(&tcp_only(&[101]), "t");
        assert_eq!(t.start_candidates(Some(103)), vec![103, 100, 102, 104]);
        assert_eq!(t.start_candidates(Some(101)), vec![100, 102, 103, 104]);
        assert_eq!(t.start_candidates(Some(200)), vec![100, 102, 103, 104]);
        assert_eq!(t.start_candidates(None), vec![100, 102, 103, 104]);
    }

    #[test]
    fn next_free_port_wraps_inside_range() {
        let mut t = table(100, 104);
        t.set_server_port(103, "t").unwrap();
        assert_eq!(t.next_free_after(103), Some(104));
        t.apply_scan(&tcp_only(&[104]), "t");
        assert_eq!(t.next_free_after(103), Some(100));
        t.apply_scan(&tcp_only(&[100, 101, 102, 104]), "t");
        assert_eq!(t.next_free_after(103), None);
    }

    #[test]
    fn next_free_port_at_range_end_and_outside() {
        let t = table(65530, 65535);
        assert_eq!(t.next_free_after(65535), Some(65530));
        assert_eq!(t.next_free_after(3000), Some(65530));
    }
}
