//! The fair-share figure of holder lookups: another user's `GET /healthz`
//! p99 while one user (another uid: `dynport-alice` when it exists, else
//! `nobody`) holds 60,000 descriptors and loops holder lookups on 16
//! connections. The port asked is held by a listener that only an
//! `SCM_RIGHTS` message in flight holds, so no `/proc/*/fd` names it and
//! every lookup walks every process it may. Needs root, to run processes
//! as that user; the looping client is this benchmark's own binary run as
//! that user with [`CLIENT_FLAG`].

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::procs::{Child, TempDir};
use crate::servers;
use crate::table::{Row, ms, quantile};

/// Descriptors the looping user holds, in as many processes as the hard
/// `RLIMIT_NOFILE` asks.
const DESCRIPTORS: usize = 60_000;
/// Connections the looping user asks on, each one lookup after another.
const CONNS: usize = 16;
/// How long the user loops; `/healthz` is sampled in the middle of it.
const SECS: u64 = 12;
const WARMUP: Duration = Duration::from_secs(1);
const SAMPLE_FOR: Duration = Duration::from_secs(10);
/// The most the other user's `/healthz` p99 may take.
const GOAL_MS: f64 = 50.0;
/// Runs this binary as the looping client: `--lookup-client SERVER PORT
/// CONNS SECS`.
pub const CLIENT_FLAG: &str = "--lookup-client";

/// What was measured.
pub struct Lookups {
    pub user: String,
    pub descriptors: usize,
    pub health_p50: Duration,
    pub health_p99: Duration,
    pub samples: usize,
    /// Lookups answered (200) and refused (429) per second.
    pub answered_per_sec: f64,
    pub refused_per_sec: f64,
    /// dynport's CPU time over the sampling, in cores.
    pub server_cores: f64,
}

/// Starts dynport, the user's descriptors and its looping client, samples
/// `/healthz`, stops them all; `None` when not run as root.
pub fn measure(dynport: &Path) -> io::Result<Option<Lookups>> {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: holder lookups of another user: skipped, needs root");
        return Ok(None);
    }
    let (user, uid, gid) = looping_user()?;
    let (port, in_flight) = socket_in_flight()?;
    let range = format!("{port}-{}", port + 1);
    let server = servers::start_dynport(dynport, "dynport", Some(&range))?;
    let (holders, descriptors) = hold_descriptors(uid, gid)?;
    let bin = shared_copy_of_this_binary()?;
    let mut cmd = Command::new(bin.1.clone());
    cmd.args([CLIENT_FLAG, &server.port.to_string(), &port.to_string()])
        .args([CONNS.to_string(), SECS.to_string()])
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let client = Child::spawn(&mut cmd, true)?;
    thread::sleep(WARMUP);
    let (began, cpu) = (Instant::now(), cpu_secs(server.child.pid())?);
    let mut latencies = sample_health(server.port, SAMPLE_FOR)?;
    let server_cores = (cpu_secs(server.child.pid())? - cpu) / began.elapsed().as_secs_f64();
    let counts = client.output()?;
    drop((holders, server, bin, in_flight));
    let (answered, refused) = parse_counts(&counts)
        .ok_or_else(|| io::Error::other(format!("the looping client printed {counts:?}")))?;
    latencies.sort_unstable();
    let figures = Lookups {
        user,
        descriptors,
        health_p50: quantile(&latencies, 0.5),
        health_p99: quantile(&latencies, 0.99),
        samples: latencies.len(),
        answered_per_sec: answered as f64 / SECS as f64,
        refused_per_sec: refused as f64 / SECS as f64,
        server_cores,
    };
    eprintln!(
        "bench: /healthz while {} holds {} descriptors and loops lookups on {CONNS} \
         connections: p50 {:.3} ms, p99 {:.3} ms ({} samples); lookups {:.1}/s, 429 {:.0}/s; \
         dynport {:.0}% of a core",
        figures.user,
        figures.descriptors,
        ms(figures.health_p50),
        ms(figures.health_p99),
        figures.samples,
        figures.answered_per_sec,
        figures.refused_per_sec,
        figures.server_cores * 100.0
    );
    Ok(Some(figures))
}

/// The table rows.
pub fn rows(l: &Lookups) -> [Row; 3] {
    let p99 = ms(l.health_p99);
    [
        Row::check(
            &format!(
                "/healthz p99 while {} holds {} fds and loops lookups on {CONNS} conns (ms)",
                l.user, l.descriptors
            ),
            format!("{p99:.3}"),
            &format!("< {GOAL_MS:.0} ms"),
            p99 < GOAL_MS,
        ),
        Row::dynport(
            "  its lookups answered / refused with 429, per s",
            format!("{:.1} / {:.0}", l.answered_per_sec, l.refused_per_sec),
        ),
        Row::dynport(
            "  dynport's CPU meanwhile (cores)",
            format!("{:.2}", l.server_cores),
        ),
    ]
}

/// A TCP listener on a port whose next one is free too (for the server),
/// sent over a socketpair and closed here: only the message in flight
/// holds it until the pair is dropped.
fn socket_in_flight() -> io::Result<(u16, (UnixStream, UnixStream))> {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if port == u16::MAX || TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
            continue;
        }
        let pair = UnixStream::pair()?;
        send_fd(&pair.0, listener.as_raw_fd())?;
        return Ok((port, pair));
    }
    Err(io::Error::other("no two free ports in a row"))
}

