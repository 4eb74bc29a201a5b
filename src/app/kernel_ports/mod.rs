//! The kernel's own ports: the range it picks source ports from for
//! outgoing connections (`ip_local_port_range`), and the list of ports it
//! leaves alone there (`ip_local_reserved_ports`), where `--reserve-kernel`
//! keeps every leased port and the server's own.
//!
//! This file is pure (texts in, texts out) so every rule is tested without
//! `/proc`; [`reserve`] reads and writes the real files.

mod reserve;

pub use reserve::{KernelPorts, Reserver, preflight};

use crate::ports::PortRange;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where the kernel keeps the files this module reads and writes. The
/// host's are [`Kernel::host`]; tests point it at files of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// `ip_local_port_range`: two numbers, the ephemeral range.
    pub port_range: PathBuf,
    /// `ip_local_reserved_ports`: comma-separated ports and ranges.
    pub reserved: PathBuf,
    /// `boot_id`: tells this boot from the one a record was written in.
    pub boot_id: PathBuf,
}

impl Kernel {
    /// The files of this host (of dynport's network namespace).
    pub fn host() -> Kernel {
        Kernel {
            port_range: PathBuf::from("/proc/sys/net/ipv4/ip_local_port_range"),
            reserved: PathBuf::from("/proc/sys/net/ipv4/ip_local_reserved_ports"),
            boot_id: PathBuf::from("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The ephemeral range as `ip_local_port_range` gives it: `32768\t60999`.
pub fn parse_range(text: &str) -> Result<PortRange, String> {
    let numbers: Vec<&str> = text.split_whitespace().collect();
    let [low, high] = numbers[..] else {
        return Err(format!("{text:?} is not two port numbers"));
    };
    let port = |n: &str| n.parse::<u16>().map_err(|_| format!("{n:?} is not a port"));
    PortRange::new(port(low)?, port(high)?)
}

/// The ports two ranges share, when they share any.
pub fn overlap(a: PortRange, b: PortRange) -> Option<PortRange> {
    PortRange::new(a.start.max(b.start), a.end.min(b.end)).ok()
}

/// `ports 32768-40000`, or `port 32768` when the range holds one.
pub fn ports_text(range: PortRange) -> String {
    match range.start == range.end {
        true => format!("port {}", range.start),
        false => format!("ports {range}"),
    }
}

/// The warning of a managed range that overlaps the kernel's, when it does
/// and `--reserve-kernel` does not close the gap.
pub fn overlap_warning(managed: PortRange, kernel: PortRange) -> Option<String> {
    let shared = overlap(managed, kernel)?;
    Some(format!(
        "the managed range {managed} overlaps the kernel's ephemeral range {kernel} ({}): \
         any outgoing connection can take a leased port there before its holder binds it; \
         narrow --range, or use --reserve-kernel",
        ports_text(shared)
    ))
}

/// The ports of an `ip_local_reserved_ports` text: `8080,9000-9010`. The
/// kernel writes it without spaces; spaces around items are taken anyway.
pub fn parse_list(text: &str) -> Result<BTreeSet<u16>, String> {
    let mut ports = BTreeSet::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (low, high) = item.split_once('-').unwrap_or((item, item));
        let port = |n: &str| {
            n.trim()
                .parse::<u16>()
                .map_err(|_| format!("{item:?} is not a port or a range of ports"))
        };
        let (low, high) = (port(low)?, port(high)?);
        if low > high {
            return Err(format!("{item:?} starts above its end"));
        }
        ports.extend(low..=high);
    }
    Ok(ports)
}

/// `ports` as the kernel writes them: runs as ranges, comma-separated.
pub fn format_list(ports: &BTreeSet<u16>) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut ports = ports.iter().copied().peekable();
    while let Some(low) = ports.next() {
        let mut high = low;
        while ports.next_if(|&p| Some(p) == high.checked_add(1)).is_some() {
            high += 1;
        }
        items.push(match low == high {
            true => low.to_string(),
            false => format!("{low}-{high}"),
        });
    }
    items.join(",")
}

/// The list to write and the ports dynport holds in it afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub list: BTreeSet<u16>,
    pub ours: BTreeSet<u16>,
}

/// Puts `wanted` in `current` in place of `ours`, the entries dynport
/// added earlier: every entry of `current` that is not ours is someone
/// else's and stays; a wanted port someone else already reserves stays
/// theirs, so it stays when dynport no longer wants it.
pub fn merge(current: &BTreeSet<u16>, ours: &BTreeSet<u16>, wanted: &BTreeSet<u16>) -> Merged {
    let others: BTreeSet<u16> = current.difference(ours).copied().collect();
    Merged {
        list: others.union(wanted).copied().collect(),
        ours: wanted.difference(&others).copied().collect(),
    }
}

/// The ports dynport wants reserved: every `leased` port and the server's
/// own, those inside the kernel's range.
pub fn wanted(
    leased: impl Iterator<Item = u16>,
    server_port: Option<u16>,
    kernel: PortRange,
) -> BTreeSet<u16> {
    leased
        .chain(server_port)
        .filter(|&p| kernel.contains(p))
        .collect()
}

#[cfg(test)]
mod tests;
