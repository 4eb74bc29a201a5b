//! dynport under a service manager: the sd_notify messages the real server
//! sends to a socket the test binds as `NOTIFY_SOCKET`, their order, the
//! watchdog's pings, and the log's form under journald.

mod journal;
mod stall;

use crate::fixture::{Launch, TempDir, request};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOPPING: &str = "STOPPING=1\nSTATUS=shutting down: finishing requests in flight";

/// The service manager's end: a datagram socket the server is pointed at.
struct Manager {
    socket: UnixDatagram,
    /// What `NOTIFY_SOCKET` is set to.
    name: String,
    _dir: Option<TempDir>,
}

impl Manager {
    /// A socket file in a fresh directory.
    fn at_path() -> Manager {
        let dir = TempDir::new();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("the notify socket binds");
        let name = path
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_string();
        Manager {
            socket,
            name,
            _dir: Some(dir),
        }
    }

    /// An abstract socket, as `NOTIFY_SOCKET=@…` names it.
    fn abstract_name() -> Manager {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("dynport-test-{}-{n}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("the abstract socket binds");
        Manager {
            socket,
            name: format!("@{name}"),
            _dir: None,
        }
    }

    /// `launch` pointed at this socket.
    fn launch(&self, launch: Launch) -> Launch {
        launch.env("NOTIFY_SOCKET", &self.name)
    }

    /// The next message, waiting at most `timeout`.
    fn next(&self, timeout: Duration) -> String {
        self.try_next(timeout)
            .unwrap_or_else(|| panic!("no notification within {timeout:?}"))
    }

    fn try_next(&self, timeout: Duration) -> Option<String> {
        if timeout.is_zero() {
            return None;
        }
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 1024];
        let received = loop {
            // A signal to this process (its tests' children end) interrupts.
            match self.socket.recv(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match received {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("cannot read the notify socket: {e}"),
        }
    }

    /// Every message already queued, without waiting.
    fn queued(&self) -> Vec<String> {
        std::iter::from_fn(|| self.try_next(Duration::from_millis(1))).collect()
    }
}

/// The port of `READY=1\nSTATUS=serving on 127.0.0.1:PORT, …`.
fn ready_port(message: &str) -> u16 {
    let status = message
        .strip_prefix("READY=1\nSTATUS=serving on 127.0.0.1:")
        .unwrap_or_else(|| panic!("not a READY with its status: {message:?}"));
    let port = status.split(',').next().unwrap_or_default();
    port.parse()
        .unwrap_or_else(|_| panic!("no port in {message:?}"))
}

#[test]
fn ready_comes_once_the_port_answers_then_status_follows_changes_and_stopping_ends() {
    let manager = Manager::at_path();
    let mut server = manager.launch(Launch::new(&[])).spawn();
    let ready = manager.next(READY_TIMEOUT);
    let port = ready_port(&ready);
    // At once, with no retry: the port answers by the time READY arrives.
    let health = request(port, "GET", "/healthz", &[], b"").expect("the port answers");
    assert_eq!(health.status, 200);
    assert_eq!(
        ready,
        format!("READY=1\nSTATUS=serving on 127.0.0.1:{port}, 0 leases")
    );
    // The state was written before.
    let state = server.state();
    assert_eq!(state["server_port"], port, "{state}");
    assert_eq!(state["server"]["pid"], server.pid(), "{state}");
    assert_eq!(server.wait_listening(), port);

    let (status, lease) = server
        .json_request("POST", "/api/v1/ports/lease", "{}")
        .unwrap();
    assert_eq!(status, 201, "{lease}");
    let one = format!("STATUS=serving on 127.0.0.1:{port}, 1 lease");
    assert_eq!(manager.next(READY_TIMEOUT), one);

    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let moved: u16 = reply.json()["new_port"]
        .as_u64()
        .unwrap()
        .try_into()
        .unwrap();
    let status = format!("STATUS=serving on 127.0.0.1:{moved}, 1 lease");
    assert_eq!(manager.next(READY_TIMEOUT), status);

    assert!(server.term().success(), "{}", server.log());
    assert_eq!(manager.queued(), [STOPPING]);
}

#[test]
fn watchdog_pings_every_half_of_watchdog_usec_on_an_abstract_socket() {
    let manager = Manager::abstract_name();
    let launch = manager
        .launch(Launch::new(&[]))
        .env("WATCHDOG_USEC", "400000");
    let mut server = launch.spawn();
    let ready = manager.next(READY_TIMEOUT);
    ready_port(&ready);
    let window = Duration::from_millis(1200);
    let end = Instant::now() + window;
    let mut pings = 0;
    while let Some(message) = manager.try_next(end.saturating_duration_since(Instant::now())) {
        assert_eq!(message, "WATCHDOG=1");
        pings += 1;
    }
    // One at once, then one every 200 ms: 7 in 1.2 s on an idle machine;
    // a loaded one may be late for a few, never ping twice as often.
    assert!((3..=9).contains(&pings), "{pings} pings in {window:?}");
    assert!(server.term().success(), "{}", server.log());
    let after: Vec<String> = manager.queued();
    let stopping = after.iter().position(|m| m == STOPPING);
    assert!(stopping.is_some(), "{after:?}");
    // Whatever came besides STOPPING is a ping sent just before it.
    assert!(
        after.iter().all(|m| m == STOPPING || m == "WATCHDOG=1"),
        "{after:?}"
    );
}

#[test]
fn watchdog_of_another_pid_is_not_pinged() {
    let manager = Manager::at_path();
    let launch = manager
        .launch(Launch::new(&[]))
        .env("WATCHDOG_USEC", "400000")
        .env("WATCHDOG_PID", "1");
    let mut server = launch.spawn();
    ready_port(&manager.next(READY_TIMEOUT));
    // A watchdog, had it started, would have pinged at once after READY.
    assert!(server.term().success(), "{}", server.log());
    assert_eq!(manager.queued(), [STOPPING]);
}
