//! What the benchmark measured, and the table made of it: medians over the
//! rounds, the ratios to the baseline and the floors, each target with PASS
//! or MISS.

mod get;
mod own;
mod storage;

use std::time::Duration;

use crate::client::Churn;
use crate::leases::Leases;
use crate::procs::Status;
use crate::table::{self, SERVERS};
use crate::wrk::Run;
use crate::{CONNS, Options};

pub use get::starved;

/// Index of each server in the arrays below and in the table's columns.
pub const DYNPORT: usize = 0;
pub const BASELINE: usize = 1;
pub const FLOOR_A: usize = 2;
pub const FLOOR_B: usize = 3;
/// The servers' names, by index, as the progress lines and notes give them.
pub const NAMES: [&str; SERVERS] = ["dynport", "baseline", "floor a", "floor b"];

/// Everything measured in one run of the benchmark.
#[derive(Default)]
pub struct Results {
    pub body_bytes: usize,
    /// `runs[c][s]`: the runs at `CONNS[c]` connections against server `s`;
    /// empty for a server that did not run (the baseline without
    /// `--baseline`).
    pub runs: [[Vec<Run>; SERVERS]; 2],
    pub idle: [Option<Status>; SERVERS],
    pub with_idle_conns: [Option<Status>; SERVERS],
    /// Rounds of new connections against dynport and the baseline.
    pub churn: [Vec<Churn>; 2],
    /// Whether dynport exited by itself on SIGTERM after the load.
    pub clean_exit: bool,
    pub scans: Option<Scans>,
    pub startups: Vec<Duration>,
    pub leases: Option<Leases>,
    pub idle_switches: Option<crate::idle::Idle>,
    pub holders: Option<crate::holders::Holders>,
    pub lookups: Option<crate::lookups::Lookups>,
    pub portserver: Option<crate::portserver::Figures>,
    pub storage: Option<crate::storage::Storage>,
    pub pipelined: Option<crate::pipelined::Pipelined>,
    pub names: Option<crate::names::Names>,
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
    pub udp_sockets: usize,
}

/// The caption and the table, as printed.
pub fn render(r: &Results, options: &Options) -> String {
    let at = [
        get::Load::of(&r.runs[0], CONNS[0]),
        get::Load::of(&r.runs[1], CONNS[1]),
    ];
    let served = !r.runs[0][DYNPORT].is_empty();
    let mut rows = Vec::new();
    if served {
        get::rows(&mut rows, r, &at);
    }
    own::rows(&mut rows, r);
    if let Some(s) = &r.storage {
        storage::rows(&mut rows, s);
    }
    if let Some(names) = &r.names {
        crate::names::rows(&mut rows, names);
    }
    let mut out = caption(r, options);
    let errors = at[0].errors + at[1].errors;
    if errors > 0 {
        out.push_str(&format!(
            "WARNING: {errors} wrk errors or non-2xx answers\n"
        ));
    }
    for (c, load) in at.iter().enumerate() {
        for (s, name) in NAMES.iter().enumerate() {
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

/// What ran and how: the first lines above the table.
fn caption(r: &Results, options: &Options) -> String {
    let mut out = if r.runs[0][DYNPORT].is_empty() {
        format!(
            "dynport benchmark: 127.0.0.1 only; load average {} before, {} after\n",
            r.load_before, r.load_after
        )
    } else {
        format!(
            "dynport benchmark: {} rounds of {} s per server and connection count, medians; \
             body {} bytes; wrk -t2; 127.0.0.1 only; load average {} before, {} after\n",
            options.rounds, options.secs, r.body_bytes, r.load_before, r.load_after
        )
    };
    match &options.baseline {
        Some(bin) => out.push_str(&format!("baseline: {}\n", bin.display())),
        None => out.push_str(
            "NOTE: no --baseline PATH given: the baseline's figures and the ratios to it \
             are left out\n",
        ),
    }
    out
}
