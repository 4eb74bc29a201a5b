//! Leases on the shared state: granting, releasing, renewing and ending
//! them. Each change is made and queued for the journal under one write
//! lock ([`App::enqueue`]), and answered once it is durable.

use super::commit::Waiter;
use super::events::Event;
use super::{App, AppError, Done, Held, Undo, can_bind_everywhere};
use crate::app::metrics::Metrics;
use crate::ports::lease::{EndReason, Lease, LeaseError, LeaseRequest};
use crate::ports::names::NameChange;
use crate::ports::principal::Principal;
use crate::ports::{PortTable, Process};
use crate::state::journal::Record;
use crate::util::time::{now_rfc3339, rfc3339};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A change made in memory: what the journal gets (besides the names it
/// changed) and how to put it back.
pub(super) struct Made<T> {
    pub(super) out: T,
    pub(super) record: Option<Record>,
    pub(super) undo: Undo,
    /// What the event stream is told of it, once it is durable.
    pub(super) event: Option<Event>,
}

impl App {
    /// Ends leases whose TTL passed or whose process exited, logging each,
    /// and queues their ends for the journal.
    pub(super) fn end_due_leases(&self) {
        self.end_due_leases_after(&[]);
    }

    /// Whether some lease process is polled: the refresh thread then calls
    /// [`App::poll_lease_processes`] once every [`super::POLL_EVERY`].
    pub fn polls_lease_processes(&self) -> bool {
        self.held_read().owners.polling()
    }

    /// Reads the lease processes no pidfd watches from `/proc`, without
    /// holding a lock meanwhile, and ends the leases of those that exited.
    pub fn poll_lease_processes(&self) {
        let (polled, untied) = {
            let held = self.held_read();
            held.owners.polled(&|pid| held.table.ties_pid(pid))
        };
        let gone: Vec<Process> = (polled.into_iter())
            .filter(|&(pid, start)| crate::sys::process::has_exited(pid, start) == Some(true))
            .collect();
        if !gone.is_empty() || untied {
            self.end_due_leases_after(&gone);
        }
    }

    /// [`App::end_due_leases`], the processes a poll found `gone` counted
    /// as exited.
    fn end_due_leases_after(&self, gone: &[Process]) {
        let mut held = self.held_write();
        held.owners.polled_exits(gone);
        let seq = self.bump(&mut held);
        let (ends, events) = self.end_due(&mut held, seq);
        let Held { table, owners, .. } = &mut *held;
        owners.promote(&|pid| table.ties_pid(pid));
        if !ends.is_empty() {
            self.enqueue(held, Waiter::new(seq, ends, None, None).telling(events));
        }
    }

    /// Ends the due leases of `held` as part of change `seq`; returns the
    /// records of their ends, and their events.
    fn end_due(&self, held: &mut Held, seq: u64) -> (Vec<Record>, Vec<Event>) {
        let (table, owners) = (&mut held.table, &mut held.owners);
        owners.collect_exits();
        let now = self.lease_now();
        let ended = table.end_due(now, &owners.checker());
        owners.forget_ended(&|pid| table.ties_pid(pid));
        table.expire_names(now);
        let mut records = Vec::with_capacity(ended.len());
        let mut events = Vec::with_capacity(ended.len());
        for (lease, reason) in ended {
            let counter = match reason {
                EndReason::OwnerExited => &self.metrics.owner_exits,
                _ => &self.metrics.expiries,
            };
            Metrics::add(counter, 1);
            log_end(&lease, reason);
            events.push(Event::ended(&lease, reason));
            records.push(Record::End { seq, id: lease.id });
        }
        let names = table.take_name_changes();
        records.extend(name_records(seq, &names));
        events.extend(self.name_events(table, &names));
        (records, events)
    }

    /// Ends due leases, so that none is counted against a pool nor renewed
    /// or released, then makes one lease change and queues it, all under
    /// one write lock. `done` hears the outcome once it is durable; when
    /// the change is refused, it hears at once and the ends are still
    /// queued.
    pub(super) fn lease_change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut PortTable, u64) -> Result<Made<T>, LeaseError>,
        done: Done<T>,
    ) {
        let mut held = self.held_write();
        let seq = self.bump(&mut held);
        let (mut records, mut events) = self.end_due(&mut held, seq);
        match change(&mut held.table, seq) {
            Ok(made) => {
                if let Some(Record::Put { lease, .. }) = &made.record
                    && let Some(pid) = lease.pid
                {
                    let Held { table, owners, .. } = &mut *held;
                    if owners.watch((pid, lease.pid_start), &|pid| table.ties_pid(pid)) {
                        self.wake_snapshots();
                    }
                }
                records.extend(made.record);
                events.extend(made.event);
                let names = held.table.take_name_changes();
                records.extend(name_records(seq, &names));
                events.extend(self.name_events(&held.table, &names));
                let undo = made.undo;
                let undo: Undo = Box::new(move |t| {
                    undo(t);
                    t.undo_name_changes(names);
                });
                let out = made.out;
                let tell: Done<()> = Box::new(move |outcome| done(outcome.map(|()| out)));
                let waiter = Waiter::new(seq, records, Some(undo), Some(tell));
                self.enqueue(held, waiter.telling(events));
            }
            Err(e) => {
                match records.is_empty() {
                    true => drop(held),
                    false => {
                        let waiter = Waiter::new(seq, records, None, None);
                        self.enqueue(held, waiter.telling(events));
                    }
                }
                done(Err(AppError::Lease(e)));
            }
        }
    }

    /// Grants a lease to the principal `req.uid` names, within its quota;
    /// `done` hears of it once it is in the journal.
    pub fn grant(&self, req: &LeaseRequest, done: Done<Lease>) {
        let id = new_lease_id();
        let who = Principal::from_uid(req.uid);
        let metrics = Arc::clone(&self.metrics);
        let granted: Done<Lease> = Box::new(move |outcome| {
            if let Ok(lease) = &outcome {
                Metrics::add(&metrics.grants, 1);
                log::info!(
                    "lease {} granted: ports {:?} in pool {}",
                    lease.id.escape_debug(),
                    lease.ports,
                    lease.pool.escape_debug()
                );
            }
            done(outcome);
        });
        self.lease_change(
            |table, seq| {
                let lease = self.grant_in(table, req, id, who)?;
                let cursor = req
                    .port
                    .is_none()
                    .then(|| table.cursors().get(&lease.pool).copied())
                    .flatten();
                let undo_id = lease.id.clone();
                self.expires_at(lease.expires_at);
                Ok(Made {
                    record: Some(Record::Put {
                        seq,
                        lease: lease.clone(),
                        cursor,
                    }),
                    undo: Box::new(move |t| t.ungrant(&undo_id)),
                    event: Some(Event::lease(&lease)),
                    out: lease,
                })
            },
            granted,
        );
    }

    /// Grants `req` in `table`, within the quota of `who`.
    fn grant_in(
        &self,
        table: &mut PortTable,
        req: &LeaseRequest,
        id: String,
        who: Principal,
    ) -> Result<Lease, LeaseError> {
        let allowance = self.facts.rules.allowance_for(who);
        let wanted = req.protocol.protocols();
        let mut can_bind = |port| can_bind_everywhere(port, wanted);
        table.grant(req, id, self.lease_now(), allowance, &mut can_bind)
    }

    /// Ends a lease, when `who` may; `done` hears of it once its end is in
    /// the journal.
    pub fn release(&self, id: &str, who: Principal, done: Done<Lease>) {
        let metrics = Arc::clone(&self.metrics);
        let released: Done<Lease> = Box::new(move |outcome| {
            if let Ok(lease) = &outcome {
                Metrics::add(&metrics.releases, 1);
                log::info!(
                    "lease {} ended (released): ports {:?} freed",
                    lease.id.escape_debug(),
                    lease.ports
                );
            }
            done(outcome);
        });
        self.lease_change(
            |table, seq| {
                self.may_manage(table, id, who)?;
                let lease = table.release(id, self.lease_now())?;
                let back = lease.clone();
                Ok(Made {
                    record: Some(Record::End {
                        seq,
                        id: lease.id.clone(),
                    }),
                    undo: Box::new(move |t| {
                        let _ = t.insert_lease(back, &now_rfc3339());
                    }),
                    event: Some(Event::ended(&lease, EndReason::Released)),
                    out: lease,
                })
            },
            released,
        );
    }

    /// Gives a live lease a new life of `ttl`, or of the life it was last
    /// given when `None`; `done` hears of it once it is in the journal.
    pub fn renew(&self, id: &str, ttl: Option<Duration>, who: Principal, done: Done<Lease>) {
        let renewed: Done<Lease> = Box::new(move |outcome| {
            if let Ok(lease) = &outcome {
                log::debug!(
                    "lease {} renewed until {}",
                    lease.id.escape_debug(),
                    rfc3339(lease.expires_at)
                );
            }
            done(outcome);
        });
        self.lease_change(
            |table, seq| {
                self.may_manage(table, id, who)?;
                let before = table.lease(id).cloned();
                let lease = table.renew(id, ttl, self.lease_now())?;
                self.expires_at(lease.expires_at);
                Ok(Made {
                    record: Some(Record::Put {
                        seq,
                        lease: lease.clone(),
                        cursor: None,
                    }),
                    undo: Box::new(move |t| before.into_iter().for_each(|l| t.restore(l))),
                    event: Some(Event::lease(&lease)),
                    out: lease,
                })
            },
            renewed,
        );
    }

    /// Whether `who` may renew or release lease `id`; an unknown id is
    /// left for the table to refuse.
    fn may_manage(&self, table: &PortTable, id: &str, who: Principal) -> Result<(), LeaseError> {
        match table.lease(id) {
            Some(lease) => (self.facts.rules)
                .may_manage(who, id, lease.uid)
                .map_err(LeaseError::Refused),
            None => Ok(()),
        }
    }
}

/// The journal records of name changes, in order.
pub(super) fn name_records(seq: u64, changes: &[NameChange]) -> Vec<Record> {
    (changes.iter())
        .map(|c| Record::Name {
            seq,
            name: c.name.clone(),
            entry: c.now.clone(),
        })
        .collect()
}

/// The log line of a lease's end, the same whether the refresh thread ends
/// it or a server finds it over at start.
pub fn log_end(lease: &Lease, reason: EndReason) {
    log::info!(
        "lease {} ended ({}): ports {:?} freed",
        lease.id.escape_debug(),
        reason.as_str(),
        lease.ports
    );
}

/// A lease id: 16 hex digits, unique within this host's history in practice.
fn new_lease_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:016x}",
        RandomState::new().hash_one((n, nanos, std::process::id()))
    )
}
