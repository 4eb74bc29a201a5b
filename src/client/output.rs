//! Text for people: aligned tables of leases and of the server's overview.
#![forbid(unsafe_code)]

use super::api::Lease;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Rows aligned in columns two spaces apart; the last column is not padded,
/// so no line ends in spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count() + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The live leases: a header and one row per lease.
pub fn leases_table(leases: &[Lease], now: SystemTime) -> String {
    let header = ["ID", "PORTS", "POOL", "OWNER", "UID", "PID", "EXPIRES"];
    let mut rows = vec![header.map(str::to_string).to_vec()];
    rows.extend(leases.iter().map(|l| {
        vec![
            clean(&l.id),
            port_list(&l.ports),
            clean(&l.pool),
            l.owner.as_deref().map_or_else(|| "-".to_string(), clean),
            l.uid
                .map_or_else(|| "remote".to_string(), |u| u.to_string()),
            l.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
            expiry(&crate::util::time::rfc3339(l.expires_at), now),
        ]
    }));
    table(&rows)
}

/// Ports with runs shortened: `4100-4102,4200`.
pub fn port_list(ports: &[u16]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
            _ => runs.push((p, p)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a},{b}"),
            _ => format!("{a}-{b}"),
        })
        .collect();
    runs.join(",")
}

/// `2026-11-25T19:05:00Z (in 4m 59s)`, or `(expired)` once past.
pub fn expiry(at: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339(at) {
        Ok(t) => match t.duration_since(now) {
            Ok(left) => format!("{at} (in {})", span(left)),
            Err(_) => format!("{at} (expired)"),
        },
        Err(_) => clean(at),
    }
}

