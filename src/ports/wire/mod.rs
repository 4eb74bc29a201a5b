//! The one wire contract between dynport's server and its client: the JSON
//! bodies the API takes, the answers the client reads, and the limits both
//! sides check, so that the two cannot drift apart.
#![forbid(unsafe_code)]

use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::error::Category;
use std::collections::HashSet;
use std::fmt::{self, Display};
use std::ops::RangeInclusive;

/// The limits of a lease, which `crate::ports::lease` sets.
pub use crate::ports::lease::{COUNT, MAX_OWNER_CHARS, MAX_TTL_SECS, TTL_SECS};
pub use view::{LeaseView, Time};

mod view;
/// The longest pool name a request may give, in characters.
pub const MAX_POOL_CHARS: usize = 64;

/// A request body: every field optional (the empty body is the default),
/// checked against the limits once parsed.
pub trait Body: DeserializeOwned + Default {
    /// Whether the values are allowed; the error names the field at fault.
    fn check(&self) -> Result<(), String>;
}

/// `POST /api/v1/ports/lease`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// One exact port (a reservation); `count` must then be 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The process whose exit ends the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `both` (the default), `tcp` or `udp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::ports::lease::Protocol>,
    /// The name of its first port ([`crate::ports::names::parse_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Body for LeaseBody {
    fn check(&self) -> Result<(), String> {
        if_some(self.count, |n| within("count", n, COUNT))?;
        if_some(self.port, |p| within("port", p, 1..=u16::MAX))?;
        if self.port.is_some() && self.count.is_some_and(|c| c != 1) {
            return Err("count: must be 1 when port asks for one exact port".to_string());
        }
        if_some(self.pool.as_deref(), |p| length("pool", p, MAX_POOL_CHARS))?;
        if_some(self.ttl_secs, |t| within("ttl_secs", t, TTL_SECS))?;
        if_some(self.owner.as_deref(), |o| owner("owner", o))?;
        if_some(self.pid, |p| within("pid", p, 1..=u32::MAX))?;
        if_some(self.name.as_deref(), |n| {
            crate::ports::names::parse_name(n).map(drop)
        })
    }
}

/// `PUT /api/v1/names/NAME`: the port the alias names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AliasBody {
    pub port: Option<u16>,
}

impl Body for AliasBody {
    fn check(&self) -> Result<(), String> {
        match self.port {
            Some(p) => within("port", p, 1..=u16::MAX),
            None => Err("port: required: the port the name stands for, 1 to 65535".to_string()),
        }
    }
}

/// A name, as `GET /api/v1/names` lists it and `PUT` and `DELETE
/// /api/v1/names/NAME` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameView {
    pub name: String,
    /// The port it names, or named last.
    pub port: u16,
    /// Its owner; `null` for remote callers.
    pub uid: Option<u32>,
    /// The live lease it names; `null` for an alias or a retained name.
    pub lease_id: Option<String>,
    pub alias: bool,
    pub live: bool,
    /// `http://NAME.DOMAIN[:PORT]/`.
    pub url: String,
    /// Until when a retained name stays its owner's (RFC 3339); `null`
    /// while live.
    pub retained_until: Option<String>,
}

/// The answer to `GET /api/v1/names`: live and retained names, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamesAnswer {
    pub names: Vec<NameView>,
    pub timestamp: String,
}

/// `POST /api/v1/ports/leases/ID/renew`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenewBody {
    /// The new life, from now; without it, the life the lease was last given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

impl Body for RenewBody {
    fn check(&self) -> Result<(), String> {
        if_some(self.ttl_secs, |t| within("ttl_secs", t, TTL_SECS))
    }
}

/// `POST /api/v1/server/port/change`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangePortBody {
    /// The port to move to; without it, the next free one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Body for ChangePortBody {
    fn check(&self) -> Result<(), String> {
        if_some(self.port, |p| within("port", p, 1..=u16::MAX))
    }
}

/// The `status` of every answer that is not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
}

/// The answer to a grant (201), a look-up or a renewal (200). The server
/// writes its view of a lease as `L`; the client reads a `crate::ports::lease::Lease`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAnswer<L> {
    pub status: Status,
    pub lease: L,
    pub timestamp: String,
}

/// The answer to `GET /api/v1/ports/leases`: the live leases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasesAnswer<L> {
    pub leases: Vec<L>,
    pub timestamp: String,
}

/// The answer to `DELETE /api/v1/ports/leases/ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedAnswer<L> {
    pub status: Status,
    pub released: Vec<u16>,
    pub lease: L,
    pub timestamp: String,
}

/// Reads and checks a request body: empty (or only white space) is the
/// default; otherwise a JSON object whose every key is a field of `T`,
/// given once. The error is a message naming the field at fault, or `body`.
pub fn parse<T: Body>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let Members(members) = serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => "body: must be a JSON object".to_string(),
        _ => format!("body: not valid JSON: {e}"),
    })?;
    if let Some(key) = repeated(&members) {
        return Err(format!("{key}: given more than once; give each field once"));
    }
    let object = members.iter().cloned().collect();
    let parsed: T =
        serde_json::from_value(Value::Object(object)).map_err(|e| blame::<T>(&members, e))?;
    parsed.check()?;
    Ok(parsed)
}

/// The first key that appears twice.
fn repeated(members: &[(String, Value)]) -> Option<&str> {
    let mut seen = HashSet::new();
    members
        .iter()
        .map(|(key, _)| key.as_str())
        .find(|key| !seen.insert(*key))
}

/// Names the member that `T` refused: serde's own error says what is wrong
/// (an unknown field, a wrong type) but not where.
fn blame<T: DeserializeOwned>(members: &[(String, Value)], whole: serde_json::Error) -> String {
    members
        .iter()
        .find_map(|(key, value)| {
            let alone = serde_json::Map::from_iter([(key.clone(), value.clone())]);
            let e = serde_json::from_value::<T>(Value::Object(alone)).err()?;
            Some(format!("{key}: {e}"))
        })
        .unwrap_or_else(|| format!("body: {whole}"))
}

/// A JSON object's members in the order sent, repeated keys kept. Read
/// first because serde_derive alone would take a JSON array as a struct's
/// fields in order (`[1]` as `count: 1`), and a `serde_json::Map` keeps only
/// the last value of a repeated key.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        d.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Members(members))
    }
}

fn if_some<T>(value: Option<T>, check: impl FnOnce(T) -> Result<(), String>) -> Result<(), String> {
    value.map_or(Ok(()), check)
}

/// Checks a whole number against its bounds; the error names `what`, a
/// body field or a command-line flag.
pub fn within<T: PartialOrd + Display>(
    what: &str,
    n: T,
    range: RangeInclusive<T>,
) -> Result<(), String> {
    if range.contains(&n) {
        return Ok(());
    }
    let (min, max) = range.into_inner();
    Err(format!(
        "{what}: must be an integer from {min} to {max}, got {n}"
    ))
}

/// Checks that a text is 1 to `max` characters long.
pub fn length(what: &str, text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if (1..=max).contains(&n) {
        return Ok(());
    }
    Err(format!(
        "{what}: must be 1 to {max} characters long, got {n}"
    ))
}

/// Checks an owner by the rule of [`crate::ports::lease::owner_problem`]; the
/// error names `what`.
pub fn owner(what: &str, text: &str) -> Result<(), String> {
    match crate::ports::lease::owner_problem(text) {
        Some(problem) => Err(format!("{what}: {problem}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
