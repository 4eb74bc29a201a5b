//! Shell completions for bash, zsh and fish: every command and every flag
//! of the tables of flags, each flag's value completed by its kind.
#![forbid(unsafe_code)]

mod bash;
mod fish;
mod zsh;

use crate::client::help::PAGES;
use crate::config::client_flags::{self, FINDING};
use crate::config::flags::{self, Flag};
use crate::config::help;

pub use bash::script as bash;
pub use fish::script as fish;
pub use zsh::script as zsh;

/// A word that may follow `dynport`, with its flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    /// A few words for the completion menu.
    pub summary: String,
    pub flags: Vec<Flag>,
}

/// `serve`, `help`, then the client commands, as `dynport --help` lists
/// them. `serve` comes first: a command line without a command is `serve`'s.
pub fn commands() -> Vec<Command> {
    let usage = help::usage();
    let command = |name: &str, text: &str, flags: Vec<Flag>| Command {
        name: name.to_string(),
        summary: summary(text),
        flags,
    };
    let mut serve: Vec<Flag> = flags::serve().copied().collect();
    serve.extend([flags::HELP, flags::VERSION]);
    let mut commands = vec![
        command("serve", usage[0].1, serve),
        command("help", usage[1].1, Vec::new()),
    ];
    for page in PAGES {
        let listed = help::CLIENT_COMMANDS
            .iter()
            .find(|(term, _)| term.split(' ').nth(1) == Some(page.name));
        let (_, text) = listed.unwrap_or_else(|| panic!("dynport --help lists no {}", page.name));
        let own = client_flags::options(page.name).iter();
        commands.push(command(
            page.name,
            text,
            own.chain(FINDING).copied().collect(),
        ));
    }
    commands
}

/// Every flag of every command that takes a value, once, with its value.
///
/// # Panics
/// When one flag takes different values in two commands: the scripts
/// complete a flag's value by its name alone.
pub fn values(commands: &[Command]) -> Vec<(&'static str, flags::Value)> {
    let mut values: Vec<(&str, flags::Value)> = Vec::new();
    for flag in commands.iter().flat_map(|c| &c.flags) {
        match values.iter().find(|(name, _)| *name == flag.name) {
            Some((_, seen)) => assert!(alike(seen, &flag.value), "--{} differs", flag.name),
            None if flag.value != flags::Value::Switch => values.push((flag.name, flag.value)),
            None => {}
        }
    }
    values
}

/// Whether two values complete alike: the same kind, the same words.
fn alike(a: &flags::Value, b: &flags::Value) -> bool {
    use flags::Value::Choice;
    match (a, b) {
        (Choice(_, a), Choice(_, b)) => a == b,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// The first words of a help text, without its asides in parentheses, up
/// to its first stop: `Address to listen on, IPv4 or IPv6 ([::1] works
/// too). Any…` gives `Address to listen on, IPv4 or IPv6`.
pub fn summary(text: &str) -> String {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let plain = plain
        .replace(" ,", ",")
        .replace(" .", ".")
        .replace(" ;", ";");
    let stops = [". ", "; ", ": ", ", e.g."];
    let end = stops.iter().filter_map(|s| plain.find(s)).min();
    let plain = &plain[..end.unwrap_or(plain.len())];
    plain.trim_end_matches(['.', ',']).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stop_at_the_first_stop() {
        assert_eq!(
            summary("Address to listen on, IPv4 or IPv6 ([::1] works too). Any address"),
            "Address to listen on, IPv4 or IPv6"
        );
        assert_eq!(
            summary("its base URL, e.g. http://127.0.0.1:3456"),
            "its base URL"
        );
        assert_eq!(summary("lease ports: PORT=$(dynport lease)"), "lease ports");
        assert_eq!(
            summary("both (default), tcp or udp: the ports"),
            "both, tcp or udp"
        );
        assert_eq!(
            summary("how many ports (1-64; default 1)"),
            "how many ports"
        );
        assert_eq!(
            summary("Holds dynamic_ports.json and the lock."),
            "Holds dynamic_ports.json and the lock"
        );
    }

    #[test]
    fn commands_are_serve_help_and_the_client_commands() {
        let names: Vec<String> = commands().into_iter().map(|c| c.name).collect();
        let mut expected = vec!["serve", "help"];
        expected.extend(crate::client::args::COMMANDS);
        assert_eq!(names, expected);
    }

    #[test]
    fn the_server_lists_every_client_command_and_no_other() {
        let listed = help::CLIENT_COMMANDS
            .iter()
            .map(|(term, _)| term.split(' ').nth(1));
        let listed: Vec<&str> = listed.map(Option::unwrap_or_default).collect();
        assert_eq!(listed, crate::client::args::COMMANDS);
    }

    #[test]
    fn values_are_the_kinds_the_tables_give() {
        use flags::Value::{Choice, Dir, File, Text};
        let values = values(&commands());
        let of = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(of("state-dir"), Some(Dir("DIR")));
        assert_eq!(of("token-file"), Some(File("PATH")));
        assert_eq!(of("host"), Some(Text("ADDR")));
        assert_eq!(of("json"), None);
        let levels = &["error", "warn", "info", "debug", "trace"];
        assert_eq!(of("log-level"), Some(Choice("L", levels)));
        assert_eq!(of("protocol"), Some(Choice("P", &["both", "tcp", "udp"])));
    }
}
