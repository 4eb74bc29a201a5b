//! Times each scan method: `scan_time [START-END] [RUNS] [--listen N] [--method M]`.
//!
//! Runs every method (or only `--method netlink|proc|probe`) RUNS times over
//! the range (default 3000-9000, 101 runs) and prints the median, minimum and
//! maximum durations. `--listen N` first opens N listeners on 127.0.0.1 at
//! free ports of the range, to time a busy host.
//!
//! `cargo run --release --example scan_time -- 3000-9000 201 --listen 1000`

use dynport::ports::PortRange;
use dynport::scan::{Method, Scanner};
use std::net::TcpListener;
use std::process::exit;
use std::time::{Duration, Instant};

struct Args {
    range: PortRange,
    runs: usize,
    listen: usize,
    methods: Vec<Method>,
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("scan_time: {e}");
        eprintln!("usage: scan_time [START-END] [RUNS] [--listen N] [--method netlink|proc|probe]");
        exit(2);
    });
    let listeners = listen(args.range, args.listen);
    println!(
        "range {}, {} runs, {} extra listeners; detect() picks {}",
        args.range,
        args.runs,
        listeners.len(),
        Scanner::detect().method()
    );
    for method in &args.methods {
        match time(*method, args.range, args.runs) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{:<8} failed: {e}", method.as_str()),
        }
    }
}

/// One line of results for `method`: median, min, max and the ports found.
fn time(method: Method, range: PortRange, runs: usize) -> std::io::Result<String> {
    let scanner = Scanner::with_method(method);
    let found = scanner.scan_without_fallback(range)?.len(); // warms the buffer
    let mut durations = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        scanner.scan_without_fallback(range)?;
        durations.push(start.elapsed());
    }
    durations.sort_unstable();
    Ok(format!(
        "{:<8} median {:>9.3} ms  min {:>9.3} ms  max {:>9.3} ms  ({found} ports in use)",
        method.as_str(),
        ms(durations[runs / 2]),
        ms(durations[0]),
        ms(durations[runs - 1]),
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Up to `count` listeners on 127.0.0.1, on the free ports of `range`.
fn listen(range: PortRange, count: usize) -> Vec<TcpListener> {
    let listeners: Vec<TcpListener> = range
        .iter()
        .filter_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
        .take(count)
        .collect();
    if listeners.len() < count {
        eprintln!(
            "scan_time: only {} ports of {range} could be bound",
            listeners.len()
        );
    }
    listeners
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        range: PortRange::new(3000, 9000)?,
        runs: 101,
        listen: 0,
        methods: Method::ALL.to_vec(),
    };
    let mut positional = 0;
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--listen" => args.listen = number(argv.next(), "--listen")?,
            "--method" => args.methods = vec![method(argv.next())?],
            _ if positional == 0 => {
                args.range = range(&arg)?;
                positional += 1;
            }
            _ if positional == 1 => {
                args.runs = number(Some(arg), "RUNS")?.max(1);
                positional += 1;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(args)
}

fn range(text: &str) -> Result<PortRange, String> {
    let (start, end) = text.split_once('-').ok_or("the range is START-END")?;
    let port = |s: &str| s.parse::<u16>().map_err(|e| format!("port {s:?}: {e}"));
    PortRange::new(port(start)?, port(end)?)
}

fn number(value: Option<String>, name: &str) -> Result<usize, String> {
    let value = value.ok_or(format!("{name} needs a number"))?;
    value.parse().map_err(|e| format!("{name} {value:?}: {e}"))
}

fn method(value: Option<String>) -> Result<Method, String> {
    let value = value.ok_or("--method needs a name")?;
    Method::ALL
        .into_iter()
        .find(|m| m.as_str() == value)
        .ok_or(format!("unknown method {value:?}"))
}
