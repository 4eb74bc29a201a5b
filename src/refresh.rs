//! The refresh thread: rescans the range every `--refresh-secs`, writes the
//! lease changes queued for the state file as they come, and stops at once
//! when asked, not after its sleep.

use crate::app::{App, Waiter};
use crate::gather::Gather;
use crossbeam_channel::{Receiver, Sender, bounded, select, tick};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The running refresh thread.
pub struct Refresh {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Refresh {
    /// Starts a thread that calls [`App::refresh`] every `every` and saves
    /// what arrives on `commits` (see [`App::open_commit_queue`]). It shares
    /// the scan's thread because both are short and rare next to waiting.
    pub fn spawn(
        app: Arc<App>,
        every: Duration,
        commits: Receiver<Waiter>,
    ) -> std::io::Result<Refresh> {
        let (stop, stopped) = bounded::<()>(1);
        let ticks = tick(every);
        let thread = thread::Builder::new()
            .name("refresh".to_string())
            .spawn(move || {
                let mut gather = Gather::new(Instant::now());
                loop {
                    select! {
                        recv(stopped) -> _ => {
                            if let Ok(first) = commits.try_recv() {
                                let mut at_once = Gather::new(Instant::now());
                                app.commit_queued(first, &commits, &mut at_once);
                            }
                            return;
                        }
                        recv(commits) -> waiter => match waiter {
                            Ok(first) => app.commit_queued(first, &commits, &mut gather),
                            Err(_) => return,
                        },
                        recv(ticks) -> _ => {
                            if let Err(e) = app.refresh() {
                                log::warn!("port scan failed: {e}");
                            }
                        }
                    }
                }
            })?;
        Ok(Refresh { stop, thread })
    }

    /// Ends the thread and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
