//! The log under journald: the `<N>` priority prefix of sd-daemon(3) and no
//! timestamp when `JOURNAL_STREAM` names stderr; the usual timestamped lines
//! when it names another file (a stderr redirected since).

use crate::fixture::{EXIT_TIMEOUT, Launch, TempDir};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A new file in `dir` and the `JOURNAL_STREAM` value naming it.
fn stream_file(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let path = dir.path().join(name);
    std::fs::File::create(&path).expect("the stderr file can be created");
    let meta = std::fs::metadata(&path).expect("the stderr file has metadata");
    (path, format!("{}:{}", meta.dev(), meta.ino()))
}

fn has_line(log: &str, wanted: impl Fn(&str) -> bool) -> bool {
    log.lines().any(wanted)
}

#[test]
fn under_journald_every_line_carries_its_priority_and_no_timestamp() {
    let out = TempDir::new();
    let (path, stream) = stream_file(&out, "stderr");
    let launch = Launch::new(&[])
        .stderr_file(path)
        .env("JOURNAL_STREAM", &stream);
    // A state file that does not parse: a warning.
    std::fs::write(launch.dir.state_file(), "not json").unwrap();
    let mut server = launch.start();
    // A second server on the same directory: an error, then exit status 1.
    let mut second = server.relaunch().spawn();
    assert_eq!(second.wait_exit(EXIT_TIMEOUT).code(), Some(1));
    assert!(server.term().success());

    let log = server.log();
    for line in log.lines() {
        let body = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .find_map(|prefix| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no priority prefix on {line:?}:\n{log}"));
        let stamped = body.starts_with(|c: char| c.is_ascii_digit());
        assert!(!stamped, "a timestamp on {line:?}:\n{log}");
    }
    let listening = format!("<6>listening on http://127.0.0.1:{}", server.port);
    assert!(has_line(&log, |l| l == listening), "{log}");
    let corrupt = |l: &str| l.starts_with("<4>state file ") && l.contains(" did not parse (");
    assert!(has_line(&log, corrupt), "{log}");
    assert!(
        has_line(&log, |l| l.starts_with("<7>first scan by ")),
        "{log}"
    );
    let held = format!(
        "<3>state directory {} is in use by another dynport (pid {}); \
         stop it or use another --state-dir",
        server.dir().path().display(),
        server.pid()
    );
    assert!(has_line(&log, |l| l == held), "{log}");
}

#[test]
fn journal_stream_naming_another_file_leaves_the_timestamps() {
    let out = TempDir::new();
    let (path, _) = stream_file(&out, "stderr");
    let (_, elsewhere) = stream_file(&out, "journal");
    let launch = Launch::new(&[])
        .stderr_file(path)
        .env("JOURNAL_STREAM", &elsewhere);
    let mut server = launch.start();
    assert!(server.term().success());

    let log = server.log();
    for line in log.lines() {
        let b = line.as_bytes();
        let stamped = b.len() > 20
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[10] == b'T'
            && line.contains("Z [");
        assert!(stamped, "no timestamp on {line:?}:\n{log}");
    }
    let listening = format!("Z [INFO] listening on http://127.0.0.1:{}", server.port);
    assert!(has_line(&log, |l| l.ends_with(&listening)), "{log}");
}
