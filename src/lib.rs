//! dynport: the port manager of a host. It picks its own port from a range,
//! tracks which ports of that range are in use, keeps that knowledge in a JSON
//! state file, and serves it over a small, bounded HTTP engine.

pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod error;
pub mod fd_budget;
pub mod gather;
pub mod hash;
pub mod http;
pub mod kernel_ports;
pub mod lease;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod notify;
pub mod ports;
pub mod portserver;
pub mod principal;
pub mod process;
pub mod refresh;
pub mod scan;
pub mod server;
pub mod state;
mod sys;
pub mod text;
pub mod throttle;
pub mod time;
pub mod unix_socket;
pub mod watchdog;
pub mod wire;

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
