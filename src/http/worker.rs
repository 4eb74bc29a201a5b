//! A worker thread: serves connections that are ready, one turn at a time.
//! It reads what has arrived, answers every complete request in order, writes
//! what the socket takes, and parks the connection again. It never waits on a
//! socket, so a slow client costs a parked connection, not a worker.

use std::io::{self, Read};
use std::net::Shutdown;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::sys;

use super::conn::{After, CONNECT_TIME, Conn, LINGER_BYTES, LINGER_TIME, NO_DEADLINE, Phase};
use super::later::Later;
use super::parse::{self, Framed, Limits, Parsed, Reject};
use super::shared::Shared;
use super::stream::Stream;
use super::tunnel::{Tunnel, Turn};
use super::write::{self, CONTINUE, Framing, write_some};
use super::{Feed, Forward, Handler, ListenerKind, Peer, Reply, Response, Route, Router};

/// Turns a worker gives one connection before parking it again, so a client
/// that keeps the socket full cannot keep a worker to itself.
const MAX_TURNS: usize = 8;
/// An output buffer grown beyond this by a large answer is not kept.
const KEEP_OUT_CAPACITY: usize = 256 * 1024;
/// Answers waiting to be written past which no further pipelined request
/// of the connection is parsed until the client reads them: a client that
/// sends thousands of requests for a large answer and reads nothing holds
/// about one answer, not thousands.
const MAX_UNSENT: usize = 64 * 1024;

