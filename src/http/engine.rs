//! The poller thread: accepts on the listener, waits on every connection that
//! is not being served, hands ready ones to the workers, enforces deadlines and
//! the connection cap, and carries out listener swaps and shutdown.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::ListenerKind;
use super::conn::{Conn, Phase};
use super::share::Holder;
use super::shared::Shared;
use super::stream::Stream;
use super::tunnel::{self, Turn};
use super::write::{self, Framing};
use crate::sys::epoll::{Events, Interest};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The poller key of the listener, beyond any connection's slot.
const LISTENER: usize = usize::MAX - 1;
/// The poller key of a listener being replaced.
const RETIRING: usize = usize::MAX - 2;
/// The poller key of the Unix socket listener.
const UNIX: usize = usize::MAX - 3;
/// The poller key of the listener that only routes.
const ROUTES: usize = usize::MAX - 4;
/// How long a replaced listener goes on serving the handshakes that were
/// under way when it stopped taking new ones: many round trips on any host.
const RETIRE_AFTER: Duration = Duration::from_millis(100);
/// Events taken per wake-up.
const EVENTS_PER_WAIT: usize = 256;
/// Turns a tunnel is given at once on the poller thread before a worker
/// takes it, so that one busy tunnel cannot keep the poller to itself.
const INLINE_TURNS: usize = 4;
/// Connections accepted per wake-up before other events get their turn.
const ACCEPT_BATCH: usize = 64;
/// How long accepting pauses after an error such as running out of file
/// descriptors, which would otherwise report readiness in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Orders for the poller thread from [`super::Control`].
pub(crate) enum Command {
    /// Accept on this listener from now on; the answer goes back once the
    /// old one is closed.
    Replace(TcpListener, Sender<io::Result<()>>),
    Shutdown(Duration),
}

/// The poller thread's own state.
pub(crate) struct PollLoop {
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
    /// The Unix socket, served beside the TCP listener.
    unix: Option<UnixListener>,
    /// The listener that only routes, when there is one.
    routes: Option<TcpListener>,
    /// A replaced listener that takes no new handshakes, until it closes.
    retiring: Option<(TcpListener, Instant)>,
    work: Sender<Conn>,
    commands: Receiver<Command>,
    events: Events,
    /// Connections taken from the registry, handed on once it is unlocked.
    batch: Vec<Conn>,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Freed to accept and refuse a connection when no descriptor is left.
    spare: Option<std::fs::File>,
    /// Room for a tunnel's turn on this thread: one read, and a request
    /// head rewritten.
    scratch: Vec<u8>,
    out: Vec<u8>,
}

impl PollLoop {
    pub fn new(
        shared: Arc<Shared>,
        listener: TcpListener,
        unix: Option<UnixListener>,
        routes: Option<TcpListener>,
        work: Sender<Conn>,
        commands: Receiver<Command>,
    ) -> io::Result<PollLoop> {
        let mut poll_loop = PollLoop {
            shared,
            listener: None,
            unix: None,
            routes: None,
            retiring: None,
            work,
            commands,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            batch: Vec::new(),
            accept_paused_until: None,
            shutdown_deadline: None,
            spare: spare_descriptor(),
            scratch: Vec::new(),
            out: Vec::new(),
        };
        poll_loop.set_listener(listener)?;
        if let Some(unix) = unix {
            unix.set_nonblocking(true)?;
            deepen_backlog(&unix);
            poll_loop.shared.poller.add(&unix, UNIX, Interest::Read)?;
            poll_loop.unix = Some(unix);
        }
        if let Some(routes) = routes {
            routes.set_nonblocking(true)?;
            deepen_backlog(&routes);
            poll_loop
                .shared
                .poller
                .add(&routes, ROUTES, Interest::Read)?;
            poll_loop.routes = Some(routes);
        }
        Ok(poll_loop)
    }

    /// Runs until shutdown is complete.
    pub fn run(mut self) {
        while !self.finished() {
            self.wait();
            self.run_commands();
            self.shared.take_resumed(&mut self.batch);
            self.handle_events();
            self.sweep_if_due();
        }
        self.close_everything();
    }

    /// Sleeps until an event, or until the next deadline: with nothing open
    /// and nothing due, the poller does not wake at all.
    fn wait(&mut self) {
        let timeout = self
            .shared
            .registry()
            .wake_at()
            .map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = self.shared.poller.wait(&mut self.events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("waiting for connections failed: {e}");
            std::thread::sleep(ACCEPT_BACKOFF);
        }
    }

