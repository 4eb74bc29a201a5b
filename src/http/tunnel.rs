//! Tunnels: a client connection whose requests the router sends to a
//! backend on this host (a dev server behind a name). The connection is
//! paired with one backend connection for its whole life, and both are
//! served by the engine's own threads, a turn at a time like any other
//! connection: no thread per tunnel.
//!
//! Both ways are streamed through bounded room: at most one read
//! ([`CHUNK`]) waits for a slow side, and while it waits nothing more is
//! read from the other (back-pressure), so a slow reader slows its writer
//! and never grows the server's memory. An idle tunnel holds no buffer.
//!
//! The client's side is read as HTTP, request by request: each head is
//! routed again (one connection, one route: another route or the API is
//! 421) and forwarded with `X-Forwarded-*` and `Via`; its body passes as
//! it comes. The backend's side passes untouched, only watched for where
//! each answer ends, so that dynport's own last word (a 421, a 508) comes
//! after the answers owed and never inside one. After a `101 Switching
//! Protocols` both sides pass untouched (WebSocket).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};

use super::framing::{self, Body, Chunked};
use super::write::{self, Framing, write_some};
use super::{Forward, ListenerKind, Peer, PeerAddr, Response, Route, Router};

/// Added to a connection's poller key for its backend socket: far above
/// any slot, and below the poller's own keys, which it never clears.
pub(crate) const BACKEND_KEY: usize = 1 << 48;
/// The most a tunnel reads from one side in a turn, and so the most it
/// keeps for the other side when that side is slow.
pub(crate) const CHUNK: usize = 16 * 1024;
/// The longest answer head a backend may send (cookies can be long).
const MAX_ANSWER_HEAD: usize = 64 * 1024;
/// The longest request head forwarded, as for dynport's own requests.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How many header lines a forwarded request head may carry.
const MAX_HEADERS: usize = 64;

/// How far the backend connection is.
enum Connect {
    /// The handshake to this address is under way; `fallback` is the next
    /// address to try when it is refused.
    Pending {
        fallback: Option<SocketAddr>,
    },
    Open,
}

/// Where the client's stream is.
#[derive(Debug, PartialEq, Eq)]
enum Up {
    /// At or in a request head.
    Head,
    /// In a request body.
    Body(Body),
    /// An upgrade was asked for: nothing more is read until its answer.
    AwaitUpgrade,
    /// Upgraded: bytes pass untouched.
    Raw,
    /// No more requests go to the backend.
    Stopped,
}

/// Where the backend's stream is.
#[derive(Debug, PartialEq, Eq)]
enum Down {
    Head,
    Body(Body),
    /// An answer without a length: it ends when the backend closes.
    UntilClose,
    Raw,
}

/// A request forwarded whose answer is owed.
#[derive(Clone, Copy, Debug)]
struct Owed {
    head: bool,
    upgrade: bool,
}

