//! Where the server is: a base URL given by the user, or the address the
//! running server wrote into its state file.
#![forbid(unsafe_code)]

use super::ClientError;
use crate::config::access::SOCKET_FILE;
use crate::state::files::{self, Dir};
use crate::state::walk::{self, Refusal, Rule};
use crate::state::{MAX_STATE_BYTES, STATE_FILE};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A server's base URL. Plain `http` only: dynport serves nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// A name or an address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// A path prefix without the trailing `/`, usually empty.
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://HOST[:PORT][/PREFIX]`; the scheme may be left out.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "'{text}': scheme {scheme} is not supported; dynport serves plain http://"
                ));
            }
            None => text,
        };
        if rest.contains(['?', '#', '@']) {
            return Err(format!(
                "'{text}': expected http://HOST:PORT, without user, query or fragment"
            ));
        }
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_authority(authority).map_err(|e| format!("'{text}': {e}"))?;
        Ok(BaseUrl {
            host,
            port,
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    /// The URL to reach a server listening on `host:port`. A server on every
    /// address (`0.0.0.0`, `::`) is reached through loopback.
    pub fn for_listener(host: &str, port: u16) -> BaseUrl {
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if a.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            Ok(IpAddr::V6(a)) if a.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
            _ => host.to_string(),
        };
        BaseUrl {
            host,
            port,
            prefix: String::new(),
        }
    }

    /// `HOST:PORT` as the `Host` header wants it, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

fn split_authority(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("unclosed '[' in the host")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("'{host}' is not an IPv6 address"))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ']'")?)),
        }
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("an IPv6 address needs brackets: http://[::1]:3456".to_string());
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_string());
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("'{p}' is not a port number (1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

/// How the user told the client to find the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Locate {
    Url(BaseUrl, Source),
    /// Read the address from this directory's state file.
    StateDir(PathBuf),
}

/// Where a base URL came from, so that errors can say where the client looked.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Flag,
    Env,
    StateFile { path: PathBuf, pid: u32 },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("given by --url"),
            Source::Env => f.write_str("given by DYNPORT_URL"),
            Source::StateFile { path, pid } => {
                write!(f, "read from {}, server pid {pid}", path.display())
            }
        }
    }
}

/// A server to talk to, and where its address came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub url: BaseUrl,
    pub source: Source,
    /// The server's Unix socket, tried first when there is one.
    pub unix: Option<PathBuf>,
    /// The uid the server must run as: the owner of the state file it was
    /// found through. `None` for an address the user gave, trusted as given.
    pub owner: Option<u32>,
    /// The state directory it was found through, held open: its socket is
    /// reached through its descriptor, not by its path again.
    pub dir: Option<Dir>,
}

impl Target {
    /// Where to connect to the Unix socket: through the state directory's
    /// descriptor when it is held.
    pub fn unix_at(&self) -> Option<PathBuf> {
        let path = self.unix.as_ref()?;
        match (&self.dir, path.file_name()) {
            (Some(dir), Some(name)) => Some(dir.through_fd(name)),
            _ => Some(path.clone()),
        }
    }
}

impl Locate {
    /// The server to talk to; a state directory must be root's, the
    /// caller's or `server_uid`'s. Reading the state file can fail: that is
    /// "no server could be reached" (exit 3), and the message says why.
    pub fn resolve(&self, server_uid: Option<u32>) -> Result<Target, ClientError> {
        match self {
            Locate::Url(url, source) => Ok(Target {
                url: url.clone(),
                source: source.clone(),
                unix: None,
                owner: None,
                dir: None,
            }),
            Locate::StateDir(dir) => from_state_dir(dir, server_uid),
        }
    }
}

/// The two fields of the state file the client needs.
#[derive(Deserialize)]
struct Running {
    server: Option<Server>,
    server_port: Option<u16>,
}

#[derive(Deserialize)]
struct Server {
    pid: u32,
    host: String,
}

