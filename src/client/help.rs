//! The `--help` text of each client command: its options from the table in
//! [`crate::config::client_flags`], its usage line and what it does from
//! [`PAGES`].
#![forbid(unsafe_code)]

use crate::config::client_flags::{self, FINDING};
use crate::config::flags::{self, Flag};
use std::fmt::Write;

/// What a client command's help says besides its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub name: &'static str,
    /// What follows `Usage: `.
    pub usage: &'static str,
    /// Paragraphs, their lines as `--help` breaks them.
    pub about: &'static [&'static str],
}

/// Every client command's page, in [`super::args::COMMANDS`] order.
pub const PAGES: &[Page] = &[
    Page {
        name: "lease",
        usage: "dynport lease [OPTIONS]",
        about: &["\
Leases ports from the server and prints them, one per line, so that
PORT=$(dynport lease) works. With --name, the first port gets a name too:
a URL that reaches it (dynport url NAME), and the same port again the next
time while that port is free."],
    },
    Page {
        name: "release",
        usage: "dynport release [OPTIONS] ID|PORT",
        about: &["\
Ends a lease and prints the ports it held. A port number (1-65535) names
the live lease that holds that port; anything else is a lease id."],
    },
    Page {
        name: "renew",
        usage: "dynport renew [OPTIONS] ID",
        about: &["Extends the lease ID and prints its new expiry time."],
    },
    Page {
        name: "leases",
        usage: "dynport leases [OPTIONS]",
        about: &["Lists the live leases as a table."],
    },
    Page {
        name: "status",
        usage: "dynport status [OPTIONS]",
        about: &["Shows the server's overview: version, port, range, port counts, last scan."],
    },
    Page {
        name: "url",
        usage: "dynport url [OPTIONS] [NAME]",
        about: &["\
Prints the running server's base URL after checking that it answers
/healthz (exit 3 when it does not). Given NAME, prints the URL that
reaches the port named NAME instead (exit 1 when there is no such name)."],
    },
    Page {
        name: "run",
        usage: "dynport run [OPTIONS] [--] CMD [ARGS...]",
        about: &["\
Leases a port, runs CMD with PORT set to it (and PORTS, comma-separated,
when --count is above 1), forwards SIGINT, SIGTERM and SIGHUP to CMD,
releases the lease when CMD exits and exits with CMD's status (128+N when
signal N killed it). With --name, CMD also gets DYNPORT_NAME, the name,
and DYNPORT_NAME_URL, the URL that reaches its port. The lease belongs to
this process: if it dies, the server ends the lease, and CMD gets SIGTERM.
Keep CMD in the foreground: a CMD that daemonizes ends the lease."],
    },
    Page {
        name: "who",
        usage: "dynport who [OPTIONS] PORT",
        about: &["\
Shows what holds PORT, one row per TCP listener and bound UDP socket, IPv4
and IPv6, with the user that owns it and the process that holds it, as
`ss -ltnup 'sport = :PORT'` or `lsof -i :PORT` show it. PID and COMMAND are `-`
for a process that is not the caller's own (uid 0 and the server's own uid
see every one) or that the server may not look into (another user's, unless
the server runs as root). The server looks for at most 100 ms; past that,
a line under the table says the list may be incomplete. USER is looked up
in this host's /etc/passwd when the server runs on this host. PORT must lie
in the server's range."],
    },
    Page {
        name: "names",
        usage: "dynport names [OPTIONS]",
        about: &["\
Lists the names, live and retained, as a table: the port each names, the
uid that owns it, the lease that holds it (alias for a port named with
dynport alias, - for a name whose lease ended), whether it is live (when
not, until when its owner keeps it) and its URL."],
    },
    Page {
        name: "port",
        usage: "dynport port [OPTIONS] NAME",
        about: &["\
Prints the port that NAME names, alone, so that psql -p \"$(dynport port db)\"
works. Exit 1 when NAME is not live (the message names its last port) or
when there is no such name."],
    },
    Page {
        name: "alias",
        usage: "dynport alias [OPTIONS] NAME PORT | --remove NAME",
        about: &["\
Names a port that dynport did not lease (a database in a container, any
port 1-65535) and prints the name's URL. An alias is owned and kept like a
leased name; a port leased to another user cannot be aliased. --remove
ends the alias NAME (it stays yours for the server's retention days), or
forgets a retained name of yours."],
    },
    Page {
        name: "watch",
        usage: "dynport watch [OPTIONS]",
        about: &["\
Prints the server's events as they come, one line each: leases granted,
renewed, released and expired, the server's port moving, ports of the
range changing state, names. It reconnects by itself when the stream ends,
resuming after the last event printed, and follows the server to its new
port. A line saying events were missed means the server no longer had
them: reload what you keep. Runs until SIGINT or SIGTERM (exit 0) or
until it printed --count events; exit 1 when the server refuses."],
    },
];

/// The title of the flags every command takes.
pub const FINDING_TITLE: &str = "Finding the server";

/// How the flags, their variables and the state directory rank.
pub const PRECEDENCE: &str =
    "A flag beats its variable; --url and DYNPORT_URL beat the state directory.";

/// The client commands' exit statuses, their lines as `--help` breaks them.
pub const EXIT_STATUS: &str = "\
0 done, 1 the server refused (its reason on stderr),
2 usage error, 3 no server could be reached.";

/// The page of `command`.
///
/// # Panics
/// When `command` is none of [`super::args::COMMANDS`].
pub fn page(command: &str) -> &'static Page {
    let page = PAGES.iter().find(|p| p.name == command);
    page.unwrap_or_else(|| panic!("no help page for dynport {command}"))
}

/// The help text of `command`.
pub fn of(command: &str) -> String {
    let page = page(command);
    let mut out = format!("Usage: {}\n", page.usage);
    for paragraph in page.about {
        let _ = writeln!(out, "\n{paragraph}");
    }
    let options = client_flags::options(command);
    if !options.is_empty() {
        list(&mut out, "Options", options);
    }
    list(&mut out, FINDING_TITLE, FINDING);
    let _ = writeln!(out, "\n{PRECEDENCE}\nExit status: {EXIT_STATUS}");
    out
}

/// A blank line, `Title:` and each flag, its help in a column, its
/// variable at the end in brackets.
fn list(out: &mut String, title: &str, options: &[Flag]) {
    let _ = writeln!(out, "\n{title}:");
    for flag in options {
        let mut lines = flag.help.lines();
        let first = lines.next().unwrap_or_default();
        let _ = write!(out, "  {}{first}", flags::column(&flag.term(), 19));
        for line in lines {
            let _ = write!(out, "\n{:21}{line}", "");
        }
        match flag.var {
            Some(var) => {
                let _ = writeln!(out, " [{var}]");
            }
            None => out.push('\n'),
        }
    }
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

    #[test]
    fn every_command_has_a_page_and_its_options() {
        let pages: Vec<&str> = super::PAGES.iter().map(|p| p.name).collect();
        assert_eq!(pages, COMMANDS);
        let options = crate::config::client_flags::OPTIONS.iter().map(|(c, _)| *c);
        assert!(options.eq(COMMANDS));
    }

    #[test]
    fn lease_help_is_the_usage_what_it_does_and_the_options() {
        let help = super::of("lease");
        assert!(
            help.starts_with(
                "Usage: dynport lease [OPTIONS]\n\nLeases ports from the server and prints \
                 them, one per line, so that\nPORT=$(dynport lease) works. With --name, the \
                 first port gets a name too:\na URL that reaches it (dynport url NAME), and \
                 the same port again the next\ntime while that port is free.\n\nOptions:\n  \
                 --count N          how many ports (1-64; default 1)\n"
            ),
            "{help}"
        );
        assert!(
            help.ends_with(
                "  -h, --help         print this help\n\nA flag beats its variable; --url and \
                 DYNPORT_URL beat the state directory.\nExit status: 0 done, 1 the server \
                 refused (its reason on stderr),\n2 usage error, 3 no server could be reached.\n"
            ),
            "{help}"
        );
    }
}
