//! A dev server written in the test, as the backend of a name: HTTP/1.1
//! with keep-alive (a page, an echo of the request head it got, a large
//! body, uploads), server-sent events, and a WebSocket echo with a real
//! RFC 6455 handshake and framing. A thread per connection; dropping it
//! closes its listener and every connection, and joins every thread.

use super::ws::{self, CLOSE, PING, PONG, TEXT};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

/// The dev server's paths:
/// - `/` answers `page` as HTML;
/// - `/echo` answers with the request head it received, as text;
/// - `/big?N` answers N bytes of `x`;
/// - `/wait?MS` answers `waited` after MS milliseconds (a long poll);
/// - `/events` is an event stream: `data: first` at once, then, once the
///   test calls [`DevServer::release_events`], `data: second` and `data:
///   third`, and the end of the answer;
/// - `/ws` is a WebSocket that echoes each text frame (unmasked, as a
///   server sends), answers pings, and closes on a close;
/// - `/after-echo` answers once some WebSocket has echoed a text frame (20
///   s at most): a page's image of it holds the page's load event until
///   then;
/// - a `POST` answers with the length of the body it read, after
///   waiting MS milliseconds before reading it for `POST /hold?MS` (a
///   slow reader of an upload).
pub struct DevServer {
    pub port: u16,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    page: String,
    stop: AtomicBool,
    /// Request heads received, on every connection.
    requests: AtomicUsize,
    /// The target of each, in the order received.
    targets: Mutex<Vec<String>>,
    /// A handle on every connection, to close them all when dropped.
    conns: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Whether the events after the first may go.
    released: Mutex<bool>,
    release: Condvar,
    /// Text frames echoed on every WebSocket.
    echoed: Mutex<usize>,
    echo: Condvar,
}

impl DevServer {
    /// On `127.0.0.1:port` (a leased port; 0 for any).
    pub fn start(port: u16, page: &str) -> DevServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("the dev server cannot bind 127.0.0.1:{port}: {e}"));
        DevServer::on(listener, page)
    }

    /// On `[::1]:port` only, as a dev server that listens on IPv6 alone.
    pub fn start_ipv6(port: u16, page: &str) -> io::Result<DevServer> {
        let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, port))?;
        Ok(DevServer::on(listener, page))
    }

    fn on(listener: TcpListener, page: &str) -> DevServer {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            page: page.to_string(),
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            targets: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            released: Mutex::new(false),
            release: Condvar::new(),
            echoed: Mutex::new(0),
            echo: Condvar::new(),
        });
        let accepting = Arc::clone(&shared);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(handle) = stream.try_clone() {
                    accepting.conns.lock().unwrap().push(handle);
                }
                let serving = Arc::clone(&accepting);
                let thread = thread::spawn(move || serve(stream, &serving));
                accepting.threads.lock().unwrap().push(thread);
            }
        });
        DevServer {
            port: addr.port(),
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// How many request heads it received, on all its connections.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The target of each request received, in order.
    pub fn targets(&self) -> Vec<String> {
        self.shared.targets.lock().unwrap().clone()
    }

    /// Lets every event stream send its later events and end.
    pub fn release_events(&self) {
        *self.shared.released.lock().unwrap() = true;
        self.shared.release.notify_all();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release_events();
        // Wakes the accepting thread, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for conn in self.shared.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Serves one connection's requests until it closes or a WebSocket ends,
/// then closes it (its handle in `conns` would keep it open otherwise).
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_head(&mut reader) {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let target = head.split(' ').nth(1).unwrap_or_default().to_string();
        shared.targets.lock().unwrap().push(target);
        if answer(&head, &mut reader, &mut writer, shared).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// A request head up to its blank line; `None` at the end of the stream.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

/// The first header `name` of `head` (any case), trimmed.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Answers one request; `Err` when the connection is done.
fn answer(
    head: &str,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let target = head.split(' ').nth(1).unwrap_or("/");
    if head.starts_with("POST ") {
        if let Some(ms) = target.strip_prefix("/hold?").and_then(|n| n.parse().ok()) {
            thread::sleep(std::time::Duration::from_millis(ms));
        }
        let n = read_body(head, reader)?;
        return reply(writer, "200 OK", "text/plain", n.to_string().as_bytes());
    }
    match target {
        "/" => reply(
            writer,
            "200 OK",
            "text/html; charset=utf-8",
            shared.page.as_bytes(),
        ),
        "/echo" => reply(writer, "200 OK", "text/plain", head.as_bytes()),
        "/events" => events(writer, shared),
        "/ws" => websocket(head, reader, writer, shared),
        "/after-echo" => {
            let echoed = shared.echoed.lock().unwrap();
            let timeout = std::time::Duration::from_secs(20);
            let _ = shared.echo.wait_timeout_while(echoed, timeout, |n| *n == 0);
            reply(writer, "200 OK", "text/plain", b"echoed")
        }
        _ => {
            let number = |prefix| target.strip_prefix(prefix).and_then(|n| n.parse().ok());
            if let Some(n) = number("/big?") {
                big(writer, n)
            } else if let Some(ms) = number("/wait?") {
                thread::sleep(std::time::Duration::from_millis(ms as u64));
                reply(writer, "200 OK", "text/plain", b"waited")
            } else {
                reply(writer, "404 Not Found", "text/plain", b"no such page\n")
            }
        }
    }
}

fn reply(writer: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)
}

/// Reads a request body, by `Content-Length` or chunked; its length.
fn read_body(head: &str, reader: &mut BufReader<TcpStream>) -> io::Result<usize> {
    if let Some(len) = header(head, "content-length") {
        let len: u64 = len.parse().map_err(|_| io::ErrorKind::InvalidData)?;
        return io::copy(&mut reader.take(len), &mut io::sink()).map(|n| n as usize);
    }
    let mut total = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size =
            usize::from_str_radix(line.trim(), 16).map_err(|_| io::ErrorKind::InvalidData)?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(total);
        }
        total += size;
    }
}

