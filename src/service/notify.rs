//! The service manager's notification protocol (sd_notify(3)) without
//! libsystemd: datagrams such as `READY=1` or `WATCHDOG=1` to the socket
//! that `NOTIFY_SOCKET` names, a path or an abstract name (`@…`).
//!
//! Sending never fails the server: a manager that went away or a full
//! socket costs a debug line, as with libsystemd's sd_notify.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Mutex;
use std::time::Duration;

/// The shortest watchdog period used, so that a tiny `WATCHDOG_USEC` does
/// not make the pinging thread spin.
const MIN_WATCHDOG_PERIOD: Duration = Duration::from_millis(10);

/// Where the server is in the manager's eyes; `STATUS=` is only sent once
/// it is ready and until it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    Stopping,
}

/// The phase and the last status sent, changed together so that messages
/// from several threads leave in a consistent order.
struct Said {
    phase: Phase,
    status: String,
}

/// Tells the service manager about the server's life; does nothing when
/// `NOTIFY_SOCKET` was not set.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    said: Mutex<Said>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for, and the watchdog period of
    /// `WATCHDOG_USEC`, read through `lookup`. A value that names no Unix
    /// socket is logged and ignored.
    ///
    /// The variables stay in the environment: the server starts no other
    /// program, and `dynport run`, a client, leaves them to its command,
    /// the service a unit really runs.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Notifier {
        let target = lookup("NOTIFY_SOCKET").and_then(|value| match open(&value) {
            Ok(target) => Some(target),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={}: {e}; not notifying", value.escape_debug());
                None
            }
        });
        let watchdog = target
            .as_ref()
            .and_then(|_| watchdog_period(&lookup, std::process::id()));
        Notifier {
            target,
            watchdog,
            said: Mutex::new(Said {
                phase: Phase::Starting,
                status: String::new(),
            }),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::from_lookup(|_| None)
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the service manager wants `WATCHDOG=1`, if it does.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1` with the first `STATUS=`. The status is read under the
    /// lock that [`Notifier::status`] takes, so a change published while
    /// the server was getting ready is either in it or sent after it.
    pub fn ready(&self, status: impl FnOnce() -> String) {
        let mut said = self.said();
        said.phase = Phase::Ready;
        said.status = status();
        self.send(&format!("READY=1\nSTATUS={}", said.status));
    }

    /// `STATUS=` when `status` differs from the last one sent, between
    /// [`Notifier::ready`] and [`Notifier::stopping`]. `status` is made
    /// only when there is a service manager to tell: it follows every
    /// durable change.
    pub fn status(&self, status: impl FnOnce() -> String) {
        if self.target.is_none() {
            return;
        }
        let mut said = self.said();
        let status = status();
        if said.phase == Phase::Ready && said.status != status {
            said.status = status.to_string();
            self.send(&format!("STATUS={status}"));
        }
    }

    /// `STOPPING=1`, with a status saying what the server does meanwhile.
    pub fn stopping(&self, status: &str) {
        let mut said = self.said();
        said.phase = Phase::Stopping;
        said.status = status.to_string();
        self.send(&format!("STOPPING=1\nSTATUS={status}"));
    }

    /// `WATCHDOG=1`: the server still works.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    // A thread that panicked while holding the lock left at worst a stale
    // status; the next one replaces it.
    fn said(&self) -> std::sync::MutexGuard<'_, Said> {
        self.said.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            let first = message.lines().next().unwrap_or_default();
            log::debug!("cannot notify the service manager of {first}: {e}");
        }
    }
}

/// The socket to send from and the address `value` names: an absolute
/// path, or `@name` for an abstract socket (sd_notify(3) takes no other).
fn open(value: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = parse_address(value)?;
    // Non-blocking: a manager that stopped reading must not stall a worker
    // that reports a port change; the datagram is then dropped.
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

fn parse_address(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract socket name starting with '@'",
        ))
    }
}

/// How often to tell the manager `WATCHDOG=1`: half of `WATCHDOG_USEC`,
/// when that is set and `WATCHDOG_PID`, if set, is `pid`. A value that is
/// not a positive number of microseconds is logged and ignored.
pub fn watchdog_period(lookup: impl Fn(&str) -> Option<String>, pid: u32) -> Option<Duration> {
    let usec = lookup("WATCHDOG_USEC")?;
    if let Some(owner) = lookup("WATCHDOG_PID")
        && owner.trim().parse::<u32>().ok() != Some(pid)
    {
        log::debug!(
            "WATCHDOG_PID={} is not this process ({pid}); not pinging the watchdog",
            owner.escape_debug()
        );
        return None;
    }
    match usec.trim().parse::<u64>() {
        Ok(usec) if usec > 0 => Some((Duration::from_micros(usec) / 2).max(MIN_WATCHDOG_PERIOD)),
        _ => {
            log::warn!(
                "WATCHDOG_USEC={} is not a positive number of microseconds; not pinging the watchdog",
                usec.escape_debug()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn temp_socket(name: &str) -> (std::path::PathBuf, UnixDatagram) {
        let path =
            std::env::temp_dir().join(format!("dynport-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (path, socket)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notify_socket_takes_absolute_paths_and_abstract_names_only() {
        let path = parse_address("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_name = parse_address("@dynport/notify").unwrap();
        assert_eq!(
            abstract_name.as_abstract_name(),
            Some(&b"dynport/notify"[..])
        );
        let relative = parse_address("run/notify").unwrap_err();
        assert_eq!(
            relative.to_string(),
            "neither an absolute path nor an abstract socket name starting with '@'"
        );
        assert!(!Notifier::from_lookup(env(&[("NOTIFY_SOCKET", "x")])).is_enabled());
        assert!(!Notifier::disabled().is_enabled());
    }

    #[test]
    fn status_is_sent_between_ready_and_stopping_only_when_it_changes() {
        let (path, socket) = temp_socket("order");
        let path_text = path.to_str().unwrap().to_string();
        let notifier = Notifier::from_lookup(env(&[("NOTIFY_SOCKET", &path_text)]));
        notifier.status(|| "too early".to_string());
        notifier.ready(|| "serving on 127.0.0.1:3000, 0 leases".to_string());
        notifier.status(|| "serving on 127.0.0.1:3000, 0 leases".to_string());
        notifier.status(|| "serving on 127.0.0.1:3001, 0 leases".to_string());
        notifier.watchdog();
        notifier.stopping("shutting down");
        notifier.status(|| "too late".to_string());
        notifier.watchdog();
        let expected = [
            "READY=1\nSTATUS=serving on 127.0.0.1:3000, 0 leases",
            "STATUS=serving on 127.0.0.1:3001, 0 leases",
            "WATCHDOG=1",
            "STOPPING=1\nSTATUS=shutting down",
            "WATCHDOG=1",
        ];
        for message in expected {
            assert_eq!(receive(&socket), message);
        }
        socket.set_nonblocking(true).unwrap();
        assert_eq!(
            socket.recv(&mut [0u8; 64]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let _ = std::fs::remove_file(&path);
    }

    /// Messages sent while no manager listens are dropped, not kept, and
    /// change nothing else: a manager back at the same path gets the next
    /// message, and only it.
    #[test]
    fn a_gone_manager_costs_nothing_but_a_debug_line() {
        let (path, socket) = temp_socket("gone");
        let path_text = path.to_str().unwrap().to_string();
        let notifier = Notifier::from_lookup(env(&[("NOTIFY_SOCKET", &path_text)]));
        drop(socket);
        std::fs::remove_file(&path).unwrap();
        notifier.ready(|| "serving".to_string());
        notifier.watchdog();
        assert!(notifier.is_enabled());
        let (_, back) = temp_socket("gone");
        notifier.status(|| "serving, 1 lease".to_string());
        notifier.watchdog();
        assert_eq!(receive(&back), "STATUS=serving, 1 lease");
        assert_eq!(receive(&back), "WATCHDOG=1");
        back.set_nonblocking(true).unwrap();
        assert_eq!(
            back.recv(&mut [0u8; 64]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn watchdog_period_is_half_of_watchdog_usec_for_this_pid() {
        let half = |pairs: &[(&str, &str)]| watchdog_period(env(pairs), 42);
        assert_eq!(
            half(&[("WATCHDOG_USEC", "400000")]),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            half(&[("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "42")]),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            half(&[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "7")]),
            None
        );
        assert_eq!(
            half(&[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "x")]),
            None
        );
        assert_eq!(half(&[("WATCHDOG_USEC", "0")]), None);
        assert_eq!(half(&[("WATCHDOG_USEC", "-5")]), None);
        assert_eq!(half(&[("WATCHDOG_USEC", "1")]), Some(MIN_WATCHDOG_PERIOD));
        assert_eq!(half(&[("WATCHDOG_PID", "42")]), None);
        assert_eq!(half(&[]), None);
    }
}
