//! The zsh completion: `_dynport`, found through `fpath` (`#compdef`), one
//! `_arguments` function per command.
#![forbid(unsafe_code)]

use super::{Command, commands, summary};
use crate::config::flags::{Flag, Value};

const HEAD: &str = "#compdef dynport
# zsh completion for dynport(1). Generated from dynport's tables of flags
# by `make dist-files`; do not edit: tests/tests/dist/ fails when they differ.
";

/// The whole script. Its list of commands is not called `commands`: that
/// would hide zsh's own table of commands from `_command_names`.
pub fn script() -> String {
    let commands = commands();
    let mut out = String::from(HEAD);
    for command in &commands {
        function(&mut out, command);
    }
    out.push_str("\nlocal -a dynport_commands=(\n");
    for command in &commands {
        let item = format!("{}:{}", command.name, command.summary);
        out.push_str(&format!("  {}\n", quote(&item)));
    }
    out.push_str(")\n");
    out.push_str("if ((CURRENT == 2)) && [[ $PREFIX != -* ]]; then\n");
    out.push_str("  _describe -t commands 'dynport command' dynport_commands\n");
    out.push_str("  return\nfi\n");
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    out.push_str("case $words[2] in\n");
    out.push_str(&format!("  ({})\n", names.join("|")));
    out.push_str("    local command=$words[2]\n    shift words\n    ((CURRENT--))\n");
    out.push_str("    _dynport_$command ;;\n");
    out.push_str("  (*)\n    _dynport_serve ;;\nesac\n");
    out
}

/// `_dynport_lease() { _arguments … }`.
fn function(out: &mut String, command: &Command) {
    out.push_str(&format!("\n_dynport_{}() {{\n", command.name));
    if command.flags.is_empty() {
        out.push_str("  _message 'no arguments'\n}\n");
        return;
    }
    out.push_str("  _arguments -S : \\\n");
    let mut specs: Vec<String> = command.flags.iter().flat_map(specs).collect();
    if command.name == "run" {
        specs.push("'(-):command: _command_names -e'".to_string());
        specs.push("'*::arguments: _normal'".to_string());
    }
    out.push_str(&format!("    {}\n}}\n", specs.join(" \\\n    ")));
}

/// The `_arguments` specs of a flag, one per spelling:
/// `'--count=[how many ports]:N: '`.
fn specs(flag: &Flag) -> Vec<String> {
    let text = escape(&summary(&flag.text()));
    let repeat = if flag.repeatable { "*" } else { "" };
    let arg = flag.value.placeholder().map(escape).unwrap_or_default();
    let value = match flag.value {
        Value::Switch => String::new(),
        Value::Text(_) => format!(":{arg}: "),
        Value::Dir(_) => format!(":{arg}:_files -/"),
        Value::File(_) => format!(":{arg}:_files"),
        Value::Choice(_, words) => format!(":{arg}:({})", words.join(" ")),
    };
    let takes = if flag.value == Value::Switch { "" } else { "=" };
    let spellings = flag.spellings().into_iter();
    // A short spelling takes its value in the next word only.
    let spec = |s: String| match s.starts_with("--") {
        true => format!("{repeat}{s}{takes}[{text}]{value}"),
        false => format!("{repeat}{s}[{text}]{value}"),
    };
    spellings.map(|s| quote(&spec(s))).collect()
}

/// `[`, `]`, `:` and `\` are special in an `_arguments` spec.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "[]:\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Single quotes for the shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
