//! Usage analytics: `GET /api/v1/system/usage` as JSON, and the same
//! figures as `/metrics` series.

use super::metrics::family;
use super::{ApiError, App, json, query};
use crate::app::UsageReport;
use crate::app::usage::{ENDINGS, Histogram, Holder, ending_label};
use crate::http::Response;
use crate::util::time::{Decimal, now_rfc3339, rfc3339};
use serde_json::{Map, Value, json};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// `GET /api/v1/system/usage`, which takes no parameters.
pub fn usage(app: &App, raw_query: Option<&str>) -> Result<Response, ApiError> {
    query::parse(raw_query, &[])?;
    let report = app.usage();
    let u = &report.usage;
    let pools: Map<String, Value> = (report.pools.iter())
        .map(|(name, counts)| (name.clone(), json!(counts)))
        .collect();
    let by_uid: Vec<Value> = (report.leased_by.iter())
        .map(|&(holder, ports)| json!({"uid": holder_json(holder), "ports": ports}))
        .collect();
    let lifetimes: Map<String, Value> = (ENDINGS.iter())
        .map(|&e| {
            (
                ending_label(e).to_string(),
                histogram_json(&u.lifetimes[e as usize]),
            )
        })
        .collect();
    let minutes = u.per_minute.last_hour(report.now_secs);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(minutes.start_secs);
    let (hour, day) = u.peaks(report.leased as u32, report.now_secs);
    let body = json!({
        "pools": pools,
        "leased": report.leased,
        "leased_by_uid": by_uid,
        "lease_lifetimes": lifetimes,
        "grant_latency": histogram_json(&u.grant_latency),
        "per_minute": {
            "start": rfc3339(start),
            "grants": minutes.grants,
            "denials": minutes.denials,
        },
        "peak_leased": {"hour": hour, "day": day},
        "timestamp": now_rfc3339(),
    });
    Ok(json(200, &body))
}

fn holder_json(holder: Holder) -> Value {
    match holder {
        Holder::Uid(uid) => json!(uid),
        Holder::Remote => json!("remote"),
        Holder::Other => json!("other"),
    }
}

/// A histogram as Prometheus counts it: cumulative buckets by upper
/// bound in seconds, the last `+Inf`.
fn histogram_json<const N: usize>(h: &Histogram<N>) -> Value {
    let mut buckets: Vec<Value> = (h.cumulative())
        .map(|(bound, n)| json!({"le": secs(bound), "count": n}))
        .collect();
    buckets.push(json!({"le": "+Inf", "count": h.count()}));
    json!({"buckets": buckets, "count": h.count(), "sum_secs": secs(h.sum_nanos)})
}

fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// The usage series of `/metrics`.
pub fn metrics(out: &mut String, report: &UsageReport) {
    family(
        out,
        "dynport_pool_ports",
        "gauge",
        "Ports of each pool by state.",
    );
    for (pool, c) in &report.pools {
        let pool = label_value(pool);
        let states = [
            ("free", c.free),
            ("in_use", c.in_use),
            ("server", c.server),
            ("leased", c.leased),
            ("excluded", c.excluded),
        ];
        for (state, n) in states {
            let _ = writeln!(
                out,
                "dynport_pool_ports{{pool=\"{pool}\",state=\"{state}\"}} {n}"
            );
        }
    }
    let help =
        "Leased ports of the 50 users holding most (uid, or remote), and of all others (other).";
    family(out, "dynport_leased_ports", "gauge", help);
    for &(holder, ports) in &report.leased_by {
        let uid = match holder {
            Holder::Uid(uid) => uid.to_string(),
            Holder::Remote => "remote".to_string(),
            Holder::Other => "other".to_string(),
        };
        let _ = writeln!(out, "dynport_leased_ports{{uid=\"{uid}\"}} {ports}");
    }
    let u = &report.usage;
    let help = "How long ended leases lived, by how they ended.";
    family(out, "dynport_lease_lifetime_seconds", "histogram", help);
    for e in ENDINGS {
        let label = format!("reason=\"{}\",", ending_label(e));
        histogram(
            out,
            "dynport_lease_lifetime_seconds",
            &label,
            &u.lifetimes[e as usize],
        );
    }
    let help = "Time from a lease request being taken to its grant being durable.";
    family(
        out,
        "dynport_lease_grant_latency_seconds",
        "histogram",
        help,
    );
    histogram(
        out,
        "dynport_lease_grant_latency_seconds",
        "",
        &u.grant_latency,
    );
    let help = "The most ports leased at once over the last hour and the last day.";
    family(out, "dynport_leased_ports_peak", "gauge", help);
    let (hour, day) = u.peaks(report.leased as u32, report.now_secs);
    let _ = writeln!(out, "dynport_leased_ports_peak{{window=\"hour\"}} {hour}");
    let _ = writeln!(out, "dynport_leased_ports_peak{{window=\"day\"}} {day}");
}

/// The series of one histogram, `labels` (each followed by a comma) on
/// each.
fn histogram<const N: usize>(out: &mut String, name: &str, labels: &str, h: &Histogram<N>) {
    for (bound, n) in h.cumulative() {
        let le = Decimal::secs(bound);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {n}");
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
    let bare = labels.trim_end_matches(',');
    let braces = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{{{s}}}")
        }
    };
    let sum = Decimal::secs(h.sum_nanos);
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(bare));
    let _ = writeln!(out, "{name}_count{} {count}", braces(bare));
}

/// `text` as a label value: backslash, quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
