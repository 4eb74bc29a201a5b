//! `bench --only names`: routing by name against one backend, side by side
//! in one run. nginx serves a small static answer; `wrk` at 50 kept-alive
//! connections loads it directly, through nginx as a proxy (`proxy_pass`,
//! upstream keep-alive), through portless 0.12's proxy (plain HTTP, route
//! `web`) and through dynport (alias `web`, `Host: web.localhost:PORT`),
//! in interleaved rounds. Then 1,000 WebSocket tunnels through a fresh
//! dynport to an echo backend, with its threads and VmRSS.

use std::io;
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::Options;
use crate::client::Client;
use crate::procs::{self, Status};
use crate::proxies;
use crate::servers::{self, Server};
use crate::table::{Row, median, mib};
use crate::websocket::{self, EchoServer};
use crate::wrk::{self, Run};

/// `wrk`'s connections, as the targets are set.
pub const CONNS: usize = 50;
/// WebSocket tunnels held open at once.
pub const TUNNELS: usize = 1000;
/// The ways to the backend, in the order of each round and of [`Names::runs`].
pub const WAYS: [&str; 4] = ["nginx direct", "nginx proxy", "portless", "dynport"];
const DIRECT: usize = 0;
const NGINX_PROXY: usize = 1;
const PORTLESS: usize = 2;
const DYNPORT: usize = 3;
/// Targets: dynport's rate against portless's and nginx's as a proxy.
const OVER_PORTLESS: f64 = 3.0;
const OVER_NGINX: f64 = 1.0;
const TUNNEL_RSS_MIB: f64 = 8.0;

/// What the names part measured.
pub struct Names {
    /// `runs[way]`: one run a round.
    pub runs: [Vec<Run>; 4],
    pub tunnels: Tunnels,
}

/// dynport's threads and memory idle and with [`TUNNELS`] open tunnels.
pub struct Tunnels {
    pub idle: Status,
    pub open: Status,
}

/// One way to the backend: the port `wrk` loads, the `Host` it sends, and
/// the process whose `/proc` status it samples.
struct Way {
    port: u16,
    host: Option<String>,
    pid: u32,
}

pub fn measure(options: &Options) -> io::Result<Names> {
    let target = options.target_dir();
    let nginx = proxies::nginx_binary(&target)?;
    let cli = proxies::portless_cli(&target)?;
    let backend = proxies::nginx_backend(&nginx)?;
    let proxy = proxies::nginx_proxy(&nginx, backend.port)?;
    let portless = proxies::portless(&cli, backend.port)?;
    let dynport = servers::start_dynport(&options.dynport, "dynport", None)?;
    let host = name_port(&dynport, "web", backend.port)?;
    let ways = [
        Way {
            port: backend.port,
            host: None,
            pid: backend.pid(),
        },
        Way {
            port: proxy.port,
            host: None,
            pid: proxy.pid(),
        },
        Way {
            port: portless.port,
            host: Some(portless.host.clone()),
            pid: portless.pid(),
        },
        Way {
            port: dynport.port,
            host: Some(host),
            pid: dynport.child.pid(),
        },
    ];
    for way in &ways {
        let host = way
            .host
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", way.port));
        proxies::wait_for_backend(way.port, &host)?;
    }
    let runs = rounds(options, &ways)?;
    drop((portless, proxy, dynport));
    let tunnels = tunnels(&options.dynport)?;
    drop(backend);
    Ok(Names { runs, tunnels })
}

