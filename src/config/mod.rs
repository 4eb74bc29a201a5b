//! Configuration: flags and environment into one validated [`Settings`].
//!
//! Two steps, as ripgrep does: `raw` collects what was given, as text tagged
//! with the flag or variable it came from; `serve` turns that into typed
//! [`Settings`], applying every default and naming the flag or variable at
//! fault when a value is wrong. A new setting is a `raw::Key` and a line in
//! `serve`; a new command is a word in [`parse`] with its own list of keys.

mod hosts;
mod leases;
pub(crate) mod portserver;
mod raw;
mod serve;
mod token;
pub(crate) mod trust;

pub use leases::{BROWSER_REFUSED, DEFAULT_POOL};
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

/// What `dynport --help` prints.
pub const HELP: &str = "\
dynport: the port manager of a host. It picks its own port from a range,
tracks which ports of the range are in use, keeps that in a JSON state file
and serves it over HTTP.

Usage:
  dynport [serve] [FLAGS]     run the server
  dynport help | --help | -h  print this help
  dynport --version | -V      print the version

Client commands (each takes --help; their options come after the command):
  dynport lease               lease ports: PORT=$(dynport lease)
  dynport release ID|PORT     end a lease
  dynport renew ID            give a lease a new life
  dynport leases              list the live leases
  dynport status              the server's overview
  dynport url                 the running server's base URL
  dynport run -- CMD [ARGS]   run CMD with a leased port in $PORT
  dynport who PORT            the sockets and processes holding PORT

Each flag has an environment variable. A flag beats its variable, a variable
beats the default. A flag given twice counts once, the last time (but
--pool adds up). Both --flag VALUE and --flag=VALUE work.

Flags:                        Variable                Default
  --host ADDR                 HOST                    127.0.0.1
      Address to listen on, IPv4 or IPv6 ([::1] works too). Any address but
      loopback (127.0.0.0/8, ::1) needs --token or --token-file, of at
      least 16 characters.
  --range A-B                 DYNPORT_RANGE           3000-9000
      The managed range, both ends included, ports 1 to 65535.
  --state-dir DIR             DYNPORT_STATE_DIR       state
      Holds dynamic_ports.json and the lock.
  --refresh-secs N            DYNPORT_REFRESH_SECS    60
      Seconds between background rescans, 1 to 86400.
  --workers N                 DYNPORT_WORKERS         4
      HTTP worker threads, 1 to 256.
  --fallback-port N           DYNPORT_FALLBACK_PORT   3000
      Tried only when no port of the range can be bound.
  --token T                   DYNPORT_TOKEN           none
      Bearer token that mutating endpoints require: no whitespace or
      control characters; 16 characters at least off loopback. More than
      20 wrong tokens from one address within a minute get it 429 for the
      rest of that minute.
  --token-file PATH           DYNPORT_TOKEN_FILE      none
      Read the token from a file (so it does not show in ps), trailing
      newlines dropped. The file must be a regular file, not a link, owned
      by you or root, and not open to group or others (chmod 600). Not
      together with --token; either flag on the command line overrides
      both variables.
  --allow-host NAME           DYNPORT_ALLOW_HOSTS     none
      A name requests may give in their Host header besides IP addresses
      and localhost (any other is refused with 421, against DNS
      rebinding); repeatable, or comma-separated (a.example,b.example).
  --log-level L               DYNPORT_LOG             info
      error, warn, info, debug or trace.
  --unix-socket PATH          DYNPORT_UNIX_SOCKET     STATE_DIR/dynport.sock
      The API on a Unix socket too (mode 0666), where the kernel tells
      who connects; none to serve TCP only.
  --max-ports-per-uid N       DYNPORT_MAX_PORTS_PER_UID  1024
      Live leased ports one user (or all remote callers together) may
      hold, 1 to 65535, or none. Root and dynport's own user are not
      counted.
  --max-connections-per-uid N  DYNPORT_MAX_CONNECTIONS_PER_UID  256
      Open HTTP connections one user may hold, TCP and Unix socket
      together, 1 to 1024; remote callers count as one user, and so do
      callers of this host that could not be identified; root and
      dynport's own user are not limited. Over it a new connection gets
      503 with Retry-After. Never more than a quarter of the connections
      the server takes in all.
  --reserve-kernel            DYNPORT_RESERVE_KERNEL  off
      Keep every leased port, and the server's own, that lies in the
      kernel's ephemeral range (ip_local_port_range) in
      /proc/sys/net/ipv4/ip_local_reserved_ports, so no outgoing
      connection takes it. Needs root. The variable takes 1, 0, true or
      false; --reserve-kernel=0 turns it off.

Lease flags:                  Variable                Default
  --pool NAME=A-B             DYNPORT_POOLS           none
      A named pool inside the range; repeatable, or comma-separated
      (web=3000-3999,db=5000-5099). Names use a-z, 0-9, _ and -. Pools may
      not overlap. The pool default always exists and is the whole range.
  --exclude LIST              DYNPORT_EXCLUDE         browser-refused ports
      Ports never handed out nor chosen by the server: comma-separated
      ports and ranges inside the range (3659,5060-5061), or none. The
      default is the ports of the range that browsers refuse to open:
      3659, 4045, 5060, 5061, 6000, 6566, 6665-6669, 6697, 10080.
  --lease-ttl-secs N          DYNPORT_LEASE_TTL_SECS  300
      A lease's life when the request names none, 1 to 604800.

Portserver flags:             Variable                Default
  --portserver-socket ADDR    DYNPORT_PORTSERVER_SOCKET  none
      Speak portpicker's portserver protocol on this Unix socket: a path
      (mode 0666), or @NAME in Linux's abstract namespace; none for off.
      Python's portpicker asks it when PORTSERVER_ADDRESS is set. Each port
      it hands out is a lease tied to the asking process, for a week at most.
  --portserver-pool NAME      DYNPORT_PORTSERVER_POOL    default
      The pool the portserver's ports come from.

Other variables:
  PORT      ignored, with a warning: the port is chosen from the range
  RELOAD    accepted for compatibility, with a warning: it has no effect

Exit status:
  0  clean shutdown after SIGINT or SIGTERM
  1  any other failure
  2  usage or configuration error; the message names the flag or variable
";

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
    match raw::collect(args, raw::SERVE_KEYS)? {
        raw::Parsed::Help => Ok(Command::Help),
        raw::Parsed::Version => Ok(Command::Version),
        raw::Parsed::Flags(flags) => {
            serve::settings(&raw::Raw::new(flags, lookup)).map(|s| Command::Serve(Box::new(s)))
        }
    }
}

#[cfg(test)]
mod tests;
