//! `make layers`: checks that dynport's modules keep to their layers.
//!
//! Each top-level module of `src/` sits on a layer (the table below, the
//! diagram in docs/layers.md). Non-test code may use a module of its own
//! layer or of a lower one, never one above; and no modules may use each
//! other in a circle. So the engine (`http`) and the system calls (`sys`)
//! can never reach up into the application. A module that is not in the
//! table is an error too: a new module is placed on purpose.
//!
//! It reads the source as text: `crate::NAME` paths (and `super::NAME`
//! where `super` is the crate root) outside comments, strings and test
//! code (`#[cfg(test)]` modules and the files they live in). No
//! dependency, no compiler plugin: a plain pass over the files.
//!
//! `cargo run --example layers [SRC]` (default `src`): prints each
//! violation as `FILE:LINE: MODULE uses TARGET …` and exits 1, or prints
//! nothing and exits 0.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// dynport's layers, lowest first.
const LAYERS: &[&[&str]] = &[
    &["sys"],
    &["util"],
    &["http", "ports"],
    &["config", "service", "scan", "state"],
    &["app"],
    &["api"],
    &["portserver"],
    &["server", "client"],
    &["manual"],
];

/// The crate's roots, which wire every module together.
const ROOTS: &[&str] = &["lib", "main"];

/// One use of another top-level module.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

fn main() -> ExitCode {
    let src = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("src"), PathBuf::from);
    match check(&src) {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("layers: cannot read {}: {e}", src.display());
            ExitCode::from(2)
        }
    }
}