/// Finds the server through `DIR/dynamic_ports.json`, and its Unix socket
/// `DIR/dynport.sock` when there is one; the server must be the state
/// file's owner. The directory is reached by the server's own rule (see
/// [`walk`]) with root, the caller, `server_uid` and the host service's
/// user trusted, and so is the state file: anything of anyone else's is
/// refused before a byte is sent.
pub fn from_state_dir(dir: &Path, server_uid: Option<u32>) -> Result<Target, ClientError> {
    let path = dir.join(STATE_FILE);
    let unreachable = |why: String| ClientError::Unreachable(why);
    let missing = || {
        unreachable(format!(
            "no server found: {} does not exist; start one with \
             `dynport --state-dir {}`, or pass --url or --state-dir",
            path.display(),
            dir.display()
        ))
    };
    let service = crate::state::dir::uid_of(super::args::HOST_SERVICE_USER);
    let owners: Vec<u32> = std::iter::once(crate::sys::process::own_uid())
        .chain(server_uid)
        .chain(service)
        .collect();
    let rule = Rule {
        owners: &owners,
        create: None,
    };
    let held = walk::open_dir(dir, rule).map_err(|refusal| match refusal {
        Refusal::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => missing(),
        refusal => unreachable(refused(&refusal, server_uid)),
    })?;
    // As the server reads it: no link followed, no FIFO waited on, capped.
    let read = held
        .open_regular(STATE_FILE, libc::O_RDONLY, 0)
        .and_then(|file| {
            let meta = file.metadata()?;
            let bytes = files::read_capped(file, MAX_STATE_BYTES)?.unwrap_or_default();
            Ok((meta, bytes))
        });
    let (meta, bytes) = read.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(),
        _ => unreachable(format!("cannot read {}: {e}", path.display())),
    })?;
    walk::check(&meta, &path, &owners, false)
        .map_err(|refusal| unreachable(refused(&refusal, server_uid)))?;
    let running: Running = serde_json::from_slice(&bytes).map_err(|e| {
        unreachable(format!(
            "cannot find the server: {} is not a dynport state file ({e})",
            path.display()
        ))
    })?;
    match (running.server, running.server_port) {
        (Some(server), Some(port)) => Ok(Target {
            url: BaseUrl::for_listener(&server.host, port),
            source: Source::StateFile {
                path,
                pid: server.pid,
            },
            unix: unix_socket(&held),
            owner: Some(meta.uid()),
            dir: Some(held),
        }),
        _ => Err(unreachable(format!(
            "no server is running: {} says the server shut down; start one with \
             `dynport --state-dir {}`, or pass --url",
            path.display(),
            dir.display()
        ))),
    }
}

/// Why the client talks to no server through a state directory: `state/
/// belongs to uid 1001, not to you or root: nothing was sent`.
fn refused(refusal: &Refusal, server_uid: Option<u32>) -> String {
    let at = refusal.at();
    let shown = match refusal {
        Refusal::Owner { end: true, .. } if at.file_name() == Some(STATE_FILE.as_ref()) => {
            at.display().to_string()
        }
        _ => walk::shown_as_dir(at),
    };
    let trusted = match server_uid {
        Some(uid) => format!("you, root or uid {uid} (--server-uid)"),
        None => "you or root".to_string(),
    };
    match refusal {
        Refusal::Owner { uid, .. } => {
            format!("{shown} belongs to uid {uid}, not to {trusted}: nothing was sent")
        }
        Refusal::Writable { mode, .. } => format!(
            "{shown} is writable by group or others (mode {mode:04o}), so anyone could \
             have put a server there: nothing was sent"
        ),
        Refusal::NotDir { .. } => format!("{} is not a directory: nothing was sent", at.display()),
        Refusal::Io { error, .. } => format!("cannot use {}: {error}", at.display()),
    }
}

