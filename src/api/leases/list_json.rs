//! The answer to `GET /api/v1/ports/leases` written by hand, byte for byte
//! what serde_json writes for `LeasesAnswer<LeaseView>` (the tests hold the
//! two together). A list of thousands is written under the lease table's
//! read lock, and serde's call per field and check per byte were most of it.
#![forbid(unsafe_code)]

use crate::http::push_number;
use crate::ports::lease::{Lease, Protocol};
use crate::ports::wire::Time;
use crate::util::time::Rfc3339;
use std::time::SystemTime;

/// Writes `{"leases":[...],"timestamp":"..."}` for `leases` in their order.
pub fn write_list<'a>(out: &mut Vec<u8>, leases: impl Iterator<Item = &'a Lease>, timestamp: &str) {
    out.extend_from_slice(b"{\"leases\":[");
    for (i, lease) in leases.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_lease(out, lease);
    }
    out.extend_from_slice(b"],\"timestamp\":");
    string(out, timestamp);
    out.push(b'}');
}

/// One lease as `LeaseView` shows it: the same keys in the same order.
fn write_lease(out: &mut Vec<u8>, l: &Lease) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &l.id);
    out.extend_from_slice(b",\"ports\":[");
    for (i, &port) in l.ports.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_number(out, port.into());
    }
    out.extend_from_slice(b"],\"pool\":");
    string(out, &l.pool);
    out.extend_from_slice(b",\"owner\":");
    match &l.owner {
        Some(owner) => string(out, owner),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"uid\":");
    optional_number(out, l.uid);
    out.extend_from_slice(b",\"protocol\":");
    out.extend_from_slice(protocol(l.protocol));
    out.extend_from_slice(b",\"pid\":");
    optional_number(out, l.pid);
    out.extend_from_slice(b",\"created_at\":");
    time(out, l.created_at);
    out.extend_from_slice(b",\"expires_at\":");
    time(out, l.expires_at);
    out.extend_from_slice(b",\"ttl_secs\":");
    push_number(out, l.ttl_secs);
    out.extend_from_slice(b",\"name\":");
    match &l.name {
        Some(name) => string(out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// A JSON string. Ids, pool names and nearly every owner need no escape
/// and are copied whole; any other goes through serde_json's escaping,
/// which changes only control characters, `"` and `\`.
fn string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // A string serialises into a Vec without fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

fn optional_number(out: &mut Vec<u8>, n: Option<u32>) {
    match n {
        Some(n) => push_number(out, n.into()),
        None => out.extend_from_slice(b"null"),
    }
}

fn protocol(p: Protocol) -> &'static [u8] {
    match p {
        Protocol::Both => b"\"both\"",
        Protocol::Tcp => b"\"tcp\"",
        Protocol::Udp => b"\"udp\"",
    }
}

/// A time as RFC 3339 ([`Rfc3339`]). One a stamp cannot show goes the way
/// `LeaseView` sends it (serde_json then panics, and the request answers
/// 500).
fn time(out: &mut Vec<u8>, t: SystemTime) {
    match Rfc3339::of(t) {
        Rfc3339::Stamp(stamp) => {
            out.push(b'"');
            out.extend_from_slice(stamp.as_bytes());
            out.push(b'"');
        }
        Rfc3339::Humantime(_) => {
            let _ = serde_json::to_writer(&mut *out, &Time(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::leases::LeaseView;
    use crate::ports::wire::LeasesAnswer;
    use std::time::{Duration, UNIX_EPOCH};

    /// What serde_json writes for the same leases: the answer as it was
    /// before the list was written by hand.
    fn by_serde(leases: &[Lease], timestamp: &str) -> String {
        let answer = LeasesAnswer {
            leases: leases.iter().map(LeaseView::from).collect(),
            timestamp: timestamp.to_string(),
        };
        serde_json::to_string(&answer).expect("a lease serialises")
    }

    fn by_hand(leases: &[Lease], timestamp: &str) -> String {
        let mut out = Vec::new();
        write_list(&mut out, leases.iter(), timestamp);
        String::from_utf8(out).expect("the list is UTF-8")
    }

    fn lease(i: u64, owner: Option<&str>) -> Lease {
        let created = UNIX_EPOCH + Duration::new(1_795_633_200 + i * 7919, (i * 123_457) as u32);
        Lease {
            id: format!("lease-{i}_Az09"),
            ports: (0..i % 4).map(|k| (10_000 + i + k) as u16).collect(),
            pool: ["default", "web-pool_2", "é"][i as usize % 3].to_string(),
            owner: owner.map(str::to_string),
            uid: [None, Some(0), Some(u32::MAX), Some(1000)][i as usize % 4],
            protocol: [Protocol::Both, Protocol::Tcp, Protocol::Udp][i as usize % 3],
            pid: [Some(1), None, Some(u32::MAX)][i as usize % 3],
            pid_start: Some(i),
            created_at: created,
            expires_at: created + Duration::from_millis(3_600_999),
            ttl_secs: [3600, 0, u64::MAX][i as usize % 3],
            name: [None, Some("web"), Some("fix-ui.shop")][i as usize % 3].map(str::to_string),
        }
    }

    const ODD_OWNERS: [&str; 12] = [
        "",
        "plain-owner",
        "say \"hi\"",
        r"C:\path\to\thing\",
        "\u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1b}\u{1f}",
        "del \u{7f} and nbsp \u{a0}",
        "crème brûlée, Ünïcödé, 日本語",
        "emoji 😀🦀👩‍👩‍👧",
        "line\u{2028}para\u{2029}sep",
        "</script><!-- & ' `",
        "\\\"\\\"",
        "end with control\u{1f}",
    ];

    #[test]
    fn odd_owners_are_written_as_serde_json_writes_them() {
        let leases: Vec<Lease> = ODD_OWNERS
            .iter()
            .enumerate()
            .map(|(i, owner)| lease(i as u64, Some(owner)))
            .collect();
        let timestamp = "2026-11-25T19:00:00Z";
        assert_eq!(by_hand(&leases, timestamp), by_serde(&leases, timestamp));
    }

    #[test]
    fn every_field_shape_is_written_as_serde_json_writes_it() {
        // No owner, no uid, no pid, no port, many ports, each protocol.
        let leases: Vec<Lease> = (0..500).map(|i| lease(i, None)).collect();
        let timestamp = "odd \"stamp\"\n";
        assert_eq!(by_hand(&leases, timestamp), by_serde(&leases, timestamp));
    }

    #[test]
    fn no_lease_is_an_empty_list() {
        let timestamp = "2026-11-25T19:00:00Z";
        let expected = r#"{"leases":[],"timestamp":"2026-11-25T19:00:00Z"}"#;
        assert_eq!(by_hand(&[], timestamp), expected);
        assert_eq!(by_serde(&[], timestamp), expected);
    }

    #[test]
    fn one_lease_reads_as_expected() {
        let mut one = lease(2, Some("ci \"job\""));
        one.ports = vec![10_002, 65_535];
        let expected = concat!(
            r#"{"leases":[{"id":"lease-2_Az09","ports":[10002,65535],"pool":"é","#,
            r#""owner":"ci \"job\"","uid":4294967295,"protocol":"udp","pid":4294967295,"#,
            r#""created_at":"2026-11-25T23:23:58Z","expires_at":"2026-11-26T00:23:58Z","#,
            r#""ttl_secs":18446744073709551615,"name":"fix-ui.shop"}],"timestamp":"t"}"#,
        );
        assert_eq!(by_hand(&[one], "t"), expected);
    }
}
