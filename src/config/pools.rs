//! The settings of leases: named pools inside the range, the excluded ports
//! and a lease's default life.

use super::raw::{self, Raw};
use super::raw::{port, range as port_range};
use super::{ConfigError, Pool};
use crate::ports::PortRange;

/// The pool that always exists and is the whole range.
pub use crate::ports::lease::DEFAULT_POOL;

/// Ports that browsers refuse to open; excluded by default where the range holds them.
pub const BROWSER_REFUSED: &[u16] = &[
    3659, 4045, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6697, 10080,
];

/// The pools of `--pool` (repeatable, or a comma-separated list) or `DYNPORT_POOLS`.
pub fn pools<L>(raw: &Raw<L>, range: PortRange) -> Result<Vec<Pool>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let values = raw.all(raw::POOL);
    let mut pools = Vec::new();
    for value in &values {
        for entry in value.text()?.split(',') {
            pools.push(pool(entry.trim(), range).map_err(|p| value.error(p))?);
        }
    }
    if let Some(value) = values.first() {
        apart(&pools).map_err(|p| value.error(p))?;
    }
    Ok(pools)
}

/// One `NAME=A-B` inside `range`.
fn pool(entry: &str, range: PortRange) -> Result<Pool, String> {
    let Some((name, ports)) = entry.split_once('=') else {
        return Err(format!(
            "{entry:?} is not a pool; give NAME=START-END, like web=3000-3999"
        ));
    };
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "pool name {name:?} may hold only a-z, 0-9, _ and -, at least one"
        ));
    }
    if name == DEFAULT_POOL {
        return Err("the pool name default is reserved: it is always the whole range".into());
    }
    let ports = port_range(ports).map_err(|p| format!("pool {name}: {p}"))?;
    if !inside(ports, range) {
        return Err(format!(
            "pool {name} ({ports}) is not inside the range {range}"
        ));
    }
    Ok(Pool {
        name: name.to_string(),
        range: ports,
    })
}

/// Refuses a name given twice and pools that share a port.
fn apart(pools: &[Pool]) -> Result<(), String> {
    let mut sorted: Vec<&Pool> = pools.iter().collect();
    sorted.sort_by_key(|p| (p.range.start, p.range.end));
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.range.start <= a.range.end {
            return Err(format!(
                "pool {} ({}) overlaps pool {} ({})",
                a.name, a.range, b.name, b.range
            ));
        }
    }
    for (i, p) in pools.iter().enumerate() {
        if pools[..i].iter().any(|q| q.name == p.name) {
            return Err(format!("pool {} is given twice", p.name));
        }
    }
    Ok(())
}

/// The excluded ports, sorted: `--exclude` or `DYNPORT_EXCLUDE`, else the
/// browser-refused ports inside `range`.
pub fn exclude<L>(raw: &Raw<L>, range: PortRange) -> Result<Vec<u16>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let Some(value) = raw.get(raw::EXCLUDE) else {
        return Ok(BROWSER_REFUSED
            .iter()
            .copied()
            .filter(|&p| range.contains(p))
            .collect());
    };
    listed(value.text()?, range).map_err(|p| value.error(p))
}

/// `none`, or a comma-separated list of ports and `A-B` ranges inside `range`.
fn listed(text: &str, range: PortRange) -> Result<Vec<u16>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut ports = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let excluded = if entry.contains('-') {
            port_range(entry)?
        } else {
            port(entry).map(|p| PortRange { start: p, end: p })?
        };
        if !inside(excluded, range) {
            return Err(format!("{entry} is outside the range {range}"));
        }
        ports.extend(excluded.iter());
    }
    ports.sort_unstable();
    ports.dedup();
    if ports.len() == range.len() {
        return Err(format!(
            "this excludes every port of the range {range}; leave at least one"
        ));
    }
    Ok(ports)
}

