//! Usage analytics for `GET /metrics` and `GET /api/v1/system/usage`: how
//! long leases lived, how long grants took, grants and denials per minute
//! over the last hour, and the peak of leased ports over the last hour and
//! day. A few kilobytes, all fixed at start; time is passed in.

use crate::ports::lease::EndReason;

const SEC: u64 = 1_000_000_000;

/// Upper bounds of the lease-lifetime buckets, in nanoseconds: 1 s to a
/// week.
pub const LIFETIME_BOUNDS: [u64; 15] = [
    SEC,
    5 * SEC,
    10 * SEC,
    30 * SEC,
    60 * SEC,
    300 * SEC,
    600 * SEC,
    1_800 * SEC,
    3_600 * SEC,
    10_800 * SEC,
    21_600 * SEC,
    43_200 * SEC,
    86_400 * SEC,
    259_200 * SEC,
    604_800 * SEC,
];

/// Upper bounds of the grant-latency buckets, in nanoseconds: 100 µs to
/// 10 s.
pub const LATENCY_BOUNDS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    SEC,
    5 * SEC / 2,
    5 * SEC,
    10 * SEC,
];

/// How leases end, in the order usage keeps their lifetimes.
pub const ENDINGS: [EndReason; 3] = [
    EndReason::Released,
    EndReason::Expired,
    EndReason::OwnerExited,
];

/// How a lease ended, as usage labels it.
pub fn ending_label(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Released => "released",
        EndReason::Expired => "expired",
        EndReason::OwnerExited => "owner_exited",
    }
}

/// A histogram of durations: a count per bucket (not cumulative; the last
/// is above every bound), their sum and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram<const N: usize> {
    pub bounds: &'static [u64; N],
    /// `counts[i]` counts values at most `bounds[i]` and above the bound
    /// before; `over` those above every bound.
    pub counts: [u64; N],
    pub over: u64,
    pub sum_nanos: u64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: &'static [u64; N]) -> Histogram<N> {
        Histogram {
            bounds,
            counts: [0; N],
            over: 0,
            sum_nanos: 0,
        }
    }

    pub fn observe(&mut self, nanos: u64) {
        match self.bounds.iter().position(|&b| nanos <= b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }

    /// Each bound with the values at most it, as Prometheus's `le` buckets
    /// count them; `+Inf` is [`Histogram::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut total = 0;
        (self.bounds.iter().zip(&self.counts)).map(move |(&bound, &n)| {
            total += n;
            (bound, total)
        })
    }
}

/// One minute's grants and denials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: u64,
    grants: u32,
    denials: u32,
}

/// Grants and denials of the last 60 minutes, a slot per minute indexed by
/// the minute: a slot whose minute is not the one asked for counts zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerMinute {
    slots: [Minute; 60],
}

impl Default for PerMinute {
    fn default() -> PerMinute {
        PerMinute {
            slots: [Minute::default(); 60],
        }
    }
}

/// Grants and denials per minute, oldest first, the last the minute of
/// `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Minutes {
    /// The first minute's start, in seconds since the Unix epoch.
    pub start_secs: u64,
    pub grants: Vec<u32>,
    pub denials: Vec<u32>,
}

impl PerMinute {
    fn slot(&mut self, now_secs: u64) -> &mut Minute {
        let at = now_secs / 60;
        let slot = &mut self.slots[(at % 60) as usize];
        if slot.at != at {
            *slot = Minute {
                at,
                ..Minute::default()
            };
        }
        slot
    }

    pub fn grant(&mut self, now_secs: u64) {
        let slot = self.slot(now_secs);
        slot.grants = slot.grants.saturating_add(1);
    }

    pub fn deny(&mut self, now_secs: u64) {
        let slot = self.slot(now_secs);
        slot.denials = slot.denials.saturating_add(1);
    }

