//! The event stream's hub: every change dynport makes, as a server-sent
//! event with an id, kept (the last [`KEPT`]) so that a client that
//! reconnects with `Last-Event-ID` misses nothing, and pushed to every
//! open stream. A stream is an engine feed ([`crate::http::Feed`]): it
//! holds no thread, and nothing wakes while nothing happens.
//!
//! Ids grow by one per event and start, for each run of the server, at the
//! microseconds of its start since the epoch, so a later run's ids are
//! larger: an id older than the oldest kept (of an earlier run too) gets a
//! `reset` first; one larger than the last sent was never sent (400).

use crate::http::Feed;
use crate::ports::PortState;
use crate::ports::lease::{EndReason, Lease};
use crate::ports::principal::Principal;
use crate::ports::wire::{LeaseView, NameView};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How many of the last events are kept for clients that reconnect.
pub const KEPT: usize = 1024;
/// The most bytes the kept events may take: a scan that changed thousands
/// of ports makes one large event, and 1,024 of them must not grow the
/// server without end. Past it the oldest go first.
pub const KEPT_BYTES: usize = 1024 * 1024;
/// The most streams one principal may hold open; operators have no limit.
pub const STREAMS_PER_PRINCIPAL: usize = 8;
/// A comment goes out on a stream that sent nothing for this long, so that
/// proxies and load balancers do not close it as idle.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_COMMENT: &[u8] = b": keepalive\n\n";
/// What a new stream starts with: how long a browser waits to reconnect.
const RETRY: &[u8] = b"retry: 1000\n\n";

/// An event to publish: its kind and its data, JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub data: String,
}

impl Event {
    /// `lease`: a lease granted or renewed, as the API shows it.
    pub fn lease(lease: &Lease) -> Event {
        Event::of("lease", &LeaseView::from(lease))
    }

    /// `release` or `expire`: a lease that ended, and why.
    pub fn ended(lease: &Lease, reason: EndReason) -> Event {
        #[derive(Serialize)]
        struct Ended<'a> {
            id: &'a str,
            ports: &'a [u16],
            owner: Option<&'a str>,
            uid: Option<u32>,
            name: Option<&'a str>,
            reason: &'static str,
        }
        let (kind, reason) = match reason {
            EndReason::Released => ("release", "released"),
            EndReason::Expired => ("expire", "ttl"),
            EndReason::OwnerExited => ("expire", "owner_exited"),
        };
        let ended = Ended {
            id: &lease.id,
            ports: &lease.ports,
            owner: lease.owner.as_deref(),
            uid: lease.uid,
            name: lease.name.as_deref(),
            reason,
        };
        Event::of(kind, &ended)
    }

    /// `port`: the server's own port moved.
    pub fn port(from: u16, to: u16) -> Event {
        Event {
            kind: "port",
            data: format!("{{\"from\":{from},\"to\":{to}}}"),
        }
    }

    /// `name`: a name as `GET /api/v1/names` shows it, or one forgotten.
    pub fn name(view: Option<&NameView>, name: &str) -> Event {
        #[derive(Serialize)]
        struct Gone<'a> {
            name: &'a str,
            gone: bool,
        }
        match view {
            Some(view) => Event::of("name", view),
            None => Event::of("name", &Gone { name, gone: true }),
        }
    }

    /// `scan`: the ports whose state a rescan changed.
    pub fn scan(changes: &[(u16, Option<PortState>, Option<PortState>)]) -> Event {
        #[derive(Serialize)]
        struct Change {
            port: u16,
            from: &'static str,
            to: &'static str,
        }
        #[derive(Serialize)]
        struct Scan {
            changes: Vec<Change>,
        }
        let state = |s: Option<PortState>| s.map_or("free", PortState::as_str);
        let changes = (changes.iter())
            .map(|&(port, from, to)| Change {
                port,
                from: state(from),
                to: state(to),
            })
            .collect();
        Event::of("scan", &Scan { changes })
    }

    fn of(kind: &'static str, data: &impl Serialize) -> Event {
        Event {
            kind,
            // Plain fields of a lease or a name always serialise.
            data: serde_json::to_string(data).unwrap_or_default(),
        }
    }
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The principal holds [`STREAMS_PER_PRINCIPAL`] open already.
    TooMany,
    /// `Last-Event-ID` names an id no event had: larger than the last.
    UnknownId { last: Option<u64> },
}

pub struct Events {
    hub: Mutex<Hub>,
}

