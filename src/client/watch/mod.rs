//! `dynport watch`: follows the server's event stream (`GET /api/v1/events`)
//! and prints each event as a line. When the stream ends it reconnects by
//! itself, resuming after the last event printed; when the server's port
//! moved, it finds the server again: at the `port` event's new port, else
//! through the state directory (or its Unix socket) as at the start.
#![forbid(unsafe_code)]

mod line;
mod sse;

use super::ClientError;
use super::http::{self, Conn, HttpError, Opened, Request};
use super::target::{Locate, Target};
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// How long a stream may stay silent before it is taken for dead: the
/// server sends a comment every 15 s.
const SILENCE: Duration = Duration::from_secs(45);
/// The wait between reconnections when the server says none (`retry`).
const RETRY: Duration = Duration::from_secs(1);
/// Bounds on the wait a server's `retry` field may ask for.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What `dynport watch` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// JSON lines instead of lines for people.
    pub json: bool,
    /// Exit 0 after this many lines.
    pub count: Option<u64>,
}

/// How a stream ended.
enum End {
    /// Printed all that `--count` asked for, or stdout was closed.
    Done,
    /// The stream ended or broke; the reason, for the message.
    Lost(String),
}

/// The watch: where the server is, and where in its events we are.
struct Watch {
    locate: Locate,
    server_uid: Option<u32>,
    target: Target,
    opts: Options,
    /// The id of the last event printed: resumed after on reconnecting.
    last_id: Option<u64>,
    printed: u64,
    retry: Duration,
    /// The server's port moved since the stream opened: reconnect at once.
    moved: bool,
    /// Where the lines go: stdout.
    out: Box<dyn Write>,
}

/// Runs `dynport watch` until a signal, `--count` or a refusal ends it.
pub fn run(
    target: Target,
    locate: &Locate,
    server_uid: Option<u32>,
    opts: Options,
) -> Result<ExitCode, ClientError> {
    // Ctrl-C or a service manager's SIGTERM is how a watch is meant to end.
    ctrlc::set_handler(|| std::process::exit(0))
        .map_err(|e| ClientError::Failed(format!("cannot catch signals: {e}")))?;
    if opts.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    Watch::new(target, locate, server_uid, opts, Box::new(io::stdout())).follow()
}

impl Watch {
    fn new(
        target: Target,
        locate: &Locate,
        server_uid: Option<u32>,
        opts: Options,
        out: Box<dyn Write>,
    ) -> Watch {
        Watch {
            locate: locate.clone(),
            server_uid,
            target,
            opts,
            last_id: None,
            printed: 0,
            retry: RETRY,
            moved: false,
            out,
        }
    }

    /// Opens the stream, prints its events, and opens it again when it
    /// ends, for as long as the server does not refuse. A lost stream is
    /// said once on stderr, and so is finding it again.
    fn follow(&mut self) -> Result<ExitCode, ClientError> {
        let mut connected = false;
        let mut said_lost = false;
        loop {
            let why = match self.open() {
                Ok(Opened::Stream(conn, rest)) => {
                    if std::mem::take(&mut said_lost) {
                        eprintln!("dynport: following {} again", self.target.url);
                    }
                    connected = true;
                    let why = match self.read(conn, rest)? {
                        End::Done => return Ok(ExitCode::SUCCESS),
                        End::Lost(why) => why,
                    };
                    if std::mem::take(&mut self.moved) {
                        let port = self.target.url.port;
                        eprintln!("dynport: the server moved to port {port}; following it");
                        continue;
                    }
                    why
                }
                Ok(Opened::Answer(answer)) if answer.status < 500 => {
                    return Err(ClientError::Refused(refusal(&answer)));
                }
                Ok(Opened::Answer(answer)) => refusal(&answer),
                Err(e) if !connected => return Err(self.unreachable(e)),
                Err(e) => e.to_string(),
            };
            if !std::mem::replace(&mut said_lost, true) {
                let url = &self.target.url;
                eprintln!("dynport: lost the event stream of {url} ({why}); reconnecting");
            }
            std::thread::sleep(self.retry);
            self.find_again();
        }
    }