    /// The 60 minutes up to and including the one of `now_secs`.
    pub fn last_hour(&self, now_secs: u64) -> Minutes {
        let now = now_secs / 60;
        let first = now.saturating_sub(59);
        let minutes = (first..=now).map(|at| {
            let slot = self.slots[(at % 60) as usize];
            if slot.at == at {
                slot
            } else {
                Minute::default()
            }
        });
        let (grants, denials) = minutes.map(|m| (m.grants, m.denials)).unzip();
        Minutes {
            start_secs: first * 60,
            grants,
            denials,
        }
    }
}

/// The largest value seen in each of `N` periods of `period` seconds, a
/// slot per period indexed by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maxima<const N: usize> {
    period: u64,
    /// The period (since the Unix epoch) and its largest value.
    slots: [(u64, u32); N],
}

impl<const N: usize> Maxima<N> {
    pub const fn new(period: u64) -> Maxima<N> {
        Maxima {
            period,
            slots: [(u64::MAX, 0); N],
        }
    }

    pub fn see(&mut self, value: u32, now_secs: u64) {
        let at = now_secs / self.period;
        let slot = &mut self.slots[(at % N as u64) as usize];
        if slot.0 != at {
            *slot = (at, value);
        }
        slot.1 = slot.1.max(value);
    }

    /// The largest value seen in the last `N` periods, the one of
    /// `now_secs` among them.
    pub fn max(&self, now_secs: u64) -> u32 {
        let now = now_secs / self.period;
        let first = now.saturating_sub(N as u64 - 1);
        (self.slots.iter())
            .filter(|(at, _)| (first..=now).contains(at))
            .map(|&(_, value)| value)
            .max()
            .unwrap_or(0)
    }
}

/// Everything usage keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub lifetimes: [Histogram<15>; 3],
    pub grant_latency: Histogram<16>,
    pub per_minute: PerMinute,
    /// Leased ports: the most in each minute of the last hour.
    pub hour: Maxima<60>,
    /// Leased ports: the most in each hour of the last day.
    pub day: Maxima<24>,
    /// Leased ports after the last change.
    pub leased: u32,
}

impl Default for Usage {
    fn default() -> Usage {
        Usage {
            lifetimes: [const { Histogram::new(&LIFETIME_BOUNDS) }; 3],
            grant_latency: Histogram::new(&LATENCY_BOUNDS),
            per_minute: PerMinute::default(),
            hour: Maxima::new(60),
            day: Maxima::new(3_600),
            leased: 0,
        }
    }
}

impl Usage {
    pub fn ended(&mut self, how: EndReason, lived_nanos: u64) {
        self.lifetimes[how as usize].observe(lived_nanos);
    }

    pub fn granted(&mut self, latency_nanos: u64, now_secs: u64) {
        self.grant_latency.observe(latency_nanos);
        self.per_minute.grant(now_secs);
    }

    /// The leased ports are `leased` from `now_secs` on. The count before
    /// was held until now, so it counts in this minute too: a peak that
    /// began before the hour and ended within it is still seen.
    pub fn leased(&mut self, leased: u32, now_secs: u64) {
        for value in [self.leased, leased] {
            self.hour.see(value, now_secs);
            self.day.see(value, now_secs);
        }
        self.leased = leased;
    }

    /// The most leased ports over the last hour and the last day, `now`
    /// (the leased ports at `now_secs`) among them.
    pub fn peaks(&self, now: u32, now_secs: u64) -> (u32, u32) {
        let hour = self.hour.max(now_secs).max(now);
        let day = self.day.max(now_secs).max(hour);
        (hour, day)
    }
}

/// Whose leased ports a count is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Uid(u32),
    /// Callers on another host.
    Remote,
    /// Every principal after the largest.
    Other,
}

