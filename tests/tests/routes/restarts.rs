//! A name's URL keeps working across restarts of dynport: on the routes
//! port, which does not move, a live lease routes again after a SIGTERM
//! restart, and after a SIGKILL the name's lease gets its sticky port
//! back, where the dev server starts again. When the API's port moves,
//! URLs on it move with it, and tunnels already open go on.

use super::backends::DevServer;
use super::{get, host, listed, text, ws};
use crate::fixture::{Launch, Server, connect, eventually, free_range, refuses};
use std::time::Duration;

fn started(launch: &Launch, routes: u16) -> Server {
    let server = launch.start();
    eventually(Duration::from_secs(10), "the routes listener", || {
        connect(routes).is_ok()
    });
    server
}

/// Leases a port for `name`; the lease's id and port.
fn lease(server: &Server, name: &str) -> (String, u16) {
    let body = format!(r#"{{"name":"{name}","ttl_secs":600}}"#);
    let reply = server.post("/api/v1/ports/lease", &body, &[]);
    assert_eq!(reply.status, 201, "{}", text(&reply));
    let lease = &reply.json()["lease"];
    let id = lease["id"].as_str().unwrap().to_string();
    (id, lease["ports"][0].as_u64().unwrap() as u16)
}

#[test]
fn a_names_url_keeps_working_across_a_restart_and_a_crash() {
    let r = free_range(1).0;
    let launch = Launch::with_range(
        free_range(8),
        &["--exclude", "none", "--routes-port", &r.to_string()],
    );
    let mut server = started(&launch, r);
    let (id, port) = lease(&server, "web");
    let web = DevServer::start(port, "<p>web</p>");
    let url_host = host("web", r);
    assert_eq!(text(&get(r, &url_host, "/", &[])), "<p>web</p>");

    server.term();
    let mut server = started(&server.relaunch(), r);
    let reply = get(r, &url_host, "/", &[]);
    assert_eq!((reply.status, text(&reply)), (200, "<p>web</p>".into()));

    // The lease ends and the dev server stops; the name is retained.
    let path = format!("/api/v1/ports/leases/{id}");
    assert_eq!(server.request("DELETE", &path, &[], "").status, 200);
    drop(web);
    assert_eq!(get(r, &url_host, "/", &[]).status, 404);
    server.kill9();
    let server = started(&server.relaunch(), r);
    let (_, again) = lease(&server, "web");
    assert_eq!(again, port, "the name's sticky port");
    let reply = get(r, &url_host, "/", &[]);
    assert_eq!(reply.status, 502, "nothing listens yet: {}", text(&reply));
    let _web = DevServer::start(port, "<p>web again</p>");
    let reply = get(r, &url_host, "/", &[]);
    assert_eq!(
        (reply.status, text(&reply)),
        (200, "<p>web again</p>".into())
    );
}

#[test]
fn a_port_change_moves_the_urls_and_open_tunnels_go_on() {
    let mut server = super::start(&[]);
    let old = server.port;
    let port = super::lease(&server, "web");
    let _web = DevServer::start(port, "<p>web</p>");
    let mut tunnel = ws::Client::open(old, &host("web", old), "/ws");
    tunnel.send_text("before");
    assert_eq!(tunnel.recv().unwrap().payload, b"before");
    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(reply.status, 200, "{}", text(&reply));
    let new = reply.json()["new_port"].as_u64().unwrap() as u16;
    eventually(Duration::from_secs(10), "the old port closed", || {
        refuses(old)
    });
    server.port = new;
    tunnel.send_text("after");
    assert_eq!(tunnel.recv().unwrap().payload, b"after");
    let reply = get(new, &host("web", new), "/", &[]);
    assert_eq!((reply.status, text(&reply)), (200, "<p>web</p>".into()));
    let url = format!("http://web.localhost:{new}/");
    assert_eq!(
        listed(&server.get("/api/v1/names").json()),
        [("web".to_string(), url)]
    );
}
