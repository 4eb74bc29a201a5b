//! The watchdog over a real engine in this process: while its one worker is
//! held by a request that does not end, the probe goes unanswered and no
//! ping is sent; once the worker is free, the pings come back.

use crossbeam_channel::{Receiver, Sender, unbounded};
use dynport::http::{Engine, EngineConfig, Handler, Request, Response};
use dynport::service::watchdog::{Probe, Watchdog, engine_probe};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Far beyond any expected wait, so only a hang fails on it.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the watchdog thread did, in the order it did it.
#[derive(Debug, PartialEq)]
enum Event {
    Probe { answered: bool },
    Ping,
}

/// Answers `/healthz`; on `/hold` tells `entered` and keeps the worker
/// until `release` says so.
fn holding_handler(entered: Sender<()>, release: Receiver<()>) -> Handler {
    Arc::new(move |req: &Request| {
        if req.path == "/hold" {
            let _ = entered.send(());
            let _ = release.recv_timeout(PATIENCE);
        }
        Response::json(200, b"{\"status\":\"ok\"}".to_vec()).into()
    })
}

/// The next event, failing the test after [`PATIENCE`].
fn next(events: &Receiver<Event>) -> Event {
    events
        .recv_timeout(PATIENCE)
        .expect("the watchdog thread reports within 10 s")
}

/// Reads events up to the next ping.
fn until_ping(events: &Receiver<Event>) {
    while next(events) != Event::Ping {}
}

#[test]
fn a_stalled_worker_pool_stops_the_pings_and_a_free_one_resumes_them() {
    let (entered_tx, entered) = unbounded();
    let (release, release_rx) = unbounded();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let engine = Engine::new(EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let control = engine.control();
    let running = engine
        .run(listener, holding_handler(entered_tx, release_rx))
        .unwrap();

    let (tx, events) = unbounded();
    let probes = tx.clone();
    let mut probe = engine_probe(control.clone());
    let observed: Probe = Box::new(move |limit| {
        let result = probe(limit);
        let _ = probes.send(Event::Probe {
            answered: result.is_ok(),
        });
        result
    });
    let watchdog = Watchdog::spawn(Duration::from_millis(100), observed, move || {
        let _ = tx.send(Event::Ping);
    })
    .unwrap();
    until_ping(&events);

    let mut held = TcpStream::connect(addr).unwrap();
    held.write_all(b"GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    entered
        .recv_timeout(PATIENCE)
        .expect("the worker takes /hold");
    // A probe already under way may still have been answered; from the
    // first unanswered one on, three in a row go unanswered and unpinged.
    while next(&events) != (Event::Probe { answered: false }) {}
    for _ in 0..2 {
        assert_eq!(next(&events), Event::Probe { answered: false });
    }

    release.send(()).unwrap();
    until_ping(&events);
    watchdog.stop();
    control.shutdown(Duration::ZERO);
    running.join();
}
