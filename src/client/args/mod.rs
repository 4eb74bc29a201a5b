//! The client's command line: a subcommand, its options and the environment,
//! into one validated [`Invocation`]. Errors are usage errors (exit 2).
#![forbid(unsafe_code)]

use super::help;
use super::target::{BaseUrl, Locate, Source};
use crate::config::client_flags;
use crate::config::flags::HELP;
use crate::ports::lease::Protocol;
use crate::ports::wire;
use lexopt::Arg::{Long, Short, Value};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The state directory looked in when it is there and nothing else is given:
/// `make run`'s.
pub const LOCAL_STATE_DIR: &str = "state";
/// The state directory of the host's service (dist/systemd/dynport.service),
/// looked in last, so that `dynport lease` works from any directory.
pub const HOST_STATE_DIR: &str = "/var/lib/dynport";
/// The user the host's service runs as (dist/systemd/dynport.service): a
/// system user only root can have made, trusted as root is to own a state
/// directory and the server in it.
pub const HOST_SERVICE_USER: &str = "dynport";

/// What `--token` on the command line earns: every user of the host can
/// read a command line (`ps`, `/proc/PID/cmdline`).
pub const TOKEN_ON_COMMAND_LINE: &str = "warning: --token on the command line can be read by \
    every user of this host (ps, /proc/PID/cmdline); give it with --token-file or \
    DYNPORT_TOKEN instead";

/// The client subcommands, as typed after `dynport`.
pub const COMMANDS: [&str; 12] = [
    "lease", "release", "renew", "leases", "status", "url", "run", "who", "names", "port", "alias",
    "watch",
];

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// `--help`: print this text and exit 0.
    Help(String),
    Run(Box<Invocation>),
}

/// One validated client command with everything it needs.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub locate: Locate,
    /// `--server-uid` (`DYNPORT_SERVER_UID`): a uid trusted, besides root and
    /// the caller, to own the state directory and the server.
    pub server_uid: Option<u32>,
    /// Sent as `Authorization: Bearer …` on mutating requests.
    pub token: Option<String>,
    /// Said on stderr before anything else is done.
    pub warnings: Vec<String>,
    /// Print the server's JSON answer instead of text for people.
    pub json: bool,
    pub command: Command,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Lease(LeaseOptions),
    Release(ReleaseTarget),
    Renew {
        id: String,
        ttl: Option<u64>,
    },
    Leases,
    Status,
    /// `dynport url`: the server's base URL; `dynport url NAME`: the name's.
    Url(Option<String>),
    Run(RunOptions),
    /// `dynport who PORT`: the sockets holding the port.
    Who(u16),
    /// `dynport names`: the names, live and retained.
    Names,
    /// `dynport port NAME`: the port of a live name.
    Port(String),
    /// `dynport alias NAME PORT`: NAME names PORT.
    Alias {
        name: String,
        port: u16,
    },
    /// `dynport alias --remove NAME`.
    Unalias(String),
    /// `dynport watch`: the server's events as they come; exit after
    /// `--count` of them when given.
    Watch(Option<u64>),
}

/// The fields of a lease request; `None` leaves the choice to the server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaseOptions {
    pub count: Option<u32>,
    pub port: Option<u16>,
    pub pool: Option<String>,
    pub ttl: Option<u64>,
    pub owner: Option<String>,
    pub pid: Option<u32>,
    pub protocol: Option<Protocol>,
    /// The name of the first port, as given; [`super::naming::AUTO`] is
    /// made into one from the current directory before it is sent.
    pub name: Option<String>,
}

/// What `dynport release` was given: a port of a live lease, or a lease id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseTarget {
    Port(u16),
    Id(String),
}

