//! The server's shared state: the port table it holds, the files that keep
//! it, and the operations that change them.
//!
//! A change is made in memory under the write lock of the table. A lease
//! change is queued there too, so the queue holds changes in the order they
//! were made, and the commit thread (`commit.rs`) appends what queued up
//! meanwhile to the journal with one write and one fsync (group commit)
//! before any of it is answered: a commit costs the size of the changes, not
//! of the state. The state file, the snapshot, is rewritten away from the
//! answer path about a second after the first change it lacks
//! (`snapshot.rs`), and at start, at every port change and at shutdown.
//! Readers (`read.rs`) take the read lock for as long as it takes to copy
//! what they answer, never for a disk write: a change is visible from the
//! moment it is made, and its requester hears of it once it is durable. A
//! change whose journal write fails is undone and answered 503, and the next
//! commit writes a whole snapshot, so the disk never holds half of it.

use crate::app::kernel_ports::KernelPorts;
use crate::app::metrics::Metrics;
use crate::ports::{PortState, PortTable, Protocols};
use crate::scan::Scanner;
use crate::state::journal::Journal;
use crate::state::{ScanInfo, ServerInfo, StateRef, Store};
use crate::util::time::now_rfc3339;
use crossbeam_channel::Sender;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

mod commit;
mod error;
pub mod events;
pub(crate) mod gather;
mod kernel;
pub mod kernel_ports;
mod leases;
pub(crate) mod metrics;
mod names;
mod owners;
mod read;
pub(crate) mod refresh;
mod snapshot;
mod status;
pub mod usage;

pub use commit::{Committer, Waiter};
pub use error::AppError;
pub use leases::log_end;
pub use names::NameInfo;
pub use owners::POLL_EVERY;
pub use read::{LARGEST_HOLDERS, LeaseFilter, Summary, UsageReport};

/// What the engine does for the app: swap its listener, count requests.
pub trait Serving: Send + Sync {
    /// Serves new connections on `listener` from now on; closes the old one.
    fn replace_listener(&self, listener: TcpListener) -> io::Result<()>;
    fn stats(&self) -> crate::http::Stats;
}

/// What the writers hold.
struct Held {
    table: PortTable,
    last_server_port: Option<u16>,
    last_scan: Option<ScanInfo>,
    server: Option<ServerInfo>,
    /// Counts changes; the journal and the snapshots name changes by it.
    seq: u64,
    /// The processes leases are tied to.
    owners: owners::Owners,
}

impl Held {
    /// The state file's contents, borrowed.
    fn state(&self) -> StateRef<'_> {
        StateRef::of(
            &self.table,
            self.last_server_port,
            self.server.as_ref(),
            self.last_scan.as_ref(),
            now_rfc3339(),
        )
    }
}

/// What the disk holds, kept by whoever holds its lock.
struct Disk {
    /// The journal after the state file; `None` when it cannot be appended
    /// to: the next commit writes a whole snapshot and a fresh journal.
    journal: Option<Journal>,
    /// The last change stored in the state file or the journal.
    durable: u64,
    /// When the first change the state file lacks was journaled.
    behind_since: Option<Instant>,
    /// Commits that failed: a snapshot taken before one may hold changes it
    /// undid, and is then not installed.
    failures: u64,
}

/// Fixed facts about this server.
#[derive(Clone, Debug)]
pub struct Facts {
    pub host: IpAddr,
    pub workers: usize,
    pub refresh_secs: u64,
    pub lease_ttl: Duration,
    pub token: Option<String>,
    /// Who may do what.
    pub rules: crate::ports::principal::Rules,
    /// Names besides IP addresses and `localhost` that `Host` may give
    /// (`--allow-host`), lower-case.
    pub allow_hosts: Vec<String>,
    /// The Unix socket the server serves, which an unidentified caller is
    /// told to use.
    pub unix_socket: Option<std::path::PathBuf>,
    pub pid: u32,
    pub started: Instant,
    /// Processes of pid-bound leases watched by a pidfd at most; the
    /// processes of further leases are polled.
    pub pid_watches: usize,
    /// Where names are routed: the domains, and the routes-only port.
    pub routes: crate::config::RouteSettings,
}

