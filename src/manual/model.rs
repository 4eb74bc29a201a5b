//! What the man page and the completions tell, read out of the `--help`
//! texts: [`config::HELP`] for the server, [`help::of`] for each client
//! command. A section these readers do not know is a panic, caught by the
//! tests, so nothing new in `--help` is left out of the man page unnoticed.
#![forbid(unsafe_code)]

use super::text::{Block, Item, blocks};
use crate::client::{args::COMMANDS, help};
use crate::config;

/// One flag as a help text defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// Without its dashes: `host`.
    pub long: String,
    /// Without its dash: `h`.
    pub short: Option<char>,
    /// The value's placeholder, `ADDR`; `None` for a switch.
    pub arg: Option<String>,
    /// The environment variable that stands for it.
    pub var: Option<String>,
    /// The default, as the server's help shows it.
    pub default: Option<String>,
    pub text: String,
}

impl Flag {
    /// Whether the flag may be given more than once.
    pub fn repeatable(&self) -> bool {
        self.text.contains("repeatable")
    }
}

/// Flags under one title: `Flags`, `Lease flags`, `Options`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub title: String,
    pub flags: Vec<Flag>,
}

/// `dynport --help`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub about: Vec<String>,
    /// `dynport [serve] [FLAGS]` and what it does.
    pub usage: Vec<Item>,
    /// The title of the list of client commands.
    pub commands_title: String,
    /// `dynport lease` and what it does.
    pub commands: Vec<Item>,
    pub groups: Vec<Group>,
    /// Variables that stand for no flag: `PORT`, `RELOAD`.
    pub variables: Vec<Item>,
    pub exit: Vec<Item>,
}

/// `dynport COMMAND --help`, read, without the part every command shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub name: &'static str,
    pub usage: String,
    pub about: Vec<String>,
    pub options: Vec<Flag>,
}

/// The part of the client commands' help that every one of them shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    pub group: Group,
    /// The paragraphs after it: precedence, exit statuses.
    pub notes: Vec<String>,
}

/// Reads [`config::HELP`].
pub fn server() -> Server {
    let mut server = Server {
        about: Vec::new(),
        usage: Vec::new(),
        commands_title: String::new(),
        commands: Vec::new(),
        groups: Vec::new(),
        variables: Vec::new(),
        exit: Vec::new(),
    };
    for block in blocks(&config::help()) {
        match block {
            Block::Paragraph(text) => server.about.push(text),
            Block::List { title, items, .. } if title == "Usage" => server.usage = items,
            Block::List { title, items, .. } if title.starts_with("Client commands") => {
                (server.commands_title, server.commands) = (title, items)
            }
            Block::List { title, items, .. } if title == "Other variables" => {
                server.variables = items
            }
            Block::List { title, items, .. } if title == "Exit status" => server.exit = items,
            Block::List {
                title,
                headings,
                items,
            } if headings == ["Variable", "Default"] => server.groups.push(Group {
                title,
                flags: items.iter().map(server_flag).collect(),
            }),
            other => panic!("dynport --help: the man page does not know {other:?}"),
        }
    }
    server
}

/// Every client command's own part of its help, in [`COMMANDS`] order.
pub fn clients() -> Vec<Client> {
    COMMANDS.iter().map(|&name| client(name).0).collect()
}

/// The part of the client help every command shows.
pub fn shared() -> Shared {
    client(COMMANDS[0]).1
}

fn client(name: &'static str) -> (Client, Shared) {
    let mut own = Client {
        name,
        usage: String::new(),
        about: Vec::new(),
        options: Vec::new(),
    };
    let mut shared: Option<Shared> = None;
    for block in blocks(&help::of(name)) {
        match (block, &mut shared) {
            (Block::Paragraph(text), Some(shared)) => shared.notes.push(text),
            (Block::Paragraph(text), None) => own.about.push(text),
            (Block::Usage(usage), None) => own.usage = usage,
            (Block::List { title, items, .. }, None) if title == "Options" => {
                own.options = items.iter().map(client_flag).collect()
            }
            (Block::List { title, items, .. }, None) if title == "Finding the server" => {
                let flags = items.iter().map(client_flag).collect();
                let group = Group { title, flags };
                let notes = Vec::new();
                shared = Some(Shared { group, notes });
            }
            (other, _) => panic!("dynport {name} --help: the man page does not know {other:?}"),
        }
    }
    let shared = shared.unwrap_or_else(|| panic!("dynport {name} --help: no Finding the server"));
    (own, shared)
}

