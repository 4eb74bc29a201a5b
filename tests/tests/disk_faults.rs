//! Disk faults: the state directory fills up or turns read-only under a
//! running server. Mutations get a 503 naming the reason, nothing is
//! acknowledged that was not stored, reads keep working, and the server
//! recovers by itself when the disk does. (A full disk may still take a few
//! lease changes: the journal's last block has room for them.) The state directory is a small
//! tmpfs, so these tests need root (as CI has); elsewhere they say so and
//! skip.

use crate::fixture::{Launch, Server, free_range};
use std::path::Path;
use std::process::Command;

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
        // A tmpfs is mode 1777 unless told: dynport refuses that.
        let opts = format!("size={size},mode=0755");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            crate::fixture::skipped(format_args!(
                "cannot mount a tmpfs on {} (needs root)",
                dir.display()
            ));
        }
        mounted.then_some(Tmpfs(dir))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn lease(server: &Server) -> (u16, serde_json::Value) {
    server
        .json_request("POST", "/api/v1/ports/lease", "{}")
        .expect("an answer")
}

/// The state file and the journal as they are on disk.
fn files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
    (read("dynamic_ports.json"), read("dynamic_ports.journal"))
}

/// Mutations fail with 503 and change nothing, reads go on. Leases are
/// asked for until one is refused; returns how many were granted first.
fn assert_refused(server: &Server, dir: &Path, needle: &str) -> usize {
    let mut granted = 0;
    let (before, answer) = loop {
        let before = files(dir);
        match lease(server) {
            (201, _) if granted < 64 => granted += 1,
            (503, answer) => break (before, answer),
            (status, answer) => panic!("{status}: {answer}"),
        }
    };
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("state file could not be written"),
        "{message}"
    );
    assert!(message.contains(needle), "{message}");
    let (status, _) = server
        .json_request("POST", "/api/v1/server/port/change", "")
        .unwrap();
    assert_eq!(status, 503);
    let (status, answer) = server
        .json_request("GET", "/api/v1/server/port", "")
        .unwrap();
    assert_eq!(
        (status, answer["port_state"]["leased"].clone()),
        (200, (1 + granted).into())
    );
    let listed = server
        .json_request("GET", "/api/v1/ports/leases", "")
        .unwrap();
    assert_eq!(listed.1["leases"].as_array().unwrap().len(), 1 + granted);
    assert!(files(dir) == before, "nothing was written");
    granted
}

#[test]
fn full_disk_refuses_changes_and_recovers() {
    // Room for the grants that still fit in the journal's last block.
    let launch = Launch::with_range(free_range(80), &["--exclude", "none"]);
    let Some(_tmpfs) = Tmpfs::mount(launch.dir.path(), "256k") else {
        return;
    };
    let server = launch.start();
    assert_eq!(lease(&server).0, 201);
    let filler = launch.dir.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .output();
    let granted = assert_refused(&server, launch.dir.path(), "No space left on device");
    std::fs::remove_file(&filler).unwrap();
    let (status, answer) = lease(&server);
    assert_eq!(status, 201, "{answer}");
    let leases = server.state()["leases"].as_object().unwrap().len();
    assert_eq!(leases, 2 + granted);
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dynport_state_write_failures_total "))
        .expect("the write-failure counter");
    assert_ne!(failures, "0", "{metrics}");
}

#[test]
fn read_only_disk_refuses_changes_and_recovers() {
    let launch = Launch::new(&["--exclude", "none"]);
    let Some(tmpfs) = Tmpfs::mount(launch.dir.path(), "1m") else {
        return;
    };
    let mut server = launch.start();
    assert_eq!(lease(&server).0, 201);
    tmpfs.remount("ro");
    let granted = assert_refused(&server, launch.dir.path(), "Read-only file system");
    assert_eq!(granted, 0, "nothing is written to a read-only file system");
    tmpfs.remount("rw");
    assert_eq!(lease(&server).0, 201);
    assert_eq!(server.state()["leases"].as_object().unwrap().len(), 2);
    assert!(server.term().success());
}
