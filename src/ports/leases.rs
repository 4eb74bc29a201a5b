//! The port table's lease operations: granting, renewing, releasing and
//! ending leases. The allocation rules are pure: time is passed in, and
//! the bind check and process liveness are injected.
//!
//! Owns the rule: a leased port names a live lease. The live leases are
//! private to this module, and only it takes ports for a lease or gives
//! them back (through `entries.rs`): a lease and its ports go in and out
//! together.
//!
//! Owns the rule: the quota. [`PortTable::grant`], the one way a new lease
//! comes in, refuses a principal that would hold more leased ports than its
//! quota, counted by `index.rs` in step with the leases.

use super::entries::Holder;
use super::{PortRange, PortTable, Process, Protocols, SharedText};
use crate::ports::lease::{EndReason, Lease, LeaseError, LeaseRequest};
use crate::ports::names::Allowance;
use crate::ports::principal::{Principal, Refusal};
use crate::util::time::rfc3339;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The live leases, by id, and what lease changes look up in them. The
/// key, the index and the lease's ports share one copy of the id.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Leases {
    by_id: BTreeMap<SharedText, Lease>,
    index: super::index::LeaseIndex,
}

/// What became of the leases put back at start.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    /// The ids of the leases that keep only some of their ports.
    pub partial: Vec<String>,
    /// The leases none of whose ports can be held now.
    pub dropped: Vec<Lease>,
}

impl PortTable {
    /// Adds a named pool; the caller has checked it lies in the range and
    /// overlaps no other.
    pub fn add_pool(&mut self, name: &str, range: PortRange) {
        self.pools.insert(name.to_string(), range);
    }

    /// The pools by name, `default` (the whole range) among them.
    pub fn pools(&self) -> &BTreeMap<String, PortRange> {
        &self.pools
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.by_id.values()
    }

    /// How many leases are live.
    pub fn lease_count(&self) -> usize {
        self.leases.by_id.len()
    }

    pub fn lease(&self, id: &str) -> Option<&Lease> {
        self.leases.by_id.get(id)
    }

    /// The live leased ports of the principal with `uid` (`None`: remote).
    pub fn ports_held_by(&self, uid: Option<u32>) -> usize {
        self.leases.index.held_by(uid)
    }

