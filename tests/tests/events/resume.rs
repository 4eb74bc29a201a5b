//! Resuming with `Last-Event-ID` (or `?last_event_id=`): the kept events
//! after it, exactly once and in order; `reset` for an id older than the
//! 1,024 kept; 400 naming `Last-Event-ID` for an id dynport could not have
//! sent; ids of a later run larger.

use super::support::{Event, Stream, get, lease, open};
use crate::fixture::{Launch, Server, free_range};
use serde_json::Value;

/// How many events the server keeps.
const KEPT: u64 = 1024;

/// Grants and releases `n` leases of one port each.
fn churn(server: &Server, n: usize) {
    for _ in 0..n {
        let granted = lease(server, r#"{"ttl_secs":600}"#);
        let path = format!("/api/v1/ports/leases/{}", granted["id"].as_str().unwrap());
        let (status, answer) = server.json_request("DELETE", &path, "").unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

/// Events of `stream` until one has the id `last`.
fn through(stream: &mut Stream, last: u64) -> Vec<Event> {
    stream.until(|e| e.id.is_some_and(|id| id >= last))
}

#[test]
fn last_event_id_replays_the_events_after_it_once_and_in_order() {
    let server = Launch::with_range(free_range(16), &[]).start();
    let mut first = open(&server, None);
    churn(&server, 3);
    let mut seen = Vec::new();
    while seen.iter().filter(|e: &&Event| e.kind == "release").count() < 3 {
        seen.push(first.next());
    }
    let ids: Vec<u64> = seen
        .iter()
        .map(|e| e.id.expect("every event has an id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let last = *ids.last().unwrap();
    for k in [0, 2, seen.len() - 1] {
        let after = ids[k];
        let expected = &seen[k + 1..];
        for how in ["header", "query"] {
            let mut again = match how {
                "header" => open(&server, Some(after)),
                _ => {
                    let path = format!("/api/v1/events?last_event_id={after}");
                    let (status, head, stream) = get(server.port, &path, &[]);
                    assert_eq!(status, 200, "{head}");
                    stream
                }
            };
            let replayed = match expected.is_empty() {
                true => Vec::new(),
                false => through(&mut again, last),
            };
            assert_eq!(replayed, expected, "after {after} ({how})");
            // Nothing more: the next event is the next change.
            let granted = lease(&server, "{}");
            let next = again.find("lease", |d| d["id"] == granted["id"]);
            assert!(next.id > Some(last), "{next:?}");
        }
    }
}

#[test]
fn an_id_older_than_the_events_kept_starts_with_reset() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    churn(&server, 1);
    let oldest_seen = stream.next().id.expect("an id");
    // Each lease and each release is an event at least.
    churn(&server, KEPT as usize / 2 + 20);
    let mut late = open(&server, Some(oldest_seen));
    let reset = late.next();
    assert_eq!(reset.kind, "reset", "{reset:?}");
    let oldest = reset.data["oldest"]
        .as_u64()
        .unwrap_or_else(|| panic!("{reset:?}"));
    assert_eq!(crate::fixture::keys(&reset.data), ["oldest"]);
    assert!(oldest > oldest_seen + 1, "{oldest} after {oldest_seen}");
    // An id the ring still holds replays without reset.
    let mut kept = open(&server, Some(oldest));
    let first = kept.next();
    assert_ne!(first.kind, "reset", "{first:?}");
    assert!(first.id > Some(oldest), "{first:?}");
}

#[test]
fn an_id_dynport_could_not_have_sent_is_400_naming_last_event_id() {
    let server = Server::start(&[]);
    let mut stream = open(&server, None);
    churn(&server, 1);
    let last = stream
        .until(|e| e.kind == "release")
        .last()
        .unwrap()
        .id
        .unwrap();
    let too_far = (last + 1000).to_string();
    for bad in [
        "abc",
        "-1",
        "1.5",
        "18446744073709551616",
        "7x",
        too_far.as_str(),
    ] {
        let (status, head, mut stream) =
            get(server.port, "/api/v1/events", &[("Last-Event-ID", bad)]);
        assert_eq!(status, 400, "{bad:?}: {head}");
        let body = error_body(&mut stream);
        assert!(body.contains("Last-Event-ID"), "{bad:?}: {body}");
    }
    let path = "/api/v1/events?last_event_id=abc";
    let (status, head, mut stream) = get(server.port, path, &[]);
    assert_eq!(status, 400, "{head}");
    let body = error_body(&mut stream);
    assert!(
        body.contains("Last-Event-ID") || body.contains("last_event_id"),
        "{body}"
    );
}

/// The `error` of a JSON error answer read from `stream`.
fn error_body(stream: &mut Stream) -> String {
    let text = stream.body();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(body["status"], "error", "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn ids_of_a_later_run_are_larger() {
    let launch = Launch::with_range(free_range(8), &[]);
    let mut server = launch.start();
    let mut stream = open(&server, None);
    churn(&server, 1);
    let last = stream.until(|e| e.kind == "release").last().unwrap().id;
    assert!(server.term().success());
    let server = launch.start();
    let mut stream = open(&server, None);
    churn(&server, 1);
    let next = stream.next();
    assert!(next.id > last, "{next:?} after {last:?}");
}
