//! Prometheus's own programs against dynport's `/metrics`: `promtool
//! check metrics` (its parser and linter), and a `prometheus` server
//! scraping dynport every second, asked through its HTTP API.

use crate::fixture::{TempDir, eventually, free_range, request, run_to_end};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `promtool check metrics` reads `text` and finds nothing to say.
pub fn promtool_checks(promtool: &Path, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool check metrics: {said}\n{text}"
    );
    assert_eq!(said.trim(), "", "promtool check metrics found problems");
}

/// A `prometheus` server scraping one dynport, with its storage in a
/// temporary directory; killed when dropped, whatever the test's outcome.
pub struct Prometheus {
    child: Child,
    web: u16,
    dir: TempDir,
}

impl Prometheus {
    pub fn start(program: &Path, dynport: u16) -> Prometheus {
        let dir = TempDir::new();
        let config = dir.path().join("prometheus.yml");
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: dynport\n    static_configs:\n      \
             - targets: ['127.0.0.1:{dynport}']\n"
        );
        std::fs::write(&config, yaml).unwrap();
        let (status, _, err) = run_to_end(
            Command::new(program.with_file_name("promtool"))
                .args(["check", "config"])
                .arg(&config),
            Duration::from_secs(30),
        );
        assert!(status.success(), "promtool check config: {err}");
        let web = free_range(1).0;
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus runs");
        Prometheus { child, web, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of the one series `query` selects, once a scrape has
    /// brought it.
    pub fn value_of(&self, query: &str) -> f64 {
        let path = format!("/api/v1/query?query={}", encode(query));
        let mut found = None;
        let ask = || {
            let reply = request(self.web, "GET", &path, &[], b"").ok()?;
            let body: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
            assert_eq!(reply.status, 200, "{query}: {body}");
            let result = body["data"]["result"].as_array()?.clone();
            assert!(result.len() <= 1, "{query}: {result:?}");
            result.first()?["value"][1].as_str()?.parse::<f64>().ok()
        };
        let what = format!("prometheus to have scraped {query}");
        let waited = crate::fixture::poll_until(Duration::from_secs(60), || {
            found = ask();
            found.is_some()
        });
        if !waited {
            eventually(
                Duration::ZERO,
                &format!("{what}; its log:\n{}", self.log()),
                || false,
            );
        }
        found.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
