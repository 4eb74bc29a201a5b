//! The state directory itself, checked before anything is written to it:
//! created 0755 when missing, refused when another user could replace the
//! files in it or a directory on its path, as sshd and PostgreSQL refuse
//! theirs, and held open from then on.

use super::files::Dir;
use super::walk::{self, Refusal, Rule};
use std::fs;
use std::path::Path;

/// The mode a missing state directory is created with: others may read the
/// state file, only its owner may change what is there.
pub const DIR_MODE: u32 = 0o755;

/// Reaches `dir` by the rule of [`walk`] (every component from `/` root's or
/// this process's effective uid's, none writable by others but root's
/// sticky directories), making it when missing, checks that nothing but a
/// regular file sits where dynport's own files go, and holds it open: every
/// later file operation goes through the descriptor returned. The error is
/// the whole message of a configuration error (exit status 2).
pub fn prepare(dir: &Path) -> Result<Dir, String> {
    let euid = crate::sys::euid();
    let rule = Rule {
        owners: &[euid],
        create: Some(DIR_MODE),
    };
    let opened = walk::open_dir(dir, rule).map_err(|r| refusal_message(dir, &r, euid))?;
    check_own_files(&opened)?;
    Ok(opened)
}

/// What a refusal of the state directory `dir` says: the component at
/// fault, its owner and mode, and the fix.
pub fn refusal_message(dir: &Path, refusal: &Refusal, euid: u32) -> String {
    let shown = dir.display();
    match refusal {
        Refusal::Owner { at, uid, mode, end } => {
            let facts = facts(*uid, *mode);
            let runner = runner(euid);
            if *end {
                format!(
                    "state directory {} is not owned by {runner} ({facts}): its owner \
                     could replace dynport's files; run chown {euid} {}, or use another --state-dir",
                    at.display(),
                    quoted(at)
                )
            } else {
                format!(
                    "state directory {shown}: {} on its path is not owned by {runner} \
                     ({facts}): its owner could put another directory in its place; use a \
                     --state-dir whose every directory from / is root's or dynport's own",
                    at.display()
                )
            }
        }
        Refusal::Writable { at, uid, mode, end } => {
            let facts = facts(*uid, *mode);
            if *end {
                format!(
                    "state directory {} is writable by group or others ({facts}): they \
                     could replace dynport's files; run chmod go-w {}, or use another --state-dir",
                    at.display(),
                    quoted(at)
                )
            } else {
                format!(
                    "state directory {shown}: {} on its path is writable by group or others \
                     ({facts}) and is not root's with the sticky bit, as /tmp: they could put \
                     another directory in its place; run chmod go-w {}, or use another --state-dir",
                    at.display(),
                    quoted(at)
                )
            }
        }
        Refusal::NotDir { at } if at.as_path() == dir => {
            format!("state directory {shown} is not a directory; give --state-dir a directory")
        }
        Refusal::NotDir { at } => format!(
            "state directory {shown}: {} on its path is not a directory; give --state-dir a directory",
            at.display()
        ),
        Refusal::Io { at, error } => format!(
            "cannot use state directory {shown}: {}: {error}; create it or give another --state-dir",
            at.display()
        ),
    }
}

fn facts(uid: u32, mode: u32) -> String {
    format!("owner {}, mode {:04o}", user(uid), mode & 0o7777)
}

fn runner(euid: u32) -> String {
    if euid == 0 {
        "root, which runs dynport".to_string()
    } else {
        format!("{}, which runs dynport, nor by root", user(euid))
    }
}

/// Refuses a link, FIFO, device or directory where dynport's own files go.
fn check_own_files(dir: &Dir) -> Result<(), String> {
    for name in super::OWN_FILES {
        if let Some(kind) = dir.not_regular(name) {
            return Err(format!(
                "{} is {kind}, not a regular file; dynport neither follows nor reads it: remove it",
                dir.join(name).display()
            ));
        }
    }
    Ok(())
}

