use super::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

/// A fresh directory under the temporary directory, mode 0755.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynport-walk-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o755);
    dir
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn me() -> Vec<u32> {
    vec![crate::sys::euid()]
}

fn open(path: &Path) -> Result<Dir, Refusal> {
    open_dir(
        path,
        Rule {
            owners: &me(),
            create: None,
        },
    )
}

#[test]
fn a_directory_in_trusted_hands_is_opened() {
    let dir = temp_dir("plain");
    fs::create_dir(dir.join("state")).unwrap();
    chmod(&dir.join("state"), 0o755);
    let opened = open(&dir.join("state")).unwrap();
    assert_eq!(opened.path(), dir.join("state"));
    fs::write(dir.join("state/x"), b"1").unwrap();
    assert_eq!(opened.names().unwrap(), ["x"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_writable_component_is_named_and_refused() {
    let dir = temp_dir("writable");
    fs::create_dir_all(dir.join("open/state")).unwrap();
    chmod(&dir.join("open/state"), 0o755);
    chmod(&dir.join("open"), 0o777);
    match open(&dir.join("open/state")) {
        Err(Refusal::Writable { at, mode, .. }) => {
            assert_eq!((at, mode), (dir.join("open"), 0o777));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Sticky and root's: as /tmp, passed on the way but not as the end.
    chmod(&dir.join("open"), 0o1777);
    let root_owned = fs::metadata(&dir).unwrap().uid() == 0;
    assert_eq!(open(&dir.join("open/state")).is_ok(), root_owned);
    assert!(matches!(
        open(&dir.join("open")),
        Err(Refusal::Writable { .. })
    ));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn another_owner_is_refused_unless_trusted() {
    let meta = fs::metadata("/").unwrap();
    assert!(check(&meta, Path::new("/"), &[], false).is_ok());
    let dir = temp_dir("owner");
    let meta = fs::metadata(&dir).unwrap();
    let uid = meta.uid();
    if uid != 0 {
        let e = check(&meta, &dir, &[], false).unwrap_err();
        assert!(
            matches!(e, Refusal::Owner { uid: u, .. } if u == uid),
            "{e:?}"
        );
    }
    assert!(check(&meta, &dir, &[uid], false).is_ok());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_link_is_followed_and_its_target_walked() {
    let dir = temp_dir("link");
    fs::create_dir_all(dir.join("real/state")).unwrap();
    symlink(dir.join("real/state"), dir.join("absolute")).unwrap();
    symlink("real/./state/../state", dir.join("relative")).unwrap();
    fs::write(dir.join("real/state/x"), b"1").unwrap();
    for link in ["absolute", "relative"] {
        let opened = open(&dir.join(link)).unwrap();
        assert_eq!(opened.names().unwrap(), ["x"], "{link}");
    }
    // The target's components are checked as the path's own.
    chmod(&dir.join("real"), 0o777);
    match open(&dir.join("absolute")) {
        Err(Refusal::Writable { at, .. }) => assert_eq!(at, dir.join("real")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match open(&dir.join("relative")) {
        Err(Refusal::Writable { at, .. }) => assert_eq!(at, dir.join("real")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    chmod(&dir.join("real"), 0o755);
    symlink("loop", dir.join("loop")).unwrap();
    match open(&dir.join("loop")) {
        Err(Refusal::Io { error, .. }) => assert_eq!(error.raw_os_error(), Some(libc::ELOOP)),
        other => panic!("expected a loop, got {other:?}"),
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_on_the_way_or_a_missing_one_is_named() {
    let dir = temp_dir("file");
    fs::write(dir.join("file"), b"").unwrap();
    match open(&dir.join("file/state")) {
        Err(Refusal::NotDir { at }) => assert_eq!(at, dir.join("file")),
        other => panic!("expected not a directory, got {other:?}"),
    }
    match open(&dir.join("missing/state")) {
        Err(Refusal::Io { at, error }) => {
            assert_eq!(at, dir.join("missing"));
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected missing, got {other:?}"),
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_directories_are_made_when_asked() {
    let dir = temp_dir("create");
    let rule = Rule {
        owners: &me(),
        create: Some(0o755),
    };
    let opened = open_dir(&dir.join("a/b"), rule).unwrap();
    assert!(dir.join("a/b").is_dir());
    assert_eq!(opened.names().unwrap(), Vec::<OsString>::new());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_relative_path_starts_from_the_working_directory() {
    // The working directory of a test process is the crate's root, which
    // holds src/.
    let opened = open(Path::new("src/../src")).unwrap();
    assert!(opened.names().unwrap().contains(&OsString::from("lib.rs")));
}
