//! Wall-clock helpers: every timestamp dynport shows is RFC 3339 in UTC.

use std::fmt;
use std::time::SystemTime;

mod lease_clock;
pub(crate) mod stamp;

pub use lease_clock::{LeaseClock, STEP, Step};

/// A time as RFC 3339 in UTC with second precision, e.g.
/// `2026-11-25T19:00:00Z`: a [`stamp`], or, for a time a stamp cannot show
/// (before 1970, from the year 10000 on), humantime's, which refuses it
/// as it always did. [`Rfc3339::of`] is the one place that chooses.
pub enum Rfc3339 {
    Stamp(stamp::Stamp),
    Humantime(humantime::Rfc3339Timestamp),
}

impl Rfc3339 {
    pub fn of(t: SystemTime) -> Rfc3339 {
        match stamp::format(t) {
            Some(stamp) => Rfc3339::Stamp(stamp),
            None => Rfc3339::Humantime(humantime::format_rfc3339_seconds(t)),
        }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rfc3339::Stamp(stamp) => f.write_str(stamp.as_str()),
            Rfc3339::Humantime(other) => other.fmt(f),
        }
    }
}

/// Formats `t` as RFC 3339 in UTC with second precision ([`Rfc3339`]).
pub fn rfc3339(t: SystemTime) -> String {
    Rfc3339::of(t).to_string()
}

/// A span of time in a unit (milliseconds or seconds) with a fixed number
/// of decimals, rounded, written with integer arithmetic: log lines and
/// `/metrics` show times without the float formatting machinery in the
/// binary.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    nanos: u128,
    /// Nanoseconds in one unit.
    unit: u128,
    places: u32,
}

impl Decimal {
    /// `d` in milliseconds with `places` decimals (at most 6).
    pub fn ms(d: std::time::Duration, places: u32) -> Decimal {
        Decimal {
            nanos: d.as_nanos(),
            unit: 1_000_000,
            places: places.min(6),
        }
    }

    /// `nanos` in seconds with all nine decimals, trailing zeros dropped.
    pub fn secs(nanos: u64) -> Decimal {
        Decimal {
            nanos: u128::from(nanos),
            unit: 1_000_000_000,
            places: 9,
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10u128.pow(self.places);
        // Units of 10^-places, rounded half up.
        let n = (self.nanos * scale + self.unit / 2) / self.unit;
        let (whole, frac) = (n / scale, n % scale);
        if self.unit == 1_000_000_000 {
            // Seconds as Prometheus takes them: no trailing zeros.
            if frac == 0 {
                return write!(f, "{whole}");
            }
            let digits = format!("{frac:09}");
            return write!(f, "{whole}.{}", digits.trim_end_matches('0'));
        }
        if self.places == 0 {
            return write!(f, "{whole}");
        }
        write!(f, "{whole}.{frac:0width$}", width = self.places as usize)
    }
}

/// The current time as RFC 3339. Every answer carries one, so each thread
/// formats it once a second and copies it otherwise.
pub fn now_rfc3339() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = rfc3339(now);
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_round_half_up_with_integers() {
        use super::Decimal;
        use std::time::Duration;
        assert_eq!(
            Decimal::ms(Duration::from_micros(12_345), 1).to_string(),
            "12.3"
        );
        assert_eq!(
            Decimal::ms(Duration::from_micros(12_350), 1).to_string(),
            "12.4"
        );
        assert_eq!(
            Decimal::ms(Duration::from_nanos(84_499), 3).to_string(),
            "0.084"
        );
        assert_eq!(
            Decimal::ms(Duration::from_nanos(84_500), 3).to_string(),
            "0.085"
        );
        assert_eq!(Decimal::ms(Duration::ZERO, 1).to_string(), "0.0");
        assert_eq!(Decimal::secs(0).to_string(), "0");
        assert_eq!(Decimal::secs(123_400).to_string(), "0.0001234");
        assert_eq!(Decimal::secs(2_000_000_000).to_string(), "2");
        assert_eq!(Decimal::secs(1_500_000_001).to_string(), "1.500000001");
    }

    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_633_200_900);
        assert_eq!(rfc3339(t), "2026-11-25T19:00:00Z");
    }

    #[test]
    fn a_time_a_stamp_cannot_show_goes_to_humantime_which_refuses_it() {
        use std::fmt::Write;
        let shown = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        assert!(matches!(Rfc3339::of(shown), Rfc3339::Stamp(_)));
        assert_eq!(rfc3339(shown), "9999-12-31T23:59:59Z");
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        let other = Rfc3339::of(year_10000);
        assert!(matches!(other, Rfc3339::Humantime(_)));
        assert_eq!(write!(String::new(), "{other}"), Err(std::fmt::Error));
    }
}

/// Parses an RFC 3339 timestamp as dynport writes them.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

/// Serde support for `SystemTime` fields written as RFC 3339 strings.
pub mod rfc3339_serde {
    use serde::{Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// Drops a fraction of a second, which dynport never writes, so that a
    /// time read from the state file is written back unchanged.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        d.deserialize_str(TimeVisitor)
    }

    /// Reads the text where it lies, without a string of its own: a state
    /// of 20,000 leases holds 40,000 times.
    struct TimeVisitor;

    impl serde::de::Visitor<'_> for TimeVisitor {
        type Value = SystemTime;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 time")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SystemTime, E> {
            from_text(text).ok_or_else(|| E::custom("not an RFC 3339 time"))
        }
    }

    /// What [`deserialize`] makes of `text`: the time, to the second.
    pub fn from_text(text: &str) -> Option<SystemTime> {
        let since = super::parse_rfc3339(text)?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(UNIX_EPOCH + Duration::from_secs(since.as_secs()))
    }
}
