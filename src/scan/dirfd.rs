//! Directories read through a descriptor, the way `ss -p` walks `/proc`:
//! `openat`, `getdents64` and `readlinkat` each resolve one name relative
//! to an open directory instead of a whole path from `/`, and nothing is
//! allocated per entry. What std's `read_dir` and `read_link` cost in a
//! walk of every process's `fd` directory, this saves about a third of.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The bytes of a `getdents64` record before its name: inode (8), offset
/// (8), record length (2) and type (1).
const NAME_AT: usize = 19;
/// The longest `getdents64` record: a 255-byte name and its NUL, padded
/// to 8 bytes.
const MAX_RECORD: usize = (NAME_AT + 256).next_multiple_of(8);

/// How a directory's listing is known to have ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ends {
    /// At a read that returns nothing: true of every file system.
    AtEmptyRead,
    /// Also at a read that left room for one more record of any size:
    /// procfs fills the buffer until it runs out of entries, so the empty
    /// read after such a read is a system call a walk of `/proc` saves
    /// (one per process). Other file systems, remote and FUSE ones among
    /// them, may return less than fits before their end.
    AtShortRead,
}

impl Ends {
    /// How listings on the file system of `dir` end.
    pub(super) fn of(dir: &OwnedFd) -> Ends {
        if is_procfs(dir) {
            Ends::AtShortRead
        } else {
            Ends::AtEmptyRead
        }
    }

    /// Whether a read that filled `filled` bytes of a `room`-byte buffer
    /// was the last one with names.
    fn after(self, filled: usize, room: usize) -> bool {
        self == Ends::AtShortRead && room.saturating_sub(filled) >= MAX_RECORD
    }
}

/// Whether `dir` is on procfs.
fn is_procfs(dir: &OwnedFd) -> bool {
    // SAFETY: statfs is plain data, for which all zeroes is a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs(2) only writes the statfs passed by pointer; `dir`
    // is open for the whole call.
    let rc = unsafe { libc::fstatfs(dir.as_raw_fd(), &mut fs) };
    rc == 0 && u64::try_from(fs.f_type).ok() == Some(PROC_SUPER_MAGIC)
}

/// `PROC_SUPER_MAGIC`, whose type differs between C libraries.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// Opens the directory `path`, relative to `dir` when given.
pub(super) fn open_dir(dir: Option<&OwnedFd>, path: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    crate::sys::open_at(dir.map(AsFd::as_fd), path, flags, 0)
}

/// The uid that owns `name` in `dir`, without following a link there;
/// `None` when it cannot be looked at (a process that has exited).
pub(super) fn owner(dir: &OwnedFd, name: &CStr) -> Option<u32> {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: fstatat(2) only reads the NUL-terminated `name` and writes
    // the stat passed by pointer; `dir` is open for the whole call.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) };
    (rc == 0).then_some(st.st_uid)
}

/// Hands `on_name` each name in the directory `dir` (`.` and `..`
/// included), reading records into `buf`, until it returns true or the
/// directory ends as `ends` tells. Returns whether `on_name` stopped the
/// reading.
pub(super) fn each_name(
    dir: &OwnedFd,
    buf: &mut [u8],
    ends: Ends,
    on_name: &mut dyn FnMut(&CStr) -> bool,
) -> io::Result<bool> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes, and the kernel
        // writes at most that many; `dir` is open for the whole call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(false);
        }
        let room = buf.len();
        let filled = buf.get(..n as usize).unwrap_or(buf);
        if records(filled).any(&mut *on_name) {
            return Ok(true);
        }
        if ends.after(filled.len(), room) {
            return Ok(false);
        }
    }
}

/// The names in a buffer of `getdents64` records; a malformed record ends
/// the buffer.
fn records(mut buf: &[u8]) -> impl Iterator<Item = &CStr> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*buf.get(16)?, *buf.get(17)?]));
        let record = buf.get(..len).filter(|_| len > NAME_AT)?;
        buf = &buf[len..];
        CStr::from_bytes_until_nul(&record[NAME_AT..]).ok()
    })
}

