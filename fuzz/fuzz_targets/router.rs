//! The router: any method, path, query, headers and body must give an answer
//! (JSON, or the metrics text), never a panic.
//!
//! The input reads like a request: `METHOD TARGET`, then `Name: value` lines,
//! a blank line, and the body; bytes that are not UTF-8 in the head are
//! replaced. Each input meets a fresh `App` (so a crash replays alone) over a
//! window of 6 loopback ports that this process holds for its whole life, so
//! a port change or a lease's bind check fails at once and never touches a
//! port that is not ours. The token is `fuzz-token`; lease `00000000000000aa`
//! holds the last port of the window, so its release and renewal succeed.
#![no_main]

use dynport::app::{App, Facts, Serving, Start};
use dynport::http::{Request, Stats};
use dynport::ports::lease::Lease;
use dynport::ports::{PortRange, PortTable};
use dynport::scan::{Method, Scanner};
use dynport::state::Store;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

const NOW: &str = "2026-11-25T19:00:00Z";
/// The state directory of each run: this and the pid, under /dev/shm.
const PREFIX: &str = "dynport-fuzz-router-";

/// Takes the listeners a port change hands over and drops them.
struct FakeServing;

impl Serving for FakeServing {
    fn replace_listener(&self, _listener: TcpListener) -> std::io::Result<()> {
        Ok(())
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
}

/// What every input shares: the held window and the state directory.
struct World {
    range: PortRange,
    dir: PathBuf,
    _held: Vec<TcpListener>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (range, held) = held_window(6);
        let tmp = PathBuf::from("/dev/shm");
        let base = if tmp.is_dir() {
            tmp
        } else {
            std::env::temp_dir()
        };
        remove_stale(&base);
        let dir = base.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the state directory");
        World {
            range,
            dir,
            _held: held,
        }
    })
}

/// Removes the state directories of runs that have ended.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `n` consecutive loopback ports, every one bound by this process.
fn held_window(n: u16) -> (PortRange, Vec<TcpListener>) {
    let seed = (std::process::id() % 2000) as u16;
    for attempt in 0..500u16 {
        let start = 20000 + (seed * 7 + attempt * 37) % 12000;
        let held: Result<Vec<_>, _> = (start..start + n)
            .map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)))
            .collect();
        if let Ok(held) = held {
            return (PortRange::new(start, start + n - 1).unwrap(), held);
        }
    }
    panic!("no window of {n} free loopback ports");
}

/// A server on the window: its own port first, one port in use, one
/// excluded, a pool `web` of the upper half and a live lease on the last.
fn app(world: &World) -> App {
    let range = world.range;
    let mut table = PortTable::new(range, &[range.start + 2], NOW);
    table.add_pool("web", PortRange::new(range.start + 3, range.end).unwrap());
    table.apply_scan(&dynport::ports::tcp_only(&[range.start + 1]), NOW);
    let served = table.set_server_port(range.start, NOW);
    assert!(served.is_ok(), "the fixture's server port is free");
    let now = SystemTime::now();
    let inserted = table.insert_lease(
        Lease {
            id: "00000000000000aa".to_string(),
            ports: vec![range.end],
            pool: "web".to_string(),
            owner: Some("fuzz".to_string()),
            uid: None,
            protocol: dynport::ports::lease::Protocol::Both,
            pid: None,
            pid_start: None,
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            ttl_secs: 3600,
        },
        NOW,
    );
    assert!(inserted.is_ok(), "the fixture's lease fits its table");
    let facts = Facts {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        workers: 4,
        refresh_secs: 60,
        lease_ttl: Duration::from_secs(300),
        token: Some("fuzz-token".to_string()),
        rules: dynport::ports::principal::Rules {
            server_uid: dynport::sys::process::own_uid(),
            max_ports_per_uid: Some(1024),
            max_names_per_uid: 64,
            token_set: true,
        },
        allow_hosts: vec!["dynport.fuzz".to_string()],
        unix_socket: None,
        pid: std::process::id(),
        started: Instant::now(),
        pid_watches: 1024,
        routes: dynport::config::RouteSettings {
            domains: vec!["localhost".to_string()],
            port: None,
        },
    };
    let start = Start {
        table,
        last_scan: None,
        started_at: NOW.to_string(),
    };
    let scanner = Scanner::with_method(Method::Probe);
    App::new(
        facts,
        Store::open(&world.dir).expect("the world's directory opens"),
        scanner,
        Box::new(FakeServing),
        start,
    )
}

fn request(data: &[u8]) -> Request {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or_default();
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let headers: Vec<(&str, &str)> = lines
        .map(|l| l.split_once(':').unwrap_or((l, "")))
        .map(|(k, v)| (k, v.trim_start()))
        .collect();
    Request::fake(method, target, &headers, body)
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let req = request(data);
    let api = dynport::api::Api::new(std::sync::Arc::new(app(world)));
    let resp = dynport::api::handle(&api, &req).resolve();
    assert!(
        (200..=599).contains(&resp.status),
        "status {} for {req:?}",
        resp.status
    );
    if resp.content_type == "application/json" {
        let body: Result<serde_json::Value, _> = serde_json::from_slice(&resp.body);
        assert!(body.is_ok(), "a JSON answer that does not parse: {resp:?}");
    } else {
        assert!(std::str::from_utf8(&resp.body).is_ok(), "{resp:?}");
    }
});