/// Every violation in the tree at `src`, as lines to print.
fn check(src: &Path) -> std::io::Result<Vec<String>> {
    let mut uses = Vec::new();
    for file in rust_files(src)? {
        let rel = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        if is_test_file(&rel) {
            continue;
        }
        let module = module_path(&rel);
        let Some(top) = module.first() else { continue };
        if ROOTS.contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        for (line, target) in references(&code_only(&text), &module) {
            if &target != top {
                uses.push(Use {
                    from: top.clone(),
                    to: target,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    uses.sort();
    let mut problems = Vec::new();
    let mut unknown = BTreeSet::new();
    for u in &uses {
        for m in [&u.from, &u.to] {
            if layer(m).is_none() && unknown.insert(m.clone()) {
                problems.push(format!(
                    "{}:{}: module {m} is on no layer: add it to LAYERS in examples/layers.rs \
                     and to docs/layers.md",
                    u.file.display(),
                    u.line
                ));
            }
        }
        if let (Some(from), Some(to)) = (layer(&u.from), layer(&u.to))
            && to > from
        {
            problems.push(format!(
                "{}:{}: {} (layer {from}) uses {} (layer {to}), a layer above it",
                u.file.display(),
                u.line,
                u.from,
                u.to
            ));
        }
    }
    problems.extend(circles(&uses));
    Ok(problems)
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The circles among top-level modules, each told once with one use that
/// closes it.
fn circles(uses: &[Use]) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for u in uses {
        graph.entry(&u.from).or_default().insert(&u.to);
    }
    let mut found = BTreeSet::new();
    for &start in graph.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![(start, vec![start])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for &next in graph.get(at).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    let least = (0..circle.len()).min_by_key(|&i| circle[i]).unwrap_or(0);
                    circle.rotate_left(least);
                    found.insert(circle.iter().map(|s| s.to_string()).collect::<Vec<_>>());
                } else if seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    found
        .into_iter()
        .map(|circle| {
            let closing = uses
                .iter()
                .find(|u| u.from == circle[circle.len() - 1] && u.to == circle[0]);
            let at = closing.map_or(String::new(), |u| {
                format!("{}:{}: ", u.file.display(), u.line)
            });
            format!(
                "{at}modules use each other in a circle: {} -> {}",
                circle.join(" -> "),
                circle[0]
            )
        })
        .collect()
}

fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Files that hold only tests: `tests.rs`, `*_tests.rs` and whatever lies
/// in a `tests/` folder of a module.
fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    name == "tests"
        || name.ends_with("_tests")
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
}

/// The module a file holds: `api/leases/mod.rs` is `api::leases`,
/// `http/engine.rs` is `http::engine`, `lib.rs` is `lib`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The top-level modules `code` names, with their lines: `crate::NAME`,
/// and `super::…::NAME` when the `super`s climb to the crate root.
fn references(code: &str, module: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::").or_else(|| rest.find("super::")) {
            let (before, from) = rest.split_at(at);
            // `dynport_crate::` or `self.super::` are not paths of this crate.
            let bounded = !before.ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let mut path = from;
            let mut depth = module.len();
            let climbs = if path.starts_with("crate::") {
                path = &path["crate::".len()..];
                Some(0)
            } else {
                let mut ups = 0;
                while let Some(after) = path.strip_prefix("super::") {
                    path = after;
                    ups += 1;
                }
                depth = depth.saturating_sub(ups);
                (depth == 0 || ups > module.len()).then_some(0)
            };
            let name: String = path
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if bounded && climbs.is_some() && !name.is_empty() {
                found.push((n + 1, name.clone()));
            }
            let skip = from.len() - path.len() + name.len().max(1);
            rest = &from[skip.min(from.len())..];
        }
    }
    found
}

/// `text` with comments, string and character literals blanked (line
/// breaks kept, so lines still count) and test modules removed.
fn code_only(text: &str) -> String {
    let blanked = blank_literals(text);
    drop_test_modules(&blanked)
}

fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_lines = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep_lines(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(&ch) => out.push(keep_lines(ch)),
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    out.push(keep_lines(ch));
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // '\n', '\u{…}'
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Removes `#[cfg(test)]` modules (and `#[cfg(any(fuzzing, test))]` ones,
/// which only tests and the fuzz targets build), keeping line breaks.
fn drop_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_test_cfg(rest) {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // The item ends at `;` (a module in its own file) or at the brace
        // that closes its body.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        out.extend(item[..end].chars().filter(|&c| c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn find_test_cfg(code: &str) -> Option<usize> {
    ["#[cfg(test)]", "#[cfg(any(fuzzing, test))]"]
        .iter()
        .filter_map(|cfg| code.find(cfg))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of `files` (path, text) under a fresh directory.
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dynport-layers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const CLEAN: &[(&str, &str)] = &[
        ("lib.rs", "pub mod app;\npub mod http;\npub mod sys;\n"),
        ("sys/mod.rs", "pub fn socket() {}\n"),
        ("http/mod.rs", "use crate::sys::socket;\nmod engine;\n"),
        (
            "http/engine.rs",
            "use super::super::sys;\n// crate::app in a comment\n",
        ),
        (
            "app/mod.rs",
            "use crate::http;\nconst S: &str = \"crate::app\";\n",
        ),
    ];

    #[test]
    fn the_tree_as_it_is_keeps_its_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert_eq!(check(&src).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_clean_tree_passes() {
        assert_eq!(check(&tree("clean", CLEAN)).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn the_engine_using_the_app_fails() {
        let mut files = CLEAN.to_vec();
        files.push(("http/worker.rs", "use crate::app::App;\n"));
        let problems = check(&tree("upward", &files)).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .ends_with("worker.rs:1: http (layer 2) uses app (layer 4), a layer above it")
        );
        assert!(problems[1].contains("modules use each other in a circle: app -> http -> app"));
    }

    #[test]
    fn a_super_path_that_climbs_to_the_root_counts() {
        let mut files = CLEAN.to_vec();
        files.push(("sys/process.rs", "fn f() { super::super::http::x(); }\n"));
        let problems = check(&tree("super", &files)).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("sys (layer 0) uses http (layer 2)"));
        assert!(problems[1].contains("circle: http -> sys -> http"));
    }

    #[test]
    fn test_code_and_literals_are_not_uses() {
        let mut files = CLEAN.to_vec();
        files.push((
            "sys/more.rs",
            "const A: &str = r#\"crate::app\"#;\n/* crate::app */\n#[cfg(test)]\nmod tests {\n    use crate::app;\n}\n",
        ));
        files.push(("sys/tests.rs", "use crate::app;\n"));
        files.push(("sys/more/tests/x.rs", "use crate::app;\n"));
        assert_eq!(check(&tree("tests", &files)).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_module_on_no_layer_fails() {
        let mut files = CLEAN.to_vec();
        files.push(("gadgets/mod.rs", "use crate::sys;\n"));
        let problems = check(&tree("unknown", &files)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("module gadgets is on no layer"));
    }

    #[test]
    fn a_circle_on_one_layer_fails() {
        let files = [
            ("scan/mod.rs", "use crate::state;\n"),
            ("state/mod.rs", "use crate::scan;\n"),
        ];
        let problems = check(&tree("circle", &files)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("scan -> state -> scan"),
            "{problems:?}"
        );
    }
}
