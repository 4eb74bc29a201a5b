//! Configuration: flags and environment into one validated [`Settings`].
//!
//! Two steps, as ripgrep does: `raw` collects what was given, as text tagged
//! with the flag or variable it came from; `serve` turns that into typed
//! [`Settings`], applying every default and naming the flag or variable at
//! fault when a value is wrong. A new setting is a [`flags::Flag`] in the
//! table there and a line in `serve`; a new command is a word in [`parse`]
//! with its own table of flags.

pub(crate) mod access;
pub mod client_flags;
pub mod flags;
pub mod help;
mod hosts;
pub(crate) mod names;
mod pools;
pub(crate) mod portserver;
mod raw;
mod serve;
mod token;

pub use names::{NameSettings, RouteSettings};
pub use pools::{BROWSER_REFUSED, DEFAULT_POOL};
pub use token::{MIN_REMOTE_CHARS, read_private as read_token_file};

use crate::ports::PortRange;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `dynport serve` needs, validated, every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub host: IpAddr,
    pub range: PortRange,
    pub state_dir: PathBuf,
    /// Where the API is served to local users too; `None` for `none`.
    pub unix_socket: Option<PathBuf>,
    /// The live leased ports one principal may hold; `None` for no limit.
    pub max_ports_per_uid: Option<usize>,
    /// Open HTTP connections one principal may hold.
    pub max_connections_per_uid: usize,
    pub refresh: Duration,
    pub workers: usize,
    pub fallback_port: u16,
    pub token: Option<String>,
    /// Names a request's `Host` may give besides IP addresses and
    /// `localhost`, lower-case (`--allow-host`).
    pub allow_hosts: Vec<String>,
    pub log_level: log::LevelFilter,
    /// Named sub-ranges of `range`, in the order given, no two sharing a port.
    /// The pool [`DEFAULT_POOL`], the whole range, is not among them.
    pub pools: Vec<Pool>,
    /// Ports never handed out nor chosen by the server: sorted, each in `range`.
    pub exclude: Vec<u16>,
    /// A lease's life when the request names none.
    pub lease_ttl: Duration,
    /// Keep leased ports and the server's own in the kernel's reserved list.
    pub reserve_kernel: bool,
    /// `--name-retention-days`, `--max-names-per-uid`.
    pub names: names::NameSettings,
    /// `--routes-domain`, `--routes-port`.
    pub routes: names::RouteSettings,
    /// portpicker's portserver protocol, when `--portserver-socket` is given.
    pub portserver: Option<portserver::Portserver>,
    /// Warnings to log once logging is up (`PORT` ignored, `RELOAD` has no effect).
    pub warnings: Vec<String>,
}

impl Default for Settings {
    /// The settings of a bare `dynport` in an empty environment.
    fn default() -> Settings {
        let raw = raw::Raw::new(Vec::new(), |_: &str| None);
        serve::settings(&raw).expect("the defaults are valid")
    }
}

/// A named sub-range of the managed range that leases can ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// `[a-z0-9_-]+`, never `default`.
    pub name: String,
    pub range: PortRange,
}

/// What the command line asks for.
// Made once per process and matched at once: the size of `Serve` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Serve(Box<Settings>),
    Help,
    Version,
}

/// A usage or configuration error: exit status 2, the message names the flag or variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What `dynport --version` prints after `dynport `.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `dynport --help` prints, made from the table of flags.
pub fn help() -> String {
    help::page()
}

/// Parses `args` (without the program name) and the environment seen through `lookup`.
pub fn parse<I>(args: I, lookup: impl Fn(&str) -> Option<String>) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("help") => return Ok(Command::Help),
        Some("serve") => drop(args.remove(0)),
        Some(word) if !word.starts_with('-') => {
            return Err(ConfigError(format!(
                "unknown command {word:?}; see dynport --help"
            )));
        }
        _ => {}
    }
    match raw::collect(args, flags::SERVE)? {
        raw::Parsed::Help => Ok(Command::Help),
        raw::Parsed::Version => Ok(Command::Version),
        raw::Parsed::Flags(flags) => {
            serve::settings(&raw::Raw::new(flags, lookup)).map(|s| Command::Serve(Box::new(s)))
        }
    }
}

#[cfg(test)]
mod tests;
