//! dynport's HTTP/1.1 engine: a fixed set of threads over non-blocking
//! sockets, with every limit answered and never a crash. The rest of dynport
//! sees only [`Request`], [`Response`], [`Engine`] and [`Control`].

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// One parsed request, as the router sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The method as sent, e.g. `GET`.
    pub method: String,
    /// The path without the query, e.g. `/api/v1/tools/port/state`.
    pub path: String,
    /// The raw query after `?`, when there is one.
    pub query: Option<String>,
    /// Header names lower-cased, values as sent (valid UTF-8 only).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A request built in memory, for tests of the router.
    pub fn fake(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        Request {
            method: method.to_string(),
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, extra headers, body. The engine adds `Content-Length`,
/// `Connection` and `Date`-free framing itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Extra headers besides `Content-Type` and framing, e.g. `Allow`.
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response with a body already serialised.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body,
        }
    }

    /// dynport's error shape: `{"status":"error","error":"…","timestamp":"…"}`.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({
            "status": "error",
            "error": message,
            "timestamp": crate::time::now_rfc3339(),
        });
        Response::json(status, body.to_string().into_bytes())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the engine calls for every complete request. A panic inside becomes a 500.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The engine's limits and sizes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    pub max_connections: usize,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            workers: 4,
            max_connections: 1024,
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters the engine keeps for every response it writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests_total: u64,
    /// Responses by status class: index 0 is 1xx … index 4 is 5xx.
    pub by_class: [u64; 5],
    pub open_connections: usize,
}

/// An engine that is built but not yet serving.
pub struct Engine {}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct Control {}

/// The threads of a serving engine.
pub struct Running {}

impl Engine {
    pub fn new(_config: EngineConfig) -> io::Result<Engine> {
        unimplemented!()
    }
    pub fn control(&self) -> Control {
        unimplemented!()
    }
    pub fn run(self, _listener: TcpListener, _handler: Handler) -> io::Result<Running> {
        unimplemented!()
    }
}

impl Control {
    /// Serves new connections on `listener` from now on; the old listener is
    /// closed at once, connections already open go on.
    pub fn replace_listener(&self, _listener: TcpListener) -> io::Result<()> {
        unimplemented!()
    }
    /// Stops accepting, closes idle connections, lets requests in flight finish
    /// for at most `grace`, then ends every thread.
    pub fn shutdown(&self, _grace: Duration) {
        unimplemented!()
    }
    pub fn stats(&self) -> Stats {
        unimplemented!()
    }
}

impl Running {
    /// Waits until every engine thread has ended (after [`Control::shutdown`]).
    pub fn join(self) {
        unimplemented!()
    }
}
