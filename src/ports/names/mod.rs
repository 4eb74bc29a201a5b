//! Names: a stable name for a lease's first port, or for any port (an
//! alias), so that a dev server keeps its URL. Pure: time is passed in.
//!
//! Owns the rules of names: a name's validity ([`parse_name`]); one live
//! lease per name; a name belongs to the principal that last held it, for
//! the retention after its last lease ended (operators may take a retained
//! name); the names quota (live and retained names and aliases together,
//! operators not counted); sticky ports (a lease for a name is offered the
//! name's last port first); aliases. The names are private to this module:
//! the port table's grant and release call it, and no other module
//! changes a name.
//!
//! An alias names a port dynport did not lease to another principal. When
//! that port is later leased to another principal, the alias ends as if
//! removed (it is retained for its owner, live no more): a name never leads
//! to another principal's server.

use super::PortTable;
use crate::ports::lease::{Lease, LeaseError};
use crate::ports::principal::{Principal, Refusal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest label of a name.
pub const MAX_LABEL_CHARS: usize = 63;

/// A name as the table keeps it, and as the state file and the journal
/// write it under its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// Its owner: a local uid, `None` for remote callers.
    pub uid: Option<u32>,
    /// The port it names now, or named last.
    pub port: u16,
    /// Whether it was given by `PUT /api/v1/names/NAME` rather than a lease.
    #[serde(default)]
    pub alias: bool,
    /// The live lease it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// When its last lease ended or its alias was removed: set, it is
    /// retained for its owner; unset, it is live.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_time"
    )]
    pub ended_at: Option<SystemTime>,
}

impl Name {
    /// Whether it names a port now.
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }

    fn owner(&self) -> Principal {
        Principal::from_uid(self.uid)
    }
}

/// What a principal may hold, as [`crate::ports::principal::Rules`] says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    /// The most live leased ports; `None` for no limit.
    pub ports: Option<usize>,
    /// The most names, live and retained; `None` for no limit.
    pub names: Option<usize>,
    /// An operator takes retained names of others.
    pub operator: bool,
}

impl From<Option<usize>> for Allowance {
    /// A quota of ports alone.
    fn from(ports: Option<usize>) -> Allowance {
        Allowance {
            ports,
            ..Allowance::default()
        }
    }
}

/// A name's change: for the journal, the name as it is `now` (`None`:
/// gone); to undo it, as it `was`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameChange {
    pub name: String,
    pub was: Option<Name>,
    pub now: Option<Name>,
}

/// The names, by name, and the changes not yet taken for the journal.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Names {
    by_name: BTreeMap<String, Name>,
    /// How long a name stays its owner's after its last lease ended.
    retention: Duration,
    changed: Vec<NameChange>,
}

/// `name` lowercased, when it is one or more DNS labels joined by dots,
/// each 1 to 63 of `a-z`, `0-9` and `-`, not starting nor ending with `-`,
/// 1 to 200 characters in all; else what is wrong, naming `name`.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let n = raw.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&n) {
        return Err(format!(
            "name: must be 1 to {MAX_NAME_CHARS} characters long, got {n}"
        ));
    }
    let name = raw.to_ascii_lowercase();
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "name: {:?} is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
            c
        ));
    }
    for label in name.split('.') {
        label_problem(label)?;
    }
    Ok(name)
}

fn label_problem(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("name: has an empty label (two dots, or a dot at an end)".to_string());
    }
    if label.len() > MAX_LABEL_CHARS {
        return Err(format!(
            "name: label {label} is {} characters long; a label has at most {MAX_LABEL_CHARS}",
            label.len()
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("name: label {label} starts or ends with -"));
    }
    Ok(())
}

/// `name web belongs to uid 1002`, or `... to remote callers`.
fn belongs(name: &str, owner: Principal) -> LeaseError {
    LeaseError::Unavailable(format!("name {name} belongs to {owner}"))
}

impl PortTable {
    /// How long a name stays its owner's after its last lease ended.
    pub fn set_name_retention(&mut self, retention: Duration) {
        self.names.retention = retention;
    }

    /// Every name that is live or still retained at `now`, by name.
    pub fn names_at(&self, now: SystemTime) -> impl Iterator<Item = (&str, &Name)> {
        (self.names.by_name.iter())
            .filter(move |(_, n)| !self.is_past(n, now))
            .map(|(k, n)| (k.as_str(), n))
    }