pub(crate) struct Tunnel {
    pub backend: TcpStream,
    connect: Connect,
    /// The route this connection is bound to.
    name: String,
    via: &'static str,
    /// The `Host` (lowercased) its first request routed by: a later request
    /// naming the same one, and naming this proxy in `Via` fewer than
    /// `max_hops` times, goes on without asking the router again.
    host: Vec<u8>,
    max_hops: usize,
    /// A complete request head the router must see before it goes on: the
    /// turn that found it had no router (the poller's).
    unrouted: Option<Vec<u8>>,
    /// The answer when no backend listens.
    unreachable: Option<Response>,
    /// Bytes for the backend not yet written, from `up_sent` on.
    up_out: Vec<u8>,
    up_sent: usize,
    /// Bytes from the client not yet looked at, kept while the client's
    /// side is paused.
    held: Vec<u8>,
    /// Bytes for the client not yet written, from `down_sent` on.
    down_out: Vec<u8>,
    down_sent: usize,
    up: Up,
    /// A request head not yet complete, and how far it was searched.
    up_head: Vec<u8>,
    up_searched: usize,
    down: Down,
    /// An answer head not yet complete (a copy: the bytes went on).
    down_head: Vec<u8>,
    down_searched: usize,
    owed: VecDeque<Owed>,
    /// dynport's own answer (its status and bytes), written once every
    /// answer owed is through; then the connection closes.
    last_word: Option<(u16, Vec<u8>)>,
    client_eof: bool,
    backend_eof: bool,
    /// The request being forwarded asked to close after it: nothing after
    /// its body goes to the backend.
    stop_after_body: bool,
    /// The backend socket is not in the poller yet (new, or replaced by
    /// the fallback's).
    unregistered: bool,
    /// How the engine words its own errors.
    error_response: fn(u16, &str) -> Response,
    /// Whether each side (client, backend) may have bytes to read: set
    /// when its socket fired, cleared when a read finds nothing or comes
    /// back short. A side that did not fire is not read in vain; and since
    /// both sockets report only changes (edge-triggered), a side that may
    /// still have bytes must be read before the tunnel waits.
    maybe_readable: [bool; 2],
    /// Whether each side's peer closed (or reset) its end, as its socket
    /// reported: its end is there to be read after the bytes before it,
    /// so a short read does not mean the side is drained.
    ending: [bool; 2],
    /// The client's socket still waits on a one-shot interest, as it did
    /// before it became a tunnel.
    client_unregistered: bool,
    /// The client's address and the listener's port, for `X-Forwarded-*`.
    client_ip: Option<String>,
    listener_port: Option<u16>,
    listener: ListenerKind,
}

/// What a turn of a tunnel leads to.
pub(crate) enum Turn {
    /// Wait for either socket.
    Wait,
    /// More may be ready at once.
    Again,
    /// Write what is in `out` (an answer of dynport's, with this status),
    /// then close gently.
    Answer(u16),
    Close,
    /// A turn without a router cannot go on: a request head must be
    /// routed, or dynport's last word is due. A worker takes it.
    Worker,
}

