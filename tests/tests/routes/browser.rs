//! A real browser through a name: Debian's `chromium`, headless, opens
//! `http://web.localhost:PORT/` (PORT dynport's API port) of a dev server
//! behind a lease named `web`; the page's script opens a WebSocket through
//! the same URL, sends a message and puts the echo in the DOM, which the
//! test reads back. Chromium resolves `*.localhost` to loopback by itself,
//! headless too: no `/etc/hosts` entry and no resolver flag.

use super::backends::DevServer;
use super::{lease, start};
use crate::fixture::TempDir;
use crate::guards::chromium::dump_dom;

/// The dev server's page: a WebSocket to its own host, the echo shown.
/// Its image, which the dev server answers only once it has echoed, holds
/// the load event (and so chromium's dump of the page) until the echo is
/// on its way: a slow machine cannot dump the page before it.
const PAGE: &str = r#"<!doctype html><html><head><title>web</title></head><body>
<pre id="out">waiting</pre>
<script>
const out = document.getElementById('out');
const ws = new WebSocket('ws://' + location.host + '/ws');
ws.onopen = () => ws.send('hello from ' + location.host);
ws.onmessage = (e) => { out.textContent = 'echo: ' + e.data; ws.close(); };
ws.onerror = () => { out.textContent = 'websocket error'; };
</script>
<img src="/after-echo" alt=""></body></html>"#;

#[test]
fn chromium_opens_a_name_and_its_websocket_echoes_through_dynport() {
    let Some(browser) = crate::fixture::require_tool("chromium") else {
        return;
    };
    let server = start(&[]);
    let web = DevServer::start(lease(&server, "web"), PAGE);
    let host = format!("web.localhost:{}", server.port);
    let profile = TempDir::new();
    let dom = dump_dom(&browser, &format!("http://{host}/"), &profile);
    assert!(
        dom.contains(&format!("<pre id=\"out\">echo: hello from {host}</pre>")),
        "no echo in the page:\n{dom}\nlog:\n{}",
        server.log()
    );
    // The page and the WebSocket's handshake (and the icon it looks for).
    let mut targets = web.targets();
    targets.retain(|t| t != "/favicon.ico" && t != "/after-echo");
    assert_eq!(targets, ["/", "/ws"]);
}
