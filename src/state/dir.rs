//! The state directory itself, checked before anything is written to it:
//! created 0755 when missing, refused when another user could replace the
//! files in it, as sshd and PostgreSQL refuse theirs.

use super::files::not_regular;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The mode a missing state directory is created with: others may read the
/// state file, only its owner may change what is there.
pub const DIR_MODE: u32 = 0o755;

/// Makes sure `dir` exists and is dynport's alone to change: owned by this
/// process's effective uid or root, writable by neither group nor others, and
/// holding nothing but a regular file where dynport's own files go. The
/// error is the whole message of a configuration error (exit status 2).
pub fn prepare(dir: &Path) -> Result<(), String> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir)?,
        Err(e) => return Err(format!("cannot use state directory {}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!(
            "state directory {} is not a directory; give --state-dir a directory",
            dir.display()
        ));
    }
    check_owner_and_mode(dir, meta.uid(), meta.mode(), crate::sys::euid())?;
    check_own_files(dir)
}

fn create(dir: &Path) -> Result<fs::Metadata, String> {
    let failed = |e: std::io::Error| {
        format!(
            "cannot create state directory {}: {e}; create it or give another --state-dir",
            dir.display()
        )
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(failed)?;
    // The umask may have taken bits away; the mode is meant, not a default.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(failed)?;
    fs::metadata(dir).map_err(failed)
}

/// Refuses a directory that a user other than `euid` (or root) owns, or
/// that group or others may write to.
pub fn check_owner_and_mode(dir: &Path, uid: u32, mode: u32, euid: u32) -> Result<(), String> {
    let shown = dir.display();
    let facts = format!("owner {}, mode {:04o}", user(uid), mode & 0o7777);
    if uid != euid && uid != 0 {
        let runner = if euid == 0 {
            "root, which runs dynport".to_string()
        } else {
            format!("{}, which runs dynport, nor by root", user(euid))
        };
        return Err(format!(
            "state directory {shown} is not owned by {runner} ({facts}): its owner \
             could replace dynport's files; run chown {euid} {}, or use another --state-dir",
            quoted(dir)
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "state directory {shown} is writable by group or others ({facts}): they \
             could replace dynport's files; run chmod go-w {}, or use another --state-dir",
            quoted(dir)
        ));
    }
    Ok(())
}

/// Refuses a link, FIFO, device or directory where dynport's own files go.
fn check_own_files(dir: &Path) -> Result<(), String> {
    for name in super::OWN_FILES {
        let path = dir.join(name);
        if let Some(kind) = not_regular(&path) {
            return Err(format!(
                "{} is {kind}, not a regular file; dynport neither follows nor reads it: remove it",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `uid 1000 (alice)`, or `uid 1000` when /etc/passwd does not name it.
fn user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// The name /etc/passwd gives `uid`, if any. /etc/passwd only, not NSS: a
/// name is a courtesy in a message, not worth a lookup that may block.
fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && crate::text::is_printable(name)).then(|| name.to_string())
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

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dynport-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn group_or_other_write_is_refused_naming_the_fix() {
        let dir = Path::new("/srv/state");
        let e = check_owner_and_mode(dir, 0, 0o40775, 0).unwrap_err();
        assert_eq!(
            e,
            "state directory /srv/state is writable by group or others (owner uid 0 (root), \
             mode 0775): they could replace dynport's files; run chmod go-w /srv/state, \
             or use another --state-dir"
        );
        assert!(check_owner_and_mode(dir, 0, 0o41777, 0).is_err());
        assert!(check_owner_and_mode(dir, 0, 0o40757, 0).is_err());
        assert_eq!(check_owner_and_mode(dir, 0, 0o40755, 0), Ok(()));
        assert_eq!(check_owner_and_mode(dir, 0, 0o40700, 0), Ok(()));
    }

    #[test]
    fn another_users_directory_is_refused_but_roots_is_not() {
        let dir = Path::new("/home/bob/my state");
        assert_eq!(check_owner_and_mode(dir, 0, 0o40755, 4242), Ok(()));
        assert_eq!(check_owner_and_mode(dir, 4242, 0o40755, 4242), Ok(()));
        let e = check_owner_and_mode(dir, 4243, 0o40755, 4242).unwrap_err();
        assert_eq!(
            e,
            "state directory /home/bob/my state is not owned by uid 4242, which runs \
             dynport, nor by root (owner uid 4243, mode 0755): its owner could replace \
             dynport's files; run chown 4242 '/home/bob/my state', or use another --state-dir"
        );
        let e = check_owner_and_mode(dir, 4243, 0o40755, 0).unwrap_err();
        assert!(
            e.contains("is not owned by root, which runs dynport ("),
            "{e}"
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
    }
}
