//! The server's shared state: the port table it holds, the state file it
//! keeps, and the operations that change them.
//!
//! A change is made in memory under one lock, then made durable by
//! [`App::flush`]: whoever takes the disk lock first saves the newest state,
//! which carries every change made so far, so concurrent changes share one
//! write (group commit). Readers only see a snapshot published after a
//! successful save, so a read never waits for the disk and never shows what
//! was not stored. A change whose save fails is undone and answered 503.

use crate::error::ApiError;
use crate::gather::Gather;
use crate::lease::{EndReason, Lease, LeaseError, LeaseRequest};
use crate::metrics::{Denial, Metrics};
use crate::ports::{Counts, PortTable};
use crate::scan::Scanner;
use crate::state::{ScanInfo, ServerInfo, StateFile, Store};
use crate::time::{now_rfc3339, rfc3339};
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// What the engine does for the app: swap its listener, count requests.
pub trait Serving: Send + Sync {
    /// Serves new connections on `listener` from now on; closes the old one.
    fn replace_listener(&self, listener: TcpListener) -> io::Result<()>;
    fn stats(&self) -> crate::http::Stats;
}

impl Serving for crate::http::Control {
    fn replace_listener(&self, listener: TcpListener) -> io::Result<()> {
        crate::http::Control::replace_listener(self, listener)
    }
    fn stats(&self) -> crate::http::Stats {
        crate::http::Control::stats(self)
    }
}

/// The published state every read answers from.
#[derive(Clone, Debug)]
pub struct View {
    pub state: StateFile,
    pub counts: Counts,
    /// `GET /api/v1/server/port` up to its timestamp, made once per view.
    pub server_port_json: OnceLock<Vec<u8>>,
}

/// What the writers hold.
struct Held {
    table: PortTable,
    last_server_port: Option<u16>,
    last_scan: Option<ScanInfo>,
    server: Option<ServerInfo>,
    /// Counts changes; the disk lock holds the number of the last one saved.
    seq: u64,
}

impl Held {
    fn to_state(&self) -> StateFile {
        let mut state = StateFile::empty(self.table.range(), &now_rfc3339());
        state.server_port = self.table.server_port();
        state.last_server_port = self.last_server_port;
        state.server = self.server.clone();
        state.ports = self.table.entries().clone();
        state.last_scan = self.last_scan.clone();
        state.leases = self
            .table
            .leases()
            .map(|l| (l.id.clone(), l.clone()))
            .collect();
        state.cursors = self.table.cursors().clone();
        state
    }

    fn view(&self) -> View {
        View {
            counts: self.table.counts(),
            state: self.to_state(),
            server_port_json: OnceLock::new(),
        }
    }
}

/// Fixed facts about this server.
#[derive(Clone, Debug)]
pub struct Facts {
    pub host: IpAddr,
    pub workers: usize,
    pub refresh_secs: u64,
    pub lease_ttl: Duration,
    pub token: Option<String>,
    pub pid: u32,
    pub started: Instant,
}

/// The port table and scan a server starts with.
pub struct Start {
    pub table: PortTable,
    pub last_scan: Option<ScanInfo>,
    pub started_at: String,
}

/// Puts a change back when its save failed.
type Undo = Box<dyn FnOnce(&mut PortTable) + Send>;

/// Hears how a change ended: durable, or refused or undone with the reason.
pub type Done<T> = Box<dyn FnOnce(Result<T, ApiError>) + Send>;

/// A change waiting in the commit queue to be made durable.
pub struct Waiter {
    seq: u64,
    undo: Undo,
    done: Done<()>,
}

/// dynport's shared state.
pub struct App {
    pub facts: Facts,
    pub metrics: Arc<Metrics>,
    store: Store,
    scanner: Scanner,
    serving: Box<dyn Serving>,
    held: Mutex<Held>,
    disk: Mutex<u64>,
    /// The commit queue, once open; without it changes are saved by the
    /// thread that made them.
    commits: OnceLock<Sender<Waiter>>,
    view: RwLock<Arc<View>>,
}

