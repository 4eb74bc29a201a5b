//! The shipped unit keeps what dynport needs while hardening it: options
//! that would break it stay out, and the ones it relies on stay in.
//! (`systemd-analyze verify` checks the syntax: `make verify-units`,
//! run by `.ci/run`.)

use super::read;

/// The unit's settings, comments left out: `(key, value)`.
fn settings(path: &str) -> Vec<(String, String)> {
    let text = read(path);
    let lines = text.lines().map(str::trim).filter(|l| !l.starts_with('#'));
    let pairs = lines.filter_map(|l| l.split_once('='));
    pairs.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn values<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    let found = settings.iter().filter(|(k, _)| k == key);
    found.map(|(_, v)| v.as_str()).collect()
}

#[test]
fn dynport_service_is_hardened_without_breaking_dynport() {
    let unit = settings("dist/systemd/dynport.service");
    let one = |key: &str| values(&unit, key);
    assert_eq!(one("Type"), ["notify"]);
    assert_eq!(
        one("ExecStart"),
        ["/usr/local/bin/dynport --state-dir /var/lib/dynport"]
    );
    assert_eq!(one("User"), ["dynport"]);
    assert_eq!(one("StateDirectory"), ["dynport"]);
    // Every user reaches the socket and reads the state file there.
    assert_eq!(one("StateDirectoryMode"), ["0755"]);
    // Where a portserver socket goes: no other user may write there.
    assert_eq!(one("RuntimeDirectory"), ["dynport"]);
    assert_eq!(one("RuntimeDirectoryMode"), ["0755"]);
    // The scan and the lookup of who owns a connection use netlink.
    assert_eq!(
        one("RestrictAddressFamilies"),
        ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    );
    assert_eq!(one("IPAddressAllow"), ["localhost"]);
    // Names route on port 80 too, which dynport's user binds through one
    // ambient capability and no other.
    assert_eq!(
        one("Environment"),
        ["DYNPORT_LOG=info", "DYNPORT_ROUTES_PORT=80"]
    );
    assert_eq!(one("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(one("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(one("NoNewPrivileges"), ["yes"]);
    assert_eq!(one("WatchdogSec").len(), 1);
    // Each of these would blind dynport: to the host's ports, to who is
    // asking, to other users' processes, or lock others out of the socket.
    for key in [
        "PrivateNetwork",
        "PrivateUsers",
        "ProtectProc",
        "ProcSubset",
        "DynamicUser",
    ] {
        assert_eq!(one(key), Vec::<&str>::new(), "{key} must stay out");
    }
}

#[test]
fn example_app_gets_its_port_through_dynport_run() {
    let unit = settings("dist/systemd/dynport-example-app.service");
    let one = |key: &str| values(&unit, key);
    assert_eq!(one("After"), ["dynport.service"]);
    assert_eq!(one("Wants"), ["dynport.service"]);
    let exec = one("ExecStart");
    assert_eq!(exec.len(), 1);
    assert!(exec[0].starts_with("/usr/local/bin/dynport run --state-dir /var/lib/dynport "));
}
