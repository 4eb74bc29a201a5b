//! Model test of the lease allocation rules: thousands of seeded random
//! operations applied both to dynport's port table and to a plain model of
//! the rules, compared after every step. A failing seed is printed so that
//! `DYNPORT_MODEL_SEED=<seed> cargo test --test model` replays it.

use dynport::ports::lease::{DEFAULT_POOL, LeaseError, LeaseRequest};
use dynport::ports::{PortRange, PortState, PortTable};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const START: u16 = 1000;
const END: u16 = 1039;
const POOLS: [(&str, u16, u16); 2] = [("web", 1000, 1009), ("db", 1030, 1034)];
const EXCLUDED: [u16; 2] = [1003, 1020];
const STEPS: usize = 3000;

/// A small deterministic generator (xorshift64*), so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The rules, written as plainly as possible.
#[derive(Default)]
struct Model {
    /// Lease id -> (ports, pool, expiry in seconds, owner pid).
    leases: BTreeMap<String, (Vec<u16>, String, u64, Option<u32>)>,
    in_use: BTreeSet<u16>,
    cursors: BTreeMap<String, u16>,
}

impl Model {
    fn pool(name: &str) -> Option<(u16, u16)> {
        match name {
            DEFAULT_POOL => Some((START, END)),
            _ => POOLS.iter().find(|p| p.0 == name).map(|p| (p.1, p.2)),
        }
    }

    fn taken(&self, port: u16) -> bool {
        EXCLUDED.contains(&port)
            || self.in_use.contains(&port)
            || self.leases.values().any(|l| l.0.contains(&port))
    }

    fn grant(
        &mut self,
        id: &str,
        pool: &str,
        count: usize,
        port: Option<u16>,
        expiry: u64,
        pid: Option<u32>,
    ) -> Result<Vec<u16>, &'static str> {
        let (lo, hi) = Model::pool(pool).ok_or("unknown pool")?;
        let ports = match port {
            Some(p) if !(lo..=hi).contains(&p) => return Err("invalid"),
            Some(p) if self.taken(p) => return Err("unavailable"),
            Some(p) => vec![p],
            None => {
                let cursor = self.cursors.get(pool).copied().unwrap_or(lo);
                let order: Vec<u16> = (cursor..=hi).chain(lo..cursor).collect();
                let free: Vec<u16> = order
                    .into_iter()
                    .filter(|p| !self.taken(*p))
                    .take(count)
                    .collect();
                if free.len() < count {
                    return Err("unavailable");
                }
                let last = *free.last().unwrap();
                self.cursors
                    .insert(pool.to_string(), if last >= hi { lo } else { last + 1 });
                free
            }
        };
        self.leases.insert(
            id.to_string(),
            (ports.clone(), pool.to_string(), expiry, pid),
        );
        Ok(ports)
    }

    /// A scan: ports seen in use that no lease holds become `in_use`.
    fn scan(&mut self, seen: &BTreeSet<u16>) {
        self.in_use = seen
            .iter()
            .copied()
            .filter(|p| !EXCLUDED.contains(p) && !self.leases.values().any(|l| l.0.contains(p)))
            .collect();
    }

    fn end_due(&mut self, now: u64, dead: &BTreeSet<u32>) -> BTreeSet<String> {
        let due: BTreeSet<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.2 <= now || l.3.is_some_and(|pid| dead.contains(&pid)))
            .map(|(id, _)| id.clone())
            .collect();
        self.leases.retain(|id, _| !due.contains(id));
        due
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

fn new_table() -> PortTable {
    let mut table = PortTable::new(PortRange::new(START, END).unwrap(), &EXCLUDED, "t0");
    for (name, lo, hi) in POOLS {
        table.add_pool(name, PortRange::new(lo, hi).unwrap());
    }
    table
}

