//! Every flag of dynport, as data: its name, variable, default, help,
//! whether it may be repeated and what its value is. This module holds the
//! type and the server's table; [`super::client_flags`] holds the client's.
//! The parsers accept exactly these flags, `--help` shows them, and
//! dynport(1) and the shell completions are made from them (`make
//! dist-files`), so none of the four can name a flag the others lack.

/// One flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The long flag without its dashes: `host` for `--host`.
    pub name: &'static str,
    /// The short spelling without its dash: `h` for `-h`.
    pub short: Option<char>,
    /// The environment variable that stands for it.
    pub var: Option<&'static str>,
    /// What applies when neither the flag nor its variable is given, as
    /// people read it.
    pub default: Option<&'static str>,
    /// What the flag does, broken into lines as `--help` shows them.
    pub help: &'static str,
    /// Whether each use adds a value (`--pool`) instead of the last one
    /// winning.
    pub repeatable: bool,
    pub value: Value,
}

/// What a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Nothing: `--flag` alone means `1`; for a server flag, `--flag=0`
    /// turns it off (over its variable).
    Switch,
    /// Text with no list of its own (an address, a number, a name), under
    /// this placeholder: `ADDR`.
    Text(&'static str),
    /// A directory.
    Dir(&'static str),
    /// A file.
    File(&'static str),
    /// One of these words.
    Choice(&'static str, &'static [&'static str]),
}

impl Value {
    /// What `--help` writes after the flag: `ADDR`; `None` for a switch.
    pub const fn placeholder(&self) -> Option<&'static str> {
        match *self {
            Value::Switch => None,
            Value::Text(p) | Value::Dir(p) | Value::File(p) | Value::Choice(p, _) => Some(p),
        }
    }
}

impl Flag {
    /// `--host ADDR`, `-h, --help`, `--json`.
    pub fn term(&self) -> String {
        let short = self.short.map(|s| format!("-{s}, ")).unwrap_or_default();
        let arg = self.value.placeholder().map(|p| format!(" {p}"));
        format!("{short}--{}{}", self.name, arg.unwrap_or_default())
    }

    /// The help as one line, for a man page or a completion menu.
    pub fn text(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `--help` then `-h`.
    pub fn spellings(&self) -> Vec<String> {
        let long = format!("--{}", self.name);
        std::iter::once(long)
            .chain(self.short.map(|s| format!("-{s}")))
            .collect()
    }
}

/// Flags under one title in the server's `--help`: `Flags`, `Lease flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    pub title: &'static str,
    pub flags: &'static [Flag],
}

/// The fields most flags share, to fill in with `..FLAG`: the server's
/// table and the client's.
pub(super) const FLAG: Flag = Flag {
    name: "",
    short: None,
    var: None,
    default: None,
    help: "",
    repeatable: false,
    value: Value::Switch,
};

/// `--help`, `-h`: of the server and of every client command.
pub const HELP: Flag = Flag {
    name: "help",
    short: Some('h'),
    help: "print this help",
    ..FLAG
};

/// `--version`, `-V`: of the server.
pub const VERSION: Flag = Flag {
    name: "version",
    short: Some('V'),
    help: "print the version",
    ..FLAG
};

pub const HOST: Flag = Flag {
    name: "host",
    var: Some("HOST"),
    default: Some("127.0.0.1"),
    value: Value::Text("ADDR"),
    help: "\
Address to listen on, IPv4 or IPv6 ([::1] works too). Any address but
loopback (127.0.0.0/8, ::1) needs --token or --token-file, of at
least 16 characters.",
    ..FLAG
};

pub const RANGE: Flag = Flag {
    name: "range",
    var: Some("DYNPORT_RANGE"),
    default: Some("3000-9000"),
    value: Value::Text("A-B"),
    help: "The managed range, both ends included, ports 1 to 65535.",
    ..FLAG
};

pub const STATE_DIR: Flag = Flag {
    name: "state-dir",
    var: Some("DYNPORT_STATE_DIR"),
    default: Some("state"),
    value: Value::Dir("DIR"),
    help: "Holds dynamic_ports.json and the lock.",
    ..FLAG
};

pub const REFRESH_SECS: Flag = Flag {
    name: "refresh-secs",
    var: Some("DYNPORT_REFRESH_SECS"),
    default: Some("60"),
    value: Value::Text("N"),
    help: "Seconds between background rescans, 1 to 86400.",
    ..FLAG
};

pub const WORKERS: Flag = Flag {
    name: "workers",
    var: Some("DYNPORT_WORKERS"),
    default: Some("4"),
    value: Value::Text("N"),
    help: "HTTP worker threads, 1 to 256.",
    ..FLAG
};

pub const FALLBACK_PORT: Flag = Flag {
    name: "fallback-port",
    var: Some("DYNPORT_FALLBACK_PORT"),
    default: Some("3000"),
    value: Value::Text("N"),
    help: "Tried only when no port of the range can be bound.",
    ..FLAG
};

pub const TOKEN: Flag = Flag {
    name: "token",
    var: Some("DYNPORT_TOKEN"),
    default: Some("none"),
    value: Value::Text("T"),
    help: "\
Bearer token that mutating endpoints require: no whitespace or
control characters; 16 characters at least off loopback. More than
20 wrong tokens from one address within a minute get it 429 for the
rest of that minute.",
    ..FLAG
};

pub const TOKEN_FILE: Flag = Flag {
    name: "token-file",
    var: Some("DYNPORT_TOKEN_FILE"),
    default: Some("none"),
    value: Value::File("PATH"),
    help: "\
Read the token from a file (so it does not show in ps), trailing
newlines dropped. The file must be a regular file, not a link, owned
by you or root, and not open to group or others (chmod 600). Not
together with --token; either flag on the command line overrides
both variables.",
    ..FLAG
};

pub const ALLOW_HOST: Flag = Flag {
    name: "allow-host",
    var: Some("DYNPORT_ALLOW_HOSTS"),
    default: Some("none"),
    value: Value::Text("NAME"),
    repeatable: true,
    help: "\
A name requests may give in their Host header besides IP addresses
and localhost (any other is refused with 421, against DNS
rebinding); repeatable, or comma-separated (a.example,b.example).",
    ..FLAG
};

/// The levels `--log-level` takes, as [`log::LevelFilter`] spells them.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

pub const LOG_LEVEL: Flag = Flag {
    name: "log-level",
    var: Some("DYNPORT_LOG"),
    default: Some("info"),
    value: Value::Choice("L", LOG_LEVELS),
    help: "error, warn, info, debug or trace.",
    ..FLAG
};

pub const UNIX_SOCKET: Flag = Flag {
    name: "unix-socket",
    var: Some("DYNPORT_UNIX_SOCKET"),
    default: Some("STATE_DIR/dynport.sock"),
    value: Value::File("PATH"),
    help: "\
The API on a Unix socket too (mode 0666), where the kernel tells
who connects; none to serve TCP only.",
    ..FLAG
};

pub const MAX_PORTS_PER_UID: Flag = Flag {
    name: "max-ports-per-uid",
    var: Some("DYNPORT_MAX_PORTS_PER_UID"),
    default: Some("1024"),
    value: Value::Text("N"),
    help: "\
Live leased ports one user (or all remote callers together) may
hold, 1 to 65535, or none. Root and dynport's own user are not
counted.",
    ..FLAG
};

pub const MAX_CONNECTIONS_PER_UID: Flag = Flag {
    name: "max-connections-per-uid",
    var: Some("DYNPORT_MAX_CONNECTIONS_PER_UID"),
    default: Some("256"),
    value: Value::Text("N"),
    help: "\
Open HTTP connections one user may hold, TCP and Unix socket
together, 1 to 1024; remote callers count as one user, and so do
callers of this host that could not be identified; root and
dynport's own user are not limited. Over it a new connection gets
503 with Retry-After. Never more than a quarter of the connections
the server takes in all.",
    ..FLAG
};

pub const RESERVE_KERNEL: Flag = Flag {
    name: "reserve-kernel",
    var: Some("DYNPORT_RESERVE_KERNEL"),
    default: Some("off"),
    value: Value::Switch,
    help: "\
Keep every leased port, and the server's own, that lies in the
kernel's ephemeral range (ip_local_port_range) in
/proc/sys/net/ipv4/ip_local_reserved_ports, so no outgoing
connection takes it. Needs root. The variable takes 1, 0, true or
false; --reserve-kernel=0 turns it off.",
    ..FLAG
};

pub const POOL: Flag = Flag {
    name: "pool",
    var: Some("DYNPORT_POOLS"),
    default: Some("none"),
    value: Value::Text("NAME=A-B"),
    repeatable: true,
    help: "\
A named pool inside the range; repeatable, or comma-separated
(web=3000-3999,db=5000-5099). Names use a-z, 0-9, _ and -. Pools may
not overlap. The pool default always exists and is the whole range.",
    ..FLAG
};

pub const EXCLUDE: Flag = Flag {
    name: "exclude",
    var: Some("DYNPORT_EXCLUDE"),
    default: Some("browser-refused ports"),
    value: Value::Text("LIST"),
    help: "\
Ports never handed out nor chosen by the server: comma-separated
ports and ranges inside the range (3659,5060-5061), or none. The
default is the ports of the range that browsers refuse to open:
3659, 4045, 5060, 5061, 6000, 6566, 6665-6669, 6697, 10080.",
    ..FLAG
};

pub const LEASE_TTL_SECS: Flag = Flag {
    name: "lease-ttl-secs",
    var: Some("DYNPORT_LEASE_TTL_SECS"),
    default: Some("300"),
    value: Value::Text("N"),
    help: "A lease's life when the request names none, 1 to 604800.",
    ..FLAG
};

pub const PORTSERVER_SOCKET: Flag = Flag {
    name: "portserver-socket",
    var: Some("DYNPORT_PORTSERVER_SOCKET"),
    default: Some("none"),
    value: Value::Text("ADDR"),
    help: "\
Speak portpicker's portserver protocol on this Unix socket: a path
(mode 0666), or @NAME in Linux's abstract namespace; none for off.
Python's portpicker asks it when PORTSERVER_ADDRESS is set. Each port
it hands out is a lease tied to the asking process, for a week at most.",
    ..FLAG
};

pub const PORTSERVER_POOL: Flag = Flag {
    name: "portserver-pool",
    var: Some("DYNPORT_PORTSERVER_POOL"),
    default: Some("default"),
    value: Value::Text("NAME"),
    help: "The pool the portserver's ports come from.",
    ..FLAG
};

pub const NAME_RETENTION_DAYS: Flag = Flag {
    name: "name-retention-days",
    var: Some("DYNPORT_NAME_RETENTION_DAYS"),
    default: Some("7"),
    value: Value::Text("N"),
    help: "\
Days a name stays its owner's after its last lease ended (or its
alias was removed), 0 to 3650; 0 forgets it at once. Meanwhile a
lease for it gets its last port when that port is free.",
    ..FLAG
};

pub const MAX_NAMES_PER_UID: Flag = Flag {
    name: "max-names-per-uid",
    var: Some("DYNPORT_MAX_NAMES_PER_UID"),
    default: Some("64"),
    value: Value::Text("N"),
    help: "\
Names one user (or all remote callers together) may hold, live,
retained and aliases together, 1 to 65535. Root and dynport's own
user are not counted.",
    ..FLAG
};

pub const ROUTES_DOMAIN: Flag = Flag {
    name: "routes-domain",
    var: Some("DYNPORT_ROUTES_DOMAINS"),
    default: Some("localhost"),
    value: Value::Text("D"),
    repeatable: true,
    help: "\
Requests whose Host is NAME.D go to the live lease or alias named
NAME; repeatable, or comma-separated. Given, it replaces localhost;
the first one is in the URLs dynport shows.",
    ..FLAG
};

pub const ROUTES_PORT: Flag = Flag {
    name: "routes-port",
    var: Some("DYNPORT_ROUTES_PORT"),
    default: Some("none"),
    value: Value::Text("PORT"),
    help: "\
A listener that only routes names, outside the range and not the
--fallback-port (80 for http://web.localhost/), so URLs do not move
with the API's port; none for no such listener.",
    ..FLAG
};

/// The flags of `dynport serve`, by group, in the order `--help` shows them.
pub const SERVE: &[Group] = &[
    Group {
        title: "Flags",
        flags: &[
            HOST,
            RANGE,
            STATE_DIR,
            REFRESH_SECS,
            WORKERS,
            FALLBACK_PORT,
            TOKEN,
            TOKEN_FILE,
            ALLOW_HOST,
            LOG_LEVEL,
            UNIX_SOCKET,
            MAX_PORTS_PER_UID,
            MAX_CONNECTIONS_PER_UID,
            RESERVE_KERNEL,
        ],
    },
    Group {
        title: "Lease flags",
        flags: &[POOL, EXCLUDE, LEASE_TTL_SECS],
    },
    Group {
        title: "Name flags",
        flags: &[
            NAME_RETENTION_DAYS,
            MAX_NAMES_PER_UID,
            ROUTES_DOMAIN,
            ROUTES_PORT,
        ],
    },
    Group {
        title: "Portserver flags",
        flags: &[PORTSERVER_SOCKET, PORTSERVER_POOL],
    },
];

/// Every flag of `dynport serve` that sets something, in `--help` order.
pub fn serve() -> impl Iterator<Item = &'static Flag> {
    SERVE.iter().flat_map(|g| g.flags)
}

/// `term` and two spaces at least, padded to `width`: the first column of
/// a list in `--help`.
pub fn column(term: &str, width: usize) -> String {
    let width = width.max(term.chars().count() + 2);
    format!("{term:<width$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_and_variables_are_unique_among_the_servers_flags() {
        let mut names = BTreeSet::from(["help", "version"]);
        let mut vars = BTreeSet::new();
        for flag in serve() {
            assert!(names.insert(flag.name), "--{} twice", flag.name);
            let var = flag.var.expect("every server flag has a variable");
            assert!(vars.insert(var), "{var} twice");
            assert!(flag.default.is_some(), "--{} has no default", flag.name);
        }
    }

    #[test]
    fn log_levels_are_the_levels_log_knows() {
        let levels = log::LevelFilter::iter().filter(|l| *l != log::LevelFilter::Off);
        let levels: Vec<String> = levels.map(|l| l.as_str().to_lowercase()).collect();
        assert_eq!(levels, LOG_LEVELS);
    }

    #[test]
    fn terms_show_the_placeholder_and_the_short_spelling() {
        assert_eq!(HOST.term(), "--host ADDR");
        assert_eq!(RESERVE_KERNEL.term(), "--reserve-kernel");
        assert_eq!(HELP.term(), "-h, --help");
        assert_eq!(HELP.spellings(), ["--help", "-h"]);
        assert_eq!(
            HOST.text(),
            "Address to listen on, IPv4 or IPv6 ([::1] works too). Any address but \
             loopback (127.0.0.0/8, ::1) needs --token or --token-file, of at least \
             16 characters."
        );
    }

    #[test]
    fn only_pool_allow_host_and_routes_domain_are_repeatable() {
        let repeatable: Vec<&str> = serve().filter(|f| f.repeatable).map(|f| f.name).collect();
        assert_eq!(repeatable, ["allow-host", "pool", "routes-domain"]);
    }

    #[test]
    fn columns_keep_two_spaces_at_least() {
        assert_eq!(column("--host ADDR", 14), "--host ADDR   ");
        assert_eq!(column("--host ADDR", 4), "--host ADDR  ");
    }
}
