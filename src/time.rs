//! Wall-clock helpers: every timestamp dynport shows is RFC 3339 in UTC.

use std::time::SystemTime;

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2026-11-25T19:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
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
