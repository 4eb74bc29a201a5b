//! The holder lookup figure: `dynport::scan::holders` (what
//! `GET /api/v1/tools/port/state?port=N` and `dynport who` ask) for a port
//! held by a TCP listener and a UDP socket, while 1,000 other processes run.
//! The sockets belong to the last process started, so the walk of `/proc`
//! reads every other one before it finds them: the slow case.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::Child;
use crate::table::{Row, ms};

/// Processes running beside the holder.
const PROCESSES: usize = 1000;
const RUNS: usize = 21;
/// The most one lookup may take.
const GOAL_MS: f64 = 30.0;

/// What was measured.
pub struct Holders {
    pub processes: usize,
    pub median: Duration,
    /// The CPU time of the median lookup: what it costs without waiting
    /// for a core on a busy machine.
    pub median_cpu: Duration,
}

/// Starts the processes and the holder, times the lookup, stops them all.
pub fn measure() -> io::Result<Holders> {
    let others = (0..PROCESSES)
        .map(|_| sleeper(&[]))
        .collect::<io::Result<Vec<_>>>()?;
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    let port = tcp.local_addr()?.port();
    let udp = UdpSocket::bind(("127.0.0.1", port))?;
    let holder = sleeper(&[tcp.as_raw_fd(), udp.as_raw_fd()])?;
    drop((tcp, udp)); // the holder's copies are now the only ones
    // Checked without the server's budget, which a busy machine may pass.
    let found = lookup(port, Duration::from_secs(60))?;
    if found.len() != 2 || found.iter().any(|h| h.pid != Some(holder.pid())) {
        return Err(io::Error::other(format!(
            "holders of port {port}: expected the TCP and UDP sockets of pid {}, got {found:?}",
            holder.pid()
        )));
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (began, cpu) = (Instant::now(), process_cpu());
        lookup(port, dynport::scan::LOOKUP_BUDGET)?;
        times.push((began.elapsed(), process_cpu() - cpu));
    }
    times.sort_unstable();
    let (median, median_cpu) = times[RUNS / 2];
    eprintln!(
        "bench: who holds a port, {} other processes: median {:.3} ms ({:.3} ms CPU), max {:.3} ms",
        others.len(),
        ms(median),
        ms(median_cpu),
        ms(times[RUNS - 1].0)
    );
    Ok(Holders {
        processes: others.len(),
        median,
        median_cpu,
    })
}

/// The holders of `port` as an operator's lookup finds them (what the
/// server answers root), looked for until `budget` has passed.
fn lookup(port: u16, budget: Duration) -> io::Result<Vec<dynport::scan::Holder>> {
    let found = dynport::scan::lookup(port, dynport::scan::Scope::Every, budget)?;
    Ok(found.holders)
}

/// The table rows.
pub fn rows(h: &Holders) -> [Row; 2] {
    let median = ms(h.median);
    let cpu = format!("{:.3}", ms(h.median_cpu));
    [
        Row::check(
            &format!(
                "who holds a port, {} processes, median of {RUNS} (ms)",
                h.processes
            ),
            format!("{median:.3}"),
            &format!("<= {GOAL_MS:.0} ms"),
            median <= GOAL_MS,
        ),
        Row::dynport("  its CPU time, every thread (ms)", cpu),
    ]
}

/// The CPU time this process has used so far, every thread's: the lookup
/// shares its walk of `/proc` among threads.
fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) only writes the timespec passed by pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `sleep 60`, killed with the benchmark, holding `fds` of this process at
/// the same numbers.
fn sleeper(fds: &[RawFd]) -> io::Result<Child> {
    let mut cmd = Command::new("sleep");
    cmd.arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fds = fds.to_vec();
    // SAFETY: fcntl(2) is async-signal-safe and only changes the child's
    // own descriptor flags, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Child::spawn(&mut cmd, true)
}
