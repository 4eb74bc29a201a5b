//! A name and its validity: what a name may be, and a name as the table,
//! the state file and the journal keep it.

use crate::ports::principal::Principal;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest label of a name.
pub const MAX_LABEL_CHARS: usize = 63;

/// A name as the table keeps it, and as the state file and the journal
/// write it under its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// Its owner: a local uid, `None` for remote callers.
    pub uid: Option<u32>,
    /// The port it names now, or named last.
    pub port: u16,
    /// Whether it was given by `PUT /api/v1/names/NAME` rather than a lease.
    #[serde(default)]
    pub alias: bool,
    /// The live lease it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// When its last lease ended or its alias was removed: set, it is
    /// retained for its owner; unset, it is live.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_time"
    )]
    pub ended_at: Option<SystemTime>,
}

impl Name {
    /// Whether it names a port now.
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }

    pub(super) fn owner(&self) -> Principal {
        Principal::from_uid(self.uid)
    }
}

/// `name` lowercased, when it is one or more DNS labels joined by dots,
/// each 1 to 63 of `a-z`, `0-9` and `-`, not starting nor ending with `-`,
/// 1 to 200 characters in all; else what is wrong, naming `name`.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let n = raw.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&n) {
        return Err(format!(
            "name: must be 1 to {MAX_NAME_CHARS} characters long, got {n}"
        ));
    }
    let name = raw.to_ascii_lowercase();
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "name: {:?} is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
            c
        ));
    }
    for label in name.split('.') {
        label_problem(label)?;
    }
    Ok(name)
}

fn label_problem(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("name: has an empty label (two dots, or a dot at an end)".to_string());
    }
    if label.len() > MAX_LABEL_CHARS {
        return Err(format!(
            "name: label {label} is {} characters long; a label has at most {MAX_LABEL_CHARS}",
            label.len()
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("name: label {label} starts or ends with -"));
    }
    Ok(())
}

/// Serde for an optional time written as RFC 3339.
mod optional_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::util::time::rfc3339_serde::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            crate::util::time::rfc3339_serde::from_text(&t)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
        })
        .transpose()
    }
}
