//! The processes leases are tied to, watched instead of polled. Each lease
//! change ends the leases of processes that exited, and reading
//! `/proc/PID/stat` for every tied process at every change cost more than
//! the change itself once a portpicker client held a few thousand ports.
//! So each process gets a pidfd the kernel marks readable when it exits,
//! all of them in one epoll: a change asks that epoll once, without
//! waiting, whatever the number of processes. A process whose pidfd cannot
//! be had (an old kernel, the cap of pidfds reached, no descriptor left) is
//! polled instead: the refresh thread reads its pid and start time from
//! `/proc` once every [`POLL_EVERY`], and only while there is one.

use crate::ports::Process;
use crate::sys::epoll::{Epoll, Events, Interest};
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How often the processes no pidfd watches are read from `/proc`.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Exits taken from the epoll per call.
const EXITS_PER_WAIT: usize = 64;

pub(super) struct Owners {
    /// `None` when the epoll could not be made: every process is polled.
    epoll: Option<Epoll>,
    /// At most this many pidfds, so that leases tied to many processes
    /// cannot take the descriptors connections need
    /// ([`crate::server::fd_budget::FdBudget::pid_watches`]).
    cap: usize,
    /// The processes watched, by pid.
    watched: HashMap<u32, OwnedFd>,
    /// The processes no pidfd watches, by pid, with their start times.
    polled: HashMap<u32, Option<u64>>,
    /// The pids the kernel reported exited, until their leases end.
    exited: HashSet<u32>,
    /// Room for the exits one wait reports.
    events: Events,
    /// How a pidfd is had: [`crate::sys::pidfd_open`] but in tests.
    open: fn(u32) -> std::io::Result<OwnedFd>,
}

impl Owners {
    /// Watches with at most `cap` pidfds.
    pub(super) fn new(cap: usize) -> Owners {
        let epoll = Epoll::new()
            .inspect_err(|e| log::debug!("lease processes will be polled: no epoll ({e})"))
            .ok();
        Owners {
            epoll,
            cap,
            watched: HashMap::new(),
            polled: HashMap::new(),
            exited: HashSet::new(),
            events: Events::with_capacity(EXITS_PER_WAIT),
            open: crate::sys::pidfd_open,
        }
    }

    /// Watches the process a lease is tied to, from when the lease is in
    /// the table. `tied` says whether some lease is still tied to a pid:
    /// processes whose leases were all released are let go when room is
    /// needed. Returns whether polling starts with this process: the
    /// caller then wakes the thread that polls.
    pub(super) fn watch(&mut self, (pid, start): Process, tied: &dyn Fn(u32) -> bool) -> bool {
        let known = |pid| self.watched.contains_key(&pid) || self.polled.contains_key(&pid);
        if known(pid) || self.exited.contains(&pid) {
            return false;
        }
        if self.watched.len() >= self.cap {
            self.watched.retain(|&pid, _| tied(pid));
        }
        let why = match self.open_watch(pid, start) {
            Ok(()) => return false,
            Err(why) => why,
        };
        let first = self.polled.is_empty();
        self.polled.insert(pid, start);
        if first {
            log::info!(
                "polling lease processes once a second from pid {pid} on: {why} \
                 ({} watched by a pidfd)",
                self.watched.len()
            );
        }
        first
    }

