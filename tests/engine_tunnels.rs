//! The engine's tunnels against a real backend on loopback, with a router
//! of the test's own: what passes, in which order, with which headers, and
//! what the engine answers itself (421, 502). dynport's own router and its
//! pages are tested through the binary in `tests/tests/routes/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use dynport::http::*;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Routes `Host: NAME.test[:port]` to the port the test gave `NAME`; the
/// rest to the handler.
struct TestRouter {
    routes: Vec<(&'static str, u16)>,
}

fn host_name(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

impl Router for TestRouter {
    fn claims(&self, host: Option<&[u8]>) -> bool {
        host.and_then(|h| std::str::from_utf8(h).ok())
            .is_some_and(|h| host_name(h).ends_with(".test"))
    }

    fn route(&self, head: &Request, _listener: ListenerKind) -> Route {
        let host = head.header("host").unwrap_or_default().to_ascii_lowercase();
        if !self.claims(Some(host.as_bytes())) {
            return Route::Serve;
        }
        let name = host_name(&host).trim_end_matches(".test");
        match self.routes.iter().find(|(n, _)| *n == name) {
            Some((name, port)) => Route::Forward(Forward {
                name: name.to_string(),
                port: *port,
                unreachable: Response::plain_error(502, &format!("nothing on {port}")),
                via: "dynport",
                max_hops: 5,
            }),
            None => Route::Answer(Response::plain_error(404, &format!("no route {name}"))),
        }
    }
}

struct Served {
    port: u16,
    control: Control,
    running: Option<Running>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.control.shutdown(Duration::ZERO);
        if let Some(running) = self.running.take() {
            running.join();
        }
    }
}

fn serve(routes: Vec<(&'static str, u16)>) -> Served {
    serve_with(routes, EngineConfig::default())
}

fn serve_with(routes: Vec<(&'static str, u16)>, config: EngineConfig) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut engine = Engine::new(config).unwrap();
    engine.route_with(Arc::new(TestRouter { routes }));
    let control = engine.control();
    let handler: Handler =
        Arc::new(|_: &Request| Response::json(200, b"{\"api\":1}".to_vec()).into());
    let running = engine.run(listener, handler).unwrap();
    Served {
        port,
        control,
        running: Some(running),
    }
}

/// A small HTTP/1.1 backend, a thread per connection:
/// - `/echo` answers with the request head it received;
/// - `/chunked` answers in three chunks;
/// - `/big?N` answers N bytes;
/// - `/ws` switches protocols, then echoes every byte;
/// - a `POST` answers with the length of the body it read (Content-Length
///   or chunked).
struct Backend {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn backend() -> Backend {
    backend_on(TcpListener::bind("127.0.0.1:0").unwrap())
}

fn backend_on(listener: TcpListener) -> Backend {
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(stream) = stream {
                thread::spawn(move || serve_backend(stream));
            }
        }
    });
    Backend { port, stop }
}

fn serve_backend(stream: TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        if head.starts_with("POST") {
            let n = if let Some(len) = header("content-length") {
                let len: usize = len.parse().unwrap();
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                len
            } else {
                read_chunked(&mut reader)
            };
            let body = n.to_string();
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        } else if target == "/close" {
            return;
        } else if target == "/echo" {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            )
            .unwrap();
        } else if target == "/chunked" {
            writer
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
                .unwrap();
        } else if let Some(n) = target.strip_prefix("/big?") {
            let n: usize = n.parse().unwrap();
            write!(writer, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").unwrap();
            if writer.write_all(&vec![b'x'; n]).is_err() {
                return;
            }
        } else if target == "/ws" {
            writer
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        } else {
            writer
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> usize {
    let mut total = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            let mut end = String::new();
            reader.read_line(&mut end).unwrap();
            return total;
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        total += size;
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads one answer: status, head, body (by Content-Length or chunked).
fn answer(reader: &mut BufReader<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "closed after {head:?}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head[9..12].parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let body = if let Some(n) = header("content-length") {
        let mut body = vec![0; n.parse().unwrap()];
        reader.read_exact(&mut body).unwrap();
        body
    } else if header("transfer-encoding").is_some() {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        body
    } else {
        Vec::new()
    };
    (status, head, body)
}

/// Whether the engine closes the connection with nothing more sent; a
/// read that times out is no close.
fn closed(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn requests_pass_to_the_backend_with_forwarding_headers_in_order() {
    let backend = backend();
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Pipelined: three requests in one write, the answers in order.
    let requests = format!(
        "GET /echo HTTP/1.1\r\nHost: web.test:{p}\r\nX-Forwarded-For: 10.1.1.1\r\nVia: 1.1 other\r\nX-Forwarded-Host: forged\r\n\r\n\
         GET /chunked HTTP/1.1\r\nHost: web.test:{p}\r\n\r\n\
         POST /post HTTP/1.1\r\nHost: WEB.test:{p}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
        p = served.port
    );
    writer.write_all(requests.as_bytes()).unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!(status, 200);
    let seen = String::from_utf8(body).unwrap();
    let p = served.port;
    assert!(seen.starts_with("GET /echo HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains(&format!("Host: web.test:{p}\r\n")), "{seen}");
    assert!(
        seen.contains("X-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("Via: 1.1 other, 1.1 dynport\r\n"), "{seen}");
    assert!(
        seen.contains(&format!("X-Forwarded-Host: web.test:{p}\r\n")),
        "{seen}"
    );
    assert!(seen.contains("X-Forwarded-Proto: http\r\n"), "{seen}");
    assert!(
        seen.contains(&format!("X-Forwarded-Port: {p}\r\n")),
        "{seen}"
    );
    assert!(!seen.contains("forged"), "{seen}");
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (200, &b"onetwothree"[..]));
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (200, &b"6"[..]));
}

#[test]
fn a_request_for_another_route_or_the_api_gets_421_after_the_answers_owed() {
    let web = backend();
    let api = backend();
    let served = serve(vec![("web", web.port), ("api", api.port)]);
    for other in ["api.test", "127.0.0.1"] {
        let stream = connect(served.port);
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let requests = format!(
            "GET /big?300000 HTTP/1.1\r\nHost: web.test\r\n\r\nGET /echo HTTP/1.1\r\nHost: {other}\r\n\r\n"
        );
        writer.write_all(requests.as_bytes()).unwrap();
        let (status, _, body) = answer(&mut reader);
        assert_eq!((status, body.len()), (200, 300_000));
        let (status, head, body) = answer(&mut reader);
        assert_eq!(status, 421, "{other}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("another host"));
        assert!(closed(&mut reader));
    }
    // And the other way round: a connection the API answered stays with it.
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /echo HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (200, &b"{\"api\":1}"[..]));
    let (status, _, _) = answer(&mut reader);
    assert_eq!(status, 421);
    assert!(closed(&mut reader));
}

#[test]
fn nothing_listening_is_the_routes_answer_and_an_unknown_route_the_routers() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let served = serve(vec![("web", port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!(status, 502);
    assert_eq!(body, format!("nothing on {port}\n").into_bytes());
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n")
        .unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (404, &b"no route nope\n"[..]));
}

#[test]
fn a_backend_on_ipv6_only_is_reached_on_the_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) else {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    // Nothing on 127.0.0.1 at that port, as a dev server bound to ::1 only.
    assert!(TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err());
    let backend = backend_on(listener);
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (200, &b"onetwothree"[..]));
}

#[test]
fn an_upgraded_connection_passes_bytes_both_ways_until_either_closes() {
    let backend = backend();
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET /ws HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly bytes|")
        .unwrap();
    let (status, head, _) = answer(&mut reader);
    assert_eq!(status, 101, "{head}");
    let mut got = [0u8; 12];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"early bytes|");
    // Not HTTP any more: a line that looks like a request for another host
    // is only bytes for the backend.
    let message = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for _ in 0..3 {
        writer.write_all(message).unwrap();
        let mut echo = vec![0u8; message.len()];
        reader.read_exact(&mut echo).unwrap();
        assert_eq!(echo, message);
    }
    // Idle longer than nothing: no deadline ends it.
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed(&mut reader));
}

#[test]
fn a_large_answer_to_a_slow_reader_passes_whole_and_in_bounded_memory() {
    let backend = backend();
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let size = 64 * 1024 * 1024;
    write!(writer, "GET /big?{size} HTTP/1.1\r\nHost: web.test\r\n\r\n").unwrap();
    // Not read for a while: the backend is held back, not buffered.
    thread::sleep(Duration::from_millis(300));
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.len()), (200, size));
    assert!(body.iter().all(|&b| b == b'x'));
    // A large upload the other way.
    let upload = vec![b'u'; 8 * 1024 * 1024];
    write!(
        writer,
        "POST /up HTTP/1.1\r\nHost: web.test\r\nContent-Length: {}\r\n\r\n",
        upload.len()
    )
    .unwrap();
    writer.write_all(&upload).unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body), (200, upload.len().to_string().into_bytes()));
}

