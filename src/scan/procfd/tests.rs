//! Unit tests of the walk of `/proc/*/fd`: on fake proc roots of real
//! directories and links, and on this process in `/proc`.

use super::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::PathBuf;
use std::time::Duration;

/// A deadline no test reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// What [`find`] finds of every process, within no deadline.
fn owners(root: &Path, wanted: &[u64]) -> HashMap<u64, u32> {
    let found = find(root, wanted, Scope::Every, far());
    assert!(found.complete, "{found:?}");
    found.owners
}

#[test]
fn socket_links_name_their_inode() {
    assert_eq!(socket_inode(b"socket:[123]"), Some(123));
    assert_eq!(socket_inode(b"socket:[4294967296]"), Some(4_294_967_296));
    assert_eq!(socket_inode(b"socket:[]"), None);
    assert_eq!(socket_inode(b"socket:[12a]"), None);
    assert_eq!(socket_inode(b"socket:[+12]"), None);
    assert_eq!(socket_inode(b"socket:[12"), None);
    assert_eq!(socket_inode(b"pipe:[123]"), None);
    assert_eq!(socket_inode(b"/dev/null"), None);
}

#[test]
fn only_numeric_proc_entries_are_processes() {
    assert_eq!(pid_of(c"4242"), Some(4242));
    assert_eq!(pid_of(c"self"), None);
    assert_eq!(pid_of(c"thread-self"), None);
    assert_eq!(pid_of(c""), None);
    assert_eq!(pid_of(c"99999999999"), None);
}

#[test]
fn search_is_done_once_every_inode_is_found() {
    let mut search = Search::new(&[7, 0, 5, 7]);
    assert!(!search.offer(10, 6));
    assert!(!search.offer(11, 7));
    assert!(!search.offer(12, 7), "7 was found already");
    assert!(search.offer(13, 5));
    assert!(search.offer(9, 7), "a lower pid found later wins");
    assert_eq!(search.found, HashMap::from([(7, 9), (5, 13)]));
    assert!(Search::new(&[0]).done(), "inode 0 is never looked for");
}

/// A fake `/proc`: processes with `fd` links and a `comm`, and entries
/// that are no process.
fn fake_proc(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("dynport-procfd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let process = |pid: &str, links: &[(&str, &str)], comm: &str| {
        let fd = root.join(pid).join("fd");
        std::fs::create_dir_all(&fd).unwrap();
        for (n, target) in links {
            symlink(target, fd.join(n)).unwrap();
        }
        std::fs::write(root.join(pid).join("comm"), comm).unwrap();
    };
    process("1", &[("0", "/dev/null"), ("3", "socket:[100]")], "init\n");
    process(
        "42",
        &[("4", "socket:[200]"), ("5", "pipe:[300]")],
        "python3\n",
    );
    process("sys", &[("6", "socket:[300]")], "not a process\n");
    std::fs::create_dir_all(root.join("43")).unwrap(); // no fd directory
    root
}

