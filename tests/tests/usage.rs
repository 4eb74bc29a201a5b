//! Usage analytics through the real binary: `GET /api/v1/system/usage`
//! after a known sequence of leases, the whole `/metrics` text as
//! Prometheus's own parser reads it, and a real Prometheus scraping the
//! new series.

use crate::fixture::{Launch, Server, eventually, free_range, require_tool};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod prometheus;
mod text;

const WAIT: Duration = Duration::from_secs(30);

/// A process that lives until dropped.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        let mut sleep = Command::new("sleep");
        sleep.arg("600").stdin(Stdio::null());
        Sleeper(sleep.spawn().expect("sleep runs"))
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lease(server: &Server, body: &str) -> Value {
    let reply = server.post("/api/v1/ports/lease", body, &[]);
    assert_eq!(reply.status, 201, "lease {body}: {reply:?}");
    reply.json()["lease"].clone()
}

fn usage(server: &Server) -> Value {
    let reply = server.get("/api/v1/system/usage");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

/// A lease of each ending, one denial, and what usage says of them: a
/// server with a pool `web` of 4 ports in a range of 16.
fn known_sequence() -> (Server, Value) {
    let (start, end) = free_range(16);
    let pool = format!("web={}-{}", end - 3, end);
    let args = ["--pool", &pool, "--refresh-secs", "1"];
    let server = Launch::with_range((start, end), &args).start();
    // Held: 2 ports.
    lease(&server, r#"{"count": 2}"#);
    // Released.
    let one = lease(&server, r#"{"pool": "web"}"#);
    let path = format!("/api/v1/ports/leases/{}", one["id"].as_str().unwrap());
    assert_eq!(server.request("DELETE", &path, &[], "").status, 200);
    // Expired.
    lease(&server, r#"{"ttl_secs": 1}"#);
    eventually(WAIT, "the 1 s lease to expire", || {
        usage(&server)["lease_lifetimes"]["expired"]["count"] == 1
    });
    // Ended with its process.
    let mut sleeper = Sleeper::spawn();
    lease(&server, &format!(r#"{{"pid": {}}}"#, sleeper.0.id()));
    sleeper.kill();
    eventually(WAIT, "the lease of a killed process to end", || {
        usage(&server)["lease_lifetimes"]["owner_exited"]["count"] == 1
    });
    // Denied.
    let denied = server.post("/api/v1/ports/lease", r#"{"pool": "nope"}"#, &[]);
    assert_eq!(denied.status / 100, 4, "{denied:?}");
    let after = usage(&server);
    (server, after)
}

#[test]
fn usage_counts_a_known_sequence_of_leases() {
    let (server, u) = known_sequence();
    let (start, end) = server.range();
    let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "grant_latency",
            "lease_lifetimes",
            "leased",
            "leased_by_uid",
            "peak_leased",
            "per_minute",
            "pools",
            "timestamp"
        ]
    );
    let default = &u["pools"]["default"];
    assert_eq!(default["leased"], 2);
    assert_eq!(default["server"], 1);
    let states = ["free", "in_use", "server", "leased", "excluded"];
    let total: u64 = states.iter().map(|s| default[s].as_u64().unwrap()).sum();
    assert_eq!(total, u64::from(end - start + 1));
    let web = &u["pools"]["web"];
    let held = server.get("/api/v1/ports/leases").json();
    let in_web = (held["leases"].as_array().unwrap().iter())
        .flat_map(|l| l["ports"].as_array().unwrap())
        .filter(|p| p.as_u64().unwrap() >= u64::from(end - 3))
        .count();
    assert_eq!(web["leased"], in_web);
    assert_eq!(web["server"], 0);
    let web_total: u64 = states.iter().map(|s| web[s].as_u64().unwrap()).sum();
    assert_eq!(web_total, 4);
    assert_eq!(u["leased"], 2);
    // The test's own user leased them, over loopback TCP.
    let me = unsafe { libc::getuid() };
    assert_eq!(
        u["leased_by_uid"],
        serde_json::json!([{"uid": me, "ports": 2}, {"uid": "other", "ports": 0}])
    );
    let lifetimes = &u["lease_lifetimes"];
    for (ending, count) in [("released", 1), ("expired", 1), ("owner_exited", 1)] {
        let h = &lifetimes[ending];
        assert_eq!(h["count"], count, "{ending}: {h}");
        let buckets = h["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 16, "1 s .. 1 week and +Inf");
        assert_eq!(buckets[0]["le"].as_f64(), Some(1.0));
        assert_eq!(buckets[14]["le"].as_f64(), Some(604800.0));
        assert_eq!(
            buckets[15],
            serde_json::json!({"le": "+Inf", "count": count})
        );
    }
    // A TTL of 1 s lived exactly its TTL.
    assert_eq!(lifetimes["expired"]["sum_secs"].as_f64(), Some(1.0));
    assert_eq!(lifetimes["expired"]["buckets"][0]["count"], 1);
    let latency = &u["grant_latency"];
    assert_eq!(latency["count"], 4);
    let buckets = latency["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 17, "100 µs .. 10 s and +Inf");
    assert_eq!(buckets[0]["le"].as_f64(), Some(0.0001));
    assert_eq!(buckets[15]["le"].as_f64(), Some(10.0));
    assert!(latency["sum_secs"].as_f64().unwrap() > 0.0);
    let minutes = &u["per_minute"];
    let sum = |key: &str| -> u64 {
        let values = minutes[key].as_array().unwrap();
        assert_eq!(values.len(), 60, "{key}");
        values.iter().map(|v| v.as_u64().unwrap()).sum()
    };
    assert_eq!(sum("grants"), 4);
    assert_eq!(sum("denials"), 1);
    let start = minutes["start"].as_str().unwrap();
    assert!(start.ends_with(":00Z"), "a minute's start: {start}");
    // Two held, and one more at a time.
    assert_eq!(u["peak_leased"], serde_json::json!({"hour": 3, "day": 3}));
}

#[test]
fn usage_refuses_any_parameter_naming_it() {
    let server = Server::start(&[]);
    let reply = server.get("/api/v1/system/usage?bogus=1");
    assert_eq!(reply.status, 400);
    let error = reply.error();
    assert!(error.contains("\"bogus\""), "{error}");
    assert_eq!(server.get("/api/v1/system/usage?").status, 200);
}

#[test]
fn metrics_carry_the_usage_series_and_parse() {
    let (server, _) = known_sequence();
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    let body = String::from_utf8(reply.body).unwrap();
    let families = text::parse(&body);
    let me = unsafe { libc::getuid() };
    for (series, value) in [
        ("dynport_pool_ports{pool=\"default\",state=\"leased\"}", 2.0),
        ("dynport_pool_ports{pool=\"web\",state=\"server\"}", 0.0),
        (&format!("dynport_leased_ports{{uid=\"{me}\"}}"), 2.0),
        ("dynport_leased_ports{uid=\"other\"}", 0.0),
        (
            "dynport_lease_lifetime_seconds_count{reason=\"released\"}",
            1.0,
        ),
        (
            "dynport_lease_lifetime_seconds_bucket{reason=\"expired\",le=\"1\"}",
            1.0,
        ),
        (
            "dynport_lease_lifetime_seconds_sum{reason=\"expired\"}",
            1.0,
        ),
        (
            "dynport_lease_lifetime_seconds_count{reason=\"owner_exited\"}",
            1.0,
        ),
        ("dynport_lease_grant_latency_seconds_count", 4.0),
        (
            "dynport_lease_grant_latency_seconds_bucket{le=\"+Inf\"}",
            4.0,
        ),
        ("dynport_leased_ports_peak{window=\"hour\"}", 3.0),
        ("dynport_leased_ports_peak{window=\"day\"}", 3.0),
        ("dynport_lease_grants_total", 4.0),
        ("dynport_lease_denials_total{reason=\"unknown_pool\"}", 1.0),
    ] {
        assert_eq!(
            text::value(&families, series),
            Some(value),
            "{series} in\n{body}"
        );
    }
    assert_eq!(families["dynport_lease_lifetime_seconds"].kind, "histogram");
    assert_eq!(
        families["dynport_lease_grant_latency_seconds"].kind,
        "histogram"
    );
    if let Some(promtool) = require_tool("promtool") {
        prometheus::promtool_checks(&promtool, &body);
    }
}

#[test]
fn a_real_prometheus_scrape_shows_the_new_series() {
    let Some(program) = require_tool("prometheus") else {
        return;
    };
    let server = Server::start(&[]);
    lease(&server, r#"{"count": 2}"#);
    let prom = prometheus::Prometheus::start(&program, server.port);
    for query in [
        "dynport_pool_ports{pool=\"default\",state=\"leased\"}",
        "dynport_leased_ports{uid=\"other\"}",
        "dynport_lease_grant_latency_seconds_count",
        "dynport_lease_lifetime_seconds_bucket{reason=\"released\",le=\"+Inf\"}",
        "dynport_leased_ports_peak{window=\"day\"}",
    ] {
        let value = prom.value_of(query);
        let expected = match query {
            q if q.contains("uid=\"other\"") || q.contains("released") => 0.0,
            q if q.contains("latency") => 1.0,
            _ => 2.0,
        };
        assert_eq!(value, expected, "{query}");
    }
}
