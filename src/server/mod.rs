//! Wiring: lock the state directory, load the state, scan, bind, serve, and
//! shut down cleanly on SIGINT or SIGTERM.

pub(crate) mod fd_budget;

use crate::app::kernel_ports::{Kernel, KernelPorts};
use crate::app::refresh::Refresh;
use crate::app::{self, App, Committer, Facts, Scan, Start};
use crate::config::Settings;
use crate::http::{Engine, EngineConfig, Handler};
use crate::ports::PortTable;
use crate::ports::principal::Rules;
use crate::portserver::{self, Listening};
use crate::scan::Scanner;
use crate::service::notify::Notifier;
use crate::service::watchdog::{Watchdog, engine_probe};
use crate::state::files::Dir;
use crate::state::journal::Fit;
use crate::state::leases::{self, check_leases};
use crate::state::socket::SocketFile;
use crate::state::{DirLock, JournalLoad, Loaded, LockError, ScanInfo, StateFile, Store};
use crate::sys::netlink::Vouching;
use crate::util::time::now_rfc3339;
use fd_budget::FdBudget;
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long requests in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A failure that ends the server with exit status 1.
#[derive(Debug)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the log and the service manager hear when shutdown begins.
const SHUTTING_DOWN: &str = "shutting down: finishing requests in flight";

/// The directories a server works in, checked at start and held open from
/// then on: whatever happens to their paths later changes nothing.
pub struct Dirs {
    /// The state directory ([`crate::state::dir::prepare`]).
    pub state: Dir,
    /// The directory of a `--portserver-socket` path
    /// ([`portserver::prepare`]).
    pub portserver: Option<Dir>,
}

impl Dirs {
    /// Checks and opens the directories of `settings`. The error is the
    /// whole message of a configuration error (exit status 2).
    pub fn prepare(settings: &Settings) -> Result<Dirs, String> {
        let state = crate::state::dir::prepare(&settings.state_dir)?;
        let portserver = match &settings.portserver {
            Some(config) => portserver::prepare(&config.address)?,
            None => None,
        };
        Ok(Dirs { state, portserver })
    }
}

