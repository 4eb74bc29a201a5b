//! Names through the router: in the lease body and the lease JSON, the
//! list, aliases, and the refusals with their exact words.
use super::*;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;

fn as_user(f: &Fixture, uid: u32, method: &str, target: &str, body: &str) -> (u16, Value) {
    call_as(&f.app, from_uid(Some(uid)), method, target, &[], body)
}

#[test]
fn a_lease_carries_its_name_and_every_lease_json_shows_it() {
    let f = fixture("names-lease", None);
    let (status, granted) = as_user(
        &f,
        ALICE,
        "POST",
        "/api/v1/ports/lease",
        r#"{"name":"Web"}"#,
    );
    assert_eq!(status, 201, "{granted}");
    let lease = &granted["lease"];
    assert_eq!(lease["name"], "web");
    let id = lease["id"].as_str().unwrap();
    let port = lease["ports"][0].as_u64().unwrap();
    let (_, one) = call(
        &f.app,
        "GET",
        &format!("/api/v1/ports/leases/{id}"),
        &[],
        "",
    );
    assert_eq!(one["lease"]["name"], "web");
    let (_, list) = call(&f.app, "GET", "/api/v1/ports/leases", &[], "");
    assert_eq!(list["leases"][0]["name"], "web");
    let (_, renewed) = as_user(
        &f,
        ALICE,
        "POST",
        &format!("/api/v1/ports/leases/{id}/renew"),
        "",
    );
    assert_eq!(renewed["lease"]["name"], "web", "renew keeps it");
    let (_, plain) = as_user(&f, ALICE, "POST", "/api/v1/ports/lease", "");
    assert_eq!(plain["lease"]["name"], Value::Null);
    let (status, names) = call(&f.app, "GET", "/api/v1/names", &[], "");
    assert_eq!(status, 200);
    let server = f.range.start;
    assert_eq!(
        names["names"],
        json!([{"name": "web", "port": port, "uid": ALICE, "lease_id": id, "alias": false,
                "live": true, "url": format!("http://web.localhost:{server}/"),
                "retained_until": null}])
    );
    assert!(names["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(f.app.name_port("web"), Some(port as u16));
    assert_eq!(f.app.live_names(), [("web".to_string(), port as u16)]);
    assert_eq!(
        name_url(&f.app, "web"),
        format!("http://web.localhost:{server}/")
    );
}

#[test]
fn a_bad_name_is_400_naming_name_and_changes_nothing() {
    let f = fixture("names-bad", None);
    let before = std::fs::read(f.app.store().path()).unwrap();
    let cases = [
        (
            r#"{"name":"my_app"}"#,
            "name: '_' is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
        ),
        (
            r#"{"name":""}"#,
            "name: must be 1 to 200 characters long, got 0",
        ),
        (r#"{"name":"-x"}"#, "name: label -x starts or ends with -"),
        (
            r#"{"name":7}"#,
            "name: invalid type: integer `7`, expected a string",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = as_user(&f, ALICE, "POST", "/api/v1/ports/lease", body);
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(message)),
            "{body}"
        );
    }
    let (status, answer) = as_user(&f, ALICE, "PUT", "/api/v1/names/a..b", r#"{"port":5432}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            400,
            Some("name: has an empty label (two dots, or a dot at an end)")
        )
    );
    let (status, answer) = as_user(&f, ALICE, "PUT", "/api/v1/names/db", "{}");
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            400,
            Some("port: required: the port the name stands for, 1 to 65535")
        )
    );
    let (status, answer) = as_user(&f, ALICE, "PUT", "/api/v1/names/db", r#"{"port":0}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("port: must be an integer from 1 to 65535, got 0"))
    );
    assert_eq!(std::fs::read(f.app.store().path()).unwrap(), before);
    let (_, names) = call(&f.app, "GET", "/api/v1/names", &[], "");
    assert_eq!(names["names"], json!([]));
}

