//! The first step of configuration: what was given, still text, each value
//! tagged with the flag or variable it came from so errors can name it.

use super::ConfigError;
use crate::ports::PortRange;
use std::ffi::OsString;
use std::num::IntErrorKind;
use std::ops::RangeInclusive;

/// A setting's long flag and environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The long flag without its dashes: `host` for `--host`.
    pub flag: &'static str,
    pub var: &'static str,
    /// What the flag takes, as the help shows it: `ADDR`, `A-B`, `N`.
    /// Empty for a switch: `--flag` alone means `1`, `--flag=0` turns it
    /// off (over its variable).
    pub arg: &'static str,
}

pub const HOST: Key = key("host", "HOST", "ADDR");
pub const RANGE: Key = key("range", "DYNPORT_RANGE", "A-B");
pub const STATE_DIR: Key = key("state-dir", "DYNPORT_STATE_DIR", "DIR");
pub const REFRESH_SECS: Key = key("refresh-secs", "DYNPORT_REFRESH_SECS", "N");
pub const WORKERS: Key = key("workers", "DYNPORT_WORKERS", "N");
pub const FALLBACK_PORT: Key = key("fallback-port", "DYNPORT_FALLBACK_PORT", "N");
pub const TOKEN: Key = key("token", "DYNPORT_TOKEN", "T");
pub const LOG_LEVEL: Key = key("log-level", "DYNPORT_LOG", "L");
pub const POOL: Key = key("pool", "DYNPORT_POOLS", "NAME=A-B");
pub const EXCLUDE: Key = key("exclude", "DYNPORT_EXCLUDE", "LIST");
pub const LEASE_TTL_SECS: Key = key("lease-ttl-secs", "DYNPORT_LEASE_TTL_SECS", "N");
pub const TOKEN_FILE: Key = key("token-file", "DYNPORT_TOKEN_FILE", "PATH");
pub const UNIX_SOCKET: Key = key("unix-socket", "DYNPORT_UNIX_SOCKET", "PATH");
pub const MAX_PORTS_PER_UID: Key = key("max-ports-per-uid", "DYNPORT_MAX_PORTS_PER_UID", "N");
pub const MAX_CONNECTIONS_PER_UID: Key = key(
    "max-connections-per-uid",
    "DYNPORT_MAX_CONNECTIONS_PER_UID",
    "N",
);
pub const ALLOW_HOST: Key = key("allow-host", "DYNPORT_ALLOW_HOSTS", "NAME");
pub const RESERVE_KERNEL: Key = key("reserve-kernel", "DYNPORT_RESERVE_KERNEL", "");
pub const PORTSERVER_SOCKET: Key = key("portserver-socket", "DYNPORT_PORTSERVER_SOCKET", "ADDR");
pub const PORTSERVER_POOL: Key = key("portserver-pool", "DYNPORT_PORTSERVER_POOL", "NAME");

/// The settings of `dynport serve`.
pub const SERVE_KEYS: &[Key] = &[
    HOST,
    RANGE,
    STATE_DIR,
    REFRESH_SECS,
    WORKERS,
    FALLBACK_PORT,
    TOKEN,
    LOG_LEVEL,
    POOL,
    EXCLUDE,
    LEASE_TTL_SECS,
    TOKEN_FILE,
    UNIX_SOCKET,
    MAX_PORTS_PER_UID,
    MAX_CONNECTIONS_PER_UID,
    ALLOW_HOST,
    RESERVE_KERNEL,
    PORTSERVER_SOCKET,
    PORTSERVER_POOL,
];

const fn key(flag: &'static str, var: &'static str, arg: &'static str) -> Key {
    Key { flag, var, arg }
}

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
}

/// One value as the user gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub key: Key,
    pub origin: Origin,
    pub text: OsString,
}

impl Value {
    /// What the user wrote to give this value: `--host` or `HOST`.
    pub fn name(&self) -> String {
        match self.origin {
            Origin::Flag => format!("--{}", self.key.flag),
            Origin::Env => self.key.var.to_string(),
        }
    }

    /// An error about this value: `--workers: …` or `DYNPORT_WORKERS: …`.
    pub fn error(&self, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{}: {problem}", self.name()))
    }

    /// The value as UTF-8 text, refused when empty.
    pub fn text(&self) -> Result<&str, ConfigError> {
        let text = self.os()?.to_str();
        text.ok_or_else(|| self.error(format!("{:?} is not valid UTF-8", self.text)))
    }

    /// The value as given, refused when empty.
    pub fn os(&self) -> Result<&OsString, ConfigError> {
        if !self.text.is_empty() {
            return Ok(&self.text);
        }
        Err(match self.origin {
            Origin::Flag => self.error("the value is empty"),
            Origin::Env => self.error("set but empty; unset it or give a value"),
        })
    }
}

