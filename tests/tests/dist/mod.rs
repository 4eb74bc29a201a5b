//! What a host installs from `dist/`: the man page and the completions are
//! what dynport's tables of flags make, name every flag the real binary's
//! `--help` shows, render and load in their tools, and `make install` lays
//! out exactly the expected files; and the binary takes every flag its
//! `--help` shows. The flags are read here from the binary's own output,
//! not through the tables, so the two checks are separate.

mod files;
mod hot_code;
mod install;
mod man;
mod shells;
mod units;

use crate::fixture::run_dynport;
use std::collections::BTreeSet;
use std::path::Path;

/// The repository: where `dist/` and the Makefile are.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, as text.
pub fn read(path: &str) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What `dynport ARGS` prints, which must succeed.
pub fn help(args: &[&str]) -> String {
    let (status, out, err) = run_dynport(args, &[]);
    assert!(
        status.success(),
        "dynport {args:?}: {status}, stderr: {err}"
    );
    out
}

/// Each command (`serve` for the bare server) with the flags its `--help`
/// shows: `-h`, `--help`, `--count`, ….
pub fn every_help() -> Vec<(String, BTreeSet<String>)> {
    let mut all = vec![("serve".to_string(), flags_in(&help(&["--help"])))];
    for command in client_commands() {
        let flags = flags_in(&help(&[&command, "--help"]));
        all.push((command, flags));
    }
    all
}

/// The client commands `dynport --help` lists: `lease`, `release`, ….
pub fn client_commands() -> Vec<String> {
    let text = help(&["--help"]);
    let listed = text
        .split("Client commands")
        .nth(1)
        .expect("--help lists client commands");
    let lines = listed.lines().skip(1).take_while(|l| !l.trim().is_empty());
    lines
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// The flags a help text defines: on each indented line that starts with a
/// flag or with `dynport`, the words before its explanation that look like
/// flags.
pub fn flags_in(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    // Definitions are indented; prose at the margin may start with a flag.
    let indented = help.lines().filter(|l| l.starts_with("  "));
    for line in indented.map(str::trim_start) {
        if !(line.starts_with('-') || line.starts_with("dynport ")) {
            continue;
        }
        let head = line.split("  ").next().unwrap_or_default();
        let words = head.split([' ', ',', '=']).filter(|w| is_flag(w));
        flags.extend(words.map(str::to_string));
    }
    flags
}

fn is_flag(word: &str) -> bool {
    let name = word.trim_start_matches('-');
    let dashes = word.len() - name.len();
    (dashes == 1 || dashes == 2)
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[test]
fn flags_in_reads_definitions_not_prose() {
    let help = "\
Usage:
  dynport help | --help | -h  print this help
  dynport run -- CMD          run CMD
beats the default (but
--pool adds up). Both --flag VALUE and --flag=VALUE work.
  --count N          how many (see --port)
  -h, --help         print this help
  --reserve-kernel   needs root; --reserve-kernel=0 turns it off
";
    let expected = ["--count", "--help", "--reserve-kernel", "-h"];
    assert_eq!(
        flags_in(help),
        expected.iter().map(|s| s.to_string()).collect()
    );
}

/// Every flag the real binary's `--help` shows is one its parser takes:
/// for the server, all of them at once before `--version`; for a client
/// command, each one (a value it refuses is not an unknown flag).
#[test]
fn the_parser_takes_every_flag_help_shows() {
    for (command, flags) in every_help() {
        let given = flags
            .iter()
            .filter(|f| f.starts_with("--") && !["--help", "--version"].contains(&f.as_str()));
        let given: Vec<String> = given.map(|f| format!("{f}=1")).collect();
        if command == "serve" {
            let mut args: Vec<&str> = given.iter().map(String::as_str).collect();
            args.push("--version");
            assert!(help(&args).starts_with("dynport "), "{args:?}");
            continue;
        }
        // No server answers there, should the command get as far as asking.
        let nowhere = [("DYNPORT_URL", "http://127.0.0.1:1")];
        for flag in given {
            let (status, _, err) = run_dynport(&[&command, &flag], &nowhere);
            let shown = format!("dynport {command} {flag}: {status}, stderr: {err}");
            assert!(!err.contains("invalid option"), "{shown}");
            assert!(matches!(status.code(), Some(0..=3)), "{shown}");
        }
    }
}
