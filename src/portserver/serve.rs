//! The portserver's thread: one epoll over the non-blocking listener and
//! the clients still sending their line, each cut off at its deadline, so
//! that no client can hold up another. Each uid may have
//! [`MAX_WAITING_PER_UID`] clients waiting; when all of them together reach
//! the total cap, the uid with the most gives up its oldest, so one user's
//! flood of silent clients never refuses another user's request.

use super::listen::Listening;
use super::request::{self, MAX_LINE, Refused};
use super::{DEADLINE, MAX_WAITING_PER_UID};
use crate::api::error::ApiError;
use crate::app::{App, AppError};
use crate::ports::lease::Lease;
use crate::sys::epoll::{Epoll, Events, Interest};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The listener's key; clients count up from 1.
const LISTENER: usize = 0;
/// Connections taken per wake-up before the clients get a turn.
const ACCEPT_BATCH: usize = 64;
/// How long accepting rests after an error such as running out of
/// descriptors, rather than spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often the log says that a uid's further clients are being closed.
const CROWD_LOG_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Portserver {
    listening: Listening,
    epoll: Arc<Epoll>,
    app: Arc<App>,
    pool: String,
    /// Clients waiting at most, all uids together (the descriptors they
    /// hold: [`crate::server::fd_budget::FdBudget::portserver_waiting`]).
    max_waiting: usize,
    waiting: HashMap<usize, Client>,
    /// How many of `waiting` each uid has.
    by_uid: HashMap<u32, usize>,
    /// When the log last said that a uid had too many clients waiting.
    crowd_logged: HashMap<u32, Instant>,
    /// When each waiting client is cut off, soonest first.
    deadlines: BTreeSet<(Instant, usize)>,
    next_key: usize,
    accept_paused_until: Option<Instant>,
}

/// A client that has not sent its whole line yet.
struct Client {
    stream: UnixStream,
    /// The uid that connected, from `SO_PEERCRED`.
    peer: u32,
    line: Vec<u8>,
    deadline: Instant,
}

impl Portserver {
    pub(super) fn new(
        listening: Listening,
        epoll: Arc<Epoll>,
        app: Arc<App>,
        pool: String,
        max_waiting: usize,
    ) -> io::Result<Portserver> {
        epoll.add(&listening.listener, LISTENER, Interest::Read)?;
        Ok(Portserver {
            listening,
            epoll,
            app,
            pool,
            max_waiting,
            waiting: HashMap::new(),
            by_uid: HashMap::new(),
            crowd_logged: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_key: LISTENER + 1,
            accept_paused_until: None,
        })
    }

