//! One client connection and the state it carries between turns: what part
//! of a request has arrived, what part of an answer is still unsent, and when
//! the engine gives up waiting for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Peer;
use super::later::Later;
use super::shared::Shared;
use super::stream::Stream;
use super::write::Framing;

/// How long a connection that was answered early may keep sending before it
/// is closed, and how much of that input is read and thrown away.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
pub(crate) const LINGER_BYTES: usize = 64 * 1024;

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
}

/// What happens once an answer is fully written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    KeepAlive,
    Close,
    Linger,
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
    /// Encoded answer bytes not yet written.
    pub pending_out: Vec<u8>,
    /// When the first byte of the current, incomplete request arrived.
    pub request_started: Option<Instant>,
    /// Whether `100 Continue` went out for the current request.
    pub continue_sent: bool,
    /// When the engine stops waiting for whatever `phase` waits for.
    pub deadline: Instant,
    /// Who is at the other end; see [`Conn::identify`].
    pub peer: Peer,
    /// Whether `peer` has been looked up.
    identified: bool,
    pub shared: Arc<Shared>,
}

impl Conn {
    /// A freshly accepted connection, idle until its first byte.
    pub fn new(stream: Stream, peer: Peer, key: usize, shared: Arc<Shared>, now: Instant) -> Conn {
        let deadline = now + shared.config.idle_timeout;
        Conn {
            stream,
            key,
            phase: Phase::Reading,
            pending_in: Vec::new(),
            pending_out: Vec::new(),
            request_started: None,
            continue_sent: false,
            deadline,
            peer,
            identified: false,
            shared,
        }
    }

    /// Finds who is at the other end, once per connection, by a worker
    /// (so the poller never waits on the kernel's socket table): the
    /// `SO_PEERCRED` of the Unix socket, or the owner of the client's
    /// socket for TCP from this host.
    pub fn identify(&mut self) {
        if std::mem::replace(&mut self.identified, true) {
            return;
        }
        match &self.stream {
            Stream::Unix(s) => match crate::sys::peer_cred(s) {
                Ok((pid, uid)) => (self.peer.pid, self.peer.uid) = (Some(pid), Some(uid)),
                Err(e) => log::debug!("no credentials for a Unix socket peer: {e}"),
            },
            Stream::Tcp(s) if self.shared.config.identify_peers => {
                self.peer.uid = super::stream::tcp_owner(s);
            }
            Stream::Tcp(_) => {}
        }
    }

    /// Idle: between requests with nothing received. Such a connection may be
    /// closed silently on timeout, at shutdown, or to make room for a new one.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Reading && self.request_started.is_none()
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
        // Closing the stream (after this) removes it from epoll; the key is
        // free once no event for it can come any more.
        self.shared.registry().release(self.key);
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