#[test]
fn find_matches_inodes_to_the_processes_holding_them() {
    let root = fake_proc("find");
    let found = owners(&root, &[100, 200, 300, 400]);
    assert_eq!(found, HashMap::from([(100, 1), (200, 42)]));
    assert_eq!(command(&root, 42).as_deref(), Some("python3"));
    assert_eq!(command(&root, 43), None);
    assert_eq!(owners(&root, &[]), HashMap::new());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_walk_of_many_processes_finds_the_lowest_holder() {
    let root = std::env::temp_dir().join(format!("dynport-procfd-many-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for pid in 1..=750 {
        let fd = root.join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&fd).unwrap();
        symlink(format!("socket:[{}]", 100_000 + pid), fd.join("3")).unwrap();
        if pid % 100 == 7 {
            symlink("socket:[42]", fd.join("4")).unwrap(); // shared, as after fork
        }
    }
    // 1 is never found, so every process is looked into.
    let found = owners(&root, &[42, 100_600, 1]);
    assert_eq!(found, HashMap::from([(42, 7), (100_600, 600)]));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn find_sees_a_socket_of_this_process_in_proc() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let link = format!("/proc/self/fd/{}", listener.as_raw_fd());
    let inode = std::fs::metadata(link).unwrap().ino();
    let found = owners(Path::new("/proc"), &[inode]);
    assert_eq!(found, HashMap::from([(inode, std::process::id())]));
}

#[test]
fn a_fd_directory_path_is_written_without_allocating() {
    let mut buf = [0u8; 16];
    assert_eq!(fd_dir(1, &mut buf), Some(c"1/fd"));
    assert_eq!(fd_dir(u32::MAX, &mut buf), Some(c"4294967295/fd"));
    assert_eq!(
        fd_dir(42, &mut buf),
        Some(c"42/fd"),
        "a longer path before leaves no trace"
    );
}

/// A fake `/proc` of processes 1 to `count`, each holding its own socket
/// `100_000 + pid`, and the shared sockets `shared` names with their pids.
fn split_proc(name: &str, count: u32, shared: &[(u32, u64)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("dynport-procfd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for pid in 1..=count {
        let fd = root.join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&fd).unwrap();
        symlink(format!("socket:[{}]", 100_000 + pid), fd.join("3")).unwrap();
    }
    for (n, &(pid, inode)) in shared.iter().enumerate() {
        let link = root
            .join(pid.to_string())
            .join("fd")
            .join((10 + n).to_string());
        symlink(format!("socket:[{inode}]"), link).unwrap();
    }
    root
}

#[test]
fn a_split_walk_finds_the_lowest_holder_in_either_half() {
    // Processes 1 to 300 are the lower half, 301 to 600 the upper.
    let shared = [
        (450, 42),
        (120, 42),
        (590, 43),
        (250, 44),
        (200, 44),
        (580, 45),
        (320, 45),
    ];
    let root = split_proc("split", 600, &shared);
    let walk = Walk::open(&root, far()).unwrap();
    let mut buf = vec![0u8; NAMES_BUF];
    let pids = walk.pids(Scope::Every, &mut buf).unwrap();
    assert_eq!(
        pids,
        (1..=600).collect::<Vec<u32>>(),
        "ascending, whatever the listing"
    );
    // 1 is never found, so both halves are walked to their end.
    let found = walk
        .split(&pids, Search::new(&[42, 43, 44, 45, 1, 100_301]), &mut buf)
        .found;
    let expected = HashMap::from([(42, 120), (43, 590), (44, 200), (45, 320), (100_301, 301)]);
    assert_eq!(found, expected);
    assert_eq!(owners(&root, &[42, 43, 44, 45, 1, 100_301]), expected);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_split_walk_keeps_the_lower_half_s_find_when_it_stops_first() {
    let root = split_proc("split-early", 40, &[(39, 42), (2, 42)]);
    let walk = Walk::open(&root, far()).unwrap();
    let mut buf = vec![0u8; NAMES_BUF];
    let pids = walk.pids(Scope::Every, &mut buf).unwrap();
    let found = walk
        .split(&pids, Search::new(&[42, 100_003]), &mut buf)
        .found;
    assert_eq!(found, HashMap::from([(42, 2), (100_003, 3)]));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_walk_told_to_stop_looks_into_no_more_processes() {
    let root = split_proc("stop", 40, &[]);
    let walk = Walk::open(&root, far()).unwrap();
    let mut buf = vec![0u8; NAMES_BUF];
    let pids = walk.pids(Scope::Every, &mut buf).unwrap();
    let mut search = Search::new(&[100_001]);
    walk.run(&pids, &mut search, Some(&AtomicBool::new(true)), &mut buf);
    assert_eq!(search.found, HashMap::new());
    walk.run(&pids, &mut search, Some(&AtomicBool::new(false)), &mut buf);
    assert_eq!(search.found, HashMap::from([(100_001, 1)]));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_scope_of_one_user_looks_only_into_that_users_processes() {
    let root = fake_proc("scope");
    let me = crate::sys::euid();
    let own = find(&root, &[100, 200], Scope::OwnedBy(me), far());
    let expected = HashMap::from([(100, 1), (200, 42)]);
    assert_eq!((own.owners, own.complete), (expected, true));
    let other = find(&root, &[100, 200], Scope::OwnedBy(me + 1), far());
    assert_eq!((other.owners, other.complete), (HashMap::new(), true));
    let none = find(&root, &[100, 200], Scope::Nothing, far());
    assert_eq!((none.owners, none.complete), (HashMap::new(), true));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_walk_past_its_deadline_answers_incomplete() {
    let root = split_proc("late", 600, &[]);
    let found = find(&root, &[100_001], Scope::Every, Instant::now());
    assert_eq!((found.owners, found.complete), (HashMap::new(), false));
    // Every inode found: complete, whatever the clock says after.
    assert!(find(&root, &[], Scope::Every, Instant::now()).complete);
    let walk = Walk::open(&root, far()).unwrap();
    let mut buf = vec![0u8; NAMES_BUF];
    let pids = walk.pids(Scope::Every, &mut buf).unwrap();
    let mut search = Search::new(&[100_001, 100_600]);
    let late = Walk::open(&root, Instant::now()).unwrap();
    late.run(&pids, &mut search, None, &mut buf);
    assert_eq!(search.found, HashMap::new());
    assert!(late.late.load(Ordering::Relaxed));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_walk_of_a_users_own_processes_finds_this_processs_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let link = format!("/proc/self/fd/{}", listener.as_raw_fd());
    let inode = std::fs::metadata(link).unwrap().ino();
    let me = crate::sys::euid();
    let found = find(Path::new("/proc"), &[inode], Scope::OwnedBy(me), far());
    assert_eq!(found.owners, HashMap::from([(inode, std::process::id())]));
    let other = find(Path::new("/proc"), &[inode], Scope::OwnedBy(me + 1), far());
    assert_eq!((other.owners, other.complete), (HashMap::new(), true));
}
