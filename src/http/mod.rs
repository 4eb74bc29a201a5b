//! dynport's HTTP/1.1 engine: a fixed set of threads over non-blocking
//! sockets, with every limit answered and never a crash. The rest of dynport
//! sees only [`Request`], [`Response`], [`Engine`] and [`Control`].
//!
//! One poller thread (`engine.rs`) accepts and waits on every connection not
//! being served; `workers` threads (`worker.rs`) take ready connections over a
//! channel, answer what has arrived and park them again (`registry.rs`).
//! Framing is in `parse.rs`, answer encoding in `write.rs`, per-connection
//! state in `conn.rs`. `fuzzing.rs` drives a worker's framing without a
//! socket for the fuzz targets in `fuzz/`; it is not part of the interface.
//! The portserver's thread (`crate::portserver`) waits on the same `epoll.rs`.

mod conn;
mod engine;
mod feed;
mod framing;
/// Only for the fuzz targets (cargo fuzz builds with `--cfg fuzzing`) and
/// its own tests: no release build carries it.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
mod later;
mod parse;
mod registry;
mod retire;
mod share;
mod shared;
mod stream;
mod tunnel;
mod worker;
mod write;
pub(crate) use write::push_number;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

pub use feed::{Feed, MAX_BACKLOG as MAX_FEED_BACKLOG};
pub use later::{Completion, Later, later};
pub use retire::gentle_retire_supported;

use engine::{Command, PollLoop};
use shared::Shared;
use worker::Worker;

/// How long [`Control::replace_listener`] waits for the poller to confirm.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// One parsed request, as the router sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The method as sent, e.g. `GET`. A `HEAD` arrives as `GET`: the engine
    /// answers it with the headers of the `GET` and no body.
    pub method: String,
    /// The path without the query, e.g. `/api/v1/tools/port/state`.
    pub path: String,
    /// The raw query after `?`, when there is one.
    pub query: Option<String>,
    /// Header names lower-cased, values as sent (valid UTF-8 only).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who sent it, as far as the kernel tells.
    pub peer: Peer,
}

/// The other end of a connection, found once when the connection opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    pub addr: PeerAddr,
    /// The local user owning the client's socket: from `SO_PEERCRED` on the
    /// Unix socket, from the kernel's socket table for TCP from loopback.
    /// `None` for a peer on another host, or when the kernel would not say.
    pub uid: Option<u32>,
    /// The client's process, known on the Unix socket only.
    pub pid: Option<u32>,
    /// Whether the peer is on this host: the Unix socket, or TCP from one
    /// of the host's own addresses. A local peer whose `uid` the kernel
    /// would not vouch for is *unidentified*, never a remote caller.
    pub local: bool,
}

/// Who the TCP peer at `peer` of the connection `stream` is: whether it is
/// on this host, and the local user it is, when that can be told for
/// sure. A peer of this host without a uid is unidentified.
pub type Identify = fn(stream: &std::net::TcpStream, peer: SocketAddr) -> (bool, Option<u32>);

/// Where a connection comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// Not known: a request built in memory.
    #[default]
    Unknown,
    Ip(IpAddr),
    /// The server's Unix socket.
    Unix,
}

impl Peer {
    /// A peer on the Unix socket, before its credentials are read.
    pub fn unix() -> Peer {
        Peer {
            addr: PeerAddr::Unix,
            local: true,
            ..Peer::default()
        }
    }
}

impl Request {
    /// A request built in memory, for tests of the router.
    pub fn fake(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        Request {
            method: method.to_string(),
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            peer: Peer::default(),
        }
    }

    /// The same request, as sent by `peer`.
    pub fn from_peer(mut self, peer: Peer) -> Request {
        self.peer = peer;
        self
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, extra headers, body. The engine adds `Content-Length`,
/// `Connection` and `Date`-free framing itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Extra headers besides `Content-Type` and framing, e.g. `Allow`.
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What a handler gives: an answer now, or one that comes later through
/// the [`Completion`] paired with the [`Later`], the worker free meanwhile.
#[derive(Debug)]
pub enum Reply {
    Now(Response),
    Later(Later),
    /// An answer that goes on: `head` (its body the first bytes) now, then
    /// whatever is pushed to `feed`, until it is closed or the client
    /// goes. The connection closes after it.
    Feed {
        head: Response,
        feed: Feed,
    },
}

impl Reply {
    /// The answer itself: waits for one that comes later. For callers
    /// outside the engine, such as tests of the router.
    pub fn resolve(self) -> Response {
        match self {
            Reply::Now(response) => response,
            Reply::Later(later) => later.wait(),
            Reply::Feed { head, .. } => head,
        }
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Now(response)
    }
}

impl Response {
    /// A JSON response with a body already serialised.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body,
        }
    }

