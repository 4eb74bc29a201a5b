//! The engine with its descriptor table full: every client is still told
//! at once (503) instead of waiting in the listen queue. Alone in its own
//! test binary because it lowers the process's limit on open files.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dynport::http::*;

/// Opens `n` connections at once, sends a request on each, and prints how
/// many were answered 200, how many 503 for want of descriptors, and how
/// many got nothing within 5 s in all.
const CLIENTS: &str = r#"
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
ok = full = silent = 0
for s in socks:
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
deadline = time.monotonic() + 5
for s in socks:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        data = s.recv(4096)
    except socket.timeout:
        data = b""
    if data.startswith(b"HTTP/1.1 200"):
        ok += 1
    elif data.startswith(b"HTTP/1.1 503") and b"out of file descriptors" in data:
        full += 1
    else:
        silent += 1
print(ok, full, silent)
"#;

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn a_full_descriptor_table_refuses_at_once_instead_of_stalling() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "/usr/bin/python3 is missing"
        );
        eprintln!("skipped: /usr/bin/python3 is not installed");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let control = engine.control();
    let handler: Handler = Arc::new(|_: &Request| Response::json(200, b"{}".to_vec()).into());
    let running = engine.run(listener, handler).unwrap();

    // Room for a few more descriptors (starting the clients takes four for
    // a moment and keeps one), then the table is full.
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls read or write only the structs passed by pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut old);
        let limit = libc::rlimit {
            rlim_cur: open_descriptors() + 10,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut clients = Command::new("/usr/bin/python3");
    clients
        .args(["-c", CLIENTS, &port.to_string(), "40"])
        .stdout(Stdio::piped());
    // SAFETY: setrlimit(2) is async-signal-safe and reads only `old`, a
    // copy the closure owns. The clients get back the limit this process had.
    unsafe {
        clients.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &old) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    let child = clients.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
    let line = String::from_utf8(out.stdout).unwrap();
    let counts: Vec<u32> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let [ok, full, silent] = counts[..] else {
        panic!("{line:?}");
    };
    assert_eq!(ok + full + silent, 40);
    assert_eq!(silent, 0, "clients left waiting: {line}");
    assert!(full > 0 && ok > 0, "{line}");
    let _ = std::io::stderr().write_all(format!("answered {ok}, refused {full}\n").as_bytes());

    control.shutdown(Duration::from_secs(1));
    running.join();
}