#[test]
fn a_request_head_left_unfinished_on_a_tunnel_times_out_but_an_idle_tunnel_does_not() {
    let backend = backend();
    let config = EngineConfig {
        request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    };
    let served = serve_with(vec![("web", backend.port)], config);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut reader).0, 200);
    // Idle for longer than both timeouts: still open, and still routed.
    thread::sleep(Duration::from_millis(900));
    writer
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut reader).0, 200);
    // Half a head, then nothing: closed once the request timeout passes.
    writer.write_all(b"GET /chunked HTTP/1.1\r\nHo").unwrap();
    assert!(closed(&mut reader));
}

#[test]
fn shutting_down_closes_quiet_tunnels_at_once_rather_than_after_the_grace() {
    let backend = backend();
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET /ws HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut reader).0, 101);
    writer.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    reader.read_exact(&mut echo).unwrap();
    // A grace far longer than the client's read timeout: only closing the
    // quiet tunnel at once lets the client see the end in time.
    served.control.shutdown(Duration::from_secs(600));
    assert!(closed(&mut reader));
}

#[test]
fn a_backend_that_closes_without_answering_is_a_502_not_an_empty_reply() {
    let backend = backend();
    let served = serve(vec![("web", backend.port)]);
    let stream = connect(served.port);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\nGET /close HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .unwrap();
    let (status, _, body) = answer(&mut reader);
    assert_eq!((status, body.as_slice()), (200, &b"onetwothree"[..]));
    let (status, head, body) = answer(&mut reader);
    assert_eq!(status, 502, "{head}");
    assert_eq!(body, b"web closed the connection without answering\n");
    assert!(closed(&mut reader));
}