impl Tunnel {
    /// Starts the backend connection for `forward`, the client's bytes so
    /// far in `held` (the first request's head at their front). Refused at
    /// once on both addresses: the answer for an unreachable backend.
    pub fn open(
        forward: Forward,
        host: &[u8],
        held: Vec<u8>,
        peer: &Peer,
        listener_port: Option<u16>,
        listener: ListenerKind,
        error_response: fn(u16, &str) -> Response,
    ) -> Result<Tunnel, Response> {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, forward.port));
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, forward.port));
        let (backend, connect) = match start(v4, Some(v6)) {
            Ok(started) => started,
            Err(_) => return Err(forward.unreachable),
        };
        let client_ip = match peer.addr {
            PeerAddr::Ip(ip) => Some(ip.to_string()),
            _ => None,
        };
        Ok(Tunnel {
            backend,
            connect,
            name: forward.name,
            via: forward.via,
            host: host.to_ascii_lowercase(),
            max_hops: forward.max_hops,
            unrouted: None,
            unreachable: Some(forward.unreachable),
            up_out: Vec::new(),
            up_sent: 0,
            held,
            down_out: Vec::new(),
            down_sent: 0,
            up: Up::Head,
            up_head: Vec::new(),
            up_searched: 0,
            down: Down::Head,
            down_head: Vec::new(),
            down_searched: 0,
            owed: VecDeque::new(),
            last_word: None,
            client_eof: false,
            backend_eof: false,
            stop_after_body: false,
            unregistered: true,
            error_response,
            maybe_readable: [true, true],
            ending: [false, false],
            client_unregistered: true,
            client_ip,
            listener_port,
            listener,
        })
    }

    /// The answer when the backend did not take the connection in time.
    pub fn give_up(&mut self) -> Response {
        log::debug!(
            "backend of {} did not take the connection in time",
            self.name
        );
        self.unreachable
            .take()
            .unwrap_or_else(|| (self.error_response)(502, "nothing listens at the backend"))
    }

    /// Owes no answer and holds nothing unsent either way: closing it
    /// cuts nothing short.
    pub fn is_quiet(&self) -> bool {
        self.owed.is_empty()
            && !self.up_pending()
            && !self.down_pending()
            && self.held.is_empty()
            && self.up_head.is_empty()
            && self.down_head.is_empty()
            && !matches!(self.up, Up::Body(_))
            && !matches!(self.down, Down::Body(_) | Down::UntilClose)
            && !self.connecting()
    }

    /// Whether part of a request head has arrived and the rest is awaited:
    /// the engine's request timeout applies, as to any request.
    pub fn in_head(&self) -> bool {
        self.up == Up::Head && !self.up_head.is_empty()
    }

    /// Whether the backend's handshake is still under way.
    pub fn connecting(&self) -> bool {
        matches!(self.connect, Connect::Pending { .. })
    }

    /// The client's socket (`backend` false) or the backend's fired: it
    /// may be read; `ended`: its peer closed its end.
    pub fn fired(&mut self, backend: bool, ended: bool) {
        let side = usize::from(backend);
        self.maybe_readable[side] = true;
        self.ending[side] |= ended;
    }

    /// Either socket may have fired, and which and how is not known: both
    /// are read until a read finds nothing.
    pub fn fired_either(&mut self) {
        self.fired(false, true);
        self.fired(true, true);
    }

    /// Whether the client's socket must still be switched to report
    /// every change; it counts as switched from then on.
    pub fn take_client_unregistered(&mut self) -> bool {
        std::mem::take(&mut self.client_unregistered)
    }

    fn up_pending(&self) -> bool {
        self.up_sent < self.up_out.len()
    }

    fn down_pending(&self) -> bool {
        self.down_sent < self.down_out.len()
    }

    /// Whether the client's side may be read: the backend took everything
    /// before, and no request waits on an answer to go on.
    fn reads_client(&self) -> bool {
        !self.client_eof
            && !self.up_pending()
            && self.held.is_empty()
            && self.unrouted.is_none()
            && matches!(self.up, Up::Head | Up::Body(_) | Up::Raw)
    }

    /// Whether the backend's side may be read: the client took everything
    /// before, and dynport's last word is not next.
    fn reads_backend(&self) -> bool {
        !self.backend_eof && !self.down_pending() && !self.last_word_due()
    }

    fn last_word_due(&self) -> bool {
        self.last_word.is_some() && self.owed.is_empty()
    }

    /// One turn: moves what each side has for the other, as far as the
    /// other takes it. `scratch` is the worker's room for one read, `out`
    /// its room for an answer of dynport's.
    pub fn turn(
        &mut self,
        client: &mut TcpStream,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        router: Option<&dyn Router>,
    ) -> Turn {
        if router.is_none()
            && (self.connecting() || self.last_word_due() || self.unrouted.is_some())
        {
            return Turn::Worker;
        }
        if self.connecting() {
            match self.finish_connect() {
                Ok(true) => {}
                Ok(false) => return Turn::Wait,
                Err(answer) => return answer_now(out, &answer),
            }
        }
        let mut again = false;
        // The client's side first: what it sent before the backend was
        // connected waits in `held`.
        match self.flush_up() {
            Ok(()) => {}
            Err(_) => return Turn::Close,
        }
        if !self.up_pending() {
            match self.client_to_backend(client, scratch, out, router) {
                Ok(more) => again |= more,
                Err(()) => return Turn::Close,
            }
        }
        match self.flush_down(client) {
            Ok(()) => {}
            Err(_) => return Turn::Close,
        }
        if self.reads_backend() && self.maybe_readable[1] {
            match self.backend_to_client(client, scratch) {
                Ok(more) => again |= more,
                Err(()) => return Turn::Close,
            }
        }
        // Bytes held while an upgrade was awaited go on once it is answered.
        again |= !self.held.is_empty()
            && matches!(self.up, Up::Head | Up::Body(_) | Up::Raw)
            && !self.up_pending();
        // Both sockets report changes only: a side that may still hold
        // bytes (or its end) and may be read is read again before waiting.
        again |= self.reads_client() && self.maybe_readable[0];
        again |= self.reads_backend() && self.maybe_readable[1];
        if self.unrouted.is_some() || (router.is_none() && self.last_word_due()) {
            return Turn::Worker;
        }
        if self.last_word_due() && !self.down_pending() {
            let (status, bytes) = self.last_word.take().unwrap_or_default();
            out.clear();
            out.extend_from_slice(&bytes);
            return Turn::Answer(status);
        }
        if self.finished() {
            return Turn::Close;
        }
        if again { Turn::Again } else { Turn::Wait }
    }

    /// Whether both sides are done with each other.
    fn finished(&self) -> bool {
        if self.down_pending() {
            return false;
        }
        match self.up {
            // Upgraded: until both have closed (each close passed on).
            Up::Raw => self.client_eof && self.backend_eof,
            _ => {
                self.backend_eof
                    || (self.client_eof && self.owed.is_empty())
                    || (self.up == Up::Stopped && self.owed.is_empty() && self.last_word.is_none())
            }
        }
    }

    /// Learns how the handshake went: `Ok(true)` connected, `Ok(false)`
    /// still under way, `Err` the answer when no address took it.
    fn finish_connect(&mut self) -> Result<bool, Response> {
        let Connect::Pending { fallback } = self.connect else {
            return Ok(true);
        };
        let failed = match self.backend.take_error() {
            Ok(None) => match self.backend.peer_addr() {
                Ok(_) => {
                    self.connect = Connect::Open;
                    let _ = self.backend.set_nodelay(true);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => e,
            },
            Ok(Some(e)) | Err(e) => e,
        };
        log::debug!("backend of {} refused: {failed}", self.name);
        let Some(next) = fallback else {
            return Err(self.give_up());
        };
        match start(next, None) {
            Ok((backend, connect)) => {
                self.backend = backend;
                self.connect = connect;
                self.unregistered = true;
                // The new socket is not in the poller yet: the caller adds it.
                Ok(false)
            }
            Err(_) => Err(self.give_up()),
        }
    }

    /// Whether the backend socket is new to the poller (just opened, or
    /// replaced by the IPv6 fallback's) and must be added rather than
    /// re-armed; it counts as added from then on.
    pub fn take_unregistered(&mut self) -> bool {
        std::mem::take(&mut self.unregistered)
    }

    /// Writes what waits for the backend.
    fn flush_up(&mut self) -> io::Result<()> {
        let n = write_some(&mut self.backend, &self.up_out[self.up_sent..])?;
        self.up_sent += n;
        if self.up_sent >= self.up_out.len() {
            self.up_out = Vec::new();
            self.up_sent = 0;
        }
        Ok(())
    }

    /// Writes what waits for the client.
    fn flush_down(&mut self, client: &mut TcpStream) -> io::Result<()> {
        let n = write_some(client, &self.down_out[self.down_sent..])?;
        self.down_sent += n;
        if self.down_sent >= self.down_out.len() {
            self.down_out = Vec::new();
            self.down_sent = 0;
        }
        Ok(())
    }

    /// Reads the client and forwards what it sent. `Ok(true)` when more may
    /// be ready; `Err` when the connection cannot go on.
    fn client_to_backend(
        &mut self,
        client: &mut TcpStream,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        router: Option<&dyn Router>,
    ) -> Result<bool, ()> {
        out.clear();
        scratch.clear();
        if let (Some(head), Some(router)) = (self.unrouted.take(), router) {
            self.forward_head(&head, out, Some(router));
        }
        let mut full = false;
        let takes_input = matches!(self.up, Up::Head | Up::Body(_) | Up::Raw);
        if !self.held.is_empty() {
            if takes_input {
                scratch.append(&mut self.held);
                // Its room goes back: an idle tunnel holds no buffer.
                self.held = Vec::new();
            }
        } else if self.reads_client() && self.maybe_readable[0] {
            match crate::sys::read_into_spare(client, scratch, CHUNK) {
                Ok(0) => {
                    self.client_eof = true;
                    if self.up == Up::Raw {
                        let _ = self.backend.shutdown(Shutdown::Write);
                    }
                }
                Ok(n) => {
                    // A read short of the room asked for took all there
                    // was: the socket's interest, re-armed, says when more
                    // comes.
                    full = n == CHUNK;
                    self.maybe_readable[0] = full || self.ending[0];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.maybe_readable[0] = false;
                    self.ending[0] = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => full = true,
                Err(_) => return Err(()),
            }
        }
        if !scratch.is_empty() {
            let used = self.requests(scratch, out, router)?;
            if used < scratch.len() {
                self.held = scratch[used..].to_vec();
            }
        }
        if out.is_empty() {
            return Ok(full);
        }
        let written = write_some(&mut self.backend, out).map_err(drop)?;
        if written < out.len() {
            self.up_out = out[written..].to_vec();
            self.up_sent = 0;
        }
        Ok(full || (!self.held.is_empty() && !self.up_pending()))
    }

    /// Follows the client's requests through `input`, putting what goes to
    /// the backend in `out`; returns how much of `input` was used (the
    /// rest waits while the client's side is paused).
    fn requests(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        router: Option<&dyn Router>,
    ) -> Result<usize, ()> {
        let mut pos = 0;
        while pos < input.len() {
            match &mut self.up {
                Up::Raw => {
                    out.extend_from_slice(&input[pos..]);
                    return Ok(input.len());
                }
                Up::Body(body) => {
                    let (n, done) = body.advance(&input[pos..]).map_err(drop)?;
                    out.extend_from_slice(&input[pos..pos + n]);
                    pos += n;
                    if done {
                        self.up = if self.stop_after_body {
                            Up::Stopped
                        } else {
                            Up::Head
                        };
                    }
                }
                Up::Head => {
                    let before = self.up_head.len();
                    let take = (input.len() - pos).min(MAX_REQUEST_HEAD + 1 - before);
                    self.up_head.extend_from_slice(&input[pos..pos + take]);
                    let Some(end) = framing::head_end(&self.up_head, self.up_searched) else {
                        self.up_searched = self.up_head.len();
                        pos += take;
                        if self.up_head.len() > MAX_REQUEST_HEAD {
                            self.refuse_request(431, "request head too large (limit 16 KiB)");
                        }
                        continue;
                    };
                    // Only the head's own bytes are used; the rest is looked
                    // at again as what follows it.
                    pos += end - before;
                    let mut head = std::mem::take(&mut self.up_head);
                    head.truncate(end);
                    self.up_searched = 0;
                    self.forward_head(&head, out, router);
                    if self.unrouted.is_some() {
                        return Ok(pos);
                    }
                }
                Up::AwaitUpgrade | Up::Stopped => return Ok(pos),
            }
        }
        Ok(pos)
    }

    /// Routes a complete request head again, and forwards it rewritten when
    /// it goes to the same backend; otherwise dynport's answer is the last
    /// word.
    fn forward_head(&mut self, head: &[u8], out: &mut Vec<u8>, router: Option<&dyn Router>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return self.refuse_request(431, "request head too large (too many header lines)");
            }
            _ => return self.refuse_request(400, "malformed request"),
        }
        let Some(frame) = framing::headers(req.headers) else {
            return self.refuse_request(400, "conflicting or malformed framing headers");
        };
        if frame.transfer_encoding && !frame.chunked {
            return self.refuse_request(400, "a request's last transfer coding must be chunked");
        }
        let route = if self.same_route(&req) {
            None
        } else if let Some(router) = router {
            let request = super::parse::head_request(&req);
            Some(router.route(&request, self.listener))
        } else {
            // The router is not at hand here: a worker's turn asks it.
            self.unrouted = Some(head.to_vec());
            return;
        };
        match route {
            None => {}
            Some(Route::Forward(forward)) if forward.name == self.name => {}
            Some(Route::Answer(answer)) => {
                self.up = Up::Stopped;
                self.set_last_word(&answer);
                return;
            }
            _ => {
                self.up = Up::Stopped;
                let answer = (self.error_response)(421, MISDIRECTED);
                self.set_last_word(&answer);
                return;
            }
        }
        self.rewrite(&req, out);
        let http10 = req.version == Some(0);
        let method = req.method.unwrap_or("GET");
        self.owed.push_back(Owed {
            head: method.eq_ignore_ascii_case("HEAD"),
            upgrade: frame.upgrade,
        });
        let keeps_on = if http10 {
            frame.keep_alive && !frame.close
        } else {
            !frame.close
        };
        self.up = if frame.upgrade {
            Up::AwaitUpgrade
        } else if frame.chunked {
            Up::Body(Body::Chunked(Chunked::START))
        } else if let Some(n) = frame.content_length.filter(|&n| n > 0) {
            Up::Body(Body::Length(n))
        } else {
            Up::Head
        };
        if !keeps_on && self.up == Up::Head {
            self.up = Up::Stopped;
        } else if !keeps_on {
            // The body still passes; nothing after it does.
            self.stop_after_body = true;
        }
    }

    /// Whether a request surely goes where the first went: an origin-form
    /// target (one in absolute form names a host of its own), the same
    /// `Host`, and fewer than `max_hops` entries of this proxy in `Via`
    /// (more is the router's to answer: a loop).
    fn same_route(&self, req: &httparse::Request<'_, '_>) -> bool {
        if !req.path.is_some_and(|p| p.starts_with('/')) {
            return false;
        }
        let headers = &*req.headers;
        let mut hosts = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("host"));
        let same_host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.value.eq_ignore_ascii_case(&self.host),
            _ => false,
        };
        same_host && hops(headers, self.via) < self.max_hops
    }

    /// Writes the request head for the backend: as the client sent it, with
    /// `X-Forwarded-For` appended to, `X-Forwarded-Host`, `-Proto` and
    /// `-Port` set, and this proxy appended to `Via`.
    fn rewrite(&self, req: &httparse::Request<'_, '_>, out: &mut Vec<u8>) {
        let version = if req.version == Some(0) { "1.0" } else { "1.1" };
        out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.path.unwrap_or("/").as_bytes());
        out.extend_from_slice(b" HTTP/");
        out.extend_from_slice(version.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut forwarded_for: Vec<&[u8]> = Vec::new();
        let mut via: Vec<&[u8]> = Vec::new();
        let mut host: Option<&[u8]> = None;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for.push(h.value);
                continue;
            }
            if name.eq_ignore_ascii_case("via") {
                via.push(h.value);
                continue;
            }
            if name.eq_ignore_ascii_case("x-forwarded-host")
                || name.eq_ignore_ascii_case("x-forwarded-proto")
                || name.eq_ignore_ascii_case("x-forwarded-port")
            {
                continue;
            }
            if name.eq_ignore_ascii_case("host") && host.is_none() {
                host = Some(h.value);
            }
            header(out, name.as_bytes(), h.value);
        }
        let mut list = |name: &str, earlier: &[&[u8]], own: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            for value in earlier {
                out.extend_from_slice(value.trim_ascii());
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(own);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(ip) = &self.client_ip {
            list("X-Forwarded-For", &forwarded_for, ip.as_bytes());
        }
        list("Via", &via, format!("{version} {}", self.via).as_bytes());
        if let Some(host) = host {
            header(out, b"X-Forwarded-Host", host);
        }
        header(out, b"X-Forwarded-Proto", b"http");
        if let Some(port) = self.listener_port {
            header(out, b"X-Forwarded-Port", port.to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// dynport's answer to a request it will not forward; the client's side
    /// stops there.
    fn refuse_request(&mut self, status: u16, message: &str) {
        self.up = Up::Stopped;
        self.up_head = Vec::new();
        let answer = (self.error_response)(status, message);
        self.set_last_word(&answer);
    }

    fn set_last_word(&mut self, answer: &Response) {
        let mut bytes = Vec::new();
        let framing = Framing {
            close: true,
            keep_alive_10: false,
            head_only: false,
        };
        let status = write::encode(&mut bytes, answer, framing);
        self.last_word = Some((status, bytes));
    }

    /// Reads the backend and passes what it sent to the client.
    fn backend_to_client(
        &mut self,
        client: &mut TcpStream,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, ()> {
        scratch.clear();
        let n = match crate::sys::read_into_spare(&self.backend, scratch, CHUNK) {
            Ok(0) => {
                self.backend_eof = true;
                if self.down == Down::UntilClose {
                    self.down = Down::Head;
                    self.owed.pop_front();
                }
                if !self.owed.is_empty() && self.down == Down::Head && self.down_head.is_empty() {
                    // Closed with an answer owed and not begun: the client
                    // is told so, not left with an empty reply.
                    log::debug!("backend of {} closed without answering", self.name);
                    self.owed.clear();
                    self.up = Up::Stopped;
                    let answer = (self.error_response)(
                        502,
                        &format!("{} closed the connection without answering", self.name),
                    );
                    self.set_last_word(&answer);
                }
                if self.up == Up::Raw {
                    let _ = client.shutdown(Shutdown::Write);
                }
                return Ok(false);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.maybe_readable[1] = false;
                self.ending[1] = false;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(_) => return Err(()),
        };
        // As for the client: a short read took all there was, but for the
        // end when the backend closed.
        self.maybe_readable[1] = n == CHUNK || self.ending[1];
        let pass = self.answers(&scratch[..n])?;
        let written = write_some(client, &scratch[..pass]).map_err(drop)?;
        if written < pass {
            self.down_out = scratch[written..pass].to_vec();
            self.down_sent = 0;
        }
        Ok(n == CHUNK)
    }

    /// Follows the backend's answers through `input`; returns how much of
    /// it goes to the client: all of it, unless dynport's last word is due
    /// after an answer that ends inside it.
    fn answers(&mut self, input: &[u8]) -> Result<usize, ()> {
        let mut pos = 0;
        while pos < input.len() {
            if self.last_word_due() {
                return Ok(pos);
            }
            match &mut self.down {
                Down::Raw | Down::UntilClose => return Ok(input.len()),
                Down::Body(body) => {
                    let (n, done) = body.advance(&input[pos..]).map_err(drop)?;
                    pos += n;
                    if done {
                        self.answer_done();
                    }
                }
                Down::Head => {
                    if self.down_head.len() >= MAX_ANSWER_HEAD {
                        log::debug!("backend of {} sent an answer head too large", self.name);
                        return Err(());
                    }
                    let before = self.down_head.len();
                    let take = (input.len() - pos).min(MAX_ANSWER_HEAD - before);
                    self.down_head.extend_from_slice(&input[pos..pos + take]);
                    let Some(end) = framing::head_end(&self.down_head, self.down_searched) else {
                        self.down_searched = self.down_head.len();
                        pos += take;
                        continue;
                    };
                    pos += end - before;
                    let head = std::mem::take(&mut self.down_head);
                    self.down_searched = 0;
                    self.answer_head(&head[..end])?;
                }
            }
        }
        Ok(pos)
    }

    /// An answer's head has passed: what follows it.
    fn answer_head(&mut self, head: &[u8]) -> Result<(), ()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS * 2];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                log::debug!("backend of {} sent a malformed answer head", self.name);
                return Err(());
            }
        }
        let status = resp.code.unwrap_or(0);
        let Some(owed) = self.owed.front().copied() else {
            // An answer nobody asked for (a timeout notice, say): the
            // backend closes after it.
            self.down = Down::UntilClose;
            return Ok(());
        };
        if status == 101 && owed.upgrade {
            self.owed.pop_front();
            self.down = Down::Raw;
            self.up = Up::Raw;
            return Ok(());
        }
        if (100..200).contains(&status) {
            return Ok(());
        }
        if owed.upgrade && self.up == Up::AwaitUpgrade {
            // Not upgraded: the connection goes on as HTTP.
            self.up = Up::Head;
        }
        let frame = framing::headers(resp.headers).ok_or(())?;
        self.down = if owed.head || status == 204 || status == 304 {
            Down::Head
        } else if frame.chunked {
            Down::Body(Body::Chunked(Chunked::START))
        } else if let Some(n) = frame.content_length {
            if n == 0 {
                Down::Head
            } else {
                Down::Body(Body::Length(n))
            }
        } else {
            Down::UntilClose
        };
        if self.down == Down::Head {
            self.answer_done();
        }
        Ok(())
    }

    fn answer_done(&mut self) {
        self.down = Down::Head;
        self.owed.pop_front();
    }
}

