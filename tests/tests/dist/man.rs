//! The man page renders without a warning, in groff and in man.

use super::root;
use crate::fixture::{require_tool, run_to_end};
use std::process::Command;
use std::time::Duration;

const PAGE: &str = "dist/man/dynport.1";
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn man_page_renders_without_warnings_in_groff() {
    if require_tool("groff").is_none() {
        return;
    }
    // -ww: every warning; -z: check only, print nothing.
    let mut groff = Command::new("groff");
    groff.args(["-man", "-z", "-ww", PAGE]).current_dir(root());
    let (status, out, err) = run_to_end(&mut groff, PATIENCE);
    assert!(status.success(), "groff: {status}, stderr: {err}");
    assert_eq!((out.as_str(), err.as_str()), ("", ""), "groff warned");
}

#[test]
fn man_page_renders_without_warnings_in_man() {
    if require_tool("man").is_none() {
        return;
    }
    let mut man = Command::new("man");
    man.args(["--warnings", "-l", PAGE]).current_dir(root());
    man.env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("LC_ALL", "C.UTF-8");
    man.env_remove("MANPAGER").env("PAGER", "cat");
    let (status, out, err) = run_to_end(&mut man, PATIENCE);
    assert!(status.success(), "man: {status}, stderr: {err}");
    assert_eq!(err, "", "man warned");
    let plain = strip_overstrike(&out);
    assert!(
        plain.contains("dynport - the port manager of a host"),
        "{plain}"
    );
    assert!(
        plain.contains("--reserve-kernel"),
        "flags are typed with minus signs: {plain}"
    );
    assert!(plain.contains("DYNPORT_STATE_DIR"), "{plain}");
}

/// Text without the backspace overstrikes a terminal would make bold with.
fn strip_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        match c {
            '\u{8}' => drop(out.pop()),
            c => out.push(c),
        }
    }
    out.into_iter().collect()
}
