//! The HTTP engine over real sockets: an engine started in-process on
//! 127.0.0.1:0, spoken to with raw bytes so every framing detail is visible.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use dynport::http::*;

/// Far beyond any answer's expected time, so only a hang fails on it.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    control: Control,
    running: Option<Running>,
    addr: SocketAddr,
}

impl Server {
    /// An engine as dynport runs it: its own errors in dynport's JSON.
    fn start(config: EngineConfig, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = EngineConfig {
            error_response: dynport::api::error::error_response,
            ..config
        };
        let engine = Engine::new(config).unwrap();
        let control = engine.control();
        let running = Some(engine.run(listener, handler).unwrap());
        Server {
            control,
            running,
            addr,
        }
    }

    fn echo() -> Server {
        Server::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Server {
        Server::start(config, echo_handler())
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    fn stop(&mut self, grace: Duration) {
        self.control.shutdown(grace);
        if let Some(running) = self.running.take() {
            running.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// A handler that always answers at once.
fn now(f: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Handler {
    Arc::new(move |req: &Request| Reply::Now(f(req)))
}

/// Answers `METHOD path?query body-length`, panics on `/panic`, sends
/// 4 MiB of [`big_body`] on `/big`, and on `/sum` the body's length and a
/// checksum that changes when any byte moves.
fn echo_handler() -> Handler {
    now(|req: &Request| match req.path.as_str() {
        "/panic" => panic!("handler panic requested by the test"),
        "/big" => Response::json(200, big_body()),
        "/missing" => dynport::api::error::error_response(404, "no such thing"),
        "/sum" => {
            let sum = checksum(&req.body);
            Response::json(200, format!("{} {sum}", req.body.len()).into_bytes())
        }
        _ => {
            let q = req
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let text = format!("{} {}{} {}", req.method, req.path, q, req.body.len());
            Response::json(200, text.into_bytes())
        }
    })
}

/// 4 MiB in a pattern that does not repeat every power of two, so that a
/// piece of it sent twice or skipped shows in [`checksum`].
fn big_body() -> Vec<u8> {
    (0..4usize << 20).map(|i| (i % 251) as u8).collect()
}

/// A sum of the bytes weighted by their position, so that a byte lost,
/// added or moved changes it.
fn checksum(bytes: &[u8]) -> u64 {
    let weighted = bytes.iter().enumerate();
    weighted.map(|(i, &b)| (i as u64 + 1) * u64::from(b)).sum()
}

/// One parsed answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn get(&mut self, path: &str) -> Answer {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.answer()
    }

    /// Reads one answer with a body.
    fn answer(&mut self) -> Answer {
        self.read_answer(true)
    }

    fn read_answer(&mut self, with_body: bool) -> Answer {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill() > 0,
                "connection closed before an answer: {:?}",
                self.buf
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        self.buf.drain(..head_end);
        let status = head[9..12].parse().unwrap();
        let mut answer = Answer {
            status,
            head,
            body: Vec::new(),
        };
        let len: usize = match answer.header("content-length") {
            Some(v) if with_body => v.parse().unwrap(),
            _ => 0,
        };
        while self.buf.len() < len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        answer.body = self.buf.drain(..len).collect();
        answer
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read from the engine");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Waits until the engine has ended its side of the connection (its FIN,
    /// or a reset), without reading what came before: then everything the
    /// engine sent, and how it ended, is in this socket.
    fn wait_for_end(&self) {
        self.wait_for(libc::POLLRDHUP, "the end of the engine's side");
    }

    /// Waits until something of an answer has arrived, without reading it.
    fn wait_for_bytes(&self) {
        self.wait_for(libc::POLLIN, "the first bytes of an answer");
    }

    fn wait_for(&self, events: libc::c_short, what: &str) {
        use std::os::fd::AsRawFd;
        let mut poll = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = PATIENCE.as_millis() as libc::c_int;
        // SAFETY: one pollfd, valid for the call, naming a socket this
        // client owns.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        assert_eq!(ready, 1, "no sign of {what} within {PATIENCE:?}");
    }

    /// True when the engine closed the connection (EOF, or a reset after
    /// everything sent was read) within `PATIENCE`.
    fn closed(&mut self) -> bool {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }
}

fn short_timeouts() -> EngineConfig {
    EngineConfig {
        request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    }
}

fn error_message(answer: &Answer) -> String {
    let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(v["status"], "error");
    assert!(v["timestamp"].is_string());
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::echo();
    let mut c = server.client();
    let a = c.get("/one?x=1");
    assert_eq!((a.status, a.text()), (200, "GET /one?x=1 0".to_string()));
    assert_eq!(a.header("connection"), None);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/json")
    );
    let b = c.get("/two");
    assert_eq!((b.status, b.text()), (200, "GET /two 0".to_string()));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(
        b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n",
    );
    let texts: Vec<String> = (0..3).map(|_| c.answer().text()).collect();
    assert_eq!(texts, ["GET /1 0", "POST /2 3", "GET /3 0"]);
}

#[test]
fn http10_closes_by_default() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection").as_deref(), Some("close"));
    assert!(c.closed());
}

#[test]
fn http10_keeps_alive_when_asked() {
    let server = Server::echo();
    let mut c = server.client();
    for path in ["/a", "/b"] {
        c.send(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let a = c.answer();
        assert_eq!(a.text(), format!("GET {path} 0"));
        assert_eq!(a.header("connection").as_deref(), Some("keep-alive"));
    }
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"GET /bye HTTP/1.1\r\nConnection: close\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.header("connection").as_deref(), Some("close"));
    assert!(c.closed());
}

#[test]
fn head_has_the_length_of_get_but_no_body() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"HEAD /h HTTP/1.1\r\n\r\n");
    let head = c.read_answer(false);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").as_deref(), Some("8"));
    // Had a body followed the HEAD answer, this would read it as a status line.
    let next = c.get("/n");
    assert_eq!((next.status, next.text()), (200, "GET /n 0".to_string()));
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.read_answer(false);
    assert_eq!(interim.head, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello");
    let a = c.answer();
    assert_eq!((a.status, a.text()), (200, "POST /up 5".to_string()));
}

#[test]
fn expect_continue_over_the_limit_gets_413_without_100() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.status, 413);
    assert!(c.closed());
}

#[test]
fn a_request_at_both_limits_arrives_whole_across_many_reads() {
    let server = Server::echo();
    let mut c = server.client();
    let body: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let start = format!(
        "POST /sum HTTP/1.1\r\nContent-Length: {}\r\nX-Pad: ",
        body.len()
    );
    // The head is exactly 16 KiB, the most the engine takes.
    let pad = "p".repeat(16 * 1024 - start.len() - 4);
    let mut request = format!("{start}{pad}\r\n\r\n").into_bytes();
    assert_eq!(request.len(), 16 * 1024);
    request.extend_from_slice(&body);
    request.extend_from_slice(b"GET /after HTTP/1.1\r\n\r\n");
    // The pauses spread the request over many reads of the engine; what it
    // must answer does not depend on where they fall.
    for piece in request.chunks(7_000) {
        c.send(piece);
        thread::sleep(Duration::from_millis(5));
    }
    let sum = checksum(&body);
    let a = c.answer();
    assert_eq!((a.status, a.text()), (200, format!("65536 {sum}")));
    let b = c.answer();
    assert_eq!((b.status, b.text()), (200, "GET /after 0".to_string()));
}

#[test]
fn oversized_head_gets_431() {
    let server = Server::echo();
    let mut c = server.client();
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    c.send(big.as_bytes());
    let a = c.answer();
    assert_eq!(a.status, 431);
    assert_eq!(a.header("connection").as_deref(), Some("close"));
    assert!(error_message(&a).contains("16 KiB"));
    assert!(c.closed());
}

#[test]
fn huge_content_length_gets_413_from_the_head_alone() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"POST /any HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.status, 413);
    assert!(error_message(&a).contains("64 KiB"));
    assert!(c.closed());
}

