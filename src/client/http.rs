//! A tiny blocking HTTP/1.1 client: one request per connection
//! (`Connection: close`), bounded in time and size, plain `http` only, over
//! TCP or the server's Unix socket. A server found through its state file
//! is checked to be the state file's owner before anything is sent.
#![forbid(unsafe_code)]

use super::target::{BaseUrl, Target};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds on an answer, far above anything dynport sends.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Headers parsed without an allocation: dynport sends a handful.
const FEW_HEADERS: usize = 32;

/// One request to send.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path below the base URL, e.g. `/api/v1/ports/leases`.
    pub path: &'a str,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<&'a str>,
    /// A JSON body.
    pub body: Option<&'a [u8]>,
}

/// An answer: its status and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum HttpError {
    /// No connection could be opened: nothing listens there, or it is too
    /// slow to accept.
    Connect(io::Error),
    /// Connected, but the exchange failed or the answer is not HTTP as
    /// expected.
    Exchange(String),
    /// Something that is not the server listens where the state file says
    /// the server is; nothing was sent to it.
    Impostor(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "{e}"),
            HttpError::Exchange(m) | HttpError::Impostor(m) => f.write_str(m),
        }
    }
}

/// Sends `req` to `target` and reads its whole answer: over the Unix
/// socket when the target has one that accepts, else over TCP.
pub fn send(target: &Target, req: &Request) -> Result<Response, HttpError> {
    let bytes = encode(&target.url, req, "application/json", &[]);
    send_bytes(open(target)?, &bytes)
}

/// A connection to the server, checked to be the server's.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Conn::Unix(s) => s.as_fd(),
            Conn::Tcp(s) => s.as_fd(),
        }
    }
}

/// Connects to `target`: over its Unix socket when it has one that
/// accepts, else over TCP; a server found through a state file must be
/// its owner before anything is sent.
fn open(target: &Target) -> Result<Conn, HttpError> {
    if let (Some(path), Some(at)) = (&target.unix, target.unix_at()) {
        match UnixStream::connect(at) {
            Ok(stream) => {
                check_owner(target, &format!("unix:{}", path.display()), || {
                    crate::sys::peer_cred(&stream).map(|(_, uid)| Some(uid))
                })?;
                return Ok(Conn::Unix(stream));
            }
            // A socket left by a server that died: TCP says more.
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused) => {}
            Err(e) => return Err(HttpError::Connect(e)),
        }
    }
    let stream = connect(&target.url).map_err(HttpError::Connect)?;
    check_owner(target, &target.url.to_string(), || {
        // The server's end of this very connection, as the kernel knows it.
        let (server, client) = (stream.peer_addr()?, stream.local_addr()?);
        crate::sys::netlink::tcp_socket_uid(server, client, crate::sys::netlink::Vouching::Full)
    })?;
    Ok(Conn::Tcp(stream))
}

/// What asking for a stream got: the stream, its head read, with the
/// bytes that came after the head; or a whole answer that is no stream.
pub enum Opened {
    Stream(Conn, Vec<u8>),
    Answer(Response),
}

/// Sends the GET `req` to `target`, with `headers` besides the usual ones,
/// asking for `text/event-stream`. A `200` answer is handed back as a
/// stream whose reads wait at most `idle`; any other is read whole.
pub fn open_stream(
    target: &Target,
    req: &Request,
    headers: &[(&str, String)],
    idle: Duration,
) -> Result<Opened, HttpError> {
    let bytes = encode(&target.url, req, "text/event-stream", headers);
    let mut conn = open(target)?;
    set_timeouts(&conn, IO_TIMEOUT)?;
    conn.write_all(&bytes).map_err(exchange)?;
    let (head, mut buf) = read_head(&mut conn)?;
    if head.status != 200 {
        let body = read_body(&mut conn, buf.split_off(head.end), head.length)?;
        return Ok(Opened::Answer(Response {
            status: head.status,
            body,
        }));
    }
    set_timeouts(&conn, idle)?;
    Ok(Opened::Stream(conn, buf.split_off(head.end)))
}

fn exchange(e: io::Error) -> HttpError {
    HttpError::Exchange(e.to_string())
}

