//! `GET /metrics`: dynport's counters in the Prometheus text format.

use super::App;
use crate::app::metrics::{Denial, Metrics};
use crate::http::Response;
use std::fmt::Write;

/// Renders every metric family.
pub fn render(app: &App) -> Response {
    let summary = app.summary();
    let c = summary.counts;
    let m = &app.metrics;
    let http = app.http_stats();
    let mut out = String::with_capacity(2048);
    let states = c.by_state();
    family(
        &mut out,
        "dynport_ports",
        "gauge",
        "Ports of the range by state.",
    );
    for (state, n) in states {
        let _ = writeln!(out, "dynport_ports{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut out,
        "dynport_leases_active",
        "Live leases.",
        summary.leases as u64,
    );
    family(
        &mut out,
        "dynport_names",
        "gauge",
        "Names of leases and aliases: live, or retained for their owner.",
    );
    let (live, retained) = app.name_counts();
    let _ = writeln!(out, "dynport_names{{state=\"live\"}} {live}");
    let _ = writeln!(out, "dynport_names{{state=\"retained\"}} {retained}");
    counter(
        &mut out,
        "dynport_lease_grants_total",
        "Leases granted.",
        Metrics::get(&m.grants),
    );
    family(
        &mut out,
        "dynport_lease_denials_total",
        "counter",
        "Lease requests denied, by reason.",
    );
    for why in Denial::ALL {
        let _ = writeln!(
            out,
            "dynport_lease_denials_total{{reason=\"{}\"}} {}",
            why.label(),
            m.denials(why)
        );
    }
    family(
        &mut out,
        "dynport_lease_ends_total",
        "counter",
        "Leases ended, by reason.",
    );
    let ends = [
        ("released", Metrics::get(&m.releases)),
        ("expired", Metrics::get(&m.expiries)),
        ("owner_exited", Metrics::get(&m.owner_exits)),
    ];
    for (reason, n) in ends {
        let _ = writeln!(out, "dynport_lease_ends_total{{reason=\"{reason}\"}} {n}");
    }
    counter(
        &mut out,
        "dynport_scans_total",
        "Background scans of the range.",
        Metrics::get(&m.scans),
    );
    family(
        &mut out,
        "dynport_scan_duration_seconds",
        "gauge",
        "Duration of the last scan.",
    );
    let secs = crate::util::time::Decimal::secs(Metrics::get(&m.last_scan_nanos));
    let _ = writeln!(out, "dynport_scan_duration_seconds {secs}");
    family(
        &mut out,
        "dynport_http_requests_total",
        "counter",
        "HTTP responses by status class.",
    );
    for (i, n) in http.by_class.iter().enumerate() {
        let _ = writeln!(
            out,
            "dynport_http_requests_total{{class=\"{}xx\"}} {n}",
            i + 1
        );
    }
    gauge(
        &mut out,
        "dynport_http_open_connections",
        "Open HTTP connections.",
        http.open_connections as u64,
    );
    counter(
        &mut out,
        "dynport_state_writes_total",
        "State file writes.",
        Metrics::get(&m.state_writes),
    );
    counter(
        &mut out,
        "dynport_state_write_failures_total",
        "State file writes that failed.",
        Metrics::get(&m.state_write_failures),
    );
    counter(
        &mut out,
        "dynport_auth_failures_total",
        "Mutating requests refused for a missing or wrong token.",
        Metrics::get(&m.auth_failures),
    );
    let port = summary.server_port.map_or(0, u64::from);
    gauge(
        &mut out,
        "dynport_server_port",
        "The port this server listens on.",
        port,
    );
    gauge(
        &mut out,
        "dynport_kernel_reserved_ports",
        "Entries dynport holds in the kernel's ip_local_reserved_ports (--reserve-kernel).",
        app.kernel_reserved_count().unwrap_or(0) as u64,
    );
    super::usage::metrics(&mut out, &app.usage());
    let rss = crate::sys::process::memory_rss_bytes().unwrap_or(0);
    gauge(
        &mut out,
        "dynport_resident_memory_bytes",
        "Resident memory of the server.",
        rss,
    );
    Response {
        status: 200,
        headers: Vec::new(),
        content_type: "text/plain; version=0.0.4",
        body: out.into_bytes(),
    }
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}
