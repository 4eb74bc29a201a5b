//! The processes leases are tied to, watched instead of polled. Each lease
//! change ends the leases of processes that exited, and reading
//! `/proc/PID/stat` for every tied process at every change cost more than
//! the change itself once a portpicker client held a few thousand ports.
//! So each process gets a pidfd the kernel marks readable when it exits,
//! all of them in one epoll: a change asks that epoll once, without
//! waiting, whatever the number of processes. A process whose pidfd cannot
//! be had (an old kernel, too many watched) is read from `/proc` as before.

use crate::http::epoll::{Epoll, Events, Interest};
use crate::ports::Process;
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;

/// At most this many pidfds, so that leases tied to many processes cannot
/// take the descriptors connections need; past it, processes are polled.
const MAX_WATCHED: usize = 1024;
/// Exits taken from the epoll per call.
const EXITS_PER_WAIT: usize = 64;

pub(super) struct Owners {
    /// `None` when the epoll could not be made: every process is polled.
    epoll: Option<Epoll>,
    /// The processes watched, by pid.
    watched: HashMap<u32, OwnedFd>,
    /// The pids the kernel reported exited, until their leases end.
    exited: HashSet<u32>,
    /// Room for the exits one wait reports.
    events: Events,
}

impl Owners {
    pub(super) fn new() -> Owners {
        let epoll = Epoll::new()
            .inspect_err(|e| log::debug!("lease processes will be polled: no epoll ({e})"))
            .ok();
        Owners {
            epoll,
            watched: HashMap::new(),
            exited: HashSet::new(),
            events: Events::with_capacity(EXITS_PER_WAIT),
        }
    }

    /// Watches the process a lease is tied to, from when the lease is in
    /// the table. `tied` says whether some lease is still tied to a pid: processes
    /// whose leases were all released are let go when room is needed.
    pub(super) fn watch(&mut self, (pid, start): Process, tied: &dyn Fn(u32) -> bool) {
        if self.watched.contains_key(&pid) || self.exited.contains(&pid) {
            return;
        }
        if self.watched.len() >= MAX_WATCHED {
            self.watched.retain(|&pid, _| tied(pid));
        }
        let Some(epoll) = &self.epoll else { return };
        if self.watched.len() >= MAX_WATCHED {
            return;
        }
        let pidfd = match crate::sys::pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                self.exited.insert(pid);
                return;
            }
            Err(_) => return,
        };
        // The pid may have been reused since the lease's process started:
        // the pidfd then names the later process, so the lease's is gone.
        if start.is_some() && crate::process::start_time(pid) != start {
            self.exited.insert(pid);
            return;
        }
        if epoll.add(&pidfd, pid as usize, Interest::Read).is_ok() {
            self.watched.insert(pid, pidfd);
        }
    }

    /// Takes the exits the kernel has reported since the last call, without
    /// waiting.
    pub(super) fn collect_exits(&mut self) {
        let Some(epoll) = &self.epoll else { return };
        if self.watched.is_empty() {
            return;
        }
        loop {
            let waited = epoll.wait(&mut self.events, Some(std::time::Duration::ZERO));
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

    /// Forgets the exits of pids no lease is tied to any more (their
    /// leases have ended), so that a later process with the same pid
    /// starts afresh.
    pub(super) fn forget_ended(&mut self, tied: &dyn Fn(u32) -> bool) {
        self.exited.retain(|&pid| tied(pid));
    }

    /// Whether a lease's process still runs, for [`crate::ports::PortTable::end_due`]:
    /// a watched process by its pidfd, any other by `/proc`
    /// ([`crate::process::alive_checker`]: read once per pid however many
    /// leases ask).
    pub(super) fn checker(&self) -> impl Fn(u32, Option<u64>) -> bool + '_ {
        let polled = crate::process::alive_checker();
        move |pid, start| {
            if self.exited.contains(&pid) {
                return false;
            }
            self.watched.contains_key(&pid) || polled(pid, start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn own() -> Process {
        let pid = std::process::id();
        (pid, crate::process::start_time(pid))
    }

    #[test]
    fn a_watched_process_is_alive_until_it_exits() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep runs");
        let process = (child.id(), crate::process::start_time(child.id()));
        let mut owners = Owners::new();
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
    fn a_pid_whose_start_differs_is_another_process() {
        let (pid, start) = own();
        let mut owners = Owners::new();
        owners.watch((pid, start.map(|s| s + 1)), &|_| true);
        assert!(!owners.checker()(pid, start.map(|s| s + 1)));
    }

    #[test]
    fn a_process_that_is_not_watched_is_read_from_proc() {
        let (pid, start) = own();
        let owners = Owners::new();
        assert!(owners.checker()(pid, start));
        assert!(!owners.checker()(pid, start.map(|s| s + 1)));
    }
}
