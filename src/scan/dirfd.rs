//! Directories read through a descriptor, the way `ss -p` walks `/proc`:
//! `openat`, `getdents64` and `readlinkat` each resolve one name relative
//! to an open directory instead of a whole path from `/`, and nothing is
//! allocated per entry. What std's `read_dir` and `read_link` cost in a
//! walk of every process's `fd` directory, this saves about a third of.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The bytes of a `getdents64` record before its name: inode (8), offset
/// (8), record length (2) and type (1).
const NAME_AT: usize = 19;

/// Opens the directory `path`, relative to `dir` when given.
pub(super) fn open_dir(dir: Option<&OwnedFd>, path: &CStr) -> io::Result<OwnedFd> {
    let base = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated and lives through the call, which
    // only reads it; `base` is an open directory or AT_FDCWD.
    let fd = unsafe { libc::openat(base, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Hands `on_name` each name in the directory `dir` (`.` and `..`
/// included), reading records into `buf`, until it returns true or the
/// directory ends. Returns whether `on_name` stopped the reading.
pub(super) fn each_name(
    dir: &OwnedFd,
    buf: &mut [u8],
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
        let filled = buf.get(..n as usize).unwrap_or(buf);
        if records(filled).any(&mut *on_name) {
            return Ok(true);
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
        let stopped = each_name(&fd, &mut buf, &mut |name| {
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
        let stopped = each_name(&fd, &mut buf, &mut |_| {
            count += 1;
            count == 5
        });
        assert_eq!((stopped.unwrap(), count), (true, 5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
