//! The Unix socket the API is also served on: bound at a path any local
//! user may connect to (mode 0666), where the kernel tells dynport who
//! connected, through the descriptor of its directory when dynport holds
//! it, and removed at shutdown.

use crate::state::files::Dir;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A socket file dynport bound; removed when dropped.
#[derive(Debug)]
pub struct SocketFile {
    /// The path as given, for messages.
    path: PathBuf,
    /// The path the socket is reached by: through its directory's
    /// descriptor when that is held.
    at: PathBuf,
    /// The directory held, so `at` still leads to it at the end.
    _dir: Option<Dir>,
}

/// Binds `path`, through `dir`'s descriptor when `dir` is the directory it
/// is in (the state directory). See [`bind_as`].
pub fn bind(path: &Path, dir: Option<&Dir>) -> io::Result<(UnixListener, SocketFile)> {
    bind_as(path, dir, "--unix-socket")
}

/// Binds `path` for `flag`, which a refusal names, first removing a socket
/// left there by a process that died. A socket where a process still
/// accepts connections is refused, not taken over: the path may lie outside
/// the state directory, whose lock says nothing about it. Anything but a
/// socket at `path` is left alone and refused. When `dir` is `path`'s
/// directory, held open, every step goes through its descriptor
/// (`/proc/self/fd/N/NAME`), so a directory on the path swapped since it
/// was checked changes nothing.
pub fn bind_as(
    path: &Path,
    dir: Option<&Dir>,
    flag: &str,
) -> io::Result<(UnixListener, SocketFile)> {
    let (at, held) = match (dir, path.parent(), path.file_name()) {
        (Some(dir), Some(parent), Some(name)) if parent == dir.path() => {
            (dir.through_fd(name), Some(dir.clone()))
        }
        _ => (path.to_path_buf(), None),
    };
    match std::fs::symlink_metadata(&at) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(&at).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another process listens on {}; stop it or give {flag} another path",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(&at)?
        }
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a socket"
            };
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is {what}; remove it or give {flag} another path",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = bind_open_to_all(&at)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        at,
        _dir: held,
    };
    Ok((listener, file))
}

/// Binds with mode 0666 from the start: a chmod after the bind would
/// follow whatever link might be put at the path meanwhile. The umask is
/// process-wide, so this runs at start, before dynport creates other files.
fn bind_open_to_all(path: &Path) -> io::Result<UnixListener> {
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o111) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, putting the mask back.
    unsafe { libc::umask(old) };
    bound
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.at) {
            log::debug!("cannot remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dynport-sock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn socket_is_open_to_every_local_user_and_removed_on_drop() {
        let dir = temp_dir("mode");
        let path = dir.join("dynport.sock");
        let (_listener, file) = bind(&path, None).unwrap();
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
        drop(file);
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_socket_is_replaced_but_a_link_or_file_is_refused() {
        let dir = temp_dir("stale");
        let path = dir.join("dynport.sock");
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        let (_listener, _file) = bind(&path, None).unwrap();
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &link).unwrap();
        let e = bind(&link, None).unwrap_err();
        assert!(e.to_string().contains("a symbolic link"), "{e}");
        let plain = dir.join("plain");
        std::fs::write(&plain, b"keep").unwrap();
        let e = bind(&plain, None).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&plain).unwrap(), b"keep");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_socket_someone_listens_on_is_refused_not_taken_over() {
        let dir = temp_dir("live");
        let path = dir.join("dynport.sock");
        let live = UnixListener::bind(&path).unwrap();
        let e = bind(&path, None).unwrap_err();
        assert!(
            e.to_string().starts_with("another process listens on"),
            "{e}"
        );
        drop(live);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_socket_in_a_held_directory_is_bound_there_whatever_its_path_becomes() {
        let dir = temp_dir("held");
        let held = Dir::open(&dir).unwrap();
        let moved = dir.with_extension("moved");
        let _ = std::fs::remove_dir_all(&moved);
        std::fs::rename(&dir, &moved).unwrap();
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("dynport.sock");
        let (_listener, file) = bind(&path, Some(&held)).unwrap();
        assert_eq!(file.path(), path);
        assert!(!path.exists());
        assert!(moved.join("dynport.sock").exists());
        drop(file);
        assert!(!moved.join("dynport.sock").exists());
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(moved).unwrap();
    }
}
