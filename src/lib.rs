//! dynport: the port manager of a host. It picks its own port from a range,
//! tracks which ports of that range are in use, keeps that knowledge in a JSON
//! state file, and serves it over a small, bounded HTTP engine.

pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod http;
pub mod manual;
pub mod ports;
pub mod portserver;
pub mod scan;
pub mod server;
pub mod service;
pub mod state;
pub mod sys;
pub mod util;

/// Says that the running test was skipped, and why, where `cargo test`
/// shows it: straight to stderr, past the capture of passing tests' output.
#[cfg(test)]
pub(crate) fn skipped(why: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
}