#[test]
fn huge_content_length_with_body_under_way_still_reads_413() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"PUT /any HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
    // Part of the body is sent before reading: closing with it unread would
    // reset the connection and destroy the answer.
    c.send(&vec![b'z'; 40_000]);
    // Only once the engine is done with its side is the answer read: had
    // it closed with the body unread, the reset is here by then.
    c.wait_for_end();
    let a = c.answer();
    assert_eq!(a.status, 413);
    assert!(c.closed());
}

#[test]
fn oversized_body_is_never_drained() {
    let server = Server::echo();
    let mut c = server.client();
    let mut writer = c.stream.try_clone().unwrap();
    // Keeps sending a 1 GiB body; the engine must close the connection after
    // discarding a bounded amount, which ends this writer with an error.
    let sender = thread::spawn(move || {
        let _ = writer.write_all(b"POST / HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\n");
        let chunk = vec![b'q'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 1 << 30 {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    assert_eq!(c.answer().status, 413);
    let sent = sender.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the engine read {sent} bytes of a refused body"
    );
}

#[test]
fn chunked_body_gets_411() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(c.answer().status, 411);
    assert!(c.closed());
}

#[test]
fn malformed_request_gets_400() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"GET / HTTP/1.1 junk\r\n\r\n");
    let a = c.answer();
    assert_eq!(a.status, 400);
    assert_eq!(error_message(&a), "malformed request");
    assert!(c.closed());
}

