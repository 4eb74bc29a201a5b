//! The share of holder lookups each caller gets: one at a time and
//! [`MAX_PER_SECOND`] in any second, whatever the port, so that a caller
//! whose lookups are slow (its own processes hold many descriptors) takes
//! at most one core from the others. Keyed by caller, in a table of at
//! most [`MAX_CALLERS`] entries; time is passed in, so it is tested
//! without clocks.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lookups one caller may begin within any one second.
pub const MAX_PER_SECOND: usize = 10;
/// The window [`MAX_PER_SECOND`] counts in.
const WINDOW: Duration = Duration::from_secs(1);
/// Callers tracked at once: only those with a lookup running or begun in
/// the last second. A caller is a local uid (or all remote callers
/// together), so only a host with this many users asking within one
/// second fills it; about 200 bytes each.
pub const MAX_CALLERS: usize = 512;

/// Why a lookup may not begin now. Each passes within a second: a lookup
/// lasts at most its budget (100 ms), and the window is one second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The caller has a lookup running.
    Running,
    /// The caller began [`MAX_PER_SECOND`] lookups within the last second;
    /// `retry_after` seconds until one more may begin, at least 1.
    TooOften { retry_after: u64 },
    /// [`MAX_CALLERS`] other callers have lookups running or recent.
    Crowded,
}

impl Refused {
    /// Seconds to wait, for `Retry-After`.
    pub fn retry_after(self) -> u64 {
        match self {
            Refused::TooOften { retry_after } => retry_after,
            Refused::Running | Refused::Crowded => 1,
        }
    }
}

/// One caller's recent lookups: when the last [`MAX_PER_SECOND`] began,
/// oldest at `next`, and whether one is running.
#[derive(Clone, Copy, Debug)]
struct Recent {
    began: [Option<Instant>; MAX_PER_SECOND],
    next: usize,
    running: bool,
}

impl Recent {
    fn newest(&self) -> Option<Instant> {
        self.began[(self.next + MAX_PER_SECOND - 1) % MAX_PER_SECOND]
    }

    /// Nothing left to remember: no lookup running, none begun within the
    /// window.
    fn expired(&self, now: Instant) -> bool {
        !self.running && self.newest().is_none_or(|t| now >= t + WINDOW)
    }
}

/// The lookups of recent callers.
#[derive(Debug)]
pub struct LookupLimit<K> {
    callers: Mutex<HashMap<K, Recent>>,
    cap: usize,
}

impl<K: Copy + Eq + Hash> Default for LookupLimit<K> {
    fn default() -> LookupLimit<K> {
        LookupLimit::with_cap(MAX_CALLERS)
    }
}

/// A lookup that may run: the caller's slot is free again when it drops.
#[derive(Debug)]
pub struct Permit<'a, K: Copy + Eq + Hash> {
    limit: &'a LookupLimit<K>,
    key: K,
}

impl<K: Copy + Eq + Hash> Drop for Permit<'_, K> {
    fn drop(&mut self) {
        if let Some(recent) = self.limit.lock().get_mut(&self.key) {
            recent.running = false;
        }
    }
}

