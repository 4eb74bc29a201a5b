//! Names on the shared state: what the router and the API read, and the
//! alias changes, made and journaled as lease changes are
//! ([`App::lease_change`]). The rules are `crate::ports::names`'s.

use super::events::Event;
use super::leases::Made;
use super::{App, Done};
use crate::ports::PortTable;
use crate::ports::names::Name;
use crate::ports::names::NameChange;
use crate::ports::principal::Principal;
use crate::ports::wire::NameView;
use crate::util::time::rfc3339;
use std::time::SystemTime;

/// A name as the API shows it, as of one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameInfo {
    pub name: String,
    pub entry: Name,
    /// Until when a retained name stays its owner's; `None` while live.
    pub retained_until: Option<SystemTime>,
}

/// How names' URLs read now: `http://NAME.D/` or `http://NAME.D:PORT/`,
/// `D` the first routes domain, `PORT` the routes port (left out when 80),
/// else the API's TCP port.
pub struct NameUrls {
    domain: String,
    port: Option<u16>,
}

impl NameUrls {
    pub fn url(&self, name: &str) -> String {
        let domain = &self.domain;
        match self.port {
            Some(80) | None => format!("http://{name}.{domain}/"),
            Some(port) => format!("http://{name}.{domain}:{port}/"),
        }
    }

    /// A name as `GET /api/v1/names` shows it.
    pub fn view(&self, info: &NameInfo) -> NameView {
        let entry = &info.entry;
        NameView {
            name: info.name.clone(),
            port: entry.port,
            uid: entry.uid,
            lease_id: entry.lease_id.clone(),
            alias: entry.alias,
            live: entry.is_live(),
            url: self.url(&info.name),
            retained_until: info.retained_until.map(rfc3339),
        }
    }
}

impl App {
    /// The `name` events of name changes, in order: each name as it now
    /// is, or gone.
    pub(super) fn name_events(&self, table: &PortTable, changes: &[NameChange]) -> Vec<Event> {
        if changes.is_empty() {
            return Vec::new();
        }
        // The state's lock is held: the port is read from the table.
        let urls = self.name_urls_with(table.server_port());
        (changes.iter())
            .map(|change| match &change.now {
                Some(entry) => {
                    let info = info(table, &change.name, entry);
                    Event::name(Some(&urls.view(&info)), &change.name)
                }
                None => Event::name(None, &change.name),
            })
            .collect()
    }

    /// How names' URLs read now.
    pub fn name_urls(&self) -> NameUrls {
        self.name_urls_with(self.summary().server_port)
    }

    /// How names' URLs read with the API on `server_port`: for callers
    /// that hold the state's lock, which [`App::summary`] may take.
    fn name_urls_with(&self, server_port: Option<u16>) -> NameUrls {
        let domain = (self.facts.routes.domains.first())
            .map_or(crate::config::names::DEFAULT_DOMAIN, String::as_str);
        let port = match self.facts.routes.port {
            Some(port) => Some(port),
            None => server_port,
        };
        NameUrls {
            domain: domain.to_string(),
            port,
        }
    }

    /// The port a live name leads to: a live lease's first port or an
    /// alias's port. `name` is lowercased already.
    pub fn name_port(&self, name: &str) -> Option<u16> {
        self.held_read().table.live_name_port(name)
    }

    /// The live names and their ports, sorted by name.
    pub fn live_names(&self) -> Vec<(String, u16)> {
        self.held_read().table.live_names()
    }

    /// How many names are live, and how many retained.
    pub fn name_counts(&self) -> (usize, usize) {
        let now = self.lease_now();
        let held = self.held_read();
        let (live, retained): (Vec<_>, Vec<_>) =
            held.table.names_at(now).partition(|(_, n)| n.is_live());
        (live.len(), retained.len())
    }

    /// Every name live or still retained, sorted by name.
    pub fn names(&self) -> Vec<NameInfo> {
        let now = self.lease_now();
        let held = self.held_read();
        let table = &held.table;
        (table.names_at(now))
            .map(|(name, entry)| info(table, name, entry))
            .collect()
    }

    /// Names `port` `name` for `who`; `done` hears of it once it is in the
    /// journal.
    pub fn set_alias(&self, name: &str, port: u16, who: Principal, done: Done<NameInfo>) {
        let name = name.to_string();
        let allowance = self.facts.rules.allowance_for(who);
        self.lease_change(
            |table, _| {
                let entry = table.set_alias(&name, port, who, allowance, self.lease_now())?;
                let out = info(table, &name, &entry);
                Ok(Made {
                    out,
                    record: None,
                    undo: Box::new(|_| {}),
                    event: None,
                })
            },
            logged(done, "alias set"),
        );
    }

    /// Removes the alias `name` (it is retained), or forgets a retained
    /// name, of `who`; `done` hears of the name as it is left (its
    /// `retained_until` unset when forgotten) once it is in the journal.
    pub fn remove_name(&self, name: &str, who: Principal, done: Done<NameInfo>) {
        let name = name.to_string();
        let operator = self.facts.rules.is_operator(who);
        self.lease_change(
            |table, _| {
                let now = self.lease_now();
                let was = table.remove_name(&name, who, operator, now)?;
                let out = match table.name_at(&name, now) {
                    Some(left) => info(table, &name, left),
                    None => NameInfo {
                        name: name.clone(),
                        entry: Name {
                            ended_at: Some(now),
                            lease_id: None,
                            ..was
                        },
                        retained_until: None,
                    },
                };
                Ok(Made {
                    out,
                    record: None,
                    undo: Box::new(|_| {}),
                    event: None,
                })
            },
            logged(done, "name removed"),
        );
    }
}

fn info(table: &crate::ports::PortTable, name: &str, entry: &Name) -> NameInfo {
    NameInfo {
        name: name.to_string(),
        entry: entry.clone(),
        retained_until: table.retained_until(entry),
    }
}

/// `done`, after a log line of the change it hears of.
fn logged(done: Done<NameInfo>, what: &'static str) -> Done<NameInfo> {
    Box::new(move |outcome| {
        if let Ok(info) = &outcome {
            log::info!(
                "{what}: {} port {} ({})",
                info.name,
                info.entry.port,
                crate::ports::principal::Principal::from_uid(info.entry.uid)
            );
        }
        done(outcome)
    })
}
