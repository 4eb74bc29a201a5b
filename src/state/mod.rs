//! What dynport keeps on disk: the state file `dynamic_ports.json` (the
//! snapshot, replaced atomically, never half-written), the journal of the
//! changes since it ([`journal`]), and the lock on their directory. Nothing
//! in the directory is trusted: see [`dir`] for the directory, [`files`] for
//! how its files are opened, [`leases`] for the leases loaded.

pub(crate) mod dir;
mod direct;
pub(crate) mod files;
pub mod frame;
pub mod journal;
pub(crate) mod leases;
pub(crate) mod socket;
mod store;
pub(crate) mod walk;

pub use journal::JOURNAL_FILE;
pub use store::{JournalLoad, Loaded, Recovered, Store, Temp, Written};

use crate::ports::lease::Lease;
use crate::ports::names::Name;
use crate::ports::{PortEntry, PortRange, PortTable};
use files::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

pub const STATE_FILE: &str = "dynamic_ports.json";
pub const LOCK_FILE: &str = "dynamic_ports.lock";
/// dynport's own entries in `ip_local_reserved_ports`, with `--reserve-kernel`
/// (see [`crate::app::kernel_ports`]).
pub const KERNEL_RECORD_FILE: &str = "kernel_reserved_ports.json";
/// dynport's own files in the state directory: each must be a regular file
/// when it is there at all.
pub const OWN_FILES: &[&str] = &[STATE_FILE, JOURNAL_FILE, LOCK_FILE, KERNEL_RECORD_FILE];
/// The largest state file read. The largest dynport could write, every port
/// of 1-65535 in a lease of its own with a 128-character owner of 4-byte
/// characters, is about 61 MiB; a bigger file is kept aside as corrupt.
pub const MAX_STATE_BYTES: u64 = 64 << 20;
const VERSION: u32 = 1;

/// The running server, as the state file records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

/// What the last scan found and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanInfo {
    pub at: String,
    pub duration_ms: f64,
    pub in_use: usize,
}

/// The schema of `dynamic_ports.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    pub updated_at: String,
    pub port_range: PortRange,
    pub server_port: Option<u16>,
    pub last_server_port: Option<u16>,
    pub server: Option<ServerInfo>,
    pub ports: BTreeMap<u16, PortEntry>,
    pub last_scan: Option<ScanInfo>,
    /// Live leases by id.
    #[serde(default)]
    pub leases: BTreeMap<String, Lease>,
    /// Where round-robin hand-out goes on in each pool.
    #[serde(default)]
    pub cursors: BTreeMap<String, u16>,
    /// Names, live and retained, by name. A state file from before names
    /// has none.
    #[serde(default)]
    pub names: BTreeMap<String, Name>,
}

impl StateFile {
    /// A state for `range` with nothing held.
    pub fn empty(range: PortRange, now: &str) -> StateFile {
        StateFile {
            version: VERSION,
            updated_at: now.to_string(),
            port_range: range,
            server_port: None,
            last_server_port: None,
            server: None,
            ports: BTreeMap::new(),
            last_scan: None,
            leases: BTreeMap::new(),
            cursors: BTreeMap::new(),
            names: BTreeMap::new(),
        }
    }

    /// Parses a state file, refusing versions this build does not know.
    pub fn parse(bytes: &[u8]) -> Result<StateFile, String> {
        let state: StateFile = serde_json::from_str(text_of(bytes)?).map_err(|e| e.to_string())?;
        state.checked()
    }

    /// [`StateFile::parse`], reading past `ports` without building it: a
    /// starting server makes its table from the leases and a fresh scan,
    /// and in a large state the map is a third of the file. `ports` is
    /// then empty. A file in the form dynport writes is read straight from
    /// its text (`direct`); serde reads any other.
    pub fn parse_for_start(bytes: &[u8]) -> Result<StateFile, String> {
        let text = text_of(bytes)?;
        match direct::parse_for_start(text) {
            Some(state) => state.checked(),
            None => Self::lean_by_serde(text),
        }
    }

    /// [`StateFile::parse_for_start`] by serde alone, as every file was
    /// read before `direct`: for the fuzz target and the tests that compare
    /// the two.
    pub fn parse_for_start_by_serde(bytes: &[u8]) -> Result<StateFile, String> {
        Self::lean_by_serde(text_of(bytes)?)
    }