    /// An error answer in plain text: what the engine says of its own
    /// errors unless [`EngineConfig::error_response`] words them.
    pub fn plain_error(status: u16, message: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the engine calls for every complete request. A panic inside becomes a 500.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Which TCP listener a connection came in on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListenerKind {
    /// The main listener: the handler's requests, and routes.
    #[default]
    Main,
    /// A listener that only routes ([`Engine::serve_routes`]): every
    /// request there goes to the router.
    Routes,
}

/// Where a request goes, as the [`Router`] decides from its head alone.
#[derive(Debug)]
pub enum Route {
    /// To the handler, as any request that is not routed.
    Serve,
    /// Through a tunnel to a backend on this host.
    Forward(Forward),
    /// This answer (say, a page listing the routes), then the connection
    /// closes.
    Answer(Response),
}

/// A backend on this host for a route.
#[derive(Debug)]
pub struct Forward {
    /// The route's name: a connection stays with one route, and a later
    /// request for another is refused (421).
    pub name: String,
    /// The backend's port, on `127.0.0.1`, else on `[::1]` when nothing
    /// listens on IPv4.
    pub port: u16,
    /// What the client is told when nothing listens on either.
    pub unreachable: Response,
    /// The name this proxy gives itself in `Via`.
    pub via: &'static str,
}

/// Decides which requests on TCP are routed rather than served, and where
/// they go. The engine asks [`Router::claims`] of every request head on
/// its main listener, and [`Router::route`] of the claimed ones and of
/// every request on a routes listener.
pub trait Router: Send + Sync {
    /// Whether a request whose `Host` is `host` (as sent; `None` without
    /// one) goes to the router rather than the handler. Cheap: called for
    /// every request on the main listener.
    fn claims(&self, host: Option<&[u8]>) -> bool;
    /// Where a request goes, from its head (the body is not read yet).
    fn route(&self, head: &Request, listener: ListenerKind) -> Route;
}

/// The engine's limits and sizes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    pub max_connections: usize,
    /// Open connections one principal may hold: a local user, remote
    /// peers together, unidentified callers of this host together. The
    /// engine alone does not share (it is `max_connections`); the server
    /// sets it from `--max-connections-per-uid`.
    pub max_connections_per_peer: usize,
    /// Local users with no share, limited by `max_connections` alone: the
    /// host's operators.
    pub unshared_uids: Vec<u32>,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Who a TCP peer is, asked once per connection as it is accepted;
    /// `None`: every TCP peer is a remote one.
    pub identify_tcp: Option<Identify>,
    /// How the engine words the errors it answers itself (a limit, a
    /// timeout, the connection cap, a handler's panic, a lost answer):
    /// the status and what to tell.
    pub error_response: fn(u16, &str) -> Response,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            workers: 4,
            max_connections: 1024,
            max_connections_per_peer: 1024,
            unshared_uids: Vec::new(),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            identify_tcp: None,
            error_response: Response::plain_error,
        }
    }
}

/// Counters the engine keeps for every response it writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests_total: u64,
    /// Responses by status class: index 0 is 1xx … index 4 is 5xx.
    pub by_class: [u64; 5],
    pub open_connections: usize,
}

/// An engine that is built but not yet serving.
pub struct Engine {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    inbox: Receiver<Command>,
    unix: Option<UnixListener>,
    routes: Option<TcpListener>,
}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    commands: Sender<Command>,
}

/// The threads of a serving engine.
pub struct Running {
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Checks the configuration and sets up the readiness poller; no thread
    /// starts before [`Engine::run`].
    pub fn new(config: EngineConfig) -> io::Result<Engine> {
        validate(&config)?;
        let (commands, inbox) = crossbeam_channel::unbounded();
        Ok(Engine {
            shared: Arc::new(Shared::new(config)?),
            commands,
            inbox,
            unix: None,
            routes: None,
        })
    }

