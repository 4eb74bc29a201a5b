//! dynport's man page and shell completions, made from its tables of flags
//! ([`crate::config::flags`], [`crate::config::client_flags`]) and the other
//! parts of its `--help` texts, so that the three cannot drift apart. `make
//! dist-files` writes them under `dist/` (through `cargo run --example
//! dist_files`); `tests/tests/dist/` fails when the files there differ from
//! what this module makes. The binary itself never calls it, so none of it
//! is in the binary.
#![forbid(unsafe_code)]

mod complete;
mod roff;

/// A shell dynport ships a completion for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// dynport(1), in roff.
pub fn man_page() -> String {
    roff::page()
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> String {
    match shell {
        Shell::Bash => complete::bash(),
        Shell::Zsh => complete::zsh(),
        Shell::Fish => complete::fish(),
    }
}

/// Every generated file, by its path in the repository, with its text.
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("dist/man/dynport.1", man_page()),
        ("dist/completions/dynport.bash", completion(Shell::Bash)),
        ("dist/completions/_dynport", completion(Shell::Zsh)),
        ("dist/completions/dynport.fish", completion(Shell::Fish)),
    ]
}

/// Text as one line: a help's lines, as `--help` breaks them, joined.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