    /// The poller's own timers: the retiring listener's end, the end of an
    /// accept pause, the end of the shutdown grace.
    fn own_timers(&self) -> Option<Instant> {
        let timers = [
            self.retiring.as_ref().map(|(_, until)| *until),
            self.accept_paused_until,
            self.shutdown_deadline,
        ];
        timers.into_iter().flatten().min()
    }

    /// Makes sure the poller wakes by `at`.
    fn wake_by(&self, at: Instant) {
        self.shared.registry().wake_by(at);
    }

    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some_and(|deadline| {
            self.shared.stats.open_connections.load(Ordering::Relaxed) == 0
                || Instant::now() >= deadline
        })
    }

    fn run_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Replace(listener, done) => {
                    let result = self.replace_listener(listener);
                    let _ = done.send(result);
                }
                Command::Shutdown(grace) => self.start_shutdown(grace),
            }
        }
    }

    fn replace_listener(&mut self, listener: TcpListener) -> io::Result<()> {
        if self.shutdown_deadline.is_some() {
            return Err(io::Error::other("the engine is shutting down"));
        }
        self.close_retiring();
        if let Some(old) = self.listener.take() {
            // Clients already connected to the old listener, or half-way
            // through, are served; only new ones are turned away.
            if let Err(e) = super::retire::refuse_new_handshakes(&old) {
                log::debug!("cannot stop new handshakes on the old listener: {e}");
            }
            let _ = self.shared.poller.delete(&old);
            self.shared.poller.add(&old, RETIRING, Interest::Read)?;
            let until = Instant::now() + RETIRE_AFTER;
            self.retiring = Some((old, until));
            self.wake_by(until);
        }
        self.set_listener(listener)
    }

    /// Serves what the replaced listener still holds, then closes it.
    fn close_retiring(&mut self) {
        while !self.accept_some(RETIRING) {}
        if let Some((old, _)) = self.retiring.take() {
            let _ = self.shared.poller.delete(&old);
        }
    }

    fn set_listener(&mut self, listener: TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        deepen_backlog(&listener);
        self.shared
            .poller
            .add(&listener, LISTENER, Interest::Read)?;
        self.listener = Some(listener);
        self.accept_paused_until = None;
        Ok(())
    }

    fn drop_listener(&mut self) {
        if let Some(old) = self.listener.take() {
            // Explicitly, in case the caller kept a duplicate of the socket:
            // closing only removes it from epoll once every copy is closed.
            let _ = self.shared.poller.delete(&old);
        }
        if let Some(unix) = self.unix.take() {
            let _ = self.shared.poller.delete(&unix);
        }
        if let Some(routes) = self.routes.take() {
            let _ = self.shared.poller.delete(&routes);
        }
    }

    fn drop_retiring(&mut self) {
        if let Some((old, _)) = self.retiring.take() {
            let _ = self.shared.poller.delete(&old);
        }
    }

    fn start_shutdown(&mut self, grace: Duration) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::debug!("engine shutting down, grace {grace:?}");
        let deadline = Instant::now() + grace;
        self.shutdown_deadline = Some(deadline);
        self.wake_by(deadline);
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.drop_listener();
        self.drop_retiring();
        self.shared.registry().drain_idle(&mut self.batch);
        self.batch.clear();
    }

    fn close_everything(&mut self) {
        self.drop_listener();
        self.drop_retiring();
        self.shared.registry().close(&mut self.batch);
        self.batch.clear();
    }

    fn handle_events(&mut self) {
        let mut ready = [false; 4];
        {
            let mut registry = self.shared.registry();
            for (key, ended) in self.events.ready() {
                match key {
                    RETIRING => ready[0] = true,
                    LISTENER => ready[1] = true,
                    UNIX => ready[2] = true,
                    ROUTES => ready[3] = true,
                    // A tunnel's backend socket wakes its connection too.
                    _ => {
                        let backend = key & tunnel::BACKEND_KEY != 0;
                        if let Some(mut conn) = registry.take_ready(key & !tunnel::BACKEND_KEY) {
                            if let Some(tunnel) = conn.tunnel.as_deref_mut() {
                                tunnel.fired(backend, ended);
                            }
                            self.batch.push(conn);
                        }
                    }
                }
            }
        }
        self.dispatch_batch();
        for (key, ready) in [RETIRING, LISTENER, UNIX, ROUTES].into_iter().zip(ready) {
            if ready {
                self.accept_some(key);
            }
        }
    }

    fn dispatch_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        for conn in batch.drain(..) {
            let conn = match conn.phase {
                Phase::Tunneling => match self.serve_tunnel(conn) {
                    Some(conn) => conn,
                    None => continue,
                },
                _ => conn,
            };
            // Fails only when every worker is gone; the connection closes.
            let _ = self.work.send(conn);
        }
        self.batch = batch;
    }

    /// A tunnel's turn on this thread: bytes passed each way need no
    /// router and no handler, and handing them to a worker would cost two
    /// thread switches per request and per answer. Gives the connection
    /// back when a worker must take it (a request head to route, dynport's
    /// own answer, a deadline).
    fn serve_tunnel(&mut self, mut conn: Conn) -> Option<Conn> {
        let timeout = self.shared.config.request_timeout;
        let (scratch, out) = (&mut self.scratch, &mut self.out);
        let turn = catch_unwind(AssertUnwindSafe(|| {
            // More may be ready without an event to say so (bytes held
            // while an upgrade was awaited): a few turns at once, then a
            // worker's.
            for _ in 0..INLINE_TURNS {
                match tunnel::drive(&mut conn, scratch, out, None, timeout, Instant::now()) {
                    Turn::Again => {}
                    other => return other,
                }
            }
            Turn::Worker
        }));
        match turn {
            Ok(Turn::Wait) => self.shared.park(conn, false),
            Ok(Turn::Again) => Some(conn),
            Ok(Turn::Worker | Turn::Answer(_)) => Some(conn),
            Ok(Turn::Close) => None,
            Err(_) => {
                log::error!("a tunnel's turn panicked; its connection was closed");
                None
            }
        }
    }

    /// Accepts up to a batch of connections on the listener with `key`
    /// (the current, the retiring or the Unix one), then waits on it again.
    /// Returns whether it stopped for want of more (or for an error), not
    /// for the batch limit.
    fn accept_some(&mut self, key: usize) -> bool {
        let mut drained = false;
        for _ in 0..ACCEPT_BATCH {
            let Some(accepted) = self.accept_one(key) else {
                return true;
            };
            match accepted {
                Ok((stream, addr)) => self.admit(stream, addr, listener_kind(key)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if is_out_of_descriptors(&e) && self.refuse_with_spare(key) => {}
                Err(e) => {
                    log::warn!("accepting a connection failed, pausing: {e}");
                    let until = Instant::now() + ACCEPT_BACKOFF;
                    self.accept_paused_until = Some(until);
                    self.wake_by(until);
                    return true;
                }
            }
        }
        self.rearm(key);
        drained
    }

    /// One connection from the listener with `key`, with the address the
    /// accept gave (none on the Unix socket); `None` when there is no such
    /// listener.
    fn accept_one(&self, key: usize) -> Option<io::Result<(Stream, Option<SocketAddr>)>> {
        let tcp = match (key, &self.listener, &self.retiring) {
            (LISTENER, Some(listener), _) | (RETIRING, _, Some((listener, _))) => listener,
            (ROUTES, ..) => self.routes.as_ref()?,
            (UNIX, ..) => {
                let accepted = self.unix.as_ref()?.accept();
                return Some(accepted.map(|(stream, _)| (Stream::Unix(stream), None)));
            }
            _ => return None,
        };
        Some(
            tcp.accept()
                .map(|(stream, addr)| (Stream::Tcp(stream), Some(addr))),
        )
    }

    fn rearm_listeners(&mut self) {
        self.rearm(LISTENER);
        self.rearm(UNIX);
        self.rearm(ROUTES);
    }

    fn rearm(&mut self, key: usize) {
        let rearmed = match key {
            LISTENER => self.listener.as_ref().map(|l| self.poller_rearm(l, key)),
            UNIX => self.unix.as_ref().map(|l| self.poller_rearm(l, key)),
            ROUTES => self.routes.as_ref().map(|l| self.poller_rearm(l, key)),
            _ => self
                .retiring
                .as_ref()
                .map(|(l, _)| self.poller_rearm(l, key)),
        };
        if let Some(Err(e)) = rearmed {
            log::error!("cannot wait on the listener: {e}");
        }
    }

    fn poller_rearm(&self, listener: &impl AsFd, key: usize) -> io::Result<()> {
        self.shared.poller.rearm(listener, key, Interest::Read)
    }

    /// With the descriptor table full: frees the spare descriptor, accepts
    /// one connection with it, answers 503 and closes it, and takes the
    /// spare again, so that clients are told at once rather than left
    /// waiting. False when there is no spare to free (then accepting
    /// pauses).
    fn refuse_with_spare(&mut self, key: usize) -> bool {
        if self.spare.take().is_none() {
            return false;
        }
        if let Some(Ok((stream, _))) = self.accept_one(key) {
            log::warn!("out of file descriptors: refusing a connection with 503");
            refuse(stream, &self.shared, &Refused::Descriptors);
        }
        self.spare = spare_descriptor();
        self.spare.is_some()
    }

    /// Takes a new connection in: identifies its peer, refuses it when its
    /// principal's share is full, makes room by closing the oldest idle
    /// connection when the engine's cap is reached, or refuses it when none
    /// is idle.
    fn admit(&mut self, stream: Stream, addr: Option<SocketAddr>, listener: Option<ListenerKind>) {
        let shared = &self.shared;
        let peer = super::stream::identify(&stream, addr, shared.config.identify_tcp);
        let holder = Holder::of(&peer);
        if !shared.shares.take(holder) {
            return refuse(stream, shared, &Refused::Share(holder));
        }
        if shared.stats.open_connections.load(Ordering::Relaxed) >= shared.config.max_connections {
            let oldest = shared.registry().take_oldest_idle();
            match oldest {
                Some(old) => {
                    log::debug!("connection cap reached: closing the oldest idle connection");
                    drop(old);
                }
                None => {
                    shared.shares.give_back(holder);
                    return refuse(stream, shared, &Refused::Cap);
                }
            }
        }
        if let Err(e) = stream.set_up() {
            log::debug!("cannot set up an accepted connection: {e}");
            shared.shares.give_back(holder);
            return;
        }
        let key = shared.registry().reserve();
        shared
            .stats
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(
            stream,
            peer,
            listener,
            holder,
            key,
            Arc::clone(shared),
            Instant::now(),
        );
        if let Err(e) = shared.poller.add(&conn.stream, key, Interest::Read) {
            log::warn!("cannot wait on an accepted connection: {e}");
            return;
        }
        // Only this thread handles events, so none can slip in before parking.
        let _ = shared.park_registered(conn);
    }

    /// Acts on whatever deadline has passed, then plans the next wake-up.
    fn sweep_if_due(&mut self) {
        let now = Instant::now();
        if self.shared.registry().wake_at().is_none_or(|at| now < at) {
            return;
        }
        if self
            .retiring
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.close_retiring();
        }
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
            self.rearm_listeners();
        }
        let own = self.own_timers();
        self.shared
            .registry()
            .take_expired(now, &mut self.batch, own);
        // Idle ones just close; the rest may owe an answer (408), which a
        // worker writes.
        self.batch.retain(|conn| !conn.is_idle());
        self.dispatch_batch();
    }
}

