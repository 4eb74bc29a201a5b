//! The processes holding sockets, found as `ss -p` and `lsof` find them: a
//! socket's inode in the `socket:[INODE]` link of a `/proc/PID/fd` entry.
//! Only processes whose `fd` directory dynport may read are seen (its own
//! user's, or every one when it runs as root).
#![forbid(unsafe_code)]

use super::dirfd;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Room for many directory records per read: `/proc` lists every process.
const NAMES_BUF: usize = 32 * 1024;
/// `socket:[` and the 20 digits of the largest inode, and `]`.
const LINK_BUF: usize = 32;

/// For each inode of `wanted`, the pid of a process holding it: the
/// lowest found. Processes are walked in the order `proc_root` lists them
/// (ascending pids in `/proc`, so the parent of a forked server usually
/// comes before its children), and the walk stops as soon as every inode
/// is found. The walk runs on the thread that asks (an HTTP worker), so a
/// lookup costs no thread of its own.
pub(super) fn find(proc_root: &Path, wanted: &[u64]) -> HashMap<u64, u32> {
    let mut search = Search::new(wanted);
    if search.done() {
        return search.found;
    }
    let root = CString::new(proc_root.as_os_str().as_bytes()).ok();
    let Some(root) = root.and_then(|r| dirfd::open_dir(None, &r).ok()) else {
        return search.found;
    };
    let mut buf = vec![0u8; NAMES_BUF];
    for pid in pids(&root, &mut buf) {
        if search.done() {
            break;
        }
        sockets_of(&root, pid, &mut buf, &mut |inode| search.offer(pid, inode));
    }
    search.found
}

/// The processes `root` lists: its entries that are all digits. `self`,
/// `sys` and the rest are no process.
fn pids(root: &OwnedFd, buf: &mut [u8]) -> Vec<u32> {
    let mut pids = Vec::new();
    let _ = dirfd::each_name(root, buf, &mut |name| {
        pids.extend(pid_of(name));
        false
    });
    pids
}

/// Hands `on_inode` the inode of each socket process `pid` has open until
/// it returns true, and returns whether it did. A process dynport may not
/// look into (another user's) or that has exited holds nothing.
fn sockets_of(
    root: &OwnedFd,
    pid: u32,
    buf: &mut [u8],
    on_inode: &mut dyn FnMut(u64) -> bool,
) -> bool {
    let Ok(path) = CString::new(format!("{pid}/fd")) else {
        return false;
    };
    let Ok(fds) = dirfd::open_dir(Some(root), &path) else {
        return false;
    };
    let mut link = [0u8; LINK_BUF];
    let stopped = dirfd::each_name(&fds, buf, &mut |name| {
        dirfd::read_link(&fds, name, &mut link)
            .and_then(socket_inode)
            .is_some_and(&mut *on_inode)
    });
    stopped.unwrap_or(false)
}

/// The command name of process `pid` (`/proc/PID/comm`), when it can be read.
pub(super) fn command(proc_root: &Path, pid: u32) -> Option<String> {
    let bytes = std::fs::read(proc_root.join(pid.to_string()).join("comm")).ok()?;
    let name = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The inodes still looked for, and the pid of each found.
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
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::path::PathBuf;

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode(b"socket:[123]"), Some(123));
        assert_eq!(socket_inode(b"socket:[4294967296]"), Some(4_294_967_296));
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"socket:[+12]"), None);
        assert_eq!(socket_inode(b"socket:[12"), None);
        assert_eq!(socket_inode(b"pipe:[123]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn only_numeric_proc_entries_are_processes() {
        assert_eq!(pid_of(c"4242"), Some(4242));
        assert_eq!(pid_of(c"self"), None);
        assert_eq!(pid_of(c"thread-self"), None);
        assert_eq!(pid_of(c""), None);
        assert_eq!(pid_of(c"99999999999"), None);
    }

    #[test]
    fn search_is_done_once_every_inode_is_found() {
        let mut search = Search::new(&[7, 0, 5, 7]);
        assert!(!search.offer(10, 6));
        assert!(!search.offer(11, 7));
        assert!(!search.offer(12, 7), "7 was found already");
        assert!(search.offer(13, 5));
        assert!(search.offer(9, 7), "a lower pid found later wins");
        assert_eq!(search.found, HashMap::from([(7, 9), (5, 13)]));
        assert!(Search::new(&[0]).done(), "inode 0 is never looked for");
    }

    /// A fake `/proc`: processes with `fd` links and a `comm`, and entries
    /// that are no process.
    fn fake_proc(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("dynport-procfd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let process = |pid: &str, links: &[(&str, &str)], comm: &str| {
            let fd = root.join(pid).join("fd");
            std::fs::create_dir_all(&fd).unwrap();
            for (n, target) in links {
                symlink(target, fd.join(n)).unwrap();
            }
            std::fs::write(root.join(pid).join("comm"), comm).unwrap();
        };
        process("1", &[("0", "/dev/null"), ("3", "socket:[100]")], "init\n");
        process(
            "42",
            &[("4", "socket:[200]"), ("5", "pipe:[300]")],
            "python3\n",
        );
        process("sys", &[("6", "socket:[300]")], "not a process\n");
        std::fs::create_dir_all(root.join("43")).unwrap(); // no fd directory
        root
    }

    #[test]
    fn find_matches_inodes_to_the_processes_holding_them() {
        let root = fake_proc("find");
        let found = find(&root, &[100, 200, 300, 400]);
        assert_eq!(found, HashMap::from([(100, 1), (200, 42)]));
        assert_eq!(command(&root, 42).as_deref(), Some("python3"));
        assert_eq!(command(&root, 43), None);
        assert_eq!(find(&root, &[]), HashMap::new());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_walk_of_many_processes_finds_the_lowest_holder() {
        let root = std::env::temp_dir().join(format!("dynport-procfd-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for pid in 1..=750 {
            let fd = root.join(pid.to_string()).join("fd");
            std::fs::create_dir_all(&fd).unwrap();
            symlink(format!("socket:[{}]", 100_000 + pid), fd.join("3")).unwrap();
            if pid % 100 == 7 {
                symlink("socket:[42]", fd.join("4")).unwrap(); // shared, as after fork
            }
        }
        // 1 is never found, so every process is looked into.
        let found = find(&root, &[42, 100_600, 1]);
        assert_eq!(found, HashMap::from([(42, 7), (100_600, 600)]));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn find_sees_a_socket_of_this_process_in_proc() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let link = format!("/proc/self/fd/{}", listener.as_raw_fd());
        let inode = std::fs::metadata(link).unwrap().ino();
        let found = find(Path::new("/proc"), &[inode]);
        assert_eq!(found, HashMap::from([(inode, std::process::id())]));
    }
}