/// The port table and scan a server starts with.
pub struct Start {
    pub table: PortTable,
    pub last_scan: Option<ScanInfo>,
    pub started_at: String,
}

/// Puts a change back when its commit failed.
type Undo = Box<dyn FnOnce(&mut PortTable) + Send>;

/// Hears how a change ended: durable, or refused or undone with the reason.
pub type Done<T> = Box<dyn FnOnce(Result<T, AppError>) + Send>;

/// dynport's shared state.
pub struct App {
    pub facts: Facts,
    pub metrics: Arc<Metrics>,
    store: Store,
    scanner: Scanner,
    serving: Box<dyn Serving>,
    // Lock order: snapshots, then disk, then held.
    /// Held by whoever replaces the state file, from the moment it copies
    /// the state until the journal starts over after it.
    snapshots: Mutex<()>,
    disk: Mutex<Disk>,
    held: RwLock<Held>,
    /// `held.seq` as readers may see it without the lock.
    generation: AtomicU64,
    /// The commit queue, once open; without it changes are committed by
    /// the thread that made them.
    commits: OnceLock<Sender<Waiter>>,
    /// Wakes the snapshot writer when the state file falls behind.
    behind: OnceLock<Sender<()>>,
    /// The kernel's range and, with `--reserve-kernel`, its reserved list.
    kernel: OnceLock<KernelPorts>,
    /// The service manager, told of every status change.
    notifier: OnceLock<Arc<crate::service::notify::Notifier>>,
    summary: RwLock<Arc<Summary>>,
    /// The time leases live by: the wall clock moved on by the boot clock.
    clock: crate::util::time::LeaseClock,
    /// When the refresh thread ends the next lease, in lease-clock
    /// nanoseconds since the epoch (`u64::MAX`: no lease): a lease that
    /// ends sooner wakes it.
    next_end: AtomicU64,
    /// The event stream's hub: every change, for `GET /api/v1/events`.
    pub events: events::Events,
}

impl App {
    pub fn new(
        facts: Facts,
        store: Store,
        scanner: Scanner,
        serving: Box<dyn Serving>,
        start: Start,
    ) -> App {
        let mut owners = owners::Owners::new(facts.pid_watches);
        for process in start.table.tied_processes() {
            // The refresh thread, started later, sees whether to poll.
            owners.watch(process, &|_| true);
        }
        let held = Held {
            owners,
            last_server_port: start.table.server_port(),
            server: Some(ServerInfo {
                pid: facts.pid,
                host: facts.host.to_string(),
                started_at: start.started_at,
            }),
            table: start.table,
            last_scan: start.last_scan,
            seq: 1,
        };
        let summary = Arc::new(Summary::of(&held));
        let disk = Disk {
            journal: None,
            durable: 0,
            behind_since: None,
            failures: 0,
        };
        App {
            facts,
            metrics: Arc::default(),
            store,
            scanner,
            serving,
            snapshots: Mutex::new(()),
            disk: Mutex::new(disk),
            generation: AtomicU64::new(held.seq),
            held: RwLock::new(held),
            commits: OnceLock::new(),
            behind: OnceLock::new(),
            kernel: OnceLock::new(),
            notifier: OnceLock::new(),
            summary: RwLock::new(summary),
            clock: crate::util::time::LeaseClock::system(),
            next_end: AtomicU64::new(u64::MAX),
            events: events::Events::new(std::time::SystemTime::now()),
        }
    }