struct Hub {
    /// Whether a stream was ever opened in this run: until one is, no
    /// client can hold an id of this run to resume after, so no event is
    /// kept (a server nobody watches holds none of them).
    watched: bool,
    /// The id of the next event.
    next: u64,
    /// The first id of this run.
    first: u64,
    kept: VecDeque<Kept>,
    kept_bytes: usize,
    streams: Vec<Stream>,
}

struct Kept {
    id: u64,
    /// The event as it goes out: `id`, `event` and `data` lines.
    bytes: Vec<u8>,
}

struct Stream {
    feed: Feed,
    principal: Principal,
    /// An operator's stream, not counted.
    operator: bool,
}

impl Events {
    /// A hub whose first id is `started`'s microseconds since the epoch.
    pub fn new(started: SystemTime) -> Events {
        let first = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .max(1);
        Events {
            hub: Mutex::new(Hub {
                watched: false,
                next: first,
                first,
                kept: VecDeque::new(),
                kept_bytes: 0,
                streams: Vec::new(),
            }),
        }
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the event `kind` with `data` (JSON) to every open stream and
    /// keeps it.
    pub fn publish(&self, kind: &str, data: &str) {
        let mut hub = self.hub();
        let id = hub.next;
        hub.next += 1;
        let mut bytes = Vec::with_capacity(kind.len() + data.len() + 32);
        bytes.extend_from_slice(b"id: ");
        crate::http::push_number(&mut bytes, id);
        bytes.extend_from_slice(b"\nevent: ");
        bytes.extend_from_slice(kind.as_bytes());
        bytes.extend_from_slice(b"\ndata: ");
        // JSON from serde_json has no raw line break; one in a string is
        // written `\n`. A line break here would end the data line.
        bytes.extend(data.bytes().filter(|&b| b != b'\n' && b != b'\r'));
        bytes.extend_from_slice(b"\n\n");
        hub.streams.retain(|s| s.feed.push(&bytes));
        if !hub.watched {
            return;
        }
        hub.kept_bytes += bytes.len();
        hub.kept.push_back(Kept { id, bytes });
        while hub.kept.len() > KEPT || (hub.kept_bytes > KEPT_BYTES && hub.kept.len() > 1) {
            if let Some(old) = hub.kept.pop_front() {
                hub.kept_bytes -= old.bytes.len();
            }
        }
    }

    /// Opens a stream for `principal`, replaying the kept events after
    /// `last` (the client's `Last-Event-ID`): its feed and its first
    /// bytes.
    pub fn open(
        &self,
        principal: Principal,
        operator: bool,
        last: Option<u64>,
    ) -> Result<(Feed, Vec<u8>), Refused> {
        let mut hub = self.hub();
        hub.watched = true;
        hub.streams.retain(|s| s.feed.is_open());
        if !operator {
            let open = (hub.streams.iter())
                .filter(|s| !s.operator && s.principal == principal)
                .count();
            if open >= STREAMS_PER_PRINCIPAL {
                return Err(Refused::TooMany);
            }
        }
        let sent = hub.next - 1;
        if let Some(last) = last
            && last > sent
        {
            let last = (sent >= hub.first).then_some(sent);
            return Err(Refused::UnknownId { last });
        }
        let mut first = RETRY.to_vec();
        if let Some(last) = last {
            let oldest = hub.kept.front().map_or(hub.next, |k| k.id);
            // Missed events that are no longer kept: the client must
            // reload what it shows.
            if last + 1 < oldest {
                first.extend_from_slice(b"event: reset\ndata: {\"oldest\":");
                crate::http::push_number(&mut first, oldest);
                first.extend_from_slice(b"}\n\n");
            }
            for kept in hub.kept.iter().filter(|k| k.id > last) {
                first.extend_from_slice(&kept.bytes);
            }
        }
        let feed = Feed::with_keepalive(KEEPALIVE, KEEPALIVE_COMMENT);
        hub.streams.push(Stream {
            feed: feed.clone(),
            principal,
            operator,
        });
        Ok((feed, first))
    }

    /// Ends every open stream once what was pushed to it is written: the
    /// server's port moved, and clients reconnect to the new one.
    pub fn close_all(&self) {
        let mut hub = self.hub();
        for stream in hub.streams.drain(..) {
            stream.feed.close();
        }
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        let mut hub = self.hub();
        hub.streams.retain(|s| s.feed.is_open());
        hub.streams.len()
    }
}

impl super::App {
    /// Tells the event stream of `events`, in order.
    pub(super) fn publish(&self, events: &[Event]) {
        for event in events {
            self.events.publish(event.kind, &event.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub some client watched already, so that it keeps events.
    fn events() -> Events {
        let events = Events::new(SystemTime::UNIX_EPOCH + Duration::from_micros(1_000));
        events.hub().watched = true;
        events
    }

    #[test]
    fn a_hub_nobody_ever_watched_keeps_nothing() {
        let events = Events::new(SystemTime::UNIX_EPOCH + Duration::from_micros(1_000));
        events.publish("lease", r#"{"id":"a"}"#);
        assert!(events.hub().kept.is_empty());
        // An id of an earlier run, older than the event not kept: reset.
        let (_, first) = events.open(Principal::User(1), false, Some(999)).unwrap();
        assert_eq!(
            text(&first),
            "retry: 1000\n\nevent: reset\ndata: {\"oldest\":1001}\n\n"
        );
        events.publish("release", r#"{"id":"a"}"#);
        assert_eq!(events.hub().kept.len(), 1);
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_reconnecting_client_gets_what_it_missed_and_nothing_twice() {
        let events = events();
        events.publish("lease", r#"{"id":"a"}"#);
        events.publish("release", r#"{"id":"a"}"#);
        let (_, first) = events.open(Principal::User(1), false, Some(1_000)).unwrap();
        assert_eq!(
            text(&first),
            "retry: 1000\n\nid: 1001\nevent: release\ndata: {\"id\":\"a\"}\n\n"
        );
        let (_, fresh) = events.open(Principal::User(1), false, None).unwrap();
        assert_eq!(text(&fresh), "retry: 1000\n\n");
        let (_, none) = events.open(Principal::User(1), false, Some(1_001)).unwrap();
        assert_eq!(text(&none), "retry: 1000\n\n");
    }

    #[test]
    fn an_id_older_than_those_kept_starts_with_a_reset_and_a_future_one_is_refused() {
        let events = events();
        for i in 0..KEPT + 10 {
            events.publish("lease", &format!("{{\"n\":{i}}}"));
        }
        let (_, first) = events.open(Principal::User(1), false, Some(1_000)).unwrap();
        let first = text(&first);
        assert!(
            first.starts_with("retry: 1000\n\nevent: reset\ndata: {\"oldest\":1010}\n\nid: 1010\n"),
            "{}",
            &first[..80]
        );
        assert_eq!(first.matches("event: lease").count(), KEPT);
        // An id of an earlier run is older than any kept: a reset too.
        let (_, earlier) = events.open(Principal::User(1), false, Some(5)).unwrap();
        assert!(text(&earlier).contains("event: reset"));
        let last = 1_000 + KEPT as u64 + 9;
        assert!(events.open(Principal::User(1), false, Some(last)).is_ok());
        assert_eq!(
            events.open(Principal::User(1), false, Some(last + 1)).err(),
            Some(Refused::UnknownId { last: Some(last) })
        );
    }

    #[test]
    fn large_events_are_kept_within_the_byte_bound() {
        let events = events();
        let big = format!("{{\"x\":\"{}\"}}", "y".repeat(100_000));
        for _ in 0..30 {
            events.publish("scan", &big);
        }
        let hub = events.hub();
        assert!(hub.kept_bytes <= KEPT_BYTES, "{}", hub.kept_bytes);
        assert_eq!(hub.kept.len(), KEPT_BYTES / 100_050);
    }

    #[test]
    fn each_principal_holds_at_most_eight_streams_and_operators_any() {
        let events = events();
        let mut held = Vec::new();
        for _ in 0..STREAMS_PER_PRINCIPAL {
            held.push(events.open(Principal::User(1000), false, None).unwrap().0);
        }
        assert_eq!(
            events.open(Principal::User(1000), false, None).err(),
            Some(Refused::TooMany)
        );
        assert!(events.open(Principal::User(1001), false, None).is_ok());
        for _ in 0..20 {
            held.push(events.open(Principal::User(0), true, None).unwrap().0);
        }
        // A stream whose client left no longer counts.
        held[0].close();
        assert!(events.open(Principal::User(1000), false, None).is_ok());
    }

    #[test]
    fn a_published_event_reaches_every_open_stream() {
        let events = events();
        let (a, _) = events.open(Principal::User(1), false, None).unwrap();
        let (b, _) = events.open(Principal::User(2), false, None).unwrap();
        events.publish("port", r#"{"from":3000,"to":3001}"#);
        for feed in [a, b] {
            let mut out = Vec::new();
            feed.take(&mut out);
            assert_eq!(
                text(&out),
                "id: 1000\nevent: port\ndata: {\"from\":3000,\"to\":3001}\n\n"
            );
        }
        events.close_all();
        assert_eq!(events.open_streams(), 0);
    }
}
