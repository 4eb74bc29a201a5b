//! The kernel's files themselves: the start-up check of `dynport serve`, and
//! the [`Reserver`] that keeps dynport's entries in `ip_local_reserved_ports`
//! in step with its leases.
//!
//! dynport adds and removes only its own entries. Which are its own is kept
//! in memory and in a record in the state directory, so that a server that
//! died without shutting down leaves nothing behind for good: the next one
//! takes back the entries the record names that are still in the list, when
//! the record was written since the host booted (the list itself does not
//! survive a reboot, and an entry there after one is someone else's).

use super::{Kernel, format_list, merge, overlap, overlap_warning, parse_list, parse_range};
use crate::ports::PortRange;
use crate::state::KERNEL_RECORD_FILE as RECORD_FILE;
use crate::state::files::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A record names at most every port: `1,3,5,…` is under 400 KB.
const RECORD_CAP: u64 = 1 << 20;

/// What the server knows of the kernel's ports.
pub struct KernelPorts {
    /// The ephemeral range as read at start; `None` when it could not be read.
    pub ephemeral: Option<PortRange>,
    /// Set with `--reserve-kernel`.
    pub reserver: Option<Reserver>,
}

impl KernelPorts {
    /// Reads the ephemeral range and, when `reserve`, takes charge of
    /// dynport's entries in the reserved list (see [`Reserver::open`]).
    pub fn open(kernel: Kernel, state_dir: &Dir, reserve: bool) -> io::Result<KernelPorts> {
        let ephemeral = read_range(&kernel);
        if !reserve {
            let ephemeral = ephemeral.ok();
            return Ok(KernelPorts {
                ephemeral,
                reserver: None,
            });
        }
        let range = ephemeral?;
        Ok(KernelPorts {
            ephemeral: Some(range),
            reserver: Some(Reserver::open(kernel, range, state_dir)?),
        })
    }
}

/// The start-up check: warns when the managed range overlaps the kernel's
/// ephemeral range and `--reserve-kernel` is off; with it on, refuses to
/// start (the whole message of a configuration error) unless dynport may
/// write the reserved list.
pub fn preflight(kernel: &Kernel, managed: PortRange, reserve: bool) -> Result<(), String> {
    let range = read_range(kernel);
    match (reserve, range) {
        (false, Ok(range)) => overlap_warning(managed, range)
            .iter()
            .for_each(|w| log::warn!("{w}")),
        (false, Err(e)) => log::debug!(
            "cannot read {} ({e}): the managed range is not checked against it",
            kernel.port_range.display()
        ),
        (true, Ok(range)) => log_reserving(kernel, managed, range),
        (true, Err(e)) => return Err(unreadable(&kernel.port_range, &e)),
    }
    if reserve {
        let opened = OpenOptions::new().write(true).open(&kernel.reserved);
        opened.map_err(|e| refusal("write", &kernel.reserved, &e))?;
    }
    Ok(())
}

fn log_reserving(kernel: &Kernel, managed: PortRange, range: PortRange) {
    match overlap(managed, range) {
        Some(shared) => log::info!(
            "the managed range {managed} overlaps the kernel's ephemeral range {range} ({}): \
             leased ports there, and the server's own, are kept in {} (--reserve-kernel)",
            super::ports_text(shared),
            kernel.reserved.display()
        ),
        None => log::info!(
            "the managed range {managed} is outside the kernel's ephemeral range {range}: \
             --reserve-kernel has nothing to reserve"
        ),
    }
}

fn refusal(what: &str, path: &Path, e: &io::Error) -> String {
    format!(
        "--reserve-kernel (DYNPORT_RESERVE_KERNEL): cannot {what} {}: {e}; run dynport as \
         root (or with CAP_NET_ADMIN) where /proc/sys is writable, or without --reserve-kernel",
        path.display()
    )
}

fn unreadable(path: &Path, e: &io::Error) -> String {
    format!(
        "--reserve-kernel (DYNPORT_RESERVE_KERNEL): cannot read {}: {e}; without the \
         kernel's ephemeral range there is nothing to reserve: run without --reserve-kernel",
        path.display()
    )
}

