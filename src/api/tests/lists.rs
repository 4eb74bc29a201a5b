//! The filtered lists: leases by uid, pool and owner, ports by state, and
//! what a list does not do (read /proc per lease).

use super::*;

fn lease_as(f: &Fixture, uid: Option<u32>, body: &str) -> String {
    let (status, answer) = call_as(
        &f.app,
        from_uid(uid),
        "POST",
        "/api/v1/ports/lease",
        &[],
        body,
    );
    assert_eq!(status, 201, "{answer}");
    answer["lease"]["id"].as_str().unwrap().to_string()
}

/// The ids a list answers, in its order.
fn listed(f: &Fixture, target: &str) -> Vec<String> {
    let (status, answer) = call(&f.app, "GET", target, &[], "");
    assert_eq!(status, 200, "{target}: {answer}");
    let leases = answer["leases"].as_array().unwrap();
    leases
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn lease_lists_filter_by_uid_pool_and_owner() {
    let f = fixture("list-filters", None);
    let alice = lease_as(&f, Some(1000), r#"{"owner": "ci job 17"}"#);
    let bob = lease_as(&f, Some(1001), r#"{"owner": "web"}"#);
    let remote = lease_as(&f, None, "{}");
    let all = sorted(vec![alice.clone(), bob.clone(), remote.clone()]);
    let path = "/api/v1/ports/leases";
    assert_eq!(listed(&f, path), all);
    assert_eq!(listed(&f, &format!("{path}?uid=1000")), vec![alice.clone()]);
    assert_eq!(listed(&f, &format!("{path}?uid=remote")), vec![remote]);
    assert_eq!(
        listed(&f, &format!("{path}?uid=4242")),
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&f, &format!("{path}?owner=ci+job+17")),
        vec![alice.clone()]
    );
    assert_eq!(
        listed(&f, &format!("{path}?owner=ci%20job%2017")),
        vec![alice]
    );
    assert_eq!(listed(&f, &format!("{path}?pool=default")), all);
    assert_eq!(
        listed(&f, &format!("{path}?pool=web")),
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&f, &format!("{path}?uid=1001&owner=web&pool=default")),
        vec![bob]
    );
    assert_eq!(
        listed(&f, &format!("{path}?uid=1000&owner=web")),
        Vec::<String>::new()
    );
}

#[test]
fn lease_list_parameters_are_checked() {
    let f = fixture("list-bad", None);
    let cases = [
        (
            "?uid=alice",
            "uid: \"alice\" is not a uid (a number, or remote)",
        ),
        ("?uid=-1", "uid: \"-1\" is not a uid (a number, or remote)"),
        (
            "?color=red",
            "query: unknown parameter \"color\"; give uid, pool, owner",
        ),
        ("?pool=a&pool=b", "pool: given more than once"),
        ("?owner=%e9", "owner: \"%e9\" is not UTF-8 once decoded"),
    ];
    for (query, message) in cases {
        let (status, answer) = call(
            &f.app,
            "GET",
            &format!("/api/v1/ports/leases{query}"),
            &[],
            "",
        );
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(message)),
            "{query}"
        );
    }
}

#[test]
fn port_state_filters_by_state() {
    let f = fixture("state-filter", None);
    let (start, busy) = (f.range.start, f.range.start + 1);
    lease_as(&f, Some(OPERATOR), &format!(r#"{{"port": {}}}"#, start + 3));
    let ports = |query: &str| -> Vec<u16> {
        let target = format!("/api/v1/tools/port/state{query}");
        let (status, answer) = call(&f.app, "GET", &target, &[], "");
        assert_eq!(status, 200, "{query}: {answer}");
        assert_eq!(answer["counts"]["leased"], 1, "counts stay whole");
        let map = answer["ports"].as_object().unwrap();
        map.keys().map(|p| p.parse().unwrap()).collect()
    };
    assert_eq!(ports(""), vec![start, busy, start + 3]);
    assert_eq!(ports("?state=in_use"), vec![busy]);
    assert_eq!(ports("?state=server"), vec![start]);
    assert_eq!(ports("?state=leased"), vec![start + 3]);
    assert_eq!(ports("?state=excluded"), Vec::<u16>::new());
    let cases = [
        (
            "?state=free",
            "state: \"free\" is not in_use, leased, server or excluded",
        ),
        (
            "?state=leased&port=3000",
            "state: give port or state, not both",
        ),
        ("?port=1&port=2", "port: given more than once"),
        (
            "?verbose",
            "query: unknown parameter \"verbose\"; give port, state",
        ),
    ];
    for (query, message) in cases {
        let target = format!("/api/v1/tools/port/state{query}");
        let (status, answer) = call(&f.app, "GET", &target, &[], "");
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(message)),
            "{query}"
        );
    }
}

/// A list reads nothing per lease: a lease whose process exited stays
/// listed until the refresh thread ends it, while the lease asked for by id
/// (one read of /proc) is gone at once.
#[test]
fn a_list_does_not_look_up_each_leases_process() {
    let f = fixture("list-no-proc", None);
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let body = format!(r#"{{"pid": {}}}"#, child.id());
    let id = lease_as(&f, Some(OPERATOR), &body);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(listed(&f, "/api/v1/ports/leases"), vec![id.clone()]);
    let one = format!("/api/v1/ports/leases/{id}");
    assert_eq!(call(&f.app, "GET", &one, &[], "").0, 404);
    f.app.refresh().unwrap();
    assert_eq!(listed(&f, "/api/v1/ports/leases"), Vec::<String>::new());
}