    fn lean_by_serde(text: &str) -> Result<StateFile, String> {
        let lean: Lean = serde_json::from_str(text).map_err(|e| e.to_string())?;
        lean.into_state().checked()
    }

    fn checked(self) -> Result<StateFile, String> {
        if self.version != VERSION {
            return Err(format!("unknown version {}", self.version));
        }
        let range = self.port_range;
        PortRange::new(range.start, range.end).map_err(|e| format!("port_range: {e}"))?;
        Ok(self)
    }
}

impl Lean {
    fn into_state(self) -> StateFile {
        StateFile {
            version: self.version,
            updated_at: self.updated_at,
            port_range: self.port_range,
            server_port: self.server_port,
            last_server_port: self.last_server_port,
            server: self.server,
            ports: BTreeMap::new(),
            last_scan: self.last_scan,
            leases: self.leases,
            cursors: self.cursors,
            names: self.names,
        }
    }
}

/// A state file's bytes as text, checked once as a whole: parsed from a
/// `&str`, serde_json does not check each of its strings again (a state of
/// 20,000 leases holds over 200,000 of them).
fn text_of(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

/// [`StateFile`] with `ports` checked to be JSON but not built.
#[derive(Deserialize)]
struct Lean {
    version: u32,
    updated_at: String,
    port_range: PortRange,
    server_port: Option<u16>,
    last_server_port: Option<u16>,
    server: Option<ServerInfo>,
    #[allow(dead_code)]
    ports: serde::de::IgnoredAny,
    last_scan: Option<ScanInfo>,
    #[serde(default, deserialize_with = "leases_at_once")]
    leases: BTreeMap<String, Lease>,
    #[serde(default)]
    cursors: BTreeMap<String, u16>,
    #[serde(default)]
    names: BTreeMap<String, Name>,
}

/// The `leases` map read into a list and built at once: dynport writes it
/// sorted, and a map built from sorted entries compares each key once,
/// where inserting them one by one searches the tree for each (20,000
/// leases: a few milliseconds of every start). The last of a repeated key
/// wins, as in a map filled entry by entry.
fn leases_at_once<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Lease>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<(String, Lease)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of leases by id")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    Ok(d.deserialize_map(Entries)?.into_iter().collect())
}

/// The schema of [`StateFile`], borrowed from the live table: a snapshot is
/// written from it without a copy of the table.
#[derive(Serialize)]
pub struct StateRef<'a> {
    pub version: u32,
    pub updated_at: String,
    pub port_range: PortRange,
    pub server_port: Option<u16>,
    pub last_server_port: Option<u16>,
    pub server: Option<&'a ServerInfo>,
    pub ports: &'a BTreeMap<u16, PortEntry>,
    pub last_scan: Option<&'a ScanInfo>,
    pub leases: LeaseMap<'a>,
    pub cursors: &'a BTreeMap<String, u16>,
    pub names: &'a BTreeMap<String, Name>,
}

impl<'a> StateRef<'a> {
    /// The state of `table` and the server's facts, stamped `updated_at`.
    pub fn of(
        table: &'a PortTable,
        last_server_port: Option<u16>,
        server: Option<&'a ServerInfo>,
        last_scan: Option<&'a ScanInfo>,
        updated_at: String,
    ) -> StateRef<'a> {
        StateRef {
            version: VERSION,
            updated_at,
            port_range: table.range(),
            server_port: table.server_port(),
            last_server_port,
            server,
            ports: table.entries(),
            last_scan,
            leases: LeaseMap(table),
            cursors: table.cursors(),
            names: table.name_map(),
        }
    }
}

/// The live leases of a table, written as the state file's `leases` map.
pub struct LeaseMap<'a>(&'a PortTable);

impl Serialize for LeaseMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.leases().map(|l| (&l.id, l)))
    }
}

/// The advisory lock that makes one server per state directory. Released
/// when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The mode of the lock file: no other user may open it, so none can lock
/// it and keep a server from starting.
pub const LOCK_MODE: u32 = 0o600;

/// Why the state directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it: the pid the kernel says holds it now,
    /// when it says.
    Held {
        pid: Option<u32>,
    },
    Io(io::Error),
}

