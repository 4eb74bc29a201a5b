//! dynport's integration tests, in one binary so that the fixture and
//! dynport's library compile once: each module tests one concern through
//! the real binary. Two stay binaries of their own: `tests/engine_threads.rs`
//! counts the threads of its process, and `tests/kernel_ports.rs` works in
//! the kernel's ephemeral range, from which these tests' outgoing
//! connections would draw while it runs.

mod fixture;

mod cli;
mod client;
mod clock;
mod crash;
mod disk_faults;
mod dist;
mod engine;
mod events;
mod fairness;
mod guards;
mod holders;
mod journal;
mod lease_processes;
mod leases;
mod model;
mod names;
mod page;
mod paths;
mod port_change;
mod portserver;
mod routes;
mod server;
mod state_dir;
mod systemd;
mod trust;
mod udp;
mod usage;
