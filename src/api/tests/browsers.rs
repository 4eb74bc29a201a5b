//! The checks before routing, exercised without sockets: `Host` (DNS
//! rebinding), requests from web pages, no CORS, and the throttle on
//! failed token checks.

use super::{Fixture, answer, fixture, fixture_allowing};
use crate::api::guard::{FROM_WEB_PAGE, host_allowed};
use crate::http::{Peer, PeerAddr, Request, Response};
use std::net::IpAddr;

fn with(f: &Fixture, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    answer(&f.app, &Request::fake(method, path, headers, b""))
}

fn error_text(res: &Response) -> String {
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["status"], "error", "{body}");
    body["error"].as_str().unwrap().to_string()
}

fn assert_no_cors(res: &Response) {
    let cors = res
        .headers
        .iter()
        .find(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"));
    assert_eq!(cors, None, "a CORS header in a {} answer", res.status);
}

#[test]
fn ip_addresses_and_localhost_are_served() {
    let f = fixture_allowing("hostok", None, &["dynport.internal"]);
    for host in [
        "127.0.0.1",
        "127.0.0.1:3456",
        "192.0.2.7:80",
        "[::1]",
        "[::1]:3456",
        "[2001:db8::1]:8080",
        "localhost",
        "LOCALHOST:3456",
        "LocalHost",
        "dynport.internal",
        "DYNPORT.internal:3456",
    ] {
        let res = with(&f, "GET", "/healthz", &[("Host", host)]);
        assert_eq!(res.status, 200, "Host: {host}");
    }
    let res = with(&f, "GET", "/healthz", &[]);
    assert_eq!(res.status, 200, "no Host at all (HTTP/1.0) is served");
}

#[test]
fn any_other_host_is_421_naming_it_reads_included() {
    let f = fixture("host421", None);
    for host in [
        "rebind.attacker.example",
        "rebind.attacker.example:3456",
        "evil.localhost",
        "localhost.",
        "dynport.internal",
        "2130706433",
        "127.1",
        "::1",
        "[::1",
        "[fe80::1%25eth0]:80",
        "127.0.0.1:",
        "127.0.0.1:+80",
        "127.0.0.1:65536",
        "127.0.0.1:80:80",
        "",
    ] {
        for method in ["GET", "DELETE", "POST"] {
            let res = with(&f, method, "/api/v1/ports/leases/x", &[("Host", host)]);
            assert_eq!(res.status, 421, "{method} with Host: {host:?}");
            assert_eq!(
                error_text(&res),
                format!(
                    "Host {host:?} is not a name dynport answers to: use an IP address or \
                     localhost, or start dynport with --allow-host NAME"
                )
            );
        }
    }
    let res = with(&f, "GET", "/nope", &[("Host", "rebind.attacker.example")]);
    assert_eq!(res.status, 421, "before routing: an unknown path too");
    let two = [("Host", "127.0.0.1"), ("Host", "rebind.attacker.example")];
    assert_eq!(
        with(&f, "GET", "/healthz", &two).status,
        421,
        "every Host counts"
    );
}

#[test]
fn rebinding_reads_and_deletes_are_refused_before_they_act() {
    let f = fixture("rebind", None);
    let (_, granted) = super::lease_body(&f, "{}");
    let one = format!(
        "/api/v1/ports/leases/{}",
        granted["lease"]["id"].as_str().unwrap()
    );
    let rebind = [("Host", "rebind.attacker.example:8080")];
    assert_eq!(with(&f, "GET", "/api/v1/ports/leases", &rebind).status, 421);
    assert_eq!(with(&f, "DELETE", &one, &rebind).status, 421);
    assert_eq!(f.app.summary().counts.leased, 1, "the lease is still there");
}

#[test]
fn changes_from_web_pages_are_403_and_change_nothing() {
    let f = fixture("origin", None);
    let pages: [&[(&str, &str)]; 6] = [
        &[("Origin", "http://attacker.example")],
        &[("Origin", "null")],
        &[("Origin", "")],
        &[("Sec-Fetch-Site", "cross-site")],
        &[("Sec-Fetch-Site", "same-site")],
        &[("Sec-Fetch-Site", "same-origin")],
    ];
    for headers in pages {
        let headers = [headers, &[("Content-Type", "text/plain")]].concat();
        for (method, path) in [
            ("POST", "/api/v1/ports/lease"),
            ("POST", "/api/v1/server/port/change"),
            ("DELETE", "/api/v1/ports/leases/x"),
            ("POST", "/api/v1/ports/leases/x/renew"),
        ] {
            let res = with(&f, method, path, &headers);
            assert_eq!(res.status, 403, "{method} {path} {headers:?}");
            assert_eq!(error_text(&res), FROM_WEB_PAGE);
            assert_no_cors(&res);
        }
    }
    assert_eq!(f.app.summary().counts.leased, 0);
    assert!(
        f.serving.listeners.lock().unwrap().is_empty(),
        "no port change"
    );
}

#[test]
fn reads_from_web_pages_and_typed_requests_are_served() {
    let f = fixture("originread", None);
    let origin = [("Origin", "http://attacker.example")];
    assert_eq!(with(&f, "GET", "/api/v1/server/port", &origin).status, 200);
    assert_eq!(with(&f, "HEAD", "/healthz", &origin).status, 200);
    let typed = [("Sec-Fetch-Site", "none"), ("Sec-Fetch-Mode", "navigate")];
    assert_eq!(with(&f, "POST", "/api/v1/ports/lease", &typed).status, 201);
    let plain = [
        ("Host", "127.0.0.1:3456"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(with(&f, "POST", "/api/v1/ports/lease", &plain).status, 201);
}

#[test]
fn the_order_is_host_route_browser_token() {
    let f = fixture("order", Some("s3cret"));
    let bad_host = ("Host", "rebind.attacker.example");
    let origin = ("Origin", "http://attacker.example");
    let status = |method, path, headers: &[(&str, &str)]| with(&f, method, path, headers).status;
    assert_eq!(status("POST", "/nope", &[bad_host, origin]), 421);
    assert_eq!(status("POST", "/nope", &[origin]), 404);
    assert_eq!(status("PUT", "/api/v1/ports/lease", &[origin]), 405);
    assert_eq!(status("POST", "/api/v1/ports/lease", &[origin]), 403);
    assert_eq!(status("POST", "/api/v1/ports/lease", &[]), 401);
    assert_eq!(
        crate::app::metrics::Metrics::get(&f.app.metrics.auth_failures),
        1,
        "a web page's request never reaches the token check"
    );
}

#[test]
fn no_cors_headers_ever_and_a_preflight_is_405() {
    let f = fixture("cors", Some("s3cret"));
    let preflight = [
        ("Origin", "http://attacker.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let res = with(&f, "OPTIONS", "/api/v1/ports/lease", &preflight);
    assert_eq!(res.status, 405);
    assert!(res.headers.contains(&("Allow", "POST".to_string())));
    assert_no_cors(&res);
    for (method, path, headers) in [
        ("GET", "/healthz", &preflight[..1]),
        ("GET", "/metrics", &preflight[..1]),
        ("GET", "/healthz", &[("Host", "evil.example")][..]),
        ("POST", "/api/v1/ports/lease", &preflight[..1]),
        ("POST", "/api/v1/ports/lease", &[][..]),
        ("OPTIONS", "/nope", &preflight[..1]),
    ] {
        assert_no_cors(&with(&f, method, path, headers));
    }
}

#[test]
fn host_values_parse_strictly() {
    let allowed = ["a.example".to_string()];
    assert!(
        host_allowed(" 127.0.0.1:80 ", &allowed),
        "surrounding spaces"
    );
    assert!(host_allowed("[::ffff:127.0.0.1]:0", &allowed));
    assert!(host_allowed("A.Example:65535", &allowed));
    assert!(!host_allowed("a.example.", &allowed));
    assert!(!host_allowed("[::1]x", &allowed));
    assert!(!host_allowed("[::1]:", &allowed));
    assert!(!host_allowed("[localhost]", &allowed));
    assert!(!host_allowed("user@localhost", &allowed));
}

fn peer(ip: &str) -> Peer {
    Peer {
        addr: PeerAddr::Ip(ip.parse::<IpAddr>().unwrap()),
        uid: None,
        pid: None,
        local: false,
    }
}

fn change(f: &Fixture, from: Peer, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    let req = Request::fake(
        "POST",
        "/api/v1/ports/lease",
        &[("Authorization", &auth)],
        b"",
    );
    answer(&f.app, &req.from_peer(from))
}

#[test]
fn more_than_20_failures_a_minute_get_429_even_with_the_right_token() {
    let f = fixture("throttle", Some("s3cret"));
    let attacker = peer("192.0.2.1");
    for n in 1..=21 {
        assert_eq!(change(&f, attacker, "guess").status, 401, "failure {n}");
    }
    let res = change(&f, attacker, "guess");
    assert_eq!(res.status, 429);
    let retry: u64 = res
        .headers
        .iter()
        .find(|(name, _)| *name == "Retry-After")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a Retry-After header");
    assert!((59..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        error_text(&res),
        format!("too many failed token checks from this address: try again in {retry} s")
    );
    assert_eq!(
        change(&f, attacker, "s3cret").status,
        429,
        "the right token too"
    );
    let mapped = peer("::ffff:192.0.2.1");
    assert_eq!(change(&f, mapped, "s3cret").status, 429, "the same address");
    let get = Request::fake("GET", "/api/v1/ports/leases", &[], b"").from_peer(attacker);
    assert_eq!(answer(&f.app, &get).status, 200, "reads are not throttled");
    assert_eq!(
        change(&f, peer("192.0.2.2"), "s3cret").status,
        201,
        "others pass"
    );
    assert_eq!(
        crate::app::metrics::Metrics::get(&f.app.metrics.auth_failures),
        21
    );
    let metrics = answer(&f.app, &Request::fake("GET", "/metrics", &[], b""));
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.lines().any(|l| l == "dynport_auth_failures_total 21"),
        "{text}"
    );
}

#[test]
fn unix_socket_users_are_throttled_apart() {
    let f = fixture("throttleunix", Some("s3cret"));
    let unix = |uid| Peer {
        addr: PeerAddr::Unix,
        uid: Some(uid),
        pid: Some(7),
        local: true,
    };
    for _ in 0..21 {
        assert_eq!(change(&f, unix(1000), "guess").status, 401);
    }
    assert_eq!(change(&f, unix(1000), "s3cret").status, 429);
    assert_eq!(change(&f, unix(1001), "s3cret").status, 201);
}

#[test]
fn the_page_is_served_to_reads_under_the_host_rules() {
    let f = fixture("page", None);
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/page.css", "text/css; charset=utf-8"),
        ("/page.js", "text/javascript; charset=utf-8"),
    ] {
        for method in ["GET", "HEAD"] {
            let res = with(&f, method, path, &[("Host", "127.0.0.1:3000")]);
            assert_eq!(res.status, 200, "{method} {path}");
            assert_eq!(res.content_type, content_type);
            assert!(
                res.headers
                    .iter()
                    .any(|(n, _)| *n == "Content-Security-Policy")
            );
        }
        let res = with(&f, "GET", path, &[("Host", "rebind.attacker.example")]);
        assert_eq!(res.status, 421, "{path} with another Host");
        let res = with(&f, "POST", path, &[("Host", "localhost")]);
        assert_eq!(res.status, 405, "POST {path}");
        assert_eq!(
            res.headers.iter().find(|(n, _)| *n == "Allow"),
            Some(&("Allow", "GET, HEAD".to_string()))
        );
    }
    let res = with(&f, "GET", "/index.html", &[]);
    assert_eq!(res.status, 404);
}
