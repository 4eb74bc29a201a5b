//! The refresh thread: rescans the range every `--refresh-secs`, brings
//! the state file up to the journal about a second after it falls behind
//! (and at once after a scan that changed something), and stops at once
//! when asked, not after its sleep; it also ends each lease when its time is
//! up, waking for it then, and polls the lease processes no pidfd watches
//! once a second while there are any. Lease changes are the commit thread's
//! ([`crate::app::Committer`]): neither a scan nor a snapshot delays them.

use crate::app::App;
use crossbeam_channel::{Sender, at, bounded, never, select, tick};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a failed snapshot waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The running refresh thread, and the thread that wakes it when a
/// lease's process exits.
pub struct Refresh {
    stop: Sender<()>,
    thread: JoinHandle<()>,
    exits: Option<ExitWatch>,
}

/// A thread asleep in `epoll_wait` on the lease processes' pidfds (through
/// their epoll's own descriptor, so that it takes none of their events):
/// when one exits it wakes the refresh thread, which ends its leases at
/// once rather than at its next tick, then waits until they are collected
/// before it looks again.
struct ExitWatch {
    epoll: Arc<crate::sys::epoll::Epoll>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<()>,
}

impl Refresh {
    /// Starts a thread that calls [`App::refresh`] every `every` and
    /// [`App::snapshot`] when [`App::snapshot_due`] says.
    pub fn spawn(app: Arc<App>, every: Duration) -> std::io::Result<Refresh> {
        let (stop, stopped) = bounded::<()>(1);
        let ticks = tick(every);
        let behind = app.watch_snapshots();
        let (exited, exit_seen) = bounded::<()>(1);
        let (collected, wait_again) = bounded::<()>(1);
        let exits = ExitWatch::spawn(&app, exited, wait_again)
            .inspect_err(|e| log::debug!("lease process exits wait for the next refresh: {e}"))
            .ok()
            .flatten();
        let thread = thread::Builder::new()
            .name("refresh".to_string())
            .spawn(move || {
                let mut retry_at: Option<Instant> = None;
                let mut poll_at: Option<Instant> = None;
                loop {
                    let due = app.snapshot_due().map(|d| retry_at.map_or(d, |r| d.max(r)));
                    let timer = due.map_or_else(never, at);
                    let lease_end = app.next_lease_end().map_or_else(never, at);
                    poll_at = next_poll(&app, poll_at);
                    let poll = poll_at.map_or_else(never, at);
                    select! {
                        recv(stopped) -> _ => return,
                        recv(behind) -> _ => {}
                        recv(timer) -> _ => retry_at = snapshot(&app),
                        recv(lease_end) -> _ => app.end_leases_due(),
                        recv(exit_seen) -> _ => {
                            app.end_leases_due();
                            let _ = collected.try_send(());
                        }
                        recv(poll) -> _ => {
                            app.poll_lease_processes();
                            poll_at = None;
                        }
                        recv(ticks) -> _ => match app.refresh() {
                            Ok(true) => retry_at = snapshot(&app),
                            Ok(false) => {}
                            Err(e) => log::warn!("port scan failed: {e}"),
                        },
                    }
                }
            })?;
        Ok(Refresh {
            stop,
            thread,
            exits,
        })
    }

    /// Ends the threads and waits for them.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        if let Some(exits) = self.exits {
            exits.stop();
        }
    }
}

impl ExitWatch {
    /// Starts the thread, when the lease processes are watched by pidfds;
    /// it sends on `exited` when one exits, and looks again once it hears
    /// on `collected`.
    fn spawn(
        app: &App,
        exited: Sender<()>,
        collected: crossbeam_channel::Receiver<()>,
    ) -> std::io::Result<Option<ExitWatch>> {
        use crate::sys::epoll::{Epoll, Events, Interest};
        use std::sync::atomic::{AtomicBool, Ordering};
        let Some(pidfds) = app.lease_exits_ready() else {
            return Ok(None);
        };
        let epoll = Arc::new(Epoll::new()?);
        epoll.add(&pidfds, 0, Interest::Read)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (watching, stop) = (Arc::clone(&epoll), Arc::clone(&stopping));
        let thread = thread::Builder::new()
            .name("lease-exits".to_string())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut events = Events::with_capacity(1);
                loop {
                    if watching.wait(&mut events, None).is_err() {
                        thread::sleep(RETRY);
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if events.keys().next().is_none() {
                        continue;
                    }
                    if exited.send(()).is_err() || collected.recv().is_err() {
                        return;
                    }
                    // One-shot: ready again at once if exits are left.
                    if watching.rearm(&pidfds, 0, Interest::Read).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Some(ExitWatch {
            epoll,
            stopping,
            thread,
        }))
    }

    fn stop(self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.epoll.notify();
        let _ = self.thread.join();
    }
}

/// When to poll the lease processes no pidfd watches next: `planned`, or
/// a poll interval from now when none is planned; never while none is
/// polled, so an idle server sleeps.
fn next_poll(app: &App, planned: Option<Instant>) -> Option<Instant> {
    if !app.polls_lease_processes() {
        return None;
    }
    Some(planned.unwrap_or_else(|| Instant::now() + crate::app::POLL_EVERY))
}

/// Writes a snapshot; on failure (already logged) says when to try again.
fn snapshot(app: &App) -> Option<Instant> {
    app.snapshot().err().map(|_| Instant::now() + RETRY)
}
