//! Which requests reach which backend, and as what: `Host: NAME.localhost`
//! in any case on the API's own port, the forwarding headers and `Via`,
//! the loop stop (508), one route per connection (421), and a foreign
//! `Host` that never reaches a dev server.

use super::backends::DevServer;
use super::{Conn, alias, echoed, get, host, lease, lines_named, start, text};

#[test]
fn a_name_routes_by_host_in_any_case_on_the_api_port() {
    let server = start(&[]);
    let port = lease(&server, "web");
    let web = DevServer::start(port, "<p>web</p>");
    let p = server.port;
    for host in [
        format!("web.localhost:{p}"),
        format!("WEB.LocalHost:{p}"),
        "web.localhost".to_string(),
        "Web.LOCALHOST".to_string(),
    ] {
        let reply = get(p, &host, "/", &[]);
        assert_eq!(
            (reply.status, text(&reply)),
            (200, "<p>web</p>".into()),
            "{host}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
    }
    assert_eq!(web.requests(), 4);
    // The API's own hosts are still the API on the same port.
    for host in [format!("localhost:{p}"), format!("127.0.0.1:{p}")] {
        let reply = get(p, &host, "/healthz", &[]);
        assert_eq!(reply.status, 200, "{host}: {}", text(&reply));
        assert_eq!(reply.json()["status"], "ok");
    }
    assert_eq!(web.requests(), 4);
}

#[test]
fn the_backend_sees_the_requests_own_host_and_the_forwarding_headers() {
    let server = start(&[]);
    let port = lease(&server, "web");
    let _web = DevServer::start(port, "");
    let p = server.port;
    let sent_host = format!("Web.Localhost:{p}");
    let reply = get(
        p,
        &sent_host,
        "/echo",
        &[
            ("X-Forwarded-For", "10.1.1.1"),
            ("Via", "1.0 corp-proxy"),
            ("X-Forwarded-Host", "forged.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Port", "443"),
        ],
    );
    let head = echoed(&reply);
    assert!(head.starts_with("GET /echo HTTP/1.1\r\n"), "{head}");
    assert_eq!(
        lines_named(&head, "host"),
        std::slice::from_ref(&sent_host),
        "{head}"
    );
    assert_eq!(
        lines_named(&head, "x-forwarded-for"),
        ["10.1.1.1, 127.0.0.1"],
        "{head}"
    );
    assert_eq!(
        lines_named(&head, "x-forwarded-host"),
        [sent_host],
        "{head}"
    );
    assert_eq!(lines_named(&head, "x-forwarded-proto"), ["http"], "{head}");
    assert_eq!(
        lines_named(&head, "x-forwarded-port"),
        [p.to_string()],
        "{head}"
    );
    assert_eq!(
        lines_named(&head, "via"),
        ["1.0 corp-proxy, 1.1 dynport"],
        "{head}"
    );
    // Without any of them: dynport's own, alone.
    let head = echoed(&get(p, &host("web", p), "/echo", &[]));
    assert_eq!(
        lines_named(&head, "x-forwarded-for"),
        ["127.0.0.1"],
        "{head}"
    );
    assert_eq!(lines_named(&head, "via"), ["1.1 dynport"], "{head}");
}

/// A 508's page says what happened and what to do about it.
fn assert_explains_the_loop(reply: &crate::fixture::Reply, name: &str) {
    let error = reply.error();
    let what = format!("a request for {name} passed through dynport 5 times");
    assert!(error.starts_with(&what), "{error}");
    assert!(
        error.contains("proxies back through dynport without changing Host"),
        "{error}"
    );
}

#[test]
fn via_naming_dynport_five_times_is_508_and_four_times_passes() {
    let server = start(&[]);
    let port = lease(&server, "web");
    let web = DevServer::start(port, "");
    let p = server.port;
    let four = "1.1 dynport, 1.1 dynport, 1.1 other, 1.1 dynport, 1.1 dynport";
    let head = echoed(&get(p, &host("web", p), "/echo", &[("Via", four)]));
    assert_eq!(lines_named(&head, "via"), [format!("{four}, 1.1 dynport")]);
    assert_eq!(web.requests(), 1);
    // The fifth, in two header lines.
    let reply = get(
        p,
        &host("web", p),
        "/echo",
        &[
            ("Via", "1.1 dynport, 1.1 dynport"),
            ("Via", "1.1 dynport, 1.0 dynport, 1.1 dynport"),
        ],
    );
    assert_eq!(reply.status, 508, "{}", text(&reply));
    assert_explains_the_loop(&reply, "web");
    assert_eq!(web.requests(), 1, "the looping request reached the backend");
}

#[test]
fn a_name_for_dynports_own_port_loops_and_ends_in_508() {
    let server = start(&[]);
    // A dev server proxying back through dynport without changing Host.
    alias(&server, "loop", server.port);
    let reply = get(server.port, &host("loop", server.port), "/", &[]);
    assert_eq!(reply.status, 508, "{}", text(&reply));
    assert!(
        text(&reply).to_ascii_lowercase().contains("loop"),
        "{}",
        text(&reply)
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn one_connection_carries_one_route_and_another_route_or_the_api_is_421() {
    let server = start(&[]);
    let web = DevServer::start(lease(&server, "web"), "");
    let api = DevServer::start(lease(&server, "api"), "");
    let p = server.port;
    for other in [
        host("api", p),
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
    ] {
        let mut conn = Conn::open(p);
        conn.send("GET", "/echo", &host("web", p), &[]);
        echoed(&conn.answer());
        conn.send("GET", "/echo", &other, &[]);
        let reply = conn.answer();
        assert_eq!(reply.status, 421, "{other}: {}", text(&reply));
        assert_eq!(reply.header("connection"), Some("close"), "{other}");
        assert!(conn.closed(), "{other}: the connection stayed open");
    }
    // Pipelined, the answer owed first and then the 421.
    let mut conn = Conn::open(p);
    conn.send("GET", "/big?200000", &host("web", p), &[]);
    conn.send("GET", "/echo", &host("api", p), &[]);
    let first = conn.answer();
    assert_eq!((first.status, first.body.len()), (200, 200_000));
    assert_eq!(conn.answer().status, 421);
    assert!(conn.closed());
    assert_eq!(web.requests(), 4);
    assert_eq!(
        api.requests(),
        0,
        "the api backend got another route's connection"
    );
    // The API first, then a route: the route is refused.
    let mut conn = Conn::open(p);
    conn.send("GET", "/healthz", &format!("localhost:{p}"), &[]);
    assert_eq!(conn.answer().status, 200);
    conn.send("GET", "/echo", &host("web", p), &[]);
    let reply = conn.answer();
    assert_eq!(reply.status, 421, "{}", text(&reply));
    assert!(conn.closed());
    assert_eq!(
        web.requests(),
        4,
        "a connection of the API reached a backend"
    );
}

#[test]
fn a_foreign_host_on_the_api_port_is_421_and_never_reaches_a_backend() {
    let server = start(&[]);
    let web = DevServer::start(lease(&server, "web"), "");
    let p = server.port;
    // A page of evil.example whose name was rebound to 127.0.0.1, and
    // names that only look like a route.
    for bad in [
        "evil.example".to_string(),
        format!("evil.example:{p}"),
        format!("web.localhost.evil.example:{p}"),
        format!("web.evil.example:{p}"),
        format!("localhost.web:{p}"),
    ] {
        let reply = get(p, &bad, "/echo", &[]);
        assert_eq!(reply.status, 421, "{bad}: {}", text(&reply));
    }
    assert_eq!(web.requests(), 0);
    // The same name, rightly spelt, is routed.
    echoed(&get(p, &host("web", p), "/echo", &[]));
    assert_eq!(web.requests(), 1);
}

#[test]
fn an_alias_routes_like_a_leased_name() {
    let server = start(&[]);
    // A database in a container: a port dynport did not lease, outside
    // its range.
    let db = DevServer::start(0, "<p>db</p>");
    alias(&server, "db", db.port);
    let reply = get(server.port, &host("db", server.port), "/", &[]);
    assert_eq!((reply.status, text(&reply)), (200, "<p>db</p>".into()));
    assert_eq!(db.requests(), 1);
    let gone = server.request("DELETE", "/api/v1/names/db", &[], "");
    assert!(matches!(gone.status, 200 | 204), "{}", text(&gone));
    let reply = get(server.port, &host("db", server.port), "/", &[]);
    assert_eq!(reply.status, 404, "{}", text(&reply));
    assert_eq!(db.requests(), 1);
}

#[test]
fn a_request_naming_two_hosts_is_400_and_reaches_no_backend() {
    let server = start(&[]);
    let web = DevServer::start(lease(&server, "web"), "");
    let api = DevServer::start(lease(&server, "api"), "");
    let p = server.port;
    // Two Host headers, in either order, first on a fresh connection and
    // then after a routed request on the same one.
    for first in [true, false] {
        let mut conn = Conn::open(p);
        if !first {
            conn.send("GET", "/echo", &host("web", p), &[]);
            echoed(&conn.answer());
        }
        conn.send("GET", "/echo", &host("web", p), &[("Host", "evil.example")]);
        let reply = conn.answer();
        assert_eq!(reply.status, 400, "{}", text(&reply));
        assert_eq!(
            reply.json()["error"],
            "the request has more than one Host header"
        );
    }
    // A target in absolute form naming another route than the Host.
    for first in [true, false] {
        let mut conn = Conn::open(p);
        if !first {
            conn.send("GET", "/echo", &host("web", p), &[]);
            echoed(&conn.answer());
        }
        conn.send(
            "GET",
            &format!("http://api.localhost:{p}/echo"),
            &host("web", p),
            &[],
        );
        let reply = conn.answer();
        assert_eq!(reply.status, 400, "{}", text(&reply));
        assert_eq!(
            reply.json()["error"],
            format!("the request target names api.localhost:{p} but Host names web.localhost:{p}")
        );
    }
    assert_eq!((web.requests(), api.requests()), (2, 0));
}