    /// `GET /api/v1/events`, after the last event printed when there was one.
    fn open(&self) -> Result<Opened, HttpError> {
        let req = Request {
            method: "GET",
            path: "/api/v1/events",
            token: None,
            body: None,
        };
        let headers: Vec<(&str, String)> = self
            .last_id
            .map(|id| ("Last-Event-ID", id.to_string()))
            .into_iter()
            .collect();
        http::open_stream(&self.target, &req, &headers, SILENCE)
    }

    /// Prints the events of one stream until it ends.
    fn read(&mut self, mut conn: Conn, rest: Vec<u8>) -> Result<End, ClientError> {
        let mut parser = sse::Parser::default();
        let mut chunk = rest;
        loop {
            let mut done = false;
            let mut failed = None;
            let fed = parser.feed(&chunk, &mut |event| {
                if done || failed.is_some() {
                    return;
                }
                match self.print(&event) {
                    Ok(more) => done = !more,
                    Err(e) => failed = Some(e),
                }
            });
            if let Some(retry) = parser.retry {
                self.retry = Duration::from_millis(retry).clamp(RETRY_MIN, RETRY_MAX);
            }
            match (done, failed, fed) {
                (true, _, _) => return Ok(End::Done),
                (_, Some(e), _) => return Err(e),
                (_, _, Err(e)) => return Ok(End::Lost(e)),
                _ => {}
            }
            chunk = match next_chunk(&mut conn) {
                Ok(bytes) if bytes.is_empty() => {
                    return Ok(End::Lost("the server closed the stream".to_string()));
                }
                Ok(bytes) => bytes,
                Err(e) => return Ok(End::Lost(e)),
            };
        }
    }

    /// Prints one event; whether to go on.
    fn print(&mut self, event: &sse::Event) -> Result<bool, ClientError> {
        let text = match self.opts.json {
            true => line::json(event),
            false => line::text(event, SystemTime::now()),
        };
        let written = self.out.write_all(text.as_bytes());
        if let Err(e) = written.and_then(|()| self.out.flush()) {
            return match e.kind() {
                // `dynport watch | head -3`: the reader has seen enough.
                io::ErrorKind::BrokenPipe => Ok(false),
                _ => Err(ClientError::Failed(format!("cannot write to stdout: {e}"))),
            };
        }
        if let Some(id) = event.id.as_deref().and_then(|id| id.parse().ok()) {
            self.last_id = Some(id);
        }
        if event.kind == "port" {
            self.follow_port(&event.data);
        }
        self.printed += 1;
        Ok(self.opts.count.is_none_or(|n| self.printed < n))
    }

    /// After a `port` event, the server is to be found at its new port.
    fn follow_port(&mut self, data: &str) {
        let moved: Option<serde_json::Value> = serde_json::from_str(data).ok();
        let to = moved.as_ref().and_then(|m| m["to"].as_u64());
        if let Some(to) = to.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) {
            self.target.url.port = to;
            self.moved = true;
        }
    }

    /// Reads the server's address again from its state directory, when it
    /// was found through one: the port may have moved.
    fn find_again(&mut self) {
        if let Locate::StateDir(_) = &self.locate
            && let Ok(target) = self.locate.resolve(self.server_uid)
        {
            self.target = target;
        }
    }

    fn unreachable(&self, e: HttpError) -> ClientError {
        let url = &self.target.url;
        match e {
            HttpError::Connect(e) => ClientError::Unreachable(format!(
                "cannot reach the dynport server at {url} ({}): {e}",
                self.target.source
            )),
            HttpError::Exchange(m) => ClientError::Failed(format!("bad answer from {url}: {m}")),
            HttpError::Impostor(m) => ClientError::Unreachable(m),
        }
    }
}

/// The next bytes of the stream; empty when it ended.
fn next_chunk(conn: &mut Conn) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("nothing came for {} s", SILENCE.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The server's own words for a refusal.
fn refusal(answer: &http::Response) -> String {
    let body: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let said = body.as_ref().and_then(|b| b["error"].as_str());
    match said {
        Some(said) => super::output::clean(said),
        None => format!("the server answered HTTP {}", answer.status),
    }
}

#[cfg(test)]
mod tests;
