//! A small blocking HTTP/1.1 client on one kept-alive connection, over TCP
//! or a Unix socket, and the loads `wrk` cannot make: idle connections, new
//! connections one after another, and the time from exec to the first
//! answer.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
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

/// One kept-alive connection: a `TcpStream` or a `UnixStream`.
pub struct Client<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    pub fn connect(port: u16) -> io::Result<Client> {
        Client::tcp(TcpStream::connect(addr(port))?)
    }

    pub fn tcp(stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Client::over(stream))
    }
}

impl Client<UnixStream> {
    /// A connection to dynport's Unix socket at `path`.
    pub fn unix(path: &Path) -> io::Result<Client<UnixStream>> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Client::over(stream))
    }
}

impl<S: Read + Write> Client<S> {
    fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its answer: status and body.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.request_to("127.0.0.1", method, path, body)
    }

    /// [`Client::request`] with `host` in its `Host` header.
    pub fn request_to(
        &mut self,
        host: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
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

/// What a run of new connections measured.
pub struct Churn {
    pub elapsed: Duration,
    /// Time of each connection, from connect to close, sorted.
    pub times: Vec<Duration>,
}

impl Churn {
    pub fn per_sec(&self) -> f64 {
        self.times.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// `threads` threads each make `each` connections to 127.0.0.1:`port`, one
/// after another: connect, `GET /healthz`, close. `wrk` connects once per
/// run; each of these pays again what a server does once per connection
/// (dynport: the lookup of the uid owning the client's socket).
pub fn fresh_connections(port: u16, threads: usize, each: usize) -> io::Result<Churn> {
    let began = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| thread::spawn(move || connect_loop(port, each)))
        .collect();
    let mut times = Vec::with_capacity(threads * each);
    for handle in handles {
        times.extend(
            handle
                .join()
                .map_err(|_| io::Error::other("a connecting client panicked"))??,
        );
    }
    let elapsed = began.elapsed();
    times.sort_unstable();
    Ok(Churn { elapsed, times })
}

fn connect_loop(port: u16, count: usize) -> io::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let began = Instant::now();
        // The client is dropped, and the connection closed, in this statement.
        let (status, _) = Client::connect(port)
            .map_err(out_of_ports)?
            .request("GET", "/healthz", b"")?;
        times.push(began.elapsed());
        if status != 200 {
            return Err(io::Error::other(format!(
                "GET /healthz on a new connection answered {status}"
            )));
        }
    }
    Ok(times)
}

/// Says what to do when connecting fails for want of a local port.
fn out_of_ports(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::AddrNotAvailable {
        return e;
    }
    io::Error::other(format!(
        "{e}: no local port left for a new connection; the ports of closed ones \
         wait in TIME_WAIT: set net.ipv4.tcp_tw_reuse to 2 (the default), which reuses \
         them on loopback"
    ))
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
    let (status, _) = Client::tcp(stream)?.request("GET", "/healthz", b"")?;
    let took = began.elapsed();
    if status != 200 {
        return Err(io::Error::other(format!("/healthz answered {status}")));
    }
    if !child.terminate(Duration::from_secs(6)) {
        eprintln!("bench: dynport did not stop within 6 s of SIGTERM; killed");
    }
    Ok(took)
}
