//! Usage analytics: `GET /api/v1/system/usage` as JSON, and the same
//! figures as `/metrics` series.

use super::metrics::family;
use super::{ApiError, App, query};
use crate::app::UsageReport;
use crate::app::usage::{ENDINGS, Histogram, Holder, ending_label};
use crate::http::Response;
use crate::util::time::{Decimal, now_rfc3339, rfc3339};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// `GET /api/v1/system/usage`, which takes no parameters. Written out by
/// hand, as `/metrics` is: a few fixed shapes of numbers.
pub fn usage(app: &App, raw_query: Option<&str>) -> Result<Response, ApiError> {
    query::parse(raw_query, &[])?;
    let report = app.usage();
    let u = &report.usage;
    let mut out = String::with_capacity(4096);
    out.push_str("{\"pools\":{");
    for (i, (name, c)) in report.pools.iter().enumerate() {
        let _ = write!(
            out,
            "{}{}:{{\"free\":{},\"in_use\":{},\"server\":{},\"leased\":{},\"excluded\":{}}}",
            comma(i),
            quoted(name),
            c.free,
            c.in_use,
            c.server,
            c.leased,
            c.excluded
        );
    }
    let _ = write!(out, "}},\"leased\":{},\"leased_by_uid\":[", report.leased);
    for (i, &(holder, ports)) in report.leased_by.iter().enumerate() {
        let uid = match holder {
            Holder::Uid(uid) => uid.to_string(),
            Holder::Remote => "\"remote\"".to_string(),
            Holder::Other => "\"other\"".to_string(),
        };
        let _ = write!(out, "{}{{\"uid\":{uid},\"ports\":{ports}}}", comma(i));
    }
    out.push_str("],\"lease_lifetimes\":{");
    for (i, e) in ENDINGS.into_iter().enumerate() {
        let _ = write!(out, "{}\"{}\":", comma(i), ending_label(e));
        histogram_json(&mut out, &u.lifetimes[e as usize]);
    }
    out.push_str("},\"grant_latency\":");
    histogram_json(&mut out, &u.grant_latency);
    let minutes = u.per_minute.last_hour(report.now_secs);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(minutes.start_secs);
    let list = |values: &[u32]| {
        values
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let _ = write!(
        out,
        ",\"per_minute\":{{\"start\":\"{}\",\"grants\":[{}],\"denials\":[{}]}}",
        rfc3339(start),
        list(&minutes.grants),
        list(&minutes.denials)
    );
    let (hour, day) = u.peaks(report.leased as u32, report.now_secs);
    let _ = write!(
        out,
        ",\"peak_leased\":{{\"hour\":{hour},\"day\":{day}}},\"timestamp\":\"{}\"}}",
        now_rfc3339()
    );
    Ok(Response::json(200, out.into_bytes()))
}

fn comma(i: usize) -> &'static str {
    if i == 0 { "" } else { "," }
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A histogram as Prometheus counts it: cumulative buckets by upper
/// bound in seconds, the last `"+Inf"`.
fn histogram_json<const N: usize>(out: &mut String, h: &Histogram<N>) {
    out.push_str("{\"buckets\":[");
    for (bound, n) in h.cumulative() {
        let _ = write!(out, "{{\"le\":{},\"count\":{n}}},", Decimal::secs(bound));
    }
    let count = h.count();
    let _ = write!(
        out,
        "{{\"le\":\"+Inf\",\"count\":{count}}}],\"count\":{count},\"sum_secs\":{}}}",
        Decimal::secs(h.sum_nanos)
    );
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
        for (state, n) in c.by_state() {
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
