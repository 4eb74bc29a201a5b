//! RFC 3339 times written from the seconds since the epoch with integer
//! arithmetic into a stack buffer: a list of thousands of leases shows two
//! times per lease, and going through `fmt` for each was an eighth of it.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of `YYYY-MM-DDTHH:MM:SSZ`.
pub const LEN: usize = 20;

/// The first second of the year 10000, which four year digits cannot show.
const YEAR_10000: u64 = 253_402_300_800;

/// One time as `YYYY-MM-DDTHH:MM:SSZ`, ASCII only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp([u8; LEN]);

impl Stamp {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a stamp is ASCII digits and punctuation")
    }
}

/// `t` in UTC with second precision, the fraction dropped, as
/// `humantime::format_rfc3339_seconds` writes it; `None` before 1970 or
/// from the year 10000 on, which dynport never gives a lease.
pub fn format(t: SystemTime) -> Option<Stamp> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    if secs >= YEAR_10000 {
        return None;
    }
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00Z";
    two(&mut out[0..2], year / 100);
    two(&mut out[2..4], year % 100);
    two(&mut out[5..7], month);
    two(&mut out[8..10], day);
    two(&mut out[11..13], of_day / 3600);
    two(&mut out[14..16], of_day / 60 % 60);
    two(&mut out[17..19], of_day % 60);
    Some(Stamp(out))
}

/// The year, month (1-12) and day (1-31) of a day counted from 1970-01-01,
/// after Howard Hinnant's `civil_from_days`, in eras of 400 years that
/// start on a 1st of March so that a leap day ends its year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let of_era = z % 146_097;
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Writes `n` (below 100) as two digits.
fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn humantime(t: SystemTime) -> String {
        humantime::format_rfc3339_seconds(t).to_string()
    }

    fn ours(t: SystemTime) -> String {
        format(t)
            .expect("a time dynport can show")
            .as_str()
            .to_string()
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn writes_what_humantime_writes_at_edges() {
        // The epoch, leap days (2000 is leap, 2100 is not), year ends, the
        // last second humantime shows, each with and without a fraction.
        let edges = [
            0,
            951_782_399,
            951_782_400,
            951_868_800,
            4_107_542_399,
            4_107_542_400,
            946_684_799,
            946_684_800,
            1_795_633_200,
            YEAR_10000 - 1,
        ];
        for secs in edges {
            for nanos in [0, 1, 500_000_000, 999_999_999] {
                assert_eq!(ours(at(secs, nanos)), humantime(at(secs, nanos)), "{secs}");
            }
        }
        assert_eq!(ours(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(ours(at(YEAR_10000 - 1, 7)), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn writes_what_humantime_writes_at_random_times() {
        // A fixed xorshift sequence: over the whole range, and densely
        // around now, where leases live.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..200_000 {
            let secs = match i % 2 {
                0 => next() % YEAR_10000,
                _ => 1_700_000_000 + next() % 1_000_000_000,
            };
            let t = at(secs, (next() % 1_000_000_000) as u32);
            assert_eq!(ours(t), humantime(t), "{secs}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_matches_humantime() {
        // 1970 to 2370: every day, at its last second, so that each month
        // and each leap rule is met.
        for day in 0..146_097 {
            let t = at(day * 86_400 + 86_399, 0);
            assert_eq!(ours(t), humantime(t), "day {day}");
        }
    }

    #[test]
    fn refuses_what_four_year_digits_cannot_show() {
        assert_eq!(format(at(YEAR_10000, 0)), None);
        assert_eq!(format(UNIX_EPOCH - Duration::from_secs(1)), None);
    }
}