    /// When the next lease's time is up, as an instant of this process: the
    /// refresh thread sleeps until then (or until woken), so a lease ends
    /// when due, not at the next scan. Plans the wake-up that a lease ending
    /// sooner must then cause.
    pub fn next_lease_end(&self) -> Option<Instant> {
        let soonest = self.held_read().table.leases().map(|l| l.expires_at).min();
        self.next_end
            .store(soonest.map_or(u64::MAX, nanos), Ordering::Relaxed);
        let left = soonest?
            .duration_since(self.lease_now())
            .unwrap_or(Duration::ZERO);
        Some(Instant::now() + left)
    }

    /// Wakes the refresh thread when a lease granted or renewed now ends
    /// before the one it waits for.
    fn expires_at(&self, at: std::time::SystemTime) {
        if nanos(at) < self.next_end.load(Ordering::Relaxed) {
            self.next_end.store(nanos(at), Ordering::Relaxed);
            self.wake_snapshots();
        }
    }

    /// Ends the leases whose time is up (the refresh thread, when the next
    /// one is due).
    pub fn end_leases_due(&self) {
        self.end_due_leases();
    }

    /// A descriptor readable while a lease's process exit waits to be
    /// collected ([`App::end_leases_due`]); `None` when the processes are
    /// polled instead.
    pub fn lease_exits_ready(&self) -> Option<std::os::fd::OwnedFd> {
        self.held_read().owners.exits_ready()
    }

    /// Now, as leases count it: a step of the wall clock does not move it
    /// until [`App::follow_wall_clock`] has moved the leases with it.
    pub fn lease_now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    /// When the wall clock has stepped, moves every lease's times with it:
    /// each keeps its remaining life, counted on the boot clock, and
    /// `expires_at` stays in wall-clock time. Returns whether leases moved;
    /// the caller then writes the state file.
    fn follow_wall_clock(&self) -> bool {
        let Some(step) = self.clock.follow_wall() else {
            return false;
        };
        let moved = {
            let mut held = self.held_write();
            let moved = held.table.follow_wall_step(step);
            self.bump(&mut held);
            moved
        };
        let (way, by) = match step {
            crate::util::time::Step::Forward(by) => ("forward", by),
            crate::util::time::Step::Back(by) => ("back", by),
        };
        log::warn!(
            "the wall clock stepped {way} by {}; the times of {moved} leases moved with it, \
             each keeping its remaining life",
            humantime::format_duration(Duration::from_secs(by.as_secs()))
        );
        moved > 0
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn scan_method(&self) -> &'static str {
        self.scanner.method().as_str()
    }

    pub fn http_stats(&self) -> crate::http::Stats {
        self.serving.stats()
    }

    // A thread that panicked holding a lock leaves at worst a change that
    // was never made durable nor acknowledged; the next commit stores a
    // consistent table.
    fn held_read(&self) -> RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    fn held_write(&self) -> RwLockWriteGuard<'_, Held> {
        self.held.write().unwrap_or_else(|p| p.into_inner())
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshots(&self) -> MutexGuard<'_, ()> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a change made under `held`; returns its number.
    fn bump(&self, held: &mut Held) -> u64 {
        held.seq += 1;
        self.generation.store(held.seq, Ordering::Release);
        held.seq
    }

    /// Writes the whole state to disk and starts the journal over, then puts
    /// the kernel's reserved list in step: at start, before any change is
    /// committed.
    pub fn save_now(&self) -> io::Result<()> {
        let _snapshots = self.snapshots();
        let mut disk = self.disk();
        self.checkpoint(&mut disk)?;
        self.reserve_kernel_ports(false);
        Ok(())
    }

