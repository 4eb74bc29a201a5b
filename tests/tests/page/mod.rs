//! The port map at `GET /` in a real browser: headless Chromium, driven
//! over its DevTools protocol (`cdp.rs`), loads the page of a server on
//! 6,001 ports (the size of the default range) with no console error,
//! shows the server's own port as `server`, shows a lease made after it
//! loaded within 2 s without a reload (and its release), shows the holders
//! of a port on a click, writes a screenshot at 1400×1000 to
//! `target/port-map.png`, and follows the server to a new port.

mod cdp;

use crate::fixture::{BIN, Launch, Server, eventually, free_range, require_tool};
use cdp::Browser;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long chromium may take to load the page and open its stream.
const LOAD: Duration = Duration::from_secs(60);
/// The contract: a change shows on the page within this, without a reload.
const LIVE: Duration = Duration::from_secs(2);
/// An owner written to break out of text, shown as text.
const MARKUP: &str = "<img src=x onerror=alert(1)>";

/// Sockets that make three ports of the range in use: TCP, UDP and both.
fn hold_ports(first: u16) -> (Vec<TcpListener>, Vec<UdpSocket>) {
    let any = Ipv4Addr::UNSPECIFIED;
    let tcp = vec![
        TcpListener::bind((any, first)).expect("bind a TCP port of the range"),
        TcpListener::bind((any, first + 4)).expect("bind a TCP port of the range"),
    ];
    let udp = vec![
        UdpSocket::bind((any, first + 2)).expect("bind a UDP port of the range"),
        UdpSocket::bind((any, first + 4)).expect("bind a UDP port of the range"),
    ];
    (tcp, udp)
}

fn lease(server: &Server, body: Value) -> Value {
    let reply = server.post("/api/v1/ports/lease", &body.to_string(), &[]);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["lease"].clone()
}

/// The first line of the title of the cell of `port`: its port and state.
fn cell(browser: &mut Browser, port: u64) -> Value {
    browser.eval(&format!(
        "(document.querySelector('[data-port=\"{port}\"]') || {{title: ''}}).title.split('\\n')[0]"
    ))
}

fn screenshot_path() -> PathBuf {
    let target = PathBuf::from(BIN).ancestors().nth(2).unwrap().to_path_buf();
    target.join("port-map.png")
}

/// Keeps the screenshot in target/, or in the temporary directory when
/// target/ is not this user's to write (a build made by another user, as
/// when the tests are run as `nobody` from root's build), saying where.
fn save_screenshot(png: &[u8]) {
    let path = screenshot_path();
    let saved = match std::fs::write(&path, png) {
        Ok(()) => path,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let elsewhere =
                std::env::temp_dir().join(format!("port-map-{}.png", std::process::id()));
            std::fs::write(&elsewhere, png).expect("write the screenshot");
            elsewhere
        }
        Err(e) => panic!("write the screenshot to {}: {e}", path.display()),
    };
    eprintln!("the page's screenshot: {}", saved.display());
}

