//! Reaching a directory the way sshd's StrictModes and systemd's `chase()`
//! do: one component at a time from `/` (or from the working directory, for
//! a relative path), each looked up in the directory before it as a
//! descriptor, and each checked to be in trusted hands. The server, its
//! client and the portserver socket all go through [`open_dir`].
//!
//! The rule: every directory on the way is owned by root or by a trusted
//! uid and writable by neither group nor others, unless it is root's with
//! the sticky bit (as `/tmp`), where no one may take away what is not
//! theirs. A symbolic link is followed only from a directory that passed,
//! when the link itself is root's or a trusted uid's, and its target is
//! walked by the same rule. The directory reached may not be writable by
//! group or others at all.

use super::files::Dir;
use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Links followed at most on one walk, as the kernel's own limit.
const MAX_LINKS: u32 = 40;

/// Why a path was refused; `at` is the component at fault, as the path (or
/// a link's target) names it.
#[derive(Debug)]
pub enum Refusal {
    /// `at` belongs to a uid that is neither root nor trusted.
    Owner {
        at: PathBuf,
        uid: u32,
        mode: u32,
        end: bool,
    },
    /// Group or others may write to `at`.
    Writable {
        at: PathBuf,
        uid: u32,
        mode: u32,
        end: bool,
    },
    /// `at` is neither a directory nor a link.
    NotDir { at: PathBuf },
    /// `at` could not be looked up (missing, not searchable, a loop, …).
    Io { at: PathBuf, error: io::Error },
}

impl Refusal {
    /// The component at fault.
    pub fn at(&self) -> &Path {
        match self {
            Refusal::Owner { at, .. }
            | Refusal::Writable { at, .. }
            | Refusal::NotDir { at }
            | Refusal::Io { at, .. } => at,
        }
    }
}

/// What to trust and whether to make what is missing.
#[derive(Clone, Copy, Debug)]
pub struct Rule<'a> {
    /// The uids trusted besides root.
    pub owners: &'a [u32],
    /// Missing directories are made with this mode, whatever the umask,
    /// when set.
    pub create: Option<u32>,
}

/// The directory `path`, reached and checked by the rule of this module and
/// held open from then on.
pub fn open_dir(path: &Path, rule: Rule) -> Result<Dir, Refusal> {
    let mut walk = Walk::start(path, rule)?;
    while let Some(component) = walk.todo.pop_front() {
        walk.step(component)?;
    }
    walk.finish(path)
}

/// Checks one component's owner and mode: `sticky_ok` lets a root-owned
/// directory with the sticky bit be writable by all, as on the way to the
/// end of a path (and not at its end). A link's mode means nothing; its
/// owner does.
pub fn check(meta: &Metadata, at: &Path, owners: &[u32], sticky_ok: bool) -> Result<(), Refusal> {
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let (at, end) = (at.to_path_buf(), !sticky_ok);
    if uid != 0 && !owners.contains(&uid) {
        return Err(Refusal::Owner { at, uid, mode, end });
    }
    let sticky = uid == 0 && mode & libc::S_ISVTX != 0;
    if !meta.file_type().is_symlink() && mode & 0o022 != 0 && !(sticky_ok && sticky) {
        return Err(Refusal::Writable { at, uid, mode, end });
    }
    Ok(())
}

/// Where a walk stands: the directories entered so far, each with the path
/// that shows it, and the components still to walk.
struct Walk<'a> {
    rule: Rule<'a>,
    /// The first directory of `stack` was checked: false for the working
    /// directory a relative path starts from, which the caller chose to
    /// stand in and holds (no one can swap it), until a link in it is
    /// followed.
    base_checked: bool,
    stack: Vec<(OwnedFd, PathBuf)>,
    todo: VecDeque<OsString>,
    links: u32,
}

impl<'a> Walk<'a> {
    fn start(path: &Path, rule: Rule<'a>) -> Result<Walk<'a>, Refusal> {
        let mut walk = Walk {
            rule,
            base_checked: false,
            stack: Vec::new(),
            todo: VecDeque::new(),
            links: 0,
        };
        if path.as_os_str().is_empty() {
            let error = io::Error::from(io::ErrorKind::NotFound);
            let at = path.into();
            return Err(Refusal::Io { at, error });
        }
        if path.is_absolute() {
            walk.enter_root()?;
        } else {
            let at = PathBuf::new();
            let flags = libc::O_PATH | libc::O_DIRECTORY;
            let fd = crate::sys::open_at(None, c".", flags, 0).map_err(|error| Refusal::Io {
                at: PathBuf::from("."),
                error,
            })?;
            walk.stack.push((fd, at));
        }
        walk.queue(path, false);
        Ok(walk)
    }

    /// The directory reached, checked as the end of the path (no sticky
    /// exception), reopened to hold.
    fn finish(mut self, path: &Path) -> Result<Dir, Refusal> {
        let (fd, at) = self.stack.pop().unwrap_or_else(|| unreachable!());
        let at = if at.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            at
        };
        check(&metadata(&fd, &at)?, &at, self.rule.owners, false)?;
        Ok(Dir::from_fd(fd, path.to_path_buf()))
    }

