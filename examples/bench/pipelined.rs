//! Memory under the pipelined-read attack: 64 connections each send 2,000
//! reads of a lease list of about 160 KB and read nothing. dynport stops
//! parsing a connection's requests once 64 KiB of its answers wait unsent,
//! so its memory is about one answer a connection, not two thousand.

use std::io::{self, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::client::{Client, addr};
use crate::servers;
use crate::table::{Row, mib};

const CONNECTIONS: usize = 64;
const READS: usize = 2000;
/// Leases of one port with an owner of 128 characters: about 330 bytes
/// each in the list.
const LEASES: usize = 500;
/// How long VmRSS is watched after the requests are sent.
const WATCH: Duration = Duration::from_secs(3);
const GOAL_MIB: f64 = 32.0;

pub struct Pipelined {
    pub list_bytes: usize,
    pub peak_rss_kib: u64,
}

pub fn measure(bin: &Path) -> io::Result<Pipelined> {
    // The storage rows' range: wide, and the server grants only ports that
    // are free when asked.
    let range = crate::storage::RANGE;
    let server = servers::start_dynport_with(bin, "dynport", Some(range), &["--exclude", "none"])?;
    let mut client = Client::connect(server.port)?;
    let body = format!(r#"{{"owner":"{}","ttl_secs":3600}}"#, "o".repeat(128));
    for _ in 0..LEASES {
        let (status, answer) = client.request("POST", "/api/v1/ports/lease", body.as_bytes())?;
        if status != 201 {
            let answer = String::from_utf8_lossy(&answer);
            return Err(io::Error::other(format!("lease: {status} {answer}")));
        }
    }
    let (_, list) = client.request("GET", "/api/v1/ports/leases", b"")?;
    let request = b"GET /api/v1/ports/leases HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(READS);
    let mut stuck = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(addr(server.port))?;
        stream.write_all(&request)?;
        stuck.push(stream);
    }
    let mut peak = 0;
    let steps = 30;
    for _ in 0..steps {
        peak = peak.max(crate::procs::status(server.child.pid())?.rss_kib);
        thread::sleep(WATCH / steps);
    }
    drop(stuck);
    eprintln!(
        "bench: {CONNECTIONS} connections pipelining {READS} reads of a {} KB list: peak VmRSS {:.1} MiB",
        list.len() / 1000,
        mib(peak)
    );
    Ok(Pipelined {
        list_bytes: list.len(),
        peak_rss_kib: peak,
    })
}

pub fn rows(p: &Pipelined) -> Vec<Row> {
    let figure = format!(
        "VmRSS, {CONNECTIONS} conns pipelining {READS} reads of a {} KB list (MiB)",
        p.list_bytes / 1000
    );
    let rss = mib(p.peak_rss_kib);
    vec![Row::check(
        &figure,
        format!("{rss:.1}"),
        "< 32 MiB",
        rss < GOAL_MIB,
    )]
}
