//! The clock leases live by. A lease's remaining life is counted on
//! `CLOCK_BOOTTIME`, which only moves forward and counts suspend, so a step
//! of the wall clock (NTP correcting a board without a real-time clock, an
//! operator's `date -s`) neither ends leases early nor keeps them late.
//! Leases still show and store `expires_at` in wall-clock time: this clock
//! is the wall clock as it was at the last step, moved on by the boot clock
//! since, and [`LeaseClock::follow_wall`] notices a step, so the caller can
//! move every lease's times by it and keep each one's remaining life.
#![forbid(unsafe_code)]

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// A wall clock farther than this from the lease clock has been stepped.
pub const STEP: Duration = Duration::from_secs(1);

/// Wall-clock time as leases see it.
pub struct LeaseClock {
    /// The wall clock and the boot clock read together at the last step.
    anchor: Mutex<(SystemTime, Duration)>,
    boottime: fn() -> Duration,
    wall: fn() -> SystemTime,
}

/// How far the wall clock stepped: forward or back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Forward(Duration),
    Back(Duration),
}

impl Step {
    /// `t` moved by this step.
    pub fn apply(self, t: SystemTime) -> SystemTime {
        match self {
            Step::Forward(d) => t + d,
            Step::Back(d) => t.checked_sub(d).unwrap_or(t),
        }
    }
}

impl LeaseClock {
    /// The clock of this host: the boot clock and the wall clock.
    pub fn system() -> LeaseClock {
        LeaseClock::with(crate::sys::boottime, SystemTime::now)
    }

    /// A clock over the given sources, for tests.
    pub fn with(boottime: fn() -> Duration, wall: fn() -> SystemTime) -> LeaseClock {
        LeaseClock {
            anchor: Mutex::new((wall(), boottime())),
            boottime,
            wall,
        }
    }

    /// Now, in wall-clock terms, moved on only by the boot clock.
    pub fn now(&self) -> SystemTime {
        let (wall, boot) = *self.anchor();
        wall + (self.boottime)().saturating_sub(boot)
    }

    /// When the wall clock has stepped since the last look, takes it as the
    /// new anchor and says by how much, so that leases can be moved with it.
    pub fn follow_wall(&self) -> Option<Step> {
        let mut anchor = self.anchor();
        let boot = (self.boottime)();
        let ours = anchor.0 + boot.saturating_sub(anchor.1);
        let wall = (self.wall)();
        let step = match wall.duration_since(ours) {
            Ok(ahead) if ahead > STEP => Step::Forward(ahead),
            Err(behind) if behind.duration() > STEP => Step::Back(behind.duration()),
            _ => return None,
        };
        *anchor = (wall, boot);
        Some(step)
    }

    fn anchor(&self) -> std::sync::MutexGuard<'_, (SystemTime, Duration)> {
        self.anchor.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::UNIX_EPOCH;

    static BOOT: AtomicU64 = AtomicU64::new(1_000);
    static WALL: AtomicU64 = AtomicU64::new(1_790_000_000);

    fn boot() -> Duration {
        Duration::from_secs(BOOT.load(Ordering::SeqCst))
    }
    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(WALL.load(Ordering::SeqCst))
    }
    fn tick(secs: u64) {
        BOOT.fetch_add(secs, Ordering::SeqCst);
        WALL.fetch_add(secs, Ordering::SeqCst);
    }

    #[test]
    fn a_wall_clock_step_moves_nothing_until_followed() {
        let clock = LeaseClock::with(boot, wall);
        let start = clock.now();
        tick(10);
        assert_eq!(clock.now(), start + Duration::from_secs(10));
        assert_eq!(clock.follow_wall(), None, "both clocks moved alike");
        WALL.fetch_add(7200, Ordering::SeqCst);
        assert_eq!(
            clock.now(),
            start + Duration::from_secs(10),
            "the step is not counted"
        );
        assert_eq!(
            clock.follow_wall(),
            Some(Step::Forward(Duration::from_secs(7200)))
        );
        assert_eq!(clock.now(), wall());
        assert_eq!(clock.follow_wall(), None);
        WALL.fetch_sub(3600, Ordering::SeqCst);
        assert_eq!(
            clock.follow_wall(),
            Some(Step::Back(Duration::from_secs(3600)))
        );
        let at = wall();
        assert_eq!(
            Step::Forward(Duration::from_secs(5)).apply(at),
            at + Duration::from_secs(5)
        );
        assert_eq!(
            Step::Back(Duration::from_secs(5)).apply(at),
            at - Duration::from_secs(5)
        );
    }
}
