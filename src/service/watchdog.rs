//! The watchdog thread: every period it asks the server a real question
//! (a probe, in the server `GET /healthz` through the engine) and tells
//! the service manager `WATCHDOG=1` only when the answer came in time, so
//! a wedged worker pool stops the pings and the manager restarts dynport.
//!
//! It wakes once a period and no more: the manager's watchdog demands
//! those wake-ups, and between them the thread sleeps.

use crate::http::Control;
use crossbeam_channel::{Sender, bounded};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Asks the server one question within a time limit; `Ok` when it answered.
pub type Probe = Box<dyn FnMut(Duration) -> io::Result<()> + Send>;

/// The running watchdog thread.
pub struct Watchdog {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    /// Starts a thread that probes at once and then every `period`, and
    /// calls `ping` after each probe that succeeds. A probe gets half a
    /// period, so a ping after a slow answer still comes well before the
    /// manager's limit of two periods.
    pub fn spawn(
        period: Duration,
        probe: Probe,
        ping: impl Fn() + Send + 'static,
    ) -> io::Result<Watchdog> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = thread::Builder::new()
            .name("watchdog".to_string())
            .spawn(move || {
                let mut round = Round::new(probe, period / 2);
                let mut next = Instant::now();
                loop {
                    if round.run() {
                        ping();
                    }
                    next = (next + period).max(Instant::now());
                    if stopped.recv_deadline(next).is_ok() {
                        return;
                    }
                }
            })?;
        Ok(Watchdog { stop, thread })
    }

    /// Ends the thread and waits for it: no ping follows.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// One probe after another, logging when the answers stop and resume
/// rather than at every failure.
struct Round {
    probe: Probe,
    limit: Duration,
    failing: bool,
}

impl Round {
    fn new(probe: Probe, limit: Duration) -> Round {
        Round {
            probe,
            limit,
            failing: false,
        }
    }

    /// Probes once; whether the server answered.
    fn run(&mut self) -> bool {
        match (self.probe)(self.limit) {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    log::warn!("the workers answer again: the service manager's watchdog is fed");
                }
                true
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    log::warn!(
                        "the workers did not answer GET /healthz within {:?} ({e}): \
                         the service manager's watchdog is not fed until they do",
                        self.limit
                    );
                }
                false
            }
        }
    }
}

/// The probe of a running engine: `GET /healthz` on its TCP listener. When
/// that fails because the listener moved (a port change), the new one is
/// asked within what is left of the limit.
pub fn engine_probe(control: Control) -> Probe {
    Box::new(move |limit| {
        let deadline = Instant::now() + limit;
        let before = control.listener_addr().ok_or_else(no_listener)?;
        healthz(before, limit).or_else(|e| match control.listener_addr() {
            Some(after) if after != before => {
                let left = deadline.saturating_duration_since(Instant::now());
                healthz(after, left)
            }
            _ => Err(e),
        })
    })
}

fn no_listener() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the engine has no listener")
}

/// `GET /healthz` on the listener at `addr` (as the engine reports it, a
/// wildcard address reached through loopback), all within `limit`.
pub fn healthz(addr: SocketAddr, limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    };
    let mut stream = TcpStream::connect_timeout(&reachable(addr), remaining()?)?;
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    if head.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or_default().to_string();
        Err(io::Error::other(format!("answered {:?}", line)))
    }
}

/// Where to connect to reach a listener bound to `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn wildcard_listeners_are_reached_through_loopback() {
        let at = |s: &str| reachable(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:3000"), "127.0.0.1:3000");
        assert_eq!(at("[::]:3000"), "[::1]:3000");
        assert_eq!(at("192.0.2.7:3000"), "192.0.2.7:3000");
    }

    #[test]
    fn healthz_names_what_a_wrong_answer_said() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let _ = conn.read(&mut [0u8; 256]);
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap();
        });
        let e = healthz(addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "answered \"HTTP/1.1 503 Service Unavailable\""
        );
        server.join().unwrap();
    }

    #[test]
    fn healthz_gives_up_at_its_limit() {
        // A listener that never accepts: the connection completes in the
        // backlog, the request is never read. Only the limit ends the wait;
        // the test gives it far longer before calling it a hang.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, done) = crossbeam_channel::bounded(1);
        thread::spawn(move || tx.send(healthz(addr, Duration::from_millis(100))));
        let e = done
            .recv_timeout(Duration::from_secs(10))
            .expect("healthz kept waiting past its limit")
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        drop(listener);
    }

    #[test]
    fn pings_follow_successful_probes_only() {
        let (tx, pings) = crossbeam_channel::unbounded();
        let probes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&probes);
        // Answers on the first two probes, fails on the next two, answers again.
        let probe: Probe = Box::new(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
            2 | 3 => Err(io::Error::other("stalled")),
            _ => Ok(()),
        });
        let at_ping = Arc::clone(&probes);
        let watchdog = Watchdog::spawn(Duration::from_millis(10), probe, move || {
            let _ = tx.send(at_ping.load(Ordering::SeqCst));
        })
        .unwrap();
        let after: Vec<usize> = (0..3)
            .map(|_| pings.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        watchdog.stop();
        // Pings follow probes 1, 2 and 5: none after the failing 3 and 4.
        assert_eq!(after, [1, 2, 5]);
    }
}
