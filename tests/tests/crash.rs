//! Crash test: concurrent leases, renewals, releases and port changes from
//! several clients, SIGKILL at random moments, restart on the same state
//! directory, and after each kill a check of every promise the state file
//! and the journal after it make: what the next start recovers holds every
//! acknowledged change. Lease clients append to the journal all the time, so
//! kills land in appends; some kills are sent in the middle of a port change
//! (a state-file rewrite) and some the moment the refresh thread's temporary
//! file shows it rewriting the state file; the test counts what the files
//! left say. (A SIGKILL cannot tear a record: what `write` took stays in the
//! page cache. Torn and damaged journals are `tests/journal.rs`'s.) `DYNPORT_CRASH_KILLS` sets the number of kills (30 by default;
//! `make crash` runs 1,000) and `DYNPORT_CRASH_SEED` replays a run.

use crate::fixture::{Launch, free_range};
use dynport::state::journal::{self, Fit};
use dynport::state::{StateFile, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
/// Ports in the range; two pools share it.
const WINDOW: u16 = 48;

/// What the clients were told: the outcome of every acknowledged request.
#[derive(Default)]
struct Acked {
    /// Lease id -> its ports, for every 201.
    granted: BTreeMap<String, Vec<u16>>,
    /// Ids whose DELETE answered 200.
    released: BTreeSet<String>,
    /// Ids whose DELETE was sent but not answered: either outcome is right.
    in_doubt: BTreeSet<String>,
    /// Lease id -> the latest `expires_at` a renewal answered.
    renewed: BTreeMap<String, String>,
}

/// Where the kills landed, as the files they left tell.
#[derive(Default, Debug)]
struct Landed {
    /// A snapshot half-written: its temporary file was left.
    in_snapshot: usize,
    /// A journal append cut short: its last record torn.
    in_append: usize,
    /// After a snapshot replaced the state file, before the journal started
    /// over: the old journal's `next` record told what to take from it.
    between: usize,
    /// A fresh journal half-written: its temporary file was left.
    in_fresh_journal: usize,
    /// Kills sent the moment a temporary file was seen.
    snapshot_seen: usize,
    /// Kills sent while a port change was in flight.
    in_port_change: usize,
}

/// A small deterministic generator (xorshift64*), so a seed replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// How to start the server: two pools sharing a fresh range.
fn launch() -> Launch {
    let range = free_range(WINDOW);
    let mid = range.0 + WINDOW / 2;
    let pools = format!("a={}-{},b={}-{}", range.0, mid - 1, mid, range.1);
    Launch::with_range(range, &["--exclude", "none", "--pool", &pools])
}

fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, serde_json::Value)> {
    crate::fixture::json_request(port, method, path, &[], body)
}

