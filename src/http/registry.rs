//! Where waiting connections live, indexed by their poller key, and the
//! hand-over rules between the poller thread and the workers.
//!
//! A worker re-arms a connection's one-shot interest *before* parking it here.
//! If the event fires in between, the poller finds the slot still active and
//! marks it ready; the worker sees the mark when parking and serves the
//! connection again instead of parking it. No readiness is lost either way.

use std::time::Instant;

use super::conn::Conn;

enum Slot {
    Free,
    /// Held by a worker (or being set up); `ready` records an event that
    /// fired meanwhile.
    Active {
        ready: bool,
    },
    Parked(Conn),
}

/// What became of a connection a worker tried to park.
pub(crate) enum Parked {
    /// It waits; `sooner` when its deadline comes before the poller meant
    /// to wake, which must then be woken to wait less.
    Waiting { sooner: bool },
    /// Its event fired while the worker still held it: serve it again.
    Ready(Conn),
    /// The engine is shutting down and this connection may not wait.
    Refused(Conn),
}

/// The slots of every open connection.
#[derive(Default)]
pub(crate) struct Registry {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Shutting down: idle connections may no longer wait.
    draining: bool,
    /// The poller is gone: nothing may wait any more.
    closed: bool,
    /// When the poller wakes next to look at deadlines; `None`: only for
    /// an event. Kept under the same lock as the slots, so a connection
    /// parked with an earlier deadline is never missed.
    wake_at: Option<Instant>,
}

impl Registry {
    /// Reserves a key for a new connection, held as active.
    pub fn reserve(&mut self) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Slot::Active { ready: false };
                key
            }
            None => {
                self.slots.push(Slot::Active { ready: false });
                self.slots.len() - 1
            }
        }
    }

    /// Frees the key of a connection being dropped.
    pub fn release(&mut self, key: usize) {
        if let Some(slot @ Slot::Active { .. }) = self.slots.get_mut(key) {
            *slot = Slot::Free;
            self.free.push(key);
        }
    }

    /// Parks `conn`, whose interest is already re-armed.
    pub fn park(&mut self, conn: Conn) -> Parked {
        if self.closed || (self.draining && conn.is_quiet()) {
            return Parked::Refused(conn);
        }
        let Some(slot) = self.slots.get_mut(conn.key) else {
            return Parked::Refused(conn);
        };
        match slot {
            Slot::Active { ready: true } => {
                *slot = Slot::Active { ready: false };
                Parked::Ready(conn)
            }
            Slot::Active { ready: false } => {
                let deadline = conn.deadline;
                *slot = Slot::Parked(conn);
                let sooner = self.wake_at.is_none_or(|at| deadline < at);
                if sooner {
                    self.wake_at = Some(deadline);
                }
                Parked::Waiting { sooner }
            }
            // Only the holder of a key parks it, so its slot is active; were
            // it not, overwriting would drop a connection under this lock.
            Slot::Free | Slot::Parked(_) => {
                log::error!("connection {} parked twice; closing it", conn.key);
                Parked::Refused(conn)
            }
        }
    }

    /// The connection an event is for, if it waits here; otherwise the event
    /// is remembered for the worker that holds it.
    pub fn take_ready(&mut self, key: usize) -> Option<Conn> {
        let slot = self.slots.get_mut(key)?;
        match slot {
            Slot::Parked(_) => take(slot),
            Slot::Active { ready } => {
                *ready = true;
                None
            }
            Slot::Free => None,
        }
    }

    /// Moves every connection whose deadline has passed into `out`, and
    /// plans the poller's next wake-up: the earliest deadline left, or
    /// `other` (the poller's own timers) when that comes first.
    pub fn take_expired(&mut self, now: Instant, out: &mut Vec<Conn>, other: Option<Instant>) {
        let mut next = other;
        for slot in &mut self.slots {
            match slot {
                Slot::Parked(c) if c.deadline <= now => out.extend(take(slot)),
                Slot::Parked(c) => next = Some(next.map_or(c.deadline, |n| n.min(c.deadline))),
                _ => {}
            }
        }
        self.wake_at = next;
    }

    /// When the poller should wake next to look at deadlines.
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// Makes the poller wake by `at` at the latest.
    pub fn wake_by(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// The idle connection waiting longest for its next request, to close it
    /// in favour of a new one when the connection cap is reached.
    pub fn take_oldest_idle(&mut self) -> Option<Conn> {
        // Idle connections share one timeout, so the earliest deadline is
        // the oldest.
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Parked(c) if c.is_idle() => Some((c.deadline, i)),
                _ => None,
            })
            .min()?;
        take(&mut self.slots[oldest.1])
    }

    /// Starts shutting down: hands over every quiet connection in `out`
    /// (idle, or a tunnel owing nothing).
    pub fn drain_idle(&mut self, out: &mut Vec<Conn>) {
        self.draining = true;
        for slot in &mut self.slots {
            if matches!(slot, Slot::Parked(c) if c.is_quiet()) {
                out.extend(take(slot));
            }
        }
    }

    /// The poller is ending: hands over every waiting connection in `out`.
    pub fn close(&mut self, out: &mut Vec<Conn>) {
        self.closed = true;
        for slot in &mut self.slots {
            if matches!(slot, Slot::Parked(_)) {
                out.extend(take(slot));
            }
        }
    }
}

/// Takes the parked connection out of `slot`, leaving it active.
fn take(slot: &mut Slot) -> Option<Conn> {
    match std::mem::replace(slot, Slot::Active { ready: false }) {
        Slot::Parked(conn) => Some(conn),
        other => {
            *slot = other;
            None
        }
    }
}
