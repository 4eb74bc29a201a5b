//! Leases on the shared state: granting, releasing, renewing and ending
//! them, and the commit queue that makes concurrent lease changes durable
//! together (group commit).

use super::{App, Done, Undo, can_bind_everywhere, storage_error};
use crate::error::ApiError;
use crate::gather::Gather;
use crate::lease::{EndReason, Lease, LeaseError, LeaseRequest};
use crate::metrics::{Denial, Metrics};
use crate::ports::PortTable;
use crate::principal::{Principal, Refusal};
use crate::time::{now_rfc3339, rfc3339};
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A change waiting in the commit queue to be made durable.
pub struct Waiter {
    seq: u64,
    undo: Undo,
    done: Done<()>,
}

impl App {
    /// Ends leases whose TTL passed or whose process exited, logging each.
    /// Returns how many ended; the caller makes that durable.
    pub(super) fn end_due_leases(&self) -> usize {
        let (ended, _) = self.change(|held| {
            let alive = crate::process::alive_checker();
            held.table.end_due(self.lease_now(), &alive)
        });
        for (lease, reason) in &ended {
            let counter = match reason {
                EndReason::OwnerExited => &self.metrics.owner_exits,
                _ => &self.metrics.expiries,
            };
            Metrics::add(counter, 1);
            log::info!(
                "lease {} ended ({}): ports {:?} freed",
                lease.id.escape_debug(),
                reason.as_str(),
                lease.ports
            );
        }
        ended.len()
    }

    /// Ends due leases, so that none is counted against a pool nor renewed
    /// or released, then makes one lease change in memory. When the change
    /// is refused, the ends are still written.
    fn lease_change<T>(
        &self,
        f: impl FnOnce(&mut PortTable) -> Result<T, LeaseError>,
    ) -> Result<(T, u64), LeaseError> {
        let ended = self.end_due_leases();
        let (out, seq) = self.change(|held| f(&mut held.table));
        if out.is_err() && ended > 0 {
            let _ = self.save_through(&mut self.disk(), seq);
        }
        out.map(|t| (t, seq))
    }

    /// Opens the commit queue: from now on a lease change does not hold its
    /// worker while it is saved, and whoever reads the queue (the refresh
    /// thread) saves it with [`App::commit_queued`]. Changes that queue up
    /// while one save runs all go into the next, so the more clients change
    /// at once, the more changes each write carries.
    pub fn open_commit_queue(&self) -> Receiver<Waiter> {
        let (queue, waiting) = crossbeam_channel::unbounded();
        // Set once; a second call gets a queue nobody writes to.
        let _ = self.commits.set(queue);
        waiting
    }

    /// Saves `first` and every change queued behind it in one write, after
    /// waiting briefly for the changes `gather` expects (see
    /// [`crate::gather`]), then tells `gather` how the write went.
    pub fn commit_queued(&self, first: Waiter, queue: &Receiver<Waiter>, gather: &mut Gather) {
        let mut batch = vec![first];
        loop {
            batch.extend(queue.try_iter());
            if gather.ready(batch.len(), Instant::now()) {
                break;
            }
            match queue.recv_deadline(gather.until()) {
                Ok(waiter) => batch.push(waiter),
                Err(_) => break,
            }
        }
        let answered = batch.len();
        let started = Instant::now();
        let outcomes = self.save_batch(batch);
        // Measured before the answers go out: a client answered below may
        // be back in the queue before this thread looks again.
        *gather = Gather::wrote(answered, queue.len(), started, Instant::now());
        for (tell, result) in outcomes {
            tell(result);
        }
    }

    /// Saves once for every change in `batch`; when the save fails, every
    /// change in it that no earlier save carried is undone. Returns whom to
    /// tell what.
    fn save_batch(&self, batch: Vec<Waiter>) -> Vec<(Done<()>, Result<(), ApiError>)> {
        let mut durable = self.disk();
        let newest = batch.iter().map(|w| w.seq).max().unwrap_or(0);
        let outcome = self.save_through(&mut durable, newest);
        let mut done = Vec::with_capacity(batch.len());
        match outcome {
            Ok(()) => done.extend(batch.into_iter().map(|w| (w.done, Ok(())))),
            Err(e) => {
                let mut held = self.held();
                for waiter in batch.into_iter().rev() {
                    if waiter.seq <= *durable {
                        done.push((waiter.done, Ok(())));
                    } else {
                        (waiter.undo)(&mut held.table);
                        done.push((waiter.done, Err(storage_error(&e))));
                    }
                }
                held.seq += 1;
            }
        }
        drop(durable);
        done
    }

