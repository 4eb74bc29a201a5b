//! `dynport who PORT` for people: the sockets holding a port as a table,
//! with user names from this host's `/etc/passwd` when the server runs on
//! this host (a uid of another host means nothing here).
#![forbid(unsafe_code)]

use super::api::Holder;
use super::output::{clean, table as aligned};
use super::target::Target;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

/// The user database read for names; NSS sources beyond it are not asked.
const PASSWD: &str = "/etc/passwd";

/// A header and one row per socket, and a last line when the server's
/// lookup ran out of time; when no socket holds the port, one line saying
/// so with the port's state from `answer`.
pub fn table(
    port: u16,
    answer: &Value,
    holders: &[Holder],
    names: &HashMap<u32, String>,
) -> String {
    if holders.is_empty() {
        let state = answer["state"]
            .as_str()
            .map_or_else(|| "-".to_string(), clean);
        return format!("no socket holds port {port} (state: {state})\n");
    }
    let dash = || "-".to_string();
    let header = ["PROTO", "ADDRESS", "UID", "USER", "PID", "COMMAND"];
    let mut rows = vec![header.map(str::to_string).to_vec()];
    rows.extend(holders.iter().map(|h| {
        vec![
            h.protocol.as_str().to_string(),
            h.address.to_string(),
            h.uid.to_string(),
            names.get(&h.uid).map_or_else(dash, |n| clean(n)),
            h.pid.map_or_else(dash, |p| p.to_string()),
            h.command.as_deref().map_or_else(dash, clean),
        ]
    }));
    let mut text = aligned(&rows);
    if answer["complete"] == Value::Bool(false) {
        text.push_str(INCOMPLETE);
    }
    text
}

/// Said under the table when the lookup stopped at its budget: the sockets
/// are all there, but a `-` may be a process not looked into in time.
const INCOMPLETE: &str = "the list may be incomplete: the lookup of processes stopped \
                          after 100 ms, so a - under PID may be one not looked into\n";

/// User names by uid, from this host's `/etc/passwd`; none when the server
/// is not on this host or the file cannot be read.
pub fn names(target: &Target) -> HashMap<u32, String> {
    if !on_this_host(target) {
        return HashMap::new();
    }
    std::fs::read_to_string(PASSWD)
        .map(|text| parse_passwd(&text))
        .unwrap_or_default()
}

/// Whether the server shares this host's users: reached over its Unix
/// socket, or at a loopback address.
fn on_this_host(target: &Target) -> bool {
    let host = target.url.host.as_str();
    target.unix.is_some()
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `name:password:uid:…` lines; the first name of a uid wins, as
/// getpwuid(3) answers.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(uid)) = (fields.next(), fields.nth(1)) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>()
            && !name.is_empty()
        {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::target::{BaseUrl, Source};
    use crate::scan::Proto;
    use serde_json::json;

    fn holder(
        protocol: Proto,
        address: &str,
        uid: u32,
        pid: Option<u32>,
        command: Option<&str>,
    ) -> Holder {
        Holder {
            protocol,
            address: address.parse().unwrap(),
            uid,
            pid,
            command: command.map(str::to_string),
        }
    }

    #[test]
    fn table_has_one_row_per_socket_and_dashes_for_what_is_hidden() {
        let holders = [
            holder(Proto::Tcp, "127.0.0.1", 1000, Some(4242), Some("python3")),
            holder(Proto::Udp, "::", 0, None, None),
        ];
        let names = HashMap::from([(1000, "alice".to_string())]);
        let out = table(4100, &json!({"state": "in_use"}), &holders, &names);
        assert_eq!(
            out,
            "PROTO  ADDRESS    UID   USER   PID   COMMAND\n\
             tcp    127.0.0.1  1000  alice  4242  python3\n\
             udp    ::         0     -      -     -\n"
        );
    }

    #[test]
    fn an_incomplete_lookup_says_so_under_the_table() {
        let holders = [holder(Proto::Tcp, "127.0.0.1", 1000, None, None)];
        let answer = json!({"state": "in_use", "complete": false});
        let out = table(4100, &answer, &holders, &HashMap::new());
        assert_eq!(
            out,
            "PROTO  ADDRESS    UID   USER  PID  COMMAND\n\
             tcp    127.0.0.1  1000  -     -    -\n\
             the list may be incomplete: the lookup of processes stopped after 100 ms, \
             so a - under PID may be one not looked into\n"
        );
        let answer = json!({"state": "in_use", "complete": true});
        let out = table(4100, &answer, &holders, &HashMap::new());
        assert_eq!(out.lines().count(), 2);
    }

    #[test]
    fn a_port_nobody_holds_says_so_with_its_state() {
        let out = table(4100, &json!({"state": "leased"}), &[], &HashMap::new());
        assert_eq!(out, "no socket holds port 4100 (state: leased)\n");
    }

    #[test]
    fn a_command_name_cannot_break_the_table() {
        let holders = [holder(
            Proto::Tcp,
            "0.0.0.0",
            7,
            Some(9),
            Some("evil\n\x1b[2J"),
        )];
        let out = table(1, &json!({}), &holders, &HashMap::new());
        assert!(out.ends_with("evil??[2J\n"), "{out:?}");
        assert_eq!(out.lines().count(), 2);
    }

    #[test]
    fn passwd_names_uids_and_the_first_name_wins() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    alice:x:1000:1000::/home/alice:/bin/sh\n\
                    toor:x:0:0::/:/bin/sh\n\
                    broken line\n\
                    :x:5:5::/:\n\
                    bob:x:notanumber:1::/:\n";
        let names = parse_passwd(text);
        assert_eq!(
            names,
            HashMap::from([(0, "root".to_string()), (1000, "alice".to_string())])
        );
    }

    #[test]
    fn names_are_used_only_for_a_server_on_this_host() {
        let target = |host: &str, unix: bool| Target {
            url: BaseUrl::parse(&format!("http://{host}:3456")).unwrap(),
            source: Source::Flag,
            unix: unix.then(|| "state/dynport.sock".into()),
            owner: None,
            dir: None,
        };
        assert!(on_this_host(&target("127.0.0.1", false)));
        assert!(on_this_host(&target("[::1]", false)));
        assert!(on_this_host(&target("LOCALHOST", false)));
        assert!(on_this_host(&target("10.1.2.3", true)));
        assert!(!on_this_host(&target("10.1.2.3", false)));
        assert!(!on_this_host(&target("ports.example.org", false)));
        assert!(names(&target("10.1.2.3", false)).is_empty());
    }
}
