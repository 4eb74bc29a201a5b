//! A large state file read on two cores. Reading it is most of a start
//! with many leases (20,000 leases: an 8.7 MiB file), and its `leases` map
//! is most of the file, so the map is cut in two at an entry boundary: one
//! thread reads the file without the second half of the map, another reads
//! that half as a map of its own, and the two maps are joined.
//!
//! The cut is found where dynport's own writer puts it (serde_json's pretty
//! layout: top-level keys indented by two spaces, the map's entries by
//! four), and is then proven by a scan of the whole file's structure,
//! beside the two reads: the `{` opening the map is a token at depth 1
//! right after the top-level key `"leases"`, the cut is a comma between two
//! of its entries, and the `}` closing it brings the depth back to 1. A file
//! laid out otherwise, or any doubt, is read whole as before.

use memchr::{memchr2, memchr3, memmem};

/// Files smaller than this are read whole: the thread costs more.
pub const SPLIT_FROM: usize = 1 << 20;

/// Where the `leases` map was cut: the byte offsets of its `{`, of the
/// comma cut at, and of its `}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    open: usize,
    comma: usize,
    close: usize,
}

impl Cut {
    /// The cut of `bytes` as dynport lays the file out, near the middle of
    /// its `leases` map; `None` when it is laid out otherwise.
    pub fn find(bytes: &[u8]) -> Option<Cut> {
        const KEY: &[u8] = b"\n  \"leases\": {";
        let open = memmem::find(bytes, KEY)? + KEY.len() - 1;
        let close = open + memmem::find(&bytes[open..], b"\n  }")? + 3;
        let middle = open + (close - open) / 2;
        let entry = memmem::find(&bytes[middle..close], b"\n    },\n    \"")?;
        let comma = middle + entry + 6;
        Some(Cut { open, comma, close })
    }

    /// The file without the entries after the cut: every other field, and
    /// the first half of the map.
    pub fn first(&self, bytes: &[u8]) -> Vec<u8> {
        let mut first = Vec::with_capacity(self.comma + bytes.len() - self.close);
        first.extend_from_slice(&bytes[..self.comma]);
        first.extend_from_slice(&bytes[self.close..]);
        first
    }

    /// The entries after the cut, as a map.
    pub fn second(&self, bytes: &[u8]) -> Vec<u8> {
        let mut second = Vec::with_capacity(self.close - self.comma + 1);
        second.push(b'{');
        second.extend_from_slice(&bytes[self.comma + 1..=self.close]);
        second
    }

    /// Whether the cut is where it was taken to be in the structure of
    /// `bytes`, scanned token by token: strings skipped whole (escapes
    /// included), braces counted.
    pub fn holds_in(&self, bytes: &[u8]) -> bool {
        let (mut at, mut depth) = (0usize, 0usize);
        let mut seen = 0;
        while let Some(found) = memchr3(b'"', b'{', b'}', &bytes[at..]) {
            let i = at + found;
            match bytes[i] {
                b'"' => match string_end(bytes, i + 1) {
                    Some(end) => at = end + 1,
                    None => return false,
                },
                b'{' => {
                    if i == self.open {
                        seen += usize::from(depth == 1);
                    }
                    depth += 1;
                    at = i + 1;
                }
                _ => {
                    let Some(outer) = depth.checked_sub(1) else {
                        return false;
                    };
                    if i + 1 == self.comma {
                        seen += usize::from(outer == 2);
                    }
                    if i == self.close {
                        seen += usize::from(outer == 1);
                    }
                    depth = outer;
                    at = i + 1;
                }
            }
        }
        seen == 3 && depth == 0
    }
}

/// The offset of the `"` ending the string whose text starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[i] == b'"' {
            return Some(i);
        }
        from = i + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn file(leases: usize) -> Vec<u8> {
        let leases: serde_json::Map<String, Value> = (0..leases)
            .map(|i| {
                let id = format!("{i:016x}");
                let lease =
                    json!({"id": id, "owner": "a \"quoted\" {brace} \\ owner", "ports": [i]});
                (id, lease)
            })
            .collect();
        let state = json!({"version": 1, "ports": {"3000": {"state": "in_use"}}, "leases": leases, "cursors": {}});
        serde_json::to_vec_pretty(&state).unwrap()
    }

    #[test]
    fn the_two_halves_hold_every_field_and_every_lease() {
        let bytes = file(9);
        let cut = Cut::find(&bytes).expect("dynport's layout");
        assert!(cut.holds_in(&bytes));
        let mut first: Value = serde_json::from_slice(&cut.first(&bytes)).unwrap();
        let second: serde_json::Map<String, Value> =
            serde_json::from_slice(&cut.second(&bytes)).unwrap();
        assert!(!second.is_empty());
        first["leases"].as_object_mut().unwrap().extend(second);
        let whole: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(first, whole);
    }

    #[test]
    fn a_cut_that_is_not_in_the_structure_does_not_hold() {
        // The same lines inside a string, and one level too deep.
        let inside = br#"{"x": "
  \"leases\": {
    },
    \"a\": 1
  }", "leases": {}}"#;
        assert!(Cut::find(inside).is_none_or(|cut| !cut.holds_in(inside)));
        let entries: Vec<String> = (0..6).map(|i| format!("    \"{i}\": {{\n    }}")).collect();
        let deep = format!(
            "{{\"ports\": {{\n  \"leases\": {{\n{}\n  }}\n}}, \"leases\": {{}}}}",
            entries.join(",\n")
        );
        let deep = deep.as_bytes();
        assert!(serde_json::from_slice::<Value>(deep).is_ok());
        let cut = Cut::find(deep).expect("the layout is found");
        assert!(!cut.holds_in(deep));
    }

    #[test]
    fn a_small_or_foreign_file_has_no_cut() {
        assert_eq!(Cut::find(br#"{"leases": {"a": {}, "b": {}}}"#), None);
        assert_eq!(Cut::find(&file(1)), None);
    }
}