/// The flags a usage line names: `dynport help | --help | -h`.
pub fn usage_flag(item: &Item) -> Option<Flag> {
    let words = item.term.split_whitespace();
    let options: Vec<&str> = words.filter(|w| w.starts_with('-')).collect();
    let options = options.join(", ");
    (!options.is_empty()).then(|| term_flag(&options, item.text.clone()))
}

/// `--host ADDR` in the columns `HOST`, `127.0.0.1`.
fn server_flag(item: &Item) -> Flag {
    let mut flag = term_flag(&item.term, item.text.clone());
    flag.var = item.cells.first().cloned();
    flag.default = item.cells.get(1).cloned();
    flag
}

/// `--url URL   its base URL … [DYNPORT_URL]`.
fn client_flag(item: &Item) -> Flag {
    let text = item.text.trim_end();
    let var = text
        .strip_suffix(']')
        .and_then(|t| t.rsplit_once(" ["))
        .filter(|(_, var)| var.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    let mut flag = term_flag(&item.term, text.to_string());
    if let Some((text, var)) = var {
        (flag.text, flag.var) = (text.to_string(), Some(var.to_string()));
    }
    flag
}

/// `-h, --help` or `--count N`.
fn term_flag(term: &str, text: String) -> Flag {
    let mut flag = Flag {
        long: String::new(),
        short: None,
        arg: None,
        var: None,
        default: None,
        text,
    };
    for part in term.split(", ") {
        let (name, arg) = match part.split_once(' ') {
            Some((name, arg)) => (name, Some(arg.to_string())),
            None => (part, None),
        };
        match name.strip_prefix("--") {
            Some(long) => (flag.long, flag.arg) = (long.to_string(), arg),
            None => flag.short = name.strip_prefix('-').and_then(|s| s.chars().next()),
        }
    }
    assert!(
        !flag.long.is_empty(),
        "help text: {term:?} has no long flag"
    );
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(flags: &'a [Flag], long: &str) -> &'a Flag {
        flags.iter().find(|f| f.long == long).unwrap()
    }

    #[test]
    fn server_flags_have_their_variable_and_default() {
        let server = server();
        let titles: Vec<&str> = server.groups.iter().map(|g| g.title.as_str()).collect();
        assert_eq!(titles, ["Flags", "Lease flags", "Portserver flags"]);
        let host = find(&server.groups[0].flags, "host");
        assert_eq!(host.arg.as_deref(), Some("ADDR"));
        assert_eq!(host.var.as_deref(), Some("HOST"));
        assert_eq!(host.default.as_deref(), Some("127.0.0.1"));
        assert!(host.text.starts_with("Address to listen on, IPv4 or IPv6"));
        let reserve = find(&server.groups[0].flags, "reserve-kernel");
        assert_eq!(reserve.arg, None);
        assert!(find(&server.groups[1].flags, "pool").repeatable());
    }

    #[test]
    fn usage_lines_name_help_and_version() {
        let flags: Vec<Flag> = server().usage.iter().filter_map(usage_flag).collect();
        let names: Vec<(&str, Option<char>)> =
            flags.iter().map(|f| (f.long.as_str(), f.short)).collect();
        assert_eq!(names, [("help", Some('h')), ("version", Some('V'))]);
    }

    #[test]
    fn client_flags_have_their_variable_cut_from_the_text() {
        let shared = shared();
        let url = find(&shared.group.flags, "url");
        assert_eq!(url.var.as_deref(), Some("DYNPORT_URL"));
        assert_eq!(url.text, "its base URL, e.g. http://127.0.0.1:3456");
        let help = find(&shared.group.flags, "help");
        assert_eq!((help.short, help.var.as_deref()), (Some('h'), None));
        let run = clients().into_iter().find(|c| c.name == "run").unwrap();
        assert_eq!(run.usage, "dynport run [OPTIONS] [--] CMD [ARGS...]");
        assert_eq!(find(&run.options, "socket").arg, None);
        assert_eq!(find(&run.options, "bind").arg.as_deref(), Some("ADDR"));
    }
}
