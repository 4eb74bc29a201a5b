//! `--allow-host`: the names besides IP addresses and `localhost` that a
//! request's `Host` header may give, for a dynport reached through a name
//! (a reverse proxy, an internal DNS name).

use super::ConfigError;
use super::raw::{self, Raw};

/// The longest host name DNS can carry.
const MAX_NAME: usize = 253;
/// The longest label of a host name.
const MAX_LABEL: usize = 63;

/// The names of `--allow-host` (repeatable, or comma-separated) or
/// `DYNPORT_ALLOW_HOSTS`, lower-cased.
pub fn allow_hosts<L>(raw: &Raw<L>) -> Result<Vec<String>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let mut names = Vec::new();
    for value in raw.all(raw::ALLOW_HOST) {
        for entry in value.text()?.split(',') {
            let name = host_name(entry.trim()).map_err(|p| value.error(p))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// A DNS host name as RFC 1123 has it: dot-separated labels of letters,
/// digits and `-`, none empty or starting or ending with `-`.
fn host_name(entry: &str) -> Result<String, String> {
    if entry.is_empty() {
        return Err("an empty host name; give names like dynport.internal, \
                    separated by commas"
            .to_string());
    }
    let label_ok = |l: &str| {
        (1..=MAX_LABEL).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if entry.len() > MAX_NAME || !entry.split('.').all(label_ok) {
        return Err(format!(
            "{entry:?} is not a host name: give letters, digits, - and . only \
             (like dynport.internal), without a scheme, port or trailing dot"
        ));
    }
    Ok(entry.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{error, serve};

    #[test]
    fn allowed_hosts_come_from_flags_or_the_variable_lower_cased() {
        assert_eq!(serve(&[], &[]).allow_hosts, Vec::<String>::new());
        let s = serve(
            &["--allow-host", "Dynport.Internal", "--allow-host", "a,b-c"],
            &[],
        );
        assert_eq!(s.allow_hosts, ["dynport.internal", "a", "b-c"]);
        let vars = [("DYNPORT_ALLOW_HOSTS", "x.example, y.example,x.example")];
        assert_eq!(serve(&[], &vars).allow_hosts, ["x.example", "y.example"]);
        let s = serve(&["--allow-host", "flag.example"], &vars);
        assert_eq!(s.allow_hosts, ["flag.example"], "a flag beats its variable");
    }

    #[test]
    fn empty_or_malformed_host_names_are_refused_naming_the_flag() {
        assert_eq!(
            error(&["--allow-host", ""], &[]),
            "--allow-host: the value is empty"
        );
        assert_eq!(
            error(&[], &[("DYNPORT_ALLOW_HOSTS", "a.example,,b.example")]),
            "DYNPORT_ALLOW_HOSTS: an empty host name; give names like dynport.internal, \
             separated by commas"
        );
        let long_label = "a".repeat(64);
        let long_name = ["a"; 128].join(".");
        for bad in [
            "http://x.example",
            "x.example:8080",
            "x.example.",
            "*.example",
            "-x.example",
            "x-.example",
            "x..example",
            "x_y.example",
            "[::1]",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert_eq!(
                error(&["--allow-host", bad], &[]),
                format!(
                    "--allow-host: {bad:?} is not a host name: give letters, digits, - and . \
                     only (like dynport.internal), without a scheme, port or trailing dot"
                )
            );
        }
    }
}
