//! The portserver's listening socket: a path, with the care the API's Unix
//! socket gets (mode 0666, a stale socket replaced, anything else refused),
//! or a name in Linux's abstract namespace.

use crate::config::portserver::SocketAddress;
use crate::unix_socket::SocketFile;
use std::io;
use std::os::unix::net::UnixListener;

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

/// Binds `address`. A path where another process still listens is refused
/// rather than taken over: the path may lie outside the state directory, so
/// the directory's lock says nothing about who owns it.
pub fn bind(address: &SocketAddress) -> io::Result<Listening> {
    let (listener, file) = match address {
        SocketAddress::Path(path) => {
            let (listener, file) = crate::unix_socket::bind_as(path, FLAG)?;
            (listener, Some(file))
        }
        SocketAddress::Abstract(name) => (bind_abstract(name, address)?, None),
    };
    listener.set_nonblocking(true)?;
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
        let first = bind(&address).unwrap();
        assert!(first._file.is_none());
        let e = bind(&address).unwrap_err();
        assert!(e.to_string().contains("is taken by another process"), "{e}");
        drop(first);
        bind(&address).unwrap();
    }

    #[test]
    fn a_path_is_open_to_all_and_a_live_socket_there_is_refused() {
        let dir = std::env::temp_dir().join(unique("path"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ps.sock");
        let address = SocketAddress::Path(path.clone());
        let live = bind(&address).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        let e = bind(&address).unwrap_err();
        assert!(
            e.to_string().starts_with("another process listens on"),
            "{e}"
        );
        drop(live);
        assert!(!path.exists(), "the socket file stayed");
        let plain = dir.join("plain");
        std::fs::write(&plain, b"keep").unwrap();
        let e = bind(&SocketAddress::Path(PathBuf::from(&plain))).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a socket; remove it or give --portserver-socket")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
