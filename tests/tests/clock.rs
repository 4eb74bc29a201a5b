//! Time steps do not end leases: a server whose wall clock steps forward by
//! 2 h (libfaketime, reread at every call) keeps a 10-minute lease, and
//! moves its `expires_at` with the step, so it keeps its remaining life.

use crate::fixture::{Launch, TempDir, eventually, require, require_tool};
use std::path::Path;
use std::time::Duration;

/// Where Debian's faketime package puts the library.
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

fn expires_at(lease: &serde_json::Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap()
}

#[test]
fn a_wall_clock_step_of_two_hours_ends_no_lease() {
    if require_tool("faketime").is_none() {
        return;
    }
    let Some(lib) = LIBFAKETIME.iter().find(|p| Path::new(p).exists()) else {
        let why = format_args!("libfaketime is not in {LIBFAKETIME:?} (Debian package faketime)");
        require(false, why);
        return;
    };
    let dir = TempDir::new();
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let server = Launch::new(&["--refresh-secs", "1"])
        .env("LD_PRELOAD", lib)
        .env("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap())
        .env("FAKETIME_NO_CACHE", "1")
        // The boot clock stays true: it is what a step must not touch.
        .env("DONT_FAKE_MONOTONIC", "1")
        .start();
    let (status, granted) = server
        .json_request("POST", "/api/v1/ports/lease", r#"{"ttl_secs": 600}"#)
        .unwrap();
    assert_eq!(status, 201, "{granted}");
    let before = expires_at(&granted["lease"]);

    std::fs::write(&offset, "+2h\n").unwrap();
    let stepped = "the wall clock stepped forward by 2h";
    eventually(Duration::from_secs(10), stepped, || {
        server.log().contains(stepped)
    });
    // Two more passes of the refresh thread, each of which would end it.
    let passes = server.log().matches("scan of").count();
    eventually(Duration::from_secs(10), "two more scans", || {
        server.log().matches("scan of").count() >= passes + 2
    });
    let leases = server.get("/api/v1/ports/leases").json();
    let lease = &leases["leases"][0];
    assert_eq!(lease["id"], granted["lease"]["id"], "{leases}");
    let moved = expires_at(lease).duration_since(before).unwrap();
    let two_hours = Duration::from_secs(7200);
    assert!(
        moved >= two_hours - Duration::from_secs(2) && moved <= two_hours + Duration::from_secs(2),
        "expires_at moved by {moved:?}, not by the step"
    );
    let state = server.state();
    assert_eq!(
        state["leases"][lease["id"].as_str().unwrap()]["expires_at"],
        lease["expires_at"]
    );
}
