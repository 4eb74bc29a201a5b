//! `--name auto`: a lease's name made from where the command runs. The git
//! repository's top directory name (else the current directory's), made a
//! DNS label; in a linked git worktree, its branch (or its short commit
//! when detached) comes first: `fix-ui.shop`.
//!
//! The repository is found by reading `.git` as git lays it out, without
//! running git: a directory in a main worktree, a file `gitdir: PATH` in a
//! linked worktree (whose git directory holds `commondir`, the way to the
//! main repository) or a submodule. Only where `HEAD` is kept elsewhere (the
//! reftable format) is `git` asked for the branch. Directory and branch
//! names come from anyone: whatever they hold, the result is a valid name
//! or an error that says to give `--name`.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `--name` takes to make the name from the repository or directory.
pub const AUTO: &str = "auto";
/// The longest DNS label.
const MAX_LABEL: usize = 63;
/// The most read of `.git`, `HEAD` or `commondir`: each holds one line.
const MAX_FILE: u64 = 4096;
/// How many characters of a commit a detached worktree's name takes, as
/// `git log --oneline` shows it.
const SHORT_COMMIT: usize = 7;

/// The name `--name auto` means in directory `cwd`.
pub fn auto(cwd: &Path) -> Result<String, String> {
    let place = find(cwd)?;
    let top = place.top.file_name().map(|n| n.to_string_lossy());
    let top = top.as_deref().unwrap_or("");
    let top = top
        .strip_suffix(".git")
        .filter(|_| place.bare)
        .unwrap_or(top);
    let name = label(top).ok_or_else(|| {
        format!(
            "--name auto: the directory name {top:?} ({:?}) has no letter or digit \
             to make a name of; give one with --name NAME",
            place.top
        )
    })?;
    match place.branch {
        None => Ok(name),
        Some(branch) => {
            let first = label(&branch).ok_or_else(|| {
                format!(
                    "--name auto: the worktree's branch {branch:?} has no letter or digit \
                     to make a name of; give one with --name NAME"
                )
            })?;
            Ok(format!("{first}.{name}"))
        }
    }
}

/// `text` as one DNS label: lowercased, every run of characters other
/// than `a-z` and `0-9` one `-`, no `-` at either end, at most 63
/// characters; `None` when nothing is left.
pub fn label(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() > MAX_LABEL {
            break;
        }
    }
    out.truncate(MAX_LABEL);
    let out = out.trim_end_matches('-');
    (!out.is_empty()).then(|| out.to_string())
}

/// Where a name comes from: the directory whose name it takes, and the
/// branch (or short commit) of a linked worktree.
#[derive(Debug, PartialEq, Eq)]
struct Place {
    top: PathBuf,
    /// `top` is a bare repository (`shop.git`), whose name drops `.git`.
    bare: bool,
    branch: Option<String>,
}

/// The repository `cwd` lies in, as git finds it: the nearest `.git` in
/// `cwd` or above; `cwd` itself when there is none.
fn find(cwd: &Path) -> Result<Place, String> {
    for dir in cwd.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = dot_git.metadata() else {
            continue;
        };
        if meta.is_dir() {
            return Ok(plain(dir));
        }
        if meta.is_file() {
            return linked(dir, &dot_git);
        }
    }
    Ok(plain(cwd))
}

fn plain(top: &Path) -> Place {
    Place {
        top: top.to_path_buf(),
        bare: false,
        branch: None,
    }
}

/// A `.git` file: a linked worktree when its git directory holds
/// `commondir`, else a submodule (a repository of its own, at `top`).
fn linked(top: &Path, dot_git: &Path) -> Result<Place, String> {
    let text = read_line(dot_git)?;
    let Some(git_dir) = text.strip_prefix("gitdir:").map(str::trim) else {
        return Err(format!(
            "--name auto: {dot_git:?} does not start with 'gitdir:'; give a name with --name NAME"
        ));
    };
    let git_dir = top.join(git_dir);
    let common_file = git_dir.join("commondir");
    if common_file.symlink_metadata().is_err() {
        return Ok(plain(top));
    }
    let common = git_dir.join(read_line(&common_file)?);
    let common = common.canonicalize().map_err(|e| {
        format!(
            "--name auto: cannot find the repository that {common_file:?} names ({common:?}): \
             {e}; give a name with --name NAME"
        )
    })?;
    let (main, bare) = match common.file_name() {
        Some(n) if n == ".git" => (common.parent().unwrap_or(&common).to_path_buf(), false),
        _ => (common.clone(), true),
    };
    Ok(Place {
        top: main,
        bare,
        branch: Some(branch(top, &git_dir)?),
    })
}

/// A linked worktree's branch, from `HEAD` in its git directory: the
/// branch it is on, else the short commit it is at.
fn branch(worktree: &Path, git_dir: &Path) -> Result<String, String> {
    let head_file = git_dir.join("HEAD");
    let head = read_line(&head_file)?;
    if let Some(reference) = head.strip_prefix("ref:").map(str::trim) {
        // The reftable format keeps this stand-in in HEAD and the real
        // HEAD in its tables: only git reads those.
        if reference == "refs/heads/.invalid" {
            return ask_git(worktree);
        }
        return Ok(reference
            .strip_prefix("refs/heads/")
            .unwrap_or(reference)
            .to_string());
    }
    if head.len() >= SHORT_COMMIT && head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(head[..SHORT_COMMIT].to_string());
    }
    Err(format!(
        "--name auto: {head_file:?} names neither a branch nor a commit; \
         give a name with --name NAME"
    ))
}

/// The branch of `worktree`, else its short commit, as `git` says.
fn ask_git(worktree: &Path) -> Result<String, String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(worktree)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "--name auto: the worktree {worktree:?} keeps its HEAD where only git \
                     reads it, and git cannot be run: {e}; install git or give a name with \
                     --name NAME"
                )
            })
    };
    for args in [
        &["symbolic-ref", "--quiet", "--short", "HEAD"][..],
        &["rev-parse", "--short", "HEAD"][..],
    ] {
        let out = git(args)?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !said.is_empty() {
            return Ok(said);
        }
    }
    Err(format!(
        "--name auto: git names no branch or commit for the worktree {worktree:?}; \
         give a name with --name NAME"
    ))
}

/// The first line of the small regular file `path`. It is opened without
/// blocking, so that a FIFO in its place cannot hang the client, and read
/// up to [`MAX_FILE`] bytes.
fn read_line(path: &Path) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!("--name auto: cannot read {path:?}: {e}; give a name with --name NAME")
    };
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if !meta.is_file() {
        return Err(fail(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().next().unwrap_or("").trim_end().to_string())
}

#[cfg(test)]
mod tests;
