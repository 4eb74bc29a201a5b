//! The portserver's listening socket: a path, with the care the API's Unix
//! socket gets (mode 0666, a stale socket replaced, anything else refused),
//! or a name in Linux's abstract namespace.

use crate::config::portserver::SocketAddress;
use crate::state::dir::user;
use crate::state::files::Dir;
use crate::state::socket::SocketFile;
use crate::state::walk::{self, Refusal, Rule};
use std::io;
use std::os::unix::net::UnixListener;
use std::path::Path;

const FLAG: &str = "--portserver-socket";

/// A bound, non-blocking listener; its socket file (if any) goes when this
/// is dropped.
#[derive(Debug)]
pub struct Listening {
    pub(super) listener: UnixListener,
    /// Held for its `Drop`, which removes the socket file.
    _file: Option<SocketFile>,
    pub(super) address: SocketAddress,
}

impl Listening {
    pub fn address(&self) -> &SocketAddress {
        &self.address
    }
}

/// Checks where `address` is before anything is bound, and holds the
/// directory of a path: reached by the rule of the state directory (see
/// [`crate::state::walk`]), so that it is root's or dynport's own and no
/// one else may write to it, sticky or not: another user could otherwise
/// have put a socket of their own at the path first, and portpicker would
/// talk to them. An `@name` is only warned about: the abstract namespace
/// has no owner check at all. The error is the whole message of a
/// configuration error (exit status 2).
pub fn prepare(address: &SocketAddress) -> Result<Option<Dir>, String> {
    let path = match address {
        SocketAddress::Abstract(_) => {
            log::warn!(
                "{FLAG} {address}: the abstract namespace has no owner check, so any user \
                 could have taken the name first and portpicker would talk to them; give a \
                 path in the state directory or /run/dynport/ instead"
            );
            return Ok(None);
        }
        SocketAddress::Path(path) => path,
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let rule = Rule {
        owners: &[crate::sys::euid()],
        create: None,
    };
    walk::open_dir(parent, rule).map(Some).map_err(|refusal| {
        let why = match &refusal {
            Refusal::Owner { uid, mode, .. } => format!(
                "it belongs to {} (mode {mode:04o}), not to root or the user running dynport",
                user(*uid)
            ),
            Refusal::Writable { uid, mode, .. } => format!(
                "others may write to it (owner {}, mode {mode:04o})",
                user(*uid)
            ),
            Refusal::NotDir { .. } => "it is not a directory".to_string(),
            Refusal::Io { error, .. } => error.to_string(),
        };
        format!(
            "{FLAG} {}: {}: {why}; another user could put a socket of their own there: give \
             a path in the state directory or /run/dynport/",
            path.display(),
            refusal.at().display()
        )
    })
}

/// Binds `address`, through `dir` (its directory, as [`prepare`] holds it)
/// for a path. A path where another process still listens is refused
/// rather than taken over: the path may lie outside the state directory, so
/// the directory's lock says nothing about who owns it.
pub fn bind(address: &SocketAddress, dir: Option<&Dir>) -> io::Result<Listening> {
    let (listener, file) = match address {
        SocketAddress::Path(path) => {
            let dir = dir.filter(|d| Some(d.path()) == path.parent());
            let (listener, file) = crate::state::socket::bind_as(path, dir, FLAG)?;
            (listener, Some(file))
        }
        SocketAddress::Abstract(name) => (bind_abstract(name, address)?, None),
    };
    listener.set_nonblocking(true)?;
    if let Err(e) = crate::sys::deepen_backlog(&listener) {
        log::debug!("cannot deepen the portserver socket's queue: {e}");
    }
    Ok(Listening {
        listener,
        _file: file,
        address: address.clone(),
    })
}

fn bind_abstract(name: &[u8], shown: &SocketAddress) -> io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    UnixListener::bind_addr(&addr).map_err(|e| {
        if e.kind() != io::ErrorKind::AddrInUse {
            return e;
        }
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{shown} is taken by another process (another portserver?); \
                 stop it or give {FLAG} another name"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn unique(name: &str) -> String {
        format!("dynport-ps-{name}-{}", std::process::id())
    }

    #[test]
    fn an_abstract_name_is_taken_once() {
        let address = SocketAddress::Abstract(unique("twice").into_bytes());
        let first = bind(&address, None).unwrap();
        assert!(first._file.is_none());
        let e = bind(&address, None).unwrap_err();
        assert!(e.to_string().contains("is taken by another process"), "{e}");
        drop(first);
        bind(&address, None).unwrap();
    }

    #[test]
    fn a_path_is_open_to_all_and_a_live_socket_there_is_refused() {
        let dir = std::env::temp_dir().join(unique("path"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ps.sock");
        let address = SocketAddress::Path(path.clone());
        let live = bind(&address, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        let e = bind(&address, None).unwrap_err();
        assert!(
            e.to_string().starts_with("another process listens on"),
            "{e}"
        );
        drop(live);
        assert!(!path.exists(), "the socket file stayed");
        let plain = dir.join("plain");
        std::fs::write(&plain, b"keep").unwrap();
        let e = bind(&SocketAddress::Path(PathBuf::from(&plain)), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a socket; remove it or give --portserver-socket")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
