//! Opening the files of the state directory without trusting what is there:
//! symbolic links are never followed, a FIFO never blocks an open or a read,
//! anything but a regular file is refused, and temporary files get names no
//! one can guess and are created, never reused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every file dynport creates in the state directory: the state
/// file is read by the clients of every user of the host.
pub const FILE_MODE: u32 = 0o644;

/// How many fresh names [`create_temp`] tries before giving up; a clash
/// means someone planted a file at a random name, which is no accident.
const TEMP_TRIES: usize = 8;

/// What is at `path` when it is there but is not a regular file: "a FIFO",
/// "a symbolic link", … Follows no link.
pub fn not_regular(path: &Path) -> Option<&'static str> {
    let kind = fs::symlink_metadata(path).ok()?.file_type();
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

/// The error of finding `kind` where a regular file should be.
pub fn not_regular_error(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind} is there instead of a regular file; remove it"),
    )
}

/// Opens `path` with `options`, never following a symbolic link nor waiting
/// on a FIFO, and checks that what was opened is a regular file.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let opened = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        // ELOOP for a link, ENXIO for a FIFO opened to write with no reader,
        // EISDIR for a directory opened to write: say what is there.
        Err(e) => return Err(not_regular(path).map_or(e, not_regular_error)),
    };
    if !file.metadata()?.is_file() {
        let kind = not_regular(path).unwrap_or("not a regular file");
        return Err(not_regular_error(kind));
    }
    Ok(file)
}

/// Reads a regular file whole, unless it holds more than `cap` bytes:
/// `Ok(None)` then, without reading it all.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let file = open_regular(path, OpenOptions::new().read(true))?;
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

/// Creates a new, empty file `.NAME.tmp-RANDOM` in `dir`, mode
/// [`FILE_MODE`] whatever the umask: created exclusively, so a link or a
/// file planted at that name is never written through.
pub fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..TEMP_TRIES {
        let path = dir.join(format!(".{name}.tmp-{:016x}", crate::sys::random_u64()?));
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match created {
            Ok(file) => {
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
                return Ok((path, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                // The open may fail after the file was made (a security
                // module or fanotify said no); a fresh random name is ours.
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

/// Opens the directory itself, to fsync it after a rename.
pub fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
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
        let e = read_capped(&dir.join("state"), 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a symbolic link is there instead of a regular file; remove it"
        );
        let mut write = OpenOptions::new();
        write.write(true).truncate(true);
        assert!(open_regular(&dir.join("state"), &mut write).is_err());
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"precious");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("state");
        mkfifo(&fifo);
        let e = read_capped(&fifo, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a FIFO is there instead of a regular file; remove it"
        );
        let mut write = OpenOptions::new();
        let e = open_regular(&fifo, write.write(true)).unwrap_err();
        assert!(e.to_string().starts_with("a FIFO is there"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = temp_dir("dir");
        fs::create_dir(dir.join("state")).unwrap();
        let e = read_capped(&dir.join("state"), 100).unwrap_err();
        assert!(e.to_string().starts_with("a directory is there"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_the_cap_is_not_read() {
        let dir = temp_dir("cap");
        let path = dir.join("state");
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(
            read_capped(&path, 10).unwrap(),
            Some(b"0123456789".to_vec())
        );
        assert_eq!(read_capped(&path, 9).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_files_get_fresh_names_and_mode_644() {
        let dir = temp_dir("temp");
        let (a, _) = create_temp(&dir, "state.json").unwrap();
        let (b, _) = create_temp(&dir, "state.json").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".state.json.tmp-"), "{name}");
        assert_eq!(name.len(), ".state.json.tmp-".len() + 16, "{name}");
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        fs::remove_dir_all(dir).unwrap();
    }
}
