//! Answers that come later. A handler that must wait, for the disk say,
//! returns [`Response::later`] and frees its worker at once; the connection
//! then waits, holding no thread, until the answer is given through the
//! [`Completion`]. This is what lets many clients' changes share one write
//! of the state file while the workers go on serving.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::Response;
use super::conn::Conn;

/// What a lost answer is told.
pub(crate) const LOST: &str = "the answer to this request was lost";

/// An answer to come, carried by a [`Response`].
#[derive(Clone)]
pub struct Later(Arc<Slot>);

/// The right to give the answer. Dropped without an answer, the answer is
/// lost: the engine answers 500 in its stead, so that no connection waits
/// forever.
pub struct Completion(Option<Arc<Slot>>);

#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    given: Condvar,
}

#[derive(Default)]
struct State {
    response: Option<Response>,
    /// The completion was dropped without an answer.
    lost: bool,
    /// The connection waiting for the answer, once its worker let it go.
    conn: Option<Conn>,
}

/// A new answer to come, and the way to give it.
pub fn later() -> (Later, Completion) {
    let slot = Arc::new(Slot::default());
    (Later(Arc::clone(&slot)), Completion(Some(slot)))
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the answer, or `None` when it is lost.
    fn give(&self, response: Option<Response>) {
        let waiting = {
            let mut state = self.lock();
            state.lost = response.is_none();
            state.response = response;
            state.conn.take()
        };
        self.given.notify_all();
        if let Some(conn) = waiting {
            let shared = Arc::clone(&conn.shared);
            shared.resume(conn);
        }
    }
}

impl Completion {
    /// Gives the answer; the connection waiting for it is served again.
    pub fn complete(mut self, response: Response) {
        if let Some(slot) = self.0.take() {
            slot.give(Some(response));
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.give(None);
        }
    }
}

impl Later {
    /// Blocks until the answer is given: for callers outside the engine,
    /// such as tests of the router. A lost answer is a plain 500.
    pub fn wait(&self) -> Response {
        let mut state = self.0.lock();
        loop {
            if let Some(response) = state.response.take() {
                return response;
            }
            if state.lost {
                return Response::plain_error(500, LOST);
            }
            state = self.0.given.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Leaves `conn` to wait for the answer; gives it back when the answer
    /// is already there, or lost.
    pub(crate) fn park(&self, conn: Conn) -> Option<Conn> {
        let mut state = self.0.lock();
        if state.response.is_some() || state.lost {
            return Some(conn);
        }
        state.conn = Some(conn);
        None
    }

    /// The answer, once given.
    pub(crate) fn take(&self) -> Option<Response> {
        self.0.lock().response.take()
    }
}

impl fmt::Debug for Later {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Later")
    }
}

impl PartialEq for Later {
    fn eq(&self, other: &Later) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Later {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_given_is_the_answer_waited_for() {
        let (later, completion) = later();
        let waiter = std::thread::spawn(move || later.wait().status);
        completion.complete(Response::json(201, b"{}".to_vec()));
        assert_eq!(waiter.join().unwrap(), 201);
    }

    #[test]
    fn a_dropped_completion_answers_500() {
        let (later, completion) = later();
        drop(completion);
        assert_eq!(later.wait().status, 500);
    }
}
