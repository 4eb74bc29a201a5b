//! Opening the files of the state directory without trusting what is there:
//! each through the directory's descriptor, symbolic links never followed, a
//! FIFO never blocking an open or a read, anything but a regular file
//! refused, and temporary files named so no one can guess and created,
//! never reused.

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The mode of every file dynport creates in the state directory: the state
/// file is read by the clients of every user of the host.
pub const FILE_MODE: u32 = 0o644;

/// How many fresh names [`Dir::create_temp`] tries before giving up; a
/// clash means someone planted a file at a random name, which is no
/// accident.
const TEMP_TRIES: usize = 8;

/// A directory held open: each of its files is found by one name looked up
/// in it, so whatever happens to the path it was reached by (a component
/// renamed, a link swapped) changes nothing. Clones share the descriptor.
#[derive(Clone, Debug)]
pub struct Dir {
    /// Opened with `O_PATH`: enough to look names up, whatever its mode.
    fd: Arc<OwnedFd>,
    /// The path it was reached by, for messages only.
    path: PathBuf,
}

impl Dir {
    /// Opens the directory at `path` as it is now, following links and
    /// checking nothing: for tests and tools that read a state. A server
    /// and a client reach theirs through [`super::walk::open_dir`].
    pub fn open(path: &Path) -> io::Result<Dir> {
        let name = c_name(path.as_os_str().as_encoded_bytes())?;
        let fd = crate::sys::open_at(None, &name, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(Dir::from_fd(fd, path.to_path_buf()))
    }

    /// `fd`, a directory opened with `O_PATH`, reached by `path`.
    pub(super) fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd: Arc::new(fd),
            path,
        }
    }

    /// The path the directory was reached by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` in this directory, as a path to show.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A path to `name` that goes through this directory's descriptor
    /// (`/proc/self/fd/N/NAME`), for the system calls that take nothing but
    /// a path, as bind(2) and connect(2) do.
    pub fn through_fd(&self, name: impl AsRef<Path>) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name)
    }

    /// What is at `name` when it is there but is not a regular file: "a
    /// FIFO", "a symbolic link", … Follows no link.
    pub fn not_regular(&self, name: &str) -> Option<&'static str> {
        let kind = self.lstat(name).ok()?.file_type();
        if kind.is_file() {
            None
        } else if kind.is_symlink() {
            Some("a symbolic link")
        } else if kind.is_dir() {
            Some("a directory")
        } else if kind.is_fifo() {
            Some("a FIFO")
        } else if kind.is_char_device() {
            Some("a character device")
        } else if kind.is_block_device() {
            Some("a block device")
        } else if kind.is_socket() {
            Some("a socket")
        } else {
            Some("not a regular file")
        }
    }

    /// What is at `name` itself, a link not followed.
    pub fn lstat(&self, name: &str) -> io::Result<fs::Metadata> {
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let fd = crate::sys::open_at(Some(self.fd()), &c_name(name.as_bytes())?, flags, 0)?;
        File::from(fd).metadata()
    }

    /// Opens `name` with `flags` (`O_RDONLY`, `O_WRONLY | O_CREAT`, …;
    /// `mode` for a file it creates), never following a symbolic link nor
    /// waiting on a FIFO, and checks that what was opened is a regular file.
    pub fn open_regular(&self, name: &str, flags: libc::c_int, mode: u32) -> io::Result<File> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let opened = crate::sys::open_at(Some(self.fd()), &c_name(name.as_bytes())?, flags, mode);
        let file = match opened {
            Ok(fd) => File::from(fd),
            // ELOOP for a link, ENXIO for a FIFO opened to write with no
            // reader, EISDIR for a directory opened to write: say what is
            // there.
            Err(e) => return Err(self.not_regular(name).map_or(e, not_regular_error)),
        };
        if !file.metadata()?.is_file() {
            let kind = self.not_regular(name).unwrap_or("not a regular file");
            return Err(not_regular_error(kind));
        }
        Ok(file)
    }

    /// Reads the regular file `name` whole, unless it holds more than `cap`
    /// bytes: `Ok(None)` then, without reading it all.
    pub fn read_capped(&self, name: &str, cap: u64) -> io::Result<Option<Vec<u8>>> {
        read_capped(self.open_regular(name, libc::O_RDONLY, 0)?, cap)
    }

    /// Creates a new, empty file `.NAME.tmp-RANDOM`, mode [`FILE_MODE`]
    /// whatever the umask: created exclusively, so a link or a file planted
    /// at that name is never written through. Returns its name.
    pub fn create_temp(&self, name: &str) -> io::Result<(String, File)> {
        let mut last = None;
        for _ in 0..TEMP_TRIES {
            let tmp = format!(".{name}.tmp-{:016x}", crate::sys::random_u64()?);
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
            match crate::sys::open_at(Some(self.fd()), &c_name(tmp.as_bytes())?, flags, FILE_MODE) {
                Ok(fd) => {
                    let file = File::from(fd);
                    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
                    return Ok((tmp, file));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    // The open may fail after the file was made (a security
                    // module or fanotify said no); a fresh random name is ours.
                    let _ = self.remove(&tmp);
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
    }

    /// Renames `from` to `to`, both in this directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from.as_bytes())?, c_name(to.as_bytes())?);
        crate::sys::rename_at(self.fd(), &from, &to)
    }

    /// Removes the file `name`: a link itself, never a directory.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        crate::sys::unlink_at(self.fd(), &c_name(name.as_bytes())?)
    }

    /// Syncs the directory itself, after a rename in it.
    pub fn sync(&self) -> io::Result<()> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        File::from(crate::sys::open_at(Some(self.fd()), c".", flags, 0)?).sync_all()
    }

    /// The names in the directory.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        fs::read_dir(self.through_fd(""))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}

