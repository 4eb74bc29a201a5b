//! One client connection and the state it carries between turns: what part
//! of a request has arrived, what part of an answer is still unsent, and when
//! the engine gives up waiting for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::later::Later;
use super::share::Holder;
use super::shared::Shared;
use super::stream::Stream;
use super::tunnel::Tunnel;
use super::write::Framing;
use super::{ListenerKind, Peer};

/// How long a connection that was answered early may keep sending before it
/// is closed, and how much of that input is read and thrown away.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
pub(crate) const LINGER_BYTES: usize = 64 * 1024;
/// How long a tunnel waits for its backend to take the connection.
pub(crate) const CONNECT_TIME: Duration = Duration::from_secs(5);
/// A tunnel has no deadline of its own: an open WebSocket or a long poll
/// lasts as long as both sides keep it. This stands for never.
pub(crate) const NO_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a connection waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for (the rest of) a request.
    Reading,
    /// Part of an answer could not be written yet; `then` says what follows.
    Writing { then: After },
    /// Answered early and shut for writing: discarding input until the client
    /// closes, so that closing does not reset the answer away.
    Lingering { discarded: usize },
    /// Its handler answers later; `framing` is for that answer, and
    /// `pending_out` holds earlier answers not yet written.
    Awaiting { later: Later, framing: Framing },
    /// Its requests go to a backend through [`Conn::tunnel`].
    Tunneling,
    /// Its answer goes on with what is pushed to [`Conn::feed`].
    Feeding,
}

/// What happens once an answer is fully written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    KeepAlive,
    Close,
    Linger,
    /// The connection became a tunnel: its turns go on there.
    Tunnel,
    /// The answer goes on with a feed.
    Feed,
}

/// A connection. Exactly one place holds it at a time: the poller's registry
/// while it waits, a worker while it is served.
pub(crate) struct Conn {
    pub stream: Stream,
    /// Its slot in the registry and its key in the poller.
    pub key: usize,
    pub phase: Phase,
    /// Received bytes of a request not yet complete.
    pub pending_in: Vec<u8>,
    /// Encoded answer bytes, written up to `out_sent`; see [`Conn::unsent`].
    pending_out: Vec<u8>,
    /// How much of `pending_out` the socket has taken. A cursor rather than
    /// shifting the rest to the front after each partial write, which cost
    /// a large answer (a lease list of 1 MiB) a copy per write.
    out_sent: usize,
    /// When the first byte of the current, incomplete request arrived.
    pub request_started: Option<Instant>,
    /// Whether `100 Continue` went out for the current request.
    pub continue_sent: bool,
    /// Whether `pending_in` holds requests held back because earlier
    /// answers were not read yet; they are answered before reading more.
    pub backlog: bool,
    /// When the engine stops waiting for whatever `phase` waits for.
    pub deadline: Instant,
    /// Who is at the other end, found as it was accepted.
    pub peer: Peer,
    /// Whose share of the connections it counts in.
    holder: Holder,
    /// The TCP listener it came in on; `None` on the Unix socket.
    pub listener: Option<ListenerKind>,
    /// What its answer goes on with, once a handler answered with a feed.
    pub feed: Option<super::Feed>,
    /// Whether the handler answered a request of it: it is bound to the
    /// handler, and a request the router claims is refused (421).
    pub served: bool,
    /// The backend it is paired with, once a request was routed.
    pub tunnel: Option<Box<Tunnel>>,
    pub shared: Arc<Shared>,
}

impl Conn {
    /// A freshly accepted connection, idle until its first byte, counted
    /// in the share of `holder` (already taken).
    pub fn new(
        stream: Stream,
        peer: Peer,
        listener: Option<ListenerKind>,
        holder: Holder,
        key: usize,
        shared: Arc<Shared>,
        now: Instant,
    ) -> Conn {
        let deadline = now + shared.config.idle_timeout;
        Conn {
            stream,
            key,
            phase: Phase::Reading,
            pending_in: Vec::new(),
            pending_out: Vec::new(),
            out_sent: 0,
            request_started: None,
            continue_sent: false,
            backlog: false,
            deadline,
            peer,
            holder,
            listener,
            served: false,
            tunnel: None,
            feed: None,
            shared,
        }
    }

    /// Idle: between requests with nothing received. Such a connection may be
    /// closed silently on timeout, at shutdown, or to make room for a new one.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Reading && self.request_started.is_none()
    }

    /// May be closed when the engine shuts down, with no answer cut short:
    /// idle, or a tunnel owing no answer and holding nothing unsent (an
    /// open WebSocket between messages, a kept-alive routed connection).
    pub fn is_quiet(&self) -> bool {
        self.is_idle()
            || self.tunnel.as_ref().is_some_and(|t| t.is_quiet())
            || (self.phase == Phase::Feeding && self.unsent().is_empty())
    }

    /// The encoded answer bytes the socket has not taken yet.
    pub fn unsent(&self) -> &[u8] {
        &self.pending_out[self.out_sent..]
    }

    /// Keeps `out[written..]` for when the socket takes more. With nothing
    /// else waiting, `out` itself is kept (and left empty), so an answer is
    /// not copied again however large it is.
    pub fn keep_unsent(&mut self, out: &mut Vec<u8>, written: usize) {
        if written >= out.len() {
            return;
        }
        if self.unsent().is_empty() {
            self.pending_out = std::mem::take(out);
            self.out_sent = written;
        } else {
            self.pending_out.extend_from_slice(&out[written..]);
        }
    }

    /// Writes what is unsent with `write`, which returns how much the
    /// socket took, and records it.
    pub fn write_unsent(
        &mut self,
        write: impl FnOnce(&mut Stream, &[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let written = write(&mut self.stream, &self.pending_out[self.out_sent..])?;
        self.mark_sent(written);
        Ok(written)
    }

    /// Records that the socket took `n` more bytes; once all are written
    /// the buffer is freed, so a parked connection holds no answer's room.
    fn mark_sent(&mut self, n: usize) {
        self.out_sent += n;
        if self.out_sent >= self.pending_out.len() {
            self.pending_out = Vec::new();
            self.out_sent = 0;
        }
    }

    /// Moves what is unsent to the end of `out`.
    pub fn take_unsent(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.unsent());
        self.mark_sent(self.pending_out.len() - self.out_sent);
    }

    /// Sets the deadline for waiting in the reading phase: the request timeout
    /// from the first byte of a request, the idle timeout between requests.
    pub fn set_read_deadline(&mut self, now: Instant) {
        let config = &self.shared.config;
        self.deadline = match self.request_started {
            Some(started) => started + config.request_timeout,
            None => now + config.idle_timeout,
        };
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(feed) = &self.feed {
            feed.detach();
        }
        // Closing the stream (after this) removes it from epoll; the key is
        // free once no event for it can come any more.
        self.shared.registry().release(self.key);
        self.shared.shares.give_back(self.holder);
        self.shared
            .stats
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
        // A shutting-down poller waits for the last connection to go; tell it
        // now rather than at its next tick.
        if self.shared.shutting_down.load(Ordering::Relaxed) {
            let _ = self.shared.poller.notify();
        }
    }
}