impl App {
    pub fn new(
        facts: Facts,
        store: Store,
        scanner: Scanner,
        serving: Box<dyn Serving>,
        start: Start,
    ) -> App {
        let held = Held {
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
        let view = Arc::new(held.view());
        App {
            facts,
            metrics: Arc::default(),
            store,
            scanner,
            serving,
            held: Mutex::new(held),
            disk: Mutex::new(0),
            commits: OnceLock::new(),
            view: RwLock::new(view),
        }
    }

    /// The state as last saved.
    pub fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(view) => Arc::clone(&view),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
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

    // A writer that panicked mid-change leaves at worst a change that was
    // never saved nor acknowledged; the next save stores a consistent table.
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn disk(&self) -> MutexGuard<'_, u64> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, view: View) {
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut slot) => *slot = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// Saves the newest state unless a save since change `seq` already
    /// carried it. The caller holds the disk lock.
    fn save_through(&self, durable: &mut u64, seq: u64) -> io::Result<()> {
        if *durable >= seq {
            return Ok(());
        }
        let (state, view, newest) = {
            let held = self.held();
            (held.to_state(), held.view(), held.seq)
        };
        Metrics::add(&self.metrics.state_writes, 1);
        if let Err(e) = self.store.save(&state) {
            Metrics::add(&self.metrics.state_write_failures, 1);
            log::warn!("cannot write {}: {e}", self.store.path().display());
            return Err(e);
        }
        *durable = newest;
        self.publish(view);
        Ok(())
    }

    /// Makes a change durable, or undoes it when the save fails.
    fn flush(&self, seq: u64, undo: Undo) -> Result<(), ApiError> {
        let mut durable = self.disk();
        self.save_through(&mut durable, seq).map_err(|e| {
            let mut held = self.held();
            undo(&mut held.table);
            held.seq += 1;
            storage_error(&e)
        })
    }

    /// Makes a change in memory; the caller then flushes it.
    fn change<T>(&self, f: impl FnOnce(&mut Held) -> T) -> (T, u64) {
        let mut held = self.held();
        let out = f(&mut held);
        held.seq += 1;
        (out, held.seq)
    }

    /// Writes the current state to disk, e.g. right after start.
    pub fn save_now(&self) -> io::Result<()> {
        let seq = self.held().seq;
        self.save_through(&mut self.disk(), seq)
    }

    /// Rescans the range, takes in what changed and ends due leases. The
    /// state file is written only when something changed.
    pub fn refresh(&self) -> io::Result<()> {
        let range = self.view().state.port_range;
        let began = Instant::now();
        let in_use = self.scanner.scan(range)?;
        let took = began.elapsed();
        Metrics::add(&self.metrics.scans, 1);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.metrics
            .last_scan_nanos
            .store(nanos, std::sync::atomic::Ordering::Relaxed);
        let now = now_rfc3339();
        let (changed, seq) = self.change(|held| {
            let changed = held.table.apply_scan(&in_use, &now);
            held.last_scan = Some(ScanInfo {
                at: now.clone(),
                duration_ms: (took.as_secs_f64() * 1e6).round() / 1000.0,
                in_use: held.table.counts().in_use,
            });
            changed
        });
        log::debug!(
            "scan of {range} by {} took {:.3} ms: {} in use, changed: {changed}",
            self.scan_method(),
            took.as_secs_f64() * 1000.0,
            in_use.len()
        );
        let ended = self.end_due_leases();
        let mut durable = self.disk();
        if changed || ended > 0 {
            self.save_through(&mut durable, seq)
        } else {
            self.publish(self.held().view());
            Ok(())
        }
    }

    /// Ends leases whose TTL passed or whose process exited, logging each.
    /// Returns how many ended; the caller makes that durable.
    fn end_due_leases(&self) -> usize {
        let (ended, _) = self.change(|held| {
            held.table
                .end_due(SystemTime::now(), &crate::process::is_alive)
        });
        for (lease, reason) in &ended {
            let counter = match reason {
                EndReason::OwnerExited => &self.metrics.owner_exits,
                _ => &self.metrics.expiries,
            };
            Metrics::add(counter, 1);
            log::info!(
                "lease {} ended ({}): ports {:?} freed",
                lease.id,
                reason.as_str(),
                lease.ports
            );
        }
        ended.len()
    }

    /// Ends due leases, so that none is counted against a pool nor renewed
    /// or released, then makes one lease change in memory. When the change
    /// is refused, the ends are still written.
    fn lease_change<T>(
        &self,
        f: impl FnOnce(&mut PortTable) -> Result<T, LeaseError>,
    ) -> Result<(T, u64), LeaseError> {
        let ended = self.end_due_leases();
        let (out, seq) = self.change(|held| f(&mut held.table));
        if out.is_err() && ended > 0 {
            let _ = self.save_through(&mut self.disk(), seq);
        }
        out.map(|t| (t, seq))
    }

    /// Opens the commit queue: from now on a lease change does not hold its
    /// worker while it is saved, and whoever reads the queue (the refresh
    /// thread) saves it with [`App::commit_queued`]. Changes that queue up
    /// while one save runs all go into the next, so the more clients change
    /// at once, the more changes each write carries.
    pub fn open_commit_queue(&self) -> Receiver<Waiter> {
        let (queue, waiting) = crossbeam_channel::unbounded();
        // Set once; a second call gets a queue nobody writes to.
        let _ = self.commits.set(queue);
        waiting
    }

