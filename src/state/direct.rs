//! A starting server's read of the state file straight from its text, for
//! the form dynport writes: serde_json's generic path spends most of a
//! start with 20,000 leases on the leases (8,000 instructions each) and on
//! checking the `ports` map it then drops.
//!
//! It reads a subset of JSON and gives what serde would, or nothing: a
//! string with an escape, a number that is not a plain integer, a repeated
//! or missing field, a value serde would refuse, anything unexpected, and
//! the caller reads the file with serde instead, errors and all. The
//! `state_file` fuzz target checks that whatever it reads, serde reads the
//! same.
#![forbid(unsafe_code)]

use super::{Lean, StateFile};
use crate::ports::lease::{Lease, Protocol};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Deeper values than this are left to serde.
const MAX_DEPTH: usize = 32;

/// Each byte of a word: `ONES * b` is `b` in all eight.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGH_BITS: u64 = ONES * 0x80;

/// The length of the string that `text` starts with up to its closing
/// quote, or `None` if an escape or a control character comes first (or
/// no quote at all). Eight bytes at a time: most strings here are ids and
/// times of 16 to 20 bytes, and every byte of the file is in one.
fn plain_len(text: &[u8]) -> Option<usize> {
    let mut words = text.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // The high bit of each byte that is `"` or `\`, or below 0x20;
        // exact for the first such byte, which is all that is read.
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let found = found & HIGH_BITS;
        if found != 0 {
            let first = at + (found.trailing_zeros() / 8) as usize;
            return (text[first] == b'"').then_some(first);
        }
        at += 8;
    }
    let tail = words.remainder();
    let first = at
        + tail
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (text[first] == b'"').then_some(first)
}

/// The state file of `text` without its `ports` map (as
/// [`StateFile::parse_for_start`] gives it), or `None` for serde to read.
pub fn parse_for_start(text: &str) -> Option<StateFile> {
    let mut c = Cursor {
        src: text,
        text: text.as_bytes(),
        at: 0,
    };
    let mut fields = Fields::default();
    c.ws();
    c.eat(b'{')?;
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "version" => fields.version = Some(seen.once(0, c.serde()?)?),
            "updated_at" => fields.updated_at = Some(seen.once(1, c.serde()?)?),
            "port_range" => fields.port_range = Some(seen.once(2, c.serde()?)?),
            "server_port" => fields.server_port = seen.once(3, c.serde()?)?,
            "last_server_port" => fields.last_server_port = seen.once(4, c.serde()?)?,
            "server" => fields.server = seen.once(5, c.serde()?)?,
            "ports" => {
                seen.once(6, ())?;
                c.skip(0)?;
            }
            "last_scan" => fields.last_scan = seen.once(7, c.serde()?)?,
            "leases" => fields.leases = seen.once(8, c.leases()?)?,
            "cursors" => fields.cursors = seen.once(9, c.serde()?)?,
            "names" => fields.names = seen.once(10, c.serde()?)?,
            _ => c.skip(0)?,
        }
        Some(())
    })?;
    c.ws();
    if c.at != c.text.len() || !seen.has(6) {
        return None;
    }
    let lean = Lean {
        version: fields.version?,
        updated_at: fields.updated_at?,
        port_range: fields.port_range?,
        server_port: fields.server_port,
        last_server_port: fields.last_server_port,
        server: fields.server,
        ports: serde::de::IgnoredAny,
        last_scan: fields.last_scan,
        leases: fields.leases.into_iter().collect(),
        cursors: fields.cursors,
        names: fields.names,
    };
    Some(lean.into_state())
}

/// The members of the state file read so far.
#[derive(Default)]
struct Fields {
    version: Option<u32>,
    updated_at: Option<String>,
    port_range: Option<crate::ports::PortRange>,
    server_port: Option<u16>,
    last_server_port: Option<u16>,
    server: Option<super::ServerInfo>,
    last_scan: Option<super::ScanInfo>,
    leases: Vec<(String, Lease)>,
    cursors: BTreeMap<String, u16>,
    names: BTreeMap<String, crate::ports::names::Name>,
}