    /// Watches `pid` by a pidfd, or says why it cannot be (then it is
    /// polled). A process that is gone already counts as watched: its exit
    /// is recorded.
    fn open_watch(&mut self, pid: u32, start: Option<u64>) -> Result<(), String> {
        let Some(epoll) = &self.epoll else {
            return Err("no epoll".to_string());
        };
        if self.watched.len() >= self.cap {
            return Err(format!("the cap of {} pidfds is reached", self.cap));
        }
        let pidfd = match (self.open)(pid) {
            Ok(pidfd) => pidfd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                self.exited.insert(pid);
                return Ok(());
            }
            Err(e) => return Err(format!("no pidfd ({e})")),
        };
        // The pid may have been reused since the lease's process started:
        // the pidfd then names the later process, so the lease's is gone.
        if start.is_some() && crate::sys::process::start_time(pid) != start {
            self.exited.insert(pid);
            return Ok(());
        }
        epoll
            .add(&pidfd, pid as usize, Interest::Read)
            .map_err(|e| format!("the epoll refused a pidfd ({e})"))?;
        self.watched.insert(pid, pidfd);
        Ok(())
    }

    /// A descriptor readable while an exit waits to be collected: for the
    /// thread that wakes the refresh thread when a lease's process exits.
    pub(super) fn exits_ready(&self) -> Option<OwnedFd> {
        self.epoll.as_ref()?.share().ok()
    }

    /// Takes the exits the kernel has reported since the last call, without
    /// waiting.
    pub(super) fn collect_exits(&mut self) {
        let Some(epoll) = &self.epoll else { return };
        if self.watched.is_empty() {
            return;
        }
        loop {
            let waited = epoll.wait(&mut self.events, Some(Duration::ZERO));
            if waited.is_err() {
                return;
            }
            let mut reported = 0;
            for pid in self.events.keys().map(|key| key as u32) {
                // Closing the pidfd takes it out of the epoll.
                self.watched.remove(&pid);
                self.exited.insert(pid);
                reported += 1;
            }
            if reported < EXITS_PER_WAIT {
                return;
            }
        }
    }

    /// Watches polled processes by a pidfd again while there is room,
    /// after letting go of the processes no lease is tied to any more; so
    /// polling stops once the processes past the cap are gone.
    pub(super) fn promote(&mut self, tied: &dyn Fn(u32) -> bool) {
        if self.polled.is_empty() {
            return;
        }
        self.watched.retain(|&pid, _| tied(pid));
        let room = self.cap.saturating_sub(self.watched.len());
        let some: Vec<Process> = (self.polled.iter().take(room))
            .map(|(&pid, &start)| (pid, start))
            .collect();
        let was_polling = self.polling();
        for (pid, start) in some {
            self.polled.remove(&pid);
            if self.open_watch(pid, start).is_err() {
                self.polled.insert(pid, start);
                break;
            }
        }
        self.note_polling_ended(was_polling);
    }

    /// Whether some process is polled: the refresh thread then polls once
    /// every [`POLL_EVERY`].
    pub(super) fn polling(&self) -> bool {
        !self.polled.is_empty()
    }

    /// The polled processes, and whether some of them no lease is tied to
    /// any more (they are let go by [`Owners::forget_ended`]).
    pub(super) fn polled(&self, tied: &dyn Fn(u32) -> bool) -> (Vec<Process>, bool) {
        let untied = self.polled.keys().any(|&pid| !tied(pid));
        (self.polled.iter().map(|(&p, &s)| (p, s)).collect(), untied)
    }

    /// Records the exits a poll found; a pid polled since as another
    /// process is left alone.
    pub(super) fn polled_exits(&mut self, gone: &[Process]) {
        let was_polling = self.polling();
        for &(pid, start) in gone {
            if self.polled.get(&pid) == Some(&start) {
                self.polled.remove(&pid);
                self.exited.insert(pid);
            }
        }
        self.note_polling_ended(was_polling);
    }

    /// Forgets the exits of pids no lease is tied to any more (their
    /// leases have ended), so that a later process with the same pid
    /// starts afresh, and stops polling processes no lease is tied to.
    pub(super) fn forget_ended(&mut self, tied: &dyn Fn(u32) -> bool) {
        self.exited.retain(|&pid| tied(pid));
        let was_polling = self.polling();
        self.polled.retain(|&pid, _| tied(pid));
        self.note_polling_ended(was_polling);
    }

    fn note_polling_ended(&self, was_polling: bool) {
        if was_polling && !self.polling() {
            log::info!("no lease process is polled any more");
        }
    }

    /// Whether a lease's process still runs, for [`crate::ports::PortTable::end_due`]:
    /// a watched process by its pidfd, a polled one by the last poll, any
    /// other by `/proc` ([`crate::sys::process::alive_checker`]: read once per
    /// pid however many leases ask).
    pub(super) fn checker(&self) -> impl Fn(u32, Option<u64>) -> bool + '_ {
        let unknown = crate::sys::process::alive_checker();
        move |pid, start| {
            if self.exited.contains(&pid) {
                return false;
            }
            let known = self.watched.contains_key(&pid) || self.polled.contains_key(&pid);
            known || unknown(pid, start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn own() -> Process {
        let pid = std::process::id();
        (pid, crate::sys::process::start_time(pid))
    }

    #[test]
    fn a_watched_process_is_alive_until_it_exits() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep runs");
        let process = (child.id(), crate::sys::process::start_time(child.id()));
        let mut owners = Owners::new(1024);
        owners.watch(process, &|_| true);
        assert!(owners.watched.contains_key(&process.0), "pidfds work here");
        owners.collect_exits();
        assert!(owners.checker()(process.0, process.1));
        child.kill().expect("kill");
        child.wait().expect("reaped");
        owners.collect_exits();
        assert!(!owners.checker()(process.0, process.1));
        owners.forget_ended(&|pid| pid != process.0);
        assert!(owners.exited.is_empty() && owners.watched.is_empty());
    }

    #[test]
    fn a_process_past_the_cap_is_polled_until_a_poll_finds_it_gone() {
        let spawn = || {
            let child = Command::new("sleep").arg("30").stdin(Stdio::null()).spawn();
            let child = child.expect("sleep runs");
            let process = (child.id(), crate::sys::process::start_time(child.id()));
            (child, process)
        };
        let (mut first, watched) = spawn();
        let (mut second, polled) = spawn();
        let mut owners = Owners::new(1);
        assert!(
            !owners.watch(watched, &|_| true),
            "the first fits under the cap"
        );
        assert!(owners.watch(polled, &|_| true), "the second starts polling");
        assert!(!owners.watch(polled, &|_| true), "watched once");
        assert!(owners.watched.contains_key(&watched.0) && owners.polling());
        let (listed, untied) = owners.polled(&|_| true);
        assert_eq!((listed, untied), (vec![polled], false));
        assert!(owners.checker()(polled.0, polled.1));

        second.kill().expect("kill");
        second.wait().expect("reaped");
        assert_eq!(
            crate::sys::process::has_exited(polled.0, polled.1),
            Some(true)
        );
        owners.polled_exits(&[polled]);
        assert!(!owners.checker()(polled.0, polled.1));
        assert!(owners.checker()(watched.0, watched.1));
        owners.forget_ended(&|pid| pid != polled.0);
        assert!(!owners.polling());
        first.kill().expect("kill");
        first.wait().expect("reaped");
    }

    #[test]
    fn a_process_is_polled_when_no_descriptor_is_left_for_its_pidfd() {
        let mut owners = Owners::new(1024);
        owners.open = |_| Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(owners.watch(own(), &|_| true));
        assert!(owners.watched.is_empty() && owners.polling());
        assert!(owners.checker()(own().0, own().1));
        owners.promote(&|_| true);
        assert!(owners.polling(), "still no descriptor");
        owners.open = crate::sys::pidfd_open;
        owners.promote(&|_| true);
        assert!(!owners.polling() && owners.watched.contains_key(&own().0));
    }

    #[test]
    fn a_polled_process_gets_a_pidfd_once_a_watched_one_is_gone() {
        let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let gone = (sleeper.id(), crate::sys::process::start_time(sleeper.id()));
        let mut owners = Owners::new(1);
        assert!(!owners.watch(gone, &|_| true));
        assert!(owners.watch(own(), &|_| true));
        owners.promote(&|_| true);
        assert!(owners.polling(), "no room yet");
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reaped");
        owners.collect_exits();
        owners.forget_ended(&|pid| pid != gone.0);
        owners.promote(&|pid| pid != gone.0);
        assert!(!owners.polling());
        assert_eq!(owners.watched.keys().collect::<Vec<_>>(), [&own().0]);
    }

    #[test]
    fn a_polled_process_no_lease_is_tied_to_is_let_go() {
        let mut owners = Owners::new(0);
        assert!(owners.watch(own(), &|_| true));
        assert_eq!(owners.polled(&|_| false), (vec![own()], true));
        owners.polled_exits(&[(own().0, own().1.map(|s| s + 1))]);
        assert!(
            owners.polling(),
            "another process of that pid is not this one"
        );
        owners.forget_ended(&|_| false);
        assert!(!owners.polling());
    }

    #[test]
    fn a_pid_whose_start_differs_is_another_process() {
        let (pid, start) = own();
        let mut owners = Owners::new(1024);
        owners.watch((pid, start.map(|s| s + 1)), &|_| true);
        assert!(!owners.checker()(pid, start.map(|s| s + 1)));
    }

    #[test]
    fn a_process_that_is_not_watched_is_read_from_proc() {
        let (pid, start) = own();
        let owners = Owners::new(1024);
        assert!(owners.checker()(pid, start));
        assert!(!owners.checker()(pid, start.map(|s| s + 1)));
    }
}