/// What a request for another route, or for the API, is told on a
/// connection already bound to one.
pub(crate) const MISDIRECTED: &str =
    "this connection carries requests for another host; open a new connection for this one";

/// One turn of the tunnel of `conn`, by a worker (with the router) or by
/// the poller (without: it hands the connection to a worker when the
/// router must be asked or dynport must answer), and the deadline that
/// follows it: a request head has the request timeout, as on any
/// connection; nothing else on a tunnel has one. On [`Turn::Answer`],
/// `out` holds dynport's answer to write before closing.
pub(crate) fn drive(
    conn: &mut super::conn::Conn,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    router: Option<&dyn Router>,
    request_timeout: std::time::Duration,
    now: std::time::Instant,
) -> Turn {
    let (Some(tunnel), super::stream::Stream::Tcp(client)) =
        (conn.tunnel.as_deref_mut(), &mut conn.stream)
    else {
        return Turn::Close;
    };
    if now >= conn.deadline {
        if router.is_none() {
            return Turn::Worker;
        }
        if !tunnel.connecting() {
            log::debug!("request head not complete in time on a tunnel: closing");
            return Turn::Close;
        }
        return answer_now(out, &tunnel.give_up());
    }
    let turn = tunnel.turn(client, scratch, out, router);
    if matches!(turn, Turn::Wait | Turn::Again) {
        if tunnel.in_head() {
            let started = *conn.request_started.get_or_insert(now);
            conn.deadline = started + request_timeout;
        } else if !tunnel.connecting() {
            conn.request_started = None;
            conn.deadline = now + super::conn::NO_DEADLINE;
        }
    }
    turn
}

