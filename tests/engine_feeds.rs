//! Answers that go on (server-sent events) in the engine: bytes pushed
//! from another thread reach the client, the keep-alive goes out when
//! nothing else did, a client that leaves ends the feed, and one that
//! falls too far behind is closed rather than buffered for.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynport::http::*;

const TIMEOUT: Duration = Duration::from_secs(20);

struct Served {
    port: u16,
    control: Control,
    running: Option<Running>,
    feeds: Arc<Mutex<Vec<Feed>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.control.shutdown(Duration::ZERO);
        if let Some(running) = self.running.take() {
            running.join();
        }
    }
}

/// An engine answering every request with a feed whose first bytes are
/// `first`, kept for the test to push to.
fn serve(keepalive: Option<Duration>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let control = engine.control();
    let feeds = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&feeds);
    let handler: Handler = Arc::new(move |_: &Request| {
        let feed = match keepalive {
            Some(every) => Feed::with_keepalive(every, b":\n\n"),
            None => Feed::new(),
        };
        kept.lock().unwrap().push(feed.clone());
        let head = Response {
            status: 200,
            headers: vec![("Cache-Control", "no-cache".to_string())],
            content_type: "text/event-stream",
            body: b"retry: 1000\n\n".to_vec(),
        };
        Reply::Feed { head, feed }
    });
    let running = engine.run(listener, handler).unwrap();
    Served {
        port,
        control,
        running: Some(running),
        feeds,
    }
}

fn open(port: u16) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let mut first = [0u8; 13];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"retry: 1000\n\n");
    reader
}

fn the_feed(served: &Served, n: usize) -> Feed {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(feed) = served.feeds.lock().unwrap().get(n) {
            return feed.clone();
        }
        assert!(Instant::now() < deadline, "no feed {n}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pushed_bytes_reach_the_client_in_order_and_closing_ends_the_answer() {
    let served = serve(None);
    let mut reader = open(served.port);
    let feed = the_feed(&served, 0);
    for i in 0..100 {
        assert!(feed.push(format!("data: {i}\n\n").as_bytes()));
    }
    for i in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("data: {i}\n"));
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "\n");
    }
    feed.push(b"data: last\n\n");
    feed.close();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "data: last\n\n");
    assert!(!feed.push(b"data: late\n\n"));
}

#[test]
fn the_keepalive_goes_out_only_when_nothing_else_did() {
    let served = serve(Some(Duration::from_millis(200)));
    let mut reader = open(served.port);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, ":\n");
    let feed = the_feed(&served, 0);
    assert!(feed.push(b"data: x\n\n"));
    let mut got = Vec::new();
    while got.len() < 3 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        got.push(line.clone());
    }
    assert!(got.contains(&"data: x\n".to_string()), "{got:?}");
}

#[test]
fn a_client_that_leaves_ends_its_feed() {
    let served = serve(None);
    let reader = open(served.port);
    let feed = the_feed(&served, 0);
    assert!(feed.is_open());
    drop(reader);
    let deadline = Instant::now() + TIMEOUT;
    while feed.is_open() {
        assert!(Instant::now() < deadline, "the feed outlived its client");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!feed.push(b"data: nobody\n\n"));
}

#[test]
fn a_client_that_reads_nothing_is_cut_off_at_the_backlog_limit() {
    let served = serve(None);
    let reader = open(served.port);
    let feed = the_feed(&served, 0);
    let chunk = vec![b'x'; 64 * 1024];
    let mut pushed = 0usize;
    // The socket's buffers take some; past them and the feed's backlog,
    // pushing fails rather than growing without end.
    while feed.push(&chunk) {
        pushed += chunk.len();
        assert!(pushed < 512 * 1024 * 1024, "the feed never refused");
    }
    assert!(!feed.is_open());
    drop(reader);
}
