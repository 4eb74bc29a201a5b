//! What stands between the network and dynport, through the real binary:
//! the `Host` check against DNS rebinding, the refusal of changes from web
//! pages, no CORS, the token rules and the throttle on failed token checks
//! (`tokens.rs`), and a real browser driven by an attacker's page
//! (`chromium.rs`).

pub(crate) mod chromium;
mod tokens;

use crate::fixture::{Reply, Server, connect, eventually, exchange};
use std::time::Duration;

/// How long a line may take from the server's stderr to its collected log.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// One request written as given, on a fresh connection to `server`.
fn raw(server: &Server, text: &str) -> Reply {
    let stream = connect(server.port).expect("connect to the server");
    exchange(stream, text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A request the way curl sends it, `Host` and all.
fn curl(server: &Server, method: &str, path: &str, host: &str, extra: &str) -> Reply {
    raw(
        server,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n\
             Accept: */*\r\nConnection: close\r\n{extra}\r\n"
        ),
    )
}

/// The value of the series `name` (labels included) in `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let reply = server.get("/metrics");
    let text = String::from_utf8(reply.body).unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name));
    let value = line.and_then(|l| l.split(' ').nth(1)?.parse().ok());
    value.unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn assert_no_cors(reply: &Reply) {
    let cors = reply
        .headers
        .iter()
        .find(|(name, _)| name.starts_with("access-control-"));
    assert_eq!(cors, None, "a CORS header in a {} answer", reply.status);
}

#[test]
fn the_readmes_curl_requests_keep_working() {
    let server = Server::start(&[]);
    let p = server.port;
    let health = curl(&server, "GET", "/healthz", &format!("localhost:{p}"), "");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, "ok".into())
    );
    let form = "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n{\"count\":1}";
    let lease = curl(
        &server,
        "POST",
        "/api/v1/ports/lease",
        &format!("127.0.0.1:{p}"),
        form,
    );
    assert_eq!(
        lease.status,
        201,
        "{}",
        String::from_utf8_lossy(&lease.body)
    );
    let change = curl(
        &server,
        "POST",
        "/api/v1/server/port/change",
        &format!("127.0.0.1:{p}"),
        "",
    );
    assert_eq!(
        change.status,
        200,
        "{}",
        String::from_utf8_lossy(&change.body)
    );
    assert_eq!(change.json()["old_port"], p);
    assert_no_cors(&change);
}

#[test]
fn a_foreign_host_is_421_reads_and_deletes_included() {
    let server = Server::start(&["--allow-host", "dynport.test"]);
    let lease = server.post("/api/v1/ports/lease", "{}", &[]);
    let id = lease.json()["lease"]["id"].as_str().unwrap().to_string();
    let rebind = format!("rebind.attacker.example:{}", server.port);
    for (method, path) in [
        ("GET", "/healthz".to_string()),
        ("GET", "/api/v1/ports/leases".to_string()),
        ("DELETE", format!("/api/v1/ports/leases/{id}")),
        ("POST", "/api/v1/server/port/change".to_string()),
    ] {
        let reply = curl(&server, method, &path, &rebind, "");
        assert_eq!(reply.status, 421, "{method} {path}");
        assert_eq!(
            reply.error(),
            format!(
                "Host {rebind:?} is not a name dynport answers to: use an IP address or \
                 localhost, or start dynport with --allow-host NAME"
            )
        );
        assert_no_cors(&reply);
    }
    let leases = server.get("/api/v1/ports/leases").json();
    assert_eq!(
        leases["leases"].as_array().map(Vec::len),
        Some(1),
        "{leases}"
    );
    let allowed = curl(&server, "GET", "/healthz", "DynPort.test", "");
    assert_eq!(allowed.status, 200, "an --allow-host name, any case");
    let v6 = curl(&server, "GET", "/healthz", "[::1]:1", "");
    assert_eq!(v6.status, 200);
}

#[test]
fn requests_without_host_are_served_as_before() {
    let server = Server::start(&[]);
    let http10 = raw(&server, "GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(http10.status, 200);
    let http11 = raw(
        &server,
        "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(http11.status, 200, "the engine never required Host");
}

#[test]
fn the_issues_attacks_from_web_pages_are_403_and_change_nothing() {
    let server = Server::start(&[]);
    let p = server.port;
    let text_plain = "Origin: http://attacker.example\r\nContent-Type: text/plain\r\n\
                      Content-Length: 2\r\n\r\n{}";
    let lease = curl(
        &server,
        "POST",
        "/api/v1/ports/lease",
        &format!("127.0.0.1:{p}"),
        text_plain,
    );
    assert_eq!(lease.status, 403);
    assert_eq!(
        lease.error(),
        "requests from web pages may not change dynport"
    );
    assert_no_cors(&lease);
    let form = "Origin: null\r\nSec-Fetch-Site: cross-site\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n";
    let change = curl(
        &server,
        "POST",
        "/api/v1/server/port/change",
        &format!("127.0.0.1:{p}"),
        form,
    );
    assert_eq!(change.status, 403);
    assert_no_cors(&change);
    let leases = server.get("/api/v1/ports/leases").json();
    assert_eq!(leases["leases"], serde_json::json!([]));
    assert_eq!(server.get("/api/v1/server/port").json()["server_port"], p);
    let line = "refused POST /api/v1/ports/lease from a web page \
                (Origin: http://attacker.example, Sec-Fetch-Site: -)";
    eventually(LOG_WAIT, line, || server.log().contains(line));
}

#[test]
fn a_preflight_gets_405_and_no_cors_headers() {
    let server = Server::start(&[]);
    let host = format!("127.0.0.1:{}", server.port);
    let preflight = "Origin: http://attacker.example\r\nAccess-Control-Request-Method: POST\r\n\
                     Access-Control-Request-Headers: content-type\r\n";
    let reply = curl(&server, "OPTIONS", "/api/v1/ports/lease", &host, preflight);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    assert_no_cors(&reply);
    let read = curl(
        &server,
        "GET",
        "/api/v1/server/port",
        &host,
        "Origin: http://attacker.example\r\n",
    );
    assert_eq!(
        read.status, 200,
        "reads stay open, but no page may read them"
    );
    assert_no_cors(&read);
}
