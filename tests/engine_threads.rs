//! The engine's thread count does not grow with its connections. Alone in its
//! own test binary, so that no other test's threads come and go meanwhile.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynport::http::*;

fn threads_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn answer_status(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf[..12]).into_owned()
}

#[test]
fn five_hundred_connections_add_no_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = EngineConfig::default();
    let workers = config.workers;
    let engine = Engine::new(config).unwrap();
    let without_engine = threads_of_this_process();
    let control = engine.control();
    let handler: Handler = Arc::new(|_: &Request| Response::json(200, b"{}".to_vec()).into());
    let running = engine.run(listener, handler).unwrap();
    let before = threads_of_this_process();
    // The workers and one poller thread.
    assert_eq!(before, without_engine + workers + 1);

    let mut conns: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Half idle, half with a request answered and kept alive.
        if i % 2 == 0 {
            c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(answer_status(c), "HTTP/1.1 200");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while control.stats().open_connections != 500 {
        assert!(Instant::now() < deadline, "{:?}", control.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads_of_this_process(), before);

    drop(conns);
    control.shutdown(Duration::from_secs(1));
    running.join();
}