impl DirLock {
    /// Takes the lock of `dir` without waiting. The lock file is made mode
    /// [`LOCK_MODE`] (an older one is set to it) and opened without
    /// following links; it is held open read-only, so the directory's file
    /// system can be made read-only under a running server.
    pub fn acquire(dir: &Dir) -> Result<DirLock, LockError> {
        let flags = libc::O_RDONLY | libc::O_CREAT;
        let file = dir
            .open_regular(LOCK_FILE, flags, LOCK_MODE)
            .map_err(LockError::Io)?;
        let meta = file.metadata().map_err(LockError::Io)?;
        if meta.mode() & 0o7777 != LOCK_MODE {
            file.set_permissions(fs::Permissions::from_mode(LOCK_MODE))
                .map_err(LockError::Io)?;
        }
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {
                let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
                let pid = lock_holder(&locks, meta.dev(), meta.ino());
                Err(LockError::Held { pid })
            }
            Err(fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }
}

/// The pid that holds a lock on the file `dev`:`ino`, as `/proc/locks`
/// (`locks`) tells: `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`,
/// device as hexadecimal major and minor. A waiter (`1: -> FLOCK …`) holds
/// nothing, and an open file description lock names no pid (-1).
pub fn lock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let file = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [_, kind, _, _, pid, at, ..] if kind != "->" && at == file => pid.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortState;

    pub(super) fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dynport-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A lease of `ports` in the default pool for uid 1000, made at
    /// `created_at` for `ttl_secs`.
    pub(super) fn lease_at(
        id: &str,
        ports: &[u16],
        created_at: std::time::SystemTime,
        ttl_secs: u64,
    ) -> Lease {
        Lease {
            id: id.to_string(),
            ports: ports.to_vec(),
            pool: crate::ports::lease::DEFAULT_POOL.to_string(),
            owner: None,
            uid: Some(1000),
            protocol: crate::ports::lease::Protocol::Both,
            pid: None,
            pid_start: None,
            created_at,
            expires_at: created_at + std::time::Duration::from_secs(ttl_secs),
            ttl_secs,
            name: None,
        }
    }

    pub(super) fn sample() -> StateFile {
        let mut state =
            StateFile::empty(PortRange::new(3000, 9000).unwrap(), "2026-11-25T19:00:00Z");
        state.server_port = Some(3456);
        state.last_server_port = Some(3456);
        state.server = Some(ServerInfo {
            pid: 4242,
            host: "127.0.0.1".to_string(),
            started_at: "2026-11-25T18:59:58Z".to_string(),
        });
        state.ports.insert(
            3001,
            PortEntry::new(PortState::InUse, "2026-11-25T18:59:58Z"),
        );
        state.last_scan = Some(ScanInfo {
            at: "2026-11-25T19:00:00Z".to_string(),
            duration_ms: 0.8,
            in_use: 1,
        });
        state
    }

