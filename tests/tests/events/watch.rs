//! `dynport watch` on the real server: its lines for people and its JSON
//! lines, following the server across a port change without printing an
//! event twice, `--count`, and exit 0 on SIGTERM and SIGINT.

use super::support::{PATIENCE, lease};
use crate::fixture::{BIN, Server, eventually, send_signal, wait_exit};
use crate::trust::users::euid;
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running `dynport watch`, its output collected; killed when dropped.
struct Watch {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Watch {
    fn spawn(args: &[&str]) -> Watch {
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(args)
            .env_remove("DYNPORT_URL")
            .env_remove("DYNPORT_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dynport watch starts");
        let (out, err) = (Arc::default(), Arc::default());
        collect(child.stdout.take().unwrap(), Arc::clone(&out));
        collect(child.stderr.take().unwrap(), Arc::clone(&err));
        Watch { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// The lines printed so far that contain `needle`.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let out = self.out();
        out.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        eventually(PATIENCE, needle, || !self.lines_with(needle).is_empty());
        self.lines_with(needle).remove(0)
    }

    /// Sends `signal`, and the exit status.
    fn stop(&mut self, signal: libc::c_int) -> ExitStatus {
        send_signal(&self.child, signal);
        wait_exit(&mut self.child, PATIENCE).expect("dynport watch exits")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
}

/// Renews `id` until `watch` has printed a line with `needle`: proof that
/// its stream is open, whenever it opened.
fn until_printed(server: &Server, watch: &mut Watch, id: &str, needle: &str) {
    let renew = format!("/api/v1/ports/leases/{id}/renew");
    eventually(PATIENCE, "dynport watch to print its first event", || {
        let (status, _) = server.json_request("POST", &renew, "").unwrap();
        assert_eq!(status, 200);
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!("dynport watch exited ({status}): {}", watch.err());
        }
        !watch.lines_with(needle).is_empty()
    });
}

fn id_of(lease: &Value) -> String {
    lease["id"].as_str().unwrap().to_string()
}

/// `2026-12-07T04:40:01Z ` at the start of `line`, and the rest.
fn after_stamp(line: &str) -> &str {
    let (stamp, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
    crate::fixture::assert_rfc3339_utc(&json!(stamp));
    rest
}

#[test]
fn watch_prints_lines_and_follows_the_server_to_its_new_port() {
    let mut server = Server::start(&[]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut watch = Watch::spawn(&["--url", &url]);
    let probe = lease(
        &server,
        r#"{"ttl_secs":600,"owner":"the probe","name":"web"}"#,
    );
    let id = id_of(&probe);
    until_printed(&server, &mut watch, &id, &format!(" lease {id} "));
    let line = watch.wait_for(&format!(" lease {id} "));
    let expected = format!(
        "lease {id} ports {} name web uid {} owner \"the probe\" expires ",
        probe["ports"][0],
        euid()
    );
    assert!(after_stamp(&line).starts_with(&expected), "{line}");

    let old = server.port;
    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let new = reply.json()["new_port"].as_u64().unwrap() as u16;
    server.port = new;
    let moved = watch.wait_for("Z port ");
    assert_eq!(after_stamp(&moved), format!("port {old} -> {new}"));

    let after = lease(&server, r#"{"ttl_secs":600,"owner":"after the move"}"#);
    let after_id = id_of(&after);
    let path = format!("/api/v1/ports/leases/{after_id}");
    assert_eq!(server.json_request("DELETE", &path, "").unwrap().0, 200);
    let released = watch.wait_for(&format!(" release {after_id} "));
    let expected = format!(
        "release {after_id} ports {} uid {} owner \"after the move\"",
        after["ports"][0],
        euid()
    );
    assert_eq!(after_stamp(&released), expected);
    // Each event once, across the reconnection.
    assert_eq!(watch.lines_with("Z port ").len(), 1, "{}", watch.out());
    assert_eq!(
        watch.lines_with(&format!(" lease {after_id} ")).len(),
        1,
        "{}",
        watch.out()
    );
    assert!(watch.stop(libc::SIGTERM).success(), "{}", watch.err());
    let said = format!("dynport: the server moved to port {new}; following it\n");
    eventually(PATIENCE, "its stderr", || watch.err().ends_with(&said));
    assert_eq!(watch.err(), said);
}

#[test]
fn watch_json_lines_parse_and_it_follows_through_the_state_directory() {
    let mut server = Server::start(&[]);
    let dir = server.dir().path().to_str().unwrap().to_string();
    let mut watch = Watch::spawn(&["--json", "--state-dir", &dir]);
    let probe = lease(&server, r#"{"ttl_secs":600}"#);
    let id = id_of(&probe);
    until_printed(&server, &mut watch, &id, &id);
    let reply = server.post("/api/v1/server/port/change", "", &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let (old, new) = (server.port, reply.json()["new_port"].as_u64().unwrap());
    server.port = new as u16;
    let after = lease(&server, r#"{"ttl_secs":600,"owner":"after the move"}"#);
    let after_id = id_of(&after);
    watch.wait_for(&after_id);
    assert!(watch.stop(libc::SIGINT).success(), "{}", watch.err());

    let lines: Vec<Value> = watch
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut ids = Vec::new();
    for line in &lines {
        assert_eq!(
            crate::fixture::keys(line),
            ["data", "event", "id"],
            "{line}"
        );
        ids.push(line["id"].as_u64().unwrap_or_else(|| panic!("{line}")));
        assert!(
            line["event"].is_string() && line["data"].is_object(),
            "{line}"
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let of = |kind: &str| lines.iter().filter(|l| l["event"] == kind).count();
    assert_eq!(of("port"), 1, "{lines:?}");
    let port = lines.iter().find(|l| l["event"] == "port").unwrap();
    assert_eq!(port["data"], json!({"from": old, "to": new}));
    let leased = lines
        .iter()
        .filter(|l| l["event"] == "lease" && l["data"]["id"] == *after_id);
    let leased: Vec<_> = leased.collect();
    assert_eq!(leased.len(), 1, "{lines:?}");
    assert_eq!(leased[0]["data"], after);
}

#[test]
fn watch_count_exits_0_after_that_many_lines() {
    let server = Server::start(&[]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut watch = Watch::spawn(&["--json", "--count", "3", "--url", &url]);
    let probe = lease(&server, r#"{"ttl_secs":600}"#);
    let renew = format!("/api/v1/ports/leases/{}/renew", id_of(&probe));
    eventually(PATIENCE, "dynport watch --count 3 to exit", || {
        server.json_request("POST", &renew, "").unwrap();
        matches!(watch.child.try_wait(), Ok(Some(_)))
    });
    let status = watch.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", watch.err());
    eventually(PATIENCE, "its output", || watch.out().lines().count() >= 3);
    assert_eq!(watch.out().lines().count(), 3, "{}", watch.out());
}

#[test]
fn watch_without_a_server_is_exit_3() {
    let dir = crate::fixture::TempDir::new();
    let out =
        crate::fixture::run_dynport(&["watch", "--state-dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(out.0.code(), Some(3), "{out:?}");
    assert!(out.2.starts_with("dynport: no server found: "), "{}", out.2);
}

#[test]
fn watch_goes_on_across_a_restart_and_says_events_were_missed() {
    let mut server = Server::start(&[]);
    let dir = server.dir().path().to_str().unwrap().to_string();
    let mut watch = Watch::spawn(&["--state-dir", &dir]);
    let probe = lease(&server, r#"{"ttl_secs":600}"#);
    let id = id_of(&probe);
    until_printed(&server, &mut watch, &id, &id);
    assert!(server.term().success());
    let server = server.relaunch().start();
    // The new run keeps no event until a stream opens (nobody could hold
    // one of its ids before): the watch's id, of the run before, is older
    // than any kept, so it is told it missed events, then gets what comes.
    let reset = watch.wait_for(" reset: ");
    assert!(
        after_stamp(&reset)
            .starts_with("reset: events were missed (the server keeps them from id "),
        "{reset}"
    );
    let after = lease(&server, r#"{"ttl_secs":600,"owner":"the next run"}"#);
    let after_id = id_of(&after);
    let line = watch.wait_for(&format!(" lease {after_id} "));
    let out = watch.out();
    assert!(out.find(&reset) < out.find(&line), "{out}");
    assert!(watch.stop(libc::SIGTERM).success(), "{}", watch.err());
    let said = watch.err();
    assert!(
        said.starts_with("dynport: lost the event stream of "),
        "{said}"
    );
    assert!(said.ends_with(" again\n"), "{said}");
    assert_eq!(said.lines().count(), 2, "{said}");
}
