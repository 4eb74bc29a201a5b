//! Headless Chromium driven over its DevTools protocol: started in a
//! process group of its own (killed whole on drop, whatever the test's
//! outcome), one page attached in flat mode, commands answered by id and
//! every other message kept as an event for the test to read.

use crate::fixture::TempDir;
use crate::routes::ws::{self, Client};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long chromium may take to say where its DevTools listen, and to
/// answer one command.
const WAIT: Duration = Duration::from_secs(60);

/// A running chromium with one page attached.
pub struct Browser {
    child: Child,
    /// The DevTools connection, once chromium has said where they listen.
    ws: Option<Client>,
    next_id: u64,
    session: String,
    /// Every message that was not an answer, in order.
    pub events: Vec<Value>,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromium and attaches to a blank page of it.
    pub fn start(program: &Path) -> Browser {
        let profile = TempDir::new();
        let mut child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-proxy-server",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("HOME", profile.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let mut browser = Browser {
            child,
            ws: None,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let url = devtools_url(stderr).unwrap_or_else(|| {
            panic!("chromium did not say where its DevTools listen within {WAIT:?}")
        });
        browser.ws = Some(open(&url));
        browser.attach();
        browser
    }

    fn attach(&mut self) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        self.session = attached["sessionId"].as_str().unwrap().to_string();
    }

    /// Sends `method` to the page (to the browser before one is attached)
    /// and waits for its answer; an error answer fails the test.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params)
            .unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// Sends `method` and waits for its answer: its result, or its error.
    fn send(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws().send_text(&message.to_string());
        loop {
            let message = self.receive();
            if message["id"] == id {
                return match message["error"].is_null() {
                    true => Ok(message["result"].clone()),
                    false => Err(message),
                };
            }
            self.events.push(message);
        }
    }

    fn ws(&mut self) -> &mut Client {
        self.ws.as_mut().expect("connected to chromium's DevTools")
    }

    fn receive(&mut self) -> Value {
        loop {
            let frame = self.ws().recv().expect("a message from chromium");
            match frame.opcode {
                ws::TEXT => return serde_json::from_slice(&frame.payload).unwrap(),
                ws::PING => self.ws().send(ws::PONG, &frame.payload),
                ws::CLOSE => panic!("chromium closed its DevTools connection"),
                other => panic!("an unexpected frame from chromium: opcode {other}"),
            }
        }
    }

    /// The value of `expression` in the page, awaited when a promise.
    pub fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    /// The value of `expression`, or why there is none (it threw, or the
    /// page was between two documents).
    pub fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let result = self.send("Runtime.evaluate", params)?;
        match result["exceptionDetails"].is_null() {
            true => Ok(result["result"]["value"].clone()),
            false => Err(result),
        }
    }

    /// What the page reported as an error so far: exceptions, console
    /// errors and log entries of level error.
    pub fn errors(&self) -> Vec<&Value> {
        let is_error = |e: &&Value| match e["method"].as_str() {
            Some("Runtime.exceptionThrown") => true,
            Some("Runtime.consoleAPICalled") => e["params"]["type"] == "error",
            Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
            _ => false,
        };
        self.events.iter().filter(is_error).collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers. The group is the one made
        // for chromium (process_group(0)), led by a child not yet reaped.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The `ws://` URL chromium prints on its stderr, which is drained after
/// it so that chromium never blocks on a full pipe.
fn devtools_url(stderr: std::process::ChildStderr) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    rx.recv_timeout(WAIT).ok()
}

/// A WebSocket to `url` (`ws://127.0.0.1:PORT/devtools/browser/ID`).
fn open(url: &str) -> Client {
    let rest = url.strip_prefix("ws://").expect("a ws:// URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let stream = TcpStream::connect(host).expect("connect to chromium's DevTools");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    Client::handshake(stream, host, path)
}

/// The bytes of standard base64 `text` (screenshots come so).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decode_undoes_the_encoder() {
    for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
        assert_eq!(base64_decode(&ws::base64(text.as_bytes())), text.as_bytes());
    }
}
