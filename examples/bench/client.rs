//! A small blocking HTTP/1.1 client on one kept-alive connection, and the
//! loads `wrk` cannot make: lease grants with their latency, idle
//! connections, and the time from exec to the first answer.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::procs::{Child, TempDir};

/// How long one answer may take before the benchmark gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// One kept-alive connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> io::Result<Client> {
        Client::from_stream(TcpStream::connect(addr(port))?)
    }

    fn from_stream(stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its answer: status and body.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if !body.is_empty() || method == "POST" {
            out.push_str("Content-Type: application/json\r\n");
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        self.stream.write_all(&out)?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> io::Result<(u16, Vec<u8>)> {
        loop {
            if let Some((head_len, status, body_len)) = parse_head(&self.buf)?
                && self.buf.len() >= head_len + body_len
            {
                let body = self.buf[head_len..head_len + body_len].to_vec();
                self.buf.drain(..head_len + body_len);
                return Ok((status, body));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Head length, status and `Content-Length` of a complete answer head.
fn parse_head(buf: &[u8]) -> io::Result<Option<(usize, u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::other(format!("bad answer: {e}"))),
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or_else(|| io::Error::other("an answer without Content-Length"))?;
    Ok(Some((head_len, response.code.unwrap_or(0), length)))
}

/// What the lease load measured.
pub struct LeaseLoad {
    pub grants: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// Latency of every granted `POST /api/v1/ports/lease`, sorted.
    pub latencies: Vec<Duration>,
    /// State-file writes the server made meanwhile (from its `/metrics`).
    pub state_writes: u64,
}

/// `clients` threads, each on one kept-alive connection, lease a port and
/// release it again until `secs` have passed.
pub fn lease_load(port: u16, clients: usize, duration: Duration) -> io::Result<LeaseLoad> {
    let began = Instant::now();
    let deadline = began + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| thread::spawn(move || lease_loop(port, deadline)))
        .collect();
    let mut load = LeaseLoad {
        grants: 0,
        failures: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        state_writes: 0,
    };
    for thread in threads {
        let (latencies, failures) = thread
            .join()
            .map_err(|_| io::Error::other("a lease client panicked"))??;
        load.grants += latencies.len() as u64;
        load.failures += failures;
        load.latencies.extend(latencies);
    }
    load.elapsed = began.elapsed();
    load.latencies.sort_unstable();
    Ok(load)
}

fn lease_loop(port: u16, deadline: Instant) -> io::Result<(Vec<Duration>, u64)> {
    let mut client = Client::connect(port)?;
    let (mut latencies, mut failures) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let (status, body) = client.request("POST", "/api/v1/ports/lease", b"{}")?;
        let took = sent.elapsed();
        if status != 201 {
            failures += 1;
            continue;
        }
        latencies.push(took);
        let id = lease_id(&body)?;
        let (status, body) =
            client.request("DELETE", &format!("/api/v1/ports/leases/{id}"), b"")?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            return Err(io::Error::other(format!(
                "release answered {status}: {text}"
            )));
        }
    }
    Ok((latencies, failures))
}

fn lease_id(body: &[u8]) -> io::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value["lease"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("a 201 without lease.id"))
}

/// Opens `count` connections that send nothing, and checks that a request
/// on one more connection is still answered.
pub fn idle_connections(port: u16, count: usize) -> io::Result<Vec<TcpStream>> {
    let idle = (0..count)
        .map(|_| TcpStream::connect(addr(port)))
        .collect::<io::Result<Vec<_>>>()?;
    let (status, _) = Client::connect(port)?.request("GET", "/healthz", b"")?;
    if status != 200 && status != 404 {
        return Err(io::Error::other(format!(
            "answered {status} with {count} idle connections open"
        )));
    }
    Ok(idle)
}

/// Time from spawning `dynport --range P-P` to the answer of its first
/// `GET /healthz`, connecting again and again until it listens.
pub fn startup_once(bin: &Path, port: u16) -> io::Result<Duration> {
    let dir = TempDir::new("startup")?;
    let mut cmd = Command::new(bin);
    cmd.args(["--range", &format!("{port}-{port}"), "--state-dir"])
        .arg(dir.path())
        .args(["--log-level", "warn"])
        .stdin(Stdio::null());
    let began = Instant::now();
    let child = Child::spawn(&mut cmd, false)?;
    let stream = loop {
        match TcpStream::connect(addr(port)) {
            Ok(stream) => break stream,
            Err(_) if began.elapsed() < ANSWER_TIMEOUT => thread::yield_now(),
            Err(e) => return Err(e),
        }
    };
    let (status, _) = Client::from_stream(stream)?.request("GET", "/healthz", b"")?;
    let took = began.elapsed();
    if status != 200 {
        return Err(io::Error::other(format!("/healthz answered {status}")));
    }
    if !child.terminate(Duration::from_secs(6)) {
        eprintln!("bench: dynport did not stop within 6 s of SIGTERM; killed");
    }
    Ok(took)
}
