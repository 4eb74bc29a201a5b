//! Load from `wrk`: one run against one server, its requests per second and
//! p50 and p99 latency, with the server's threads and memory sampled half-way.

use std::io;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::procs::{self, Child, Status};

/// Client threads of `wrk`: one per core of the 2-core machine the targets
/// are set for.
const WRK_THREADS: usize = 2;

/// What one `wrk` run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Connections that had a request in flight on average, by Little's
    /// law (requests/s × mean latency). A closed loop on `conns`
    /// connections all being served gives about `conns`; far fewer means
    /// some connections waited unserved, and their requests are missing
    /// from the latency figures.
    pub served_conns: f64,
    /// Socket errors and non-2xx answers; any makes the run suspect.
    pub errors: u64,
    /// The server's `/proc` status half-way through the run.
    pub during: Status,
}

/// Loads `http://127.0.0.1:PORT/PATH` with `conns` connections for `secs`.
/// `wrk` sends `Host: 127.0.0.1:PORT`, a Host dynport accepts.
pub fn run(port: u16, path: &str, conns: usize, secs: u64, server_pid: u32) -> io::Result<Run> {
    run_as(None, port, path, conns, secs, server_pid)
}

/// [`run`] with `Host: HOST` instead, when given: a name that a proxy on
/// `port` routes.
pub fn run_as(
    host: Option<&str>,
    port: u16,
    path: &str,
    conns: usize,
    secs: u64,
    server_pid: u32,
) -> io::Result<Run> {
    let mut cmd = Command::new("wrk");
    if let Some(host) = host {
        cmd.arg("-H").arg(format!("Host: {host}"));
    }
    cmd.arg(format!("-t{}", WRK_THREADS.min(conns)))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let child = Child::spawn(&mut cmd, true)?;
    thread::sleep(Duration::from_millis(secs * 1000 / 2));
    let during = procs::status(server_pid)?;
    let out = child.output()?;
    parse(&out, during).ok_or_else(|| io::Error::other(format!("cannot read wrk's output:\n{out}")))
}

fn parse(out: &str, during: Status) -> Option<Run> {
    let mut rps = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    let mut mean_ms = None;
    let mut errors = 0;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("Latency ") {
            // "Latency   512.00us  300.00us  10.00ms   90.00%": mean first.
            mean_ms = mean_ms.or(rest.split_whitespace().next().and_then(duration_ms));
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50_ms = duration_ms(rest.trim());
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99_ms = duration_ms(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().ok()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                errors += part.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            }
        }
    }
    let rps = rps?;
    Some(Run {
        rps,
        p50_ms: p50_ms?,
        p99_ms: p99_ms?,
        served_conns: rps * mean_ms? / 1000.0,
        errors,
        during,
    })
}

/// `wrk`'s durations: `812.00us`, `1.23ms`, `2.01s`, `1.50m`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rate_p50_p99_and_errors() {
        let out = "Running 4s test @ http://127.0.0.1:1/\n    Latency   500.00us  1.00ms  9.00ms  90.00%\n  Latency Distribution\n     50%  600.00us\n     99%    2.50ms\n  1000 requests in 4.00s, 1.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\n";
        let run = parse(out, Status::default()).unwrap();
        assert_eq!(run.rps, 12345.67);
        assert_eq!(run.p50_ms, 0.6);
        assert_eq!(run.p99_ms, 2.5);
        assert_eq!(run.errors, 7);
        assert!((run.served_conns - 6.172835).abs() < 1e-6);
    }

    #[test]
    fn reads_every_unit() {
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert_eq!(duration_ms("7.5parsecs"), None);
    }
}
