//! The scan figures: one full scan of dynport's default range (TCP and UDP),
//! idle and with 1,000 TCP listeners and 1,000 bound UDP sockets in it,
//! timed in this process through `dynport::scan`.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use dynport::ports::PortRange;
use dynport::scan::Scanner;

use crate::IDLE_CONNS;
use crate::report::Scans;
use crate::table;

/// The range dynport scans by default.
const SCAN_RANGE: (u16, u16) = (3000, 9000);
const SCAN_RUNS: usize = 101;

/// One full scan of the range, idle and with 1,000 listeners and 1,000 UDP
/// sockets in it.
pub fn scans() -> io::Result<Scans> {
    let range = PortRange::new(SCAN_RANGE.0, SCAN_RANGE.1).map_err(io::Error::other)?;
    let scanner = Scanner::detect();
    let idle = scan_median(&scanner, range)?;
    let listeners: Vec<TcpListener> = range
        .iter()
        .filter_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
        .take(IDLE_CONNS)
        .collect();
    let udp: Vec<UdpSocket> = range
        .iter()
        .rev()
        .filter_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .take(IDLE_CONNS)
        .collect();
    let busy = scan_median(&scanner, range)?;
    let scans = Scans {
        method: scanner.method().as_str(),
        range: range.to_string(),
        idle,
        busy,
        listeners: listeners.len(),
        udp_sockets: udp.len(),
    };
    eprintln!(
        "bench: scan {} by {}: {:.3} ms idle, {:.3} ms with {} listeners and {} UDP sockets",
        scans.range,
        scans.method,
        table::ms(idle),
        table::ms(busy),
        scans.listeners,
        scans.udp_sockets
    );
    Ok(scans)
}

fn scan_median(scanner: &Scanner, range: PortRange) -> io::Result<Duration> {
    scanner.scan(range)?; // warms the buffers
    let mut times = Vec::with_capacity(SCAN_RUNS);
    for _ in 0..SCAN_RUNS {
        let began = Instant::now();
        scanner.scan(range)?;
        times.push(began.elapsed());
    }
    times.sort_unstable();
    Ok(times[SCAN_RUNS / 2])
}
