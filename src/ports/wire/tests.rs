//! The wire contract: what each body accepts and the exact message for
//! what it refuses.

use super::*;

fn lease(body: &str) -> Result<LeaseBody, String> {
    parse(body.as_bytes())
}

#[test]
fn an_empty_body_is_the_default() {
    assert_eq!(lease(""), Ok(LeaseBody::default()));
    assert_eq!(lease(" \r\n\t"), Ok(LeaseBody::default()));
    assert_eq!(lease("{}"), Ok(LeaseBody::default()));
    assert_eq!(parse::<RenewBody>(b""), Ok(RenewBody::default()));
    assert_eq!(
        parse::<ChangePortBody>(b"\n"),
        Ok(ChangePortBody::default())
    );
}

#[test]
fn every_lease_field_is_read_and_null_is_absent() {
    let body = r#"{"count": 1, "port": 4100, "pool": "web", "ttl_secs": 600,
                   "owner": "ci job 17", "pid": 31337}"#;
    let expected = LeaseBody {
        count: Some(1),
        port: Some(4100),
        pool: Some("web".to_string()),
        ttl_secs: Some(600),
        owner: Some("ci job 17".to_string()),
        pid: Some(31337),
        protocol: None,
        name: None,
    };
    assert_eq!(lease(body), Ok(expected));
    assert_eq!(
        lease(r#"{"owner": null, "count": null}"#),
        Ok(LeaseBody::default())
    );
}

