//! `GET /api/v1/events` and `dynport watch` through the real binary: every
//! kind of event with the data agreed for it, resuming with
//! `Last-Event-ID` (and `reset` past the 1,024 events kept), a bad id, the
//! cap of 8 streams a user, and `dynport watch` following the server
//! across a port change.

mod cap;
mod kinds;
mod resume;
mod support;
mod watch;
