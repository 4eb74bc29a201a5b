//! Floor (a) of `make bench`: a bare tiny_http 0.12 server with 4 workers
//! answering every request with one fixed JSON body.
//!
//! `floor_tiny_http BODY_BYTES [WORKERS]` listens on 127.0.0.1 at a port the
//! kernel picks and prints `listening on http://127.0.0.1:PORT` on stdout.
//! The body is `{"pad":"aaa…"}`, padded to exactly BODY_BYTES bytes so the
//! answer is as large as dynport's `GET /api/v1/server/port`.

#[path = "floor/args.rs"]
mod args;

use args::{padded_body, parse_args};

use std::io::Write;
use std::process::exit;
use std::sync::Arc;
use std::thread;

fn main() {
    let (bytes, workers) = parse_args().unwrap_or_else(|e| {
        eprintln!("floor_tiny_http: {e}\nusage: floor_tiny_http BODY_BYTES [WORKERS]");
        exit(2);
    });
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap_or_else(|e| {
        eprintln!("floor_tiny_http: cannot listen: {e}");
        exit(1);
    });
    let Some(addr) = server.server_addr().to_ip() else {
        eprintln!("floor_tiny_http: no IP address to listen on");
        exit(1);
    };
    let server = Arc::new(server);
    let body = padded_body(bytes);
    let content_type = tiny_http::Header::from_bytes("Content-Type", "application/json")
        .expect("a constant, valid header");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (server, body, content_type) =
                (Arc::clone(&server), body.clone(), content_type.clone());
            thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let response = tiny_http::Response::from_data(body.clone())
                        .with_header(content_type.clone());
                    let _ = request.respond(response);
                }
            })
        })
        .collect();
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    for thread in threads {
        let _ = thread.join();
    }
}