/// Compares everything the rules decide: who holds which port, and the counts.
fn compare(table: &PortTable, model: &Model, step: usize, seed: u64) {
    let ctx = || format!("seed {seed}, step {step}");
    let real: BTreeMap<String, Vec<u16>> = table
        .leases()
        .map(|l| (l.id.clone(), l.ports.clone()))
        .collect();
    let want: BTreeMap<String, Vec<u16>> = model
        .leases
        .iter()
        .map(|(id, l)| (id.clone(), l.0.clone()))
        .collect();
    assert_eq!(real, want, "leases differ at {}", ctx());
    for port in START..=END {
        let state = table.state(port).map(|e| e.state);
        let expected = if EXCLUDED.contains(&port) {
            Some(PortState::Excluded)
        } else if model.leases.values().any(|l| l.0.contains(&port)) {
            Some(PortState::Leased)
        } else if model.in_use.contains(&port) {
            Some(PortState::InUse)
        } else {
            None
        };
        assert_eq!(state, expected, "port {port} at {}", ctx());
    }
    let mut seen = BTreeSet::new();
    for lease in table.leases() {
        for port in &lease.ports {
            assert!(seen.insert(*port), "port {port} in two leases at {}", ctx());
            let (lo, hi) = Model::pool(&lease.pool).unwrap();
            assert!(
                (lo..=hi).contains(port),
                "port {port} outside pool {} at {}",
                lease.pool,
                ctx()
            );
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed | 1);
    let (mut table, mut model) = (new_table(), Model::default());
    let (mut now, mut dead) = (0u64, BTreeSet::new());
    let pools = [DEFAULT_POOL, "web", "db", "nope"];
    for step in 0..STEPS {
        match rng.below(10) {
            0..=3 => {
                let pool = pools[rng.below(4) as usize];
                let count = 1 + rng.below(6) as usize;
                let port = (rng.below(4) == 0)
                    .then(|| START + rng.below(u64::from(END - START) + 5) as u16);
                let ttl = 1 + rng.below(50);
                let pid = (rng.below(3) == 0).then(|| 100 + rng.below(5) as u32);
                let id = format!("l{step}");
                let req = LeaseRequest {
                    count: if port.is_some() { 1 } else { count },
                    port,
                    pool: pool.to_string(),
                    ttl: Duration::from_secs(ttl),
                    owner: None,
                    uid: None,
                    protocol: dynport::ports::lease::Protocol::Both,
                    pid,
                    pid_start: pid.map(u64::from),
                    name: None,
                };
                let real = table
                    .grant(&req, id.clone(), at(now), None, &mut |_| true)
                    .map(|l| l.ports);
                let want = model.grant(&id, pool, req.count, port, now + ttl, pid);
                match (&real, &want) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "grant at seed {seed}, step {step}"),
                    (Err(LeaseError::UnknownPool(_)), Err("unknown pool"))
                    | (Err(LeaseError::Invalid(_)), Err("invalid"))
                    | (Err(LeaseError::Unavailable(_)), Err("unavailable")) => {}
                    _ => panic!(
                        "grant {req:?}: real {real:?}, model {want:?} at seed {seed}, step {step}"
                    ),
                }
            }
            4 => {
                let id = pick(&mut rng, &model);
                let real = table.release(&id, at(now)).is_ok();
                assert_eq!(
                    real,
                    model.leases.remove(&id).is_some(),
                    "release at seed {seed}, step {step}"
                );
            }
            5 => {
                let id = pick(&mut rng, &model);
                let ttl = 1 + rng.below(50);
                let real = table
                    .renew(&id, Some(Duration::from_secs(ttl)), at(now))
                    .is_ok();
                let live = model.leases.get_mut(&id).filter(|l| l.2 > now);
                let want = live.map(|l| l.2 = now + ttl).is_some();
                assert_eq!(real, want, "renew at seed {seed}, step {step}");
            }
            6 => now += rng.below(20),
            7 => {
                dead.insert(100 + rng.below(5) as u32);
            }
            _ => {
                let seen: BTreeSet<u16> = (0..rng.below(8))
                    .map(|_| START + rng.below(40) as u16)
                    .collect();
                let seen_tcp: Vec<u16> = seen.iter().copied().collect();
                table.apply_scan(&dynport::ports::tcp_only(&seen_tcp), "t");
                model.scan(&seen);
            }
        }
        let alive = |pid: u32, _: Option<u64>| !dead.contains(&pid);
        let ended: BTreeSet<String> = table
            .end_due(at(now), &alive)
            .into_iter()
            .map(|(l, _)| l.id)
            .collect();
        assert_eq!(
            ended,
            model.end_due(now, &dead),
            "ends at seed {seed}, step {step}"
        );
        compare(&table, &model, step, seed);
    }
}

fn pick(rng: &mut Rng, model: &Model) -> String {
    let ids: Vec<&String> = model.leases.keys().collect();
    match ids.len() {
        0 => "none".to_string(),
        n => ids[rng.below(n as u64 + 1) as usize % n].clone(),
    }
}

#[test]
fn allocator_matches_the_model() {
    let seeds: Vec<u64> = match std::env::var("DYNPORT_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("DYNPORT_MODEL_SEED is a number")],
        Err(_) => (1..=10u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect(),
    };
    for seed in seeds {
        let outcome = std::panic::catch_unwind(|| run(seed));
        if outcome.is_err() {
            panic!("model test failed; replay with DYNPORT_MODEL_SEED={seed}");
        }
    }
}