    /// The name `name`, live or still retained at `now`.
    pub fn name_at(&self, name: &str, now: SystemTime) -> Option<&Name> {
        self.names
            .by_name
            .get(name)
            .filter(|n| !self.is_past(n, now))
    }

    /// The port a live name leads to.
    pub fn live_name_port(&self, name: &str) -> Option<u16> {
        (self.names.by_name.get(name))
            .filter(|n| n.is_live())
            .map(|n| n.port)
    }

    /// The live names and their ports, by name.
    pub fn live_names(&self) -> Vec<(String, u16)> {
        (self.names.by_name.iter())
            .filter(|(_, n)| n.is_live())
            .map(|(k, n)| (k.clone(), n.port))
            .collect()
    }

    /// Until when a retained name stays its owner's; `None` while live.
    pub fn retained_until(&self, name: &Name) -> Option<SystemTime> {
        name.ended_at.map(|t| t + self.names.retention)
    }

    /// The name changes made since the last call, in order, for the journal.
    pub fn take_name_changes(&mut self) -> Vec<NameChange> {
        std::mem::take(&mut self.names.changed)
    }

    /// Puts names back as they were before changes whose save failed,
    /// the last change first.
    pub fn undo_name_changes(&mut self, changes: Vec<NameChange>) {
        for change in changes.into_iter().rev() {
            match change.was {
                Some(was) => self.names.by_name.insert(change.name, was),
                None => self.names.by_name.remove(&change.name),
            };
        }
        self.names.changed.clear();
    }

    /// The names a starting server loaded, after its leases: a name whose
    /// lease is gone is retained from `now`, and a live lease's name is
    /// its own whatever the file said.
    pub fn insert_loaded_names(&mut self, names: BTreeMap<String, Name>, now: SystemTime) {
        for (key, mut name) in names {
            if parse_name(&key).ok().as_deref() != Some(key.as_str()) {
                continue;
            }
            let leased = name.lease_id.as_deref().and_then(|id| self.lease(id));
            if name.lease_id.is_some() && leased.is_none_or(|l| l.name.as_deref() != Some(&key)) {
                name.lease_id = None;
                name.ended_at.get_or_insert(now);
            }
            self.names.by_name.insert(key, name);
        }
        let named: Vec<Lease> = self
            .leases()
            .filter(|l| l.name.is_some())
            .cloned()
            .collect();
        for lease in named {
            self.name_lease(&lease);
        }
        self.names.changed.clear();
    }

    fn is_past(&self, name: &Name, now: SystemTime) -> bool {
        self.retained_until(name).is_some_and(|until| until <= now)
    }

    fn put_name(&mut self, name: &str, to: Option<Name>) {
        let was = match &to {
            Some(n) => self.names.by_name.insert(name.to_string(), n.clone()),
            None => self.names.by_name.remove(name),
        };
        self.names.changed.push(NameChange {
            name: name.to_string(),
            was,
            now: to,
        });
    }

    /// Whether `who` may take `name` for a lease or an alias at `now`:
    /// the name's last port when it had one (for a sticky port), or the
    /// refusal.
    pub(super) fn claim_name(
        &self,
        name: &str,
        who: Principal,
        allowance: Allowance,
        now: SystemTime,
    ) -> Result<Option<u16>, LeaseError> {
        let Some(found) = self.name_at(name, now) else {
            self.within_name_quota(who, allowance, now)?;
            return Ok(None);
        };
        if found.owner() != who && (found.is_live() || !allowance.operator) {
            return Err(belongs(name, found.owner()));
        }
        if let Some(id) = found.lease_id.as_deref().filter(|_| found.is_live()) {
            return Err(LeaseError::Unavailable(format!(
                "name {name} is held by lease {id}"
            )));
        }
        // The owner's own name, or an operator's take of a retained one
        // (operators are not counted): no quota to check.
        Ok(Some(found.port))
    }

    /// Whether `who` may hold one more name.
    fn within_name_quota(
        &self,
        who: Principal,
        allowance: Allowance,
        now: SystemTime,
    ) -> Result<(), LeaseError> {
        let Some(max) = allowance.names.filter(|_| !allowance.operator) else {
            return Ok(());
        };
        let held = (self.names_at(now))
            .filter(|(_, n)| n.owner() == who)
            .count();
        if held < max {
            return Ok(());
        }
        Err(LeaseError::Refused(Refusal::Quota(format!(
            "quota: {who} may hold at most {max} names, live and retained \
             (--max-names-per-uid), and holds {held}"
        ))))
    }