/// Sends `bytes` and reads the answer, neither waiting more than
/// [`IO_TIMEOUT`] for the other end, on TCP and on the Unix socket alike.
fn send_bytes(mut stream: impl Read + Write + AsFd, bytes: &[u8]) -> Result<Response, HttpError> {
    set_timeouts(&stream, IO_TIMEOUT)?;
    stream.write_all(bytes).map_err(exchange)?;
    read_response(&mut stream)
}

/// Makes each read and write on `stream` wait at most `limit`.
fn set_timeouts(stream: &impl AsFd, limit: Duration) -> Result<(), HttpError> {
    let timeout = libc::timeval {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_usec: limit.subsec_micros() as libc::suseconds_t,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        crate::sys::set_option(stream, libc::SOL_SOCKET, option, &timeout).map_err(exchange)?;
    }
    Ok(())
}

/// When the target must be owned by a uid (found through a state file),
/// checks that `peer_uid` tells that uid, before a byte is sent. `at` is
/// where the connection went: the socket, or the URL when a dead server's
/// socket file refused and TCP was tried.
fn check_owner(
    target: &Target,
    at: &str,
    peer_uid: impl FnOnce() -> io::Result<Option<u32>>,
) -> Result<(), HttpError> {
    let Some(owner) = target.owner else {
        return Ok(());
    };
    let found = match peer_uid() {
        Ok(Some(uid)) if uid == owner => return Ok(()),
        Ok(Some(uid)) => format!("its socket belongs to uid {uid}"),
        Ok(None) => "the kernel knows no owner for it".to_string(),
        Err(e) => format!("its owner cannot be checked ({e})"),
    };
    Err(HttpError::Impostor(format!(
        "something else listens at {at}: {found}, while the server's state file belongs \
         to uid {owner}; the server is not running there, so nothing was sent \
         (pass --url to trust an address as given)"
    )))
}

fn connect(url: &BaseUrl) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The request's bytes: head and body in one buffer, written at once.
fn encode(url: &BaseUrl, req: &Request, accept: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut head = format!(
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dynport/{}\r\n\
         Accept: {accept}\r\nConnection: close\r\n",
        req.method,
        url.prefix,
        req.path,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(token) = req.token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match req.body {
        Some(body) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )),
        None if req.method != "GET" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(req.body.unwrap_or_default());
    bytes
}

/// Reads a status line, headers and a body framed by `Content-Length`, or
/// by the end of the connection when there is none.
fn read_response(stream: &mut impl Read) -> Result<Response, HttpError> {
    let (head, mut buf) = read_head(stream)?;
    let body = read_body(stream, buf.split_off(head.end), head.length)?;
    Ok(Response {
        status: head.status,
        body,
    })
}

/// Reads until the head is whole: the head parsed, and all that was read.
fn read_head(stream: &mut impl Read) -> Result<(Head, Vec<u8>), HttpError> {
    let mut buf = Vec::new();
    loop {
        match parse_head(&buf) {
            Ok(Some(head)) => return Ok((head, buf)),
            // Said once its line is whole, so that the message quotes it.
            Err(e) if buf.contains(&b'\n') => return Err(e),
            _ => {}
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Exchange("response head too large".to_string()));
        }
        if read_some(stream, &mut buf)? == 0 {
            return Err(HttpError::Exchange(
                "the connection closed before a complete answer".to_string(),
            ));
        }
    }
}

/// Reads the rest of a body of which `body` came with the head.
fn read_body(
    stream: &mut impl Read,
    mut body: Vec<u8>,
    length: Option<usize>,
) -> Result<Vec<u8>, HttpError> {
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(HttpError::Exchange("response body too large".to_string()));
    }
    loop {
        match length {
            Some(n) if body.len() >= n => {
                body.truncate(n);
                return Ok(body);
            }
            _ if body.len() > MAX_BODY => {
                return Err(HttpError::Exchange("response body too large".to_string()));
            }
            _ => {}
        }
        if read_some(stream, &mut body)? == 0 {
            if length.is_some() {
                return Err(HttpError::Exchange(
                    "the connection closed in the middle of the answer".to_string(),
                ));
            }
            return Ok(body);
        }
    }
}

