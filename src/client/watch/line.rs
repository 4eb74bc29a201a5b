//! Each event of the stream as one line: for people (`TIME KIND …`) or as
//! JSON. Every word comes from the server, which has it from its users:
//! no control character reaches the terminal.
#![forbid(unsafe_code)]

use super::sse::Event;
use crate::client::output::{clean, port_list};
use serde_json::Value;
use std::time::SystemTime;

/// The most changes of a `scan` event a line for people lists.
const SCAN_SHOWN: usize = 20;

/// `event` as a line for people, stamped with `at`, the time it came.
pub fn text(event: &Event, at: SystemTime) -> String {
    let data: Option<Value> = serde_json::from_str(&event.data).ok();
    let said = match (event.kind.as_str(), &data) {
        ("lease", Some(d)) => lease(d),
        ("release" | "expire", Some(d)) => ended(&event.kind, d),
        ("port", Some(d)) => format!("port {} -> {}", word(&d["from"]), word(&d["to"])),
        ("scan", Some(d)) => scan(d),
        ("name", Some(d)) => name(d),
        ("reset", Some(d)) => format!(
            "reset: events were missed (the server keeps them from id {} on); \
             reload what you show",
            word(&d["oldest"])
        ),
        (kind, _) => format!("{} {}", clean(kind), clean(&event.data)),
    };
    format!("{} {said}\n", crate::util::time::rfc3339(at))
}

/// `event` as one JSON line: `{"id":N,"event":"lease","data":{…}}`.
pub fn json(event: &Event) -> String {
    let id = match &event.id {
        Some(id) => match id.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(id.as_str()),
        },
        None => Value::Null,
    };
    let data = serde_json::from_str(&event.data).unwrap_or_else(|_| Value::from(&*event.data));
    let line = format!(
        r#"{{"id":{id},"event":{},"data":{data}}}"#,
        Value::from(event.kind.as_str())
    );
    escape_controls(&line) + "\n"
}

/// JSON escapes the control characters that serde_json leaves as they
/// are (DEL and the C1 controls), which a terminal may act on.
fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c.is_control() {
            true => out.push_str(&format!("\\u{:04x}", c as u32)),
            false => out.push(c),
        }
    }
    out
}

/// `lease ID ports P name N uid U owner "O" pid P expires T`.
fn lease(d: &Value) -> String {
    let mut line = format!("lease {} ports {}", word(&d["id"]), ports(&d["ports"]));
    if let Some(pool) = d["pool"].as_str().filter(|p| *p != "default") {
        line += &format!(" pool {}", clean(pool));
    }
    line += &holder(d);
    if !d["pid"].is_null() {
        line += &format!(" pid {}", word(&d["pid"]));
    }
    line + &format!(" expires {}", word(&d["expires_at"]))
}

/// `release ID ports P …` or `expire ID ports P … reason ttl`.
fn ended(kind: &str, d: &Value) -> String {
    let mut line = format!("{kind} {} ports {}", word(&d["id"]), ports(&d["ports"]));
    line += &holder(d);
    if kind == "expire" {
        line += &format!(" reason {}", word(&d["reason"]));
    }
    line
}

/// ` name N uid U owner "O"`: the name and owner only when there are.
fn holder(d: &Value) -> String {
    let mut words = String::new();
    if !d["name"].is_null() {
        words += &format!(" name {}", word(&d["name"]));
    }
    words += &format!(" uid {}", uid(&d["uid"]));
    if let Some(owner) = d["owner"].as_str() {
        // Quoted, as an owner is free text: spaces, quotes and all.
        words += &format!(" owner {:?}", clean(owner));
    }
    words
}

/// `scan 2 ports changed: 3007 free->in_use, 3008 in_use->free`.
fn scan(d: &Value) -> String {
    let changes = d["changes"].as_array().map_or(&[][..], Vec::as_slice);
    let shown: Vec<String> = changes
        .iter()
        .take(SCAN_SHOWN)
        .map(|c| {
            let (port, from, to) = (word(&c["port"]), word(&c["from"]), word(&c["to"]));
            format!("{port} {from}->{to}")
        })
        .collect();
    let plural = if changes.len() == 1 { "" } else { "s" };
    let mut line = format!(
        "scan {} port{plural} changed: {}",
        changes.len(),
        shown.join(", ")
    );
    if changes.len() > SCAN_SHOWN {
        line += &format!(", and {} more", changes.len() - SCAN_SHOWN);
    }
    line
}

/// `name web port 3007 live uid 1000`, or `name web gone`.
fn name(d: &Value) -> String {
    if d["gone"] == true {
        return format!("name {} gone", word(&d["name"]));
    }
    let live = if d["live"] == true {
        "live"
    } else {
        "not live"
    };
    format!(
        "name {} port {} {live} uid {}",
        word(&d["name"]),
        word(&d["port"]),
        uid(&d["uid"])
    )
}