/// What a connection needs next.
enum Next {
    /// Serve it again now.
    Again,
    /// Wait in the poller until its socket is ready.
    Wait,
    /// Wait, holding no thread, for the answer its handler gives later.
    Later(Later),
    Close,
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    handler: Handler,
    limits: Limits,
    /// Room for one whole request (head and body at their limits), so a
    /// request that fits the limits always fits here; reserved, not zeroed.
    input: Vec<u8>,
    /// Encoded answers of the current turn; `fuzzing` reads them too.
    pub(super) out: Vec<u8>,
    /// An answer the handler gives later, and how to frame it.
    deferred: Option<(Later, Framing)>,
    /// The peer of the connection being served, given to its requests.
    peer: Peer,
    /// The listener of the connection being served (`None`: the Unix
    /// socket, where nothing is routed).
    listener: Option<ListenerKind>,
    /// Whether the handler answered a request of the connection being
    /// served: see [`Conn::served`].
    served: bool,
    /// A request the router sent to a backend, and its `Host`: the
    /// connection becomes a tunnel from that request on.
    diverted: Option<(Forward, Vec<u8>)>,
    /// A handler's answer that goes on: the connection feeds from it.
    feed: Option<Feed>,
    /// The engine's router, when it routes.
    router: Option<Arc<dyn Router>>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, handler: Handler) -> Worker {
        let limits = Limits {
            max_head: shared.config.max_head_bytes,
            max_body: shared.config.max_body_bytes,
        };
        let mut worker = Worker {
            input: Vec::new(),
            out: Vec::new(),
            deferred: None,
            peer: Peer::default(),
            listener: None,
            served: false,
            diverted: None,
            feed: None,
            router: shared.router.get().cloned(),
            shared,
            handler,
            limits,
        };
        worker.reset_buffers();
        worker
    }

    /// Serves connections until the poller thread is gone.
    pub fn run(mut self, ready: Receiver<Conn>) {
        while let Ok(conn) = ready.recv() {
            // Handler panics are caught closer in; this keeps the worker
            // alive should the engine itself panic on one connection.
            if catch_unwind(AssertUnwindSafe(|| self.serve(conn))).is_err() {
                log::error!("a worker panicked serving a connection; it was closed");
                self.reset_buffers();
            }
        }
    }

    /// (Re)allocates the buffers: a read turn lends the input buffer out, so
    /// a panic there would leave the worker without one.
    fn reset_buffers(&mut self) {
        // Capacity only: reads go into the spare room, so the pages no
        // request reached stay untouched.
        self.input = Vec::with_capacity(self.input_limit());
        self.out = Vec::with_capacity(4096);
        self.deferred = None;
    }

    /// The most one read turn holds: one whole request at the limits.
    fn input_limit(&self) -> usize {
        self.limits.max_head + self.limits.max_body
    }

    fn serve(&mut self, mut conn: Conn) {
        let mut turns = 0;
        loop {
            turns += 1;
            self.peer = conn.peer;
            self.listener = conn.listener;
            let next = match conn.phase {
                Phase::Reading => self.read_turn(&mut conn),
                Phase::Writing { then } => self.write_turn(&mut conn, then),
                Phase::Lingering { discarded } => linger_turn(&mut conn, discarded),
                Phase::Awaiting { .. } => self.resume_turn(&mut conn),
                Phase::Tunneling => self.tunnel_turn(&mut conn),
                Phase::Feeding => self.feed_turn(&mut conn),
            };
            match next {
                Next::Again if turns < MAX_TURNS => continue,
                // Requests held back are waiting: no event will announce them.
                Next::Again if conn.backlog => return self.shared.resume(conn),
                // A tunnel's sockets report changes only: bytes it may
                // still have to read get no event of their own.
                Next::Again if conn.tunnel.is_some() => return self.shared.resume(conn),
                Next::Later(later) => match later.park(conn) {
                    Some(answered) => conn = answered,
                    None => return,
                },
                Next::Again | Next::Wait => {
                    let writable = matches!(conn.phase, Phase::Writing { .. })
                        || (conn.phase == Phase::Feeding && !conn.unsent().is_empty());
                    match self.shared.park(conn, writable) {
                        Some(again) => conn = again,
                        None => return,
                    }
                }
                Next::Close => return,
            }
        }
    }

    /// Reads what has arrived and answers every complete request in it.
    fn read_turn(&mut self, conn: &mut Conn) -> Next {
        let now = Instant::now();
        if now >= conn.deadline {
            return self.expire(conn);
        }
        if std::mem::take(&mut conn.backlog) {
            // Requests already received and held back: answered before
            // anything more is read.
            let held = std::mem::take(&mut conn.pending_in);
            return self.answer(conn, &held, true, now);
        }
        let have = conn.pending_in.len();
        let limit = self.input_limit();
        if have >= limit {
            // Framing keeps an unfinished request smaller than the buffer;
            // should that ever fail, close rather than panic.
            log::error!("unfinished request fills the input buffer; closing");
            return Next::Close;
        }
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        input.extend_from_slice(&conn.pending_in);
        conn.pending_in.clear();
        let next = match sys::read_into_spare(&conn.stream, &mut input, limit) {
            Ok(0) => Next::Close,
            Ok(_) => self.answer(conn, &input, input.len() == limit, now),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.pending_in.extend_from_slice(&input[..have]);
                Next::Wait
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                conn.pending_in.extend_from_slice(&input[..have]);
                Next::Again
            }
            Err(_) => Next::Close,
        };
        self.input = input;
        next
    }

    /// Answers the complete requests at the front of `input`, keeps the rest.
    fn answer(&mut self, conn: &mut Conn, input: &[u8], full: bool, now: Instant) -> Next {
        self.out.clear();
        let after = self.answer_input(conn, input, now);
        match self.send_or_defer(conn, after, now) {
            // The read filled the buffer, so more is likely waiting; or
            // requests were held back, which no event will announce.
            Next::Wait if full || conn.backlog => Next::Again,
            other => other,
        }
    }

    /// Encodes answers to the complete requests at the front of `input`
    /// after what `self.out` holds, keeps the rest, and says how the
    /// connection goes on.
    fn answer_input(&mut self, conn: &mut Conn, input: &[u8], now: Instant) -> After {
        self.served = conn.served;
        let (pos, mut after) =
            self.answer_each(&mut conn.request_started, &mut conn.continue_sent, input);
        conn.served = self.served;
        let rest = &input[pos..];
        if after == After::Tunnel {
            return self.open_tunnel(conn, rest.to_vec());
        }
        if after == After::Feed {
            return self.open_feed(conn, now);
        }
        if after == After::KeepAlive && !rest.is_empty() {
            conn.pending_in.extend_from_slice(rest);
            conn.request_started.get_or_insert(now);
            conn.backlog = self.out.len() >= MAX_UNSENT;
        }
        if after == After::Close && !rest.is_empty() && self.deferred.is_none() {
            // Input beyond the last answer: close gently, as after an error.
            after = After::Linger;
        }
        conn.set_read_deadline(now);
        after
    }

    /// Writes `self.out`, unless a handler answers later: then what is
    /// ready is written and the connection waits for the rest.
    fn send_or_defer(&mut self, conn: &mut Conn, after: After, now: Instant) -> Next {
        let Some((later, framing)) = self.deferred.take() else {
            return self.send(conn, after, now);
        };
        let written = match write_some(&mut conn.stream, &self.out) {
            Ok(n) => n,
            Err(_) => return Next::Close,
        };
        self.keep_unsent(conn, written);
        conn.phase = Phase::Awaiting {
            later: later.clone(),
            framing,
        };
        Next::Later(later)
    }

    /// Writes an answer that came later, after any earlier answers still
    /// unwritten, then answers the requests that arrived behind it.
    fn resume_turn(&mut self, conn: &mut Conn) -> Next {
        let Phase::Awaiting { later, framing } = std::mem::replace(&mut conn.phase, Phase::Reading)
        else {
            return Next::Close;
        };
        let resp = later
            .take()
            .unwrap_or_else(|| self.shared.error_response(500, super::later::LOST));
        self.out.clear();
        conn.take_unsent(&mut self.out);
        let sent = write::encode(&mut self.out, &resp, framing);
        self.shared.stats.count(sent);
        let now = Instant::now();
        if framing.close {
            conn.pending_in.clear();
            return self.send(conn, After::Linger, now);
        }
        let behind = std::mem::take(&mut conn.pending_in);
        let after = self.answer_input(conn, &behind, now);
        match self.send_or_defer(conn, after, now) {
            // Requests may have arrived while the answer was awaited.
            Next::Wait if after == After::KeepAlive => Next::Again,
            other => other,
        }
    }

    /// Encodes an answer for each complete request in `input`, in order.
    /// Returns how many bytes were used and how the connection goes on.
    /// Takes the two fields of [`Conn`] it keeps up to date rather than the
    /// connection, so that `fuzzing` can drive it without a socket.
    pub(super) fn answer_each(
        &mut self,
        request_started: &mut Option<Instant>,
        continue_sent: &mut bool,
        input: &[u8],
    ) -> (usize, After) {
        // Taken out for the loop (which borrows the worker) and put back
        // after: no reference count moves per request.
        let router = self.router.take();
        let answered = self.answer_routed(request_started, continue_sent, input, router.as_ref());
        self.router = router;
        answered
    }

    /// [`Worker::answer_each`], with the engine's router.
    fn answer_routed(
        &mut self,
        request_started: &mut Option<Instant>,
        continue_sent: &mut bool,
        input: &[u8],
        router: Option<&Arc<dyn Router>>,
    ) -> (usize, After) {
        let mut pos = 0;
        let listener = self.listener;
        let claims = |host: Option<&[u8]>| match (router, listener) {
            (Some(_), Some(ListenerKind::Routes)) => true,
            (Some(router), Some(ListenerKind::Main)) => router.claims(host),
            _ => false,
        };
        while pos < input.len() && self.out.len() < MAX_UNSENT {
            let mut parsed = parse::parse_routed(&input[pos..], self.limits, &claims);
            if let (Parsed::Divert { head_len }, Some(router)) = (&parsed, router) {
                match self.route(&input[pos..pos + head_len], router.as_ref()) {
                    Some(after) => return (pos, after),
                    // Not routed after all: served as any other request.
                    None => parsed = parse::parse(&input[pos..], self.limits),
                }
            }
            match parsed {
                Parsed::Complete(framed) => {
                    pos += framed.len;
                    *request_started = None;
                    *continue_sent = false;
                    if !self.respond(framed) {
                        let after = if self.feed.is_some() {
                            After::Feed
                        } else {
                            After::Close
                        };
                        return (pos, after);
                    }
                    if self.deferred.is_some() {
                        // Later requests are answered after it, in order.
                        return (pos, After::KeepAlive);
                    }
                }
                Parsed::Partial { send_continue } => {
                    if send_continue && !*continue_sent {
                        self.out.extend_from_slice(CONTINUE);
                        self.shared.stats.count(100);
                        *continue_sent = true;
                    }
                    break;
                }
                Parsed::Invalid(reject) => {
                    self.refuse(reject);
                    return (pos, After::Linger);
                }
                // Claimed, but no router to route it: refused as misdirected.
                Parsed::Divert { .. } => {
                    self.refuse_misdirected();
                    return (pos, After::Linger);
                }
            }
        }
        (pos, After::KeepAlive)
    }

    /// Routes the request whose complete head is `head`: `None` when it goes
    /// to the handler after all, else how the connection goes on (a tunnel
    /// from this request on, or closing after the router's answer).
    fn route(&mut self, head: &[u8], router: &dyn Router) -> Option<After> {
        let Some(mut request) = parse::parse_head(head) else {
            self.refuse(parse::MALFORMED);
            return Some(After::Linger);
        };
        request.peer = self.peer;
        let listener = self.listener.unwrap_or_default();
        let route = catch_unwind(AssertUnwindSafe(|| router.route(&request, listener)))
            .unwrap_or_else(|_| {
                log::error!("the router panicked on a request");
                Route::Answer(
                    self.shared
                        .error_response(500, "internal error while routing the request"),
                )
            });
        match route {
            Route::Serve if listener == ListenerKind::Main => None,
            Route::Serve => {
                self.refuse_misdirected();
                Some(After::Linger)
            }
            Route::Answer(answer) => {
                let framing = Framing {
                    close: true,
                    keep_alive_10: false,
                    head_only: request.method == "HEAD",
                };
                let sent = write::encode(&mut self.out, &answer, framing);
                self.shared.stats.count(sent);
                Some(After::Linger)
            }
            // One connection, one route: one the handler answered on stays
            // with the handler.
            Route::Forward(_) if self.served || !self.out.is_empty() => {
                self.refuse_misdirected();
                Some(After::Linger)
            }
            Route::Forward(forward) => {
                let host = request
                    .header("host")
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec();
                self.diverted = Some((forward, host));
                Some(After::Tunnel)
            }
        }
    }

    fn refuse_misdirected(&mut self) {
        let resp = self.shared.error_response(421, super::tunnel::MISDIRECTED);
        self.encode_closing(&resp);
    }

    /// Calls the handler and encodes its answer; false when the connection
    /// closes after it.
    fn respond(&mut self, mut framed: Framed) -> bool {
        framed.request.peer = self.peer;
        self.served = true;
        let handler = &self.handler;
        let reply =
            catch_unwind(AssertUnwindSafe(|| handler(&framed.request))).unwrap_or_else(|_| {
                log::error!(
                    "request handler panicked on {} {}",
                    framed.request.method.escape_debug(),
                    framed.request.path.escape_debug()
                );
                self.shared
                    .error_response(500, "internal error while handling the request")
                    .into()
            });
        let keep_alive = framed.keep_alive && !self.shared.shutting_down.load(Ordering::Relaxed);
        let framing = Framing {
            close: !keep_alive,
            keep_alive_10: keep_alive && framed.http10,
            head_only: framed.head_only,
        };
        let resp = match reply {
            Reply::Now(resp) => resp,
            Reply::Later(later) => {
                self.deferred = Some((later, framing));
                return keep_alive;
            }
            Reply::Feed { head, feed } => {
                let sent = write::encode_open(&mut self.out, &head, framed.head_only);
                self.shared.stats.count(sent);
                if framed.head_only {
                    feed.close();
                } else {
                    self.feed = Some(feed);
                }
                return false;
            }
        };
        let sent = write::encode(&mut self.out, &resp, framing);
        self.shared.stats.count(sent);
        keep_alive
    }

    /// Encodes the engine's own answer to a refused request.
    fn refuse(&mut self, reject: Reject) {
        log::debug!("refusing request: {} {}", reject.status, reject.message);
        let resp = self.shared.error_response(reject.status, reject.message);
        self.encode_closing(&resp);
    }

    fn encode_closing(&mut self, resp: &Response) {
        let framing = Framing {
            close: true,
            keep_alive_10: false,
            head_only: false,
        };
        let sent = write::encode(&mut self.out, resp, framing);
        self.shared.stats.count(sent);
    }

    /// A deadline passed while waiting for input: 408 when a request had
    /// begun, a silent close for an idle connection.
    fn expire(&mut self, conn: &mut Conn) -> Next {
        if conn.request_started.is_none() {
            return Next::Close;
        }
        log::debug!(
            "request not complete within {:?}: 408",
            self.shared.config.request_timeout
        );
        self.out.clear();
        let resp = self
            .shared
            .error_response(408, "request not received in time");
        self.encode_closing(&resp);
        self.send(conn, After::Linger, Instant::now())
    }

    /// Makes the connection a tunnel to the route's backend, with `held`,
    /// the routed request and what followed it, to go first. A backend
    /// refused at once is answered with the route's page.
    fn open_tunnel(&mut self, conn: &mut Conn, held: Vec<u8>) -> After {
        let Some((forward, host)) = self.diverted.take() else {
            return After::Close;
        };
        let listener_port = match &conn.stream {
            Stream::Tcp(s) => s.local_addr().ok().map(|a| a.port()),
            Stream::Unix(_) => None,
        };
        let opened = Tunnel::open(
            forward,
            &host,
            held,
            &conn.peer,
            listener_port,
            conn.listener.unwrap_or_default(),
            self.shared.config.error_response,
        );
        match opened {
            Ok(tunnel) => {
                let connecting = tunnel.connecting();
                conn.tunnel = Some(Box::new(tunnel));
                conn.phase = Phase::Tunneling;
                conn.request_started = None;
                conn.pending_in = Vec::new();
                let now = Instant::now();
                conn.deadline = now
                    + if connecting {
                        CONNECT_TIME
                    } else {
                        NO_DEADLINE
                    };
                After::Tunnel
            }
            Err(answer) => {
                self.encode_closing(&answer);
                After::Linger
            }
        }
    }

    /// Makes the connection feed from the handler's feed: it waits like an
    /// idle one until bytes are pushed, or its keep-alive is due.
    fn open_feed(&mut self, conn: &mut Conn, now: Instant) -> After {
        let Some(feed) = self.feed.take() else {
            return After::Close;
        };
        feed.attach(&self.shared, conn.key);
        conn.deadline = keepalive_due(now, feed.keepalive());
        conn.feed = Some(feed);
        conn.phase = Phase::Feeding;
        conn.pending_in = Vec::new();
        conn.request_started = None;
        After::Feed
    }

    /// A turn of a feed: notices a client that went, writes what was
    /// pushed (or the keep-alive when it is due), and waits again.
    fn feed_turn(&mut self, conn: &mut Conn) -> Next {
        let now = Instant::now();
        let Some(feed) = conn.feed.clone() else {
            return Next::Close;
        };
        // The client has nothing more to say: what it sends is dropped,
        // and its end ends the feed.
        if discard_input(&mut conn.stream).is_err() {
            return Next::Close;
        }
        if !conn.unsent().is_empty() {
            match conn.write_unsent(write_some) {
                Ok(_) if !conn.unsent().is_empty() => return Next::Wait,
                Ok(_) => {}
                Err(_) => return Next::Close,
            }
        }
        self.out.clear();
        let over = feed.take(&mut self.out);
        let keepalive = feed.keepalive();
        if let Some((_, bytes)) = keepalive
            && self.out.is_empty()
            && !over
            && now >= conn.deadline
        {
            self.out.extend_from_slice(bytes);
        }
        if !self.out.is_empty() {
            let written = match write_some(&mut conn.stream, &self.out) {
                Ok(n) => n,
                Err(_) => return Next::Close,
            };
            self.keep_unsent(conn, written);
            conn.deadline = keepalive_due(now, keepalive);
        }
        if over && conn.unsent().is_empty() {
            return Next::Close;
        }
        Next::Wait
    }

    /// A turn of a tunnel: moves what each side has for the other.
    fn tunnel_turn(&mut self, conn: &mut Conn) -> Next {
        let now = Instant::now();
        let Some(router) = self.shared.router.get().cloned() else {
            return Next::Close;
        };
        self.out.clear();
        let mut scratch = std::mem::take(&mut self.input);
        let timeout = self.shared.config.request_timeout;
        let turn = super::tunnel::drive(
            conn,
            &mut scratch,
            &mut self.out,
            Some(router.as_ref()),
            timeout,
            now,
        );
        self.input = scratch;
        match turn {
            Turn::Wait => Next::Wait,
            Turn::Again => Next::Again,
            Turn::Answer(status) => {
                // dynport's answer (its last word, or the route's page when
                // the backend never took the connection): the backend is
                // done with.
                conn.tunnel = None;
                conn.phase = Phase::Reading;
                self.shared.stats.count(status);
                self.send(conn, After::Linger, now)
            }
            Turn::Close | Turn::Worker => Next::Close,
        }
    }

    /// Writes `self.out`; what the socket does not take waits in the
    /// connection for writability.
    fn send(&mut self, conn: &mut Conn, after: After, now: Instant) -> Next {
        let written = match write_some(&mut conn.stream, &self.out) {
            Ok(n) => n,
            Err(_) => return Next::Close,
        };
        let next = if written < self.out.len() {
            self.keep_unsent(conn, written);
            conn.phase = Phase::Writing { then: after };
            conn.deadline = now + self.shared.config.request_timeout;
            Next::Wait
        } else {
            finish(conn, after, now)
        };
        if self.out.capacity() > KEEP_OUT_CAPACITY {
            self.out = Vec::with_capacity(4096);
        }
        next
    }

    /// Leaves `self.out[written..]` in the connection, moving the buffer
    /// there rather than copying it when it can.
    fn keep_unsent(&mut self, conn: &mut Conn, written: usize) {
        conn.keep_unsent(&mut self.out, written);
        if self.out.capacity() == 0 {
            self.out = Vec::with_capacity(4096);
        }
    }

    /// Writes more of an answer that did not fit the socket before.
    fn write_turn(&mut self, conn: &mut Conn, then: After) -> Next {
        let now = Instant::now();
        if now >= conn.deadline {
            log::debug!("client did not read its answer in time: closing");
            return Next::Close;
        }
        let written = match conn.write_unsent(write_some) {
            Ok(n) => n,
            Err(_) => return Next::Close,
        };
        if !conn.unsent().is_empty() {
            if written > 0 {
                conn.deadline = now + self.shared.config.request_timeout;
            }
            return Next::Wait;
        }
        conn.phase = Phase::Reading;
        conn.set_read_deadline(now);
        match finish(conn, then, now) {
            // Requests may have arrived while the answer was stuck.
            Next::Wait if then == After::KeepAlive => Next::Again,
            other => other,
        }
    }
}

