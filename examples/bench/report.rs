//! What the benchmark measured, and the table made of it: medians over the
//! rounds, the ratios to the floors, each target with PASS or MISS.

use std::time::Duration;

use crate::client::LeaseLoad;
use crate::procs::Status;
use crate::table::{self, Row, median, mib, ms, quantile};
use crate::wrk::Run;
use crate::{CONNS, IDLE_CONNS, LEASE_CLIENTS, Options};

/// Index of each server in the arrays below.
const DYNPORT: usize = 0;
const FLOOR_A: usize = 1;
const FLOOR_B: usize = 2;

/// Everything measured in one run of the benchmark.
#[derive(Default)]
pub struct Results {
    pub body_bytes: usize,
    /// `runs[c][s]`: the runs at `CONNS[c]` connections against server `s`.
    pub runs: [[Vec<Run>; 3]; 2],
    pub idle: [Status; 3],
    pub with_idle_conns: [Status; 3],
    /// Whether dynport exited by itself on SIGTERM after the load.
    pub clean_exit: bool,
    pub scans: Option<Scans>,
    pub startups: Vec<Duration>,
    pub lease: Option<LeaseLoad>,
    pub portserver: Option<crate::portserver::Figures>,
    pub binary_bytes: u64,
    pub binary_stripped: bool,
    /// The 1-minute load average before and after the run.
    pub load_before: String,
    pub load_after: String,
}

pub struct Scans {
    pub method: &'static str,
    pub range: String,
    pub idle: Duration,
    pub busy: Duration,
    pub listeners: usize,
}

/// Medians of one connection count, by server.
struct Load {
    rps: [f64; 3],
    p99_ms: [f64; 3],
    /// The largest thread count and resident memory seen during the runs.
    threads: [u64; 3],
    rss_kib: [u64; 3],
    errors: u64,
    /// Runs left out of the medians, by server: see [`starved`].
    starved: [usize; 3],
}

/// A run that kept most of its connections waiting unserved: fewer than a
/// third of them had a request in flight on average. Its latency covers
/// only the lucky connections and its rate is not the server's, so it is
/// left out of the medians (tiny_http 0.12 does this now and then: a burst
/// of new connections can wait until others close).
pub fn starved(run: &Run, conns: usize) -> bool {
    run.served_conns < conns as f64 / 3.0
}

impl Load {
    fn of(runs: &[Vec<Run>; 3], conns: usize) -> Load {
        let kept: [Vec<&Run>; 3] = std::array::from_fn(|s| {
            let fed: Vec<&Run> = runs[s].iter().filter(|r| !starved(r, conns)).collect();
            // With every run starved, the figures are all there is.
            if fed.is_empty() {
                runs[s].iter().collect()
            } else {
                fed
            }
        });
        let each = |f: &dyn Fn(&Run) -> f64| {
            std::array::from_fn(|s| median(&kept[s].iter().map(|r| f(r)).collect::<Vec<_>>()))
        };
        let max = |f: &dyn Fn(&Run) -> u64| {
            std::array::from_fn(|s| runs[s].iter().map(f).max().unwrap_or(0))
        };
        Load {
            rps: each(&|r| r.rps),
            p99_ms: each(&|r| r.p99_ms),
            threads: max(&|r| r.during.threads),
            rss_kib: max(&|r| r.during.rss_kib),
            errors: runs.iter().flatten().map(|r| r.errors).sum(),
            starved: std::array::from_fn(|s| runs[s].len() - kept[s].len()),
        }
    }
}

/// The caption and the table, as printed.
pub fn render(r: &Results, options: &Options) -> String {
    let at = [
        Load::of(&r.runs[0], CONNS[0]),
        Load::of(&r.runs[1], CONNS[1]),
    ];
    let served = !r.runs[0][DYNPORT].is_empty();
    let mut rows = Vec::new();
    if served {
        throughput_rows(&mut rows, &at);
        resource_rows(&mut rows, r, &at[1]);
    }
    own_rows(&mut rows, r);
    let errors = at[0].errors + at[1].errors;
    let mut out = format!(
        "dynport benchmark: {} rounds of {} s per server and connection count, medians; \
         body {} bytes; wrk -t2; 127.0.0.1 only; load average {} before, {} after\n",
        options.rounds, options.secs, r.body_bytes, r.load_before, r.load_after
    );
    if errors > 0 {
        out.push_str(&format!(
            "WARNING: {errors} wrk errors or non-2xx answers\n"
        ));
    }
    for (c, load) in at.iter().enumerate() {
        for (s, name) in ["dynport", "floor a", "floor b"].iter().enumerate() {
            if load.starved[s] > 0 {
                out.push_str(&format!(
                    "NOTE: {name} left most of its {} connections unserved in {} of {} runs; \
                     those runs are not in its medians\n",
                    CONNS[c],
                    load.starved[s],
                    r.runs[c][s].len()
                ));
            }
        }
    }
    if served && !r.clean_exit {
        out.push_str("WARNING: dynport did not exit within 6 s of SIGTERM after the load\n");
    }
    out.push_str(&table::render(&rows));
    out
}