/// A uid, or `remote` for a lease of a remote caller.
fn uid(v: &Value) -> String {
    match v {
        Value::Null => "remote".to_string(),
        other => word(other),
    }
}

/// Ports with runs shortened, as `dynport leases` shows them.
fn ports(v: &Value) -> String {
    let list = v.as_array().map_or(&[][..], Vec::as_slice);
    let ports: Vec<u16> = list
        .iter()
        .filter_map(|p| p.as_u64()?.try_into().ok())
        .collect();
    match ports.len() == list.len() {
        true => port_list(&ports),
        false => clean(&v.to_string()),
    }
}

/// A value as one word: a string without its quotes, anything else as
/// JSON; `-` when missing.
fn word(v: &Value) -> String {
    match v {
        Value::String(s) => clean(s),
        Value::Null => "-".to_string(),
        other => clean(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn line(kind: &str, data: &str) -> String {
        let event = Event {
            id: Some("5".to_string()),
            kind: kind.to_string(),
            data: data.to_string(),
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_796_618_401);
        text(&event, at)
    }

    #[test]
    fn each_kind_reads_as_one_line() {
        let lease = r#"{"id":"6c10aa","ports":[41001,41002,41003],"pool":"default",
            "owner":"ci","uid":1000,"pid":null,"expires_at":"2026-12-07T04:45:01Z",
            "name":"web"}"#;
        let cases = [
            (
                "lease",
                lease,
                "lease 6c10aa ports 41001-41003 name web uid 1000 owner \"ci\" expires 2026-12-07T04:45:01Z",
            ),
            (
                "release",
                r#"{"id":"6c10aa","ports":[41001],"owner":null,"uid":null,"name":null,"reason":"released"}"#,
                "release 6c10aa ports 41001 uid remote",
            ),
            (
                "expire",
                r#"{"id":"6c10aa","ports":[41001],"owner":"a b","uid":7,"name":"web","reason":"owner_exited"}"#,
                "expire 6c10aa ports 41001 name web uid 7 owner \"a b\" reason owner_exited",
            ),
            ("port", r#"{"from":3000,"to":3005}"#, "port 3000 -> 3005"),
            (
                "scan",
                r#"{"changes":[{"port":3007,"from":"free","to":"in_use"}]}"#,
                "scan 1 port changed: 3007 free->in_use",
            ),
            (
                "name",
                r#"{"name":"web","port":3007,"uid":1000,"live":true}"#,
                "name web port 3007 live uid 1000",
            ),
            ("name", r#"{"name":"web","gone":true}"#, "name web gone"),
            (
                "reset",
                r#"{"oldest":1200}"#,
                "reset: events were missed (the server keeps them from id 1200 on); reload what you show",
            ),
            ("later", "not json", "later not json"),
        ];
        for (kind, data, said) in cases {
            assert_eq!(
                line(kind, data),
                format!("2026-12-07T04:40:01Z {said}\n"),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_long_scan_says_how_many_it_leaves_out() {
        let changes: Vec<String> = (0..25)
            .map(|i| format!(r#"{{"port":{},"from":"free","to":"leased"}}"#, 3000 + i))
            .collect();
        let data = format!(r#"{{"changes":[{}]}}"#, changes.join(","));
        let said = line("scan", &data);
        assert!(
            said.contains(" 25 ports changed: 3000 free->leased, 3001"),
            "{said}"
        );
        assert!(said.ends_with("3019 free->leased, and 5 more\n"), "{said}");
    }

    #[test]
    fn no_control_character_reaches_the_terminal() {
        let data =
            "{\"id\":\"x\",\"ports\":[1],\"owner\":\"\\u001b[31mred\\u009b\\u007f\",\"uid\":1}";
        let said = line("release", data);
        assert!(said.ends_with("owner \"?[31mred??\"\n"), "{said}");
        let said = line("e\u{1b}vil", "\u{1b}]0;x");
        assert!(said.ends_with(" e?vil ?]0;x\n"), "{said}");
        let event = Event {
            id: Some("9".to_string()),
            kind: "release".to_string(),
            data: data.to_string(),
        };
        let printed = json(&event);
        assert!(
            !printed.trim_end().chars().any(char::is_control),
            "{printed}"
        );
        let back: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(back["data"]["owner"], "\u{1b}[31mred\u{9b}\u{7f}");
    }

    #[test]
    fn json_lines_keep_id_kind_and_data() {
        let event = Event {
            id: Some("12".to_string()),
            kind: "port".to_string(),
            data: r#"{"from":1,"to":2}"#.to_string(),
        };
        assert_eq!(
            json(&event),
            "{\"id\":12,\"event\":\"port\",\"data\":{\"from\":1,\"to\":2}}\n"
        );
        let event = Event {
            id: None,
            kind: "message".to_string(),
            data: "plain".to_string(),
        };
        assert_eq!(
            json(&event),
            "{\"id\":null,\"event\":\"message\",\"data\":\"plain\"}\n"
        );
    }
}
