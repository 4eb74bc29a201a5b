//! The processes holding sockets, found as `ss -p` and `lsof` find them: a
//! socket's inode in the `socket:[INODE]` link of a `/proc/PID/fd` entry.
//! Only processes whose `fd` directory dynport may read are seen (its own
//! user's, or every one when it runs as root), and of those only the ones
//! the caller may see ([`Scope`]), until a deadline.
#![forbid(unsafe_code)]

use super::dirfd::{self, Ends};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Room for many directory records per read: `/proc` lists every process.
const NAMES_BUF: usize = 32 * 1024;
/// `socket:[` and the 20 digits of the largest inode, and `]`.
const LINK_BUF: usize = 32;
/// Processes above which a lookup shares its walk with a second thread.
const SPLIT_ABOVE: usize = 256;

/// Whose processes a lookup looks into, as `ss -p` shows a user only
/// their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process (an operator asks).
    Every,
    /// The processes whose `/proc/PID` this uid owns: its effective uid.
    /// The kernel gives a process that may not be dumped (a setuid
    /// program, one that changed its credentials) to root, so such a
    /// process is not its user's here, as `ss -p` does not show it to them.
    OwnedBy(u32),
    /// None: a caller that is no local user.
    Nothing,
}

/// What a walk found: the pid holding each inode found, and whether the
/// walk looked into every process of its scope (or found every inode)
/// before its deadline.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub owners: HashMap<u64, u32>,
    pub complete: bool,
}

/// For each inode of `wanted`, the pid of a process of `scope` holding it:
/// the lowest. Processes are walked by ascending pid (the parent of a
/// forked server before its children), and the walk stops as soon as every
/// inode is found, or at `deadline`. It runs on the thread that asks (an
/// HTTP worker), helped by one more when an operator asks and there are
/// many processes: see [`Walk::split`].
pub(super) fn find(proc_root: &Path, wanted: &[u64], scope: Scope, deadline: Instant) -> Found {
    let mut search = Search::new(wanted);
    if search.done() || scope == Scope::Nothing {
        return search.into_found(true);
    }
    let Some(walk) = Walk::open(proc_root, deadline) else {
        return search.into_found(false);
    };
    let mut buf = vec![0u8; NAMES_BUF];
    let Some(pids) = walk.pids(scope, &mut buf) else {
        return search.into_found(false);
    };
    // One user's lookups keep to one thread, so that they never take more
    // than one core from the others.
    if scope == Scope::Every && pids.len() > SPLIT_ABOVE && cpus() > 1 {
        search = walk.split(&pids, search, &mut buf);
    } else {
        walk.run(&pids, &mut search, None, &mut buf);
    }
    let complete = search.done() || !walk.late.load(Ordering::Relaxed);
    search.into_found(complete)
}

/// The CPUs dynport may run on, asked once.
fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(crate::sys::cpus)
}

/// A walk of the processes under one proc root, until a deadline.
struct Walk {
    root: OwnedFd,
    ends: Ends,
    deadline: Instant,
    /// Set once a walker saw the deadline pass.
    late: AtomicBool,
}

impl Walk {
    fn open(proc_root: &Path, deadline: Instant) -> Option<Walk> {
        let path = CString::new(proc_root.as_os_str().as_bytes()).ok()?;
        let root = dirfd::open_dir(None, &path).ok()?;
        let ends = Ends::of(&root);
        let late = AtomicBool::new(false);
        Some(Walk {
            root,
            ends,
            deadline,
            late,
        })
    }

    /// Whether the deadline has passed; remembered once it has. Asked
    /// before every process and every descriptor: reading the clock costs
    /// a small fraction of a `readlinkat`.
    fn past_deadline(&self) -> bool {
        if self.late.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            self.late.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The processes of `scope` the root lists, ascending: its entries
    /// that are all digits (`self`, `sys` and the rest are no process),
    /// each owned by the scope's uid when it names one. The owner is one
    /// `fstatat` of the entry, so another user's `fd` directory is never
    /// opened, however many descriptors it holds. `None` when the listing
    /// fails or the deadline passes before it ends.
    fn pids(&self, scope: Scope, buf: &mut [u8]) -> Option<Vec<u32>> {
        let mut pids = Vec::new();
        let stopped = dirfd::each_name(&self.root, buf, self.ends, &mut |name| {
            if self.past_deadline() {
                return true;
            }
            let Some(pid) = pid_of(name) else {
                return false;
            };
            let of_scope = match scope {
                Scope::Every => true,
                Scope::OwnedBy(uid) => dirfd::owner(&self.root, name) == Some(uid),
                Scope::Nothing => false,
            };
            if of_scope {
                pids.push(pid);
            }
            false
        });
        if stopped.unwrap_or(true) {
            return None;
        }
        pids.sort_unstable(); // `/proc` lists them so already; a copy may not
        Some(pids)
    }

    /// Offers `search` the sockets of each of `pids` in turn, until it is
    /// done, `stop` is set or the deadline passes.
    fn run(&self, pids: &[u32], search: &mut Search, stop: Option<&AtomicBool>, buf: &mut [u8]) {
        for &pid in pids {
            if search.done() || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return;
            }
            if self.past_deadline() {
                return;
            }
            self.sockets_of(pid, buf, &mut |inode| search.offer(pid, inode));
        }
    }

