//! dynport's integration tests, in one binary so that the fixture and
//! dynport's library compile once: each module tests one concern through
//! the real binary (`tests/engine_threads.rs` stays a binary of its own, as
//! it counts the threads of its process).

mod fixture;

mod cli;
mod client;
mod clock;
mod crash;
mod disk_faults;
mod dist;
mod engine;
mod guards;
mod holders;
mod journal;
mod kernel_ports;
mod leases;
mod model;
mod port_change;
mod portserver;
mod server;
mod state_dir;
mod systemd;
mod trust;
mod udp;
