//! The throttle on failed token checks: per peer, a fixed one-minute window
//! of failures, a block for the rest of the window past the limit, and at
//! most one log line per peer per 10 s. Pure: time is passed in, so it is
//! tested without sockets or clocks.

use crate::http::{Peer, PeerAddr};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures a peer may have within one window; one more blocks it.
pub const MAX_FAILURES: u32 = 20;
/// The window failures are counted in, and the longest a block lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// At most one log line per peer within this time.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Peers tracked at once (only those with a failure in the last minute):
/// bounded so that an attacker with a whole IPv6 prefix cannot grow the
/// table. Evictions leave tombstones that std's table cleans in place only
/// while it is at most half full, so it settles at 4096 slots for 1792
/// peers: 64 bytes a slot, about 260 KiB at most.
pub const MAX_PEERS: usize = 1792;

/// Whom failures are counted against. A local caller by the uid the kernel
/// vouches for, over the Unix socket or TCP alike: every local user shares
/// the loopback address, and one user's failures must not block the
/// others. A remote peer by its address. A caller of this host that could
/// not be identified never reaches the token check (it is refused first),
/// so no key is spent on loopback addresses, which any local user may
/// rotate at will.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Uid(u32),
    Ip(IpAddr),
    /// A caller of this host the kernel would not name.
    Unidentified,
    /// A request built in memory (tests of the router).
    Unknown,
}

impl PeerKey {
    pub fn of(peer: &Peer) -> PeerKey {
        match (peer.uid, peer.local, peer.addr) {
            (Some(uid), ..) => PeerKey::Uid(uid),
            (None, true, _) | (None, false, PeerAddr::Unix) => PeerKey::Unidentified,
            // An IPv4 client of a server on `[::]` arrives as ::ffff:a.b.c.d;
            // it is the same peer as a.b.c.d.
            (None, false, PeerAddr::Ip(ip)) => PeerKey::Ip(ip.to_canonical()),
            (None, false, PeerAddr::Unknown) => PeerKey::Unknown,
        }
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKey::Uid(uid) => write!(f, "local uid {uid}"),
            PeerKey::Ip(ip) => write!(f, "{ip}"),
            PeerKey::Unidentified => f.write_str("an unidentified caller of this host"),
            PeerKey::Unknown => f.write_str("an unknown peer"),
        }
    }
}

/// What a log line about a peer says, when one is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    /// Failures of the peer in the current window.
    pub failures: u32,
    /// Events (failures or refusals) not logged since the peer's last line.
    pub suppressed: u32,
    /// Seconds the peer stays blocked, when it is.
    pub blocked_secs: Option<u64>,
}

/// One tracked peer.
#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    logged_at: Option<Instant>,
    suppressed: u32,
}

impl Entry {
    fn window_end(&self) -> Instant {
        self.window_start + WINDOW
    }

    /// Nothing left to remember: the window is over and no log line is
    /// recent enough to hold back the next.
    fn expired(&self, now: Instant) -> bool {
        now >= self.window_end() && self.logged_at.is_none_or(|t| now >= t + LOG_EVERY)
    }