/// The flags of one command line and the environment behind them.
pub struct Raw<L> {
    flags: Vec<Value>,
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Raw<L> {
    pub fn new(flags: Vec<Value>, lookup: L) -> Raw<L> {
        Raw { flags, lookup }
    }

    /// The value of `key`: its last flag, else its variable, else none.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.flag(key).or_else(|| self.var(key))
    }

    /// The last value given to `key`'s flag.
    pub fn flag(&self, key: Key) -> Option<Value> {
        self.flags.iter().rev().find(|v| v.key == key).cloned()
    }

    /// The value of `key`'s variable.
    pub fn var(&self, key: Key) -> Option<Value> {
        let text = (self.lookup)(key.var)?;
        let (origin, text) = (Origin::Env, text.into());
        Some(Value { key, origin, text })
    }

    /// Every value of a repeatable flag, else its variable's.
    pub fn all(&self, key: Key) -> Vec<Value> {
        let flags: Vec<Value> = self
            .flags
            .iter()
            .filter(|v| v.key == key)
            .cloned()
            .collect();
        if flags.is_empty() {
            return self.var(key).into_iter().collect();
        }
        flags
    }

    /// A variable that no flag stands for (`PORT`, `RELOAD`).
    pub fn env(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
    }
}

/// What a command line asks for, before validation.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Help,
    Version,
    Flags(Vec<Value>),
}

/// Collects the flags in `args`, each one of `keys`, `--help` or `--version`.
/// Both `--flag value` and `--flag=value` work; positional arguments are refused.
pub fn collect(args: Vec<OsString>, keys: &[Key]) -> Result<Parsed, ConfigError> {
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let mut flags = Vec::new();
    while let Some(arg) = parser.next().map_err(usage)? {
        let key = match arg {
            Short('h') | Long("help") => return bare(&mut parser, "--help", Parsed::Help),
            Short('V') | Long("version") => return bare(&mut parser, "--version", Parsed::Version),
            Long(name) => find(keys, name)?,
            Short(c) => return Err(unknown(&format!("-{c}"))),
            lexopt::Arg::Value(v) => return Err(unexpected(&v)),
        };
        let text = match key.arg {
            "" => parser.optional_value().unwrap_or_else(|| "1".into()),
            _ => parser.value().map_err(|_| missing(key))?,
        };
        flags.push(Value {
            key,
            origin: Origin::Flag,
            text,
        });
    }
    Ok(Parsed::Flags(flags))
}

/// `answer`, unless `--help=…` or `--version=…` gave a value.
fn bare(parser: &mut lexopt::Parser, flag: &str, answer: Parsed) -> Result<Parsed, ConfigError> {
    match parser.optional_value() {
        Some(_) => Err(ConfigError(format!(
            "{flag} takes no value; see dynport --help"
        ))),
        None => Ok(answer),
    }
}

fn find(keys: &[Key], name: &str) -> Result<Key, ConfigError> {
    let key = keys.iter().find(|k| k.flag == name);
    key.copied().ok_or_else(|| unknown(&format!("--{name}")))
}

fn usage(e: lexopt::Error) -> ConfigError {
    ConfigError(format!("{e}; see dynport --help"))
}

fn unknown(flag: &str) -> ConfigError {
    ConfigError(format!("unknown flag {flag}; see dynport --help"))
}

fn missing(key: Key) -> ConfigError {
    let Key { flag, arg, .. } = key;
    ConfigError(format!("--{flag} needs a value: --{flag} {arg}"))
}

fn unexpected(value: &OsString) -> ConfigError {
    ConfigError(format!(
        "unexpected argument {value:?}: dynport serve takes only flags; see dynport --help"
    ))
}

// The number parsers every setting shares.

/// A whole number inside `bounds`.
pub fn bounded(text: &str, bounds: &RangeInclusive<u64>) -> Result<u64, String> {
    let (low, high) = (bounds.start(), bounds.end());
    let n = match text.trim().parse::<u64>() {
        Ok(n) => n,
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => high + 1,
        Err(_) => return Err(format!("{text:?} is not a whole number")),
    };
    if !bounds.contains(&n) {
        return Err(format!(
            "{} is out of bounds; give {low} to {high}",
            text.trim()
        ));
    }
    Ok(n)
}

/// A port: 1 to 65535.
pub fn port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(0) => Err("port 0 is not a valid port".to_string()),
        Ok(n) => u16::try_from(n).map_err(|_| format!("port {n} is above 65535")),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
            Err(format!("port {text} is above 65535"))
        }
        Err(_) => Err(format!("{text:?} is not a port number")),
    }
}

/// A range `A-B`, both ends included.
pub fn range(text: &str) -> Result<PortRange, String> {
    let Some((start, end)) = text.split_once('-') else {
        return Err(format!(
            "{text:?} is not a range; give START-END, like 3000-9000"
        ));
    };
    PortRange::new(port(start)?, port(end)?)
}
