//! How callers reach dynport and how much each may hold: the Unix socket
//! the API is served on, the quota of leased ports and the share of
//! connections per principal.

use super::ConfigError;
use super::raw::{self, Raw};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The Unix socket's file name inside the state directory.
pub const SOCKET_FILE: &str = "dynport.sock";
/// The live leased ports one principal may hold at most, by default.
pub const DEFAULT_MAX_PORTS_PER_UID: usize = 1024;
/// The open HTTP connections one principal may hold at most, by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_UID: usize = 256;
/// `sun_path` holds 108 bytes, the last one a NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The Unix socket to serve on: `--unix-socket PATH|none`, by default
/// `dynport.sock` in the state directory; `None` for `none`.
pub fn unix_socket<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    state_dir: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let path = match raw.get(raw::UNIX_SOCKET) {
        Some(value) if value.text.as_bytes() == b"none" => return Ok(None),
        Some(value) if value.text.is_empty() => return Err(value.error("give a path or none")),
        Some(value) => PathBuf::from(value.os()?),
        None => state_dir.join(SOCKET_FILE),
    };
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        let name = match raw.get(raw::UNIX_SOCKET) {
            Some(value) => value.name(),
            None => format!("--{} (from --state-dir)", raw::UNIX_SOCKET.name),
        };
        return Err(ConfigError(format!(
            "{name}: the socket path {} is {len} bytes, the kernel takes at most \
             {MAX_SOCKET_PATH}; give a shorter --unix-socket PATH, or none",
            path.display()
        )));
    }
    Ok(Some(path))
}

/// `--max-ports-per-uid N|none`: `None` for no limit.
pub fn max_ports_per_uid<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
) -> Result<Option<usize>, ConfigError> {
    let Some(value) = raw.get(raw::MAX_PORTS_PER_UID) else {
        return Ok(Some(DEFAULT_MAX_PORTS_PER_UID));
    };
    let text = value.text()?;
    if text == "none" {
        return Ok(None);
    }
    let n = raw::bounded(text, &(1..=65_535)).map_err(|p| value.error(p))?;
    Ok(Some(n as usize))
}

/// `--max-connections-per-uid N`: open HTTP connections per principal,
/// TCP and the Unix socket together.
pub fn max_connections_per_uid<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
) -> Result<usize, ConfigError> {
    let Some(value) = raw.get(raw::MAX_CONNECTIONS_PER_UID) else {
        return Ok(DEFAULT_MAX_CONNECTIONS_PER_UID);
    };
    let n = raw::bounded(value.text()?, &(1..=1024)).map_err(|p| value.error(p))?;
    Ok(n as usize)
}