#[test]
fn chromium_shows_the_map_and_a_new_lease_within_2_s() {
    let Some(program) = require_tool("chromium") else {
        return;
    };
    let range = free_range(6001);
    let _held = hold_ports(range.0 + 40);
    let pool = format!("web={}-{}", range.0 + 200, range.0 + 1199);
    let args = ["--pool", &pool, "--max-ports-per-uid", "64"];
    let server = Launch::with_range(range, &args).start();
    let web = json!({"count": 3, "pool": "web", "owner": MARKUP, "name": "web"});
    lease(&server, web);
    lease(&server, json!({"count": 8, "owner": "ci job 17"}));
    lease(
        &server,
        json!({"count": 20, "pool": "web", "owner": "load test"}),
    );
    let mut browser = Browser::start(&program);
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        browser.call(domain, json!({}));
    }
    let size = json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false});
    browser.call("Emulation.setDeviceMetricsOverride", size);
    let url = format!("http://127.0.0.1:{}/", server.port);
    browser.call("Page.navigate", json!({"url": url}));
    eventually(LOAD, "the page to read dynport and open its stream", || {
        browser.try_eval("document.body.dataset.ready === '1'") == Ok(json!(true))
    });

    let cells = browser.eval("document.querySelectorAll('#map i[data-port]').length");
    assert_eq!(cells, 6001);
    let port = u64::from(server.port);
    assert_eq!(cell(&mut browser, port), format!("{port} server"));
    let first = u64::from(range.0) + 40;
    assert_eq!(cell(&mut browser, first), format!("{first} in_use tcp"));
    assert_eq!(
        cell(&mut browser, first + 2),
        format!("{} in_use udp", first + 2)
    );
    assert_eq!(
        cell(&mut browser, first + 4),
        format!("{} in_use tcp+udp", first + 4)
    );
    the_owners_markup_is_text(&mut browser);

    browser.eval("window.loadedOnce = true");
    let fresh = lease(&server, json!({"owner": "browser test", "name": "fresh"}));
    let answered = Instant::now();
    let leased = fresh["ports"][0].as_u64().unwrap();
    let want = format!("{leased} leased");
    while cell(&mut browser, leased) != want.as_str() {
        assert!(
            answered.elapsed() < LIVE,
            "the lease of {leased} did not show within {LIVE:?}: {}",
            cell(&mut browser, leased)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let title = browser.eval(&format!(
        "document.querySelector('[data-port=\"{leased}\"]').title"
    ));
    let title = title.as_str().unwrap();
    for line in ["name: fresh", "owner: browser test", "pool: default"] {
        assert!(title.lines().any(|l| l == line), "{line:?} in {title:?}");
    }
    assert_eq!(
        browser.eval("window.loadedOnce === true"),
        true,
        "no reload"
    );
    hovering_shows_the_lease(&mut browser, leased);

    a_click_shows_the_holders(&mut browser, &server);
    let shot = browser.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = cdp::base64_decode(shot["data"].as_str().unwrap());
    assert_eq!(&png[1..4], b"PNG");
    save_screenshot(&png);
    assert_eq!(browser.errors(), Vec::<&Value>::new(), "errors in the page");
    a_release_frees_the_port(&mut browser, &server, &fresh);
    the_page_follows_the_server_to_its_new_port(&mut browser, &server);
}

/// A released lease's port shows as free again, without a reload.
fn a_release_frees_the_port(browser: &mut Browser, server: &Server, lease: &Value) {
    let id = lease["id"].as_str().unwrap();
    let port = lease["ports"][0].as_u64().unwrap();
    let reply = server.request("DELETE", &format!("/api/v1/ports/leases/{id}"), &[], "");
    assert_eq!(reply.status, 200);
    eventually(LOAD, "the released port free again", || {
        cell(browser, port) == format!("{port} free").as_str()
    });
    assert_eq!(
        browser.eval("window.loadedOnce === true"),
        true,
        "no reload"
    );
}

/// A lease's owner made of markup is shown as those very characters.
fn the_owners_markup_is_text(browser: &mut Browser) {
    let shown = browser.eval(&format!(
        "[...document.querySelectorAll('#rows td')].some(td => td.textContent === {})",
        json!(MARKUP)
    ));
    assert_eq!(shown, true, "the owner {MARKUP:?} in the table");
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), 0);
}

/// A click on the server's cell lists dynport's own process as its holder.
fn a_click_shows_the_holders(browser: &mut Browser, server: &Server) {
    let port = server.port;
    browser.eval(&format!(
        "document.querySelector('[data-port=\"{port}\"]').click()"
    ));
    let pid = server.pid().to_string();
    eventually(LOAD, "the holders of the server's port", || {
        let text = browser.eval("document.getElementById('holders').textContent");
        let text = text.as_str().unwrap_or_default();
        text.contains("dynport") && text.contains(&pid)
    });
}

/// Hovering over a leased port shows its lease's owner and name.
fn hovering_shows_the_lease(browser: &mut Browser, port: u64) {
    browser.eval(&format!(
        "document.querySelector('[data-port=\"{port}\"]')\
         .dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}}))"
    ));
    let info = browser.eval("document.getElementById('info').textContent");
    let info = info.as_str().unwrap();
    assert!(info.contains("ownerbrowser test"), "{info}");
    assert!(info.contains("namefresh"), "{info}");
}

/// When the server moves, the page goes on at the new port.
fn the_page_follows_the_server_to_its_new_port(browser: &mut Browser, server: &Server) {
    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let new = reply.json()["new_port"].as_u64().unwrap();
    eventually(LOAD, "the page at the server's new port", || {
        let at = browser.try_eval("location.port + ' ' + document.body.dataset.ready");
        at == Ok(json!(format!("{new} 1")))
    });
    assert_eq!(cell(browser, new), format!("{new} server"));
    assert_eq!(browser.errors(), Vec::<&Value>::new(), "errors in the page");
}
