//! The fish completion: `complete` lines, each flag shown only after the
//! command it belongs to (the server's where no client command is given).
#![forbid(unsafe_code)]

use super::{commands, summary};
use crate::config::flags::{Flag, Value};

const HEAD: &str = "# fish completion for dynport(1). Generated from dynport's tables of flags
# by `make dist-files`; do not edit: tests/tests/dist/ fails when they differ.

complete -c dynport -f
";

/// The whole script.
pub fn script() -> String {
    let commands = commands();
    let mut out = String::from(HEAD);
    for command in &commands {
        let line = format!(
            "complete -c dynport -n __fish_use_subcommand -a {} -d {}\n",
            command.name,
            quote(&command.summary)
        );
        out.push_str(&line);
    }
    let clients: Vec<&str> = commands.iter().skip(1).map(|c| c.name.as_str()).collect();
    for command in &commands {
        out.push_str(&format!("\n# dynport {}\n", command.name));
        let when = match command.name.as_str() {
            // No command at all is serve too.
            "serve" => format!("not __fish_seen_subcommand_from {}", clients.join(" ")),
            name => format!("__fish_seen_subcommand_from {name}"),
        };
        for flag in &command.flags {
            out.push_str(&format!(
                "complete -c dynport -n {}{}\n",
                quote(&when),
                options(flag)
            ));
        }
        if command.name == "run" {
            run_command(&mut out, &when);
        }
    }
    out
}

/// ` -s h -l help -d 'print this help'`, and how its value is completed.
fn options(flag: &Flag) -> String {
    let short = flag.short.map(|s| format!(" -s {s}")).unwrap_or_default();
    let value = match flag.value {
        Value::Switch => String::new(),
        Value::Text(_) => " -x".to_string(),
        Value::Dir(_) => " -x -a '(__fish_complete_directories)'".to_string(),
        Value::File(_) => " -r -F".to_string(),
        Value::Choice(_, words) => format!(" -x -a {}", quote(&words.join(" "))),
    };
    let text = quote(&summary(&flag.text()));
    format!("{short} -l {}{value} -d {text}", flag.name)
}

/// Past `--`, the command `dynport run` runs, completed as its own.
const RUN_COMMAND: &str = "function __fish_dynport_run_command
    set -l tokens (commandline -opc) (commandline -ct)
    set -l dashes (contains -i -- -- $tokens)
    __fish_complete_subcommand --commandline $tokens[(math $dashes + 1)..-1]
end
";

fn run_command(out: &mut String, when: &str) {
    out.push_str(RUN_COMMAND);
    let when = format!("{when}; and contains -- -- (commandline -opc)");
    let line = format!(
        "complete -c dynport -n {} -x -a '(__fish_dynport_run_command)'\n",
        quote(&when)
    );
    out.push_str(&line);
}

/// Single quotes for fish: `\` and `'` escaped.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}