/// How many entries of the `Via` headers were received by `via` (the
/// second word of an entry: `1.1 dynport`).
pub(crate) fn hops(headers: &[httparse::Header<'_>], via: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("via"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .filter(|entry| {
            let mut words = entry
                .split(u8::is_ascii_whitespace)
                .filter(|w| !w.is_empty());
            words.next();
            words.next() == Some(via.as_bytes())
        })
        .count()
}

/// Starts connecting to `addr`; refused at once, to `fallback` instead.
fn start(addr: SocketAddr, fallback: Option<SocketAddr>) -> io::Result<(TcpStream, Connect)> {
    match crate::sys::connect_nonblocking(addr) {
        Ok((stream, true)) => {
            let _ = stream.set_nodelay(true);
            Ok((stream, Connect::Open))
        }
        Ok((stream, false)) => Ok((stream, Connect::Pending { fallback })),
        Err(e) => match fallback {
            Some(next) if e.raw_os_error() == Some(libc::ECONNREFUSED) => start(next, None),
            _ => Err(e),
        },
    }
}

/// Puts `answer` in `out` to be written before closing.
fn answer_now(out: &mut Vec<u8>, answer: &Response) -> Turn {
    out.clear();
    let framing = Framing {
        close: true,
        keep_alive_10: false,
        head_only: false,
    };
    Turn::Answer(write::encode(out, answer, framing))
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
