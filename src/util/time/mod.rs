//! Wall-clock helpers: every timestamp dynport shows is RFC 3339 in UTC.

use std::time::SystemTime;

mod lease_clock;
pub(crate) mod stamp;

pub use lease_clock::{LeaseClock, STEP, Step};

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2026-11-25T19:00:00Z`.
/// Times [`stamp`] cannot show (before 1970, after 9999) go to humantime,
/// which refuses them as it always did.
pub fn rfc3339(t: SystemTime) -> String {
    match stamp::format(t) {
        Some(stamp) => stamp.as_str().to_string(),
        None => humantime::format_rfc3339_seconds(t).to_string(),
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
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_633_200_900);
        assert_eq!(rfc3339(t), "2026-11-25T19:00:00Z");
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