/// Runs the server until SIGINT or SIGTERM, in the directories `dirs` holds,
/// telling `notifier` (the service manager, if any) when it is ready, what
/// it serves, and when it stops.
pub fn run(settings: &Settings, dirs: &Dirs, notifier: Notifier) -> Result<(), Fatal> {
    let started = Instant::now();
    let budget = crate::server::fd_budget::raise_and_size();
    let dir = &dirs.state;
    let _lock = DirLock::acquire(dir).map_err(|e| lock_failure(dir.path(), e))?;
    let store = Store::new(dir);
    match store.remove_stale_temps() {
        Ok(0) => {}
        Ok(n) => log::info!(
            "removed {n} temporary files a killed server left in {}",
            dir.path().display()
        ),
        Err(e) => log::warn!("cannot list {}: {e}", dir.path().display()),
    }
    let saved = load_saved(&store, settings.range)?;
    let last_port = saved.as_ref().and_then(|s| s.last_server_port);
    let scanner = Scanner::detect();
    let (mut table, last_scan) = first_table(&scanner, settings, saved)?;
    let (listener, port) = bind_first(settings, &table, last_port)?;
    table
        .set_server_port(port, &now_rfc3339())
        .map_err(|taken| Fatal(format!("cannot serve on port {port}: {taken}")))?;
    let signals = on_signal()?;
    if !crate::http::gentle_retire_supported() {
        log::warn!(
            "this process may not filter handshakes on a listener (it needs root or \
             CAP_NET_ADMIN): during a port change the old port accepts for 100 ms more, \
             and a client connecting then may be reset"
        );
    }
    let unix = bind_unix(settings, dir)?;
    let routes = bind_routes(settings)?;
    let portserver = bind_portserver(settings, dirs.portserver.as_ref())?;

    // The engine's cap and each principal's share, under the descriptor
    // limit (fd_budget never gives connections more than 1,024).
    let connections = budget.connections;
    let per_user = settings.max_connections_per_uid.min(connections / 4).max(1);
    log::info!("open connections at most {connections}, {per_user} per user");
    let mut engine = Engine::new(EngineConfig {
        workers: settings.workers,
        max_connections: connections,
        max_connections_per_peer: per_user,
        // The operators, who may hold what they like, as with the quota.
        unshared_uids: vec![0, crate::sys::process::own_uid()],
        identify_tcp: Some(identify_tcp),
        error_response: crate::api::error::error_response,
        ..EngineConfig::default()
    })
    .map_err(|e| Fatal(format!("cannot start the HTTP engine: {e}")))?;
    let socket_file = unix.map(|(listener, file)| {
        engine.serve_unix(listener);
        file
    });
    let routes_port = routes.map(|(listener, port)| {
        engine.serve_routes(listener);
        port
    });
    let control = engine.control();
    let start = Start {
        table,
        last_scan: Some(last_scan),
        started_at: now_rfc3339(),
    };
    let serving = Box::new(control.clone());
    let app = Arc::new(App::new(
        facts(settings, started, &budget),
        store,
        scanner,
        serving,
        start,
    ));
    let kernel = KernelPorts::open(Kernel::host(), dir, settings.reserve_kernel)
        .map_err(|e| Fatal(format!("cannot use the kernel's port lists: {e}")))?;
    app.set_kernel_ports(kernel);
    let notifier = Arc::new(notifier);
    app.set_notifier(Arc::clone(&notifier));
    let commits = app.open_commit_queue();

    // Reads are answered from here on; changes wait in the commit queue
    // until the state file holds what the server starts from.
    let api = Arc::new(crate::api::Api::new(Arc::clone(&app)));
    let router = crate::api::routing::Names::new(Arc::clone(&api), settings.routes.domains.clone());
    engine.route_with(Arc::new(router));
    let handler: Handler = Arc::new(move |req| crate::api::handle(&api, req));
    let running = engine
        .run(listener, handler)
        .map_err(|e| Fatal(format!("cannot start the HTTP engine: {e}")))?;
    if let Err(e) = app.save_now() {
        control.shutdown(Duration::ZERO);
        running.join();
        return Err(write_failure(&app, &e));
    }
    log::debug!(
        "started in {} ms",
        crate::util::time::Decimal::ms(started.elapsed(), 1)
    );
    log::info!(
        "listening on http://{}",
        SocketAddr::new(settings.host, port)
    );
    if let Some(file) = &socket_file {
        log::info!("listening on unix:{}", file.path().display());
    }
    if let Some(port) = routes_port {
        log::info!(
            "routing names on http://{}, e.g. http://web.{}{}/",
            SocketAddr::new(settings.host, port),
            settings
                .routes
                .domains
                .first()
                .map_or("localhost", String::as_str),
            if port == 80 {
                String::new()
            } else {
                format!(":{port}")
            }
        );
    }
    let committer = Committer::spawn(Arc::clone(&app), commits)
        .map_err(|e| Fatal(format!("cannot start the commit thread: {e}")))?;
    let refresh = Refresh::spawn(Arc::clone(&app), settings.refresh)
        .map_err(|e| Fatal(format!("cannot start the refresh thread: {e}")))?;
    let portserver = serve_portserver(portserver, &app, budget.portserver_waiting)?;
    // Ready once the port answers and every thread a request may wait on
    // runs.
    app.tell_ready();
    let watchdog = start_watchdog(&notifier, &control)?;

    let _ = signals.recv();
    notifier.stopping(SHUTTING_DOWN);
    // Draining closes the listener, so the probes would fail from now on.
    if let Some(watchdog) = watchdog {
        watchdog.stop();
    }
    log::info!("{SHUTTING_DOWN}");
    if let Some(portserver) = portserver {
        portserver.stop();
    }
    // Requests in flight may wait for the commit thread to store their
    // change, so it stops after them.
    control.shutdown(SHUTDOWN_GRACE);
    running.join();
    drop(socket_file);
    committer.stop();
    refresh.stop();
    app.release_server_port()
        .map_err(|e| write_failure(&app, &e))?;
    log::info!("Port released successfully");
    app.release_kernel_ports();
    Ok(())
}

