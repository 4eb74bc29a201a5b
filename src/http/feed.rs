//! Answers that go on: a head now, then bytes whenever the server has
//! them (server-sent events). The connection waits in the poller like an
//! idle one, costing no thread and no wake-up while nothing comes; a
//! [`Feed::push`] from any thread hands it to a worker, which writes what
//! was pushed. A client that closes is noticed at once (its socket turns
//! readable), and one that reads too slowly is closed rather than buffered
//! for without end.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use std::time::Duration;

use super::shared::Shared;

/// The most bytes pushed and not yet written that a feed holds; past it
/// the client is too far behind and the feed ends (an event stream's
/// client resumes from its last event id).
pub const MAX_BACKLOG: usize = 256 * 1024;

/// The writing end of an answer that goes on. Cloneable; the engine keeps
/// one, whoever feeds it another.
#[derive(Clone)]
pub struct Feed(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Bytes pushed and not yet taken by a worker.
    pending: Vec<u8>,
    /// No more bytes will come: the connection closes once they are out.
    closed: bool,
    /// The connection is gone, or the client fell too far behind.
    gone: bool,
    /// The connection to wake when bytes come: the engine and its key.
    waker: Option<(Weak<Shared>, usize)>,
    /// What is written when nothing else was for this long (an event
    /// stream's comment, which keeps proxies from closing it).
    keepalive: Option<(Duration, &'static [u8])>,
}

impl Feed {
    /// A feed, for a handler to return with the head of its answer as
    /// [`super::Reply::Feed`].
    pub fn new() -> Feed {
        Feed(Arc::new(Mutex::new(State::default())))
    }

    /// A feed that writes `bytes` whenever nothing else was written for
    /// `every`.
    pub fn with_keepalive(every: Duration, bytes: &'static [u8]) -> Feed {
        let feed = Feed::new();
        feed.lock().keepalive = Some((every, bytes));
        feed
    }

    /// Its keep-alive interval and bytes, if it has one.
    pub(crate) fn keepalive(&self) -> Option<(Duration, &'static [u8])> {
        self.lock().keepalive
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `bytes` for the client. False when the feed has ended (the
    /// client went away or fell [`MAX_BACKLOG`] behind): drop it.
    pub fn push(&self, bytes: &[u8]) -> bool {
        let waker = {
            let mut state = self.lock();
            if state.gone || state.closed {
                return false;
            }
            if state.pending.len() + bytes.len() > MAX_BACKLOG {
                log::debug!("a feed's client fell too far behind; ending it");
                state.gone = true;
                state.pending = Vec::new();
            } else {
                state.pending.extend_from_slice(bytes);
            }
            state.waker.clone()
        };
        wake(waker);
        !self.lock().gone
    }

    /// Ends the feed once what was pushed is written.
    pub fn close(&self) {
        let waker = {
            let mut state = self.lock();
            state.closed = true;
            state.waker.clone()
        };
        wake(waker);
    }

    /// Whether bytes pushed still reach a client.
    pub fn is_open(&self) -> bool {
        let state = self.lock();
        !state.gone && !state.closed
    }

    /// The connection with `key` of `shared` is this feed's from now on.
    pub(crate) fn attach(&self, shared: &Arc<Shared>, key: usize) {
        self.lock().waker = Some((Arc::downgrade(shared), key));
    }

    /// The connection is gone: pushes fail from now on.
    pub(crate) fn detach(&self) {
        let mut state = self.lock();
        state.gone = true;
        state.waker = None;
        state.pending = Vec::new();
    }

    /// Moves what was pushed to the end of `out`; whether the feed is
    /// over (closed, or gone) once that is written.
    pub(crate) fn take(&self, out: &mut Vec<u8>) -> bool {
        let mut state = self.lock();
        if out.is_empty() {
            std::mem::swap(out, &mut state.pending);
        } else {
            out.append(&mut state.pending);
            state.pending = Vec::new();
        }
        state.gone || state.closed
    }
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Feed")
    }
}

impl PartialEq for Feed {
    fn eq(&self, other: &Feed) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Feed {}

/// Hands the connection `waker` names to a worker, if it waits.
fn wake(waker: Option<(Weak<Shared>, usize)>) {
    let Some((shared, key)) = waker else {
        return;
    };
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let waiting = shared.registry().take_ready(key);
    if let Some(conn) = waiting {
        shared.resume(conn);
    }
}