    /// Seconds left of a block, rounded up, when the peer is blocked.
    fn blocked_secs(&self, now: Instant) -> Option<u64> {
        if self.failures <= MAX_FAILURES || now >= self.window_end() {
            return None;
        }
        let left = self.window_end() - now;
        Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// Counts an event for the log; a note when a line is due.
    fn note(&mut self, now: Instant) -> Option<Note> {
        if self.logged_at.is_some_and(|t| now < t + LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        let note = Note {
            failures: self.failures,
            suppressed: self.suppressed,
            blocked_secs: self.blocked_secs(now),
        };
        self.logged_at = Some(now);
        self.suppressed = 0;
        Some(note)
    }
}

/// The failed token checks of recent peers.
#[derive(Debug)]
pub struct AuthThrottle {
    peers: HashMap<PeerKey, Entry>,
    cap: usize,
}

impl Default for AuthThrottle {
    fn default() -> AuthThrottle {
        AuthThrottle::with_cap(MAX_PEERS)
    }
}

/// A peer refused before its token is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// For `Retry-After`: seconds until the block ends, at least 1.
    pub retry_after: u64,
    pub note: Option<Note>,
}

impl AuthThrottle {
    /// A throttle tracking at most `cap` peers (at least 1).
    pub fn with_cap(cap: usize) -> AuthThrottle {
        AuthThrottle {
            peers: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// Whether `key` is tracked now.
    pub fn holds(&self, key: PeerKey) -> bool {
        self.peers.contains_key(&key)
    }

    /// Refuses a peer that is blocked; called before the token is checked,
    /// so a blocked peer learns nothing, even with the right token.
    pub fn check(&mut self, key: PeerKey, now: Instant) -> Result<(), Blocked> {
        let Some(entry) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        match entry.blocked_secs(now) {
            None => Ok(()),
            Some(secs) => Err(Blocked {
                retry_after: secs.max(1),
                note: entry.note(now),
            }),
        }
    }

    /// Counts a failed token check of `key`; a note when a log line is due.
    pub fn fail(&mut self, key: PeerKey, now: Instant) -> Option<Note> {
        if !self.peers.contains_key(&key) {
            self.make_room(now);
        }
        let entry = self.peers.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            logged_at: None,
            suppressed: 0,
        });
        if now >= entry.window_end() {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.note(now)
    }

    /// Frees a slot for a new peer: expired peers go first; when every
    /// tracked peer is live, the unblocked one whose window started first
    /// goes, so that a crowd of new addresses does not lift a block.
    fn make_room(&mut self, now: Instant) {
        if self.peers.len() < self.cap {
            return;
        }
        self.peers.retain(|_, e| !e.expired(now));
        if self.peers.len() < self.cap {
            return;
        }
        let oldest = self
            .peers
            .iter()
            .min_by_key(|(_, e)| (e.blocked_secs(now).is_some(), e.window_start));
        if let Some(key) = oldest.map(|(k, _)| *k) {
            self.peers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> PeerKey {
        PeerKey::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn twenty_failures_pass_and_the_21st_blocks_the_rest_of_the_minute() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        for _ in 0..MAX_FAILURES {
            assert_eq!(t.check(ip(1), secs(t0, 10)), Ok(()));
            t.fail(ip(1), secs(t0, 10));
        }
        assert_eq!(t.check(ip(1), secs(t0, 10)), Ok(()));
        t.fail(ip(1), secs(t0, 10));
        let blocked = t.check(ip(1), secs(t0, 10)).unwrap_err();
        assert_eq!(blocked.retry_after, 60, "the window began at 10 s");
        let later = t0 + Duration::from_millis(69_500);
        assert_eq!(t.check(ip(1), later).unwrap_err().retry_after, 1);
        assert_eq!(t.check(ip(2), secs(t0, 10)), Ok(()), "other peers pass");
    }

    #[test]
    fn a_new_minute_clears_the_block_and_the_count() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        for _ in 0..=MAX_FAILURES {
            t.fail(ip(1), t0);
        }
        assert!(t.check(ip(1), secs(t0, 59)).is_err());
        assert_eq!(t.check(ip(1), secs(t0, 60)), Ok(()));
        for _ in 0..MAX_FAILURES {
            t.fail(ip(1), secs(t0, 61));
        }
        assert_eq!(t.check(ip(1), secs(t0, 61)), Ok(()), "20 in the new window");
    }

    #[test]
    fn failures_spread_over_windows_never_block() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        for minute in 0..5 {
            for _ in 0..MAX_FAILURES {
                t.fail(ip(1), secs(t0, minute * 60));
            }
            assert_eq!(t.check(ip(1), secs(t0, minute * 60 + 30)), Ok(()));
        }
    }

    #[test]
    fn at_most_one_log_line_per_peer_per_10_s() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        let first = t.fail(ip(1), t0);
        assert_eq!(
            first,
            Some(Note {
                failures: 1,
                suppressed: 0,
                blocked_secs: None
            })
        );
        for s in 1..10 {
            assert_eq!(t.fail(ip(1), secs(t0, s)), None, "second {s}");
        }
        assert!(
            t.fail(ip(2), secs(t0, 5)).is_some(),
            "each peer has its own"
        );
        let next = t.fail(ip(1), secs(t0, 10)).unwrap();
        assert_eq!((next.failures, next.suppressed), (11, 9));
    }