/// With `WATCHDOG_USEC`, a thread that tells the service manager
/// `WATCHDOG=1` while the workers answer `GET /healthz`.
fn start_watchdog(
    notifier: &Arc<Notifier>,
    control: &crate::http::Control,
) -> Result<Option<Watchdog>, Fatal> {
    let Some(period) = notifier.watchdog_period() else {
        return Ok(None);
    };
    log::debug!("pinging the service manager's watchdog every {period:?}");
    let pinger = Arc::clone(notifier);
    Watchdog::spawn(period, engine_probe(control.clone()), move || {
        pinger.watchdog()
    })
    .map(Some)
    .map_err(|e| Fatal(format!("cannot start the watchdog thread: {e}")))
}

/// The Unix socket of `--unix-socket`, unless it is `none`: in the state
/// directory `dir` (by default), bound through its descriptor.
fn bind_unix(settings: &Settings, dir: &Dir) -> Result<Option<(UnixListener, SocketFile)>, Fatal> {
    let Some(path) = &settings.unix_socket else {
        return Ok(None);
    };
    let bound = crate::state::socket::bind(path, Some(dir))
        .map_err(|e| Fatal(format!("cannot listen on unix:{}: {e}", path.display())))?;
    Ok(Some(bound))
}

/// The socket of `--portserver-socket`, bound at start like the others.
/// The listener that only routes names (`--routes-port`), when one is
/// asked for.
fn bind_routes(settings: &Settings) -> Result<Option<(TcpListener, u16)>, Fatal> {
    let Some(port) = settings.routes.port else {
        return Ok(None);
    };
    app::bind(settings.host, port)
        .map(|listener| Some((listener, port)))
        .map_err(|e| {
            Fatal(format!(
                "cannot listen for routes on {} (--routes-port {port}): {e}",
                SocketAddr::new(settings.host, port)
            ))
        })
}

fn bind_portserver(
    settings: &Settings,
    dir: Option<&Dir>,
) -> Result<Option<(Listening, String)>, Fatal> {
    let Some(config) = &settings.portserver else {
        return Ok(None);
    };
    let listening = portserver::bind(&config.address, dir).map_err(|e| {
        Fatal(format!(
            "cannot serve the portserver protocol on {}: {e}",
            config.address
        ))
    })?;
    Ok(Some((listening, config.pool.clone())))
}

fn serve_portserver(
    bound: Option<(Listening, String)>,
    app: &Arc<App>,
    max_waiting: usize,
) -> Result<Option<portserver::Running>, Fatal> {
    let Some((listening, pool)) = bound else {
        return Ok(None);
    };
    let address = listening.address().to_string();
    let running = portserver::spawn(listening, Arc::clone(app), pool, max_waiting)
        .map_err(|e| Fatal(format!("cannot start the portserver thread: {e}")))?;
    log::info!("portserver listening on {address} (PORTSERVER_ADDRESS={address})");
    Ok(Some(running))
}

/// A channel that receives once SIGINT or SIGTERM arrives.
fn on_signal() -> Result<crossbeam_channel::Receiver<()>, Fatal> {
    let (tx, signals) = crossbeam_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(|e| Fatal(format!("cannot install the signal handler: {e}")))?;
    Ok(signals)
}

fn facts(settings: &Settings, started: Instant, budget: &FdBudget) -> Facts {
    Facts {
        host: settings.host,
        workers: settings.workers,
        refresh_secs: settings.refresh.as_secs(),
        lease_ttl: settings.lease_ttl,
        token: settings.token.clone(),
        rules: Rules {
            server_uid: crate::sys::process::own_uid(),
            max_ports_per_uid: settings.max_ports_per_uid,
            max_names_per_uid: settings.names.max_per_uid,
            token_set: settings.token.is_some(),
        },
        allow_hosts: settings.allow_hosts.clone(),
        unix_socket: settings.unix_socket.clone(),
        pid: std::process::id(),
        started,
        pid_watches: budget.pid_watches,
        routes: settings.routes.clone(),
    }
}

fn write_failure(app: &App, e: &std::io::Error) -> Fatal {
    Fatal(format!(
        "cannot write {}: {e}",
        app.store().path().display()
    ))
}

fn lock_failure(dir: &std::path::Path, e: LockError) -> Fatal {
    match e {
        LockError::Held { pid: Some(pid) } => Fatal(format!(
            "state directory {} is in use by {}; stop it or use another --state-dir",
            dir.display(),
            holder(pid)
        )),
        LockError::Held { pid: None } => Fatal(format!(
            "state directory {} is locked by another process; stop it or use another --state-dir",
            dir.display()
        )),
        LockError::Io(e) => Fatal(format!(
            "cannot lock state directory {}: {e}",
            dir.display()
        )),
    }
}