fn inside(ports: PortRange, range: PortRange) -> bool {
    range.contains(ports.start) && range.contains(ports.end)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{error, serve};
    use crate::config::*;

    fn pool(name: &str, start: u16, end: u16) -> Pool {
        let range = PortRange { start, end };
        Pool {
            name: name.to_string(),
            range,
        }
    }

    #[test]
    fn pools_keep_the_order_given() {
        let args = [
            "--pool",
            "web=4000-4999",
            "--pool=db=3000-3099,ci_1=5000-5000",
        ];
        let expected = [
            pool("web", 4000, 4999),
            pool("db", 3000, 3099),
            pool("ci_1", 5000, 5000),
        ];
        assert_eq!(serve(&args, &[]).pools, expected);
    }

    #[test]
    fn pool_flags_replace_the_variable() {
        let vars = [("DYNPORT_POOLS", "a=3000-3009, b=3010-3019")];
        assert_eq!(
            serve(&[], &vars).pools,
            [pool("a", 3000, 3009), pool("b", 3010, 3019)]
        );
        assert_eq!(
            serve(&["--pool", "c=4000-4001"], &vars).pools,
            [pool("c", 4000, 4001)]
        );
    }

    #[test]
    fn adjacent_pools_are_accepted() {
        let args = ["--pool", "b=4000-4999", "--pool", "a=3000-3999"];
        assert_eq!(serve(&args, &[]).pools.len(), 2);
    }

    #[test]
    fn overlapping_pools_are_refused() {
        assert_eq!(
            error(&["--pool", "api=3500-3600", "--pool", "web=3000-3999"], &[]),
            "--pool: pool web (3000-3999) overlaps pool api (3500-3600)"
        );
        assert_eq!(
            error(&[], &[("DYNPORT_POOLS", "a=3000-3010,b=3010-3020")]),
            "DYNPORT_POOLS: pool a (3000-3010) overlaps pool b (3010-3020)"
        );
    }

    #[test]
    fn pool_outside_the_range_is_refused() {
        assert_eq!(
            error(&["--pool", "web=2000-3999"], &[]),
            "--pool: pool web (2000-3999) is not inside the range 3000-9000"
        );
        assert_eq!(
            error(&["--range", "3000-3999", "--pool", "web=3900-4000"], &[]),
            "--pool: pool web (3900-4000) is not inside the range 3000-3999"
        );
    }

    #[test]
    fn bad_pools_are_refused_naming_the_fault() {
        let cases = [
            (
                "default=3000-3999",
                "the pool name default is reserved: it is always the whole range",
            ),
            (
                "Web=3000-3999",
                "pool name \"Web\" may hold only a-z, 0-9, _ and -, at least one",
            ),
            (
                "=3000-3999",
                "pool name \"\" may hold only a-z, 0-9, _ and -, at least one",
            ),
            (
                "web",
                "\"web\" is not a pool; give NAME=START-END, like web=3000-3999",
            ),
            ("web=4000-3000", "pool web: start 4000 is above end 3000"),
            (
                "web=3000-3001,",
                "\"\" is not a pool; give NAME=START-END, like web=3000-3999",
            ),
            ("web=3000-3001,web=4000-4001", "pool web is given twice"),
        ];
        for (text, problem) in cases {
            assert_eq!(error(&["--pool", text], &[]), format!("--pool: {problem}"));
        }
    }

    #[test]
    fn exclude_defaults_to_the_browser_refused_ports_inside_the_range() {
        assert_eq!(
            serve(&["--range", "5000-6000"], &[]).exclude,
            [5060, 5061, 6000]
        );
        assert_eq!(serve(&["--range", "10000-10100"], &[]).exclude, [10080]);
        assert_eq!(serve(&["--range", "7000-8000"], &[]).exclude, [0u16; 0]);
    }

    #[test]
    fn exclude_takes_ports_and_ranges_sorted_once_each() {
        let s = serve(&["--exclude", "5061, 5060-5062,3659"], &[]);
        assert_eq!(s.exclude, [3659, 5060, 5061, 5062]);
        let s = serve(&[], &[("DYNPORT_EXCLUDE", "4000")]);
        assert_eq!(s.exclude, [4000]);
    }

    #[test]
    fn exclude_none_empties_the_list() {
        assert_eq!(serve(&["--exclude", "none"], &[]).exclude, [0u16; 0]);
        assert_eq!(
            serve(&[], &[("DYNPORT_EXCLUDE", "none")]).exclude,
            [0u16; 0]
        );
    }

    #[test]
    fn excluded_port_outside_the_range_is_refused() {
        assert_eq!(
            error(&["--exclude", "3659,10080"], &[]),
            "--exclude: 10080 is outside the range 3000-9000"
        );
        assert_eq!(
            error(&[], &[("DYNPORT_EXCLUDE", "8999-9001")]),
            "DYNPORT_EXCLUDE: 8999-9001 is outside the range 3000-9000"
        );
    }

    #[test]
    fn bad_exclude_lists_are_refused() {
        assert_eq!(
            error(&["--exclude", "3659,,4045"], &[]),
            "--exclude: \"\" is not a port number"
        );
        assert_eq!(
            error(&["--exclude", "5000-4000"], &[]),
            "--exclude: start 5000 is above end 4000"
        );
        assert_eq!(
            error(&["--range", "4000-4001", "--exclude", "4000-4001"], &[]),
            "--exclude: this excludes every port of the range 4000-4001; leave at least one"
        );
    }

    #[test]
    fn lease_ttl_is_bounded_to_a_week() {
        assert_eq!(
            error(&["--lease-ttl-secs", "0"], &[]),
            "--lease-ttl-secs: 0 is out of bounds; give 1 to 604800"
        );
        assert_eq!(
            error(&[], &[("DYNPORT_LEASE_TTL_SECS", "604801")]),
            "DYNPORT_LEASE_TTL_SECS: 604801 is out of bounds; give 1 to 604800"
        );
    }
}