    #[test]
    fn refusals_of_a_blocked_peer_share_the_log_limit() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        for _ in 0..=MAX_FAILURES {
            t.fail(ip(1), t0);
        }
        assert_eq!(t.check(ip(1), secs(t0, 1)).unwrap_err().note, None);
        let note = t.check(ip(1), secs(t0, 10)).unwrap_err().note.unwrap();
        assert_eq!(
            note,
            Note {
                failures: 21,
                suppressed: 21,
                blocked_secs: Some(50)
            }
        );
    }

    #[test]
    fn the_table_never_tracks_more_than_its_cap() {
        let (mut t, t0) = (AuthThrottle::with_cap(8), Instant::now());
        for n in 0..100u8 {
            t.fail(ip(n), t0);
            assert!(t.tracked() <= 8);
        }
        assert_eq!(t.tracked(), 8);
    }

    #[test]
    fn a_crowd_of_addresses_never_grows_the_table_past_its_bound() {
        let (mut t, t0) = (AuthThrottle::default(), Instant::now());
        for n in 0..4 * MAX_PEERS as u128 {
            let addr = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | n);
            t.fail(PeerKey::Ip(IpAddr::V6(addr)), t0);
        }
        assert_eq!(t.tracked(), MAX_PEERS);
        // 3584 is what 4096 slots hold.
        assert!(t.peers.capacity() <= 3584, "{}", t.peers.capacity());
    }

    #[test]
    fn expired_peers_are_evicted_first_and_blocked_ones_last() {
        let (mut t, t0) = (AuthThrottle::with_cap(3), Instant::now());
        for _ in 0..=MAX_FAILURES {
            t.fail(ip(1), secs(t0, 30));
        }
        t.fail(ip(2), t0);
        t.fail(ip(3), secs(t0, 40));
        // At 70 s peer 2's window (from 0 s) is over, the others' are not.
        t.fail(ip(4), secs(t0, 70));
        assert!(!t.holds(ip(2)));
        assert!(t.holds(ip(1)) && t.holds(ip(3)) && t.holds(ip(4)));
        // All live now: peer 1's window is the oldest, but it is blocked,
        // so peer 3 goes.
        t.fail(ip(5), secs(t0, 71));
        assert!(!t.holds(ip(3)));
        assert!(t.holds(ip(1)) && t.holds(ip(4)) && t.holds(ip(5)));
        assert!(t.check(ip(1), secs(t0, 71)).is_err(), "the block survives");
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_count_as_their_ipv4_address() {
        let mapped = "::ffff:192.0.2.1".parse::<IpAddr>().unwrap();
        let peer = Peer {
            addr: PeerAddr::Ip(mapped),
            uid: None,
            pid: None,
            local: false,
        };
        assert_eq!(PeerKey::of(&peer), ip(1));
        let unix = Peer {
            addr: PeerAddr::Unix,
            uid: Some(1000),
            pid: Some(7),
            local: true,
        };
        assert_eq!(PeerKey::of(&unix), PeerKey::Uid(1000));
        assert_eq!(PeerKey::of(&unix).to_string(), "local uid 1000");
        let local_tcp = Peer {
            addr: PeerAddr::Ip(mapped),
            uid: Some(1000),
            pid: None,
            local: true,
        };
        assert_eq!(
            PeerKey::of(&local_tcp),
            PeerKey::Uid(1000),
            "the same user on TCP"
        );
    }

    #[test]
    fn callers_of_this_host_without_a_uid_share_one_key_whatever_their_address() {
        let from = |addr: &str| Peer {
            addr: PeerAddr::Ip(addr.parse().unwrap()),
            uid: None,
            pid: None,
            local: true,
        };
        assert_eq!(PeerKey::of(&from("127.0.0.1")), PeerKey::Unidentified);
        assert_eq!(PeerKey::of(&from("127.4.5.6")), PeerKey::Unidentified);
        assert_eq!(PeerKey::of(&Peer::unix()), PeerKey::Unidentified);
    }
}