/// `another dynport (pid 4242)`, or `pid 4242 (flock)` for another program.
fn holder(pid: u32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match comm.trim_end() {
        "dynport" => format!("another dynport (pid {pid})"),
        "" => format!("pid {pid}"),
        comm => format!("pid {pid} ({})", comm.escape_debug()),
    }
}

/// Loads the state the last server left: its state file and the journal
/// after it. A corrupt file, or a journal damaged before its tail, is kept
/// aside; a state left by a server that died is taken over.
fn load_saved(store: &Store, range: crate::ports::PortRange) -> Result<Option<StateFile>, Fatal> {
    let recovered = store
        .recover(range)
        .map_err(|e| Fatal(format!("cannot read {}: {e}", store.dir().path().display())))?;
    report_journal(store, &recovered.journal);
    match recovered.snapshot {
        Loaded::Missing => Ok(None),
        Loaded::Corrupt { kept_as, reason } => {
            // The reason may quote the file, which anyone may have written.
            log::warn!(
                "state file {} did not parse ({}); kept it as {} and starting from a fresh scan",
                store.path().display(),
                reason.escape_debug(),
                kept_as.display()
            );
            Ok(None)
        }
        Loaded::Found(state) => {
            if let Some(server) = &state.server {
                log::warn!(
                    "taking over the state left by pid {}, which did not shut down cleanly",
                    server.pid
                );
            }
            Ok(Some(state))
        }
    }
}

/// Logs what the journal gave at start, and what it lost.
fn report_journal(store: &Store, journal: &JournalLoad) {
    let path = store.journal_path();
    let shown = path.display();
    match journal {
        JournalLoad::Missing => {}
        JournalLoad::Read { fit, changes, torn } => {
            if let Some((at, bytes)) = torn {
                log::warn!(
                    "journal {shown}: dropped an incomplete last record ({bytes} bytes at byte {at}): \
                     a write cut short, never acknowledged"
                );
            }
            match fit {
                Fit::Alone if *changes > 0 => log::warn!(
                    "journal {shown} has no state file before it: its {changes} changes are applied \
                     to an empty state; leases granted before it began are lost"
                ),
                Fit::Predates => log::info!(
                    "journal {shown} continues an older state file, which the state file holds: \
                     it adds nothing"
                ),
                _ => log::debug!("journal {shown}: {changes} changes applied"),
            }
        }
        JournalLoad::Damaged { kept_as, damage } => log::warn!(
            "journal {shown} is damaged at byte {} ({}); kept it as {} and starting from the \
             state file alone: the changes after it are lost",
            damage.at,
            damage.why.escape_debug(),
            kept_as.display()
        ),
    }
}

/// The table a server starts from: pools and exclusions from the settings,
/// what a fresh scan sees, and the leases the last server left, less those
/// that ended while no server ran.
fn first_table(
    scanner: &Scanner,
    settings: &Settings,
    saved: Option<StateFile>,
) -> Result<(PortTable, ScanInfo), Fatal> {
    let scan = Scan::of(scanner, settings.range)
        .map_err(|e| Fatal(format!("cannot scan ports {}: {e}", settings.range)))?;
    let now = now_rfc3339();
    let mut table = PortTable::new(settings.range, &settings.exclude, &now);
    table.set_name_retention(settings.names.retention());
    for pool in &settings.pools {
        table.add_pool(&pool.name, pool.range);
    }
    let (_, info) = scan.apply(&mut table);
    log::debug!(
        "first scan by {}: {} ports in use",
        scanner.method().as_str(),
        scan.seen.len()
    );
    if let Some(saved) = saved {
        let pools = settings.pools.iter().map(|p| (p.name.as_str(), p.range));
        let rules = leases::LoadRules::new(settings.range, pools);
        restore_leases(&mut table, saved, &rules, &now);
    }
    Ok((table, info))
}