    /// The leased ports of every principal holding some (`None`: remote).
    pub fn ports_held(&self) -> impl Iterator<Item = (Option<u32>, usize)> + '_ {
        self.leases.index.held()
    }

    /// The leased ports of all principals.
    pub fn leased_ports(&self) -> usize {
        self.ports_held().map(|(_, n)| n).sum()
    }

    /// Every process some lease is tied to, each once.
    pub fn tied_processes(&self) -> impl Iterator<Item = Process> + '_ {
        self.leases.index.tied().map(|(process, _)| process)
    }

    /// Whether some lease is tied to a process with `pid`.
    pub fn ties_pid(&self, pid: u32) -> bool {
        self.leases.index.ties_pid(pid)
    }

    /// The soonest end of a lease's TTL.
    pub fn next_lease_end(&self) -> Option<SystemTime> {
        self.leases.index.next_end()
    }

    /// The lease holding `port`, if any.
    pub fn lease_of_port(&self, port: u16) -> Option<&Lease> {
        let id = self.entries.get(port)?.lease_id.as_deref()?;
        self.leases.by_id.get(id)
    }

    /// Where round-robin hand-out goes on in each pool.
    pub fn cursors(&self) -> &std::collections::BTreeMap<String, u16> {
        &self.cursors
    }

    pub fn set_cursor(&mut self, pool: &str, port: u16) {
        if self.pools.get(pool).is_some_and(|r| r.contains(port)) {
            self.cursors.insert(pool.to_string(), port);
        }
    }

    /// Grants a lease: all the ports or none. `quota` is the most live
    /// leased ports the principal of `req.uid` may hold (`None`: no limit);
    /// `can_bind` is the bind check made at grant time, and a port that
    /// fails it is skipped. A request that breaks the rules of a lease is
    /// refused ([`LeaseRequest::check`]).
    pub fn grant(
        &mut self,
        req: &LeaseRequest,
        id: String,
        now: SystemTime,
        allowance: impl Into<Allowance>,
        can_bind: &mut dyn FnMut(u16) -> bool,
    ) -> Result<Lease, LeaseError> {
        let allowance = allowance.into();
        req.check().map_err(LeaseError::Invalid)?;
        self.within_quota(req, allowance.ports)?;
        let pool = *self
            .pools
            .get(&req.pool)
            .ok_or_else(|| LeaseError::UnknownPool(req.pool.clone()))?;
        let who = Principal::from_uid(req.uid);
        let last_port = match req.name.as_deref() {
            Some(name) => self.claim_name(name, who, allowance, now)?,
            None => None,
        };
        let wanted = req.protocol.protocols();
        // A name's last port first, when it is free in the pool.
        let sticky = last_port
            .filter(|_| req.port.is_none())
            .filter(|&p| pool.contains(p) && self.takeable(p, wanted) && can_bind(p));
        let ports = match (req.port, sticky) {
            (Some(port), _) => vec![self.reservable(port, pool, &req.pool, wanted, can_bind)?],
            (None, Some(first)) => {
                let rest = req.count.saturating_sub(1);
                let mut skip_first = |p| p != first && can_bind(p);
                let mut ports = vec![first];
                if rest > 0 {
                    ports.extend(self.round_robin(
                        &req.pool,
                        pool,
                        rest,
                        wanted,
                        &mut skip_first,
                    )?);
                }
                ports
            }
            (None, None) => self.round_robin(&req.pool, pool, req.count, wanted, can_bind)?,
        };
        let lease = Lease {
            id,
            ports,
            pool: req.pool.clone(),
            owner: req.owner.clone(),
            uid: req.uid,
            protocol: req.protocol,
            pid: req.pid,
            pid_start: req.pid_start,
            created_at: now,
            expires_at: now + req.ttl,
            ttl_secs: req.ttl.as_secs(),
            name: req.name.clone(),
        };
        // The sticky port alone does not move the round-robin cursor.
        if req.port.is_none() && (sticky.is_none() || lease.ports.len() > 1) {
            let last = *lease.ports.last().unwrap_or(&pool.start);
            let next = if last >= pool.end {
                pool.start
            } else {
                last + 1
            };
            self.cursors.insert(req.pool.clone(), next);
        }
        // Every port was just found free, so the lease is kept whole.
        let _ = self.insert_lease(lease.clone(), &rfc3339(now));
        self.name_lease(&lease);
        Ok(lease)
    }

    /// Whether the principal of `req` may lease the ports it asks for on
    /// top of those it holds.
    fn within_quota(&self, req: &LeaseRequest, quota: Option<usize>) -> Result<(), LeaseError> {
        let Some(max) = quota else {
            return Ok(());
        };
        let held = self.leases.index.held_by(req.uid);
        let asking = if req.port.is_some() { 1 } else { req.count };
        if held + asking <= max {
            return Ok(());
        }
        let who = Principal::from_uid(req.uid);
        Err(LeaseError::Refused(Refusal::Quota(format!(
            "quota: {who} may hold at most {max} leased ports (--max-ports-per-uid) \
             and holds {held}; {asking} more would exceed it"
        ))))
    }

    fn reservable(
        &self,
        port: u16,
        pool: PortRange,
        pool_name: &str,
        wanted: Protocols,
        can_bind: &mut dyn FnMut(u16) -> bool,
    ) -> Result<u16, LeaseError> {
        if !pool.contains(port) {
            return Err(LeaseError::Invalid(format!(
                "port: {port} is outside the pool {pool_name} ({pool})"
            )));
        }
        if let Some(entry) = self.entries.get(port)
            && !entry.leaves_room_for(wanted)
        {
            return Err(LeaseError::Unavailable(format!(
                "port {port} is not free: it is {}",
                entry.state.as_str()
            )));
        }
        if !can_bind(port) {
            return Err(LeaseError::Unavailable(format!(
                "port {port} could not be bound"
            )));
        }
        Ok(port)
    }

    fn round_robin(
        &self,
        pool_name: &str,
        pool: PortRange,
        count: usize,
        wanted: Protocols,
        can_bind: &mut dyn FnMut(u16) -> bool,
    ) -> Result<Vec<u16>, LeaseError> {
        let cursor = self
            .cursors
            .get(pool_name)
            .copied()
            .filter(|c| pool.contains(*c))
            .unwrap_or(pool.start);
        let order = (cursor..=pool.end).chain(pool.start..cursor);
        let ports: Vec<u16> = order
            .filter(|p| self.takeable(*p, wanted) && can_bind(*p))
            .take(count)
            .collect();
        if ports.len() < count {
            return Err(LeaseError::Unavailable(format!(
                "pool {pool_name} has {} free ports, {count} asked for",
                ports.len()
            )));
        }
        Ok(ports)
    }

    /// Whether a lease of `wanted` may take `port`, as far as the table
    /// knows: free, or in use by other protocols only.
    fn takeable(&self, port: u16, wanted: Protocols) -> bool {
        self.entries
            .get(port)
            .is_none_or(|entry| entry.leaves_room_for(wanted))
    }

    /// Puts a lease into the table: at grant, and when the state file is
    /// loaded at start. Ports another lease or the server holds are dropped
    /// from it; a lease left with no port is not kept, and is handed back.
    /// Returns how many ports it keeps.
    pub fn insert_lease(&mut self, mut lease: Lease, since: &str) -> Result<usize, Box<Lease>> {
        if !self.hold_ports(&mut lease, since) {
            return Err(Box::new(lease));
        }
        if let Some(old) = self.leases.by_id.get(lease.id.as_str()) {
            self.leases.index.remove(old);
        }
        let id = self.shared_id(&lease);
        self.leases.index.add(&lease, &id);
        let kept = lease.ports.len();
        self.leases.by_id.insert(id, lease);
        Ok(kept)
    }

    /// Puts back the leases a starting server loaded, as
    /// [`PortTable::insert_lease`] would one by one; into a table that
    /// holds no lease yet, the table's map is built from the loaded one,
    /// in order, so that 20,000 leases are not searched for in a tree.
    pub fn insert_loaded(&mut self, leases: BTreeMap<String, Lease>, since: &str) -> Loaded {
        let mut loaded = Loaded::default();
        if !self.leases.by_id.is_empty() {
            for lease in leases.into_values() {
                let (id, had) = (lease.id.clone(), lease.ports.len());
                match self.insert_lease(lease, since) {
                    Ok(kept) if kept == had => {}
                    Ok(_) => loaded.partial.push(id),
                    Err(lease) => loaded.dropped.push(*lease),
                }
            }
            return loaded;
        }
        // In order already: the map is built without a search, from a
        // list made once.
        let mut by_id = Vec::with_capacity(leases.len());
        for (key, mut lease) in leases {
            let had = lease.ports.len();
            if key != lease.id || !self.hold_ports(&mut lease, since) {
                loaded.dropped.push(lease);
                continue;
            }
            if lease.ports.len() != had {
                loaded.partial.push(lease.id.clone());
            }
            let id = self.shared_id(&lease);
            self.leases.index.add(&lease, &id);
            by_id.push((id, lease));
        }
        self.leases.by_id = BTreeMap::from_iter(by_id);
        loaded
    }

    /// The id of `lease`, whose ports it holds, as its ports share it.
    fn shared_id(&self, lease: &Lease) -> SharedText {
        if let Some(id) = self.entries.last_lease_id(&lease.id) {
            return id;
        }
        let held = lease.ports.first().and_then(|&port| self.entries.get(port));
        match held.and_then(|entry| entry.lease_id.as_ref()) {
            Some(id) if **id == *lease.id => id.clone(),
            _ => lease.id.as_str().into(),
        }
    }

    /// Marks the ports of `lease` it can hold leased by it, after dropping
    /// from it those outside the range or held by another lease, the server
    /// or an exclusion; false, changing nothing, when none is left.
    fn hold_ports(&mut self, lease: &mut Lease, since: &str) -> bool {
        let holdable = |p: &u16| self.range.contains(*p) && self.entries.can_take(*p);
        // Most often every port is holdable: one look at each then.
        if !lease.ports.iter().all(holdable) {
            if !lease.ports.iter().any(holdable) {
                return false;
            }
            lease.ports.retain(holdable);
        }
        for &port in &lease.ports {
            // Holdable, as just seen.
            self.entries.take(port, Holder::Lease(&lease.id), since);
        }
        true
    }

    /// Ends a lease at `now` and frees its ports; its name is retained.
    pub fn release(&mut self, id: &str, now: SystemTime) -> Result<Lease, LeaseError> {
        let lease = self.take_out(id)?;
        self.lease_ended(&lease, now);
        Ok(lease)
    }

    /// Takes a just granted lease back out, as if never granted, after a
    /// save failed; its name is left for
    /// [`PortTable::undo_name_changes`] to put back.
    pub fn ungrant(&mut self, id: &str) {
        let _ = self.take_out(id);
    }

    /// Takes a lease out of the table and frees its ports.
    fn take_out(&mut self, id: &str) -> Result<Lease, LeaseError> {
        let lease = self
            .leases
            .by_id
            .remove(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.to_string()))?;
        self.leases.index.remove(&lease);
        for &port in &lease.ports {
            self.entries.give_back(port, Holder::Lease(id));
        }
        Ok(lease)
    }

    /// Gives a live lease a new life of `ttl` from `now`, or of the life it
    /// was last given when `ttl` is `None`. A lease whose TTL has passed is
    /// ended, not renewed; a life a lease may not have is refused.
    pub fn renew(
        &mut self,
        id: &str,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> Result<Lease, LeaseError> {
        if let Some(problem) = ttl.and_then(crate::ports::lease::ttl_problem) {
            return Err(LeaseError::Invalid(problem));
        }
        let lease = self
            .leases
            .by_id
            .get_mut(id)
            .filter(|l| l.expires_at > now)
            .ok_or_else(|| LeaseError::UnknownLease(id.to_string()))?;
        let shared = (self.leases.index.remove(lease)).unwrap_or_else(|| id.into());
        let ttl = ttl.unwrap_or(Duration::from_secs(lease.ttl_secs));
        lease.expires_at = now + ttl;
        lease.ttl_secs = ttl.as_secs();
        self.leases.index.add(lease, &shared);
        Ok(lease.clone())
    }

    /// Puts back a lease as it was before a renewal whose save failed.
    pub fn restore(&mut self, lease: Lease) {
        if let Some(slot) = self.leases.by_id.get_mut(lease.id.as_str()) {
            let shared =
                (self.leases.index.remove(slot)).unwrap_or_else(|| lease.id.as_str().into());
            self.leases.index.add(&lease, &shared);
            *slot = lease;
        }
    }

    /// Ends every lease whose time has passed or whose process has exited.
    /// `alive(pid, start)` says whether that process still runs; it is
    /// asked once per process, however many leases are tied to it, and
    /// leases that are neither due nor tied are not visited at all.
    pub fn end_due(
        &mut self,
        now: SystemTime,
        alive: &dyn Fn(u32, Option<u64>) -> bool,
    ) -> Vec<(Lease, EndReason)> {
        let mut due: BTreeMap<String, EndReason> = (self.leases.index.ended_by(now))
            .map(|id| (id.to_string(), EndReason::Expired))
            .collect();
        for ((pid, start), ids) in self.leases.index.tied() {
            if !alive(pid, start) {
                for id in ids {
                    due.entry(id.to_string()).or_insert(EndReason::OwnerExited);
                }
            }
        }
        due.into_iter()
            .filter_map(|(id, reason)| self.release(&id, now).ok().map(|l| (l, reason)))
            .collect()
    }

    /// Moves every lease's times with a step of the wall clock, so that each
    /// keeps its remaining life. Returns how many leases moved.
    pub fn follow_wall_step(&mut self, step: crate::util::time::Step) -> usize {
        for lease in self.leases.by_id.values_mut() {
            lease.created_at = step.apply(lease.created_at);
            lease.expires_at = step.apply(lease.expires_at);
        }
        self.leases.index = super::index::LeaseIndex::default();
        for (id, lease) in &self.leases.by_id {
            self.leases.index.add(lease, id);
        }
        self.leases.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::lease::{DEFAULT_POOL, Lease, LeaseError, LeaseRequest, Protocol};
    use crate::ports::{PortState, PortTaken};
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
    }

    fn table() -> PortTable {
        excluding(&[])
    }

    fn excluding(ports: &[u16]) -> PortTable {
        let mut t = PortTable::new(PortRange::new(100, 109).unwrap(), ports, "t");
        t.add_pool("web", PortRange::new(104, 106).unwrap());
        t
    }

    fn ask(count: usize) -> LeaseRequest {
        LeaseRequest {
            count,
            port: None,
            pool: DEFAULT_POOL.to_string(),
            ttl: Duration::from_secs(60),
            owner: None,
            uid: None,
            protocol: Protocol::Both,
            pid: None,
            pid_start: None,
            name: None,
        }
    }

    fn grant(t: &mut PortTable, req: &LeaseRequest, id: &str) -> Result<Vec<u16>, LeaseError> {
        t.grant(req, id.to_string(), at(0), None, &mut |_| true)
            .map(|l| l.ports)
    }

    #[test]
    fn round_robin_hands_a_released_port_out_last() {
        let mut t = table();
        assert_eq!(grant(&mut t, &ask(2), "a"), Ok(vec![100, 101]));
        assert_eq!(grant(&mut t, &ask(1), "b"), Ok(vec![102]));
        t.release("a", at(0)).unwrap();
        assert_eq!(
            grant(&mut t, &ask(7), "c"),
            Ok(vec![103, 104, 105, 106, 107, 108, 109])
        );
        assert_eq!(grant(&mut t, &ask(2), "d"), Ok(vec![100, 101]));
        assert_eq!(t.counts().leased, 10);
    }

    #[test]
    fn multi_port_lease_is_all_or_nothing() {
        let mut t = table();
        t.apply_scan(&crate::ports::tcp_only(&[101, 103]), "t");
        t.set_server_port(100, "t").unwrap();
        let before = t.clone();
        let err = grant(&mut t, &ask(8), "a").unwrap_err();
        assert_eq!(
            err,
            LeaseError::Unavailable("pool default has 7 free ports, 8 asked for".into())
        );
        assert_eq!(t, before);
        assert_eq!(
            grant(&mut t, &ask(7), "a"),
            Ok(vec![102, 104, 105, 106, 107, 108, 109])
        );
    }

    #[test]
    fn leases_skip_excluded_in_use_and_unbindable_ports() {
        let mut t = excluding(&[100, 200]);
        t.apply_scan(&crate::ports::tcp_only(&[101]), "t");
        let mut refused = |p: u16| p != 102;
        let lease = t
            .grant(&ask(2), "a".into(), at(0), None, &mut refused)
            .unwrap();
        assert_eq!(lease.ports, vec![103, 104]);
        assert_eq!(t.counts().excluded, 1);
        assert_eq!(t.state(102), None);
    }

    #[test]
    fn a_port_held_in_udp_is_leased_for_tcp_only() {
        let mut t = table();
        t.apply_scan(&[(100, Protocols::UDP), (101, Protocols::TCP)], "t");
        let as_ = |protocol| LeaseRequest { protocol, ..ask(1) };
        let udp = t.grant(&as_(Protocol::Udp), "u".into(), at(0), None, &mut |_| true);
        assert_eq!(
            udp.unwrap().ports,
            vec![101],
            "a TCP-held port is free in UDP"
        );
        let both = t.grant(&as_(Protocol::Both), "b".into(), at(0), None, &mut |_| true);
        assert_eq!(both.unwrap().ports, vec![102]);
        let tcp = t.grant(&as_(Protocol::Tcp), "t".into(), at(0), None, &mut |_| true);
        assert_eq!(
            tcp.unwrap().ports,
            vec![103],
            "round robin goes on from 102"
        );
        let exact = LeaseRequest {
            port: Some(100),
            ..as_(Protocol::Tcp)
        };
        let lease = t
            .grant(&exact, "x".into(), at(0), None, &mut |_| true)
            .unwrap();
        assert_eq!((lease.ports, lease.protocol), (vec![100], Protocol::Tcp));
        let again = LeaseRequest {
            port: Some(101),
            ..as_(Protocol::Both)
        };
        assert!(matches!(
            t.grant(&again, "y".into(), at(0), None, &mut |_| true),
            Err(LeaseError::Unavailable(_))
        ));
    }

    #[test]
    fn pool_leases_stay_inside_their_pool() {
        let mut t = table();
        let web = LeaseRequest {
            pool: "web".into(),
            ..ask(3)
        };
        assert_eq!(grant(&mut t, &web, "a"), Ok(vec![104, 105, 106]));
        let err = grant(&mut t, &LeaseRequest { count: 1, ..web }, "b").unwrap_err();
        assert_eq!(
            err,
            LeaseError::Unavailable("pool web has 0 free ports, 1 asked for".into())
        );
        let nope = LeaseRequest {
            pool: "db".into(),
            ..ask(1)
        };
        assert_eq!(
            grant(&mut t, &nope, "c"),
            Err(LeaseError::UnknownPool("db".into()))
        );
    }

    #[test]
    fn reservation_takes_exactly_that_port() {
        let mut t = table();
        t.apply_scan(&crate::ports::tcp_only(&[107]), "t");
        let exact = |port| LeaseRequest {
            port: Some(port),
            ..ask(1)
        };
        assert_eq!(grant(&mut t, &exact(108), "a"), Ok(vec![108]));
        let err = grant(&mut t, &exact(108), "b").unwrap_err();
        assert_eq!(
            err,
            LeaseError::Unavailable("port 108 is not free: it is leased".into())
        );
        let err = grant(&mut t, &exact(107), "b").unwrap_err();
        assert_eq!(
            err,
            LeaseError::Unavailable("port 107 is not free: it is in_use".into())
        );
        let web = LeaseRequest {
            pool: "web".into(),
            ..exact(100)
        };
        assert!(matches!(
            grant(&mut t, &web, "b"),
            Err(LeaseError::Invalid(_))
        ));
        let mut refused = |_| false;
        let err = t
            .grant(&exact(109), "b".into(), at(0), None, &mut refused)
            .unwrap_err();
        assert_eq!(
            err,
            LeaseError::Unavailable("port 109 could not be bound".into())
        );
        assert_eq!(grant(&mut t, &ask(1), "c"), Ok(vec![100]));
    }

    #[test]
    fn ttl_and_dead_owner_end_leases() {
        let mut t = table();
        grant(&mut t, &ask(1), "short").unwrap();
        let owned = LeaseRequest {
            pid: Some(77),
            pid_start: Some(5),
            ttl: Duration::from_secs(600),
            ..ask(1)
        };
        grant(&mut t, &owned, "owned").unwrap();
        let alive = |pid: u32, start: Option<u64>| pid == 77 && start == Some(5);
        assert!(t.end_due(at(59), &alive).is_empty());
        let ended = t.end_due(at(60), &alive);
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].0.id.as_str(), ended[0].1),
            ("short", EndReason::Expired)
        );
        assert!(t.is_free(100));
        let reused_pid = |pid: u32, start: Option<u64>| pid == 77 && start == Some(6);
        let ended = t.end_due(at(61), &reused_pid);
        assert_eq!(
            (ended[0].0.id.as_str(), ended[0].1),
            ("owned", EndReason::OwnerExited)
        );
        assert_eq!(t.counts().leased, 0);
    }

    #[test]
    fn each_process_is_asked_about_once_however_many_leases_it_holds() {
        let mut t = table();
        let owned = LeaseRequest {
            pid: Some(77),
            pid_start: Some(5),
            ..ask(1)
        };
        for id in ["a", "b", "c"] {
            grant(&mut t, &owned, id).unwrap();
        }
        grant(&mut t, &ask(1), "plain").unwrap();
        let asked = std::cell::Cell::new(0);
        let alive = |_: u32, _: Option<u64>| {
            asked.set(asked.get() + 1);
            true
        };
        assert!(t.end_due(at(30), &alive).is_empty());
        assert_eq!(asked.get(), 1);
        assert!(t.ties_pid(77) && !t.ties_pid(78));
        let ended = t.end_due(at(30), &|_, _| false);
        let ids: Vec<&str> = ended.iter().map(|(l, _)| l.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(!t.ties_pid(77));
        assert_eq!(t.tied_processes().count(), 0);
    }

    #[test]
    fn ports_held_by_each_principal_follow_grants_and_ends() {
        let mut t = table();
        let alice = LeaseRequest {
            uid: Some(1000),
            ..ask(3)
        };
        grant(&mut t, &alice, "a").unwrap();
        grant(&mut t, &ask(2), "r").unwrap();
        assert_eq!((t.ports_held_by(Some(1000)), t.ports_held_by(None)), (3, 2));
        t.release("a", at(0)).unwrap();
        assert_eq!((t.ports_held_by(Some(1000)), t.ports_held_by(None)), (0, 2));
        assert_eq!(t.end_due(at(60), &|_, _| true).len(), 1);
        assert_eq!(t.ports_held_by(None), 0);
    }

    #[test]
    fn a_lease_ends_at_its_latest_time_after_renewal_restore_and_clock_steps() {
        let mut t = table();
        let before = t
            .grant(&ask(1), "a".into(), at(0), None, &mut |_| true)
            .unwrap();
        t.renew("a", Some(Duration::from_secs(300)), at(50))
            .unwrap();
        assert_eq!(t.next_lease_end(), Some(at(350)));
        assert!(t.end_due(at(100), &|_, _| true).is_empty());
        t.restore(before);
        assert_eq!(t.next_lease_end(), Some(at(60)));
        let step = crate::util::time::Step::Forward(Duration::from_secs(40));
        t.follow_wall_step(step);
        assert!(t.end_due(at(99), &|_, _| true).is_empty());
        assert_eq!(t.end_due(at(100), &|_, _| true).len(), 1);
        assert_eq!(t.next_lease_end(), None);
    }

    #[test]
    fn renew_moves_expiry_from_now() {
        let mut t = table();
        grant(&mut t, &ask(1), "a").unwrap();
        let renewed = t
            .renew("a", Some(Duration::from_secs(300)), at(50))
            .unwrap();
        assert_eq!((renewed.expires_at, renewed.ttl_secs), (at(350), 300));
        let renewed = t.renew("a", None, at(100)).unwrap();
        assert_eq!(renewed.expires_at, at(400));
        assert!(t.end_due(at(399), &|_, _| true).is_empty());
        let unknown = LeaseError::UnknownLease("zz".into());
        assert_eq!(t.renew("zz", None, at(0)), Err(unknown));
    }

    #[test]
    fn an_expired_lease_is_not_renewed_nor_live() {
        let mut t = table();
        let lease = t
            .grant(&ask(1), "a".into(), at(0), None, &mut |_| true)
            .unwrap();
        assert!(lease.is_live(at(59), &|_, _| true));
        assert!(!lease.is_live(at(60), &|_, _| true));
        let gone = LeaseError::UnknownLease("a".into());
        assert_eq!(
            t.renew("a", Some(Duration::from_secs(60)), at(60)),
            Err(gone)
        );
    }

    #[test]
    fn scan_keeps_leased_and_excluded_ports() {
        let mut t = excluding(&[109]);
        grant(&mut t, &ask(1), "a").unwrap();
        assert!(!t.apply_scan(&crate::ports::tcp_only(&[100, 109]), "t2"));
        assert!(!t.apply_scan(&crate::ports::tcp_only(&[]), "t3"));
        assert_eq!(t.state(100).unwrap().state, PortState::Leased);
        assert_eq!(t.state(100).unwrap().lease_id.as_deref(), Some("a"));
        assert_eq!(t.state(109).unwrap().state, PortState::Excluded);
    }

    #[test]
    fn loaded_leases_are_put_back_as_one_by_one() {
        let lease = |id: &str, ports: &[u16]| Lease {
            ports: ports.to_vec(),
            id: id.to_string(),
            ..table()
                .grant(&ask(1), "x".into(), at(0), None, &mut |_| true)
                .unwrap()
        };
        let leases = || {
            let all = [
                lease("a", &[100, 101]),
                lease("b", &[101, 102]),
                lease("c", &[101]),
            ];
            all.into_iter()
                .map(|l| (l.id.clone(), l))
                .collect::<BTreeMap<_, _>>()
        };
        let mut at_once = table();
        at_once.set_server_port(109, "t").unwrap();
        let mut one_by_one = at_once.clone();
        let loaded = at_once.insert_loaded(leases(), "t");
        assert_eq!(loaded.partial, ["b"]);
        assert_eq!(loaded.dropped, [lease("c", &[101])]);
        for l in leases().into_values() {
            let _ = one_by_one.insert_lease(l, "t");
        }
        assert_eq!(at_once, one_by_one);
        assert_eq!(at_once.lease("b").unwrap().ports, [102]);
        assert_eq!(at_once.next_lease_end(), Some(at(60)));
        // Into a table that holds leases already, one by one.
        let mut more = at_once.clone();
        let d = BTreeMap::from([("d".to_string(), lease("d", &[102, 103]))]);
        let loaded = more.insert_loaded(d, "t");
        assert_eq!(
            (loaded.partial, more.ports_held_by(None)),
            (vec!["d".to_string()], 4)
        );
    }

    #[test]
    fn restored_lease_drops_ports_now_held_elsewhere() {
        let mut t = table();
        t.set_server_port(101, "t").unwrap();
        let lease = t
            .grant(&ask(1), "a".into(), at(0), None, &mut |_| true)
            .unwrap();
        let mut restored = lease.clone();
        restored.id = "b".into();
        restored.ports = vec![100, 101, 102];
        assert_eq!(t.insert_lease(restored, "t"), Ok(1));
        assert_eq!(t.lease("b").unwrap().ports, vec![102]);
        let mut empty = lease;
        empty.id = "c".into();
        empty.ports = vec![101];
        assert!(t.insert_lease(empty, "t").is_err());
        assert!(t.lease("c").is_none());
    }

    #[test]
    fn a_lease_saved_before_principals_loads_as_a_remote_lease() {
        let saved = r#"{"id":"00000000000000aa","ports":[4100],"pool":"default",
            "owner":"old","pid":null,"created_at":"2026-11-25T19:00:00Z",
            "expires_at":"2026-11-25T19:05:00Z","ttl_secs":300}"#;
        let lease: Lease = serde_json::from_str(saved).unwrap();
        assert_eq!(lease.uid, None);
        let written = serde_json::to_value(&lease).unwrap();
        assert_eq!(written["uid"], serde_json::Value::Null);
    }

    /// Every `leased` entry names a live lease that holds its port, and
    /// every port of a live lease is `leased` by it.
    fn assert_leased_ports_name_live_leases(t: &PortTable) {
        for (port, entry) in t.entries() {
            let id = entry.lease_id.as_deref();
            assert_eq!(
                entry.state == PortState::Leased,
                id.is_some(),
                "port {port}"
            );
            if let Some(id) = id {
                let lease = t
                    .lease(id)
                    .unwrap_or_else(|| panic!("{port}: no lease {id}"));
                assert!(lease.ports.contains(port), "port {port} not in lease {id}");
            }
        }
        for lease in t.leases() {
            for port in &lease.ports {
                let entry = t.state(*port).unwrap();
                assert_eq!(entry.lease_id.as_deref(), Some(lease.id.as_str()));
            }
        }
        let held: usize = t.leases().map(|l| l.ports.len()).sum();
        assert_eq!(t.counts().leased, held);
    }

    #[test]
    fn a_leased_port_names_a_live_lease_through_every_change() {
        let mut t = excluding(&[109]);
        t.set_server_port(108, "t").unwrap();
        grant(&mut t, &ask(3), "a").unwrap();
        grant(&mut t, &ask(2), "b").unwrap();
        assert_leased_ports_name_live_leases(&t);
        t.release("a", at(0)).unwrap();
        assert_leased_ports_name_live_leases(&t);
        let mut back = t.lease("b").unwrap().clone();
        back.id = "c".into();
        back.ports = vec![100, 103, 105, 108, 109];
        assert_eq!(
            t.insert_lease(back, "t"),
            Ok(2),
            "b's, the server's and the excluded port stay"
        );
        assert_leased_ports_name_live_leases(&t);
        t.apply_scan(&crate::ports::tcp_only(&[100, 103, 106]), "t");
        assert_leased_ports_name_live_leases(&t);
        assert_eq!(t.end_due(at(60), &|_, _| true).len(), 2);
        assert_leased_ports_name_live_leases(&t);
        assert_eq!(t.counts().leased, 0);
    }

    #[test]
    fn the_server_s_port_is_never_leased_nor_the_server_put_on_a_leased_port() {
        let mut t = table();
        t.set_server_port(100, "t").unwrap();
        let exact = |port| LeaseRequest {
            port: Some(port),
            ..ask(1)
        };
        assert_eq!(
            grant(&mut t, &exact(100), "a"),
            Err(LeaseError::Unavailable(
                "port 100 is not free: it is server".into()
            ))
        );
        assert_eq!(grant(&mut t, &ask(1), "a"), Ok(vec![101]));
        let mut onto_server = t.lease("a").unwrap().clone();
        onto_server.id = "b".into();
        onto_server.ports = vec![100];
        assert!(t.insert_lease(onto_server, "t").is_err());
        let before = t.clone();
        assert_eq!(
            t.set_server_port(101, "t2"),
            Err(PortTaken {
                port: 101,
                state: PortState::Leased
            })
        );
        assert_eq!(t, before);
        assert_eq!(t.server_port(), Some(100));
        t.release("a", at(0)).unwrap();
        assert_eq!(t.set_server_port(101, "t2"), Ok(()));
        assert!(t.is_free(100));
    }

    #[test]
    fn the_table_refuses_a_grant_over_the_quota() {
        let mut t = table();
        let alice = |count| LeaseRequest {
            uid: Some(1000),
            ..ask(count)
        };
        let grant_within = |t: &mut PortTable, req: &LeaseRequest, id: &str, quota| {
            (t.grant(req, id.to_string(), at(0), quota, &mut |_| true)).map(|l| l.ports)
        };
        assert_eq!(
            grant_within(&mut t, &alice(2), "a", Some(3)),
            Ok(vec![100, 101])
        );
        assert_eq!(
            grant_within(&mut t, &alice(2), "b", Some(3)),
            Err(LeaseError::Refused(Refusal::Quota(
                "quota: uid 1000 may hold at most 3 leased ports (--max-ports-per-uid) \
                 and holds 2; 2 more would exceed it"
                    .into()
            )))
        );
        let exact = LeaseRequest {
            port: Some(105),
            count: 5,
            ..alice(1)
        };
        assert_eq!(
            grant_within(&mut t, &exact, "b", Some(3)),
            Ok(vec![105]),
            "one port"
        );
        assert!(matches!(
            grant_within(&mut t, &alice(1), "c", Some(3)),
            Err(LeaseError::Refused(Refusal::Quota(_)))
        ));
        let remote = grant_within(&mut t, &ask(3), "r", Some(3));
        assert_eq!(remote, Ok(vec![102, 103, 104]), "another principal's count");
        let over = grant_within(&mut t, &ask(1), "s", Some(3)).unwrap_err();
        assert!(matches!(&over, LeaseError::Refused(Refusal::Quota(m))
            if m.starts_with("quota: remote callers may hold at most 3")));
        assert_eq!(
            grant_within(&mut t, &alice(4), "d", None),
            Ok(vec![106, 107, 108, 109])
        );
        assert_eq!((t.ports_held_by(Some(1000)), t.lease_count()), (7, 4));
    }

    #[test]
    fn the_table_refuses_a_request_that_breaks_the_rules_of_a_lease() {
        let mut t = table();
        let cases = [
            (ask(0), "count: a lease holds 1 to 64 ports, 0 asked for"),
            (ask(65), "count: a lease holds 1 to 64 ports, 65 asked for"),
            (
                LeaseRequest {
                    ttl: Duration::from_millis(500),
                    ..ask(1)
                },
                "ttl_secs: a lease lives 1 to 604800 s, 0 asked for",
            ),
            (
                LeaseRequest {
                    ttl: Duration::from_secs(604_801),
                    ..ask(1)
                },
                "ttl_secs: a lease lives 1 to 604800 s, 604801 asked for",
            ),
            (
                LeaseRequest {
                    owner: Some("two\nlines".into()),
                    ..ask(1)
                },
                "owner: contains a control character (U+000A)",
            ),
            (
                LeaseRequest {
                    owner: Some(String::new()),
                    ..ask(1)
                },
                "owner: must be 1 to 128 characters long, got 0",
            ),
        ];
        for (req, message) in cases {
            let refused = Err(LeaseError::Invalid(message.to_string()));
            assert_eq!(grant(&mut t, &req, "a"), refused, "{req:?}");
        }
        assert_eq!(t, table(), "nothing was granted");
        grant(&mut t, &ask(1), "a").unwrap();
        let week = Duration::from_secs(604_800);
        assert!(t.renew("a", Some(week), at(1)).is_ok());
        assert_eq!(
            t.renew("a", Some(week + Duration::from_secs(1)), at(1)),
            Err(LeaseError::Invalid(
                "ttl_secs: a lease lives 1 to 604800 s, 604801 asked for".into()
            ))
        );
    }
}