/// One client's traffic until `stop`: leases, renewals, releases, of the
/// leases it is handed (those the server holds from earlier lives, so that
/// the pools never fill up and every life makes changes) and of its own.
fn client(
    port: &AtomicU16,
    stop: &AtomicBool,
    acked: &Mutex<Acked>,
    seed: u64,
    mut mine: Vec<String>,
) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let port = port.load(Ordering::Relaxed);
        match rng.below(10) {
            0..=4 => {
                let pool = ["a", "b", "default"][rng.below(3) as usize];
                let body = format!(
                    r#"{{"count": {}, "pool": "{pool}", "ttl_secs": 3600}}"#,
                    1 + rng.below(3)
                );
                if let Some((201, answer)) = request(port, "POST", "/api/v1/ports/lease", &body) {
                    let lease = &answer["lease"];
                    let id = lease["id"].as_str().unwrap().to_string();
                    let ports = lease["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_u64().unwrap() as u16)
                        .collect();
                    acked.lock().unwrap().granted.insert(id.clone(), ports);
                    mine.push(id);
                }
            }
            5..=7 if !mine.is_empty() => {
                let id = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                acked.lock().unwrap().in_doubt.insert(id.clone());
                let answer = request(port, "DELETE", &format!("/api/v1/ports/leases/{id}"), "");
                let mut acked = acked.lock().unwrap();
                match answer {
                    Some((200, _)) => {
                        acked.in_doubt.remove(&id);
                        acked.released.insert(id);
                    }
                    Some((status, answer)) => panic!("release of {id} answered {status}: {answer}"),
                    None => {}
                }
            }
            8 if !mine.is_empty() => {
                let id = &mine[rng.below(mine.len() as u64) as usize];
                let path = format!("/api/v1/ports/leases/{id}/renew");
                if let Some((status, answer)) = request(port, "POST", &path, "") {
                    assert_eq!(status, 200, "renewal of {id}: {answer}");
                    let expires = answer["lease"]["expires_at"].as_str().unwrap().to_string();
                    let mut acked = acked.lock().unwrap();
                    let latest = acked.renewed.entry(id.clone()).or_default();
                    *latest = expires.max(latest.clone());
                }
            }
            _ => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Every promise the state file and the journal make, checked against what
/// was acknowledged: the state the next start recovers.
fn check(dir: &Path, acked: &Acked, range: (u16, u16), kill: usize) {
    let state: StateFile = Store::open(dir)
        .unwrap_or_else(|e| panic!("kill {kill}: {e}"))
        .durable()
        .unwrap_or_else(|e| panic!("kill {kill}: {e}"))
        .unwrap_or_else(|| panic!("kill {kill}: no state file nor journal"));
    for (id, ports) in &acked.granted {
        if acked.released.contains(id) || acked.in_doubt.contains(id) {
            continue;
        }
        let lease = state
            .leases
            .get(id)
            .unwrap_or_else(|| panic!("kill {kill}: acknowledged lease {id} lost"));
        assert_eq!(
            &lease.ports, ports,
            "kill {kill}: lease {id} changed its ports"
        );
        if let Some(expires) = acked.renewed.get(id) {
            let stored = dynport::util::time::rfc3339(lease.expires_at);
            assert!(
                stored >= *expires,
                "kill {kill}: lease {id} lost its renewal to {expires} (has {stored})"
            );
        }
    }
    for id in &acked.released {
        assert!(
            !state.leases.contains_key(id),
            "kill {kill}: released lease {id} is back"
        );
    }
    let mid = range.0 + WINDOW / 2;
    let mut held = BTreeSet::new();
    for lease in state.leases.values() {
        let (lo, hi) = match lease.pool.as_str() {
            "a" => (range.0, mid - 1),
            "b" => (mid, range.1),
            _ => range,
        };
        for &port in &lease.ports {
            assert!(
                held.insert(port),
                "kill {kill}: port {port} is in two leases"
            );
            assert!(
                (lo..=hi).contains(&port),
                "kill {kill}: port {port} outside pool {}",
                lease.pool
            );
            assert_ne!(
                state.server_port,
                Some(port),
                "kill {kill}: port {port} leased and the server's"
            );
        }
    }
}

/// How a life ends: SIGKILL at a random moment, in the middle of a port
/// change (which rewrites the state file before its answer), or as soon as
/// a temporary file shows that the refresh thread is rewriting the state
/// file or starting the journal over.
#[derive(Clone, Copy, PartialEq)]
enum Death {
    Random,
    InPortChange,
    InSnapshot,
    /// The moment the new state file is renamed into place: while the
    /// journal starts over.
    AfterRename,
}

/// One life of the server: traffic, then SIGKILL as `death` says.
fn one_life(launch: &Launch, acked: &Arc<Mutex<Acked>>, rng: &mut Rng, landed: &mut Landed) {
    let mut server = launch.start();
    let port = Arc::new(AtomicU16::new(server.port));
    let stop = Arc::new(AtomicBool::new(false));
    let live = leases_of(server.port);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (port, stop, acked) = (Arc::clone(&port), Arc::clone(&stop), Arc::clone(acked));
            let seed = rng.below(u64::MAX) ^ i as u64;
            let mine = live.iter().skip(i).step_by(CLIENTS).cloned().collect();
            thread::spawn(move || client(&port, &stop, &acked, seed, mine))
        })
        .collect();
    let death = match rng.below(10) {
        0..=4 => Death::Random,
        5..=7 => Death::InPortChange,
        8 => Death::InSnapshot,
        _ => Death::AfterRename,
    };
    let mut in_flight = None;
    match death {
        Death::Random => {
            let life = Duration::from_millis(20 + rng.below(250));
            change_ports_for(&port, rng, life);
        }
        Death::InPortChange => {
            let life = Duration::from_millis(20 + rng.below(150));
            change_ports_for(&port, rng, life);
            let now = port.load(Ordering::Relaxed);
            in_flight = Some(thread::spawn(move || {
                request(now, "POST", "/api/v1/server/port/change", "")
            }));
            thread::sleep(Duration::from_micros(rng.below(4000)));
        }
        Death::InSnapshot => {
            landed.snapshot_seen += usize::from(wait_for_temp(launch.dir.path(), true).is_some());
        }
        Death::AfterRename => {
            if let Some(temp) = wait_for_temp(launch.dir.path(), false) {
                landed.snapshot_seen += usize::from(wait_until_gone(&temp));
            }
        }
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    if let Some(change) = in_flight {
        let _ = change.join();
        landed.in_port_change += 1;
    }
    for client in clients {
        client.join().expect("a client saw a wrong answer");
    }
}

/// The ids of the server's leases: those acknowledged and those whose
/// answer a kill cut off, which would otherwise fill the pools for an hour.
fn leases_of(port: u16) -> Vec<String> {
    let Some((200, answer)) = request(port, "GET", "/api/v1/ports/leases", "") else {
        panic!("the lease list did not answer");
    };
    let leases = answer["leases"].as_array().unwrap();
    leases
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

/// Port changes now and then, for `how_long`, following the server.
fn change_ports_for(port: &AtomicU16, rng: &mut Rng, how_long: Duration) {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        if rng.below(4) == 0 {
            let now = port.load(Ordering::Relaxed);
            if let Some((200, answer)) = request(now, "POST", "/api/v1/server/port/change", "") {
                port.store(
                    answer["new_port"].as_u64().unwrap() as u16,
                    Ordering::Relaxed,
                );
            }
        }
        thread::sleep(Duration::from_millis(10 + rng.below(40)));
    }
}

/// Waits (3 s at most) until a temporary file of the state file (or, with
/// `journal_too`, of the journal) is in `dir`: the refresh thread is writing
/// one, about a second after the first lease change. Returns its path.
fn wait_for_temp(dir: &Path, journal_too: bool) -> Option<std::path::PathBuf> {
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let names = std::fs::read_dir(dir).unwrap();
        let temp = names
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|n| {
                n.starts_with(".dynamic_ports.json.tmp-")
                    || (journal_too && n.starts_with(".dynamic_ports.journal.tmp-"))
            });
        if let Some(name) = temp {
            return Some(dir.join(name));
        }
        thread::sleep(Duration::from_micros(100));
    }
    None
}

