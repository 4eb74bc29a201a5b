//! The pages dynport answers itself for a route: 404 listing the live
//! names (HTML for browsers, JSON otherwise), 502 that reloads itself
//! while the dev server starts; `--routes-domain`, and the listener of
//! `--routes-port` that only routes.

use super::backends::DevServer;
use super::{alias, echoed, get, host, lease, lines_named, listed, start, text};
use crate::fixture::{Reply, Server, connect, eventually, free_range, run_dynport};
use std::time::Duration;

/// What Chromium sends as `Accept` for a page.
const BROWSER: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn assert_html(reply: &Reply) {
    let kind = reply.header("content-type").unwrap_or_default();
    assert!(kind.starts_with("text/html"), "{kind}: {}", text(reply));
}

fn assert_json(reply: &Reply) -> serde_json::Value {
    let kind = reply.header("content-type").unwrap_or_default();
    assert!(
        kind.starts_with("application/json"),
        "{kind}: {}",
        text(reply)
    );
    reply.json()
}

/// `(name, url)` for each name, with URLs on `domain` and `port`.
fn urls(names: &[&str], domain: &str, port: u16) -> Vec<(String, String)> {
    let mut all: Vec<_> = names
        .iter()
        .map(|n| (n.to_string(), format!("http://{n}.{domain}:{port}/")))
        .collect();
    all.sort();
    all
}

#[test]
fn an_unknown_name_gets_a_404_page_listing_the_live_names() {
    let server = start(&[]);
    let p = server.port;
    lease(&server, "web");
    lease(&server, "api.shop");
    // A name no longer live is not listed.
    let old = DevServer::start(0, "");
    alias(&server, "old", old.port);
    let removed = server.request("DELETE", "/api/v1/names/old", &[], "");
    assert!(matches!(removed.status, 200 | 204), "{}", text(&removed));
    let live = urls(&["api.shop", "web"], "localhost", p);

    let page = get(p, &host("nope", p), "/some/page", &[("Accept", BROWSER)]);
    assert_eq!(page.status, 404, "{}", text(&page));
    assert_html(&page);
    let html = text(&page);
    for (name, url) in &live {
        assert!(
            html.contains(&format!("href=\"{url}\"")),
            "no link to {name}: {html}"
        );
    }
    assert!(
        html.contains("nope"),
        "the page does not say which name: {html}"
    );
    assert!(!html.contains("old.localhost"), "{html}");

    for accept in [None, Some("application/json"), Some("*/*")] {
        let extra: Vec<_> = accept.iter().map(|a| ("Accept", *a)).collect();
        let reply = get(p, &host("nope", p), "/", &extra);
        assert_eq!(reply.status, 404, "{accept:?}: {}", text(&reply));
        assert_eq!(listed(&assert_json(&reply)), live, "{accept:?}");
    }
    // The API's list says the same URLs.
    let names = server.get("/api/v1/names").json();
    let api_live: Vec<_> = listed(&names)
        .into_iter()
        .filter(|(n, _)| n != "old")
        .collect();
    assert_eq!(api_live, live, "{names}");
}

#[test]
fn a_live_name_with_nothing_listening_gets_a_502_that_reloads_until_it_answers() {
    let server = start(&[]);
    let p = server.port;
    let port = lease(&server, "web");
    let message = format!("web is leased to port {port}, but nothing listens there yet");

    let page = get(p, &host("web", p), "/app", &[("Accept", BROWSER)]);
    assert_eq!(page.status, 502, "{}", text(&page));
    assert_html(&page);
    assert_eq!(page.header("retry-after"), Some("2"));
    let html = text(&page).to_ascii_lowercase();
    assert!(html.contains(&message.to_ascii_lowercase()), "{html}");
    let refresh = html.contains("http-equiv=\"refresh\" content=\"2\"")
        || html.contains("content=\"2\" http-equiv=\"refresh\"");
    assert!(refresh, "no reload every 2 s: {html}");

    let reply = get(p, &host("web", p), "/app", &[]);
    assert_eq!(reply.status, 502);
    let json = assert_json(&reply);
    assert!(json.to_string().contains(&message), "{json}");

    // The dev server starts: the same URL answers.
    let web = DevServer::start(port, "<p>up</p>");
    let page = get(p, &host("web", p), "/", &[("Accept", BROWSER)]);
    assert_eq!((page.status, text(&page)), (200, "<p>up</p>".into()));
    assert_eq!(web.requests(), 1);
}