    /// Serves until `stop` is set (and the epoll notified). Dropping `self`
    /// then closes the waiting clients and removes the socket file.
    pub(super) fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(64);
        let mut ready = Vec::with_capacity(64);
        while !stop.load(Ordering::SeqCst) {
            let waited = self.epoll.wait(&mut events, self.timeout(Instant::now()));
            if let Err(e) = waited
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("portserver: waiting for clients failed, it stops: {e}");
                return;
            }
            ready.clear();
            ready.extend(events.keys());
            for &key in &ready {
                match key {
                    LISTENER => self.accept_some(),
                    _ => self.readable(key),
                }
            }
            let now = Instant::now();
            self.cut_overdue(now);
            self.resume_accepting(now);
        }
    }

    /// Until the soonest deadline or the end of a pause; idle, forever.
    /// How long to wait for an event: until the next deadline, or for
    /// ever when nothing is due.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let soonest = self.deadlines.first().map(|&(at, _)| at);
        [soonest, self.accept_paused_until]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            match self.listening.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    log::warn!("portserver: accepting a connection failed, pausing: {e}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        self.rearm_listener();
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            self.rearm_listener();
        }
    }

    fn rearm_listener(&self) {
        let listener = &self.listening.listener;
        if let Err(e) = self.epoll.rearm(listener, LISTENER, Interest::Read) {
            log::error!("portserver: cannot wait for connections any more: {e}");
        }
    }

    /// Takes a new client and reads what it sent: usually its whole line
    /// is there by now. One still to come waits, if its uid has room.
    fn admit(&mut self, stream: UnixStream) {
        let peer = match crate::sys::peer_cred(&stream) {
            Ok((_, uid)) => uid,
            Err(e) => return refuse(&self.app, &Refused::NoPeer(e.to_string()), None),
        };
        if let Err(e) = stream.set_nonblocking(true) {
            return log::warn!("portserver: cannot wait for a client: {e}");
        }
        let mut client = Client {
            stream,
            peer,
            line: Vec::with_capacity(16),
            deadline: Instant::now() + DEADLINE,
        };
        // Most clients have sent their line by now: they are answered
        // without ever being watched.
        match client.read_line() {
            Ok(Some(pid)) => return self.grant(client, pid),
            Ok(None) => {}
            Err(refused) => return refuse(&self.app, &refused, Some(peer)),
        }
        if let Err(refused) = self.make_room(peer) {
            return refuse(&self.app, &refused, Some(peer));
        }
        let key = self.next_key;
        self.next_key += 1;
        if let Err(e) = self.epoll.add(&client.stream, key, Interest::Read) {
            return log::warn!("portserver: cannot wait for a client: {e}");
        }
        self.deadlines.insert((client.deadline, key));
        *self.by_uid.entry(peer).or_default() += 1;
        self.waiting.insert(key, client);
    }

    /// Room for one more waiting client of `peer`: refused when `peer` has
    /// [`MAX_WAITING_PER_UID`] waiting already, or when the total cap is
    /// reached and no uid has more waiting than `peer`; otherwise the uid
    /// with the most waiting gives up its oldest.
    fn make_room(&mut self, peer: u32) -> Result<(), Refused> {
        let total = self.waiting.len();
        let top = match room_for(peer, &self.by_uid, total, self.max_waiting) {
            Ok(None) => return Ok(()),
            Ok(Some(top)) => top,
            Err(refused) => {
                if matches!(refused, Refused::Crowded(_)) {
                    self.log_crowded(peer);
                }
                return Err(refused);
            }
        };
        // The soonest deadline is the oldest client's.
        let mut keys = self.deadlines.iter().map(|&(_, key)| key);
        let oldest = keys.find(|key| self.waiting.get(key).is_some_and(|c| c.peer == top));
        if let Some(client) = oldest.and_then(|key| self.leave(key)) {
            refuse(&self.app, &Refused::Busy, Some(client.peer));
        }
        Ok(())
    }

    /// Warns that `uid`'s further clients are closed, at most once every
    /// [`CROWD_LOG_EVERY`] per uid.
    fn log_crowded(&mut self, uid: u32) {
        let now = Instant::now();
        self.crowd_logged
            .retain(|_, at| now.duration_since(*at) < CROWD_LOG_EVERY);
        if self.crowd_logged.contains_key(&uid) {
            return;
        }
        self.crowd_logged.insert(uid, now);
        log::warn!(
            "portserver: uid {uid} has {MAX_WAITING_PER_UID} clients waiting for their line \
             already; its further ones are closed at once (said at most once a minute)"
        );
    }

    /// Reads what client `key` sent; a whole line goes to be granted.
    fn readable(&mut self, key: usize) {
        let Some(client) = self.waiting.get_mut(&key) else {
            return;
        };
        let outcome = client.read_line();
        let more = matches!(outcome, Ok(None));
        if more && (self.epoll.rearm(&client.stream, key, Interest::Read)).is_ok() {
            return;
        }
        let Some(client) = self.leave(key) else {
            return;
        };
        match outcome {
            Ok(Some(pid)) => self.grant(client, pid),
            Ok(None) => log::warn!("portserver: cannot wait for a client any more"),
            Err(refused) => refuse(&self.app, &refused, Some(client.peer)),
        }
    }

    /// Starts the lease of `pid`; its callback answers once it is durable.
    fn grant(&self, client: Client, pid: u32) {
        let req = match request::lease_request(client.peer, pid, &self.pool) {
            Ok(req) => req,
            Err(refused) => return refuse(&self.app, &refused, Some(client.peer)),
        };
        let stream = client.stream;
        let metrics = Arc::clone(&self.app.metrics);
        let answered = Box::new(move |outcome: Result<Lease, AppError>| {
            if let Err(e) = &outcome {
                metrics.deny(e.denial());
            }
            answer(&stream, pid, outcome)
        });
        (self.app).grant(&req, answered);
    }

    fn cut_overdue(&mut self, now: Instant) {
        while let Some(&(deadline, key)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(client) = self.leave(key) {
                refuse(&self.app, &Refused::Silent, Some(client.peer));
            }
        }
    }

    /// Client `key`, no longer waited for.
    fn leave(&mut self, key: usize) -> Option<Client> {
        let client = self.waiting.remove(&key)?;
        self.deadlines.remove(&(client.deadline, key));
        if let Some(count) = self.by_uid.get_mut(&client.peer) {
            *count -= 1;
            if *count == 0 {
                self.by_uid.remove(&client.peer);
            }
        }
        // The stream may live on in a grant's callback: stop watching it.
        let _ = self.epoll.delete(&client.stream);
        Some(client)
    }
}