/// The `n` principals holding the most leased ports, most first (ties by
/// uid, remote first), then `Other` with the rest's ports: a bounded list
/// however many users a host has.
pub fn largest(held: impl Iterator<Item = (Option<u32>, usize)>, n: usize) -> Vec<(Holder, usize)> {
    let mut all: Vec<(Option<u32>, usize)> = held.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rest = all.iter().skip(n).map(|(_, ports)| ports).sum();
    all.truncate(n);
    let holder = |uid: Option<u32>| uid.map_or(Holder::Remote, Holder::Uid);
    (all.into_iter().map(|(uid, ports)| (holder(uid), ports)))
        .chain([(Holder::Other, rest)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let mut h = Histogram::new(&LATENCY_BOUNDS);
        h.observe(100_000);
        h.observe(100_001);
        h.observe(11 * SEC);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.over, 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum_nanos, 11 * SEC + 200_001);
        let cumulative: Vec<u64> = h.cumulative().map(|(_, n)| n).collect();
        assert_eq!(cumulative[0], 1);
        assert!(cumulative[1..].iter().all(|&n| n == 2));
    }

    #[test]
    fn lifetimes_are_kept_by_ending() {
        let mut u = Usage::default();
        u.ended(EndReason::Expired, 3 * SEC);
        u.ended(EndReason::OwnerExited, 2 * 604_800 * SEC);
        assert_eq!(u.lifetimes[EndReason::Released as usize].count(), 0);
        assert_eq!(u.lifetimes[EndReason::Expired as usize].counts[1], 1);
        assert_eq!(u.lifetimes[EndReason::OwnerExited as usize].over, 1);
    }

    #[test]
    fn per_minute_ring_forgets_minutes_older_than_an_hour() {
        let mut ring = PerMinute::default();
        let t0 = 1_000 * 60;
        ring.grant(t0);
        ring.grant(t0 + 59);
        ring.deny(t0 + 60);
        let hour = ring.last_hour(t0 + 60);
        assert_eq!(hour.start_secs, t0 + 60 - 59 * 60);
        assert_eq!(hour.grants.len(), 60);
        assert_eq!(hour.grants[58], 2);
        assert_eq!(hour.denials[59], 1);
        assert_eq!(hour.grants.iter().sum::<u32>(), 2);
        // An hour on, the slot of t0 is another minute's.
        let later = ring.last_hour(t0 + 3_600);
        assert_eq!(later.grants.iter().sum::<u32>(), 0);
        assert_eq!(later.denials, {
            let mut d = vec![0; 60];
            d[0] = 1;
            d
        });
        ring.grant(t0 + 3_600);
        assert_eq!(ring.last_hour(t0 + 3_600).grants[59], 1);
    }

    #[test]
    fn a_clock_stepped_back_reads_no_future_minutes() {
        let mut ring = PerMinute::default();
        ring.grant(100 * 60);
        assert_eq!(ring.last_hour(90 * 60).grants.iter().sum::<u32>(), 0);
    }

    #[test]
    fn peaks_see_a_count_held_from_before_the_hour() {
        let mut u = Usage::default();
        let t0 = 10 * 86_400;
        u.leased(10, t0);
        // Held for two hours, then all released.
        u.leased(0, t0 + 7_200);
        assert_eq!(u.peaks(0, t0 + 7_200 + 1_800), (10, 10));
        // An hour after the release, only the day remembers it.
        assert_eq!(u.peaks(0, t0 + 7_200 + 3_600), (0, 10));
        assert_eq!(u.peaks(0, t0 + 7_200 + 86_400), (0, 0));
    }

    #[test]
    fn peaks_count_what_is_leased_now() {
        let mut u = Usage::default();
        u.leased(4, 0);
        u.leased(7, 30);
        u.leased(5, 90);
        assert_eq!(u.peaks(5, 100), (7, 7));
        // Hours later, nothing changed: 5 is still leased.
        assert_eq!(u.peaks(5, 100 + 5 * 86_400), (5, 5));
    }

    #[test]
    fn largest_keeps_n_holders_and_sums_the_rest() {
        let held = [
            (Some(1), 2),
            (None, 5),
            (Some(3), 9),
            (Some(2), 2),
            (Some(4), 1),
        ];
        assert_eq!(
            largest(held.into_iter(), 3),
            vec![
                (Holder::Uid(3), 9),
                (Holder::Remote, 5),
                (Holder::Uid(1), 2),
                (Holder::Other, 3),
            ]
        );
        assert_eq!(
            largest(held.into_iter().take(1), 50).last(),
            Some(&(Holder::Other, 0))
        );
    }
}