/// Waits (1 s at most) until `temp` is gone: renamed into place (or
/// removed). Whether it went.
fn wait_until_gone(temp: &Path) -> bool {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if !temp.exists() {
            return true;
        }
        thread::sleep(Duration::from_micros(50));
    }
    false
}

#[test]
fn acknowledged_changes_survive_sigkill() {
    let kills: usize =
        std::env::var("DYNPORT_CRASH_KILLS").map_or(30, |n| n.parse().expect("a number"));
    let seed = std::env::var("DYNPORT_CRASH_SEED")
        .map_or_else(|_| RandomState::new().hash_one(0u8), |s| s.parse().unwrap());
    println!("crash test: {kills} kills, seed {seed} (DYNPORT_CRASH_SEED replays the schedule)");
    let launch = launch();
    let (range, dir) = (launch.range, launch.dir.path().to_path_buf());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut landed = Landed::default();
    let mut rng = Rng(seed | 1);
    let began = Instant::now();
    for kill in 1..=kills {
        one_life(&launch, &acked, &mut rng, &mut landed);
        count_where(&dir, &mut landed);
        check(&dir, &acked.lock().unwrap(), range, kill);
    }
    // One more start proves the last file is taken over, then a final check.
    let server = launch.start();
    let (status, _) = server
        .json_request("GET", "/healthz", "")
        .expect("the server answers after the last kill");
    assert_eq!(status, 200);
    let acked = acked.lock().unwrap();
    check(&dir, &acked, range, kills + 1);
    println!(
        "crash test: {kills} kills survived in {:.1} s: {} leases acknowledged, {} releases acknowledged, {} releases in doubt, {} renewals checked",
        began.elapsed().as_secs_f64(),
        acked.granted.len(),
        acked.released.len(),
        acked.in_doubt.len(),
        acked.renewed.len()
    );
    println!(
        "crash test: {} kills sent while a port change was in flight, {} the moment a temporary file was seen; \
         the files left tell: in a state-file rewrite {}, between a rewrite and its fresh journal {}, \
         in a fresh journal {}, a torn journal record {}",
        landed.in_port_change,
        landed.snapshot_seen,
        landed.in_snapshot,
        landed.between,
        landed.in_fresh_journal,
        landed.in_append
    );
}

/// Reads what a kill left in `dir` (before the next start tidies it).
fn count_where(dir: &Path, landed: &mut Landed) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        landed.in_snapshot += usize::from(name.starts_with(".dynamic_ports.json.tmp-"));
        landed.in_fresh_journal += usize::from(name.starts_with(".dynamic_ports.journal.tmp-"));
    }
    let Ok(bytes) = std::fs::read(dir.join(journal::JOURNAL_FILE)) else {
        return;
    };
    let snapshot = std::fs::read(dir.join("dynamic_ports.json"))
        .ok()
        .map(|s| journal::snapshot_id(&s));
    let replay = journal::read(&bytes, snapshot).expect("a journal is never damaged by a kill");
    landed.in_append += usize::from(replay.torn.is_some());
    landed.between += usize::from(matches!(replay.fit, Fit::After(_)));
}
