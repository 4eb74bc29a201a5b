//! Floor (b) of `make bench`: dynport's own HTTP engine with 4 workers
//! answering every request with one fixed JSON body, so the benchmark can
//! tell the engine's cost from the cost of dynport's routes and state.
//!
//! `floor_engine BODY_BYTES [WORKERS]` listens on 127.0.0.1 at a port the
//! kernel picks and prints `listening on http://127.0.0.1:PORT` on stdout.
//! The body is `{"pad":"aaa…"}`, padded to exactly BODY_BYTES bytes.

#[path = "floor/args.rs"]
mod args;

use args::{padded_body, parse_args};

use dynport::http::{Engine, EngineConfig, Handler, Response};
use std::io::Write;
use std::net::TcpListener;
use std::process::exit;
use std::sync::Arc;

fn main() {
    let (bytes, workers) = parse_args().unwrap_or_else(|e| {
        eprintln!("floor_engine: {e}\nusage: floor_engine BODY_BYTES [WORKERS]");
        exit(2);
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail("cannot listen", e));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail("no local address", e));
    let engine = Engine::new(EngineConfig {
        workers,
        ..EngineConfig::default()
    })
    .unwrap_or_else(|e| fail("cannot build the engine", e));
    let body = padded_body(bytes);
    let handler: Handler = Arc::new(move |_request| Response::json(200, body.clone()).into());
    let running = engine
        .run(listener, handler)
        .unwrap_or_else(|e| fail("cannot start the engine", e));
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    // Serves until killed; the engine is never told to shut down.
    running.join();
}

fn fail(what: &str, e: std::io::Error) -> ! {
    eprintln!("floor_engine: {what}: {e}");
    exit(1);
}
