//! How the API shows a lease: the one view of it, for the answers of the
//! lease endpoints and for the `lease` events of the event stream alike.

use crate::ports::lease::{Lease, Protocol};
use crate::util::time::Rfc3339;
use serde::Serialize;
use std::time::SystemTime;

/// A lease as the API shows it.
#[derive(Serialize)]
pub struct LeaseView<'a> {
    id: &'a str,
    ports: &'a [u16],
    pool: &'a str,
    owner: Option<&'a str>,
    uid: Option<u32>,
    protocol: Protocol,
    pid: Option<u32>,
    created_at: Time,
    expires_at: Time,
    ttl_secs: u64,
    name: Option<&'a str>,
}

/// A time written as RFC 3339 ([`Rfc3339`]) straight into the answer,
/// without a string of its own.
pub struct Time(pub SystemTime);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match Rfc3339::of(self.0) {
            Rfc3339::Stamp(stamp) => s.serialize_str(stamp.as_str()),
            other => s.collect_str(&other),
        }
    }
}

impl<'a> From<&'a Lease> for LeaseView<'a> {
    fn from(l: &'a Lease) -> LeaseView<'a> {
        LeaseView {
            id: &l.id,
            ports: &l.ports,
            pool: &l.pool,
            owner: l.owner.as_deref(),
            uid: l.uid,
            protocol: l.protocol,
            pid: l.pid,
            created_at: Time(l.created_at),
            expires_at: Time(l.expires_at),
            ttl_secs: l.ttl_secs,
            name: l.name.as_deref(),
        }
    }
}