    /// Saves `first` and every change queued behind it in one write, after
    /// waiting briefly for the changes `gather` expects (see
    /// [`crate::gather`]), then tells `gather` how the write went.
    pub fn commit_queued(&self, first: Waiter, queue: &Receiver<Waiter>, gather: &mut Gather) {
        let mut batch = vec![first];
        loop {
            batch.extend(queue.try_iter());
            if gather.ready(batch.len(), Instant::now()) {
                break;
            }
            match queue.recv_deadline(gather.until()) {
                Ok(waiter) => batch.push(waiter),
                Err(_) => break,
            }
        }
        let answered = batch.len();
        let started = Instant::now();
        let outcomes = self.save_batch(batch);
        // Measured before the answers go out: a client answered below may
        // be back in the queue before this thread looks again.
        *gather = Gather::wrote(answered, queue.len(), started, Instant::now());
        for (tell, result) in outcomes {
            tell(result);
        }
    }

    /// Saves once for every change in `batch`; when the save fails, every
    /// change in it that no earlier save carried is undone. Returns whom to
    /// tell what.
    fn save_batch(&self, batch: Vec<Waiter>) -> Vec<(Done<()>, Result<(), ApiError>)> {
        let mut durable = self.disk();
        let newest = batch.iter().map(|w| w.seq).max().unwrap_or(0);
        let outcome = self.save_through(&mut durable, newest);
        let mut done = Vec::with_capacity(batch.len());
        match outcome {
            Ok(()) => done.extend(batch.into_iter().map(|w| (w.done, Ok(())))),
            Err(e) => {
                let mut held = self.held();
                for waiter in batch.into_iter().rev() {
                    if waiter.seq <= *durable {
                        done.push((waiter.done, Ok(())));
                    } else {
                        (waiter.undo)(&mut held.table);
                        done.push((waiter.done, Err(storage_error(&e))));
                    }
                }
                held.seq += 1;
            }
        }
        drop(durable);
        done
    }

    /// Makes change `seq` durable: through the commit queue when it is
    /// open, else right here. `done` hears the outcome either way.
    fn commit(&self, seq: u64, undo: Undo, done: Done<()>) {
        let waiter = Waiter { seq, undo, done };
        let waiter = match self.commits.get() {
            Some(queue) => match queue.send(waiter) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => waiter,
        };
        (waiter.done)(self.flush(waiter.seq, waiter.undo));
    }