#[test]
fn a_body_that_is_not_a_json_object_is_refused() {
    assert_eq!(lease("[1]"), Err("body: must be a JSON object".to_string()));
    assert_eq!(
        lease("null"),
        Err("body: must be a JSON object".to_string())
    );
    assert_eq!(lease("7"), Err("body: must be a JSON object".to_string()));
    assert_eq!(
        lease("not json"),
        Err("body: not valid JSON: expected ident at line 1 column 2".to_string())
    );
    assert_eq!(
        lease(r#"{"count": 1} {}"#),
        Err("body: not valid JSON: trailing characters at line 1 column 14".to_string())
    );
}

#[test]
fn unknown_fields_are_named_in_every_body() {
    assert_eq!(
        lease(r#"{"count": 1, "ttl_sec": 5}"#),
        Err("ttl_sec: unknown field `ttl_sec`, expected one of `count`, `port`, `pool`, `ttl_secs`, `owner`, `pid`, `protocol`, `name`".to_string())
    );
    assert_eq!(
        parse::<RenewBody>(br#"{"ttl": 5}"#),
        Err("ttl: unknown field `ttl`, expected `ttl_secs`".to_string())
    );
    assert_eq!(
        parse::<ChangePortBody>(br#"{"prot": 5}"#),
        Err("prot: unknown field `prot`, expected `port`".to_string())
    );
}

#[test]
fn repeated_keys_are_named_in_every_body() {
    let twice = |key: &str| format!("{key}: given more than once; give each field once");
    assert_eq!(lease(r#"{"count":1,"count":2}"#), Err(twice("count")));
    assert_eq!(
        lease(r#"{"owner":"a","pid":7,"owner":"a"}"#),
        Err(twice("owner"))
    );
    let renew = parse::<RenewBody>(br#"{"ttl_secs":1,"ttl_secs":1}"#);
    assert_eq!(renew, Err(twice("ttl_secs")));
    let change = parse::<ChangePortBody>(br#"{"port":3000,"port":3001}"#);
    assert_eq!(change, Err(twice("port")));
    // A repeat is refused even of a field no body knows.
    assert_eq!(lease(r#"{"x":1,"x":1}"#), Err(twice("x")));
}

#[test]
fn wrong_types_name_the_field() {
    assert_eq!(
        lease(r#"{"count": "2"}"#),
        Err(r#"count: invalid type: string "2", expected u32"#.to_string())
    );
    assert_eq!(
        lease(r#"{"owner": 5}"#),
        Err("owner: invalid type: integer `5`, expected a string".to_string())
    );
    assert_eq!(
        parse::<ChangePortBody>(br#"{"port": 70000}"#),
        Err("port: invalid value: integer `70000`, expected u16".to_string())
    );
    assert_eq!(
        parse::<RenewBody>(br#"{"ttl_secs": -1}"#),
        Err("ttl_secs: invalid value: integer `-1`, expected u64".to_string())
    );
}

#[test]
fn values_outside_the_limits_name_the_field() {
    let cases = [
        (
            r#"{"count": 0}"#,
            "count: must be an integer from 1 to 64, got 0",
        ),
        (
            r#"{"count": 65}"#,
            "count: must be an integer from 1 to 64, got 65",
        ),
        (
            r#"{"port": 0}"#,
            "port: must be an integer from 1 to 65535, got 0",
        ),
        (
            r#"{"port": 4100, "count": 2}"#,
            "count: must be 1 when port asks for one exact port",
        ),
        (
            r#"{"ttl_secs": 604801}"#,
            "ttl_secs: must be an integer from 1 to 604800, got 604801",
        ),
        (
            r#"{"pid": 0}"#,
            "pid: must be an integer from 1 to 4294967295, got 0",
        ),
        (
            r#"{"pool": ""}"#,
            "pool: must be 1 to 64 characters long, got 0",
        ),
        (
            r#"{"owner": ""}"#,
            "owner: must be 1 to 128 characters long, got 0",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(lease(body), Err(message.to_string()), "{body}");
    }
    let long = format!(r#"{{"owner": "{}"}}"#, "é".repeat(129));
    assert_eq!(
        lease(&long),
        Err("owner: must be 1 to 128 characters long, got 129".to_string())
    );
    let longest = "é".repeat(128);
    assert_eq!(
        lease(&format!(r#"{{"owner": "{longest}"}}"#))
            .unwrap()
            .owner,
        Some(longest)
    );
    assert_eq!(
        parse::<RenewBody>(br#"{"ttl_secs": 0}"#),
        Err("ttl_secs: must be an integer from 1 to 604800, got 0".to_string())
    );
    assert_eq!(
        parse::<ChangePortBody>(br#"{"port": 0}"#),
        Err("port: must be an integer from 1 to 65535, got 0".to_string())
    );
}

#[test]
fn an_owner_must_be_printable() {
    assert_eq!(
        lease(r#"{"owner": "two\nlines"}"#),
        Err("owner: contains a control character (U+000A)".to_string())
    );
    assert_eq!(
        owner("--owner", "evil\u{202E}txt"),
        Err("--owner: contains a bidirectional control (U+202E)".to_string())
    );
    assert_eq!(owner("--owner", "Zoë's build 🚀"), Ok(()));
}

#[test]
fn bodies_omit_what_is_not_given() {
    assert_eq!(serde_json::to_string(&LeaseBody::default()).unwrap(), "{}");
    assert_eq!(serde_json::to_string(&RenewBody::default()).unwrap(), "{}");
    let body = LeaseBody {
        count: Some(3),
        pool: Some("web".to_string()),
        ..LeaseBody::default()
    };
    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        r#"{"count":3,"pool":"web"}"#
    );
}

#[test]
fn a_body_written_is_read_back_unchanged() {
    let body = LeaseBody {
        count: Some(1),
        port: Some(4100),
        pool: Some("web".to_string()),
        ttl_secs: Some(MAX_TTL_SECS),
        owner: Some("构建 任务".to_string()),
        pid: Some(u32::MAX),
        protocol: Some(crate::ports::lease::Protocol::Udp),
        name: Some("fix-ui.shop".to_string()),
    };
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(parse::<LeaseBody>(&bytes), Ok(body));
    let renew = RenewBody { ttl_secs: Some(1) };
    assert_eq!(
        parse::<RenewBody>(&serde_json::to_vec(&renew).unwrap()),
        Ok(renew)
    );
}