#[test]
fn another_principals_name_is_409_naming_its_uid() {
    let f = fixture("names-owner", None);
    let (_, granted) = as_user(
        &f,
        ALICE,
        "POST",
        "/api/v1/ports/lease",
        r#"{"name":"web"}"#,
    );
    let id = granted["lease"]["id"].as_str().unwrap().to_string();
    let (status, answer) = as_user(&f, BOB, "POST", "/api/v1/ports/lease", r#"{"name":"web"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name web belongs to uid 1000"))
    );
    let (status, answer) = as_user(
        &f,
        ALICE,
        "POST",
        "/api/v1/ports/lease",
        r#"{"name":"web"}"#,
    );
    let held = format!("name web is held by lease {id}");
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(held.as_str()))
    );
    let (status, answer) = call_as(
        &f.app,
        from_uid(None),
        "POST",
        "/api/v1/ports/lease",
        &[],
        r#"{"name":"web"}"#,
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name web belongs to uid 1000"))
    );
    let (status, _) = as_user(
        &f,
        ALICE,
        "DELETE",
        &format!("/api/v1/ports/leases/{id}"),
        "",
    );
    assert_eq!(status, 200);
    // Retained: still Alice's, but an operator may take it.
    let (status, answer) = as_user(&f, BOB, "POST", "/api/v1/ports/lease", r#"{"name":"web"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name web belongs to uid 1000"))
    );
    let (_, names) = call(&f.app, "GET", "/api/v1/names", &[], "");
    let web = &names["names"][0];
    assert_eq!(
        (web["live"].clone(), web["lease_id"].clone()),
        (json!(false), Value::Null)
    );
    assert!(web["retained_until"].as_str().unwrap().ends_with('Z'));
    let (status, taken) = call(
        &f.app,
        "POST",
        "/api/v1/ports/lease",
        &[],
        r#"{"name":"web"}"#,
    );
    assert_eq!(status, 201, "{taken}");
    assert_eq!(
        taken["lease"]["ports"], granted["lease"]["ports"],
        "its sticky port"
    );
    // A remote caller's name.
    let (_, _) = call_as(
        &f.app,
        from_uid(None),
        "POST",
        "/api/v1/ports/lease",
        &[],
        r#"{"name":"ci"}"#,
    );
    let (status, answer) = as_user(&f, BOB, "POST", "/api/v1/ports/lease", r#"{"name":"ci"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name ci belongs to remote callers"))
    );
}

