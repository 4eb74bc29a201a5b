//! Configuration: flags and environment into one validated [`Settings`].

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
    pub refresh: Duration,
    pub workers: usize,
    pub fallback_port: u16,
    pub token: Option<String>,
    pub log_level: log::LevelFilter,
    /// Warnings to log once logging is up (`PORT` ignored, `RELOAD` has no effect).
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Serve(Settings),
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

pub const HELP: &str = "";

/// Parses `args` (without the program name) and the environment seen through `lookup`.
pub fn parse<I>(_args: I, _lookup: impl Fn(&str) -> Option<String>) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    unimplemented!()
}