/// Which listener the poller key `key` is, for a connection accepted on
/// it; `None` for the Unix socket.
fn listener_kind(key: usize) -> Option<ListenerKind> {
    match key {
        UNIX => None,
        ROUTES => Some(ListenerKind::Routes),
        _ => Some(ListenerKind::Main),
    }
}

/// Why a new connection is turned away.
enum Refused {
    /// The engine's cap is reached and no connection is idle.
    Cap,
    /// This principal's share is full.
    Share(Holder),
    /// The process has no descriptor left.
    Descriptors,
}

/// A descriptor kept open to be closed when the table is full, so that a
/// connection can still be accepted and told so.
fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null")
        .inspect_err(|e| log::warn!("cannot keep a spare descriptor: {e}"))
        .ok()
}

/// A listener's queue as deep as the host allows; a failure only leaves it
/// as it was.
fn deepen_backlog(listener: &impl AsFd) {
    if let Err(e) = crate::sys::deepen_backlog(listener) {
        log::debug!("cannot deepen a listener's queue: {e}");
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Answers 503 on a connection turned away and closes it at once. The
/// answer is written without waiting; input already there is read first so
/// that closing does not turn into a reset that destroys the answer.
fn refuse(mut stream: Stream, shared: &Shared, why: &Refused) {
    let message = match why {
        Refused::Cap => "too many open connections; try again later".to_string(),
        Refused::Share(holder) => format!(
            "too many open connections from {holder} (at most {} each, \
             --max-connections-per-uid); close some and try again",
            shared.shares.cap()
        ),
        Refused::Descriptors => "the server is out of file descriptors; try again later".into(),
    };
    log::debug!("refusing a connection with 503: {message}");
    let mut out = Vec::with_capacity(256);
    let resp = shared
        .error_response(503, &message)
        .with_header("Retry-After", "1");
    let framing = Framing {
        close: true,
        keep_alive_10: false,
        head_only: false,
    };
    let sent = write::encode(&mut out, &resp, framing);
    shared.stats.count(sent);
    let _ = stream.set_up();
    let _ = stream.write(&out);
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = stream.read(&mut sink);
}