fn throughput_rows(rows: &mut Vec<Row>, at: &[Load; 2]) {
    for (c, load) in at.iter().enumerate() {
        let conns = CONNS[c];
        rows.push(Row::info(
            &format!("GET /api/v1/server/port, {conns} conns (req/s)"),
            load.rps.map(|v| format!("{v:.0}")),
        ));
        let ratio = |floor: usize| load.rps[DYNPORT] / load.rps[floor];
        let check = |floor: usize, name: &str, min: f64| {
            Row::check(
                &format!("  dynport / {name}, {conns} conns"),
                format!("{:.3}x", ratio(floor)),
                &format!(">= {min:.2}x"),
                ratio(floor) >= min,
            )
        };
        if c == 0 {
            rows.push(check(FLOOR_B, "floor b", 0.9));
            rows.push(check(FLOOR_A, "floor a", 1.3));
        } else {
            rows.push(check(FLOOR_A, "floor a", 1.6));
        }
    }
    for (c, load) in at.iter().enumerate() {
        let p99 = load.p99_ms;
        rows.push(
            Row::info(
                &format!("p99 latency, {} conns (ms)", CONNS[c]),
                p99.map(|v| format!("{v:.3}")),
            )
            .with_target("<= floor a", p99[DYNPORT] <= p99[FLOOR_A]),
        );
    }
}

fn resource_rows(rows: &mut Vec<Row>, r: &Results, busy: &Load) {
    let threads_busy = busy.threads;
    let threads_idle = r.idle.map(|s| s.threads);
    let threads_conns = r.with_idle_conns.map(|s| s.threads);
    rows.push(Row::info(
        "threads, idle",
        threads_idle.map(|t| t.to_string()),
    ));
    rows.push(Row::info(
        &format!("threads, {} conns (most seen)", CONNS[1]),
        threads_busy.map(|t| t.to_string()),
    ));
    let same = threads_idle[DYNPORT] == threads_busy[DYNPORT]
        && threads_idle[DYNPORT] == threads_conns[DYNPORT];
    rows.push(
        Row::info(
            &format!("threads, {IDLE_CONNS} idle conns"),
            threads_conns.map(|t| t.to_string()),
        )
        .with_target("same all 3 rows", same),
    );
    let mib_of = |kib: [u64; 3]| kib.map(|k| format!("{:.2}", mib(k)));
    let rss_idle = r.idle.map(|s| s.rss_kib);
    rows.push(
        Row::info("VmRSS, idle (MiB)", mib_of(rss_idle))
            .with_target("<= 3 MiB", mib(rss_idle[DYNPORT]) <= 3.0),
    );
    rows.push(
        Row::info(
            &format!("VmRSS, {} conns (MiB, most seen)", CONNS[1]),
            mib_of(busy.rss_kib),
        )
        .with_target("<= 4 MiB", mib(busy.rss_kib[DYNPORT]) <= 4.0),
    );
    rows.push(Row::info(
        &format!("VmRSS, {IDLE_CONNS} idle conns (MiB)"),
        mib_of(r.with_idle_conns.map(|s| s.rss_kib)),
    ));
}

fn own_rows(rows: &mut Vec<Row>, r: &Results) {
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
        "<= 1.5 MiB",
        size <= 1.5 && r.binary_stripped,
    ));
    if let Some(lease) = &r.lease {
        lease_rows(rows, lease);
    }
    if let Some(figures) = &r.portserver {
        crate::portserver::rows(rows, figures);
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
        &format!("  same, {} listeners in the range", s.listeners),
        format!("{:.3}", ms(s.busy)),
        "<= 3 ms",
        ms(s.busy) <= 3.0,
    ));
}

fn lease_rows(rows: &mut Vec<Row>, lease: &LeaseLoad) {
    let rate = lease.grants as f64 / lease.elapsed.as_secs_f64();
    rows.push(Row::check(
        &format!("lease grants/s, {LEASE_CLIENTS} clients (lease+release)"),
        format!("{rate:.0}"),
        ">= 3000/s",
        rate >= 3000.0,
    ));
    let p50 = ms(quantile(&lease.latencies, 0.5));
    rows.push(Row::check(
        "  grant latency p50 (ms)",
        format!("{p50:.3}"),
        "<= 1 ms",
        p50 <= 1.0 && lease.grants > 0,
    ));
    rows.push(Row::info(
        "  grant latency p99 (ms)",
        [
            format!("{:.3}", ms(quantile(&lease.latencies, 0.99))),
            String::new(),
            String::new(),
        ],
    ));
    // Each grant and each release must be in the state file before its
    // answer; group commit lets one write carry several of them.
    let per_write = (2 * lease.grants) as f64 / lease.state_writes.max(1) as f64;
    rows.push(Row::info(
        "  grants+releases per state-file write",
        [format!("{per_write:.2}"), String::new(), String::new()],
    ));
    if lease.failures > 0 {
        rows.push(Row::info(
            "  grants refused",
            [lease.failures.to_string(), String::new(), String::new()],
        ));
    }
}
