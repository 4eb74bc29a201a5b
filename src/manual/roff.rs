//! dynport(1), in roff with the man(7) macros, from the help texts as
//! [`model`] reads them; only the sections `--help` has no room for (the
//! systemd variables, the files) are written here.
#![forbid(unsafe_code)]

use super::model::{self, Client, Flag, Group, Server, Shared};
use super::text::Item;
use crate::config::{self, trust::SOCKET_FILE};
use crate::state::{KERNEL_RECORD_FILE, LOCK_FILE, STATE_FILE};

/// Variables systemd sets that the server reads: not flags, so not in `--help`.
const SYSTEMD_VARIABLES: &[(&str, &str)] = &[
    (
        "NOTIFY_SOCKET",
        "Set by systemd for a Type=notify service. The server sends READY=1 there, \
         with a STATUS= line, once it listens and its state is written; STATUS= again \
         when its port changes; STOPPING=1 at shutdown.",
    ),
    (
        "WATCHDOG_USEC",
        "Set by systemd with WatchdogSec=. The server sends WATCHDOG=1 every half of \
         it, and only while its HTTP workers answer.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd when stderr goes to the journal. Log lines then carry the \
         <N> priority prefixes of sd-daemon(3) instead of timestamps.",
    ),
];

const SEE_ALSO: &str = "systemd.service(5), systemd.exec(5), sd_notify(3), ss(8)";

/// The whole man page.
pub fn page() -> String {
    let (server, clients, shared) = (model::server(), model::clients(), model::shared());
    let mut out = Roff(String::new());
    out.line(".\\\" dynport(1). Generated from dynport's --help texts by `make dist-files`;");
    out.line(".\\\" do not edit: tests/tests/dist/ fails when they differ.");
    let version = format!("\"dynport {}\"", config::VERSION);
    out.line(&format!(".TH DYNPORT 1 \"\" {version} \"User Commands\""));
    // Flags must not be hyphenated across lines, nor words spread apart.
    out.line(".nh");
    out.line(".ad l");
    let (name, about) = name_and_about(&server);
    out.section("NAME");
    out.line(&format!("dynport \\- {}", esc(name)));
    synopsis(&mut out, &server, &clients);
    out.section("DESCRIPTION");
    out.line(&format!("{} is {}.", bold("dynport"), esc(name)));
    out.text(about);
    server.about[1..].iter().for_each(|p| out.paragraph(p));
    commands(&mut out, &server);
    server_flags(&mut out, &server.groups);
    client_commands(&mut out, &clients, &shared);
    environment(&mut out, &server, &clients, &shared);
    exit_status(&mut out, &server, &shared);
    files(&mut out);
    out.section("SEE ALSO");
    out.text(SEE_ALSO);
    out.0
}

/// `dynport: the port manager of a host. It picks …` into its two parts.
fn name_and_about(server: &Server) -> (&str, &str) {
    let first = server.about.first().map(String::as_str).unwrap_or_default();
    let first = first
        .strip_prefix("dynport: ")
        .expect("--help starts with dynport: ");
    let (name, about) = first
        .split_once(". ")
        .expect("--help names dynport in a sentence");
    (name, about)
}

fn synopsis(out: &mut Roff, server: &Server, clients: &[Client]) {
    out.section("SYNOPSIS");
    out.line(".nf");
    server.usage.iter().for_each(|u| out.line(&usage(&u.term)));
    clients.iter().for_each(|c| out.line(&usage(&c.usage)));
    out.line(".fi");
}

fn commands(out: &mut Roff, server: &Server) {
    out.section("COMMANDS");
    for item in &server.usage {
        out.item(&usage(&item.term), &item.text);
    }
    out.paragraph(&format!("{}:", server.commands_title));
    for item in &server.commands {
        out.item(&usage(&item.term), &item.text);
    }
}

fn server_flags(out: &mut Roff, groups: &[Group]) {
    for (i, group) in groups.iter().enumerate() {
        match i {
            0 => out.section(&group.title.to_uppercase()),
            _ => out.subsection(&group.title),
        }
        group.flags.iter().for_each(|f| flag(out, f));
    }
}

fn client_commands(out: &mut Roff, clients: &[Client], shared: &Shared) {
    out.section("CLIENT COMMANDS");
    for client in clients {
        out.subsection(&format!("dynport {}", client.name));
        out.line(&usage(&client.usage));
        client.about.iter().for_each(|p| out.paragraph(p));
        client.options.iter().for_each(|f| flag(out, f));
    }
    out.subsection(&format!("{}, for every client command", shared.group.title));
    shared.group.flags.iter().for_each(|f| flag(out, f));
    let (_, notes) = exit_notes(shared);
    notes.iter().for_each(|p| out.paragraph(p));
}

fn flag(out: &mut Roff, flag: &Flag) {
    out.item(&usage(&term(flag)), &flag.text);
    let var = flag.var.as_ref().map(|v| format!("Variable: {}", bold(v)));
    let default = flag
        .default
        .as_ref()
        .map(|d| format!("default: {}", esc(d)));
    let note: Vec<String> = var.into_iter().chain(default).collect();
    if !note.is_empty() {
        out.line(".br");
        out.line(&format!("{}.", note.join("; ")));
    }
}

/// `-h, --help` or `--host ADDR`.
pub fn term(flag: &Flag) -> String {
    let short = flag.short.map(|s| format!("-{s}, ")).unwrap_or_default();
    let arg = flag
        .arg
        .as_ref()
        .map(|a| format!(" {a}"))
        .unwrap_or_default();
    format!("{short}--{}{arg}", flag.long)
}

