//! A real browser against dynport: Debian's `chromium`, headless, opens an
//! attacker's page served from another loopback port, whose script tries
//! the issue's two attacks (a `no-cors` fetch granting a lease, a form
//! moving the server). dynport must have received both and refused both.

use super::{LOG_WAIT, metric};
use crate::fixture::{Server, TempDir, eventually};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Chromium starts, runs the page and exits in about 2 s when idle.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
const FOURXX: &str = "dynport_http_requests_total{class=\"4xx\"}";

/// The page of an attacker's site, aimed at dynport on `port`.
fn attack_page(port: u16) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">running</pre>
<form id="f" method="POST" target="sink"
      action="http://127.0.0.1:{port}/api/v1/server/port/change"></form>
<iframe name="sink"></iframe>
<script>
const results = [];
async function attack() {{
  try {{
    const r = await fetch('http://127.0.0.1:{port}/api/v1/ports/lease',
      {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body: '{{}}'}});
    results.push('fetch:' + r.type);
  }} catch (e) {{ results.push('fetch-error:' + e); }}
  document.getElementById('f').submit();
  results.push('form:submitted');
  document.getElementById('out').textContent = results.join(' ');
}}
attack();
</script></body></html>"#
    )
}

/// The attacker's web site: one page for every request, on a loopback port
/// of its own (another origin than dynport's).
struct Site {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Site {
    fn serve(page: String) -> Site {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the site");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = stream {
                    answer(stream, &page);
                }
            }
        });
        Site {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head and answers with `page`, closing the connection.
fn answer(mut stream: TcpStream, page: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// Runs headless chromium on `url` in a process group of its own; its
/// dumped DOM. The whole group is killed if it outlives the timeout.
pub(crate) fn dump_dom(browser: &Path, url: &str, profile: &TempDir) -> String {
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-proxy-server",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .env("HOME", profile.path())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    wait_or_kill(child)
}

/// Waits for chromium, started in a process group of its own, to exit;
/// its stdout. Its whole group is killed when done or past the timeout.
pub(crate) fn wait_or_kill(mut child: Child) -> String {
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut dom = String::new();
        let _ = stdout.read_to_string(&mut dom);
        dom
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    while child.try_wait().expect("try_wait works").is_none() {
        if Instant::now() >= deadline {
            kill_group(&child);
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    kill_group(&child);
    reader.join().unwrap_or_default()
}

/// Kills what is left of the browser's process group (its helpers).
fn kill_group(child: &Child) {
    let group = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    // SAFETY: kill(2) takes plain integers. The group is the one this test
    // made for chromium (process_group(0)), led by a child not yet reaped.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

#[test]
fn a_web_page_in_chromium_cannot_change_dynport() {
    let Some(browser) = crate::fixture::require_tool("chromium") else {
        return;
    };
    let server = Server::start(&[]);
    let port = server.port;
    let site = Site::serve(attack_page(port));
    let refused_before = metric(&server, FOURXX);
    let profile = TempDir::new();
    let url = format!("http://127.0.0.1:{}/", site.port);
    let dom = dump_dom(&browser, &url, &profile);
    assert!(
        dom.contains("fetch:opaque form:submitted"),
        "the page's script did not run:\n{dom}"
    );
    let origin = format!("Origin: http://127.0.0.1:{}", site.port);
    for path in ["/api/v1/ports/lease", "/api/v1/server/port/change"] {
        let line = format!("refused POST {path} from a web page ({origin}");
        eventually(LOG_WAIT, &line, || server.log().contains(&line));
    }
    assert_eq!(
        metric(&server, FOURXX),
        refused_before + 2,
        "{}",
        server.log()
    );
    let leases = server.get("/api/v1/ports/leases").json();
    assert_eq!(
        leases["leases"],
        serde_json::json!([]),
        "no lease was granted"
    );
    let now = server.get("/api/v1/server/port").json();
    assert_eq!(now["server_port"], port, "the server did not move");
    assert!(
        !server.log().contains("Server port changed"),
        "{}",
        server.log()
    );
}