fn read_some(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<usize, HttpError> {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HttpError::Exchange(format!(
                    "no answer within {} s",
                    IO_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(HttpError::Exchange(e.to_string())),
        }
    }
}

/// What a response head says, and where it ends.
struct Head {
    end: usize,
    status: u16,
    length: Option<usize>,
}

/// The response head at the start of `buf`, parsed by httparse; `None`
/// while it is not all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let bad = |what: &str| HttpError::Exchange(format!("not an HTTP answer: {what}"));
    let status_line = || {
        let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        bad(&format!("status line {line:?}"))
    };
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut all = Vec::new();
    let mut response = httparse::Response::new(&mut few);
    let mut parsed = response.parse(buf);
    if parsed == Err(httparse::Error::TooManyHeaders) {
        // As many as fit in the head: each takes three bytes at least, so
        // only MAX_HEAD bounds them, as it bounds the rest of the head.
        all.resize(buf.len() / 3 + 1, httparse::EMPTY_HEADER);
        response = httparse::Response::new(&mut all);
        parsed = response.parse(buf);
    }
    let end = match parsed {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version | httparse::Error::Status) => return Err(status_line()),
        Err(_) => return Err(bad("header line")),
    };
    let status = match response.code {
        Some(status) if (100..600).contains(&status) => status,
        _ => return Err(status_line()),
    };
    let length = content_length(response.headers)?;
    Ok(Some(Head {
        end,
        status,
        length,
    }))
}