/// A duration in whole seconds, as people read it: `1h 2m 3s`.
fn span(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Text from the server made safe for one table cell: no control characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The server's overview as `key  value` lines.
pub fn status_table(url: &str, o: &Value) -> String {
    let pm = &o["port_manager"];
    let counts = &pm["counts"];
    let range = &pm["port_range"];
    let rows: Vec<Vec<String>> = [
        ("url", url.to_string()),
        ("version", text(&o["version"])),
        ("pid", text(&o["pid"])),
        ("uptime", secs(&o["uptime_secs"])),
        ("host", text(&o["host"])),
        ("server port", text(&o["server_port"])),
        (
            "range",
            format!("{}-{}", text(&range["start"]), text(&range["end"])),
        ),
        ("free", text(&counts["free"])),
        ("in use", text(&counts["in_use"])),
        ("server", text(&counts["server"])),
        ("leased", text(&counts["leased"])),
        ("excluded", text(&counts["excluded"])),
        ("workers", text(&o["workers"])),
        ("requests", text(&o["requests_total"])),
        ("refresh", secs(&pm["refresh_secs"])),
        ("scan method", text(&pm["scan_method"])),
        ("last scan", last_scan(&pm["last_scan"])),
        ("state file", text(&o["state_file"])),
        ("memory", bytes(&o["memory_rss_bytes"])),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    table(&rows)
}

/// A JSON scalar as text; `-` when absent or null.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

fn secs(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| text(v), |s| span(Duration::from_secs(s)))
}

fn last_scan(v: &Value) -> String {
    if v.is_null() {
        return "never".to_string();
    }
    let ms = v["duration_ms"].as_f64().unwrap_or(0.0).max(0.0);
    let ms = crate::util::time::Decimal::ms(std::time::Duration::from_secs_f64(ms / 1000.0), 1);
    format!(
        "{} ({ms} ms, {} in use)",
        text(&v["at"]),
        text(&v["in_use"])
    )
}

/// Bytes in binary units: `2.8 MiB`.
fn bytes(v: &Value) -> String {
    let Some(n) = v.as_u64() else {
        return text(v);
    };
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut unit = 0;
    let mut div = 1u128;
    while u128::from(n) >= div * 1024 && unit + 1 < units.len() {
        div *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    // Tenths of the unit, rounded half up, in integers.
    let tenths = (u128::from(n) * 10 + div / 2) / div;
    format!("{}.{} {}", tenths / 10, tenths % 10, units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(id: &str, ports: &[u16], owner: Option<&str>, pid: Option<u32>) -> Lease {
        Lease {
            id: id.to_string(),
            ports: ports.to_vec(),
            pool: "default".to_string(),
            owner: owner.map(str::to_string),
            uid: None,
            protocol: crate::ports::lease::Protocol::Both,
            pid,
            pid_start: None,
            created_at: at("2026-11-25T19:00:00Z"),
            expires_at: at("2026-11-25T19:05:00Z"),
            ttl_secs: 300,
            name: None,
        }
    }

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string(), "C".to_string()],
            vec!["long".to_string(), "x".to_string(), String::new()],
        ];
        assert_eq!(table(&rows), "A     BB  C\nlong  x\n");
    }

    #[test]
    fn leases_table_has_a_header_and_one_row_per_lease() {
        let mut leases = [
            lease("0123456789abcdef", &[4100], Some("ci job 17"), Some(31337)),
            lease("fedcba9876543210", &[4102, 4101, 4103, 5000], None, None),
        ];
        leases[0].uid = Some(1000);
        let out = leases_table(&leases, at("2026-11-25T19:00:01Z"));
        assert_eq!(
            out,
            "ID                PORTS           POOL     OWNER      UID     PID    EXPIRES\n\
             0123456789abcdef  4100            default  ci job 17  1000    31337  2026-11-25T19:05:00Z (in 4m 59s)\n\
             fedcba9876543210  4101-4103,5000  default  -          remote  -      2026-11-25T19:05:00Z (in 4m 59s)\n"
        );
        assert_eq!(
            leases_table(&[], SystemTime::now()),
            "ID  PORTS  POOL  OWNER  UID  PID  EXPIRES\n"
        );
    }

    #[test]
    fn port_list_shortens_runs_of_three_or_more() {
        assert_eq!(port_list(&[3]), "3");
        assert_eq!(port_list(&[8, 7]), "7,8");
        assert_eq!(port_list(&[1, 2, 3, 9, 65535]), "1-3,9,65535");
        assert_eq!(port_list(&[]), "");
    }

    #[test]
    fn expiry_says_expired_once_past() {
        let now = at("2026-11-25T20:00:00Z");
        assert_eq!(
            expiry("2026-11-25T19:05:00Z", now),
            "2026-11-25T19:05:00Z (expired)"
        );
        assert_eq!(expiry("soon", now), "soon");
    }

    #[test]
    fn owner_control_characters_cannot_break_the_table() {
        let leases = [lease("a", &[1], Some("x\ny\tz"), None)];
        assert!(leases_table(&leases, at("2026-11-25T19:00:00Z")).contains("x?y?z"));
    }

    #[test]
    fn status_table_shows_the_overview() {
        let o = json!({
            "name": "dynport", "version": "0.1.0", "pid": 4242, "uptime_secs": 3723,
            "host": "127.0.0.1", "server_port": 3456, "workers": 4, "requests_total": 17,
            "port_manager": {
                "status": "active", "port_range": {"start": 3000, "end": 3009},
                "counts": {"free": 6, "in_use": 1, "server": 1, "leased": 1, "excluded": 1},
                "refresh_secs": 60, "scan_method": "procfs",
                "last_scan": {"at": "2026-11-25T19:00:00Z", "duration_ms": 0.84, "in_use": 1}
            },
            "state_file": "state/dynamic_ports.json", "memory_rss_bytes": 2936012,
            "timestamp": "2026-11-25T19:00:00Z"
        });
        let expected = "\
url          http://127.0.0.1:3456
version      0.1.0
pid          4242
uptime       1h 2m 3s
host         127.0.0.1
server port  3456
range        3000-3009
free         6
in use       1
server       1
leased       1
excluded     1
workers      4
requests     17
refresh      1m
scan method  procfs
last scan    2026-11-25T19:00:00Z (0.8 ms, 1 in use)
state file   state/dynamic_ports.json
memory       2.8 MiB
";
        assert_eq!(status_table("http://127.0.0.1:3456", &o), expected);
    }

    #[test]
    fn status_table_shows_dashes_for_what_is_missing() {
        let out = status_table("http://h:1", &json!({"version": "9"}));
        assert!(out.contains("server port  -\n"), "{out}");
        assert!(out.contains("last scan    never\n"), "{out}");
        assert!(out.contains("memory       -\n"), "{out}");
    }
}