#[test]
fn the_names_quota_is_409_naming_the_flag() {
    // The fixture allows 2 names per uid.
    let f = fixture("names-quota", None);
    for name in ["a", "b"] {
        let (status, _) = as_user(
            &f,
            ALICE,
            "PUT",
            &format!("/api/v1/names/{name}"),
            r#"{"port":5432}"#,
        );
        assert_eq!(status, 200);
    }
    let (status, answer) = as_user(&f, ALICE, "POST", "/api/v1/ports/lease", r#"{"name":"c"}"#);
    let message = "quota: uid 1000 may hold at most 2 names, live and retained (--max-names-per-uid), and holds 2";
    assert_eq!((status, answer["error"].as_str()), (409, Some(message)));
    let (status, _) = as_user(&f, BOB, "POST", "/api/v1/ports/lease", r#"{"name":"c"}"#);
    assert_eq!(status, 201);
    for name in ["d", "e", "f"] {
        let (status, _) = call(
            &f.app,
            "PUT",
            &format!("/api/v1/names/{name}"),
            &[],
            r#"{"port":1}"#,
        );
        assert_eq!(status, 200, "operators are not counted");
    }
}

#[test]
fn aliases_are_put_moved_and_removed_by_their_owner() {
    let f = fixture("names-alias", None);
    let server = f.range.start;
    let (status, alias) = as_user(&f, ALICE, "PUT", "/api/v1/names/DB", r#"{"port":5432}"#);
    assert_eq!(status, 200);
    assert_eq!(
        alias,
        json!({"name": "db", "port": 5432, "uid": ALICE, "lease_id": null, "alias": true,
               "live": true, "url": format!("http://db.localhost:{server}/"), "retained_until": null})
    );
    let (_, moved) = as_user(&f, ALICE, "PUT", "/api/v1/names/db", r#"{"port":5433}"#);
    assert_eq!(moved["port"], 5433);
    assert_eq!(f.app.name_port("db"), Some(5433));
    let (status, answer) = as_user(&f, BOB, "PUT", "/api/v1/names/db", r#"{"port":1}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name db belongs to uid 1000"))
    );
    let (status, answer) = as_user(&f, BOB, "DELETE", "/api/v1/names/db", "");
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("name db belongs to uid 1000"))
    );
    let (status, answer) = as_user(&f, BOB, "DELETE", "/api/v1/names/nope", "");
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("no name nope"))
    );
    // Bob's lease: its port cannot be Alice's alias, nor its name removed.
    let (_, granted) = as_user(&f, BOB, "POST", "/api/v1/ports/lease", r#"{"name":"api"}"#);
    let port = granted["lease"]["ports"][0].as_u64().unwrap();
    let id = granted["lease"]["id"].as_str().unwrap();
    let (status, answer) = as_user(
        &f,
        ALICE,
        "PUT",
        "/api/v1/names/x",
        &format!(r#"{{"port":{port}}}"#),
    );
    let message = format!(
        "port {port} is leased to uid 1001; a port leased to another principal cannot be aliased"
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(message.as_str()))
    );
    let (status, answer) = as_user(&f, BOB, "DELETE", "/api/v1/names/api", "");
    let message = format!("name api is held by lease {id}; release the lease to end it");
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(message.as_str()))
    );
    // Removed: retained, then forgotten.
    let (status, removed) = as_user(&f, ALICE, "DELETE", "/api/v1/names/db", "");
    assert_eq!(status, 200);
    assert_eq!(
        (removed["live"].clone(), removed["port"].clone()),
        (json!(false), json!(5433))
    );
    assert!(removed["retained_until"].is_string());
    assert_eq!(f.app.name_port("db"), None);
    let (status, forgotten) = as_user(&f, ALICE, "DELETE", "/api/v1/names/db", "");
    assert_eq!(
        (status, forgotten["retained_until"].clone()),
        (200, Value::Null)
    );
    let (_, names) = call(&f.app, "GET", "/api/v1/names", &[], "");
    let listed: Vec<&str> = names["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["api"]);
}

#[test]
fn name_changes_follow_the_trust_rules_of_other_changes() {
    let f = fixture("names-trust", Some("0123456789abcdef"));
    let req = Request::fake("PUT", "/api/v1/names/db", &[], br#"{"port":5432}"#)
        .from_peer(from_uid(Some(ALICE)));
    assert_eq!(answer(&f.app, &req).status, 401, "no token");
    let page = Request::fake(
        "PUT",
        "/api/v1/names/db",
        &[
            ("Authorization", "Bearer 0123456789abcdef"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        br#"{"port":5432}"#,
    )
    .from_peer(from_uid(Some(ALICE)));
    assert_eq!(answer(&f.app, &page).status, 403, "a web page");
    let nobody = Request::fake(
        "DELETE",
        "/api/v1/names/db",
        &[("Authorization", "Bearer 0123456789abcdef")],
        b"",
    )
    .from_peer(unidentified());
    assert_eq!(answer(&f.app, &nobody).status, 403, "unidentified");
    let (status, _) = call_as(
        &f.app,
        from_uid(Some(ALICE)),
        "GET",
        "/api/v1/names/db",
        &[],
        "",
    );
    assert_eq!(status, 405);
    let (status, _) = call_as(
        &f.app,
        from_uid(Some(ALICE)),
        "GET",
        "/api/v1/names",
        &[],
        "",
    );
    assert_eq!(status, 200, "reading needs no token");
}