#[test]
fn routes_domain_replaces_localhost() {
    let server = start(&[
        "--routes-domain",
        "dev.test",
        "--routes-domain",
        "Apps.Example",
    ]);
    let p = server.port;
    let web = DevServer::start(lease(&server, "web"), "");
    for host in [format!("web.dev.test:{p}"), format!("WEB.apps.example:{p}")] {
        let head = echoed(&get(p, &host, "/echo", &[]));
        assert_eq!(lines_named(&head, "host"), std::slice::from_ref(&host));
    }
    assert_eq!(web.requests(), 2);
    // localhost is no routes domain any more: web.localhost is a foreign host.
    let reply = get(p, &host("web", p), "/echo", &[]);
    assert_eq!(reply.status, 421, "{}", text(&reply));
    assert_eq!(web.requests(), 2);
    // URLs name the first domain.
    let live = urls(&["web"], "dev.test", p);
    assert_eq!(listed(&server.get("/api/v1/names").json()), live);
    let reply = get(p, &format!("nope.dev.test:{p}"), "/", &[]);
    assert_eq!(reply.status, 404);
    assert_eq!(listed(&assert_json(&reply)), live);
}

/// A server with a routes listener on a port outside its range; the port.
fn with_routes_port() -> (Server, u16) {
    let routes = free_range(1).0;
    let server = start(&["--routes-port", &routes.to_string()]);
    eventually(Duration::from_secs(10), "the routes listener", || {
        connect(routes).is_ok()
    });
    (server, routes)
}

#[test]
fn the_routes_port_routes_names_and_lists_them_for_its_own_hosts() {
    let (server, r) = with_routes_port();
    let (first, last) = server.range();
    assert!(!(first..=last).contains(&r));
    let web = DevServer::start(lease(&server, "web"), "");
    for host in [
        host("web", r),
        "web.localhost".into(),
        "WEB.localhost".into(),
    ] {
        let head = echoed(&get(r, &host, "/echo", &[]));
        assert_eq!(lines_named(&head, "host"), std::slice::from_ref(&host));
        assert_eq!(lines_named(&head, "x-forwarded-port"), [r.to_string()]);
    }
    // URLs name the routes port, which does not move with the API.
    let live = urls(&["web"], "localhost", r);
    assert_eq!(listed(&server.get("/api/v1/names").json()), live);
    // localhost and IP addresses get the list, even for the API's paths,
    // which are not served here.
    for own in [
        format!("localhost:{r}"),
        format!("127.0.0.1:{r}"),
        "localhost".into(),
    ] {
        for path in ["/", "/healthz", "/api/v1/ports/leases", "/api/v1/names"] {
            let reply = get(r, &own, path, &[]);
            assert_eq!(reply.status, 404, "{own}{path}: {}", text(&reply));
            assert_eq!(listed(&assert_json(&reply)), live, "{own}{path}");
        }
        let page = get(r, &own, "/", &[("Accept", BROWSER)]);
        assert_eq!(page.status, 404);
        assert_html(&page);
        assert!(text(&page).contains(&format!("href=\"http://web.localhost:{r}/\"")));
    }
    let lease = server.post("/api/v1/ports/lease", "{}", &[]);
    assert_eq!(lease.status, 201, "the API still serves on its own port");
    let reply = post_on(r, "localhost", "/api/v1/ports/lease");
    assert_eq!(reply.status, 404, "{}", text(&reply));
    let leases = server.get("/api/v1/ports/leases").json();
    assert_eq!(leases["leases"].as_array().unwrap().len(), 2, "{leases}");
    // An unknown name: the same list.
    let reply = get(r, &host("nope", r), "/", &[]);
    assert_eq!((reply.status, listed(&reply.json())), (404, live));
    assert_eq!(web.requests(), 3);
}

fn post_on(port: u16, host: &str, path: &str) -> Reply {
    let stream = connect(port).unwrap();
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    crate::fixture::exchange(stream, raw.as_bytes()).unwrap()
}

#[test]
fn a_foreign_host_on_the_routes_port_is_421_with_no_content() {
    let (server, r) = with_routes_port();
    let web = DevServer::start(lease(&server, "web"), "");
    for bad in [
        "evil.example".to_string(),
        format!("evil.example:{r}"),
        format!("web.evil.example:{r}"),
    ] {
        for accept in [None, Some(BROWSER)] {
            let extra: Vec<_> = accept.iter().map(|a| ("Accept", *a)).collect();
            let reply = get(r, &bad, "/", &extra);
            assert_eq!(reply.status, 421, "{bad}: {}", text(&reply));
            assert_eq!(reply.header("content-length"), Some("0"), "{bad}");
            assert_eq!(text(&reply), "", "{bad}: a rebound page could read this");
        }
    }
    assert_eq!(web.requests(), 0);
}

#[test]
fn a_routes_port_inside_the_range_is_refused_at_start() {
    let (first, last) = free_range(4);
    let range = format!("{first}-{last}");
    let inside = (first + 2).to_string();
    let dir = crate::fixture::TempDir::new();
    let args = [
        "--range",
        &range,
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--routes-port",
        &inside,
    ];
    let (status, _, stderr) = run_dynport(&args, &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--routes-port"), "{stderr}");
    assert!(!stderr.contains("unknown"), "{stderr}");
}