/// The target of the symbolic link `name` in `dir`, read into `buf`;
/// `None` when it is no link, cannot be read or fills `buf` (a target that
/// long is no `socket:[INODE]`).
pub(super) fn read_link<'b>(dir: &OwnedFd, name: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    // SAFETY: `name` is NUL-terminated and only read; `buf` is writable for
    // `buf.len()` bytes, and the kernel writes at most that many.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
    Some(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `getdents64` record for `name`, padded to 8 bytes.
    fn record(name: &str) -> Vec<u8> {
        let len = (NAME_AT + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        r[NAME_AT..NAME_AT + name.len()].copy_from_slice(name.as_bytes());
        r
    }

    fn names(buf: &[u8]) -> Vec<String> {
        records(buf)
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn records_yield_each_name() {
        let mut buf = record(".");
        buf.extend(record("4242"));
        buf.extend(record("thread-self"));
        assert_eq!(names(&buf), [".", "4242", "thread-self"]);
    }

    #[test]
    fn a_malformed_record_ends_the_buffer() {
        let mut buf = record("1");
        let mut bad = record("2");
        bad[16..18].copy_from_slice(&500u16.to_ne_bytes()); // longer than the buffer
        buf.extend(bad);
        assert_eq!(names(&buf), ["1"]);
        let mut zero = record("3");
        zero[16..18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(names(&zero), Vec::<String>::new());
        assert_eq!(names(&[1, 2, 3]), Vec::<String>::new());
    }

    #[test]
    fn a_directory_is_read_to_its_end_or_until_told_to_stop() {
        let dir = std::env::temp_dir().join(format!("dynport-dirfd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..300 {
            std::os::unix::fs::symlink(format!("socket:[{n}]"), dir.join(n.to_string())).unwrap();
        }
        let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        let fd = open_dir(None, &path).unwrap();
        let mut buf = [0u8; 512]; // several reads
        let mut seen = Vec::new();
        let stopped = each_name(&fd, &mut buf, Ends::AtEmptyRead, &mut |name| {
            let mut target = [0u8; 64];
            if let Some(t) = read_link(&fd, name, &mut target) {
                seen.push(String::from_utf8(t.to_vec()).unwrap());
            }
            false
        });
        assert!(!stopped.unwrap());
        seen.sort_unstable_by_key(|s| s[8..s.len() - 1].parse::<u32>().unwrap());
        let expected: Vec<String> = (0..300).map(|n| format!("socket:[{n}]")).collect();
        assert_eq!(seen, expected);
        let fd = open_dir(None, &path).unwrap();
        let mut count = 0;
        let stopped = each_name(&fd, &mut buf, Ends::AtEmptyRead, &mut |_| {
            count += 1;
            count == 5
        });
        assert_eq!((stopped.unwrap(), count), (true, 5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_owner_of_a_proc_entry_is_its_process_s_user() {
        let proc = open_dir(None, c"/proc").unwrap();
        let me = std::ffi::CString::new(std::process::id().to_string()).unwrap();
        assert_eq!(owner(&proc, &me), Some(crate::sys::euid()));
        assert_eq!(owner(&proc, c"no-such-entry"), None);
    }

    #[test]
    fn only_a_read_that_left_room_for_any_record_ends_a_listing_early() {
        assert_eq!(MAX_RECORD, 280);
        let short = Ends::AtShortRead;
        assert!(short.after(48, 32 * 1024));
        assert!(short.after(32 * 1024 - 280, 32 * 1024));
        assert!(
            !short.after(32 * 1024 - 279, 32 * 1024),
            "a long name may not fit"
        );
        assert!(!short.after(0, 279), "a small buffer never tells");
        assert!(!Ends::AtEmptyRead.after(48, 32 * 1024));
    }

    #[test]
    fn only_procfs_listings_end_at_a_short_read() {
        let proc = open_dir(None, c"/proc").unwrap();
        assert_eq!(Ends::of(&proc), Ends::AtShortRead);
        let tmp = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
        assert_eq!(Ends::of(&open_dir(None, &tmp).unwrap()), Ends::AtEmptyRead);
    }

    #[test]
    fn a_proc_fd_directory_read_to_a_short_read_lists_every_descriptor() {
        let held: Vec<std::fs::File> = (0..300)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds = open_dir(None, c"/proc/self/fd").unwrap();
        let mut buf = [0u8; 4096]; // two reads at least: 300 records of 24 bytes
        let mut seen = std::collections::HashSet::new();
        let stopped = each_name(&fds, &mut buf, Ends::AtShortRead, &mut |name| {
            seen.insert(name.to_str().unwrap().parse::<i32>().unwrap_or(-1));
            false
        });
        assert!(!stopped.unwrap());
        let missing: Vec<i32> = held
            .iter()
            .map(AsRawFd::as_raw_fd)
            .filter(|fd| !seen.contains(fd))
            .collect();
        assert_eq!(missing, Vec::<i32>::new());
    }
}