impl ReleaseTarget {
    /// An argument that reads as a port number (1-65535) is a port; anything
    /// else is a lease id (ids are 16 hex digits, so they never read as one).
    pub fn from_arg(arg: &str) -> ReleaseTarget {
        match arg.parse::<u16>() {
            Ok(port) if port > 0 => ReleaseTarget::Port(port),
            _ => ReleaseTarget::Id(arg.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    pub lease: LeaseOptions,
    /// Bind the ports here and pass the listening sockets to the command.
    pub socket: bool,
    pub bind: IpAddr,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// The command line as given, before defaults and the environment.
#[derive(Default)]
struct Raw {
    url: Option<String>,
    state_dir: Option<PathBuf>,
    server_uid: Option<u32>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    json: bool,
    lease: LeaseOptions,
    socket: bool,
    remove: bool,
    /// `--count` of `dynport watch`.
    events: Option<u64>,
    bind: Option<IpAddr>,
    positional: Vec<String>,
    program: Option<(OsString, Vec<OsString>)>,
}

/// Parses the arguments after the subcommand `command`, reading the
/// environment through `lookup`. The error is a usage message.
pub fn parse<I>(
    command: &str,
    args: I,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, String>
where
    I: IntoIterator<Item = OsString>,
{
    let mut parser = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short(c) if Some(c) == HELP.short => return Ok(Parsed::Help(help::of(command))),
            Long(name) if name == HELP.name => return Ok(Parsed::Help(help::of(command))),
            // The flags of the table, and only those: `set` handles each.
            Long(name) if client_flags::find(command, name).is_some() => {
                let name = name.to_string();
                raw.set(command, &name, &mut parser)?;
            }
            Value(program) if command == "run" => {
                let rest = parser.raw_args().map_err(|e| e.to_string())?.collect();
                raw.program = Some((program, rest));
                break;
            }
            Value(value) => raw.positional.push(text("argument", value)?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Parsed::Run(Box::new(raw.into_invocation(command, lookup)?)))
}

impl Raw {
    fn set(
        &mut self,
        command: &str,
        name: &str,
        parser: &mut lexopt::Parser,
    ) -> Result<(), String> {
        let flag = format!("--{name}");
        let mut value = || -> Result<String, String> {
            let value = parser.value().map_err(|e| e.to_string())?;
            text(&flag, value)
        };
        let l = &mut self.lease;
        match name {
            "json" => self.json = true,
            "socket" => self.socket = true,
            "remove" => self.remove = true,
            "url" => self.url = Some(value()?),
            "state-dir" => self.state_dir = Some(PathBuf::from(value()?)),
            "server-uid" => self.server_uid = Some(number(&flag, &value()?)?),
            "token" => self.token = Some(token(&flag, value()?)?),
            "token-file" => self.token_file = Some(PathBuf::from(value()?)),
            "count" if command == "watch" => self.events = Some(number(&flag, &value()?)?),
            "count" => l.count = Some(count(&flag, &value()?)?),
            "port" => l.port = Some(port(&flag, &value()?)?),
            "pool" => l.pool = Some(value()?),
            "ttl" => l.ttl = Some(seconds(&flag, &value()?)?),
            "owner" => l.owner = Some(owner(&flag, value()?)?),
            "name" => l.name = Some(lease_name(&flag, value()?)?),
            "pid" => l.pid = Some(number(&flag, &value()?)?),
            "protocol" => l.protocol = Some(protocol(&flag, &value()?)?),
            "bind" => self.bind = Some(address(&flag, &value()?)?),
            _ => unreachable!("option --{name} is accepted but not handled"),
        }
        Ok(())
    }

    fn into_invocation(
        mut self,
        command: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Invocation, String> {
        let locate = self.locate(lookup)?;
        let server_uid = match (self.server_uid, non_empty(lookup("DYNPORT_SERVER_UID"))) {
            (Some(uid), _) => Some(uid),
            (None, Some(uid)) => Some(number("DYNPORT_SERVER_UID", &uid)?),
            (None, None) => None,
        };
        let token = self.token(lookup)?;
        let warnings = match self.token {
            Some(_) => vec![TOKEN_ON_COMMAND_LINE.to_string()],
            None => Vec::new(),
        };
        let command = self.command(command)?;
        Ok(Invocation {
            locate,
            server_uid,
            token,
            warnings,
            json: self.json,
            command,
        })
    }

    /// `--url`, then `--state-dir`, then `DYNPORT_URL`, then
    /// `DYNPORT_STATE_DIR`, then the directory `state` when it is there,
    /// else the host service's [`HOST_STATE_DIR`]: a flag beats a variable.
    fn locate(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Locate, String> {
        if let Some(url) = &self.url {
            let url = BaseUrl::parse(url).map_err(|e| format!("--url: {e}"))?;
            return Ok(Locate::Url(url, Source::Flag));
        }
        if let Some(dir) = &self.state_dir {
            return Ok(Locate::StateDir(dir.clone()));
        }
        if let Some(url) = non_empty(lookup("DYNPORT_URL")) {
            let url = BaseUrl::parse(&url).map_err(|e| format!("DYNPORT_URL: {e}"))?;
            return Ok(Locate::Url(url, Source::Env));
        }
        if let Some(dir) = non_empty(lookup("DYNPORT_STATE_DIR")) {
            return Ok(Locate::StateDir(PathBuf::from(dir)));
        }
        let local = Path::new(LOCAL_STATE_DIR);
        let dir = match local.symlink_metadata() {
            Ok(_) => local,
            Err(_) => Path::new(HOST_STATE_DIR),
        };
        Ok(Locate::StateDir(dir.to_path_buf()))
    }

    /// `--token`, `--token-file`, `DYNPORT_TOKEN`, `DYNPORT_TOKEN_FILE`, in that order.
    fn token(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err("--token and --token-file: give one of them, not both".to_string());
        }
        if self.token.is_some() {
            return Ok(self.token.clone());
        }
        if let Some(path) = &self.token_file {
            return read_token("--token-file", path).map(Some);
        }
        if let Some(t) = non_empty(lookup("DYNPORT_TOKEN")) {
            return token("DYNPORT_TOKEN", t).map(Some);
        }
        match non_empty(lookup("DYNPORT_TOKEN_FILE")) {
            Some(path) => read_token("DYNPORT_TOKEN_FILE", &PathBuf::from(path)).map(Some),
            None => Ok(None),
        }
    }

    fn command(&mut self, command: &str) -> Result<Command, String> {
        let positional = std::mem::take(&mut self.positional);
        let single = |what: &str| -> Result<String, String> {
            match <[String; 1]>::try_from(positional.clone()) {
                Ok([one]) => Ok(one),
                Err(v) if v.is_empty() => Err(format!("missing {what}")),
                Err(v) => Err(format!("unexpected argument '{}'", v[1])),
            }
        };
        let none = || match positional.first() {
            Some(extra) => Err(format!("unexpected argument '{extra}'")),
            None => Ok(()),
        };
        let lease = std::mem::take(&mut self.lease);
        Ok(match command {
            "lease" => none().map(|()| Command::Lease(lease))?,
            "release" => Command::Release(ReleaseTarget::from_arg(&single("lease ID or PORT")?)),
            "renew" => Command::Renew {
                id: single("lease ID")?,
                ttl: lease.ttl,
            },
            "leases" => none().map(|()| Command::Leases)?,
            "status" => none().map(|()| Command::Status)?,
            "url" => match positional.len() {
                0 => Command::Url(None),
                _ => Command::Url(Some(single("NAME")?)),
            },
            "run" => Command::Run(self.run_options(lease)?),
            "who" => Command::Who(port("PORT", &single("PORT")?)?),
            "names" => none().map(|()| Command::Names)?,
            "port" => Command::Port(single("NAME")?),
            "alias" => self.alias(positional.clone())?,
            "watch" => none().map(|()| Command::Watch(self.events))?,
            other => return Err(format!("unknown command '{other}'")),
        })
    }

    /// `NAME PORT`, or `--remove NAME`.
    fn alias(&self, positional: Vec<String>) -> Result<Command, String> {
        let mut words = positional.into_iter();
        let name = words.next().ok_or("missing NAME")?;
        let port_arg = words.next();
        if let Some(extra) = words.next() {
            return Err(format!("unexpected argument '{extra}'"));
        }
        match (self.remove, port_arg) {
            (true, None) => Ok(Command::Unalias(name)),
            (true, Some(p)) => Err(format!("--remove: takes NAME alone, not the port '{p}'")),
            (false, Some(p)) => Ok(Command::Alias {
                name,
                port: port("PORT", &p)?,
            }),
            (false, None) => Err("missing PORT (or give --remove to remove NAME)".to_string()),
        }
    }

    fn run_options(&mut self, lease: LeaseOptions) -> Result<RunOptions, String> {
        let (program, args) = self
            .program
            .take()
            .ok_or("missing the command to run (dynport run [OPTIONS] -- CMD [ARGS...])")?;
        if self.bind.is_some() && !self.socket {
            return Err("--bind: only makes sense with --socket".to_string());
        }
        Ok(RunOptions {
            lease,
            socket: self.socket,
            bind: self.bind.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            program,
            args,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn text(what: &str, value: OsString) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("{what}: not valid UTF-8: {}", v.to_string_lossy()))
}

fn number<T: FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected a whole number, got '{value}'"))
}

/// As many ports as one lease may hold.
fn count(flag: &str, value: &str) -> Result<u32, String> {
    let n = number(flag, value)?;
    wire::within(flag, n, wire::COUNT)?;
    Ok(n)
}

/// Printable text, as the server takes for an owner.
/// `both`, `tcp` or `udp`.
fn protocol(flag: &str, value: &str) -> Result<Protocol, String> {
    match value {
        "both" => Ok(Protocol::Both),
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!(
            "{flag}: {value:?} is not a protocol; give both, tcp or udp"
        )),
    }
}

fn owner(flag: &str, value: String) -> Result<String, String> {
    wire::owner(flag, &value)?;
    Ok(value)
}

/// A name as given: the server judges it (and lowercases it); the client
/// only refuses what cannot be one at all.
fn lease_name(flag: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{flag}: give a name, or auto"));
    }
    Ok(value)
}

fn port(flag: &str, value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{flag}: expected a port number (1-65535), got '{value}'"
        )),
    }
}

/// Seconds, as a number (`600`) or a duration (`10m`, `1h 30m`), at most
/// the longest life a lease may have.
fn seconds(flag: &str, value: &str) -> Result<u64, String> {
    let secs = match value.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(value)
            .map(|d: Duration| d.as_secs())
            .map_err(|_| {
                format!("{flag}: expected seconds (600) or a duration (10m), got '{value}'")
            })?,
    };
    if secs == 0 {
        return Err(format!("{flag}: must be at least 1 second"));
    }
    if secs > wire::MAX_TTL_SECS {
        return Err(format!(
            "{flag}: must be at most {} seconds (a week), got {secs}",
            wire::MAX_TTL_SECS
        ));
    }
    Ok(secs)
}

fn address(flag: &str, value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected an IPv4 or IPv6 address, got '{value}'"))
}

/// A token goes into a header line, so it may not hold control characters.
fn token(what: &str, value: String) -> Result<String, String> {
    if value.is_empty() || value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "{what}: a token must be non-empty, without spaces or control characters"
        ));
    }
    Ok(value)
}

/// The token in a file, which must pass the server's rules for its own
/// token file: regular, not a link, its owner's (or root's) alone.
fn read_token(what: &str, path: &std::path::Path) -> Result<String, String> {
    let text = crate::config::read_token_file(path).map_err(|p| format!("{what}: {p}"))?;
    token(what, text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests;