    /// Makes change `seq` durable: through the commit queue when it is
    /// open, else right here. `done` hears the outcome either way.
    fn commit(&self, seq: u64, undo: Undo, done: Done<()>) {
        let waiter = Waiter { seq, undo, done };
        let waiter = match self.commits.get() {
            Some(queue) => match queue.send(waiter) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => waiter,
        };
        (waiter.done)(self.flush(waiter.seq, waiter.undo));
    }

    /// Grants a lease to the principal `req.uid` names, within its quota;
    /// `done` hears of it once it is in the state file.
    pub fn grant(&self, req: &LeaseRequest, done: Done<Lease>) {
        let id = new_lease_id();
        let who = Principal::from_uid(req.uid);
        let granted = self.lease_change(|table| {
            let held = table.ports_held_by(req.uid);
            let asking = if req.port.is_some() { 1 } else { req.count };
            self.facts
                .rules
                .within_quota(who, held, asking)
                .map_err(LeaseError::Refused)?;
            let wanted = req.protocol.protocols();
            let mut can_bind = |port| can_bind_everywhere(port, wanted);
            table.grant(req, id, self.lease_now(), &mut can_bind)
        });
        let (lease, seq) = match granted {
            Ok(granted) => granted,
            Err(e) => {
                self.metrics.deny(match e {
                    LeaseError::UnknownPool(_) => Denial::UnknownPool,
                    LeaseError::Invalid(_) => Denial::BadRequest,
                    LeaseError::Refused(Refusal::Quota(_)) => Denial::Quota,
                    LeaseError::Refused(Refusal::Forbidden(_)) => Denial::Forbidden,
                    LeaseError::Refused(Refusal::Invalid(_)) => Denial::BadRequest,
                    _ => Denial::Unavailable,
                });
                return done(Err(lease_error(e)));
            }
        };
        let undo_id = lease.id.clone();
        let metrics = Arc::clone(&self.metrics);
        let granted: Done<()> = Box::new(move |outcome| {
            match &outcome {
                Ok(()) => {
                    Metrics::add(&metrics.grants, 1);
                    log::info!(
                        "lease {} granted: ports {:?} in pool {}",
                        lease.id.escape_debug(),
                        lease.ports,
                        lease.pool.escape_debug()
                    );
                }
                Err(_) => metrics.deny(Denial::Storage),
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, Box::new(move |t| drop(t.release(&undo_id))), granted);
    }

    /// Ends a lease, when `who` may; `done` hears of it once its ports are
    /// free in the state file.
    pub fn release(&self, id: &str, who: Principal, done: Done<Lease>) {
        let released = self.lease_change(|table| {
            self.may_manage(table, id, who)?;
            table.release(id)
        });
        let (lease, seq) = match released {
            Ok(released) => released,
            Err(e) => return done(Err(lease_error(e))),
        };
        let back = lease.clone();
        let undo: Undo = Box::new(move |t| {
            t.insert_lease(back, &now_rfc3339());
        });
        let metrics = Arc::clone(&self.metrics);
        let released: Done<()> = Box::new(move |outcome| {
            if outcome.is_ok() {
                Metrics::add(&metrics.releases, 1);
                log::info!(
                    "lease {} ended (released): ports {:?} freed",
                    lease.id.escape_debug(),
                    lease.ports
                );
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, undo, released);
    }

    /// Gives a live lease a new life of `ttl`, or of the life it was last
    /// given when `None`; `done` hears of it once it is stored.
    pub fn renew(&self, id: &str, ttl: Option<Duration>, who: Principal, done: Done<Lease>) {
        let before = self.held().table.lease(id).cloned();
        let renewed = self.lease_change(|table| {
            self.may_manage(table, id, who)?;
            table.renew(id, ttl, self.lease_now())
        });
        let (lease, seq) = match renewed {
            Ok(renewed) => renewed,
            Err(e) => return done(Err(lease_error(e))),
        };
        let undo: Undo = Box::new(move |t| before.into_iter().for_each(|l| t.restore(l)));
        let renewed: Done<()> = Box::new(move |outcome| {
            if outcome.is_ok() {
                log::debug!(
                    "lease {} renewed until {}",
                    lease.id.escape_debug(),
                    rfc3339(lease.expires_at)
                );
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, undo, renewed);
    }
}

impl App {
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

fn lease_error(e: LeaseError) -> ApiError {
    match e {
        LeaseError::UnknownPool(name) => ApiError::NotFound(format!("pool: no pool named {name}")),
        LeaseError::UnknownLease(id) => ApiError::NotFound(format!("no live lease {id}")),
        LeaseError::Invalid(m) => ApiError::BadRequest(m),
        LeaseError::Unavailable(m) => ApiError::Conflict(m),
        LeaseError::Refused(refusal) => refusal.into(),
    }
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