#[test]
fn conflicting_content_length_gets_400() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    let a = c.answer();
    assert_eq!(a.status, 400);
    assert_eq!(error_message(&a), "conflicting Content-Length headers");
    assert!(c.closed());
}

#[test]
fn unfinished_request_gets_408() {
    let server = Server::with(short_timeouts());
    let mut c = server.client();
    let started = Instant::now();
    c.send(b"GET /never HTTP/1.1\r\nHost: t\r\n");
    let a = c.answer();
    assert_eq!(a.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(c.closed());
}

#[test]
fn unfinished_body_gets_408() {
    let server = Server::with(short_timeouts());
    let mut c = server.client();
    c.send(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(c.answer().status, 408);
}

#[test]
fn idle_connection_is_closed_silently() {
    let server = Server::with(short_timeouts());
    let mut c = server.client();
    assert_eq!(c.get("/").status, 200);
    let started = Instant::now();
    assert!(c.closed());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

fn capped(max_connections: usize) -> EngineConfig {
    EngineConfig {
        max_connections,
        ..EngineConfig::default()
    }
}

#[test]
fn connection_cap_closes_the_oldest_idle_connection() {
    let server = Server::with(capped(8));
    let mut clients: Vec<Client> = (0..8).map(|_| server.client()).collect();
    for c in &mut clients {
        assert_eq!(c.get("/").status, 200);
    }
    let mut newcomer = server.client();
    assert_eq!(newcomer.get("/new").text(), "GET /new 0");
    assert!(
        clients[0].closed(),
        "the oldest idle connection was not closed"
    );
    assert_eq!(clients[7].get("/still").status, 200);
    assert!(server.control.stats().open_connections <= 8);
}

#[test]
fn connection_cap_refuses_with_503_when_none_is_idle() {
    let server = Server::with(capped(8));
    let mut busy: Vec<Client> = (0..8).map(|_| server.client()).collect();
    for c in &mut busy {
        // The 100 Continue proves the engine holds a half-received request.
        c.send(b"POST /b HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(c.read_answer(false).status, 100);
    }
    let mut refused = server.client();
    let a = refused.answer();
    assert_eq!(a.status, 503);
    assert_eq!(a.header("connection").as_deref(), Some("close"));
    assert!(refused.closed());
    busy[3].send(b"ok");
    assert_eq!(busy[3].answer().text(), "POST /b 2");
}

#[test]
fn handler_panic_gives_500_and_the_worker_lives_on() {
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    let server = Server::with(config);
    let mut c = server.client();
    let a = c.get("/panic");
    assert_eq!(a.status, 500);
    error_message(&a);
    assert_eq!(c.get("/after").text(), "GET /after 0");
    assert_eq!(server.client().get("/fresh").status, 200);
}

#[test]
fn replace_listener_moves_new_connections_to_the_new_port() {
    if !gentle_retire_supported() {
        crate::fixture::skipped(format_args!(
            "the kernel refuses SO_ATTACH_FILTER on a listener to this unprivileged \
             process, so the old port takes connections for 100 ms more"
        ));
        return;
    }
    let server = Server::echo();
    let mut old_conn = server.client();
    assert_eq!(old_conn.get("/").status, 200);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let new_addr = listener.local_addr().unwrap();
    server.control.replace_listener(listener).unwrap();
    assert_eq!(server.control.listener_addr(), Some(new_addr));
    let refused = TcpStream::connect(server.addr);
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    assert_eq!(Client::connect(new_addr).get("/new").status, 200);
    assert_eq!(old_conn.get("/old").text(), "GET /old 0");
}

/// A handler that holds each request until the test lets it go; with it,
/// where it says that a request has reached it, and what lets one go (or
/// all, when dropped).
fn held_handler() -> (Handler, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (started, reached) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (started, released) = (Mutex::new(started), Mutex::new(released));
    let handler = now(move |req: &Request| {
        let _ = started.lock().unwrap().send(());
        let _ = released.lock().unwrap().recv();
        Response::json(200, req.path.clone().into_bytes())
    });
    (handler, reached, release)
}

#[test]
fn shutdown_lets_the_request_in_flight_finish() {
    let (handler, reached, release) = held_handler();
    let mut server = Server::start(EngineConfig::default(), handler);
    // Dropped before the server, should the test fail: no request is held
    // while the server's drop waits for its threads.
    let release = release;
    let mut idle = server.client();
    let mut slow = server.client();
    slow.send(b"GET /slow HTTP/1.1\r\n\r\n");
    reached.recv_timeout(PATIENCE).unwrap();
    // A grace far longer than the test may take: the engine must end when
    // the request in flight ends, not when the grace does.
    server.control.shutdown(Duration::from_secs(3600));
    assert!(idle.closed(), "the idle connection was kept");
    assert!(TcpStream::connect(server.addr).is_err());
    release.send(()).unwrap();
    let a = slow.answer();
    assert_eq!((a.status, a.text()), (200, "/slow".to_string()));
    assert_eq!(a.header("connection").as_deref(), Some("close"));
    let running = server.running.take().unwrap();
    let (joined, ended) = mpsc::channel();
    thread::spawn(move || {
        running.join();
        let _ = joined.send(());
    });
    assert_eq!(
        ended.recv_timeout(PATIENCE),
        Ok(()),
        "the engine waited for the grace, not for the request"
    );
}

#[test]
fn slow_clients_do_not_hold_the_only_worker() {
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    let server = Server::with(config);
    let mut stalled = server.client();
    // The 100 Continue proves the engine holds the half-received request.
    stalled.send(b"POST /s HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(stalled.read_answer(false).status, 100);
    stalled.send(b"ab");
    // A client that does not read a 4 MiB answer must not hold it either:
    // its first bytes show the engine has begun writing it.
    let mut not_reading = server.client();
    not_reading.send(b"GET /big HTTP/1.1\r\n\r\n");
    not_reading.wait_for_bytes();
    assert_eq!(server.client().get("/other").text(), "GET /other 0");
    let big = not_reading.answer();
    assert_eq!(big.body.len(), 4 << 20);
    stalled.send(b"cde");
    assert_eq!(stalled.answer().text(), "POST /s 5");
}

#[test]
fn a_large_answer_read_slowly_arrives_whole_and_the_next_follows_it() {
    let server = Server::echo();
    let mut c = server.client();
    c.send(b"GET /big HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    // Reads of 4 KiB, as a slow client makes: the engine writes the rest
    // of the answer over many turns as the socket drains.
    let mut chunk = [0u8; 4096];
    loop {
        let head = c.buf.windows(4).position(|w| w == b"\r\n\r\n");
        if head.is_some_and(|h| c.buf.len() >= h + 4 + (4 << 20)) {
            break;
        }
        let n = c.stream.read(&mut chunk).expect("read from the engine");
        assert!(n > 0, "closed after {} bytes", c.buf.len());
        c.buf.extend_from_slice(&chunk[..n]);
    }
    let big = c.answer();
    assert_eq!(big.status, 200);
    assert_eq!(big.body.len(), 4 << 20);
    assert_eq!(checksum(&big.body), checksum(&big_body()));
    assert_eq!(c.answer().text(), "GET /after 0");
}

#[test]
fn stats_count_every_answer_by_class() {
    let server = Server::echo();
    let mut c = server.client();
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/missing").status, 404);
    c.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.answer().status, 411);
    assert!(c.closed());
    let stats = server.control.stats();
    assert_eq!(stats.requests_total, 3);
    assert_eq!(stats.by_class, [0, 1, 0, 2, 0]);
    let deadline = Instant::now() + PATIENCE;
    while server.control.stats().open_connections != 0 {
        assert!(
            Instant::now() < deadline,
            "connection count never fell to 0"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn many_clients_every_request_answered() {
    let server = Server::echo();
    let addr = server.addr;
    let threads: Vec<_> = (0..64)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..200 {
                    if i % 50 == 49 {
                        c = Client::connect(addr);
                    }
                    let path = format!("/t{t}/{i}");
                    let a = c.get(&path);
                    assert_eq!(a.text(), format!("GET {path} 0"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.control.stats().requests_total, 64 * 200);
}

#[test]
fn control_is_a_cheap_shareable_handle() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Control>();
    let server = Server::echo();
    let control = server.control.clone();
    let from_thread = thread::spawn(move || control.listener_addr());
    assert_eq!(from_thread.join().unwrap(), Some(server.addr));
}

/// Answers `/later/N` N milliseconds later from another thread, and every
/// other path at once, so answers given later can be checked for order.
fn later_handler() -> Handler {
    Arc::new(|req: &Request| match req.path.strip_prefix("/later/") {
        Some(ms) => {
            let ms: u64 = ms.parse().unwrap();
            let (later, completion) = later();
            let path = req.path.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(ms));
                completion.complete(Response::json(201, path.into_bytes()));
            });
            Reply::Later(later)
        }
        _ if req.path == "/dropped" => {
            let (later, completion) = later();
            drop(completion);
            Reply::Later(later)
        }
        None => Response::json(200, req.path.clone().into_bytes()).into(),
    })
}

#[test]
fn answers_given_later_keep_pipelined_order() {
    let server = Server::start(EngineConfig::default(), later_handler());
    let mut c = server.client();
    c.send(b"GET /later/80 HTTP/1.1\r\n\r\nGET /now HTTP/1.1\r\n\r\nGET /later/1 HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n");
    let got: Vec<(u16, String)> = (0..4)
        .map(|_| c.answer())
        .map(|a| (a.status, a.text()))
        .collect();
    let want = [
        (201, "/later/80"),
        (200, "/now"),
        (201, "/later/1"),
        (200, "/last"),
    ];
    assert_eq!(got, want.map(|(s, t)| (s, t.to_string())));
    let again = c.get("/later/5");
    assert_eq!((again.status, again.text()), (201, "/later/5".to_string()));
}

#[test]
fn a_worker_is_free_while_an_answer_comes_later() {
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    // `/held` is answered later, when the test completes it.
    let (given, taken) = mpsc::channel();
    let given = Mutex::new(given);
    let handler: Handler = Arc::new(move |req: &Request| match req.path.as_str() {
        "/held" => {
            let (later, completion) = later();
            given.lock().unwrap().send(completion).unwrap();
            Reply::Later(later)
        }
        _ => Response::json(200, req.path.clone().into_bytes()).into(),
    });
    let server = Server::start(config, handler);
    let mut waiting = server.client();
    waiting.send(b"GET /held HTTP/1.1\r\n\r\n");
    let completion: Completion = taken.recv_timeout(PATIENCE).unwrap();
    // The only worker answers another client while `/held` is still open.
    assert_eq!(server.client().get("/now").text(), "/now");
    completion.complete(Response::json(201, b"held".to_vec()));
    let a = waiting.answer();
    assert_eq!((a.status, a.text()), (201, "held".to_string()));
}

#[test]
fn a_lost_later_answer_is_500_and_http10_closes_after_one() {
    let server = Server::start(EngineConfig::default(), later_handler());
    let mut c = server.client();
    c.send(b"GET /dropped HTTP/1.1\r\n\r\n");
    assert_eq!(c.answer().status, 500);
    let mut old = server.client();
    old.send(b"GET /later/10 HTTP/1.0\r\n\r\n");
    let a = old.answer();
    assert_eq!(
        (a.status, a.header("connection").as_deref()),
        (201, Some("close"))
    );
    assert!(old.closed());
}

/// Answers with what the engine told of the peer: `uid pid addr`.
fn peer_handler() -> Handler {
    now(|req: &Request| {
        let p = req.peer;
        let text = format!("{:?} {:?} {:?}", p.uid, p.pid, p.addr);
        Response::json(200, text.into_bytes())
    })
}

fn own_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// A raw request over a stream and its whole answer (the engine closes).
fn exchange(mut stream: impl Read + Write, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn unix_socket_is_served_alike_and_names_its_peer() {
    let dir = std::env::temp_dir().join(format!("dynport-engine-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("engine.sock");
    let _ = std::fs::remove_file(&path);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = EngineConfig {
        identify_tcp: Some(owner_of_socket),
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config).unwrap();
    engine.serve_unix(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let control = engine.control();
    let running = engine.run(listener, peer_handler()).unwrap();

    let get = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let unix = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let answer = exchange(unix, get);
    let me = format!("Some({}) Some({}) Unix", own_uid(), std::process::id());
    assert!(answer.ends_with(&me), "{answer}");
    let answer = exchange(TcpStream::connect(addr).unwrap(), get);
    let me = format!("Some({}) None Ip(127.0.0.1)", own_uid());
    assert!(answer.ends_with(&me), "{answer}");
    // The same limits on either transport.
    let huge = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n";
    let unix = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert!(exchange(unix, huge).starts_with("HTTP/1.1 413 "));

    control.shutdown(Duration::ZERO);
    running.join();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Identifies a TCP peer as dynport does on loopback: by the owner of its
/// socket in the kernel's socket table.
fn owner_of_socket(stream: &TcpStream, peer: SocketAddr) -> (bool, Option<u32>) {
    use dynport::sys::netlink::{Vouching, tcp_socket_uid};
    let local = stream.local_addr().ok();
    let uid = local.and_then(|local| tcp_socket_uid(peer, local, Vouching::Held).ok().flatten());
    (true, uid)
}

#[test]
fn peers_are_not_looked_up_when_identification_is_off() {
    let config = EngineConfig {
        identify_tcp: None,
        ..EngineConfig::default()
    };
    let server = Server::start(config, peer_handler());
    let get = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(TcpStream::connect(server.addr).unwrap(), get);
    assert!(answer.ends_with("None None Ip(127.0.0.1)"), "{answer}");
}

/// A deadline is acted on by the poller itself: six connections, their
/// starts spread over 650 ms, each get their 408, not before their own 2 s
/// deadline, though no other event wakes the poller after the last
/// connects. How soon after the deadline is a matter of speed, for
/// `make bench`, not for a test on a busy machine.
#[test]
fn timeouts_fire_when_they_are_due() {
    let config = EngineConfig {
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    let server = Server::with(config);
    let late: Vec<Duration> = thread::scope(|s| {
        let waits: Vec<_> = (0..6u64)
            .map(|i| {
                let addr = server.addr;
                s.spawn(move || {
                    thread::sleep(Duration::from_millis(130 * i));
                    let mut c = Client::connect(addr);
                    let started = Instant::now();
                    c.send(b"GET /never HTTP/1.1\r\nHost: t\r\n");
                    assert_eq!(c.answer().status, 408);
                    started.elapsed()
                })
            })
            .collect();
        waits.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for elapsed in late {
        assert!(elapsed >= Duration::from_millis(1990), "{elapsed:?}");
    }
}
