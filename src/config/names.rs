//! The settings of names: how long a name stays its owner's after its last
//! lease ended, how many names one principal may hold, and where names are
//! routed (the routes domains and the routes-only port).

use super::ConfigError;
use super::raw::{self, Raw};
use crate::ports::PortRange;

/// Days a name stays its owner's after its last lease ended, by default.
pub const DEFAULT_RETENTION_DAYS: u64 = 7;
/// The longest retention: ten years.
pub const MAX_RETENTION_DAYS: u64 = 3650;
/// Names one principal may hold, by default.
pub const DEFAULT_MAX_PER_UID: usize = 64;
/// The most names one principal may be allowed.
pub const MAX_MAX_PER_UID: u64 = 65_535;
/// The routes domain when none is given.
pub const DEFAULT_DOMAIN: &str = "localhost";

/// `--name-retention-days` and `--max-names-per-uid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSettings {
    /// 0: a name is forgotten as soon as its last lease ends.
    pub retention_days: u64,
    /// Operators are not counted.
    pub max_per_uid: usize,
}

impl NameSettings {
    /// The retention as a duration.
    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retention_days * 86_400)
    }
}

/// `--routes-domain` and `--routes-port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSettings {
    /// Lowercased DNS names, the first one in the URLs dynport shows.
    pub domains: Vec<String>,
    /// A listener that only routes, outside the range.
    pub port: Option<u16>,
}

pub fn names<L: Fn(&str) -> Option<String>>(raw: &Raw<L>) -> Result<NameSettings, ConfigError> {
    let days = match raw.get(raw::NAME_RETENTION_DAYS) {
        Some(value) => {
            raw::bounded(value.text()?, &(0..=MAX_RETENTION_DAYS)).map_err(|p| value.error(p))?
        }
        None => DEFAULT_RETENTION_DAYS,
    };
    let max = match raw.get(raw::MAX_NAMES_PER_UID) {
        Some(value) => raw::bounded(value.text()?, &(1..=MAX_MAX_PER_UID))
            .map_err(|p| value.error(p))? as usize,
        None => DEFAULT_MAX_PER_UID,
    };
    Ok(NameSettings {
        retention_days: days,
        max_per_uid: max,
    })
}

/// The routes domains and port; the port may be neither in `range` nor
/// `fallback_port`, which dynport's API may take.
pub fn routes<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    range: PortRange,
    fallback_port: u16,
) -> Result<RouteSettings, ConfigError> {
    let mut domains = Vec::new();
    for value in raw.all(raw::ROUTES_DOMAIN) {
        for entry in value.text()?.split(',') {
            let domain = domain(entry.trim()).map_err(|p| value.error(p))?;
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
    }
    if domains.is_empty() {
        domains.push(DEFAULT_DOMAIN.to_string());
    }
    let port = match raw.get(raw::ROUTES_PORT) {
        Some(value) if value.text()? == "none" => None,
        Some(value) => {
            let port = raw::port(value.text()?).map_err(|p| value.error(p))?;
            if range.contains(port) {
                return Err(value.error(format!(
                    "port {port} is inside the managed range {range}; give a port outside it, like 80"
                )));
            }
            if port == fallback_port {
                return Err(value.error(format!(
                    "port {port} is the --fallback-port, which the API may take; give another"
                )));
            }
            Some(port)
        }
        None => None,
    };
    Ok(RouteSettings { domains, port })
}

/// A routes domain: a DNS name by the rules of a name, lowercased.
fn domain(entry: &str) -> Result<String, String> {
    crate::ports::names::parse_name(entry).map_err(|problem| {
        let problem = problem
            .strip_prefix("name: ")
            .unwrap_or(&problem)
            .to_string();
        format!("{entry:?} is not a domain: {problem}")
    })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{error, serve};

    #[test]
    fn names_take_their_defaults_and_bounds() {
        let s = serve(&[], &[]);
        assert_eq!((s.names.retention_days, s.names.max_per_uid), (7, 64));
        assert_eq!(s.routes.domains, ["localhost"]);
        assert_eq!(s.routes.port, None);
        let s = serve(
            &["--name-retention-days", "0", "--max-names-per-uid", "3"],
            &[],
        );
        assert_eq!((s.names.retention_days, s.names.max_per_uid), (0, 3));
        let s = serve(
            &[],
            &[
                ("DYNPORT_NAME_RETENTION_DAYS", "3650"),
                ("DYNPORT_MAX_NAMES_PER_UID", "1"),
            ],
        );
        assert_eq!((s.names.retention_days, s.names.max_per_uid), (3650, 1));
        assert_eq!(
            error(&["--name-retention-days", "3651"], &[]),
            "--name-retention-days: 3651 is out of bounds; give 0 to 3650"
        );
        assert_eq!(
            error(&["--max-names-per-uid", "0"], &[]),
            "--max-names-per-uid: 0 is out of bounds; give 1 to 65535"
        );
    }

    #[test]
    fn routes_domains_replace_localhost_lowercased_once_each() {
        let s = serve(
            &[
                "--routes-domain",
                "Dev.Test",
                "--routes-domain",
                "a.b,dev.test",
            ],
            &[],
        );
        assert_eq!(s.routes.domains, ["dev.test", "a.b"]);
        let s = serve(&[], &[("DYNPORT_ROUTES_DOMAINS", "x.internal, y")]);
        assert_eq!(s.routes.domains, ["x.internal", "y"]);
        assert_eq!(
            error(&["--routes-domain", "a..b"], &[]),
            "--routes-domain: \"a..b\" is not a domain: has an empty label (two dots, or a dot at an end)"
        );
        assert!(error(&["--routes-domain", "-x"], &[]).starts_with("--routes-domain: \"-x\""));
    }

    #[test]
    fn the_routes_port_lies_outside_the_range_and_the_fallback_port() {
        let s = serve(&["--routes-port", "80"], &[]);
        assert_eq!(s.routes.port, Some(80));
        let s = serve(&[], &[("DYNPORT_ROUTES_PORT", "1355")]);
        assert_eq!(s.routes.port, Some(1355));
        let s = serve(
            &["--routes-port", "none"],
            &[("DYNPORT_ROUTES_PORT", "1355")],
        );
        assert_eq!(s.routes.port, None);
        assert_eq!(
            error(&["--routes-port", "3500"], &[]),
            "--routes-port: port 3500 is inside the managed range 3000-9000; \
             give a port outside it, like 80"
        );
        assert_eq!(
            error(&["--range", "4000-4999", "--routes-port", "3000"], &[]),
            "--routes-port: port 3000 is the --fallback-port, which the API may take; give another"
        );
        assert_eq!(
            error(&["--routes-port", "0"], &[]),
            "--routes-port: port 0 is not a valid port"
        );
    }
}
