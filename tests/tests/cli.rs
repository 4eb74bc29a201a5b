//! The command line of the real binary: configuration errors, `--help`,
//! `--version`, and the seed's `PORT` and `RELOAD` variables.

use crate::fixture::{Launch, TempDir, run_dynport};

/// Every flag of the SPEC's two settings tables, with its variable.
const FLAGS: &[(&str, &str)] = &[
    ("--host", "HOST"),
    ("--range", "DYNPORT_RANGE"),
    ("--state-dir", "DYNPORT_STATE_DIR"),
    ("--refresh-secs", "DYNPORT_REFRESH_SECS"),
    ("--workers", "DYNPORT_WORKERS"),
    ("--fallback-port", "DYNPORT_FALLBACK_PORT"),
    ("--token", "DYNPORT_TOKEN"),
    ("--log-level", "DYNPORT_LOG"),
    ("--pool", "DYNPORT_POOLS"),
    ("--exclude", "DYNPORT_EXCLUDE"),
    ("--lease-ttl-secs", "DYNPORT_LEASE_TTL_SECS"),
    ("--token-file", "DYNPORT_TOKEN_FILE"),
    ("--allow-host", "DYNPORT_ALLOW_HOSTS"),
];

/// Runs `dynport ARGS --state-dir <a path that does not exist>` with `envs`,
/// expects exit status 2 with `needle` in the message, and nothing created.
fn refused(args: &[&str], envs: &[(&str, &str)], needle: &str) {
    let parent = TempDir::new();
    let state_dir = parent.path().join("state");
    let mut all = args.to_vec();
    all.extend(["--state-dir", state_dir.to_str().unwrap()]);
    let (status, stdout, stderr) = run_dynport(&all, envs);
    let shown = format!("dynport {args:?} {envs:?}: {status}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(status.code(), Some(2), "{shown}");
    assert!(
        stderr.contains(needle),
        "no {needle:?} in the message; {shown}"
    );
    assert!(!state_dir.exists(), "the state dir was created; {shown}");
    assert_eq!(parent.names(), Vec::<String>::new(), "{shown}");
}

#[test]
fn reversed_range_exits_2_naming_range() {
    refused(&["--range", "9000-3000"], &[], "--range");
}

#[test]
fn range_with_port_0_exits_2_naming_range() {
    refused(&["--range", "0-10"], &[], "--range");
}

#[test]
fn range_above_65535_exits_2_naming_range() {
    refused(&["--range", "3000-70000"], &[], "--range");
}

#[test]
fn zero_workers_exit_2_naming_workers() {
    refused(&["--workers", "0"], &[], "--workers");
}

#[test]
fn zero_refresh_secs_exit_2_naming_refresh_secs() {
    refused(&["--refresh-secs", "0"], &[], "--refresh-secs");
}

#[test]
fn non_numeric_workers_exit_2_naming_workers() {
    refused(&["--workers", "abc"], &[], "--workers");
}

#[test]
fn unparsable_host_exits_2_naming_host() {
    refused(&["--host", "not-an-ip"], &[], "--host");
}

#[test]
fn zero_workers_from_environment_exit_2_naming_variable() {
    refused(&[], &[("DYNPORT_WORKERS", "0")], "DYNPORT_WORKERS");
}

#[test]
fn non_loopback_host_without_token_exits_2_saying_token() {
    refused(&["--host", "0.0.0.0"], &[], "--token");
}

#[test]
fn help_lists_every_flag_and_variable() {
    let (status, stdout, stderr) = run_dynport(&["--help"], &[]);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    for (flag, var) in FLAGS {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
        assert!(stdout.contains(var), "--help lacks {var}:\n{stdout}");
    }
}

#[test]
fn version_prints_name_and_version() {
    let (status, stdout, stderr) = run_dynport(&["--version"], &[]);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stdout, format!("dynport {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn port_and_reload_variables_are_accepted_with_warnings() {
    let server = Launch::new(&[])
        .env("PORT", "1234")
        .env("RELOAD", "1")
        .start();
    let (start, end) = server.range();
    assert!((start..=end).contains(&server.port), "{}", server.log());
    let log = server.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("[WARN]")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("PORT") && !l.contains("RELOAD")),
        "no warning about PORT:\n{log}"
    );
    assert!(
        warnings.iter().any(|l| l.contains("RELOAD")),
        "no warning about RELOAD:\n{log}"
    );
    assert_eq!(server.get("/healthz").status, 200);
}