    /// Sends requests that `router` claims to their routes, on the main
    /// listener and on a routes listener.
    pub fn route_with(&mut self, router: Arc<dyn Router>) {
        // Set once, before the engine runs.
        let _ = self.shared.router.set(router);
    }

    /// Serves a listener that only routes: every request on it goes to the
    /// router, none to the handler.
    pub fn serve_routes(&mut self, listener: TcpListener) {
        self.routes = Some(listener);
    }

    /// Serves the same handler on a Unix socket too, with the same limits
    /// and threads; each peer is identified by `SO_PEERCRED`.
    pub fn serve_unix(&mut self, listener: UnixListener) {
        self.unix = Some(listener);
    }

    pub fn control(&self) -> Control {
        Control {
            shared: Arc::clone(&self.shared),
            commands: self.commands.clone(),
        }
    }

    /// Starts the poller thread and the workers, serving `listener`.
    pub fn run(self, listener: TcpListener, handler: Handler) -> io::Result<Running> {
        listener.set_nonblocking(true)?;
        self.shared.set_listener_addr(listener.local_addr().ok());
        let (work, ready) = crossbeam_channel::unbounded();
        // Set up before any thread starts, so a listener epoll refuses fails
        // the call rather than a thread.
        let poll_loop = PollLoop::new(
            Arc::clone(&self.shared),
            listener,
            self.unix,
            self.routes,
            work,
            self.inbox,
        )?;
        let mut threads = Vec::with_capacity(self.shared.config.workers + 1);
        for i in 0..self.shared.config.workers {
            let worker = Worker::new(Arc::clone(&self.shared), Arc::clone(&handler));
            let ready = ready.clone();
            let spawned = thread::Builder::new()
                .name(format!("dynport-worker-{i}"))
                .spawn(move || worker.run(ready));
            // On failure, dropping `poll_loop` ends the workers already started.
            threads.push(spawned?);
        }
        let spawned = thread::Builder::new()
            .name("dynport-poller".to_string())
            .spawn(move || poll_loop.run());
        threads.push(spawned?);
        self.shared.started.store(true, Ordering::SeqCst);
        Ok(Running { threads })
    }
}

fn validate(config: &EngineConfig) -> io::Result<()> {
    let problem = if config.workers == 0 {
        "workers must be at least 1"
    } else if config.max_connections == 0 {
        "max_connections must be at least 1"
    } else if config.max_connections_per_peer == 0 {
        "max_connections_per_peer must be at least 1"
    } else if config.max_head_bytes < 64 {
        "max_head_bytes must be at least 64"
    } else {
        return Ok(());
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, problem))
}

impl Control {
    /// Serves new connections on `listener` from now on; the old listener is
    /// closed at once, connections already open go on. Once the engine runs,
    /// this returns after the old listener is closed.
    pub fn replace_listener(&self, listener: TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr().ok();
        let (done, result) = crossbeam_channel::bounded(1);
        self.send(Command::Replace(listener, done))?;
        if !self.shared.started.load(Ordering::SeqCst) {
            self.shared.set_listener_addr(addr);
            return Ok(());
        }
        match result.recv_timeout(REPLY_TIMEOUT) {
            Ok(Ok(())) => {
                self.shared.set_listener_addr(addr);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the engine did not take the new listener")),
        }
    }

    /// Stops accepting, closes idle connections, lets requests in flight finish
    /// for at most `grace`, then ends every thread. Returns at once; see
    /// [`Running::join`].
    pub fn shutdown(&self, grace: Duration) {
        // An engine already stopped has nothing left to shut down.
        let _ = self.send(Command::Shutdown(grace));
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// The address of the listener the engine accepts on.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.shared.listener_addr()
    }

    fn send(&self, command: Command) -> io::Result<()> {
        self.commands
            .send(command)
            .map_err(|_| io::Error::other("the engine has stopped"))?;
        self.shared.poller.notify()
    }
}

impl Running {
    /// Waits until every engine thread has ended (after [`Control::shutdown`]).
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("an HTTP engine thread panicked");
            }
        }
    }
}