/// Which members of an object were read: serde refuses a repeated one.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// `value`, unless member `bit` was read before.
    fn once<T>(&mut self, bit: u32, value: T) -> Option<T> {
        if self.has(bit) {
            return None;
        }
        self.0 |= 1 << bit;
        Some(value)
    }

    fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

struct Cursor<'t> {
    src: &'t str,
    /// `src` as bytes.
    text: &'t [u8],
    at: usize,
}

impl<'t> Cursor<'t> {
    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes or control characters, where it lies.
    fn string(&mut self) -> Option<&'t str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + plain_len(&self.text[start..])?;
        self.at = end + 1;
        // Quotes begin and end no other character: the slice is whole ones.
        self.src.get(start..end)
    }

    /// A string, escapes and all: one with escapes is read by serde.
    fn owned_string(&mut self) -> Option<String> {
        let start = self.at;
        if let Some(plain) = self.string() {
            return Some(plain.to_string());
        }
        self.at = start;
        self.eat(b'"')?;
        loop {
            match *self.text.get(self.at)? {
                b'"' => break,
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        serde_json::from_str(self.src.get(start..self.at)?).ok()
    }

    /// A plain non-negative integer: digits without a leading zero, and no
    /// fraction or exponent after them.
    fn integer(&mut self) -> Option<u64> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.text[start] == b'0') {
            return None;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(value),
        }
    }

    /// `null` as `None`, or what `read` reads.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// The members of an object whose `{` was read, each handed to `member`
    /// after its key and colon (with the whitespace after the colon read),
    /// through the closing `}`.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'t str) -> Option<()>) -> Option<()> {
        self.items(b'}', |c| {
            let key = c.string()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            member(c, key)
        })
    }

    /// The elements of an array whose `[` was read, each handed to
    /// `element`, through the closing `]`.
    fn elements(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.items(b']', element)
    }

    /// Items separated by commas, each read by `item` after the whitespace
    /// before it, through `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads past one value, checking it is JSON (strings without escapes).
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.at += 1;
                self.members(|c, _| c.skip(depth + 1))
            }
            b'[' => {
                self.at += 1;
                self.elements(|c| c.skip(depth + 1))
            }
            b'"' => self.string().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.number(),
        }
    }

    /// Reads past a number of any JSON form: `-`, an integer without a
    /// leading zero, a fraction, an exponent.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// One value read by serde from its own text: for the few small
    /// members, so that they mean exactly what serde makes of them.
    fn serde<T: DeserializeOwned>(&mut self) -> Option<T> {
        let start = self.at;
        self.skip(0)?;
        serde_json::from_str(self.src.get(start..self.at)?).ok()
    }

    /// The `leases` map, in the order it is written.
    fn leases(&mut self) -> Option<Vec<(String, Lease)>> {
        self.eat(b'{')?;
        let mut leases = Vec::new();
        self.members(|c, id| {
            leases.push((id.to_string(), c.lease()?));
            Some(())
        })?;
        Some(leases)
    }

    /// One lease, with serde's defaults for the members it may lack.
    fn lease(&mut self) -> Option<Lease> {
        self.eat(b'{')?;
        let mut seen = Seen::default();
        let (mut id, mut ports, mut pool) = (None, None, None);
        let (mut created_at, mut expires_at) = (None, None);
        let (mut owner, mut uid, mut pid, mut pid_start) = (None, None, None, None);
        let (mut protocol, mut ttl_secs, mut name) = (Protocol::default(), 0, None);
        self.members(|c, key| {
            match key {
                "id" => id = Some(seen.once(0, c.owned_string()?)?),
                "ports" => ports = Some(seen.once(1, c.ports()?)?),
                "pool" => pool = Some(seen.once(2, c.owned_string()?)?),
                "owner" => owner = seen.once(3, c.nullable(Cursor::owned_string)?)?,
                "uid" => uid = seen.once(4, c.nullable(|c| c.integer()?.try_into().ok())?)?,
                "protocol" => {
                    protocol = seen.once(
                        5,
                        match c.string()? {
                            "both" => Protocol::Both,
                            "tcp" => Protocol::Tcp,
                            "udp" => Protocol::Udp,
                            _ => return None,
                        },
                    )?
                }
                "pid" => pid = seen.once(6, c.nullable(|c| c.integer()?.try_into().ok())?)?,
                "pid_start" => pid_start = seen.once(7, c.nullable(Cursor::integer)?)?,
                "created_at" => created_at = Some(seen.once(8, c.time()?)?),
                "expires_at" => expires_at = Some(seen.once(9, c.time()?)?),
                "ttl_secs" => ttl_secs = seen.once(10, c.integer()?)?,
                "name" => name = seen.once(11, c.nullable(Cursor::owned_string)?)?,
                _ => c.skip(0)?,
            }
            Some(())
        })?;
        Some(Lease {
            id: id?,
            ports: ports?,
            pool: pool?,
            owner,
            uid,
            protocol,
            pid,
            pid_start,
            created_at: created_at?,
            expires_at: expires_at?,
            ttl_secs,
            name,
        })
    }

    /// An array of ports.
    fn ports(&mut self) -> Option<Vec<u16>> {
        self.eat(b'[')?;
        let mut ports = Vec::with_capacity(1);
        self.elements(|c| {
            ports.push(c.integer()?.try_into().ok()?);
            Some(())
        })?;
        Some(ports)
    }

    /// A time as the state file writes it, read as serde reads it.
    fn time(&mut self) -> Option<SystemTime> {
        crate::util::time::rfc3339_serde::from_text(self.string()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{lease_at, sample};
    use std::time::{Duration, UNIX_EPOCH};

    fn lease(id: &str, ports: &[u16]) -> Lease {
        lease_at(
            id,
            ports,
            UNIX_EPOCH + Duration::from_secs(1_795_633_200),
            600,
        )
    }

    /// A state with leases of every shape the file holds.
    fn with_leases() -> StateFile {
        let mut state = sample();
        let mut tied = lease("0000ca300f6b01fa", &[3002, 3003, 3010]);
        tied.pid = Some(4242);
        tied.pid_start = Some(123_456_789);
        tied.protocol = Protocol::Tcp;
        tied.owner = Some("ci job 17".to_string());
        tied.name = Some("fix-ui.shop".to_string());
        let mut remote = lease("1c2ae30cb8738961", &[3020]);
        remote.uid = None;
        remote.protocol = Protocol::Udp;
        remote.pool = "web".to_string();
        remote.owner = Some("a \"quoted\" owner \\ with escapes\n and é ✓".to_string());
        remote.ttl_secs = 0;
        let unknown = lease("ffffffffffffffff", &[]);
        for lease in [tied, remote, unknown] {
            state.leases.insert(lease.id.clone(), lease);
        }
        state.cursors.insert("web".to_string(), 3020);
        let name = |port, lease_id: Option<&str>, ended: Option<u64>| crate::ports::names::Name {
            uid: Some(1000),
            port,
            alias: lease_id.is_none() && ended.is_none(),
            lease_id: lease_id.map(str::to_string),
            ended_at: ended.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        };
        state.names.insert(
            "fix-ui.shop".into(),
            name(3002, Some("0000ca300f6b01fa"), None),
        );
        state.names.insert("db".into(), name(5432, None, None));
        state
            .names
            .insert("old".into(), name(3005, None, Some(1_795_633_200)));
        state
    }

    /// Eight bytes at a time finds what a byte at a time does.
    #[test]
    fn plain_len_stops_where_a_byte_by_byte_scan_does() {
        let naive = |text: &[u8]| {
            let first = text
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            (text[first] == b'"').then_some(first)
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xe9, 0xff,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    // Mostly plain bytes, as in a real string.
                    let pick = next() % 64;
                    if pick < 53 {
                        b'a'
                    } else {
                        alphabet[(pick - 53) as usize]
                    }
                })
                .collect();
            assert_eq!(plain_len(&text), naive(&text), "{text:?}");
        }
    }

    /// Both readers give the same: a state, or the same error.
    fn assert_same(text: &str) {
        assert_eq!(
            StateFile::parse_for_start(text.as_bytes()),
            StateFile::parse_for_start_by_serde(text.as_bytes()),
            "{text}"
        );
    }

    #[test]
    fn reads_what_dynport_writes_as_serde_does() {
        let state = with_leases();
        let mut expected = state.clone();
        expected.ports.clear();
        for text in [
            serde_json::to_string_pretty(&state).unwrap(),
            serde_json::to_string(&state).unwrap(),
        ] {
            assert_eq!(parse_for_start(&text), Some(expected.clone()), "{text}");
            assert_same(&text);
        }
    }

    #[test]
    fn reads_members_it_does_not_know_and_members_left_out() {
        let mut value = serde_json::to_value(with_leases()).unwrap();
        value["comment"] = serde_json::json!({"a": [1, -2, true, false, null, "x"], "b": {}});
        let lease = &mut value["leases"]["1c2ae30cb8738961"];
        lease["note"] = serde_json::json!([[], {}]);
        for optional in ["owner", "uid", "protocol", "pid", "ttl_secs"] {
            lease.as_object_mut().unwrap().remove(optional);
        }
        for optional in ["server", "last_scan", "cursors", "server_port"] {
            value.as_object_mut().unwrap().remove(optional);
        }
        let text = value.to_string();
        let read = parse_for_start(&text).expect("read straight");
        let lease = &read.leases["1c2ae30cb8738961"];
        assert_eq!(
            (lease.owner.as_deref(), lease.uid, lease.pid),
            (None, None, None)
        );
        assert_eq!((lease.protocol, lease.ttl_secs), (Protocol::Both, 0));
        assert_same(&text);
    }

    /// Each is left to serde, and both readers still agree.
    #[test]
    fn leaves_anything_else_to_serde() {
        let text = serde_json::to_string_pretty(&with_leases()).unwrap();
        let id = "\"id\": \"0000ca300f6b01fa\"";
        let cases = [
            text.replace("\"ttl_secs\": 600", "\"ttl_secs\": 600.0"),
            text.replace("\"ttl_secs\": 600", "\"ttl_secs\": 6e2"),
            text.replace("\"ttl_secs\": 600", "\"ttl_secs\": 0600"),
            text.replace("\"uid\": 1000", "\"uid\": -1"),
            text.replace("\"uid\": 1000", "\"uid\": 4294967296"),
            text.replace("\"pid\": 4242", "\"pid\": 4242, \"pid\": 4242"),
            text.replace(id, &format!("{id}, {id}")),
            text.replace("\"protocol\": \"tcp\"", "\"protocol\": \"sctp\""),
            text.replace("\"protocol\": \"tcp\"", "\"protocol\": null"),
            text.replace(
                "\"created_at\": \"2026-11-25T19:00:00Z\"",
                "\"created_at\": \"yesterday\"",
            ),
            text.replace(
                "\"ports\": {",
                "\"ports\": {\"3001\": {\"since\": \"a\\u0062\"}, ",
            ),
            text.replace("\"version\": 1", "\"versio\\u006e\": 1"),
            text.replace("\"version\": 1", "\"version\": 1, \"version\": 1"),
            text.replace("\"ports\": {", "\"ports\": 7, \"ports\": {"),
            text.replace("\"leases\": {", "\"leases\": [], \"x\": {"),
            text.replace(
                "\"leases\": {",
                &format!(
                    "\"deep\": {}{}, \"leases\": {{",
                    "[".repeat(40),
                    "]".repeat(40)
                ),
            ),
            text.replace("\"port_range\": {", "\"port_range\": {\"start\": 1, "),
            text.replace("\"version\": 1", "\"version\": 2"),
            format!("{text} x"),
            format!("\u{feff}{text}"),
            text[..text.len() / 2].to_string(),
            text.replacen(",", "", 1),
            "[]".to_string(),
            String::new(),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert_ne!(case, &text, "case {i} changes nothing");
            if !case.contains("\"version\": 2") && !case.contains("\"start\": 1, ") {
                assert_eq!(parse_for_start(case), None, "case {i}: {case}");
            }
            assert_same(case);
        }
    }
}