/// Two handles are equal when they were reached by the same path: what a
/// value holding one (a client's target) is compared by.
impl PartialEq for Dir {
    fn eq(&self, other: &Dir) -> bool {
        self.path == other.path
    }
}

/// `name` as the kernel takes it; a NUL in it is an invalid argument.
fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The error of finding `kind` where a regular file should be.
pub fn not_regular_error(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind} is there instead of a regular file; remove it"),
    )
}

/// Reads `file` whole, unless it holds more than `cap` bytes: `Ok(None)`
/// then, without reading it all.
pub fn read_capped(file: File, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let len = file.metadata()?.len();
    if len > cap {
        return Ok(None);
    }
    // Room for all of it at once: a state file of megabytes is read
    // without copying it over and over as the buffer grows.
    let mut bytes = Vec::with_capacity(len as usize + 1);
    // One byte past the cap tells a file that grew since from one that fits.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dynport-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status();
        assert!(status.unwrap().success(), "mkfifo {}", path.display());
    }

    #[test]
    fn a_link_is_refused_not_followed() {
        let dir = temp_dir("link");
        fs::write(dir.join("target"), b"precious").unwrap();
        symlink(dir.join("target"), dir.join("state")).unwrap();
        let d = Dir::open(&dir).unwrap();
        let e = d.read_capped("state", 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a symbolic link is there instead of a regular file; remove it"
        );
        assert!(
            d.open_regular("state", libc::O_WRONLY | libc::O_TRUNC, 0)
                .is_err()
        );
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"precious");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("state");
        mkfifo(&fifo);
        let d = Dir::open(&dir).unwrap();
        let e = d.read_capped("state", 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a FIFO is there instead of a regular file; remove it"
        );
        let e = d.open_regular("state", libc::O_WRONLY, 0).unwrap_err();
        assert!(e.to_string().starts_with("a FIFO is there"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = temp_dir("dir");
        fs::create_dir(dir.join("state")).unwrap();
        let e = Dir::open(&dir).unwrap().read_capped("state", 100);
        let e = e.unwrap_err();
        assert!(e.to_string().starts_with("a directory is there"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_the_cap_is_not_read() {
        let dir = temp_dir("cap");
        let path = dir.join("state");
        fs::write(&path, b"0123456789").unwrap();
        let d = Dir::open(&dir).unwrap();
        assert_eq!(
            d.read_capped("state", 10).unwrap(),
            Some(b"0123456789".to_vec())
        );
        assert_eq!(d.read_capped("state", 9).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_files_get_fresh_names_and_mode_644() {
        let dir = temp_dir("temp");
        let d = Dir::open(&dir).unwrap();
        let (a, _) = d.create_temp("state.json").unwrap();
        let (b, _) = d.create_temp("state.json").unwrap();
        assert_ne!(a, b);
        let name = a.as_str();
        assert!(name.starts_with(".state.json.tmp-"), "{name}");
        assert_eq!(name.len(), ".state.json.tmp-".len() + 16, "{name}");
        let mode = fs::metadata(dir.join(&a)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_renamed_away_is_still_the_one_written_to() {
        let dir = temp_dir("moved");
        let d = Dir::open(&dir).unwrap();
        let moved = dir.with_extension("moved");
        let _ = fs::remove_dir_all(&moved);
        fs::rename(&dir, &moved).unwrap();
        fs::create_dir(&dir).unwrap();
        let (tmp, _) = d.create_temp("state").unwrap();
        d.rename(&tmp, "state").unwrap();
        d.sync().unwrap();
        assert!(moved.join("state").is_file());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(d.names().unwrap(), ["state"]);
        d.remove("state").unwrap();
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(moved).unwrap();
    }
}
