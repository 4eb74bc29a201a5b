//! The `--help` text of each client command.
#![forbid(unsafe_code)]

const FINDING: &str = "\
Finding the server:
  --url URL          its base URL, e.g. http://127.0.0.1:3456 [DYNPORT_URL]
  --state-dir DIR    read the server's address from DIR/dynamic_ports.json
                     (default: state when it is there, else
                     /var/lib/dynport) [DYNPORT_STATE_DIR]
  --server-uid UID   trust a state directory and server of uid UID too;
                     otherwise only root's and yours are trusted, and
                     nothing is sent to another's [DYNPORT_SERVER_UID]
  --token T          bearer token for changes; every user can read a
                     command line: prefer --token-file [DYNPORT_TOKEN]
  --token-file PATH  read the token from PATH, a regular file of yours (or
                     root's) that no one else may read [DYNPORT_TOKEN_FILE]
  -h, --help         print this help

A flag beats its variable; --url and DYNPORT_URL beat the state directory.
Exit status: 0 done, 1 the server refused (its reason on stderr),
2 usage error, 3 no server could be reached.
";

// No `\` after the opening quote: it would eat the first line's indent.
const LEASE_OPTIONS: &str = "  --count N          how many ports (1-64; default 1)
  --port P           ask for this exact port
  --pool NAME        take the ports from this pool (default: default)
  --ttl S            life of the lease, in seconds or like 10m
                     (default: the server's --lease-ttl-secs)
  --owner TEXT       who holds it, shown in `dynport leases`
  --protocol P       both (default), tcp or udp: the ports are free and
                     bindable in each protocol asked for
";

const LEASE: &str = "\
Usage: dynport lease [OPTIONS]

Leases ports from the server and prints them, one per line, so that
PORT=$(dynport lease) works.

Options:
";

// No `\` after the opening quote: it would eat the first line's indent.
const LEASE_TAIL: &str = "  --pid PID          end the lease when process PID exits
  --json             print the server's whole answer as JSON
";

const RELEASE: &str = "\
Usage: dynport release [OPTIONS] ID|PORT

Ends a lease and prints the ports it held. A port number (1-65535) names
the live lease that holds that port; anything else is a lease id.

Options:
  --json             print the server's whole answer as JSON
";

const RENEW: &str = "\
Usage: dynport renew [OPTIONS] ID

Extends the lease ID and prints its new expiry time.

Options:
  --ttl S            new life from now, in seconds or like 10m
                     (default: the server's --lease-ttl-secs)
  --json             print the server's whole answer as JSON
";

const LEASES: &str = "\
Usage: dynport leases [OPTIONS]

Lists the live leases as a table.

Options:
  --json             print the server's answer as JSON
";

const STATUS: &str = "\
Usage: dynport status [OPTIONS]

Shows the server's overview: version, port, range, port counts, last scan.

Options:
  --json             print the server's answer as JSON
";

const URL: &str = "\
Usage: dynport url [OPTIONS]

Prints the running server's base URL after checking that it answers
/healthz (exit 3 when it does not).
";

const RUN: &str = "\
Usage: dynport run [OPTIONS] [--] CMD [ARGS...]

Leases a port, runs CMD with PORT set to it (and PORTS, comma-separated,
when --count is above 1), forwards SIGINT, SIGTERM and SIGHUP to CMD,
releases the lease when CMD exits and exits with CMD's status (128+N when
signal N killed it). The lease belongs to this process: if it dies, the
server ends the lease, and CMD gets SIGTERM. Keep CMD in the foreground:
a CMD that daemonizes ends the lease.

Options:
";

// No `\` after the opening quote: it would eat the first line's indent.
const RUN_TAIL: &str = "  --socket           bind the ports here and pass the listening sockets to
                     CMD the systemd way: fd 3 onwards, LISTEN_FDS, LISTEN_PID
  --bind ADDR        address to bind with --socket (default: 127.0.0.1)
";

const WHO: &str = "\
Usage: dynport who [OPTIONS] PORT

Shows what holds PORT, one row per TCP listener and bound UDP socket, IPv4
and IPv6, with the user that owns it and the process that holds it, as
`ss -ltnup 'sport = :PORT'` or `lsof -i :PORT` show it. PID and COMMAND are `-`
for a process that is not the caller's own (uid 0 and the server's own uid
see every one) or that the server may not look into (another user's, unless
the server runs as root). The server looks for at most 100 ms; past that,
a line under the table says the list may be incomplete. USER is looked up
in this host's /etc/passwd when the server runs on this host. PORT must lie
in the server's range.

Options:
  --json             print the server's answer as JSON
";

/// The help text of `command`.
pub fn of(command: &str) -> String {
    let (head, options) = match command {
        "lease" => (LEASE, format!("{LEASE_OPTIONS}{LEASE_TAIL}")),
        "release" => (RELEASE, String::new()),
        "renew" => (RENEW, String::new()),
        "leases" => (LEASES, String::new()),
        "status" => (STATUS, String::new()),
        "url" => (URL, String::new()),
        "who" => (WHO, String::new()),
        _ => (RUN, format!("{LEASE_OPTIONS}{RUN_TAIL}")),
    };
    format!("{head}{options}\n{FINDING}")
}

#[cfg(test)]
mod tests {
    use crate::client::args::COMMANDS;

    #[test]
    fn every_option_line_is_indented() {
        for command in COMMANDS {
            for line in super::of(command).lines() {
                let indented = !line.starts_with('-');
                assert!(
                    indented,
                    "dynport {command} --help: {line:?} is not indented"
                );
            }
        }
    }
}