    /// Rescans the range, takes in what changed and ends due leases.
    /// Returns whether the scan changed the table: the caller then writes
    /// the state file.
    pub fn refresh(&self) -> io::Result<bool> {
        let range = self.summary().range;
        let scan = Scan::of(&self.scanner, range)?;
        Metrics::add(&self.metrics.scans, 1);
        let nanos = u64::try_from(scan.took.as_nanos()).unwrap_or(u64::MAX);
        self.metrics.last_scan_nanos.store(nanos, Ordering::Relaxed);
        let (changed, moved) = {
            let mut held = self.held_write();
            let before = states(&held.table);
            let (changed, info) = scan.apply(&mut held.table);
            let moved = if changed {
                state_changes(&before, &states(&held.table))
            } else {
                Vec::new()
            };
            held.last_scan = Some(info);
            self.bump(&mut held);
            (changed, moved)
        };
        if !moved.is_empty() {
            self.publish(&[events::Event::scan(&moved)]);
        }
        log::debug!(
            "scan of {range} by {} took {} ms: {} in use, changed: {changed}",
            self.scan_method(),
            crate::util::time::Decimal::ms(scan.took, 3),
            scan.seen.len()
        );
        let stepped = self.follow_wall_clock();
        self.end_due_leases();
        self.reserve_kernel_ports(true);
        self.tell_status();
        Ok(changed || stepped)
    }

    /// Moves the server to `requested`, or to the next free port after the
    /// current one. The new listener is bound and the state file written
    /// before this returns; nothing changes on an error. Port changes are
    /// rare, so this holds every lock throughout.
    pub fn change_port(&self, requested: Option<u16>) -> Result<(u16, u16), AppError> {
        let _snapshots = self.snapshots();
        let mut disk = self.disk();
        let mut held = self.held_write();
        let old = held.table.server_port().unwrap_or(0);
        let new = match requested {
            Some(port) => check_requested(&held.table, old, port)?,
            None => held.table.next_free_after(old).ok_or_else(|| {
                AppError::PortUnavailable("no free port left in the range".to_string())
            })?,
        };
        let listener = bind(self.facts.host, new).map_err(|e| {
            AppError::PortUnavailable(format!("port {new} could not be bound: {e}"))
        })?;
        let before = (held.table.server_port(), held.last_server_port);
        (held.table)
            .set_server_port(new, &now_rfc3339())
            .map_err(|taken| AppError::PortUnavailable(taken.to_string()))?;
        held.last_server_port = Some(new);
        self.bump(&mut held);
        let saved = self
            .checkpoint_with(&mut disk, &held)
            .map_err(|e| AppError::storage(&e));
        let served = saved.and_then(|()| {
            self.serving
                .replace_listener(listener)
                .map_err(|e| AppError::Serving(format!("could not serve on port {new}: {e}")))
        });
        if let Err(e) = served {
            match before.0 {
                // The port it left, which nothing could take meanwhile.
                Some(port) => {
                    let _ = held.table.set_server_port(port, &now_rfc3339());
                }
                None => held.table.clear_server_port(),
            }
            held.last_server_port = before.1;
            self.bump(&mut held);
            let _ = self.checkpoint_with(&mut disk, &held);
            return Err(e);
        }
        drop(held);
        self.reserve_kernel_ports(false);
        self.tell_status();
        log::info!("Server port changed from {old} to {new}");
        // Streams close with the old listener's connections once they
        // carried the move: their clients reconnect to the new port.
        self.publish(&[events::Event::port(old, new)]);
        self.events.close_all();
        Ok((old, new))
    }

    /// Releases the server's port at shutdown and writes the state file
    /// with `server_port: null`; the journal starts over empty.
    pub fn release_server_port(&self) -> io::Result<()> {
        let _snapshots = self.snapshots();
        let mut disk = self.disk();
        let mut held = self.held_write();
        held.table.clear_server_port();
        held.server = None;
        self.bump(&mut held);
        self.checkpoint_with(&mut disk, &held)
    }
}

/// One scan of a range, taken without a lock, and what it took.
pub struct Scan {
    pub seen: Vec<crate::ports::Seen>,
    pub took: Duration,
}

impl Scan {
    /// Scans `range` now; the one scan code of a server's start and of its
    /// refresh thread.
    pub fn of(scanner: &Scanner, range: crate::ports::PortRange) -> io::Result<Scan> {
        let began = Instant::now();
        let seen = scanner.scan(range)?;
        Ok(Scan {
            seen,
            took: began.elapsed(),
        })
    }

