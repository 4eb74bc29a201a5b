//! Each completion loads in its shell and offers, after each command, the
//! very flags that command's `--help` shows; at the start, the commands;
//! after a flag, its values. A shell that is not installed is skipped, or
//! fails under CI or as root, where `make test` installs it.

use super::{client_commands, every_help, root};
use crate::fixture::{require_tool, run_to_end};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

/// What `shell` completes at the end of each line, one set per line.
type Completer = fn(&[String]) -> Vec<BTreeSet<String>>;

/// The commands a bare `dynport` may start with.
fn commands() -> BTreeSet<String> {
    let mut commands: BTreeSet<String> = client_commands().into_iter().collect();
    commands.extend(["serve".to_string(), "help".to_string()]);
    commands
}

fn words(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|w| w.to_string()).collect()
}

/// Every check, for the shell `name` completed by `complete`.
fn check(name: &str, complete: Completer) {
    if require_tool(name).is_none() {
        return;
    }
    let helps = every_help();
    let mut lines: Vec<String> = helps
        .iter()
        .map(|(c, _)| format!("dynport {c} -"))
        .collect();
    lines.push("dynport -".to_string());
    let values = [
        ("dynport ", commands()),
        (
            "dynport --log-level ",
            words(&["error", "warn", "info", "debug", "trace"]),
        ),
        ("dynport run --protocol ", words(&["both", "tcp", "udp"])),
        ("dynport lease --co", words(&["--count"])),
    ];
    lines.extend(values.iter().map(|(line, _)| line.to_string()));
    let got = complete(&lines);
    assert_eq!(got.len(), lines.len(), "{name}: one answer per line");
    for ((command, flags), offered) in helps.iter().zip(&got) {
        assert_eq!(
            offered, flags,
            "{name}: `dynport {command} -` offers other flags than --help"
        );
    }
    let bare = &got[helps.len()];
    assert_eq!(
        bare, &helps[0].1,
        "{name}: `dynport -` offers other flags than the server's"
    );
    for ((line, expected), offered) in values.iter().zip(&got[helps.len() + 1..]) {
        assert_eq!(offered, expected, "{name}: `{line}`");
    }
}

#[test]
fn bash_completes_commands_flags_and_values() {
    check("bash", bash);
}

#[test]
fn zsh_completes_commands_flags_and_values() {
    check("zsh", zsh);
}

#[test]
fn fish_completes_commands_flags_and_values() {
    check("fish", fish);
}

fn bash(lines: &[String]) -> Vec<BTreeSet<String>> {
    // compopt only works inside a completion that bash itself started.
    let mut script = String::from(
        "set -e\nsource dist/completions/dynport.bash\ncompopt() { :; }\n\
         complete -p dynport >/dev/null\n\
         t() { read -ra COMP_WORDS <<<\"$1\"; [[ $1 == *' ' ]] && COMP_WORDS+=('');\n\
         COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _dynport;\n\
         echo \"${COMPREPLY[*]}\"; }\n",
    );
    for line in lines {
        script.push_str(&format!("t '{line}'\n"));
    }
    let out = run("bash", &["--norc", "--noprofile", "-c", &script]);
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn zsh(lines: &[String]) -> Vec<BTreeSet<String>> {
    let dir = root().join("dist/completions");
    let dir = dir.to_str().expect("a UTF-8 path");
    let each = lines.iter().map(|line| {
        let out = run("zsh", &["-f", "tests/tests/dist/complete.zsh", dir, line]);
        out.lines()
            .map(str::to_string)
            .filter(|w| !w.is_empty())
            .collect()
    });
    each.collect()
}

fn fish(lines: &[String]) -> Vec<BTreeSet<String>> {
    let mut script = String::from("source dist/completions/dynport.fish\n");
    for line in lines {
        // One line of output per completion line: the words, tab-free.
        let line = format!("echo (complete -C'{line}' | string replace -r '\\t.*' '')\n");
        script.push_str(&line);
    }
    let out = run("fish", &["--no-config", "-c", &script]);
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Runs `shell args` in the repository with a plain environment: its output.
fn run(shell: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(shell);
    cmd.args(args).current_dir(root()).env("TERM", "dumb");
    let (status, out, err) = run_to_end(&mut cmd, PATIENCE);
    assert!(
        status.success(),
        "{shell} {args:?}: {status}, stderr: {err}"
    );
    assert_eq!(err, "", "{shell} complained");
    out
}
