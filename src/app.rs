//! The server's shared state: the port table it holds, the state file it
//! keeps, and the operations that change them. Writers take one lock and
//! save before they publish; readers only ever see a published snapshot, so
//! a read never waits for the disk.

use crate::error::ApiError;
use crate::ports::{Counts, PortTable};
use crate::scan::Scanner;
use crate::state::{ScanInfo, ServerInfo, StateFile, Store};
use crate::time::now_rfc3339;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

/// What the engine does for the app: swap its listener, count requests.
pub trait Serving: Send + Sync {
    /// Serves new connections on `listener` from now on; closes the old one.
    fn replace_listener(&self, listener: TcpListener) -> io::Result<()>;
    fn requests_total(&self) -> u64;
}

impl Serving for crate::http::Control {
    fn replace_listener(&self, listener: TcpListener) -> io::Result<()> {
        crate::http::Control::replace_listener(self, listener)
    }
    fn requests_total(&self) -> u64 {
        self.stats().requests_total
    }
}

/// The published state every read answers from.
#[derive(Clone, Debug)]
pub struct View {
    pub state: StateFile,
    pub counts: Counts,
}

/// What the writers hold.
struct Held {
    table: PortTable,
    last_server_port: Option<u16>,
    last_scan: Option<ScanInfo>,
    server: Option<ServerInfo>,
}

impl Held {
    fn to_state(&self) -> StateFile {
        let mut state = StateFile::empty(self.table.range(), &now_rfc3339());
        state.server_port = self.table.server_port();
        state.last_server_port = self.last_server_port;
        state.server = self.server.clone();
        state.ports = self.table.entries().clone();
        state.last_scan = self.last_scan.clone();
        state
    }
}

/// Fixed facts about this server, for the overview.
#[derive(Clone, Debug)]
pub struct Facts {
    pub host: IpAddr,
    pub workers: usize,
    pub refresh_secs: u64,
    pub token: Option<String>,
    pub pid: u32,
    pub started: Instant,
}

/// dynport's shared state.
pub struct App {
    pub facts: Facts,
    store: Store,
    scanner: Scanner,
    serving: Box<dyn Serving>,
    held: Mutex<Held>,
    view: RwLock<Arc<View>>,
}

/// The port table and scan a server starts with, already saved.
pub struct Start {
    pub table: PortTable,
    pub last_scan: Option<ScanInfo>,
    pub started_at: String,
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
        };
        let view = Arc::new(view_of(&held));
        App {
            facts,
            store,
            scanner,
            serving,
            held: Mutex::new(held),
            view: RwLock::new(view),
        }
    }

    /// The state as last published.
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

    pub fn requests_total(&self) -> u64 {
        self.serving.requests_total()
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A writer that panicked left the table as it was before its save
        // (changes are saved, then published), so the data is still sound.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, held: &Held) {
        let view = Arc::new(view_of(held));
        match self.view.write() {
            Ok(mut slot) => *slot = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// Saves the held state and publishes it.
    fn commit(&self, held: &Held) -> io::Result<()> {
        self.store.save(&held.to_state())?;
        self.publish(held);
        Ok(())
    }

    /// Writes the current state to disk, e.g. right after start.
    pub fn save_now(&self) -> io::Result<()> {
        let held = self.lock();
        self.commit(&held)
    }

    /// Rescans the range and takes in what changed. The state file is
    /// written only when a port changed state.
    pub fn refresh(&self) -> io::Result<()> {
        let range = self.view().state.port_range;
        let began = Instant::now();
        let in_use = self.scanner.scan(range)?;
        let duration_ms = began.elapsed().as_secs_f64() * 1000.0;
        let now = now_rfc3339();
        let mut held = self.lock();
        let changed = held.table.apply_scan(&in_use, &now);
        held.last_scan = Some(ScanInfo {
            at: now,
            duration_ms: round_ms(duration_ms),
            in_use: held.table.counts().in_use,
        });
        log::debug!(
            "scan of {range} by {} took {duration_ms:.3} ms: {} in use, changed: {changed}",
            self.scanner.method().as_str(),
            in_use.len()
        );
        if changed {
            self.commit(&held)
        } else {
            self.publish(&held);
            Ok(())
        }
    }

    /// Moves the server to `requested`, or to the next free port after the
    /// current one. The new listener is bound and the state file written
    /// before this returns; nothing changes on an error.
    pub fn change_port(&self, requested: Option<u16>) -> Result<(u16, u16), ApiError> {
        let mut held = self.lock();
        let old = held.table.server_port().unwrap_or(0);
        let new = match requested {
            Some(port) => self.check_requested(&held.table, old, port)?,
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
        if let Err(e) = self.store.save(&held.to_state()) {
            (held.table, held.last_server_port) = before;
            return Err(ApiError::Unavailable(format!(
                "state file could not be written: {e}"
            )));
        }
        if let Err(e) = self.serving.replace_listener(listener) {
            (held.table, held.last_server_port) = before;
            let _ = self.store.save(&held.to_state());
            return Err(ApiError::Unavailable(format!(
                "could not serve on port {new}: {e}"
            )));
        }
        self.publish(&held);
        log::info!("Server port changed from {old} to {new}");
        Ok((old, new))
    }

    fn check_requested(&self, table: &PortTable, current: u16, port: u16) -> Result<u16, ApiError> {
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

    /// Releases the server's port at shutdown and writes the state file
    /// with `server_port: null`.
    pub fn release(&self) -> io::Result<()> {
        let mut held = self.lock();
        held.table.set_server_port(None, &now_rfc3339());
        held.server = None;
        self.commit(&held)
    }
}

fn view_of(held: &Held) -> View {
    View {
        counts: held.table.counts(),
        state: held.to_state(),
    }
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Binds a listener on `host:port`; the bind itself is the test of a port.
pub fn bind(host: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
}