/// The `Content-Length` of an answer, if it has one; a chunked answer is
/// refused.
fn content_length(headers: &[httparse::Header]) -> Result<Option<usize>, HttpError> {
    let bad = |what: &str| HttpError::Exchange(format!("not an HTTP answer: {what}"));
    let mut length = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            let value = value.and_then(|v| v.trim().parse().ok());
            length = Some(value.ok_or_else(|| bad("Content-Length"))?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not supported"));
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn url(port: u16) -> BaseUrl {
        BaseUrl::for_listener("127.0.0.1", port)
    }

    /// The server on `port`, which must run as `owner` when given.
    fn target(port: u16, owner: Option<u32>) -> Target {
        Target {
            url: url(port),
            source: super::super::target::Source::Flag,
            unix: None,
            owner,
            dir: None,
        }
    }

    #[test]
    fn encodes_a_post_with_token_and_body() {
        let req = Request {
            method: "POST",
            path: "/api/v1/ports/lease",
            token: Some("s3cret"),
            body: Some(br#"{"count":2}"#),
        };
        let text = String::from_utf8(encode(&url(3456), &req, "application/json", &[])).unwrap();
        let expected = format!(
            "POST /api/v1/ports/lease HTTP/1.1\r\nHost: 127.0.0.1:3456\r\n\
             User-Agent: dynport/{}\r\nAccept: application/json\r\nConnection: close\r\n\
             Authorization: Bearer s3cret\r\nContent-Type: application/json\r\n\
             Content-Length: 11\r\n\r\n{{\"count\":2}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_delete_without_body_says_content_length_zero_and_a_get_does_not() {
        let mut req = Request {
            method: "DELETE",
            path: "/x",
            token: None,
            body: None,
        };
        let text = String::from_utf8(encode(&url(1), &req, "application/json", &[])).unwrap();
        assert!(text.ends_with("Connection: close\r\nContent-Length: 0\r\n\r\n"));
        req.method = "GET";
        let text = String::from_utf8(encode(&url(1), &req, "application/json", &[])).unwrap();
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    /// A reader that hands out its bytes a few at a time, as a socket may.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn reads_a_body_framed_by_content_length_in_small_pieces() {
        let bytes = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                      Content-Length: 5\r\n\r\nhelloEXTRA"
            .to_vec();
        let r = read_response(&mut Trickle(bytes, 3)).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn without_content_length_the_body_ends_with_the_connection() {
        let bytes = b"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}".to_vec();
        let r = read_response(&mut Trickle(bytes, 100)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
    }

    #[test]
    fn a_truncated_or_foreign_answer_is_an_exchange_error() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ] {
            let err = read_response(&mut Trickle(bytes.to_vec(), 4)).unwrap_err();
            assert!(matches!(err, HttpError::Exchange(_)), "{bytes:?}: {err:?}");
        }
    }

    #[test]
    fn many_headers_are_read_as_far_as_the_head_may_go() {
        let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
        bytes.extend(b"X-A: b\r\n".repeat(2000));
        bytes.extend(b"Content-Length: 2\r\n\r\n{}");
        let r = read_response(&mut Trickle(bytes, 4096)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    }

    #[test]
    fn each_kind_of_bad_answer_is_named() {
        let error =
            |bytes: &[u8], piece: usize| match read_response(&mut Trickle(bytes.to_vec(), piece)) {
                Err(HttpError::Exchange(message)) => message,
                other => panic!("{bytes:?}: {other:?}"),
            };
        let cases: [(&[u8], &str); 9] = [
            (
                b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                r#"not an HTTP answer: status line "SSH-2.0-OpenSSH_9.6""#,
            ),
            (
                b"HTTP/1.1 999 Nine\r\n\r\n",
                r#"not an HTTP answer: status line "HTTP/1.1 999 Nine""#,
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                "not an HTTP answer: header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
                "not an HTTP answer: Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "not an HTTP answer: chunked answers are not supported",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                "response body too large",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Le",
                "the connection closed before a complete answer",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "the connection closed in the middle of the answer",
            ),
            (b"", "the connection closed before a complete answer"),
        ];
        for (bytes, message) in cases {
            for piece in [1, 4, 4096] {
                assert_eq!(
                    error(bytes, piece),
                    message,
                    "{bytes:?} in pieces of {piece}"
                );
            }
        }
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(b"X-Pad: 0123456789abcdef\r\n".repeat(MAX_HEAD / 16));
        assert_eq!(error(&huge, 8192), "response head too large");
    }

    #[test]
    fn talks_to_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            while !seen.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                conn.read_exact(&mut byte).unwrap();
                seen.push(byte[0]);
            }
            conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let req = Request {
            method: "GET",
            path: "/healthz",
            token: None,
            body: None,
        };
        let r = send(&target(port, Some(crate::sys::process::own_uid())), &req).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /healthz HTTP/1.1\r\n")
        );
    }

    #[test]
    fn nothing_listening_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let req = Request {
            method: "GET",
            path: "/healthz",
            token: None,
            body: None,
        };
        let err = send(&target(port, None), &req).unwrap_err();
        assert!(matches!(err, HttpError::Connect(_)), "{err:?}");
    }

    #[test]
    fn a_listener_of_another_uid_gets_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let other = crate::sys::process::own_uid() + 1;
        let req = Request {
            method: "POST",
            path: "/api/v1/ports/lease",
            token: Some("secret-token-of-the-user"),
            body: None,
        };
        let err = send(&target(port, Some(other)), &req).unwrap_err();
        let HttpError::Impostor(message) = err else {
            panic!("expected an impostor, got {err:?}");
        };
        let expected = format!(
            "something else listens at http://127.0.0.1:{port}: its socket belongs to uid {}, \
             while the server's state file belongs to uid {other}",
            crate::sys::process::own_uid()
        );
        assert!(message.starts_with(&expected), "{message}");
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_nonblocking(true).unwrap();
        let mut sent = Vec::new();
        let _ = conn.read_to_end(&mut sent);
        assert!(sent.is_empty(), "nothing may reach it: {sent:?}");
    }

    #[test]
    fn unix_socket_is_preferred_and_checked_for_its_owner() {
        let dir = std::env::temp_dir().join(format!("dynport-http-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dynport.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let kept = listener.try_clone().unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
        });
        let req = Request {
            method: "GET",
            path: "/healthz",
            token: None,
            body: None,
        };
        let mut t = target(1, Some(crate::sys::process::own_uid()));
        t.unix = Some(path.clone());
        assert_eq!(send(&t, &req).unwrap().status, 200);
        server.join().unwrap();
        t.owner = Some(crate::sys::process::own_uid() + 1);
        let err = send(&t, &req).unwrap_err();
        assert!(matches!(err, HttpError::Impostor(_)), "{err:?}");
        drop(kept);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_impostor_behind_a_dead_servers_socket_file_is_named_by_its_url() {
        let dir = std::env::temp_dir().join(format!("dynport-http-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dynport.sock");
        let _ = std::fs::remove_file(&path);
        // Bound, then closed: the file stays and refuses, as after a crash.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut t = target(port, Some(crate::sys::process::own_uid() + 1));
        t.unix = Some(path);
        let req = Request {
            method: "GET",
            path: "/healthz",
            token: None,
            body: None,
        };
        let err = send(&t, &req).unwrap_err();
        let HttpError::Impostor(message) = err else {
            panic!("expected an impostor, got {err:?}");
        };
        let expected = format!("something else listens at http://127.0.0.1:{port}: ");
        assert!(message.starts_with(&expected), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