/// The server's socket in `dir`, when a socket is there, as a path to show.
fn unix_socket(dir: &Dir) -> Option<PathBuf> {
    let meta = dir.lstat(SOCKET_FILE).ok()?;
    meta.file_type().is_socket().then(|| dir.join(SOCKET_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, prefix: &str) -> BaseUrl {
        BaseUrl {
            host: host.to_string(),
            port,
            prefix: prefix.to_string(),
        }
    }

    #[test]
    fn parses_base_urls() {
        let cases = [
            ("http://127.0.0.1:3456", url("127.0.0.1", 3456, "")),
            ("HTTP://localhost:3456/", url("localhost", 3456, "")),
            ("127.0.0.1:3456", url("127.0.0.1", 3456, "")),
            ("http://[::1]:3456/dynport/", url("::1", 3456, "/dynport")),
            ("http://example.org", url("example.org", 80, "")),
            ("http://[::1]", url("::1", 80, "")),
        ];
        for (text, expected) in cases {
            assert_eq!(BaseUrl::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_speak_or_parse() {
        for text in [
            "https://127.0.0.1:3456",
            "http://:3456",
            "http://h:0",
            "http://h:port",
            "http://::1:3456",
            "http://[::1",
            "http://[nope]:1",
            "http://user@h:1",
            "http://h:1/?x",
            "",
        ] {
            assert!(BaseUrl::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn displays_ipv6_in_brackets() {
        assert_eq!(url("::1", 3456, "").to_string(), "http://[::1]:3456");
        assert_eq!(url("h", 80, "/p").to_string(), "http://h:80/p");
    }

    #[test]
    fn a_server_on_every_address_is_reached_through_loopback() {
        assert_eq!(BaseUrl::for_listener("0.0.0.0", 1), url("127.0.0.1", 1, ""));
        assert_eq!(BaseUrl::for_listener("::", 1), url("::1", 1, ""));
        assert_eq!(BaseUrl::for_listener("fe80::1", 1), url("fe80::1", 1, ""));
        assert_eq!(BaseUrl::for_listener("10.1.2.3", 1), url("10.1.2.3", 1, ""));
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("dynport-target-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write_state(&self, server: &str, port: &str) -> PathBuf {
            let path = self.0.join(STATE_FILE);
            let text = format!(
                r#"{{"version": 1, "port_range": {{"start": 3000, "end": 3009}},
                    "server_port": {port}, "last_server_port": 3456,
                    "server": {server}, "ports": {{}}, "last_scan": null}}"#
            );
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn unreachable(dir: &Path) -> String {
        match from_state_dir(dir, None) {
            Err(ClientError::Unreachable(m)) => m,
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[test]
    fn finds_the_running_server_in_its_state_file() {
        let dir = TempDir::new("running");
        let server = r#"{"pid": 4242, "host": "::", "started_at": "2026-11-25T18:59:58Z"}"#;
        let path = dir.write_state(server, "3456");
        let target = from_state_dir(&dir.0, None).unwrap();
        assert_eq!(target.url.to_string(), "http://[::1]:3456");
        assert_eq!(target.source, Source::StateFile { path, pid: 4242 });
        assert_eq!(target.unix, None);
        assert_eq!(target.owner, Some(crate::sys::process::own_uid()));
        let socket = dir.0.join(SOCKET_FILE);
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(from_state_dir(&dir.0, None).unwrap().unix, Some(socket));
    }

    #[test]
    fn a_clean_shutdown_means_no_server_and_names_the_file() {
        let dir = TempDir::new("stopped");
        let path = dir.write_state("null", "null");
        let message = unreachable(&dir.0);
        assert!(
            message.starts_with(&format!(
                "no server is running: {} says the server shut down",
                path.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn a_missing_or_foreign_state_file_names_the_file() {
        let dir = TempDir::new("missing");
        let path = dir.0.join(STATE_FILE);
        let message = unreachable(&dir.0);
        assert!(
            message.starts_with(&format!(
                "no server found: {} does not exist",
                path.display()
            )),
            "{message}"
        );
        std::fs::write(&path, "[1, 2]").unwrap();
        let message = unreachable(&dir.0);
        assert!(
            message.contains(&format!("{} is not a dynport state file", path.display())),
            "{message}"
        );
    }

    #[test]
    fn a_fifo_or_link_as_state_file_is_refused_at_once() {
        let dir = TempDir::new("fifo");
        let path = dir.0.join(STATE_FILE);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let message = unreachable(&dir.0);
        assert!(message.contains("a FIFO"), "{message}");
        std::fs::remove_file(&path).unwrap();
        let real = dir.0.join("elsewhere.json");
        dir.write_state("null", "null");
        std::fs::rename(&path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let message = unreachable(&dir.0);
        assert!(message.contains("symbolic link"), "{message}");
    }

    #[test]
    fn another_users_directory_or_file_is_named_with_its_owner() {
        let owner = |at: &str, end| Refusal::Owner {
            at: at.into(),
            uid: 1001,
            mode: 0o755,
            end,
        };
        assert_eq!(
            refused(&owner("state", true), None),
            "state/ belongs to uid 1001, not to you or root: nothing was sent"
        );
        assert_eq!(
            refused(&owner("/srv/dynamic_ports.json", true), Some(7)),
            "/srv/dynamic_ports.json belongs to uid 1001, not to you, root or uid 7 \
             (--server-uid): nothing was sent"
        );
        let writable = Refusal::Writable {
            at: "/srv".into(),
            uid: 0,
            mode: 0o777,
            end: false,
        };
        assert_eq!(
            refused(&writable, None),
            "/srv/ is writable by group or others (mode 0777), so anyone could have put a \
             server there: nothing was sent"
        );
    }
}