    /// Takes the scan into `table`: whether that changed it, and the scan's
    /// record for the state file.
    pub fn apply(&self, table: &mut PortTable) -> (bool, ScanInfo) {
        let now = now_rfc3339();
        let changed = table.apply_scan(&self.seen, &now);
        let info = ScanInfo {
            at: now,
            duration_ms: (self.took.as_secs_f64() * 1e6).round() / 1000.0,
            in_use: table.counts().in_use,
        };
        (changed, info)
    }
}

/// The state of every port that is not free, in ascending order.
fn states(table: &PortTable) -> Vec<(u16, PortState)> {
    (table.entries().iter())
        .map(|(port, entry)| (*port, entry.state))
        .collect()
}

/// The ports whose state differs between `before` and `after` (both in
/// ascending order), with their state in each (`None`: free).
fn state_changes(
    before: &[(u16, PortState)],
    after: &[(u16, PortState)],
) -> Vec<(u16, Option<PortState>, Option<PortState>)> {
    let mut changes = Vec::new();
    let (mut b, mut a) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let change = match (b.peek(), a.peek()) {
            (None, None) => break,
            (Some(&&(port, was)), Some(&&(p, now))) if port == p => {
                b.next();
                a.next();
                (was != now).then_some((port, Some(was), Some(now)))
            }
            (Some(&&(port, was)), Some(&&(p, _))) if port < p => {
                b.next();
                Some((port, Some(was), None))
            }
            (Some(&&(port, was)), None) => {
                b.next();
                Some((port, Some(was), None))
            }
            (_, Some(&&(p, now))) => {
                a.next();
                Some((p, None, Some(now)))
            }
        };
        changes.extend(change);
    }
    changes
}

/// `t` in nanoseconds since the epoch, for an atomic.
fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn check_requested(table: &PortTable, current: u16, port: u16) -> Result<u16, AppError> {
    let range = table.range();
    if !range.contains(port) {
        return Err(AppError::PortOutsideRange(format!(
            "port: {port} is outside the managed range {range}"
        )));
    }
    if port == current {
        return Err(AppError::PortUnavailable(format!(
            "port {port} is already the server's port"
        )));
    }
    table
        .server_may_take(port)
        .map(|()| port)
        .map_err(|taken| AppError::PortUnavailable(taken.to_string()))
}

/// Binds a listener on `host:port`; the bind itself is the test of a port.
pub fn bind(host: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
}

/// Whether `port` can be bound in each of `protocols`, on every IPv4
/// address and, where the host has IPv6, on every IPv6 address: the
/// grant-time check of a lease.
pub fn can_bind_everywhere(port: u16, protocols: Protocols) -> bool {
    use crate::scan::{Proto, bindable};
    (!protocols.tcp || bindable(Proto::Tcp, port)) && (!protocols.udp || bindable(Proto::Udp, port))
}

#[cfg(test)]
mod scan_events_tests {
    use super::*;

    #[test]
    fn state_changes_name_each_port_that_came_went_or_changed() {
        use PortState::{InUse, Leased, Server};
        let before = [(3000, Server), (3001, InUse), (3003, Leased), (3005, InUse)];
        let after = [(3000, Server), (3002, InUse), (3003, InUse), (3006, InUse)];
        assert_eq!(
            state_changes(&before, &after),
            vec![
                (3001, Some(InUse), None),
                (3002, None, Some(InUse)),
                (3003, Some(Leased), Some(InUse)),
                (3005, Some(InUse), None),
                (3006, None, Some(InUse)),
            ]
        );
        assert!(state_changes(&before, &before).is_empty());
        assert_eq!(
            state_changes(&[], &[(1, InUse)]),
            vec![(1, None, Some(InUse))]
        );
    }
}