/// `uid 1000 (alice)`, or `uid 1000` when /etc/passwd does not name it.
pub fn user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// The name /etc/passwd gives `uid`, if any. /etc/passwd only, not NSS: a
/// name is a courtesy in a message, not worth a lookup that may block.
fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd_entries(&passwd)
        .find(|&(_, id)| id == uid)
        .map(|(name, _)| name.to_string())
}

/// The uid /etc/passwd gives the user `name`, if any: only root can have
/// put it there.
pub fn uid_of(name: &str) -> Option<u32> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd_entries(&passwd).find_map(|(n, id)| (n == name).then_some(id))
}

/// The printable names and uids of `name:password:uid:…` lines.
fn passwd_entries(passwd: &str) -> impl Iterator<Item = (&str, u32)> {
    passwd.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        crate::util::text::is_printable(name).then_some((name, id))
    })
}

/// `path` as a shell word, quoted when it needs to be.
fn quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dynport-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn writable(at: &str, mode: u32, end: bool) -> Refusal {
        let at = at.into();
        Refusal::Writable {
            at,
            uid: 0,
            mode,
            end,
        }
    }

    fn owner(at: &str, uid: u32, end: bool) -> Refusal {
        let at = at.into();
        Refusal::Owner {
            at,
            uid,
            mode: 0o755,
            end,
        }
    }

    #[test]
    fn group_or_other_write_is_refused_naming_the_fix() {
        let dir = Path::new("/srv/state");
        let e = refusal_message(dir, &writable("/srv/state", 0o775, true), 0);
        assert_eq!(
            e,
            "state directory /srv/state is writable by group or others (owner uid 0 (root), \
             mode 0775): they could replace dynport's files; run chmod go-w /srv/state, \
             or use another --state-dir"
        );
        let e = refusal_message(dir, &writable("/srv", 0o777, false), 0);
        assert_eq!(
            e,
            "state directory /srv/state: /srv on its path is writable by group or others \
             (owner uid 0 (root), mode 0777) and is not root's with the sticky bit, as /tmp: \
             they could put another directory in its place; run chmod go-w /srv, or use \
             another --state-dir"
        );
    }

    #[test]
    fn another_users_directory_is_refused_but_roots_is_not() {
        let dir = Path::new("/home/bob/my state");
        let e = refusal_message(dir, &owner("/home/bob/my state", 4243, true), 4242);
        assert_eq!(
            e,
            "state directory /home/bob/my state is not owned by uid 4242, which runs \
             dynport, nor by root (owner uid 4243, mode 0755): its owner could replace \
             dynport's files; run chown 4242 '/home/bob/my state', or use another --state-dir"
        );
        let e = refusal_message(dir, &owner("/home/bob", 4243, false), 0);
        assert_eq!(
            e,
            "state directory /home/bob/my state: /home/bob on its path is not owned by root, \
             which runs dynport (owner uid 4243, mode 0755): its owner could put another \
             directory in its place; use a --state-dir whose every directory from / is root's \
             or dynport's own"
        );
    }

    #[test]
    fn a_missing_directory_is_created_0755() {
        let dir = temp_dir("create").join("a").join("b");
        prepare(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_link_where_the_lock_goes_is_refused() {
        let dir = temp_dir("own-files");
        prepare(&dir).unwrap();
        let lock = dir.join(super::super::LOCK_FILE);
        std::os::unix::fs::symlink("/etc/passwd", &lock).unwrap();
        let e = prepare(&dir).unwrap_err();
        assert_eq!(
            e,
            format!(
                "{} is a symbolic link, not a regular file; dynport neither follows nor \
                 reads it: remove it",
                lock.display()
            )
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_is_not_a_state_directory() {
        let dir = temp_dir("file");
        fs::write(&dir, b"").unwrap();
        let e = prepare(&dir).unwrap_err();
        assert!(
            e.ends_with("is not a directory; give --state-dir a directory"),
            "{e}"
        );
        fs::remove_file(dir).unwrap();
    }

    #[test]
    fn root_is_named_from_etc_passwd() {
        assert_eq!(user(0), "uid 0 (root)");
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("no such user, not even one"), None);
    }
}