    /// Walks the lower half of `pids` on this thread and the upper half on
    /// a helper. A walk is bound by system calls (an `openat`, a
    /// `getdents64` and a `readlinkat` per descriptor: tens of µs per
    /// process), so with 1,000 processes one thread alone takes about the
    /// 30 ms a lookup may; two halves on two cores take about half. The
    /// helper lives only for this lookup, which is asked on demand (`dynport
    /// who`, a port's state), never by the periodic scan, so the engine's
    /// fixed threads stay as they are. The upper half stops once the lower
    /// found every inode, and the lower half's finds win, so the lowest pid
    /// still holds each inode. Without a helper, one thread walks it all.
    fn split(&self, pids: &[u32], mut lower: Search, buf: &mut [u8]) -> Search {
        let (low, high) = pids.split_at(pids.len() / 2);
        let lower_done = AtomicBool::new(false);
        let mut upper = lower.clone();
        let helper = || {
            self.run(
                high,
                &mut upper,
                Some(&lower_done),
                &mut vec![0u8; NAMES_BUF],
            );
            upper
        };
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("dynport-who".into())
                .spawn_scoped(scope, helper);
            self.run(low, &mut lower, None, buf);
            lower_done.store(lower.done(), Ordering::Relaxed);
            match spawned.map(|h| h.join()) {
                Ok(Ok(upper)) => lower.merge(upper),
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => self.run(high, &mut lower, None, buf),
            }
        });
        lower
    }

    /// Hands `on_inode` the inode of each socket process `pid` has open
    /// until it returns true or the deadline passes, and returns whether
    /// either did. A process dynport may not look into (another user's,
    /// unless it runs as root) or that has exited holds nothing.
    fn sockets_of(&self, pid: u32, buf: &mut [u8], on_inode: &mut dyn FnMut(u64) -> bool) -> bool {
        let mut path = [0u8; 16];
        let Some(path) = fd_dir(pid, &mut path) else {
            return false;
        };
        let Ok(fds) = dirfd::open_dir(Some(&self.root), path) else {
            return false;
        };
        let mut link = [0u8; LINK_BUF];
        let stopped = dirfd::each_name(&fds, buf, self.ends, &mut |name| {
            if self.past_deadline() {
                return true;
            }
            dirfd::read_link(&fds, name, &mut link)
                .and_then(socket_inode)
                .is_some_and(&mut *on_inode)
        });
        stopped.unwrap_or(false)
    }
}

/// `PID/fd`, written into `buf` instead of allocated: a walk makes one for
/// every process.
fn fd_dir(pid: u32, buf: &mut [u8; 16]) -> Option<&CStr> {
    write!(&mut buf[..], "{pid}/fd\0").ok()?;
    CStr::from_bytes_until_nul(buf).ok()
}

/// The command name of process `pid` (`/proc/PID/comm`), when it can be read.
pub(super) fn command(proc_root: &Path, pid: u32) -> Option<String> {
    let bytes = std::fs::read(proc_root.join(pid.to_string()).join("comm")).ok()?;
    let name = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The inodes still looked for, and the pid of each found.
#[derive(Clone)]
struct Search {
    left: Vec<u64>,
    found: HashMap<u64, u32>,
}

impl Search {
    fn new(wanted: &[u64]) -> Search {
        // Inode 0 is no socket's: a socket without one is never in /proc.
        let mut left: Vec<u64> = wanted.iter().copied().filter(|&i| i != 0).collect();
        left.sort_unstable();
        left.dedup();
        Search {
            left,
            found: HashMap::new(),
        }
    }

    /// Records that `pid` holds `inode` when it is looked for, and when a
    /// walker found it in a higher pid first. True once nothing is left to
    /// look for.
    fn offer(&mut self, pid: u32, inode: u64) -> bool {
        if let Ok(i) = self.left.binary_search(&inode) {
            self.left.remove(i);
            self.found.insert(inode, pid);
        } else if let Some(held) = self.found.get_mut(&inode) {
            *held = pid.min(*held);
        }
        self.done()
    }

    fn done(&self) -> bool {
        self.left.is_empty()
    }

    fn into_found(self, complete: bool) -> Found {
        Found {
            owners: self.found,
            complete,
        }
    }

    /// Takes in what `other`, a search for the same inodes, found.
    fn merge(&mut self, other: Search) {
        for (inode, pid) in other.found {
            self.offer(pid, inode);
        }
    }
}

/// The inode of a `socket:[INODE]` link target; `None` for any other file.
fn socket_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    number(digits)
}

/// The pid a `/proc` entry names: all digits.
fn pid_of(name: &CStr) -> Option<u32> {
    number(name.to_bytes()).and_then(|n| u32::try_from(n).ok())
}

/// Plain decimal digits, no sign or space, as the kernel writes them.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
