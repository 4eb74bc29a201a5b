//! The settings of the portserver protocol: the socket portpicker's clients
//! connect to (`--portserver-socket`) and the pool their ports come from
//! (`--portserver-pool`).

use super::raw::{self, Raw, Value};
use super::{ConfigError, DEFAULT_POOL, Pool};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `sun_path` holds 108 bytes: a path ends with a NUL, an abstract name
/// starts with one.
const MAX_ADDRESS_BYTES: usize = 107;

/// The portserver: where it listens and which pool it hands ports from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portserver {
    pub address: SocketAddress,
    /// `default` or the name of a `--pool`.
    pub pool: String,
}

/// A Unix socket address as portpicker writes it in `PORTSERVER_ADDRESS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    /// A socket file.
    Path(PathBuf),
    /// A name in Linux's abstract namespace, written `@name`: no file, and
    /// it goes away with the socket.
    Abstract(Vec<u8>),
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Path(path) => write!(f, "{}", path.display()),
            SocketAddress::Abstract(name) => {
                write!(f, "@{}", String::from_utf8_lossy(name).escape_debug())
            }
        }
    }
}

/// The portserver of `--portserver-socket ADDR|none` and
/// `--portserver-pool NAME`; `None` when no socket is given. The pool is
/// checked either way, so a mistyped name never goes unnoticed.
pub fn portserver<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    pools: &[Pool],
) -> Result<Option<Portserver>, ConfigError> {
    let pool = pool(raw, pools)?;
    let Some(value) = raw.get(raw::PORTSERVER_SOCKET) else {
        return Ok(None);
    };
    let address = match value.os()?.as_bytes() {
        b"none" => return Ok(None),
        [b'@', name @ ..] => SocketAddress::Abstract(name.to_vec()),
        path => SocketAddress::Path(PathBuf::from(std::ffi::OsStr::from_bytes(path))),
    };
    check_length(&value, &address)?;
    Ok(Some(Portserver { address, pool }))
}

fn check_length(value: &Value, address: &SocketAddress) -> Result<(), ConfigError> {
    let len = match address {
        SocketAddress::Abstract(name) if name.is_empty() => {
            return Err(value.error("give a name after @, like @dynport"));
        }
        SocketAddress::Abstract(name) => name.len(),
        SocketAddress::Path(path) => path.as_os_str().len(),
    };
    if len > MAX_ADDRESS_BYTES {
        return Err(value.error(format!(
            "{address} is {len} bytes long, the kernel takes at most {MAX_ADDRESS_BYTES}; \
             give a shorter path or @name"
        )));
    }
    Ok(())
}

/// `--portserver-pool NAME`: `default` or one of the pools given.
fn pool<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    pools: &[Pool],
) -> Result<String, ConfigError> {
    let Some(value) = raw.get(raw::PORTSERVER_POOL) else {
        return Ok(DEFAULT_POOL.to_string());
    };
    let name = value.text()?;
    if name == DEFAULT_POOL || pools.iter().any(|p| p.name == name) {
        return Ok(name.to_string());
    }
    let known: Vec<&str> = std::iter::once(DEFAULT_POOL)
        .chain(pools.iter().map(|p| p.name.as_str()))
        .collect();
    Err(value.error(format!(
        "no pool named {name:?}; the pools are {} (add one with --pool NAME=A-B)",
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{error, serve};
    use super::*;

    fn abstract_name(name: &str) -> Option<Portserver> {
        Some(Portserver {
            address: SocketAddress::Abstract(name.as_bytes().to_vec()),
            pool: DEFAULT_POOL.to_string(),
        })
    }

    #[test]
    fn no_portserver_unless_a_socket_is_given() {
        assert_eq!(serve(&[], &[]).portserver, None);
        let none = serve(&["--portserver-socket", "none"], &[]);
        assert_eq!(none.portserver, None);
    }

    #[test]
    fn an_at_sign_names_the_abstract_namespace_and_anything_else_a_path() {
        let s = serve(&["--portserver-socket", "@dynport"], &[]);
        assert_eq!(s.portserver, abstract_name("dynport"));
        let var = [("DYNPORT_PORTSERVER_SOCKET", "/run/ps.sock")];
        assert_eq!(
            serve(&[], &var).portserver.map(|p| p.address),
            Some(SocketAddress::Path(PathBuf::from("/run/ps.sock")))
        );
        let flag_wins = serve(&["--portserver-socket", "@x"], &var);
        assert_eq!(flag_wins.portserver, abstract_name("x"));
        assert_eq!(
            SocketAddress::Abstract(b"a\nb".to_vec()).to_string(),
            "@a\\nb"
        );
    }

    #[test]
    fn the_pool_must_exist_even_without_a_socket() {
        let args = ["--pool", "web=3000-3099", "--portserver-pool", "web"];
        let s = serve(
            &[&args[..], &["--portserver-socket", "@ps"][..]].concat(),
            &[],
        );
        assert_eq!(s.portserver.map(|p| p.pool), Some("web".to_string()));
        assert_eq!(
            error(
                &["--portserver-pool", "wbe", "--pool", "web=3000-3099"],
                &[]
            ),
            "--portserver-pool: no pool named \"wbe\"; the pools are default, web \
             (add one with --pool NAME=A-B)"
        );
        let var = [("DYNPORT_PORTSERVER_POOL", "db")];
        assert!(
            error(&["--portserver-socket", "@ps"], &var)
                .starts_with("DYNPORT_PORTSERVER_POOL: no pool named \"db\"")
        );
    }

    #[test]
    fn an_empty_name_or_an_address_the_kernel_cannot_take_is_refused() {
        assert_eq!(
            error(&["--portserver-socket", "@"], &[]),
            "--portserver-socket: give a name after @, like @dynport"
        );
        assert_eq!(
            error(&["--portserver-socket="], &[]),
            "--portserver-socket: the value is empty"
        );
        let long = format!("@{}", "n".repeat(108));
        assert!(
            error(&["--portserver-socket", &long], &[])
                .contains("is 108 bytes long, the kernel takes at most 107")
        );
        let fits = format!("@{}", "n".repeat(107));
        assert!(
            serve(&["--portserver-socket", &fits], &[])
                .portserver
                .is_some()
        );
    }
}
