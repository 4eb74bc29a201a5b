//! The server's shared state: the port table it holds, the state file it
//! keeps, and the operations that change them.
//!
//! A change is made in memory under one lock, then made durable by
//! [`App::flush`]: whoever takes the disk lock first saves the newest state,
//! which carries every change made so far, so concurrent changes share one
//! write (group commit). Readers only see a snapshot published after a
//! successful save, so a read never waits for the disk and never shows what
//! was not stored. A change whose save fails is undone and answered 503.
//! Lease changes (`leases.rs`) go through the commit queue instead, so that
//! no worker waits for the disk while they are written.

use crate::error::ApiError;
use crate::kernel_ports::KernelPorts;
use crate::metrics::Metrics;
use crate::ports::{Counts, PortTable, Protocols};
use crate::scan::Scanner;
use crate::state::{ScanInfo, ServerInfo, StateFile, Store};
use crate::time::now_rfc3339;
use crossbeam_channel::Sender;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

mod kernel;
mod leases;
mod status;

pub use leases::Waiter;

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
    /// Who may do what.
    pub rules: crate::principal::Rules,
    /// Names besides IP addresses and `localhost` that `Host` may give
    /// (`--allow-host`), lower-case.
    pub allow_hosts: Vec<String>,
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

/// dynport's shared state.
pub struct App {
    pub facts: Facts,
    pub metrics: Arc<Metrics>,
    /// Failed token checks by peer, for the 429 and the log's rate limit.
    pub auth_throttle: Mutex<crate::throttle::AuthThrottle>,
    store: Store,
    scanner: Scanner,
    serving: Box<dyn Serving>,
    held: Mutex<Held>,
    disk: Mutex<u64>,
    /// The commit queue, once open; without it changes are saved by the
    /// thread that made them.
    commits: OnceLock<Sender<Waiter>>,
    /// The kernel's range and, with `--reserve-kernel`, its reserved list.
    kernel: OnceLock<KernelPorts>,
    /// The service manager, told of every status change.
    notifier: OnceLock<Arc<crate::notify::Notifier>>,
    view: RwLock<Arc<View>>,
    /// The time leases live by: the wall clock moved on by the boot clock.
    clock: crate::time::LeaseClock,
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
            auth_throttle: Mutex::default(),
            store,
            scanner,
            serving,
            held: Mutex::new(held),
            disk: Mutex::new(0),
            commits: OnceLock::new(),
            kernel: OnceLock::new(),
            notifier: OnceLock::new(),
            view: RwLock::new(view),
            clock: crate::time::LeaseClock::system(),
        }
    }

    /// Now, as leases count it: a step of the wall clock does not move it
    /// until [`App::follow_wall_clock`] has moved the leases with it.
    pub fn lease_now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    /// When the wall clock has stepped, moves every lease's times with it:
    /// each keeps its remaining life, counted on the boot clock, and
    /// `expires_at` stays in wall-clock time. Returns whether leases moved.
    fn follow_wall_clock(&self) -> bool {
        let Some(step) = self.clock.follow_wall() else {
            return false;
        };
        let (moved, _) = self.change(|held| held.table.follow_wall_step(step));
        let (way, by) = match step {
            crate::time::Step::Forward(by) => ("forward", by),
            crate::time::Step::Back(by) => ("back", by),
        };
        log::warn!(
            "the wall clock stepped {way} by {}; the times of {moved} leases moved with it, \
             each keeping its remaining life",
            humantime::format_duration(std::time::Duration::from_secs(by.as_secs()))
        );
        moved > 0
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

    /// Makes `view` the one reads answer from. Every change a client hears
    /// of is published first, so a leased port is in the kernel's reserved
    /// list before its 201 goes out, and out of it before the release's 200.
    fn publish(&self, view: View) {
        self.reserve_kernel_ports(&view.state, false);
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut slot) => *slot = Arc::clone(&view),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&view),
        }
        // After the swap, so that a status dropped before the server was
        // ready is the one `tell_ready` reads.
        self.tell_status(&view);
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
        let stepped = self.follow_wall_clock();
        let ended = self.end_due_leases();
        let mut durable = self.disk();
        let saved = if changed || stepped || ended > 0 {
            self.save_through(&mut durable, seq)
        } else {
            self.publish(self.held().view());
            Ok(())
        };
        self.reserve_kernel_ports(&self.view().state, true);
        saved
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

/// Binds a listener on `host:port`; the bind itself is the test of a port.
pub fn bind(host: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
}

/// Whether `port` can be bound in each of `protocols`, on every IPv4
/// address and, where the host has IPv6, on every IPv6 address: the
/// grant-time check of a lease.
pub fn can_bind_everywhere(port: u16, protocols: Protocols) -> bool {
    let tcp = |ip| bind(ip, port).map(drop);
    let udp = |ip| UdpSocket::bind(SocketAddr::new(ip, port)).map(drop);
    (!protocols.tcp || bindable_everywhere(tcp)) && (!protocols.udp || bindable_everywhere(udp))
}

/// Whether `bind` succeeds on the IPv4 wildcard and on the IPv6 one, a host
/// without IPv6 passing the second.
fn bindable_everywhere(bind: impl Fn(IpAddr) -> io::Result<()>) -> bool {
    let v4 = bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).is_ok();
    let v6 = match bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED)) {
        Ok(()) => true,
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        ),
    };
    v4 && v6
}