/// Names `port` `name` on dynport (`PUT /api/v1/names/NAME`) and returns
/// the `Host` that routes to it.
fn name_port(dynport: &Server, name: &str, port: u16) -> io::Result<String> {
    let body = format!(r#"{{"port":{port}}}"#);
    let path = format!("/api/v1/names/{name}");
    let (status, answer) = Client::connect(dynport.port)?.request("PUT", &path, body.as_bytes())?;
    if !(200..300).contains(&status) {
        return Err(io::Error::other(format!(
            "PUT {path} {body} on dynport answered {status} {}",
            String::from_utf8_lossy(&answer)
        )));
    }
    Ok(format!("{name}.localhost:{}", dynport.port))
}

/// A warm-up run of each way, then the rounds, each taking the ways in turn.
fn rounds(options: &Options, ways: &[Way; 4]) -> io::Result<[Vec<Run>; 4]> {
    for way in ways {
        wrk::run_as(way.host.as_deref(), way.port, "/", CONNS, 1, way.pid)?;
    }
    let mut runs: [Vec<Run>; 4] = Default::default();
    for round in 1..=options.rounds {
        for (w, way) in ways.iter().enumerate() {
            let run = wrk::run_as(
                way.host.as_deref(),
                way.port,
                "/",
                CONNS,
                options.secs,
                way.pid,
            )?;
            eprintln!(
                "bench: names round {round}/{}, {:<12} {:>9.0} req/s, p50 {:>6.3} ms, p99 {:>7.3} ms, {} errors",
                options.rounds, WAYS[w], run.rps, run.p50_ms, run.p99_ms, run.errors,
            );
            if w == DYNPORT && run.errors > 0 {
                return Err(io::Error::other(format!(
                    "dynport gave {} answers that were not 2xx, or socket errors, routing \
                     Host: {} to the backend",
                    run.errors,
                    way.host.as_deref().unwrap_or("")
                )));
            }
            runs[w].push(run);
        }
    }
    // Still the backend's answer after the load, not only before it.
    let dynport = &ways[DYNPORT];
    proxies::wait_for_backend(dynport.port, dynport.host.as_deref().unwrap_or(""))?;
    Ok(runs)
}

/// A dynport of its own with the alias `ws` to the echo backend: idle, then
/// with [`TUNNELS`] tunnels open and one echo sent through each.
fn tunnels(bin: &Path) -> io::Result<Tunnels> {
    let echo = EchoServer::start()?;
    let dynport = servers::start_dynport(bin, "dynport", None)?;
    let host = name_port(&dynport, "ws", echo.port)?;
    let mut first = websocket::open_tunnels(dynport.port, &host, 1)?;
    websocket::echo(&mut first[0], "warm-up")?;
    drop(first);
    thread::sleep(Duration::from_millis(200));
    let idle = procs::status(dynport.child.pid())?;
    let mut open = websocket::open_tunnels(dynport.port, &host, TUNNELS)?;
    for (n, tunnel) in open.iter_mut().enumerate() {
        websocket::echo(tunnel, &format!("echo {n}"))
            .map_err(|e| io::Error::other(format!("WebSocket tunnel {}: {e}", n + 1)))?;
    }
    thread::sleep(Duration::from_millis(200));
    let status = procs::status(dynport.child.pid())?;
    eprintln!(
        "bench: {TUNNELS} WebSocket tunnels through dynport: {} threads (idle {}), {} KiB (idle {})",
        status.threads, idle.threads, status.rss_kib, idle.rss_kib
    );
    drop(open);
    Ok(Tunnels { idle, open: status })
}

/// The table's rows: each way's medians, the ratios and the tunnels.
pub fn rows(rows: &mut Vec<Row>, names: &Names) {
    let rps = names.runs.each_ref().map(|runs| median_of(runs, |r| r.rps));
    let p99 = names
        .runs
        .each_ref()
        .map(|runs| median_of(runs, |r| r.p99_ms));
    let labels = [
        "  nginx direct (the backend itself)",
        "  nginx as a proxy (proxy_pass, upstream keepalive)",
        "  portless 0.12, plain HTTP",
        "  dynport, Host: web.localhost:PORT",
    ];
    let rounds = names.runs[DYNPORT].len();
    rows.push(Row::dynport(
        &format!("routing by name, {CONNS} conns, medians of {rounds} rounds"),
        String::new(),
    ));
    for (w, label) in labels.iter().enumerate() {
        rows.push(Row::dynport(
            &format!("{label}, req/s"),
            format!("{:.0}", rps[w]),
        ));
        rows.push(Row::dynport("    p99 (ms)", format!("{:.3}", p99[w])));
    }
    let over_portless = rps[DYNPORT] / rps[PORTLESS].max(1.0);
    rows.push(Row::check(
        "  dynport / portless, req/s",
        format!("{over_portless:.2}x"),
        &format!(">= {OVER_PORTLESS}x"),
        over_portless >= OVER_PORTLESS,
    ));
    let over_nginx = rps[DYNPORT] / rps[NGINX_PROXY].max(1.0);
    rows.push(Row::check(
        "  dynport / nginx as a proxy, req/s",
        format!("{over_nginx:.2}x"),
        &format!(">= {OVER_NGINX}x"),
        over_nginx >= OVER_NGINX,
    ));
    rows.push(Row::check(
        "  dynport / nginx as a proxy, p99",
        format!("{:.2}x", p99[DYNPORT] / p99[NGINX_PROXY].max(0.001)),
        "<= 1.0x",
        p99[DYNPORT] <= p99[NGINX_PROXY],
    ));
    rows.push(Row::dynport(
        "  dynport / nginx direct, req/s",
        format!("{:.2}x", rps[DYNPORT] / rps[DIRECT].max(1.0)),
    ));
    tunnel_rows(rows, &names.tunnels);
}

fn median_of(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn tunnel_rows(rows: &mut Vec<Row>, t: &Tunnels) {
    rows.push(Row::check(
        &format!(
            "{TUNNELS} open WebSocket tunnels: dynport's threads (idle {})",
            t.idle.threads
        ),
        t.open.threads.to_string(),
        "= idle",
        t.open.threads == t.idle.threads,
    ));
    let rss = mib(t.open.rss_kib);
    rows.push(Row::check(
        &format!("  VmRSS (MiB; idle {:.2})", mib(t.idle.rss_kib)),
        format!("{rss:.2}"),
        &format!("< {TUNNEL_RSS_MIB} MiB"),
        rss < TUNNEL_RSS_MIB,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, p99_ms: f64) -> Run {
        Run {
            rps,
            p50_ms: 0.5,
            p99_ms,
            served_conns: 50.0,
            errors: 0,
            during: Status::default(),
        }
    }

    fn table(names: &Names) -> Vec<(String, String, Option<bool>)> {
        let mut out = Vec::new();
        rows(&mut out, names);
        out.into_iter()
            .map(|r| (r.figure.trim().to_string(), r.values[0].clone(), r.verdict))
            .collect()
    }

    #[test]
    fn ratios_are_of_the_medians_and_checked_against_the_targets() {
        let status = |threads, rss_kib| Status { threads, rss_kib };
        let names = Names {
            runs: [
                vec![run(50000.0, 1.0), run(40000.0, 9.0), run(60000.0, 2.0)],
                vec![run(20000.0, 4.0), run(25000.0, 3.0), run(1.0, 99.0)],
                vec![run(4000.0, 20.0), run(5000.0, 30.0), run(3000.0, 10.0)],
                vec![run(22000.0, 2.0), run(21000.0, 3.0), run(23000.0, 1.0)],
            ],
            tunnels: Tunnels {
                idle: status(9, 2800),
                open: status(9, 9000),
            },
        };
        let rows = table(&names);
        let find = |figure: &str| rows.iter().find(|r| r.0 == figure).cloned().unwrap();
        assert_eq!(find("dynport / portless, req/s").1, "5.50x");
        assert_eq!(find("dynport / portless, req/s").2, Some(true));
        assert_eq!(find("dynport / nginx as a proxy, req/s").1, "1.10x");
        assert_eq!(find("dynport / nginx as a proxy, p99").1, "0.50x");
        assert_eq!(find("dynport / nginx direct, req/s").1, "0.44x");
        let rss = rows.iter().find(|r| r.0.starts_with("VmRSS")).unwrap();
        assert_eq!((rss.1.as_str(), rss.2), ("8.79", Some(false)));
        let threads = rows.iter().find(|r| r.0.starts_with("1000 open")).unwrap();
        assert_eq!((threads.1.as_str(), threads.2), ("9", Some(true)));
    }
}
