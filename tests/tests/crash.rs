//! Crash test: concurrent leases, renewals, releases and port changes from
//! several clients, SIGKILL at random moments, restart on the same state
//! directory, and after each kill a check of every promise the state file
//! and the journal after it make: what the next start recovers holds every
//! acknowledged change. Some lives last past a snapshot, so kills land in
//! journal appends, in snapshot rewrites and in between; the test counts
//! where. `DYNPORT_CRASH_KILLS` sets the number of kills (30 by default;
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

/// One client's traffic until `stop`: leases, renewals, releases.
fn client(port: &AtomicU16, stop: &AtomicBool, acked: &Mutex<Acked>, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut mine: Vec<String> = Vec::new();
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
    let state: StateFile = Store::new(dir)
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
            let stored = dynport::time::rfc3339(lease.expires_at);
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

/// One life of the server: traffic for a random while, then SIGKILL.
fn one_life(launch: &Launch, acked: &Arc<Mutex<Acked>>, rng: &mut Rng) {
    let mut server = launch.start();
    let port = Arc::new(AtomicU16::new(server.port));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            let (port, stop, acked) = (Arc::clone(&port), Arc::clone(&stop), Arc::clone(acked));
            let seed = rng.below(u64::MAX) ^ i;
            thread::spawn(move || client(&port, &stop, &acked, seed))
        })
        .collect();
    // One life in five outlasts the snapshot a second after the first change.
    let life = match rng.below(5) {
        0 => 1000 + rng.below(600),
        _ => 20 + rng.below(250),
    };
    let until = Instant::now() + Duration::from_millis(life);
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
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client saw a wrong answer");
    }
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
        one_life(&launch, &acked, &mut rng);
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
        "crash test: kills landed in a snapshot rewrite {}, in a journal append {}, between a snapshot and its fresh journal {}, in a fresh journal {}",
        landed.in_snapshot, landed.in_append, landed.between, landed.in_fresh_journal
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
