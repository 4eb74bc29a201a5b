//! The first step of configuration: what was given, still text, each value
//! tagged with the flag or variable it came from so errors can name it.

use super::ConfigError;
use super::flags::{self, Value as Takes};
use crate::ports::PortRange;
use std::ffi::OsString;
use std::num::IntErrorKind;
use std::ops::RangeInclusive;

/// The flags of `dynport serve`, each the key its values are found by.
pub use super::flags::{
    ALLOW_HOST, EXCLUDE, FALLBACK_PORT, Flag, HOST, LEASE_TTL_SECS, LOG_LEVEL,
    MAX_CONNECTIONS_PER_UID, MAX_NAMES_PER_UID, MAX_PORTS_PER_UID, NAME_RETENTION_DAYS, POOL,
    PORTSERVER_POOL, PORTSERVER_SOCKET, RANGE, REFRESH_SECS, RESERVE_KERNEL, ROUTES_DOMAIN,
    ROUTES_PORT, STATE_DIR, TOKEN, TOKEN_FILE, UNIX_SOCKET, WORKERS,
};

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
}

/// One value as the user gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub key: Flag,
    pub origin: Origin,
    pub text: OsString,
}

impl Value {
    /// What the user wrote to give this value: `--host` or `HOST`.
    pub fn name(&self) -> String {
        match self.origin {
            Origin::Flag => format!("--{}", self.key.name),
            Origin::Env => self.key.var.unwrap_or_default().to_string(),
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
    pub fn get(&self, key: Flag) -> Option<Value> {
        self.flag(key).or_else(|| self.var(key))
    }

    /// The last value given to `key`'s flag.
    pub fn flag(&self, key: Flag) -> Option<Value> {
        self.flags
            .iter()
            .rev()
            .find(|v| v.key.name == key.name)
            .cloned()
    }

    /// The value of `key`'s variable.
    pub fn var(&self, key: Flag) -> Option<Value> {
        let text = (self.lookup)(key.var?)?;
        let (origin, text) = (Origin::Env, text.into());
        Some(Value { key, origin, text })
    }

    /// Every value of a repeatable flag, else its variable's.
    pub fn all(&self, key: Flag) -> Vec<Value> {
        debug_assert!(key.repeatable, "--{} is not repeatable", key.name);
        let flags: Vec<Value> = self
            .flags
            .iter()
            .filter(|v| v.key.name == key.name)
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

/// Collects the flags in `args`, each one of `groups`, `--help` or `--version`.
/// Both `--flag value` and `--flag=value` work; positional arguments are refused.
pub fn collect(args: Vec<OsString>, groups: &[flags::Group]) -> Result<Parsed, ConfigError> {
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let mut flags = Vec::new();
    while let Some(arg) = parser.next().map_err(usage)? {
        let key = match arg {
            arg if spells(&flags::HELP, &arg) => return bare(&mut parser, Parsed::Help),
            arg if spells(&flags::VERSION, &arg) => return bare(&mut parser, Parsed::Version),
            Long(name) => find(groups, name)?,
            Short(c) => return Err(unknown(&format!("-{c}"))),
            lexopt::Arg::Value(v) => return Err(unexpected(&v)),
        };
        let text = match key.value {
            Takes::Switch => parser.optional_value().unwrap_or_else(|| "1".into()),
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

/// Whether `arg` is `flag`, in its long or its short spelling.
fn spells(flag: &Flag, arg: &lexopt::Arg) -> bool {
    match *arg {
        lexopt::Arg::Long(name) => name == flag.name,
        lexopt::Arg::Short(c) => flag.short == Some(c),
        lexopt::Arg::Value(_) => false,
    }
}

/// `answer`, unless `--help=…` or `--version=…` gave a value.
fn bare(parser: &mut lexopt::Parser, answer: Parsed) -> Result<Parsed, ConfigError> {
    let flag = match answer {
        Parsed::Help => flags::HELP.name,
        _ => flags::VERSION.name,
    };
    match parser.optional_value() {
        Some(_) => Err(ConfigError(format!(
            "--{flag} takes no value; see dynport --help"
        ))),
        None => Ok(answer),
    }
}

fn find(groups: &[flags::Group], name: &str) -> Result<Flag, ConfigError> {
    let mut all = groups.iter().flat_map(|g| g.flags);
    let key = all.find(|k| k.name == name);
    key.copied().ok_or_else(|| unknown(&format!("--{name}")))
}

fn usage(e: lexopt::Error) -> ConfigError {
    ConfigError(format!("{e}; see dynport --help"))
}

fn unknown(flag: &str) -> ConfigError {
    ConfigError(format!("unknown flag {flag}; see dynport --help"))
}

fn missing(key: Flag) -> ConfigError {
    let (flag, arg) = (key.name, key.value.placeholder().unwrap_or_default());
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