    /// Puts `path`'s components before those still to walk, or after them.
    fn queue(&mut self, path: &Path, front: bool) {
        let names: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
            })
            .collect();
        if front {
            for name in names.into_iter().rev() {
                self.todo.push_front(name);
            }
        } else {
            self.todo.extend(names);
        }
    }

    /// Starts over from `/`, checked as any other directory.
    fn enter_root(&mut self) -> Result<(), Refusal> {
        let at = PathBuf::from("/");
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let fd = crate::sys::open_at(None, c"/", flags, 0).map_err(|error| Refusal::Io {
            at: at.clone(),
            error,
        })?;
        check(&metadata(&fd, &at)?, &at, self.rule.owners, true)?;
        self.stack.clear();
        self.base_checked = true;
        self.stack.push((fd, at));
        Ok(())
    }

    /// Checks the working directory a relative path started from, when
    /// the walk stands in it: a link there is followed only if it passes.
    fn check_base(&mut self) -> Result<(), Refusal> {
        if self.base_checked || self.stack.len() != 1 {
            return Ok(());
        }
        let (fd, _) = &self.stack[0];
        let at = PathBuf::from(".");
        check(&metadata(fd, &at)?, &at, self.rule.owners, true)?;
        self.base_checked = true;
        Ok(())
    }

    fn step(&mut self, name: OsString) -> Result<(), Refusal> {
        if name == ".." && self.stack.len() > 1 {
            self.stack.pop();
            return Ok(());
        }
        let (parent, shown) = self.stack.last().unwrap_or_else(|| unreachable!());
        let at = shown.join(&name);
        let c_name = CString::new(name.clone().into_vec()).map_err(|_| Refusal::Io {
            at: at.clone(),
            error: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        let fd = lookup(parent, &c_name, self.rule.create).map_err(|error| Refusal::Io {
            at: at.clone(),
            error,
        })?;
        let meta = metadata(&fd, &at)?;
        if meta.file_type().is_symlink() {
            self.check_base()?;
            return self.follow(&fd, &meta, at);
        }
        if !meta.is_dir() {
            return Err(Refusal::NotDir { at });
        }
        // The last component is checked as the end: no sticky exception.
        check(&meta, &at, self.rule.owners, !self.todo.is_empty())?;
        if name == ".." {
            // `..` above where a relative path started: the new start.
            self.stack.clear();
            self.base_checked = true;
        }
        self.stack.push((fd, at));
        Ok(())
    }

    /// Follows the link `link` at `at`, whose directory passed: the link
    /// must be trusted too, and its target is walked next.
    fn follow(&mut self, link: &OwnedFd, meta: &Metadata, at: PathBuf) -> Result<(), Refusal> {
        check(meta, &at, self.rule.owners, true)?;
        self.links += 1;
        let target = match self.links {
            n if n > MAX_LINKS => Err(io::Error::from_raw_os_error(libc::ELOOP)),
            _ => crate::sys::read_link(link.as_fd()),
        };
        let target = PathBuf::from(OsString::from_vec(
            target.map_err(|error| Refusal::Io { at, error })?,
        ));
        if target.is_absolute() {
            self.enter_root()?;
        }
        self.queue(&target, true);
        Ok(())
    }
}

/// `name` in `parent`, a link not followed; made first when missing and
/// `create` gives a mode.
fn lookup(parent: &OwnedFd, name: &CString, create: Option<u32>) -> io::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_NOFOLLOW;
    match crate::sys::open_at(Some(parent.as_fd()), name, flags, 0) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_some() => {
            let mode = create.unwrap_or(0o755);
            match crate::sys::mkdir_at(parent.as_fd(), name, mode) {
                // The umask may have taken bits away; the mode is meant.
                Ok(()) => set_mode(parent, name, mode)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            crate::sys::open_at(Some(parent.as_fd()), name, flags, 0)
        }
        other => other,
    }
}

fn set_mode(parent: &OwnedFd, name: &CString, mode: u32) -> io::Result<()> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let dir = File::from(crate::sys::open_at(Some(parent.as_fd()), name, flags, 0)?);
    dir.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn metadata(fd: &OwnedFd, at: &Path) -> Result<Metadata, Refusal> {
    let error = |error| Refusal::Io {
        at: at.to_path_buf(),
        error,
    };
    let file = File::from(fd.try_clone().map_err(error)?);
    file.metadata().map_err(error)
}

/// `path` with a `/` after it, as a directory is shown in a message.
pub fn shown_as_dir(path: &Path) -> String {
    let text = path.display().to_string();
    if text.ends_with('/') {
        text
    } else {
        format!("{text}/")
    }
}

#[cfg(test)]
mod tests;
