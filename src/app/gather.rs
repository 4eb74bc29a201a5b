//! When the committer starts its next state-file write.
//!
//! A client that changes leases in a loop (a test runner taking a port per
//! test, a supervisor restarting services) sends its next change as soon as
//! its last one is answered. Starting the next write at once would leave the
//! clients just answered for the write after, so concurrent clients split
//! into two groups that take turns and each change waits for about two
//! writes. Instead the committer waits, briefly, until the changes it expects
//! are queued: those that queued during the last write, and one from each
//! client that write answered. The wait lasts at most as long as the last
//! write took (and at most [`MAX_PATIENCE`]), so a client that does not come
//! back costs the others at most one write, as if their change had arrived
//! just after a write started, and a lone client never waits at all: its
//! change is the one expected.

use std::time::{Duration, Instant};

/// The longest the committer waits for changes it expects, however slow
/// the disk.
pub const MAX_PATIENCE: Duration = Duration::from_micros(500);

/// What the last write tells about the next one.
#[derive(Debug, Clone, Copy)]
pub struct Gather {
    /// How many changes the next write expects to carry.
    expect: usize,
    /// When the committer stops waiting for them.
    until: Instant,
}

impl Gather {
    /// Before any write: nothing is expected, so nothing is waited for.
    pub fn new(now: Instant) -> Gather {
        Gather {
            expect: 0,
            until: now,
        }
    }

    /// A write that started at `started` has answered `answered` changes at
    /// `now`, and `queued` more are waiting.
    pub fn wrote(answered: usize, queued: usize, started: Instant, now: Instant) -> Gather {
        let took = now.saturating_duration_since(started);
        Gather {
            expect: answered + queued,
            until: now + took.min(MAX_PATIENCE),
        }
    }

    /// Whether a write carrying `batched` changes may start at `now`.
    pub fn ready(&self, batched: usize, now: Instant) -> bool {
        batched >= self.expect || now >= self.until
    }

    /// When to stop waiting for more changes.
    pub fn until(&self) -> Instant {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_first_write_starts_at_once() {
        let t = Instant::now();
        assert!(Gather::new(t).ready(1, t));
    }

    #[test]
    fn a_lone_client_never_waits() {
        let t = Instant::now();
        let g = Gather::wrote(1, 0, t, t + us(400));
        assert!(g.ready(1, t + us(401)));
    }

    #[test]
    fn waits_for_the_clients_just_answered_and_those_queued() {
        let t = Instant::now();
        let g = Gather::wrote(4, 4, t, t + us(400));
        let after = t + us(410);
        assert!(!g.ready(4, after));
        assert!(!g.ready(7, after));
        assert!(g.ready(8, after));
        assert!(g.ready(9, after));
    }

    #[test]
    fn waits_at_most_as_long_as_the_last_write() {
        let t = Instant::now();
        let g = Gather::wrote(8, 0, t, t + us(400));
        assert_eq!(g.until(), t + us(800));
        assert!(!g.ready(1, t + us(799)));
        assert!(g.ready(1, t + us(800)));
    }

    #[test]
    fn a_slow_disk_does_not_stretch_the_wait() {
        let t = Instant::now();
        let done = t + Duration::from_millis(20);
        let g = Gather::wrote(8, 0, t, done);
        assert_eq!(g.until(), done + MAX_PATIENCE);
    }

    #[test]
    fn a_fast_disk_barely_waits() {
        let t = Instant::now();
        let g = Gather::wrote(8, 0, t, t + us(20));
        assert!(g.ready(1, t + us(40)));
    }
}