fn big(writer: &mut TcpStream, n: usize) -> io::Result<()> {
    write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n"
    )?;
    let block = vec![b'x'; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let take = left.min(block.len());
        writer.write_all(&block[..take])?;
        left -= take;
    }
    Ok(())
}

/// An event stream, chunked as dev servers send it: one event now, two
/// once released, then the end.
fn events(writer: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    writer.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )?;
    chunk(writer, b"data: first\n\n")?;
    let mut released = shared.released.lock().unwrap();
    while !*released {
        released = shared.release.wait(released).unwrap();
    }
    drop(released);
    chunk(writer, b"data: second\n\n")?;
    chunk(writer, b"data: third\n\n")?;
    writer.write_all(b"0\r\n\r\n")
}

fn chunk(writer: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    write!(writer, "{:x}\r\n", data.len())?;
    writer.write_all(data)?;
    writer.write_all(b"\r\n")?;
    writer.flush()
}

/// The handshake, then frames until a close; the connection is done after.
fn websocket(
    head: &str,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let upgrade = header(head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (header(head, "sec-websocket-key"), upgrade) else {
        reply(
            writer,
            "400 Bad Request",
            "text/plain",
            b"not a WebSocket handshake\n",
        )?;
        return Err(io::ErrorKind::InvalidData.into());
    };
    write!(
        writer,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        ws::accept_key(key)
    )?;
    loop {
        let frame = ws::read_frame(reader)?;
        if !frame.masked {
            // RFC 6455 5.1: a server closes on an unmasked client frame.
            writer.write_all(&ws::frame(CLOSE, &1002u16.to_be_bytes(), None))?;
            return Err(io::ErrorKind::InvalidData.into());
        }
        match frame.opcode {
            TEXT => {
                writer.write_all(&ws::frame(TEXT, &frame.payload, None))?;
                *shared.echoed.lock().unwrap() += 1;
                shared.echo.notify_all();
            }
            PING => writer.write_all(&ws::frame(PONG, &frame.payload, None))?,
            CLOSE => {
                writer.write_all(&ws::frame(CLOSE, &frame.payload, None))?;
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            _ => {}
        }
    }
}