fn read_range(kernel: &Kernel) -> io::Result<PortRange> {
    let text = fs::read_to_string(&kernel.port_range)?;
    parse_range(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The record of dynport's entries: the boot it was written in, and the list.
#[derive(Serialize, Deserialize)]
struct Record {
    boot_id: String,
    ports: String,
}

/// Keeps the ports dynport wants reserved in `ip_local_reserved_ports`,
/// and no others of its own.
pub struct Reserver {
    kernel: Kernel,
    ephemeral: PortRange,
    dir: Dir,
    boot_id: Option<String>,
    held: Mutex<Held>,
    /// How many entries are dynport's, for readers that must not wait.
    count: AtomicUsize,
}

struct Held {
    /// The entries dynport added and that were not in the list before.
    ours: BTreeSet<u16>,
    /// What was last put in step; `None` until then or after a failure.
    synced: Option<BTreeSet<u16>>,
    /// The last failure logged, so that a lasting one is logged once.
    failing: Option<String>,
}

impl Reserver {
    /// Takes charge of dynport's entries: none, or those the record of a
    /// server that died in this boot names and the list still holds.
    pub fn open(kernel: Kernel, ephemeral: PortRange, dir: &Dir) -> io::Result<Reserver> {
        let boot_id = fs::read_to_string(&kernel.boot_id).ok();
        let reserver = Reserver {
            boot_id: boot_id.map(|b| b.trim().to_string()),
            kernel,
            ephemeral,
            dir: dir.clone(),
            held: Mutex::new(Held {
                ours: BTreeSet::new(),
                synced: None,
                failing: None,
            }),
            count: AtomicUsize::new(0),
        };
        reserver.adopt()?;
        Ok(reserver)
    }

    /// The ephemeral range as read at start: only ports inside it are reserved.
    pub fn ephemeral(&self) -> PortRange {
        self.ephemeral
    }

    /// How many entries of the reserved list are dynport's.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Puts the list in step with `wanted`, unless it was already put in
    /// step with it and `recheck` is false. A failure is logged (once while
    /// it lasts) and tried again at the next call.
    pub fn sync(&self, wanted: BTreeSet<u16>, recheck: bool) {
        let mut held = self.held();
        if !recheck && held.synced.as_ref() == Some(&wanted) {
            return;
        }
        match self.put(&mut held, &wanted) {
            Ok(()) => {
                held.synced = Some(wanted);
                if held.failing.take().is_some() {
                    log::info!("{} is in step again", self.kernel.reserved.display());
                }
            }
            Err(e) => {
                held.synced = None;
                let e = e.to_string();
                if held.failing.as_ref() != Some(&e) {
                    log::warn!(
                        "cannot keep leased ports in {}: {e}",
                        self.kernel.reserved.display()
                    );
                }
                held.failing = Some(e);
            }
        }
    }

    /// Removes every entry of dynport's from the list and the record with
    /// them, at shutdown. When that fails the record stays, for the next
    /// server to take back.
    pub fn release_all(&self) -> io::Result<()> {
        let mut held = self.held();
        self.put(&mut held, &BTreeSet::new())?;
        match self.dir.remove(RECORD_FILE) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the list, puts `wanted` in it in place of dynport's entries,
    /// writes it back when it changed, then records dynport's entries.
    fn put(&self, held: &mut Held, wanted: &BTreeSet<u16>) -> io::Result<()> {
        let current = self.read_list()?;
        let merged = merge(&current, &held.ours, wanted);
        if merged.list != current {
            write_list(&self.kernel.reserved, &merged.list)?;
        }
        // Recorded after the kernel took it: a crash in between leaves an
        // entry unrecorded, seen later as someone else's, never the other
        // way round.
        if merged.ours != held.ours {
            held.ours = merged.ours;
            self.count.store(held.ours.len(), Ordering::Relaxed);
            self.save_record(&held.ours)?;
        }
        Ok(())
    }

    fn read_list(&self) -> io::Result<BTreeSet<u16>> {
        let text = fs::read_to_string(&self.kernel.reserved)?;
        parse_list(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Takes back the entries a record of this boot names that the list
    /// still holds.
    fn adopt(&self) -> io::Result<()> {
        let Some(record) = self.load_record() else {
            return Ok(());
        };
        let current = self.read_list()?;
        let ours: BTreeSet<u16> = record.intersection(&current).copied().collect();
        if !ours.is_empty() {
            log::info!(
                "taking back {} entries of {} that the last server, which did not shut \
                 down cleanly, added: {}",
                ours.len(),
                self.kernel.reserved.display(),
                format_list(&ours)
            );
        }
        self.count.store(ours.len(), Ordering::Relaxed);
        self.held().ours = ours;
        Ok(())
    }

    /// The ports of the record, when there is one of this boot.
    fn load_record(&self) -> Option<BTreeSet<u16>> {
        let path = self.dir.join(RECORD_FILE);
        let bytes = match self.dir.read_capped(RECORD_FILE, RECORD_CAP) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.ignored(&path, "it is too big"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => return self.ignored(&path, &e.to_string()),
        };
        let record: Record = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(e) => return self.ignored(&path, &e.to_string()),
        };
        if self.boot_id.as_deref() != Some(record.boot_id.as_str()) {
            log::debug!("{} is of another boot: ignored", path.display());
            return None;
        }
        match parse_list(&record.ports) {
            Ok(ports) => Some(ports),
            Err(e) => self.ignored(&path, &e),
        }
    }

    fn ignored<T>(&self, path: &Path, why: &str) -> Option<T> {
        log::warn!(
            "{} is ignored ({}): entries it names are left to whoever added them",
            path.display(),
            why.escape_debug()
        );
        None
    }

    /// Replaces the record atomically. No fsync: the list it describes is
    /// gone after a crash of the host, and a record of another boot is ignored.
    fn save_record(&self, ours: &BTreeSet<u16>) -> io::Result<()> {
        let record = Record {
            boot_id: self.boot_id.clone().unwrap_or_default(),
            ports: format_list(ours),
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let (tmp, mut file) = self.dir.create_temp(RECORD_FILE)?;
        let written = file
            .write_all(&bytes)
            .and_then(|()| self.dir.rename(&tmp, RECORD_FILE));
        if written.is_err() {
            let _ = self.dir.remove(&tmp);
        }
        written
    }
}

/// Writes the whole list in one write, as the kernel takes it: a second
/// write would add to the first instead of replacing it.
fn write_list(path: &Path, list: &BTreeSet<u16>) -> io::Result<()> {
    let text = format!("{}\n", format_list(list));
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    let written = file.write(text.as_bytes())?;
    if written != text.len() {
        return Err(io::Error::other(format!(
            "the kernel took {written} of {} bytes",
            text.len()
        )));
    }
    Ok(())
}
