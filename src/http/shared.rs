//! What the poller thread, the workers and every connection share: the
//! configuration, the readiness poller, the registry of waiting connections
//! and the counters behind [`Stats`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::conn::Conn;
use super::registry::{Parked, Registry};
use super::share::Shares;
use super::write;
use super::{EngineConfig, Stats};
use crate::sys::epoll::{Epoll, Interest};

/// What the poller thread, the workers and every connection share.
pub(crate) struct Shared {
    pub config: EngineConfig,
    pub poller: Epoll,
    registry: Mutex<Registry>,
    /// Each principal's share of the open connections.
    pub shares: Shares,
    pub stats: Counters,
    /// Set at shutdown: answers close their connection.
    pub shutting_down: AtomicBool,
    /// The poller thread runs, so commands get answered.
    pub started: AtomicBool,
    listener_addr: Mutex<Option<SocketAddr>>,
    /// Connections whose later answer has come, for the poller to hand to
    /// a worker.
    resumed: Mutex<Vec<Conn>>,
    /// What routes requests to backends, when anything does.
    pub router: OnceLock<Arc<dyn super::Router>>,
}

/// Live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub requests_total: AtomicU64,
    pub by_class: [AtomicU64; 5],
    pub open_connections: AtomicUsize,
}

impl Counters {
    /// Counts one response written with `status`; interim 1xx answers are
    /// not requests of their own.
    pub fn count(&self, status: u16) {
        if status >= 200 {
            self.requests_total.fetch_add(1, Ordering::Relaxed);
        }
        self.by_class[write::class_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            requests_total: self.requests_total.load(Ordering::Relaxed),
            by_class: std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed)),
            open_connections: self.open_connections.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    pub fn new(config: EngineConfig) -> io::Result<Shared> {
        Ok(Shared {
            shares: Shares::new(
                config.max_connections_per_peer,
                config.unshared_uids.clone(),
            ),
            config,
            poller: Epoll::new()?,
            registry: Mutex::new(Registry::default()),
            stats: Counters::default(),
            shutting_down: AtomicBool::new(false),
            started: AtomicBool::new(false),
            listener_addr: Mutex::new(None),
            resumed: Mutex::new(Vec::new()),
            router: OnceLock::new(),
        })
    }

    /// An error the engine answers itself, worded as the configuration
    /// says.
    pub fn error_response(&self, status: u16, message: &str) -> super::Response {
        (self.config.error_response)(status, message)
    }

    pub fn listener_addr(&self) -> Option<SocketAddr> {
        *self.listener_addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_listener_addr(&self, addr: Option<SocketAddr>) {
        *self.listener_addr.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }

    /// The registry, even if a thread panicked while holding it: its slots
    /// stay consistent because no method panics half-way.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a connection until its socket is ready for its phase. Returns it
    /// when it must be served again at once.
    pub fn park(&self, mut conn: Conn, writable: bool) -> Option<Conn> {
        // Re-arm before parking: see the registry's module documentation.
        let armed = match conn.tunnel.as_deref_mut() {
            Some(tunnel) => self.arm_tunnel(conn.key, &conn.stream, tunnel),
            None => {
                let interest = if writable {
                    Interest::Write
                } else {
                    Interest::Read
                };
                self.poller.rearm(&conn.stream, conn.key, interest)
            }
        };
        if let Err(e) = armed {
            log::warn!("cannot wait on a connection, closing it: {e}");
            return None;
        }
        let outcome = self.registry().park(conn);
        match outcome {
            Parked::Waiting { sooner } => {
                if sooner {
                    // The poller sleeps past this deadline: it must look again.
                    let _ = self.poller.notify();
                }
                None
            }
            Parked::Ready(mut conn) => {
                // An event came while it was served: for which side is
                // not known.
                if let Some(tunnel) = conn.tunnel.as_deref_mut() {
                    tunnel.fired_either();
                }
                Some(conn)
            }
            Parked::Refused(conn) => {
                drop(conn);
                None
            }
        }
    }

    /// Makes sure both sockets of a tunnel report every change
    /// (edge-triggered, registered once): a tunnel waits on no one-shot
    /// interest, so a turn costs no re-arming.
    fn arm_tunnel(
        &self,
        key: usize,
        client: &super::stream::Stream,
        tunnel: &mut super::tunnel::Tunnel,
    ) -> io::Result<()> {
        if tunnel.take_client_unregistered() {
            self.poller.rearm(client, key, Interest::Edges)?;
        }
        if tunnel.take_unregistered() {
            let backend_key = key | super::tunnel::BACKEND_KEY;
            self.poller
                .add(&tunnel.backend, backend_key, Interest::Edges)?;
        }
        Ok(())
    }

    /// Hands a connection whose later answer has come back to the poller,
    /// which gives it to a worker.
    pub fn resume(&self, conn: Conn) {
        self.resumed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        let _ = self.poller.notify();
    }

    /// Takes the connections to serve again.
    pub fn take_resumed(&self, out: &mut Vec<Conn>) {
        out.append(&mut self.resumed.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Parks a connection just added to the poller. Only the poller thread
    /// handles events, so none can be pending; a connection returned could
    /// not be parked and is to be dropped.
    pub fn park_registered(&self, conn: Conn) -> Option<Conn> {
        let outcome = self.registry().park(conn);
        match outcome {
            // Only the poller parks this way, and it plans its wake-up after.
            Parked::Waiting { .. } => None,
            Parked::Ready(conn) | Parked::Refused(conn) => Some(conn),
        }
    }
}
