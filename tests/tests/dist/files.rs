//! The files under `dist/` that are generated are what dynport's tables of
//! flags make now, and the man page names every flag, command, variable and
//! exit status of the real binary's help.

use super::{client_commands, every_help, help, read};

#[test]
fn generated_files_are_what_the_tables_of_flags_make() {
    for (path, made) in dynport::manual::files() {
        let on_disk = read(path);
        let first_difference = on_disk.lines().zip(made.lines()).position(|(a, b)| a != b);
        assert!(
            on_disk == made,
            "{path} is not what dynport's tables of flags make (first difference at line {}); \
             run `make dist-files` and commit the result",
            first_difference.map_or("the end".to_string(), |i| (i + 1).to_string())
        );
    }
}

/// `--state-dir` as the man page's roff writes it: `\-\-state\-dir`.
fn roff(text: &str) -> String {
    text.replace('-', "\\-")
}

#[test]
fn man_page_defines_every_flag_of_every_help() {
    let page = read("dist/man/dynport.1");
    for (command, flags) in every_help() {
        for flag in flags {
            let defined = format!("\\fB{}\\fR", roff(&flag));
            assert!(
                page.contains(&defined),
                "dynport.1 lacks {flag} of {command}"
            );
        }
    }
}

#[test]
fn man_page_has_a_section_for_every_client_command() {
    let page = read("dist/man/dynport.1");
    let commands = client_commands();
    assert_eq!(
        commands,
        [
            "lease", "release", "renew", "leases", "status", "url", "run", "who", "names", "port",
            "alias", "watch"
        ]
    );
    for command in commands {
        let heading = format!(".SS \"dynport {command}\"");
        assert!(page.contains(&heading), "dynport.1 lacks {heading}");
    }
}

#[test]
fn man_page_lists_every_variable_in_environment() {
    let page = read("dist/man/dynport.1");
    let environment = page
        .split(".SH ENVIRONMENT")
        .nth(1)
        .expect("an ENVIRONMENT section");
    let environment = environment.split("\n.SH ").next().unwrap_or_default();
    let mut variables = variables_in(&help(&["--help"]));
    variables.extend(variables_in(&help(&["lease", "--help"])));
    assert!(
        variables.len() >= 20,
        "too few variables read: {variables:?}"
    );
    for variable in variables {
        let entry = format!(".TP\n\\fB{variable}\\fR\n");
        assert!(environment.contains(&entry), "ENVIRONMENT lacks {variable}");
    }
}

/// The variables a help text names: `HOST` in a flag's line, `[DYNPORT_URL]`,
/// the words under `Other variables:`.
fn variables_in(help: &str) -> Vec<String> {
    // A bracketed variable has an underscore: `[DYNPORT_URL]`, not `[FLAGS]`.
    let is_variable =
        |w: &&str| w.contains('_') && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let mut variables = Vec::new();
    let mut others = false;
    for line in help.lines() {
        others = (others && !line.trim().is_empty()) || line == "Other variables:";
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if line.trim_start().starts_with("--") && cells.len() == 3 {
            variables.push(cells[1].to_string());
        }
        if others && cells.len() == 2 {
            variables.push(cells[0].to_string());
        }
        let bracketed = line.split('[').skip(1).filter_map(|s| s.split(']').next());
        variables.extend(bracketed.filter(is_variable).map(str::to_string));
    }
    variables
}

#[test]
fn man_page_gives_every_exit_status() {
    let page = read("dist/man/dynport.1");
    let section = page
        .split(".SH EXIT STATUS")
        .nth(1)
        .expect("an EXIT STATUS section");
    let server = help(&["--help"]);
    let statuses = server
        .split("Exit status:\n")
        .nth(1)
        .expect("--help gives exit statuses");
    for line in statuses.lines().filter(|l| !l.trim().is_empty()) {
        let (code, meaning) = line.trim().split_once("  ").expect("CODE  MEANING");
        let entry = format!(".TP\n\\fB{code}\\fR\n{}\n", roff(meaning.trim()));
        assert!(
            section.contains(&entry),
            "EXIT STATUS lacks {code}: {meaning}"
        );
    }
    let client = help(&["lease", "--help"]);
    let statuses = client
        .split("Exit status: ")
        .nth(1)
        .expect("lease --help gives them");
    let statuses = statuses.split_whitespace().collect::<Vec<_>>().join(" ");
    let entry = format!("Client commands: {}", roff(&statuses));
    assert!(section.contains(&entry), "EXIT STATUS lacks {entry:?}");
}
