//! dynport(1), in roff with the man(7) macros, from the tables of flags
//! and the other parts of the `--help` texts; only the sections `--help`
//! has no room for (the systemd variables, the files) are written here.
#![forbid(unsafe_code)]

use super::one_line;
use crate::client::help::{self as client, PAGES, Page};
use crate::config::client_flags::{self, FINDING};
use crate::config::flags::{self, Flag};
use crate::config::{self, access::SOCKET_FILE, help};
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
    let mut out = Roff(String::new());
    out.line(".\\\" dynport(1). Generated from dynport's tables of flags by `make dist-files`;");
    out.line(".\\\" do not edit: tests/tests/dist/ fails when they differ.");
    let version = format!("\"dynport {}\"", config::VERSION);
    out.line(&format!(".TH DYNPORT 1 \"\" {version} \"User Commands\""));
    // Flags must not be hyphenated across lines, nor words spread apart.
    out.line(".nh");
    out.line(".ad l");
    out.section("NAME");
    out.line(&format!("dynport \\- {}", esc(help::NAME)));
    synopsis(&mut out);
    out.section("DESCRIPTION");
    out.line(&format!("{} is {}.", bold("dynport"), esc(help::NAME)));
    out.text(&one_line(help::ABOUT));
    out.paragraph(&one_line(help::PRECEDENCE));
    commands(&mut out);
    server_flags(&mut out);
    client_commands(&mut out);
    environment(&mut out);
    exit_status(&mut out);
    files(&mut out);
    out.section("SEE ALSO");
    out.text(SEE_ALSO);
    out.0
}

fn synopsis(out: &mut Roff) {
    out.section("SYNOPSIS");
    out.line(".nf");
    help::usage().iter().for_each(|(u, _)| out.line(&usage(u)));
    PAGES.iter().for_each(|p| out.line(&usage(p.usage)));
    out.line(".fi");
}

fn commands(out: &mut Roff) {
    out.section("COMMANDS");
    for (term, text) in help::usage() {
        out.item(&usage(&term), text);
    }
    out.paragraph(&format!("{}:", help::CLIENT_COMMANDS_TITLE));
    for (term, text) in help::CLIENT_COMMANDS {
        out.item(&usage(term), text);
    }
}

fn server_flags(out: &mut Roff) {
    for (i, group) in flags::SERVE.iter().enumerate() {
        match i {
            0 => out.section(&group.title.to_uppercase()),
            _ => out.subsection(group.title),
        }
        group.flags.iter().for_each(|f| flag(out, f, f.default));
    }
}

fn client_commands(out: &mut Roff) {
    out.section("CLIENT COMMANDS");
    for Page {
        name,
        usage: line,
        about,
    } in PAGES
    {
        out.subsection(&format!("dynport {name}"));
        out.line(&usage(line));
        about.iter().for_each(|p| out.paragraph(&one_line(p)));
        // A client flag's sentence names its default already, as in `--help`.
        let options = client_flags::options(name);
        options.iter().for_each(|f| flag(out, f, None));
    }
    let title = format!("{}, for every client command", client::FINDING_TITLE);
    out.subsection(&title);
    FINDING.iter().for_each(|f| flag(out, f, None));
    out.paragraph(client::PRECEDENCE);
}

fn flag(out: &mut Roff, flag: &Flag, default: Option<&str>) {
    out.item(&usage(&flag.term()), &flag.text());
    let var = flag.var.map(|v| format!("Variable: {}", bold(v)));
    let default = default.map(|d| format!("default: {}", esc(d)));
    let note: Vec<String> = var.into_iter().chain(default).collect();
    if !note.is_empty() {
        out.line(".br");
        out.line(&format!("{}.", note.join("; ")));
    }
}

fn environment(out: &mut Roff) {
    out.section("ENVIRONMENT");
    let server_flags: Vec<&Flag> = flags::serve().collect();
    let client_flags: Vec<&Flag> = (PAGES.iter())
        .flat_map(|p| client_flags::options(p.name))
        .chain(FINDING)
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for flag in server_flags.iter().chain(&client_flags) {
        let Some(var) = flag.var.filter(|v| !seen.contains(v)) else {
            continue;
        };
        seen.push(var);
        let of = |flags: &[&Flag]| flags.iter().any(|f| f.var == Some(var));
        let whose = match (of(&server_flags), of(&client_flags)) {
            (true, true) => ", of the server and of the client commands",
            (true, false) => ", of the server",
            _ => ", of the client commands",
        };
        let dashes = bold(&format!("--{}", flag.name));
        out.item_roff(&bold(var), &format!("Stands for {dashes}{}.", esc(whose)));
    }
    for (term, text) in help::OTHER_VARIABLES {
        out.item_roff(&bold(term), &format!("{}.", esc(text)));
    }
    for (var, text) in SYSTEMD_VARIABLES {
        out.item_roff(&bold(var), &esc(text));
    }
}

fn exit_status(out: &mut Roff) {
    out.section("EXIT STATUS");
    out.line("The server:");
    for (term, text) in help::EXIT_STATUS {
        out.item_roff(&bold(term), &esc(text));
    }
    let statuses = one_line(client::EXIT_STATUS);
    out.paragraph(&format!("Client commands: {statuses}"));
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
