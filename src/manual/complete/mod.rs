//! Shell completions for bash, zsh and fish: every command and every flag
//! its `--help` shows, with what each flag's value can be.
#![forbid(unsafe_code)]

mod bash;
mod fish;
mod zsh;

use super::model::{self, Flag};
use crate::ports::lease::Protocol;

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

/// What a flag's value can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A switch: no value.
    Switch,
    /// Anything: nothing to offer.
    Free,
    Directory,
    File,
    /// One of these words.
    Words(Vec<String>),
}

/// `serve`, `help`, then the client commands, as the help texts list them.
/// `serve` comes first: a command line without a command is `serve`'s.
pub fn commands() -> Vec<Command> {
    let server = model::server();
    let mut commands = Vec::new();
    for item in &server.usage {
        let words = item.term.split_whitespace().skip(1);
        let words = words.map(|w| w.trim_matches(['[', ']']));
        let name = words.filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()));
        commands.extend(name.take(1).map(|name| Command {
            name: name.to_string(),
            summary: summary(&item.text),
            flags: Vec::new(),
        }));
    }
    let serve = &mut commands[0];
    assert_eq!(
        serve.name, "serve",
        "dynport --help: the first usage line is serve's"
    );
    serve.flags = server.groups.iter().flat_map(|g| g.flags.clone()).collect();
    serve
        .flags
        .extend(server.usage.iter().filter_map(model::usage_flag));
    let shared = model::shared();
    for client in model::clients() {
        let listed = server
            .commands
            .iter()
            .find(|c| c.term.split(' ').nth(1) == Some(client.name));
        let listed = listed.unwrap_or_else(|| panic!("dynport --help lists no {}", client.name));
        let mut flags = client.options;
        flags.extend(shared.group.flags.iter().cloned());
        let (name, summary) = (client.name.to_string(), summary(&listed.text));
        commands.push(Command {
            name,
            summary,
            flags,
        });
    }
    commands
}

/// Every flag of every command that takes a value, once, with its value.
///
/// # Panics
/// When one flag takes different values in two commands: the scripts
/// complete a flag's value by its name alone.
pub fn values(commands: &[Command]) -> Vec<(String, Value)> {
    let mut values: Vec<(String, Value)> = Vec::new();
    for flag in commands.iter().flat_map(|c| &c.flags) {
        let value = value(flag);
        match values.iter().find(|(long, _)| *long == flag.long) {
            Some((_, seen)) => assert_eq!(*seen, value, "--{} differs", flag.long),
            None if value != Value::Switch => values.push((flag.long.clone(), value)),
            None => {}
        }
    }
    values
}

/// What `flag`'s value can be: its placeholder says, or the settings it
/// names (log levels, protocols).
pub fn value(flag: &Flag) -> Value {
    let Some(arg) = flag.arg.as_deref() else {
        return Value::Switch;
    };
    match (flag.long.as_str(), arg) {
        ("log-level", _) => Value::Words(log_levels()),
        ("protocol", _) => {
            let all = [Protocol::Both, Protocol::Tcp, Protocol::Udp];
            Value::Words(all.iter().map(|p| p.as_str().to_string()).collect())
        }
        (_, "DIR") => Value::Directory,
        (_, "PATH") => Value::File,
        _ => Value::Free,
    }
}

fn log_levels() -> Vec<String> {
    let levels = log::LevelFilter::iter().filter(|l| *l != log::LevelFilter::Off);
    levels.map(|l| l.as_str().to_lowercase()).collect()
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

/// Every flag of `command` as its spellings: `--help` and `-h`.
pub fn spellings(flag: &Flag) -> Vec<String> {
    let long = format!("--{}", flag.long);
    let short = flag.short.map(|s| format!("-{s}"));
    std::iter::once(long).chain(short).collect()
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
    fn values_come_from_placeholders_and_settings() {
        let values = values(&commands());
        let of = |long: &str| {
            values
                .iter()
                .find(|(l, _)| l == long)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(of("state-dir"), Some(Value::Directory));
        assert_eq!(of("token-file"), Some(Value::File));
        assert_eq!(of("host"), Some(Value::Free));
        assert_eq!(of("json"), None);
        let words = |w: &[&str]| Some(Value::Words(w.iter().map(|s| s.to_string()).collect()));
        assert_eq!(
            of("log-level"),
            words(&["error", "warn", "info", "debug", "trace"])
        );
        assert_eq!(of("protocol"), words(&["both", "tcp", "udp"]));
    }
}
