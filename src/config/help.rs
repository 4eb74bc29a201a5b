//! `dynport --help`: the flags from the table in [`super::flags`], and the
//! rest of the page, kept here as data so that dynport(1) is made from the
//! same parts.

use super::flags::{self, Flag, Group};
use std::fmt::Write;

/// What dynport is, after `dynport: ` and before the first stop.
pub const NAME: &str = "the port manager of a host";

/// The rest of the first paragraph, its lines as `--help` breaks them.
pub const ABOUT: &str = "\
It picks its own port from a range,
tracks which ports of the range are in use, keeps that in a JSON state file
and serves it over HTTP.";

/// The title of the list of client commands.
pub const CLIENT_COMMANDS_TITLE: &str =
    "Client commands (each takes --help; their options come after the command)";

/// Each client command as the server's help lists it, with what it does.
pub const CLIENT_COMMANDS: &[(&str, &str)] = &[
    ("dynport lease", "lease ports: PORT=$(dynport lease)"),
    ("dynport release ID|PORT", "end a lease"),
    ("dynport renew ID", "give a lease a new life"),
    ("dynport leases", "list the live leases"),
    ("dynport status", "the server's overview"),
    (
        "dynport url [NAME]",
        "the running server's base URL, or NAME's",
    ),
    (
        "dynport run -- CMD [ARGS]",
        "run CMD with a leased port in $PORT",
    ),
    ("dynport who PORT", "the sockets and processes holding PORT"),
    ("dynport names", "list the names and their URLs"),
    (
        "dynport port NAME",
        "the port NAME names: psql -p \"$(dynport port db)\"",
    ),
    (
        "dynport alias NAME PORT",
        "name a port dynport did not lease",
    ),
    ("dynport watch", "print the server's events as they come"),
];

/// How flags, variables and defaults rank.
pub const PRECEDENCE: &str = "\
Each flag has an environment variable. A flag beats its variable, a variable
beats the default. A flag given twice counts once, the last time (but
--pool adds up). Both --flag VALUE and --flag=VALUE work.";

/// Variables that stand for no flag.
pub const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "PORT",
        "ignored, with a warning: the port is chosen from the range",
    ),
    (
        "RELOAD",
        "accepted for compatibility, with a warning: it has no effect",
    ),
];

/// The server's exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "clean shutdown after SIGINT or SIGTERM"),
    ("1", "any other failure"),
    (
        "2",
        "usage or configuration error; the message names the flag or variable",
    ),
];

/// The lines of `Usage:`, with what each does.
pub fn usage() -> Vec<(String, &'static str)> {
    let bare = |flag: &Flag| flag.spellings().join(" | ");
    vec![
        ("dynport [serve] [FLAGS]".to_string(), "run the server"),
        (
            format!("dynport help | {}", bare(&flags::HELP)),
            flags::HELP.help,
        ),
        (
            format!("dynport {}", bare(&flags::VERSION)),
            flags::VERSION.help,
        ),
    ]
}

/// What `dynport --help` prints.
pub fn page() -> String {
    let mut out = format!("dynport: {NAME}. {ABOUT}\n");
    let usage = usage();
    let usage = usage.iter().map(|(term, text)| (term.as_str(), *text));
    list(&mut out, "Usage", usage, 28);
    list(
        &mut out,
        CLIENT_COMMANDS_TITLE,
        CLIENT_COMMANDS.iter().copied(),
        28,
    );
    let _ = writeln!(out, "\n{PRECEDENCE}");
    flags::SERVE.iter().for_each(|g| group(&mut out, g));
    list(
        &mut out,
        "Other variables",
        OTHER_VARIABLES.iter().copied(),
        10,
    );
    list(&mut out, "Exit status", EXIT_STATUS.iter().copied(), 3);
    out
}

/// A blank line, `Title:`, and an item a line, its text at `width`.
fn list<'a>(
    out: &mut String,
    title: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
    width: usize,
) {
    let _ = writeln!(out, "\n{title}:");
    for (term, text) in items {
        let _ = writeln!(out, "  {}{text}", flags::column(term, width));
    }
}

/// A group of flags in three columns, each flag's help under it.
fn group(out: &mut String, group: &Group) {
    let title = format!("{}:", group.title);
    let _ = writeln!(
        out,
        "\n{}{}Default",
        flags::column(&title, 30),
        flags::column("Variable", 24)
    );
    for flag in group.flags {
        let var = flags::column(flag.var.unwrap_or_default(), 24);
        let term = flags::column(&flag.term(), 28);
        let _ = writeln!(out, "  {term}{var}{}", flag.default.unwrap_or_default());
        for line in flag.help.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
}
