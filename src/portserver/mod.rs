//! Google's portserver protocol, which Python's `portpicker` speaks when
//! `PORTSERVER_ADDRESS` is set: a client connects to a Unix socket, sends
//! its pid in decimal and `\n`, and reads back a port in decimal and `\n`,
//! or nothing when none can be had. Each port is a lease like any other,
//! granted by [`crate::app::App::grant`], tied to that pid.
//!
//! One small thread serves it: it accepts, reads each client's line
//! without ever blocking on one, and cuts off a client silent for
//! [`DEADLINE`]. Each uid has at most [`MAX_WAITING_PER_UID`] clients
//! waiting, so no user can crowd out another. The answer is written by the grant's callback once the
//! lease is durable, from whichever thread made it so.

mod listen;
mod request;
mod serve;

pub use listen::{Listening, bind, prepare};
pub use request::{MAX_LINE, TTL};

use crate::app::App;
use crate::sys::epoll::Epoll;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a client may take to send its line.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Clients of one uid (`SO_PEERCRED`) waiting for their line at once; its
/// further ones are closed at once.
pub const MAX_WAITING_PER_UID: usize = 64;

/// The running portserver thread; [`Running::stop`] ends it.
pub struct Running {
    stop: Arc<AtomicBool>,
    epoll: Arc<Epoll>,
    thread: JoinHandle<()>,
}

/// Starts serving on `listening`, handing out ports of `pool`, with at
/// most `max_waiting` clients waiting for their line, all uids together.
pub fn spawn(
    listening: Listening,
    app: Arc<App>,
    pool: String,
    max_waiting: usize,
) -> io::Result<Running> {
    let epoll = Arc::new(Epoll::new()?);
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve::Portserver::new(listening, Arc::clone(&epoll), app, pool, max_waiting)?;
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("portserver".to_string())
        .spawn(move || server.run(&stopping))?;
    Ok(Running {
        stop,
        epoll,
        thread,
    })
}

impl Running {
    /// Stops accepting, closes the clients still waiting for their line and
    /// removes the socket file. Clients whose lease is being stored still
    /// get their answer.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.epoll.notify() {
            log::warn!("cannot wake the portserver thread: {e}");
        }
        if self.thread.join().is_err() {
            log::error!("the portserver thread panicked");
        }
    }
}