impl<K: Copy + Eq + Hash> LookupLimit<K> {
    /// A limit tracking at most `cap` callers (at least 1).
    pub fn with_cap(cap: usize) -> LookupLimit<K> {
        LookupLimit {
            callers: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    /// Callers tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Begins a lookup of `key` at `now`, unless it has one running, began
    /// [`MAX_PER_SECOND`] within the last second, or the table is full.
    pub fn begin(&self, key: K, now: Instant) -> Result<Permit<'_, K>, Refused> {
        let mut callers = self.lock();
        if !callers.contains_key(&key) {
            self.make_room(&mut callers, now)?;
        }
        let recent = callers.entry(key).or_insert(Recent {
            began: [None; MAX_PER_SECOND],
            next: 0,
            running: false,
        });
        if recent.running {
            return Err(Refused::Running);
        }
        if let Some(oldest) = recent.began[recent.next]
            && now < oldest + WINDOW
        {
            let left = oldest + WINDOW - now;
            let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            return Err(Refused::TooOften { retry_after });
        }
        recent.began[recent.next] = Some(now);
        recent.next = (recent.next + 1) % MAX_PER_SECOND;
        recent.running = true;
        Ok(Permit { limit: self, key })
    }

    /// Frees a slot for a new caller by forgetting those with nothing left
    /// to remember; a full table of live callers refuses the new one
    /// rather than forget a live one's count.
    fn make_room(&self, callers: &mut HashMap<K, Recent>, now: Instant) -> Result<(), Refused> {
        if callers.len() >= self.cap {
            callers.retain(|_, r| !r.expired(now));
        }
        if callers.len() >= self.cap {
            return Err(Refused::Crowded);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Recent>> {
        // The table holds no invariant a panic could break halfway.
        self.callers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn one_lookup_at_a_time_per_caller_and_others_are_not_held_back() {
        let (limit, t0) = (LookupLimit::default(), Instant::now());
        let running = limit.begin(1u32, t0).unwrap();
        assert_eq!(limit.begin(1, ms(t0, 10)).unwrap_err(), Refused::Running);
        assert_eq!(Refused::Running.retry_after(), 1);
        let other = limit.begin(2, ms(t0, 10)).unwrap();
        drop(running);
        assert!(limit.begin(1, ms(t0, 20)).is_ok(), "free once it ended");
        drop(other);
    }

    #[test]
    fn ten_lookups_in_a_second_pass_and_the_eleventh_waits_for_the_first_to_age() {
        let (limit, t0) = (LookupLimit::default(), Instant::now());
        for n in 0..10 {
            drop(limit.begin(7u32, ms(t0, n * 50)).unwrap());
        }
        assert_eq!(
            limit.begin(7, ms(t0, 500)).unwrap_err(),
            Refused::TooOften { retry_after: 1 }
        );
        assert_eq!(
            limit.begin(7, ms(t0, 999)).unwrap_err(),
            Refused::TooOften { retry_after: 1 }
        );
        // The first began at 0 ms: at 1000 ms it is out of the window,
        // the second (50 ms) is not.
        drop(limit.begin(7, ms(t0, 1000)).unwrap());
        assert!(limit.begin(7, ms(t0, 1010)).is_err());
        drop(limit.begin(7, ms(t0, 1050)).unwrap());
        assert!(
            limit.begin(8, ms(t0, 1050)).is_ok(),
            "others have their own"
        );
    }

    #[test]
    fn a_refused_lookup_is_not_counted() {
        let (limit, t0) = (LookupLimit::default(), Instant::now());
        let running = limit.begin(1u32, t0).unwrap();
        for n in 1..100 {
            assert_eq!(limit.begin(1, ms(t0, n)).unwrap_err(), Refused::Running);
        }
        drop(running);
        for n in 0..9 {
            drop(limit.begin(1, ms(t0, 200 + n)).unwrap());
        }
    }

    #[test]
    fn the_table_never_tracks_more_than_its_cap() {
        let (limit, t0) = (LookupLimit::with_cap(4), Instant::now());
        for caller in 0..4u32 {
            drop(limit.begin(caller, t0).unwrap());
        }
        assert_eq!(
            limit.begin(99, ms(t0, 500)).unwrap_err(),
            Refused::Crowded,
            "every caller began a lookup within the second"
        );
        assert_eq!(limit.tracked(), 4);
        drop(limit.begin(99, ms(t0, 1000)).unwrap());
        assert_eq!(limit.tracked(), 1, "the expired ones were forgotten");
        for caller in 0..10_000u32 {
            drop(limit.begin(caller, ms(t0, 2000 + u64::from(caller) * 1000)));
            assert!(limit.tracked() <= 4);
        }
    }

    #[test]
    fn a_running_lookup_is_never_forgotten() {
        let (limit, t0) = (LookupLimit::with_cap(1), Instant::now());
        let running = limit.begin(1u32, t0).unwrap();
        assert_eq!(limit.begin(2, ms(t0, 5000)).unwrap_err(), Refused::Crowded);
        assert_eq!(limit.begin(1, ms(t0, 5000)).unwrap_err(), Refused::Running);
        drop(running);
        assert!(limit.begin(2, ms(t0, 5000)).is_ok());
    }
}