    /// Grants a lease; `done` hears of it once it is in the state file.
    pub fn grant(&self, req: &LeaseRequest, done: Done<Lease>) {
        let id = new_lease_id();
        let granted = self.lease_change(|table| {
            table.grant(req, id, SystemTime::now(), &mut can_bind_everywhere)
        });
        let (lease, seq) = match granted {
            Ok(granted) => granted,
            Err(e) => {
                self.metrics.deny(match e {
                    LeaseError::UnknownPool(_) => Denial::UnknownPool,
                    LeaseError::Invalid(_) => Denial::BadRequest,
                    _ => Denial::Unavailable,
                });
                return done(Err(lease_error(e)));
            }
        };
        let undo_id = lease.id.clone();
        let metrics = Arc::clone(&self.metrics);
        let granted: Done<()> = Box::new(move |outcome| {
            match &outcome {
                Ok(()) => {
                    Metrics::add(&metrics.grants, 1);
                    log::info!(
                        "lease {} granted: ports {:?} in pool {}",
                        lease.id,
                        lease.ports,
                        lease.pool
                    );
                }
                Err(_) => metrics.deny(Denial::Storage),
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, Box::new(move |t| drop(t.release(&undo_id))), granted);
    }

    /// Ends a lease; `done` hears of it once its ports are free in the
    /// state file.
    pub fn release(&self, id: &str, done: Done<Lease>) {
        let (lease, seq) = match self.lease_change(|table| table.release(id)) {
            Ok(released) => released,
            Err(e) => return done(Err(lease_error(e))),
        };
        let back = lease.clone();
        let undo: Undo = Box::new(move |t| {
            t.insert_lease(back, &now_rfc3339());
        });
        let metrics = Arc::clone(&self.metrics);
        let released: Done<()> = Box::new(move |outcome| {
            if outcome.is_ok() {
                Metrics::add(&metrics.releases, 1);
                log::info!(
                    "lease {} ended (released): ports {:?} freed",
                    lease.id,
                    lease.ports
                );
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, undo, released);
    }

    /// Gives a live lease a new life of `ttl`, or of the life it was last
    /// given when `None`; `done` hears of it once it is stored.
    pub fn renew(&self, id: &str, ttl: Option<Duration>, done: Done<Lease>) {
        let before = self.held().table.lease(id).cloned();
        let renewed = self.lease_change(|table| table.renew(id, ttl, SystemTime::now()));
        let (lease, seq) = match renewed {
            Ok(renewed) => renewed,
            Err(e) => return done(Err(lease_error(e))),
        };
        let undo: Undo = Box::new(move |t| before.into_iter().for_each(|l| t.restore(l)));
        let renewed: Done<()> = Box::new(move |outcome| {
            if outcome.is_ok() {
                log::debug!(
                    "lease {} renewed until {}",
                    lease.id,
                    rfc3339(lease.expires_at)
                );
            }
            done(outcome.map(|()| lease));
        });
        self.commit(seq, undo, renewed);
    }

    /// Moves the server to `requested`, or to the next free port after the
    /// current one. The new listener is bound and the state file written
    /// before this returns; nothing changes on an error. Port changes are
    /// rare, so this holds both locks throughout and needs no undo.
    pub fn change_port(&self, requested: Option<u16>) -> Result<(u16, u16), ApiError> {
        let mut durable = self.disk();
        let mut held = self.held();
        let old = held.table.server_port().unwrap_or(0);
        let new = match requested {
            Some(port) => check_requested(&held.table, old, port)?,
            None => held
                .table
                .next_free_after(old)
                .ok_or_else(|| ApiError::Conflict("no free port left in the range".to_string()))?,
        };
        let listener = bind(self.facts.host, new)
            .map_err(|e| ApiError::Conflict(format!("port {new} could not be bound: {e}")))?;
        let before = (held.table.clone(), held.last_server_port);
        held.table.set_server_port(Some(new), &now_rfc3339());
        held.last_server_port = Some(new);
        held.seq += 1;
        Metrics::add(&self.metrics.state_writes, 1);
        let saved = self.store.save(&held.to_state()).map_err(|e| {
            Metrics::add(&self.metrics.state_write_failures, 1);
            storage_error(&e)
        });
        let served = saved.and_then(|()| {
            self.serving
                .replace_listener(listener)
                .map_err(|e| ApiError::Unavailable(format!("could not serve on port {new}: {e}")))
        });
        if let Err(e) = served {
            (held.table, held.last_server_port) = before;
            held.seq += 1;
            let _ = self.store.save(&held.to_state());
            return Err(e);
        }
        *durable = held.seq;
        self.publish(held.view());
        log::info!("Server port changed from {old} to {new}");
        Ok((old, new))
    }

    /// Releases the server's port at shutdown and writes the state file
    /// with `server_port: null`.
    pub fn release_server_port(&self) -> io::Result<()> {
        let (_, seq) = self.change(|held| {
            held.table.set_server_port(None, &now_rfc3339());
            held.server = None;
        });
        self.save_through(&mut self.disk(), seq)
    }
}

fn check_requested(table: &PortTable, current: u16, port: u16) -> Result<u16, ApiError> {
    let range = table.range();
    if !range.contains(port) {
        return Err(ApiError::BadRequest(format!(
            "port: {port} is outside the managed range {range}"
        )));
    }
    if port == current {
        return Err(ApiError::Conflict(format!(
            "port {port} is already the server's port"
        )));
    }
    match table.state(port) {
        None => Ok(port),
        Some(entry) => Err(ApiError::Conflict(format!(
            "port {port} is not free: it is {}",
            entry.state.as_str()
        ))),
    }
}

fn storage_error(e: &io::Error) -> ApiError {
    ApiError::Unavailable(format!(
        "the state file could not be written, nothing was changed: {e}"
    ))
}

fn lease_error(e: LeaseError) -> ApiError {
    match e {
        LeaseError::UnknownPool(name) => ApiError::NotFound(format!("pool: no pool named {name}")),
        LeaseError::UnknownLease(id) => ApiError::NotFound(format!("no live lease {id}")),
        LeaseError::Invalid(m) => ApiError::BadRequest(m),
        LeaseError::Unavailable(m) => ApiError::Conflict(m),
    }
}

/// A lease id: 16 hex digits, unique within this host's history in practice.
fn new_lease_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:016x}",
        RandomState::new().hash_one((n, nanos, std::process::id()))
    )
}

/// Binds a listener on `host:port`; the bind itself is the test of a port.
pub fn bind(host: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
}

/// Whether `port` can be bound on every IPv4 address and, where the host
/// has IPv6, on every IPv6 address: the grant-time check of a lease.
pub fn can_bind_everywhere(port: u16) -> bool {
    let v4 = bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).is_ok();
    let v6 = match bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port) {
        Ok(_) => true,
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        ),
    };
    v4 && v6
}
