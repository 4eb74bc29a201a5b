//! The bash completion: one function, `_dynport`, needing nothing but bash
//! (not the bash-completion package's helpers).
#![forbid(unsafe_code)]

use super::{Command, commands, values};
use crate::config::flags::{Flag, Value};

const HEAD: &str = r#"# bash completion for dynport(1). Generated from dynport's tables of flags
# by `make dist-files`; do not edit: tests/tests/dist/ fails when they differ.

_dynport() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    # bash breaks --flag=value into three words at the '='.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
"#;

/// Past `--`, `dynport run` runs a command: complete its name, then files.
const RUN: &str = r#"    local i
    if [[ $command == run ]]; then
        for ((i = 2; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == -- ]] || continue
            if ((i == COMP_CWORD - 1)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                compopt -o default 2>/dev/null
                COMPREPLY=()
            fi
            return
        done
    fi
"#;

/// The whole script.
pub fn script() -> String {
    let commands = commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    let mut out = String::from(HEAD);
    out.push_str("    local command=serve\n");
    out.push_str("    case ${COMP_WORDS[1]} in\n");
    out.push_str(&format!(
        "        {}) command=${{COMP_WORDS[1]}} ;;\n",
        names.join("|")
    ));
    out.push_str("    esac\n");
    out.push_str(RUN);
    value_cases(&mut out, &commands);
    flag_cases(&mut out, &commands);
    // First, a command; a flag only when one is begun (no command is serve).
    out.push_str("    if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then\n        words='");
    out.push_str(&names.join(" "));
    out.push_str("'\n    fi\n");
    out.push_str("    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n\n");
    out.push_str("complete -F _dynport dynport\n");
    out
}

/// After a flag that takes a value: offer what the value can be.
fn value_cases(out: &mut String, commands: &[Command]) {
    let values = values(commands);
    let with = |want: fn(&Value) -> bool| -> Vec<String> {
        let flags = values.iter().filter(|(_, v)| want(v));
        flags.map(|(name, _)| format!("--{name}")).collect()
    };
    let reply = "COMPREPLY=($(compgen";
    out.push_str("    case $prev in\n");
    let dirs = format!("compopt -o filenames 2>/dev/null; {reply} -d -- \"$cur\"))");
    case(out, &with(|v| matches!(v, Value::Dir(_))), &dirs);
    let files = format!("compopt -o filenames 2>/dev/null; {reply} -f -- \"$cur\"))");
    case(out, &with(|v| matches!(v, Value::File(_))), &files);
    for (name, value) in &values {
        if let Value::Choice(_, words) = value {
            let words = format!("{reply} -W '{}' -- \"$cur\"))", words.join(" "));
            case(out, &[format!("--{name}")], &words);
        }
    }
    case(out, &with(|v| matches!(v, Value::Text(_))), "COMPREPLY=()");
    out.push_str("    esac\n");
}

/// One branch of the `case $prev`, when some flag leads to it.
fn case(out: &mut String, flags: &[String], body: &str) {
    if !flags.is_empty() {
        out.push_str(&format!("        {}) {body}; return ;;\n", flags.join("|")));
    }
}

/// The flags of the command given.
fn flag_cases(out: &mut String, commands: &[Command]) {
    out.push_str("    local words=\n    case $command in\n");
    for command in commands.iter().filter(|c| !c.flags.is_empty()) {
        let flags: Vec<String> = command.flags.iter().flat_map(Flag::spellings).collect();
        let flags = flags.join(" ");
        out.push_str(&format!("        {}) words='{flags}' ;;\n", command.name));
    }
    out.push_str("    esac\n");
}
