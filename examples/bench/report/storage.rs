//! The storage rows: lease grants as leases grow, start-up with 20,000
//! leases in the state, and the lease list with 5,000.

use crate::LEASE_CLIENTS;
use crate::storage::{
    FILL_CHUNK, Filled, LIST_LEASES, RANGE, REST_CHUNK, REST_LEASES, STARTUP_LEASES, Storage,
};
use crate::table::{Row, median, mib, ms, quantile};

pub fn rows(rows: &mut Vec<Row>, s: &Storage) {
    let none = s.filled.iter().find(|f| f.leased == 0);
    for filled in &s.filled {
        filled_rows(rows, filled, none);
    }
    if s.rest_rss_kib > 0 {
        let rss = mib(s.rest_rss_kib);
        rows.push(Row::check(
            &format!(
                "VmRSS, {} ports in {REST_LEASES} leases (MiB)",
                REST_LEASES * REST_CHUNK
            ),
            format!("{rss:.2}"),
            "<= 8 MiB",
            rss <= 8.0,
        ));
    }
    if !s.startups.is_empty() {
        let took = ms(quantile(&s.startups, 0.5));
        rows.push(Row::check(
            &format!(
                "startup to first answer, {STARTUP_LEASES} leases in the state, median of {} (ms)",
                s.startups.len()
            ),
            format!("{took:.2}"),
            "<= 100 ms",
            took <= 100.0,
        ));
        rows.push(Row::dynport(
            "  VmRSS after the first answer (MiB, most seen)",
            format!("{:.2}", mib(s.startup_rss_kib)),
        ));
        rows.push(Row::dynport(
            "  state file (KiB)",
            format!("{:.0}", s.startup_state_bytes as f64 / 1024.0),
        ));
    }
    if !s.lists.is_empty() {
        let took = ms(quantile(&s.lists, 0.5));
        rows.push(Row::check(
            &format!(
                "GET /api/v1/ports/leases, {LIST_LEASES} leases, median of {} (ms)",
                s.lists.len()
            ),
            format!("{took:.2}"),
            "<= 10 ms",
            took <= 10.0,
        ));
        rows.push(Row::dynport(
            "  answer (KiB)",
            format!("{:.0}", s.list_bytes as f64 / 1024.0),
        ));
    }
}

/// The median grants/s over the rounds of one loop.
fn rate(f: &Filled) -> f64 {
    median(&f.loads.iter().map(|l| l.per_sec()).collect::<Vec<_>>())
}

/// The median over the rounds of `f`'s rate over `none`'s in the same
/// round: the rounds take the levels in turn, so each ratio compares two
/// loops run seconds apart.
fn ratio(f: &Filled, none: &Filled) -> f64 {
    let each: Vec<f64> = f
        .loads
        .iter()
        .zip(&none.loads)
        .map(|(a, b)| a.per_sec() / b.per_sec())
        .collect();
    median(&each)
}

fn filled_rows(rows: &mut Vec<Row>, f: &Filled, none: Option<&Filled>) {
    let grants = rate(f);
    let p50 = median(
        &f.loads
            .iter()
            .map(|l| ms(quantile(&l.latencies, 0.5)))
            .collect::<Vec<_>>(),
    );
    let p99 = median(
        &f.loads
            .iter()
            .map(|l| ms(quantile(&l.latencies, 0.99)))
            .collect::<Vec<_>>(),
    );
    let largest = f.leased == crate::storage::FILLED[crate::storage::FILLED.len() - 1];
    let title = format!(
        "lease grants/s, {LEASE_CLIENTS} clients, range {RANGE}, {} ports leased first (median of {})",
        f.leased,
        f.loads.len()
    );
    rows.push(Row::dynport(&title, format!("{grants:.0}")));
    if f.leased > 0 {
        rows.push(Row::dynport(
            &format!("  leasing them, {FILL_CHUNK} per lease, one client (s)"),
            format!("{:.2}", f.fill.as_secs_f64()),
        ));
    }
    if let (true, Some(none)) = (largest, none) {
        let ratio = ratio(f, none);
        rows.push(Row::check(
            &format!(
                "  grants/s with {} leased / with none, same round (median)",
                f.leased
            ),
            format!("{ratio:.3}x"),
            ">= 0.80x",
            ratio >= 0.8,
        ));
    }
    let p50_row = Row::dynport("  grant latency p50 (ms)", format!("{p50:.3}"));
    rows.push(match largest {
        true => p50_row.with_target("<= 1 ms", p50 <= 1.0 && grants > 0.0),
        false => p50_row,
    });
    rows.push(Row::dynport(
        "  grant latency p99 (ms)",
        format!("{p99:.3}"),
    ));
    let rss = mib(f.rss_kib);
    let rss_row = Row::dynport(
        "  VmRSS during the loads (MiB, most seen)",
        format!("{rss:.2}"),
    );
    rows.push(match largest {
        true => rss_row.with_target("<= 8 MiB", rss <= 8.0),
        false => rss_row,
    });
    rows.push(Row::dynport(
        "  state file after the loads (KiB)",
        format!("{:.0}", f.state_bytes as f64 / 1024.0),
    ));
}