/// Sends `fd` over `via` as `SCM_RIGHTS`, with one byte of data.
fn send_fd(via: &UnixStream, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    let fd_len = std::mem::size_of::<RawFd>() as u32;
    // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument.
    let (space, len) = unsafe { (libc::CMSG_SPACE(fd_len), libc::CMSG_LEN(fd_len)) };
    let mut control = vec![0u64; (space as usize).div_ceil(8)]; // aligned for cmsghdr
    // SAFETY: msghdr is plain data, for which all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as usize;
    // SAFETY: `msg` points at `control`, which has room for one header and
    // one descriptor (CMSG_SPACE), so the first header and its data lie in
    // it; sendmsg(2) only reads `msg`, `iov` and `control`.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(via.as_raw_fd(), &msg, 0)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `dynport-alice` (made by the trust tests) when it exists, else `nobody`:
/// its name, uid and gid.
fn looping_user() -> io::Result<(String, u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for name in ["dynport-alice", "nobody"] {
        let found = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields[..] {
                [n, _, uid, gid, ..] if n == name => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        });
        if let Some((uid, gid)) = found {
            return Ok((name.to_string(), uid, gid));
        }
    }
    Err(io::Error::other(
        "neither dynport-alice nor nobody is a user here",
    ))
}

/// `sleep` processes of `uid` holding [`DESCRIPTORS`] copies of
/// `/dev/null` between them, each as many as this process may open at
/// once; and how many descriptors they hold in all.
fn hold_descriptors(uid: u32, gid: u32) -> io::Result<(Vec<Child>, usize)> {
    let null = std::fs::File::open("/dev/null")?;
    let each = open_file_limit()?.saturating_sub(256).max(1);
    let mut sleepers = Vec::new();
    let mut left = DESCRIPTORS;
    while left > 0 {
        let n = left.min(each);
        // Copies without close-on-exec, so that the child keeps them.
        let copies = (0..n)
            .map(|_| dup(&null))
            .collect::<io::Result<Vec<OwnedFd>>>()?;
        let mut cmd = Command::new("sleep");
        cmd.arg("600")
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        sleepers.push(Child::spawn(&mut cmd, true)?);
        drop(copies);
        left -= n;
    }
    let held = sleepers
        .iter()
        .map(|c| std::fs::read_dir(format!("/proc/{}/fd", c.pid())).map(Iterator::count))
        .sum::<io::Result<usize>>()?;
    Ok((sleepers, held))
}

fn dup(file: &std::fs::File) -> io::Result<OwnedFd> {
    // SAFETY: dup(2) takes an open descriptor and returns a new one or -1.
    let fd = unsafe { libc::dup(file.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by dup(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// This process's soft `RLIMIT_NOFILE` (main raised it to the hard one).
fn open_file_limit() -> io::Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) only writes the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

/// This binary copied into a directory every user may enter, so that the
/// looping user can run it wherever the checkout is.
fn shared_copy_of_this_binary() -> io::Result<(TempDir, PathBuf)> {
    let dir = TempDir::new("lookup-client")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let copy = dir.path().join("bench");
    std::fs::copy(std::env::current_exe()?, &copy)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
    Ok((dir, copy))
}

/// `GET /healthz` on one kept-alive connection every 2 ms for `span`: the
/// time of each.
fn sample_health(port: u16, span: Duration) -> io::Result<Vec<Duration>> {
    let mut client = Client::connect(port)?;
    let end = Instant::now() + span;
    let mut times = Vec::new();
    while Instant::now() < end {
        let began = Instant::now();
        let (status, _) = client.request("GET", "/healthz", b"")?;
        times.push(began.elapsed());
        if status != 200 {
            return Err(io::Error::other(format!("GET /healthz answered {status}")));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(times)
}

/// The user and system CPU time process `pid` has used, in seconds.
fn cpu_secs(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's closing parenthesis: state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (Some(user), Some(system)) = (tick(11), tick(12)) else {
        return Err(io::Error::other(format!("cannot read /proc/{pid}/stat")));
    };
    // SAFETY: sysconf(3) takes a plain integer.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((user + system) / hz)
}

/// `answered N refused M`, as the looping client prints it.
fn parse_counts(text: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words[..] {
        ["answered", a, "refused", r] => Some((a.parse().ok()?, r.parse().ok()?)),
        _ => None,
    }
}

/// The looping client, when this binary was run as one: `Some` exit code.
pub fn client_mode(args: &[String]) -> Option<ExitCode> {
    if args.get(1).map(String::as_str) != Some(CLIENT_FLAG) {
        return None;
    }
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let port = |i: usize| number(i).and_then(|n| u16::try_from(n).ok());
    let (Some(server), Some(port), Some(conns), Some(secs)) =
        (port(2), port(3), number(4), number(5))
    else {
        eprintln!("bench: usage: bench {CLIENT_FLAG} SERVER PORT CONNS SECS");
        return Some(ExitCode::from(2));
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let loops: Vec<_> = (0..conns)
        .map(|_| thread::spawn(move || lookup_loop(server, port, end)))
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for handle in loops {
        let (a, r) = handle.join().unwrap_or((0, 0));
        answered += a;
        refused += r;
    }
    println!("answered {answered} refused {refused}");
    Some(ExitCode::SUCCESS)
}

/// Holder lookups of `port` one after another until `end`, on one
/// connection to `server` made again whenever it fails: the 200s and the
/// 429s.
fn lookup_loop(server: u16, port: u16, end: Instant) -> (u64, u64) {
    let path = format!("/api/v1/tools/port/state?port={port}");
    let (mut answered, mut refused) = (0, 0);
    let mut client = None;
    while Instant::now() < end {
        let Some(c) = client.as_mut() else {
            client = Client::connect(server).ok();
            if client.is_none() {
                thread::sleep(Duration::from_millis(10));
            }
            continue;
        };
        match c.request("GET", &path, b"") {
            Ok((200, _)) => answered += 1,
            Ok((429, _)) => refused += 1,
            Ok(_) => {}
            Err(_) => client = None,
        }
    }
    (answered, refused)
}