    /// Gives a just granted lease its name, which [`PortTable::claim_name`]
    /// allowed, and ends the aliases of other principals on its ports.
    pub(super) fn name_lease(&mut self, lease: &Lease) {
        self.end_aliases_on(lease);
        let (Some(name), Some(&port)) = (lease.name.as_deref(), lease.ports.first()) else {
            return;
        };
        let named = Name {
            uid: lease.uid,
            port,
            alias: false,
            lease_id: Some(lease.id.clone()),
            ended_at: None,
        };
        self.put_name(name, Some(named));
    }

    /// The live aliases of other principals on `lease`'s ports end: a name
    /// never leads to another principal's server.
    fn end_aliases_on(&mut self, lease: &Lease) {
        let ended: Vec<String> = (self.names.by_name.iter())
            .filter(|(_, n)| n.alias && n.is_live() && n.uid != lease.uid)
            .filter(|(_, n)| lease.ports.contains(&n.port))
            .map(|(k, _)| k.clone())
            .collect();
        for name in ended {
            self.retain_name(&name, lease.created_at);
        }
    }

    /// The name of a lease that ended at `now` is retained by its owner.
    pub(super) fn lease_ended(&mut self, lease: &Lease, now: SystemTime) {
        let Some(name) = lease.name.as_deref() else {
            return;
        };
        let held = self.names.by_name.get(name);
        if held.is_some_and(|n| n.lease_id.as_deref() == Some(lease.id.as_str())) {
            self.retain_name(name, now);
        }
    }

    /// `name` stops naming a port from `now`, and stays its owner's for
    /// the retention; with no retention it is gone at once.
    fn retain_name(&mut self, name: &str, now: SystemTime) {
        let Some(mut kept) = self.names.by_name.get(name).cloned() else {
            return;
        };
        kept.lease_id = None;
        kept.ended_at = Some(now);
        let past = self.is_past(&kept, now);
        self.put_name(name, (!past).then_some(kept));
    }

    /// Names `port` `name` for `who`: a port 1-65535 not leased to another
    /// principal. Returns the alias.
    pub fn set_alias(
        &mut self,
        name: &str,
        port: u16,
        who: Principal,
        allowance: Allowance,
        now: SystemTime,
    ) -> Result<Name, LeaseError> {
        match self.name_at(name, now) {
            Some(found) if found.alias && found.is_live() && found.owner() == who => {}
            _ => {
                self.claim_name(name, who, allowance, now)?;
            }
        }
        if let Some(lease) = self.lease_of_port(port)
            && Principal::from_uid(lease.uid) != who
        {
            let owner = Principal::from_uid(lease.uid);
            return Err(LeaseError::Unavailable(format!(
                "port {port} is leased to {owner}; a port leased to another principal cannot be aliased"
            )));
        }
        let alias = Name {
            uid: who.uid(),
            port,
            alias: true,
            lease_id: None,
            ended_at: None,
        };
        self.put_name(name, Some(alias.clone()));
        Ok(alias)
    }

    /// Removes the alias `name` of `who` (an operator: of anyone): it is
    /// retained as a lease's name would be. A retained name of `who` is
    /// forgotten at once. Returns the name as it was.
    pub fn remove_name(
        &mut self,
        name: &str,
        who: Principal,
        operator: bool,
        now: SystemTime,
    ) -> Result<Name, LeaseError> {
        let found = (self.name_at(name, now).cloned())
            .ok_or_else(|| LeaseError::UnknownName(name.to_string()))?;
        if found.owner() != who && !operator {
            return Err(belongs(name, found.owner()));
        }
        if let Some(id) = found.lease_id.as_deref() {
            return Err(LeaseError::Unavailable(format!(
                "name {name} is held by lease {id}; release the lease to end it"
            )));
        }
        match found.is_live() {
            true => self.retain_name(name, now),
            false => self.put_name(name, None),
        }
        Ok(found)
    }

    /// Forgets the retained names whose retention is over at `now`.
    pub fn expire_names(&mut self, now: SystemTime) -> usize {
        let past: Vec<String> = (self.names.by_name.iter())
            .filter(|(_, n)| self.is_past(n, now))
            .map(|(k, _)| k.clone())
            .collect();
        for name in &past {
            self.put_name(name, None);
        }
        past.len()
    }

    /// The names as the state file writes them.
    pub fn name_map(&self) -> &BTreeMap<String, Name> {
        &self.names.by_name
    }
}

/// Serde for an optional time written as RFC 3339.
mod optional_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::util::time::rfc3339_serde::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            crate::util::time::rfc3339_serde::from_text(&t)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests;