fn environment(out: &mut Roff, server: &Server, clients: &[Client], shared: &Shared) {
    out.section("ENVIRONMENT");
    let server_flags: Vec<&Flag> = server.groups.iter().flat_map(|g| &g.flags).collect();
    let client_flags: Vec<&Flag> = (clients.iter().flat_map(|c| &c.options))
        .chain(&shared.group.flags)
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for flag in server_flags.iter().chain(&client_flags) {
        let Some(var) = flag.var.as_deref().filter(|v| !seen.contains(v)) else {
            continue;
        };
        seen.push(var);
        let of = |flags: &[&Flag]| flags.iter().any(|f| f.var.as_deref() == Some(var));
        let whose = match (of(&server_flags), of(&client_flags)) {
            (true, true) => ", of the server and of the client commands",
            (true, false) => ", of the server",
            _ => ", of the client commands",
        };
        let dashes = bold(&format!("--{}", flag.long));
        out.item_roff(&bold(var), &format!("Stands for {dashes}{}.", esc(whose)));
    }
    for Item { term, text, .. } in &server.variables {
        out.item_roff(&bold(term), &format!("{}.", esc(text)));
    }
    for (var, text) in SYSTEMD_VARIABLES {
        out.item_roff(&bold(var), &esc(text));
    }
}

fn exit_status(out: &mut Roff, server: &Server, shared: &Shared) {
    out.section("EXIT STATUS");
    out.line("The server:");
    for Item { term, text, .. } in &server.exit {
        out.item_roff(&bold(term), &esc(text));
    }
    let (statuses, _) = exit_notes(shared);
    for note in statuses {
        out.paragraph(&format!("Client commands: {note}"));
    }
}

/// The shared notes of the client help, cut into the exit statuses
/// (`Exit status: 0 done, …`) and the rest.
fn exit_notes(shared: &Shared) -> (Vec<String>, Vec<String>) {
    let (mut statuses, mut rest) = (Vec::new(), Vec::new());
    for note in &shared.notes {
        let (before, status) = match note.split_once("Exit status: ") {
            Some((before, status)) => (before.trim(), Some(status)),
            None => (note.as_str(), None),
        };
        rest.extend((!before.is_empty()).then(|| before.to_string()));
        statuses.extend(status.map(str::to_string));
    }
    (statuses, rest)
}

fn files(out: &mut Roff) {
    out.section("FILES");
    let state_dir = |file: &str| format!("{}/{}", italic("STATE_DIR"), esc(file));
    let entries = [
        (
            state_dir(STATE_FILE),
            "The state file: the server's address and port, the ports of the range, the leases. Replaced atomically after every change; every user may read it.",
        ),
        (
            state_dir(LOCK_FILE),
            "Locked by the running server (mode 0600, so no other user can lock it): a second server on the same directory exits 1 naming the pid that holds it.",
        ),
        (
            state_dir(SOCKET_FILE),
            "The API on a Unix socket, mode 0666, where the kernel tells who connects. The client commands use it when it is there.",
        ),
        (
            state_dir(KERNEL_RECORD_FILE),
            "With --reserve-kernel: dynport's entries in ip_local_reserved_ports, so that a server started after a crash takes them back.",
        ),
        (
            esc("/proc/sys/net/ipv4/ip_local_port_range"),
            "The kernel's ephemeral range, which the managed range should stay out of.",
        ),
        (
            esc("/proc/sys/net/ipv4/ip_local_reserved_ports"),
            "Where --reserve-kernel keeps leased ports out of the kernel's hands.",
        ),
        (
            esc("dynport.service"),
            "The systemd unit: PREFIX/lib/systemd/system/dynport.service after make install, /lib/systemd/system/dynport.service from the Debian package.",
        ),
    ];
    for (term, text) in entries {
        out.item_roff(&term, &esc(text));
    }
}

/// A usage line or a term: words that are typed as they are (`dynport`,
/// `lease`, `--count`) bold, placeholders (`N`, `CMD`) italic.
fn usage(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in line.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            word.push(c);
            continue;
        }
        out.push_str(&styled(&std::mem::take(&mut word)));
        out.push_str(&esc(&c.to_string()));
    }
    out.trim_end().to_string()
}

fn styled(word: &str) -> String {
    match word.chars().next() {
        Some(c) if c == '-' || c.is_ascii_lowercase() => bold(word),
        Some(c) if c.is_ascii_uppercase() => italic(word),
        _ => esc(word),
    }
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", esc(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", esc(text))
}

/// Text for a roff text line: a backslash is `\e`, and every `-` is a
/// minus (`\-`), so flags copied from the page work in a shell.
fn esc(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// The page being written, line by line.
struct Roff(String);

impl Roff {
    /// A line as it is: a request, or text already escaped.
    fn line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    /// Text to escape; a line starting with `.` or `'` would be a request.
    fn text(&mut self, text: &str) {
        let text = esc(text);
        if text.starts_with(['.', '\'']) {
            self.0.push_str("\\&");
        }
        self.line(&text);
    }

    fn paragraph(&mut self, text: &str) {
        self.line(".PP");
        self.text(text);
    }

    fn section(&mut self, title: &str) {
        self.line(&format!(".SH {title}"));
    }

    fn subsection(&mut self, title: &str) {
        self.line(&format!(".SS \"{title}\""));
    }

    /// A tagged paragraph: `term` in roff already, `text` to escape.
    fn item(&mut self, term: &str, text: &str) {
        self.item_roff(term, &esc(text));
    }

    fn item_roff(&mut self, term: &str, text: &str) {
        self.line(".TP");
        self.line(term);
        let guard = if text.starts_with(['.', '\'']) {
            "\\&"
        } else {
            ""
        };
        self.line(&format!("{guard}{text}"));
    }
}