    #[test]
    fn state_file_uses_spec_field_names() {
        let value: serde_json::Value = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            value["port_range"],
            serde_json::json!({"start": 3000, "end": 9000})
        );
        assert_eq!(value["ports"]["3001"]["state"], "in_use");
        assert_eq!(value["server"]["pid"], 4242);
        assert_eq!(value["last_scan"]["duration_ms"], 0.8);
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        assert!(text.contains("\n  \"version\": 1,"), "{text}");
    }

    #[test]
    fn impossible_range_is_corrupt() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["port_range"] = serde_json::json!({"start": 9000, "end": 3000});
        let err = StateFile::parse(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, "port_range: start 9000 is above end 3000");
        value["port_range"] = serde_json::json!({"start": 0, "end": 3000});
        assert!(StateFile::parse(value.to_string().as_bytes()).is_err());
    }

    #[test]
    fn a_start_reads_everything_but_the_ports() {
        let text = serde_json::to_vec(&sample()).unwrap();
        let mut expected = sample();
        expected.ports.clear();
        assert_eq!(StateFile::parse_for_start(&text).unwrap(), expected);
        let broken = String::from_utf8(text)
            .unwrap()
            .replace("\"ports\":{", "\"ports\":{[");
        assert!(StateFile::parse_for_start(broken.as_bytes()).is_err());
        let mut value = serde_json::to_value(sample()).unwrap();
        value["version"] = 2.into();
        let err = StateFile::parse_for_start(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, "unknown version 2");
    }

    /// The text is checked as a whole, then its strings are not: a byte
    /// that is not UTF-8 in a string anywhere, even in the `ports` map a
    /// start skips, still makes the file corrupt, and the same for both.
    #[test]
    fn bytes_that_are_not_utf8_are_corrupt() {
        let text = serde_json::to_vec(&sample()).unwrap();
        for field in ["\"host\":\"", "\"since\":\""] {
            let at = text
                .windows(field.len())
                .position(|w| w == field.as_bytes())
                .unwrap_or_else(|| panic!("{field} in the sample"));
            let mut broken = text.clone();
            broken.insert(at + field.len(), 0xff);
            for err in [
                StateFile::parse(&broken).unwrap_err(),
                StateFile::parse_for_start(&broken).unwrap_err(),
            ] {
                assert!(err.starts_with("not UTF-8: "), "{field}: {err}");
            }
        }
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["version"] = 2.into();
        let err = StateFile::parse(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, "unknown version 2");
    }

    /// The round-trip property of the `state_file` fuzz target broke on a
    /// lease time with a fraction of a second: it was read with the fraction
    /// and written without it. It is now dropped when read.
    /// Found by the `state_file` fuzz target: a tiny scan duration read back
    /// as another float, so a state written and read again had changed.
    #[test]
    fn fuzz_state_file_tiny_float_round_trips() {
        let mut value = serde_json::to_value(sample()).unwrap();
        let text = value
            .to_string()
            .replace("\"duration_ms\":0.8", "\"duration_ms\":5e-58");
        value = serde_json::from_str(&text).unwrap();
        let state = StateFile::parse(value.to_string().as_bytes()).unwrap();
        assert_eq!(state.last_scan.as_ref().unwrap().duration_ms, 5e-58);
        let written = serde_json::to_vec_pretty(&state).unwrap();
        assert_eq!(StateFile::parse(&written).unwrap(), state);
    }

    #[test]
    fn fuzz_state_file_fractional_second_round_trips() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["leases"]["a"] = serde_json::json!({
            "id": "a", "ports": [3002], "pool": "default", "owner": null,
            "pid": null, "created_at": "2026-11-25T19:00:00.5Z",
            "expires_at": "2026-11-25T19:05:00.999999999Z", "ttl_secs": 300
        });
        let state = StateFile::parse(value.to_string().as_bytes()).unwrap();
        let written = serde_json::to_vec_pretty(&state).unwrap();
        assert_eq!(StateFile::parse(&written).unwrap(), state);
        let lease = &state.leases["a"];
        assert_eq!(
            crate::util::time::rfc3339(lease.created_at),
            "2026-11-25T19:00:00Z"
        );
        assert_eq!(
            crate::util::time::rfc3339(lease.expires_at),
            "2026-11-25T19:05:00Z"
        );
        assert_eq!(
            lease.expires_at.duration_since(lease.created_at).unwrap(),
            std::time::Duration::from_secs(300)
        );
    }

    #[test]
    fn second_lock_names_holder_pid() {
        let dir = temp_dir("lock");
        let held = Dir::open(&dir).unwrap();
        let first = DirLock::acquire(&held).unwrap();
        match DirLock::acquire(&held) {
            Err(LockError::Held { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        let mode = fs::metadata(dir.join(LOCK_FILE)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        drop(first);
        assert!(DirLock::acquire(&held).is_ok());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_lock_holder_is_read_from_proc_locks() {
        let dev = libc::makedev(0x103, 0x2);
        let locks = "1: POSIX  ADVISORY  WRITE 77 103:02:999 0 EOF\n\
                     2: OFDLCK ADVISORY  WRITE -1 103:02:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 66 103:02:1234 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 4242 103:02:1234 0 EOF\n";
        assert_eq!(lock_holder(locks, dev, 1234), Some(4242));
        assert_eq!(lock_holder(locks, dev, 999), Some(77));
        assert_eq!(lock_holder(locks, dev, 5), None);
        assert_eq!(lock_holder("", dev, 1234), None);
    }
}