impl Client {
    /// Reads what is there: `Some(pid)` once the line is whole.
    fn read_line(&mut self) -> Result<Option<u32>, Refused> {
        let mut buf = [0u8; MAX_LINE + 1];
        loop {
            // `parse_line` refuses a line past MAX_LINE, so there is room.
            let room = MAX_LINE + 1 - self.line.len();
            match (&self.stream).read(&mut buf[..room]) {
                Ok(0) => return Err(Refused::Unfinished),
                Ok(n) => {
                    self.line.extend_from_slice(&buf[..n]);
                    if let Some(pid) = request::parse_line(&self.line)? {
                        return Ok(Some(pid));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Refused::Unfinished),
            }
        }
    }
}

/// Whether one more client of `peer` may wait, when `by_uid` counts the
/// `waiting` clients of each uid and `max_waiting` is the total cap:
/// `Ok(None)` when there is room, `Ok(Some(uid))` when the oldest client of
/// `uid` (the uid with the most, which has more than `peer`) must make
/// room, otherwise why not.
fn room_for(
    peer: u32,
    by_uid: &HashMap<u32, usize>,
    waiting: usize,
    max_waiting: usize,
) -> Result<Option<u32>, Refused> {
    let own = by_uid.get(&peer).copied().unwrap_or(0);
    if own >= MAX_WAITING_PER_UID {
        return Err(Refused::Crowded(peer));
    }
    if waiting < max_waiting {
        return Ok(None);
    }
    let most = by_uid.iter().max_by_key(|&(&uid, &n)| (n, uid));
    match most {
        Some((&top, &n)) if n > own => Ok(Some(top)),
        _ => Err(Refused::Busy),
    }
}

/// Counts and logs a request that gets no answer; the caller drops (and so
/// closes) its connection.
fn refuse(app: &App, refused: &Refused, peer: Option<u32>) {
    app.metrics.deny(refused.denial());
    match peer {
        Some(uid) => log::debug!("portserver: refused uid {uid}: {refused}"),
        None => log::debug!("portserver: refused a connection: {refused}"),
    }
}

/// Writes the port of a durable lease and closes; a refusal closes with
/// nothing, which portpicker reads as "no port". The few bytes fit in the
/// fresh socket's buffer, so the non-blocking write does not fall short.
fn answer(stream: &UnixStream, pid: u32, outcome: Result<Lease, AppError>) {
    let lease = match outcome {
        Ok(lease) => lease,
        Err(e) => {
            let why = ApiError::from(e).message();
            return log::debug!("portserver: no port for pid {pid}: {}", why.escape_debug());
        }
    };
    let Some(port) = lease.ports.first() else {
        return;
    };
    if let Err(e) = { stream }.write_all(format!("{port}\n").as_bytes()) {
        log::debug!(
            "portserver: pid {pid} did not take port {port} ({e}); its lease ends with the process"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_past_its_share_is_refused_whatever_the_room() {
        let by_uid = HashMap::from([(1000, MAX_WAITING_PER_UID), (1001, 3)]);
        let total = MAX_WAITING_PER_UID + 3;
        assert_eq!(
            room_for(1000, &by_uid, total, 1024),
            Err(Refused::Crowded(1000))
        );
        assert_eq!(room_for(1001, &by_uid, total, 1024), Ok(None));
        assert_eq!(room_for(1002, &by_uid, total, 1024), Ok(None));
    }

    #[test]
    fn when_all_wait_the_uid_with_the_most_makes_room_for_another() {
        let by_uid = HashMap::from([(1000, 40), (1001, 30), (1002, 30)]);
        assert_eq!(room_for(1003, &by_uid, 100, 100), Ok(Some(1000)));
        assert_eq!(room_for(1001, &by_uid, 100, 100), Ok(Some(1000)));
        assert_eq!(room_for(1000, &by_uid, 100, 100), Err(Refused::Busy));
        let even = HashMap::from([(1000, 50), (1001, 50)]);
        assert_eq!(room_for(1001, &even, 100, 100), Err(Refused::Busy));
        assert_eq!(room_for(1002, &even, 100, 100), Ok(Some(1001)));
    }
}