/// Puts back the leases of the state file that obey the rules of new
/// leases; one warning counts the others, which are dropped unseen.
fn restore_leases(table: &mut PortTable, saved: StateFile, rules: &leases::LoadRules, now: &str) {
    let loaded = saved.leases.len();
    let checked = check_leases(saved.leases, rules, SystemTime::now());
    if checked.dropped_count() > 0 {
        log::warn!(
            "of the {loaded} leases in the state file, {checked}: only leases that obey the rules of new leases are kept",
        );
    }
    let loaded = table.insert_loaded(checked.kept, now);
    for id in loaded.partial {
        let shown = id.escape_debug();
        log::warn!("lease {shown} keeps only the ports it can still hold");
    }
    for lease in loaded.dropped {
        let (shown, ports) = (lease.id.escape_debug(), &lease.ports);
        log::warn!("lease {shown} dropped: none of its ports {ports:?} can be held now");
    }
    for (pool, port) in &saved.cursors {
        table.set_cursor(pool, *port);
    }
    table.insert_loaded_names(saved.names, SystemTime::now());
    for (lease, reason) in table.end_due(SystemTime::now(), &crate::sys::process::alive_checker()) {
        crate::app::log_end(&lease, reason);
    }
}

/// Binds the first port that can be had: last time's port when free, else
/// the lowest free one, else the fallback port.
fn bind_first(
    settings: &Settings,
    table: &PortTable,
    last_port: Option<u16>,
) -> Result<(TcpListener, u16), Fatal> {
    for port in table.start_candidates(last_port) {
        match app::bind(settings.host, port) {
            Ok(listener) => {
                log::info!("Selected dynamic port: {port}");
                return Ok((listener, port));
            }
            Err(e) => log::debug!("port {port} could not be bound: {e}"),
        }
    }
    let fallback = settings.fallback_port;
    let none_bound = format!(
        "no port of {} could be bound on {}",
        settings.range,
        display_host(settings.host)
    );
    // A fallback port inside the range may be leased or excluded.
    if let Err(taken) = table.server_may_take(fallback) {
        return Err(Fatal(format!(
            "{none_bound}, and the fallback port {fallback} may not be used: {taken}"
        )));
    }
    log::warn!("Using fallback port: {fallback}");
    app::bind(settings.host, fallback)
        .map(|listener| (listener, fallback))
        .map_err(|e| {
            Fatal(format!(
                "{none_bound}, nor the fallback port {fallback}: {e}"
            ))
        })
}

fn display_host(host: IpAddr) -> String {
    match host {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Who a TCP caller is: a peer at one of this host's own addresses is a
/// local caller, and the user it is is the owner of its socket when the
/// kernel's socket table vouches for it (a full socket that a descriptor
/// still holds, open or half-closed by the client); otherwise it is
/// unidentified, never uid 0 and never remote. A peer elsewhere is remote.
///
/// The socket the table names is this connection's peer only while this
/// connection stands: an address pair belongs to one connection at a
/// time, but a client that resets its connection before it is accepted
/// frees its pair, and another user's socket may take it before the
/// lookup. So the server's own end is checked after the lookup: open, or
/// closed by the client (CLOSE-WAIT), it proves the pair was still this
/// connection's when it was looked up; reset, it proves nothing.
fn identify_tcp(stream: &TcpStream, peer: SocketAddr) -> (bool, Option<u32>) {
    if !crate::sys::is_own_address(peer.ip()) {
        return (false, None);
    }
    let Ok(local) = stream.local_addr() else {
        return (true, None);
    };
    let uid = crate::sys::netlink::tcp_socket_uid(peer, local, Vouching::Held)
        .inspect_err(|e| log::debug!("cannot look up the owner of {peer}: {e}"))
        .ok()
        .flatten();
    let standing = matches!(
        crate::sys::tcp_state(stream),
        Ok(crate::sys::TCP_ESTABLISHED | crate::sys::TCP_CLOSE_WAIT)
    );
    (true, uid.filter(|_| standing))
}

/// The engine serves the app: the app moves it to a new port and reads
/// its counters through this.
impl app::Serving for crate::http::Control {
    fn replace_listener(&self, listener: TcpListener) -> std::io::Result<()> {
        crate::http::Control::replace_listener(self, listener)
    }

    fn stats(&self) -> crate::http::Stats {
        crate::http::Control::stats(self)
    }
}