/// Continues after an answer is fully written.
fn finish(conn: &mut Conn, after: After, now: Instant) -> Next {
    match after {
        After::KeepAlive => Next::Wait,
        After::Tunnel => Next::Again,
        After::Feed => {
            // Its head may have waited for the client (the writing phase).
            conn.phase = Phase::Feeding;
            let every = conn.feed.as_ref().and_then(|f| f.keepalive());
            conn.deadline = keepalive_due(now, every);
            Next::Again
        }
        After::Close => Next::Close,
        After::Linger => {
            // The FIN goes out after the answer; the client reads the answer,
            // then closes, and the input in between is discarded.
            if conn.stream.shutdown(Shutdown::Write).is_err() {
                return Next::Close;
            }
            conn.phase = Phase::Lingering { discarded: 0 };
            conn.deadline = now + LINGER_TIME;
            Next::Again
        }
    }
}

/// Discards input after an early answer until the client closes, the time is
/// up or enough has been thrown away. Never inlined: its 8 KiB sink would
/// otherwise join the frame of `Worker::run`, whose stack probe touches
/// every page of it when the thread starts, 8 KiB more resident memory per
/// worker for a path few connections take.
#[inline(never)]
fn linger_turn(conn: &mut Conn, mut discarded: usize) -> Next {
    if Instant::now() >= conn.deadline {
        return Next::Close;
    }
    let mut sink = [0u8; 8192];
    loop {
        match conn.stream.read(&mut sink) {
            Ok(0) => return Next::Close,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
        if discarded >= LINGER_BYTES {
            return Next::Close;
        }
    }
    conn.phase = Phase::Lingering { discarded };
    Next::Wait
}

/// When a feed's keep-alive is next due: the next tick after `now` of a
/// clock shared by every feed (multiples of the interval since the first
/// feed), so that a feed never goes an interval without a write, and many
/// open feeds wake the server once per interval, not once each.
fn keepalive_due(now: Instant, keepalive: Option<(std::time::Duration, &[u8])>) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let Some((every, _)) = keepalive else {
        return now + NO_DEADLINE;
    };
    let base = *BASE.get_or_init(|| now);
    let every_ns = every.as_nanos().max(1);
    let since = now.saturating_duration_since(base).as_nanos();
    let ticks = since / every_ns + 1;
    base + std::time::Duration::from_nanos((ticks * every_ns).min(u64::MAX as u128) as u64)
}

/// Reads and drops what the client sent, at most 64 KiB a turn; an error
/// when it closed (or the read failed).
fn discard_input(stream: &mut Stream) -> io::Result<()> {
    let mut sink = [0u8; 1024];
    for _ in 0..64 {
        match stream.read(&mut sink) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
