//! The rows no floor has: scan, startup, binary size, and lease grants over
//! TCP (dynport and the baseline) and over dynport's Unix socket.

use crate::LEASE_CLIENTS;
use crate::leases::{LeaseLoad, Leases};
use crate::table::{Row, SERVERS, median, ms, quantile};

use super::{BASELINE, DYNPORT, Results, Scans};

pub fn rows(rows: &mut Vec<Row>, r: &Results) {
    if let Some(scans) = &r.scans {
        scan_rows(rows, scans);
    }
    if !r.startups.is_empty() {
        let startup = ms(quantile(&r.startups, 0.5));
        let figure = format!(
            "startup to first answer, median of {} (ms)",
            r.startups.len()
        );
        rows.push(Row::check(
            &figure,
            format!("{startup:.2}"),
            "<= 10 ms",
            startup <= 10.0,
        ));
    }
    let size = r.binary_bytes as f64 / (1024.0 * 1024.0);
    let stripped = if r.binary_stripped {
        "stripped"
    } else {
        "NOT stripped"
    };
    rows.push(Row::check(
        &format!("release binary, {stripped} (MiB)"),
        format!("{size:.2}"),
        "<= 2.0 MiB",
        size <= 2.0 && r.binary_stripped,
    ));
    if let Some(leases) = &r.leases {
        lease_rows(rows, leases);
    }
    if let Some(idle) = &r.idle_switches {
        rows.push(Row::check(
            "voluntary context switches, 10 s idle (all threads)",
            idle.alone.to_string(),
            "0",
            idle.alone == 0,
        ));
        rows.push(Row::check(
            "  same, 100 idle kept-alive connections open",
            idle.kept_alive.to_string(),
            "0",
            idle.kept_alive == 0,
        ));
        rows.push(Row::check(
            "  same, one event stream open, between its 15 s comments",
            idle.event_stream.to_string(),
            "0",
            idle.event_stream == 0,
        ));
    }
    if let Some(holders) = &r.holders {
        rows.extend(crate::holders::rows(holders));
    }
    if let Some(lookups) = &r.lookups {
        rows.extend(crate::lookups::rows(lookups));
    }
    if let Some(figures) = &r.portserver {
        crate::portserver::rows(rows, figures);
    }
    if let Some(pipelined) = &r.pipelined {
        rows.extend(crate::pipelined::rows(pipelined));
    }
}

fn scan_rows(rows: &mut Vec<Row>, s: &Scans) {
    rows.push(Row::check(
        &format!("scan {} by {}, median (ms)", s.range, s.method),
        format!("{:.3}", ms(s.idle)),
        "<= 1 ms",
        ms(s.idle) <= 1.0,
    ));
    rows.push(Row::check(
        &format!(
            "  same, {} TCP listeners and {} UDP sockets in the range",
            s.listeners, s.udp_sockets
        ),
        format!("{:.3}", ms(s.busy)),
        "<= 3 ms",
        ms(s.busy) <= 3.0,
    ));
}

/// The medians over the rounds of one kind of lease load.
#[derive(Clone, Copy)]
struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    per_write: f64,
    failures: u64,
}

impl Figures {
    fn of(loads: &[LeaseLoad]) -> Option<Figures> {
        if loads.is_empty() {
            return None;
        }
        let each = |f: &dyn Fn(&LeaseLoad) -> f64| median(&loads.iter().map(f).collect::<Vec<_>>());
        Some(Figures {
            per_sec: each(&|l| l.per_sec()),
            p50_ms: each(&|l| ms(quantile(&l.latencies, 0.5))),
            p99_ms: each(&|l| ms(quantile(&l.latencies, 0.99))),
            per_write: each(&|l| l.changes_per_write()),
            failures: loads.iter().map(|l| l.failures).sum(),
        })
    }
}

fn lease_rows(rows: &mut Vec<Row>, leases: &Leases) {
    let rounds = leases.tcp.len();
    let (Some(tcp), Some(unix)) = (Figures::of(&leases.tcp), Figures::of(&leases.unix)) else {
        return;
    };
    let baseline = Figures::of(&leases.baseline);
    let title = format!("lease grants/s, {LEASE_CLIENTS} clients, TCP (median of {rounds} rounds)");
    figure_rows(rows, &title, tcp, baseline, true);
    if let Some(baseline) = baseline {
        rows.push(Row::dynport(
            "  dynport / baseline, grants/s over TCP",
            format!("{:.3}x", tcp.per_sec / baseline.per_sec),
        ));
    }
    let title = format!("lease grants/s, {LEASE_CLIENTS} clients, Unix socket (same rounds)");
    figure_rows(rows, &title, unix, None, false);
    rows.push(Row::dynport(
        "  Unix / TCP, grants/s",
        format!("{:.3}x", unix.per_sec / tcp.per_sec),
    ));
}

/// Rate, latency and changes per write of dynport (and the baseline); with
/// `targets`, the rate and p50 checked against the lease targets.
fn figure_rows(
    rows: &mut Vec<Row>,
    title: &str,
    dynport: Figures,
    baseline: Option<Figures>,
    targets: bool,
) {
    let values = |f: &dyn Fn(Figures) -> String| {
        let mut values: [String; SERVERS] = Default::default();
        values[DYNPORT] = f(dynport);
        values[BASELINE] = baseline.map(f).unwrap_or_default();
        values
    };
    let rate = Row::info(title, values(&|f| format!("{:.0}", f.per_sec)));
    let p50 = Row::info(
        "  grant latency p50 (ms)",
        values(&|f| format!("{:.3}", f.p50_ms)),
    );
    if targets {
        let grants = dynport.per_sec >= 3000.0;
        rows.push(rate.with_target(">= 3000/s", grants));
        rows.push(p50.with_target("<= 1 ms", dynport.p50_ms <= 1.0 && dynport.per_sec > 0.0));
    } else {
        rows.extend([rate, p50]);
    }
    rows.push(Row::info(
        "  grant latency p99 (ms)",
        values(&|f| format!("{:.3}", f.p99_ms)),
    ));
    rows.push(Row::info(
        "  grants+releases per state-file write",
        values(&|f| format!("{:.2}", f.per_write)),
    ));
    if dynport.failures > 0 || baseline.is_some_and(|b| b.failures > 0) {
        rows.push(Row::info(
            "  grants refused (all rounds)",
            values(&|f| f.failures.to_string()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(grants: u64, p50_ms: u64, state_writes: u64) -> LeaseLoad {
        LeaseLoad {
            grants,
            failures: 1,
            elapsed: Duration::from_secs(1),
            latencies: vec![Duration::from_millis(p50_ms); 3],
            state_writes,
        }
    }

    #[test]
    fn lease_figures_are_medians_of_the_rounds_and_refusals_a_sum() {
        let loads = [load(3000, 2, 1000), load(1000, 9, 500), load(2000, 1, 100)];
        let f = Figures::of(&loads).unwrap();
        assert_eq!(f.per_sec, 2000.0);
        assert_eq!(f.p50_ms, 2.0);
        assert_eq!(f.per_write, 6.0);
        assert_eq!(f.failures, 3);
        assert!(Figures::of(&[]).is_none());
    }
}
