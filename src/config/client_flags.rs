//! The client commands' flags, as data (see [`super::flags`]): the options
//! of each command, and those every command takes to find the server. The
//! client's parser accepts exactly these; its `--help`, dynport(1) and the
//! completions show them.

use super::flags::{FLAG, Flag, HELP, Value};

pub const URL: Flag = Flag {
    name: "url",
    var: Some("DYNPORT_URL"),
    value: Value::Text("URL"),
    help: "its base URL, e.g. http://127.0.0.1:3456",
    ..FLAG
};

pub const STATE_DIR: Flag = Flag {
    name: "state-dir",
    var: Some("DYNPORT_STATE_DIR"),
    default: Some("state when it is there, else /var/lib/dynport"),
    value: Value::Dir("DIR"),
    help: "\
read the server's address from DIR/dynamic_ports.json
(default: state when it is there, else
/var/lib/dynport)",
    ..FLAG
};

pub const SERVER_UID: Flag = Flag {
    name: "server-uid",
    var: Some("DYNPORT_SERVER_UID"),
    value: Value::Text("UID"),
    help: "\
trust a state directory and server of uid UID too;
otherwise only root's and yours are trusted, and
nothing is sent to another's",
    ..FLAG
};

pub const TOKEN: Flag = Flag {
    name: "token",
    var: Some("DYNPORT_TOKEN"),
    value: Value::Text("T"),
    help: "\
bearer token for changes; every user can read a
command line: prefer --token-file",
    ..FLAG
};

pub const TOKEN_FILE: Flag = Flag {
    name: "token-file",
    var: Some("DYNPORT_TOKEN_FILE"),
    value: Value::File("PATH"),
    help: "\
read the token from PATH, a regular file of yours (or
root's) that no one else may read",
    ..FLAG
};

pub const COUNT: Flag = Flag {
    name: "count",
    default: Some("1"),
    value: Value::Text("N"),
    help: "how many ports (1-64; default 1)",
    ..FLAG
};

pub const PORT: Flag = Flag {
    name: "port",
    value: Value::Text("P"),
    help: "ask for this exact port",
    ..FLAG
};

pub const POOL: Flag = Flag {
    name: "pool",
    default: Some("default"),
    value: Value::Text("NAME"),
    help: "take the ports from this pool (default: default)",
    ..FLAG
};

/// Where a lease's life comes from when `--ttl` is not given.
const SERVERS_TTL: &str = "the server's --lease-ttl-secs";

pub const TTL: Flag = Flag {
    name: "ttl",
    default: Some(SERVERS_TTL),
    value: Value::Text("S"),
    help: "\
life of the lease, in seconds or like 10m
(default: the server's --lease-ttl-secs)",
    ..FLAG
};

/// `--ttl` of `dynport renew`.
pub const RENEW_TTL: Flag = Flag {
    help: "\
new life from now, in seconds or like 10m
(default: the server's --lease-ttl-secs)",
    ..TTL
};

pub const OWNER: Flag = Flag {
    name: "owner",
    value: Value::Text("TEXT"),
    help: "who holds it, shown in `dynport leases`",
    ..FLAG
};

/// The protocols a lease may ask for, as the API spells them.
pub const PROTOCOLS: &[&str] = &["both", "tcp", "udp"];

pub const PROTOCOL: Flag = Flag {
    name: "protocol",
    default: Some("both"),
    value: Value::Choice("P", PROTOCOLS),
    help: "\
both (default), tcp or udp: the ports are free and
bindable in each protocol asked for",
    ..FLAG
};

pub const NAME: Flag = Flag {
    name: "name",
    value: Value::Text("NAME"),
    help: "\
name the first port (a URL reaches it by that name);
auto: the git repository's or directory's name, a
linked worktree's branch first (fix-ui.shop)",
    ..FLAG
};

pub const REMOVE: Flag = Flag {
    name: "remove",
    help: "remove the alias NAME (no PORT)",
    ..FLAG
};

pub const PID: Flag = Flag {
    name: "pid",
    value: Value::Text("PID"),
    help: "end the lease when process PID exits",
    ..FLAG
};

/// `--json` of the commands that change something.
pub const JSON_WHOLE: Flag = Flag {
    name: "json",
    help: "print the server's whole answer as JSON",
    ..FLAG
};

/// `--json` of the commands that only read.
pub const JSON: Flag = Flag {
    help: "print the server's answer as JSON",
    ..JSON_WHOLE
};

/// `--json` of `dynport watch`.
pub const JSON_LINES: Flag = Flag {
    help: "print each event as one line of JSON",
    ..JSON_WHOLE
};

/// `--count` of `dynport watch`.
pub const EVENTS: Flag = Flag {
    name: "count",
    value: Value::Text("N"),
    help: "exit after N events (default: run until stopped)",
    ..FLAG
};

pub const SOCKET: Flag = Flag {
    name: "socket",
    help: "\
bind the ports here and pass the listening sockets to
CMD the systemd way: fd 3 onwards, LISTEN_FDS, LISTEN_PID",
    ..FLAG
};

pub const BIND: Flag = Flag {
    name: "bind",
    default: Some("127.0.0.1"),
    value: Value::Text("ADDR"),
    help: "address to bind with --socket (default: 127.0.0.1)",
    ..FLAG
};

/// The flags every client command takes: how to find the server, the token, `--help`.
pub const FINDING: &[Flag] = &[URL, STATE_DIR, SERVER_UID, TOKEN, TOKEN_FILE, HELP];

/// Each client command's own options, in the order `--help` shows them.
pub const OPTIONS: &[(&str, &[Flag])] = &[
    (
        "lease",
        &[
            COUNT, PORT, POOL, TTL, OWNER, NAME, PROTOCOL, PID, JSON_WHOLE,
        ],
    ),
    ("release", &[JSON_WHOLE]),
    ("renew", &[RENEW_TTL, JSON_WHOLE]),
    ("leases", &[JSON]),
    ("status", &[JSON]),
    ("url", &[]),
    (
        "run",
        &[COUNT, PORT, POOL, TTL, OWNER, NAME, PROTOCOL, SOCKET, BIND],
    ),
    ("who", &[JSON]),
    ("names", &[JSON]),
    ("port", &[]),
    ("alias", &[REMOVE, JSON_WHOLE]),
    ("watch", &[EVENTS, JSON_LINES]),
];

/// `command`'s own options; none for a word that is no client command.
pub fn options(command: &str) -> &'static [Flag] {
    let found = OPTIONS.iter().find(|(name, _)| *name == command);
    found.map_or(&[], |(_, flags)| flags)
}

/// The flag `name` of `command`, its own or one every command takes.
pub fn find(command: &str, name: &str) -> Option<&'static Flag> {
    let mut all = options(command).iter().chain(FINDING);
    all.find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_default_is_the_one_the_help_names() {
        let all = OPTIONS.iter().flat_map(|(_, f)| *f).chain(FINDING);
        for flag in all {
            if let Some(default) = flag.default {
                let default = default.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(flag.text().contains(&default), "--{}: {default}", flag.name);
            }
        }
    }

    #[test]
    fn options_are_found_by_command() {
        assert_eq!(find("renew", "ttl"), Some(&RENEW_TTL));
        assert_eq!(find("who", "url"), Some(&URL));
        assert_eq!(find("who", "help"), Some(&HELP));
        assert_eq!(find("url", "json"), None);
        assert_eq!(find("lease", "socket"), None);
        assert_eq!(find("watch", "count"), Some(&EVENTS));
        assert_eq!(options("serve"), &[]);
    }
}
