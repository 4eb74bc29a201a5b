//! Names on leases through the real binary: the name in the lease body and
//! in every lease JSON, `GET /api/v1/names`, aliases, the refusals with
//! their exact words, retention (with `--name-retention-days 0`, and days
//! passing under libfaketime), sticky ports across a SIGTERM restart and a
//! SIGKILL, and ownership and the quota between two real local users
//! (`dynport-alice` and `dynport-bob`, made when the tests run as root;
//! skipped otherwise).

use crate::fixture::{Launch, Server, eventually, free_range, require, require_tool};
use crate::trust::support::{Via, curl_as, has_curl};
use crate::trust::users::alice_and_bob;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const LEASE: &str = "/api/v1/ports/lease";
const NAMES: &str = "/api/v1/names";

fn start(extra: &[&str]) -> Server {
    launch(extra).start()
}

fn launch(extra: &[&str]) -> Launch {
    let mut args = vec!["--exclude", "none"];
    args.extend(extra);
    Launch::with_range(free_range(8), &args)
}

/// `method path body` as the test's own uid (an operator of the server):
/// the status and the JSON answer.
fn call(server: &Server, method: &str, path: &str, body: &str) -> (u16, Value) {
    let reply = server.request(method, path, &[], body);
    (reply.status, reply.json())
}

fn lease(server: &Server, body: &str) -> Value {
    let (status, answer) = call(server, "POST", LEASE, body);
    assert_eq!(status, 201, "{body}: {answer}");
    answer["lease"].clone()
}

fn release(server: &Server, lease: &Value) {
    let path = format!("/api/v1/ports/leases/{}", lease["id"].as_str().unwrap());
    let (status, answer) = call(server, "DELETE", &path, "");
    assert_eq!(status, 200, "{answer}");
}

fn first_port(lease: &Value) -> u64 {
    lease["ports"][0].as_u64().unwrap()
}

/// The names `GET /api/v1/names` lists, by name.
fn names(server: &Server) -> Vec<Value> {
    let (status, answer) = call(server, "GET", NAMES, "");
    assert_eq!(status, 200);
    answer["names"].as_array().unwrap().clone()
}

fn the_name(server: &Server, name: &str) -> Option<Value> {
    names(server).into_iter().find(|n| n["name"] == name)
}

fn refused(server: &Server, method: &str, path: &str, body: &str) -> (u16, String) {
    let reply = server.request(method, path, &[], body);
    (reply.status, reply.error())
}

#[test]
fn a_lease_carries_its_name_and_the_names_list_shows_it() {
    let server = start(&[]);
    let web = lease(&server, r#"{"name":"Web.Shop","ttl_secs":600}"#);
    assert_eq!(web["name"], "web.shop", "lowercased");
    let id = web["id"].as_str().unwrap();
    let one = call(&server, "GET", &format!("/api/v1/ports/leases/{id}"), "").1;
    assert_eq!(one["lease"]["name"], "web.shop");
    let renewed = call(
        &server,
        "POST",
        &format!("/api/v1/ports/leases/{id}/renew"),
        "",
    )
    .1;
    assert_eq!(renewed["lease"]["name"], "web.shop", "renew keeps it");
    let plain = lease(&server, "{}");
    assert_eq!(plain["name"], Value::Null);
    let leases = call(&server, "GET", "/api/v1/ports/leases", "").1;
    let shown: Vec<&Value> = (leases["leases"].as_array().unwrap().iter())
        .map(|l| &l["name"])
        .collect();
    assert_eq!(shown.len(), 2);
    assert!(shown.contains(&&json!("web.shop")) && shown.contains(&&Value::Null));
    let (_, answer) = call(&server, "GET", NAMES, "");
    crate::fixture::assert_rfc3339_utc(&answer["timestamp"]);
    let uid = web["uid"].clone();
    assert_eq!(
        answer["names"],
        json!([{"name": "web.shop", "port": first_port(&web), "uid": uid, "lease_id": id,
                "alias": false, "live": true,
                "url": format!("http://web.shop.localhost:{}/", server.port),
                "retained_until": null}])
    );
    // The state file and the journal hold it.
    let state = server.state();
    assert_eq!(state["leases"][id]["name"], "web.shop");
    assert_eq!(state["names"]["web.shop"]["lease_id"], id);
}

#[test]
fn the_url_names_the_first_routes_domain_and_the_routes_port() {
    let range = free_range(8);
    let outside = if range.0 > 2000 { 1355 } else { 20355 };
    let port = outside.to_string();
    let args = [
        "--exclude",
        "none",
        "--routes-domain",
        "Dev.Test,b.test",
        "--routes-port",
        &port,
    ];
    let server = Launch::with_range(range, &args).start();
    lease(&server, r#"{"name":"web"}"#);
    let url = format!("http://web.dev.test:{outside}/");
    assert_eq!(the_name(&server, "web").unwrap()["url"], url.as_str());
}

#[test]
fn bad_names_are_400_naming_name_and_change_nothing() {
    let server = start(&[]);
    let before = server.state_bytes();
    let cases = [
        (
            r#"{"name":"my_app"}"#,
            "name: '_' is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
        ),
        (
            r#"{"name":""}"#,
            "name: must be 1 to 200 characters long, got 0",
        ),
        (
            r#"{"name":"web-"}"#,
            "name: label web- starts or ends with -",
        ),
        (
            r#"{"name":"a..b"}"#,
            "name: has an empty label (two dots, or a dot at an end)",
        ),
        (
            r#"{"name":["web"]}"#,
            "name: invalid type: sequence, expected a string",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(
            refused(&server, "POST", LEASE, body),
            (400, message.to_string()),
            "{body}"
        );
    }
    let long = format!(r#"{{"name":"{}"}}"#, "a".repeat(201));
    let message = "name: must be 1 to 200 characters long, got 201".to_string();
    assert_eq!(refused(&server, "POST", LEASE, &long), (400, message));
    let message = "name: label -db starts or ends with -".to_string();
    assert_eq!(
        refused(&server, "PUT", "/api/v1/names/-db", r#"{"port":5432}"#),
        (400, message)
    );
    let message = "port: must be an integer from 1 to 65535, got 0".to_string();
    assert_eq!(
        refused(&server, "PUT", "/api/v1/names/db", r#"{"port":0}"#),
        (400, message)
    );
    let message = "port: required: the port the name stands for, 1 to 65535".to_string();
    assert_eq!(
        refused(&server, "PUT", "/api/v1/names/db", ""),
        (400, message)
    );
    assert_eq!(names(&server), Vec::<Value>::new());
    assert_eq!(server.state_bytes(), before, "nothing was written");
}

#[test]
fn a_live_name_asked_for_again_is_409_naming_its_lease() {
    let server = start(&[]);
    let web = lease(&server, r#"{"name":"web"}"#);
    let message = format!("name web is held by lease {}", web["id"].as_str().unwrap());
    assert_eq!(
        refused(&server, "POST", LEASE, r#"{"name":"WEB"}"#),
        (409, message.clone())
    );
    let removal = format!("{message}; release the lease to end it");
    assert_eq!(
        refused(&server, "DELETE", "/api/v1/names/web", ""),
        (409, removal)
    );
    assert_eq!(
        refused(&server, "PUT", "/api/v1/names/web", r#"{"port":1}"#),
        (409, message)
    );
    let message = "no name nope".to_string();
    assert_eq!(
        refused(&server, "DELETE", "/api/v1/names/nope", ""),
        (404, message)
    );
}

#[test]
fn a_released_name_is_retained_with_its_port_and_given_back_to_its_owner() {
    let server = start(&[]);
    let web = lease(&server, r#"{"name":"web"}"#);
    release(&server, &web);
    let kept = the_name(&server, "web").unwrap();
    assert_eq!(
        (kept["live"].clone(), kept["lease_id"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(kept["port"], first_port(&web));
    let until = humantime::parse_rfc3339(kept["retained_until"].as_str().unwrap()).unwrap();
    let days = until
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert_eq!(days, 6, "7 days from its end, less the seconds since");
    // Round robin would hand out the next port; the name's comes first.
    let again = lease(&server, r#"{"name":"web"}"#);
    assert_eq!(first_port(&again), first_port(&web));
    assert_eq!(the_name(&server, "web").unwrap()["live"], true);
}

#[test]
fn with_no_retention_a_name_is_forgotten_when_its_lease_ends() {
    let server = start(&["--name-retention-days", "0"]);
    let web = lease(&server, r#"{"name":"web"}"#);
    release(&server, &web);
    assert_eq!(names(&server), Vec::<Value>::new());
    assert_eq!(server.state()["names"], json!({}));
    let (status, answer) = call(&server, "PUT", "/api/v1/names/db", r#"{"port":5432}"#);
    assert_eq!(status, 200, "{answer}");
    let (status, removed) = call(&server, "DELETE", "/api/v1/names/db", "");
    assert_eq!(
        (status, removed["retained_until"].clone()),
        (200, Value::Null)
    );
    assert_eq!(names(&server), Vec::<Value>::new());
}

#[test]
fn a_lease_gets_its_names_port_after_a_sigterm_restart() {
    let server = start(&[]);
    let web = lease(&server, r#"{"name":"web"}"#);
    release(&server, &web);
    // The round-robin cursor moves past the name's port.
    let other = lease(&server, "{}");
    assert_ne!(first_port(&other), first_port(&web));
    let mut server = server;
    assert!(server.term().success());
    let server = server.relaunch().start();
    let kept = the_name(&server, "web").unwrap();
    assert_eq!(
        (kept["port"].as_u64(), kept["live"].clone()),
        (Some(first_port(&web)), json!(false))
    );
    let again = lease(&server, r#"{"name":"web"}"#);
    assert_eq!(first_port(&again), first_port(&web));
}

#[test]
fn names_and_their_ports_survive_a_sigkill() {
    let mut server = start(&[]);
    let web = lease(&server, r#"{"name":"web","ttl_secs":600}"#);
    let api = lease(&server, r#"{"name":"api"}"#);
    release(&server, &api);
    let (status, _) = call(&server, "PUT", "/api/v1/names/db", r#"{"port":5432}"#);
    assert_eq!(status, 200);
    let before = names(&server);
    // Killed the moment the last change was acknowledged: the journal holds it.
    server.kill9();
    let server = server.relaunch().start();
    let after = names(&server);
    let without_urls = |list: &[Value]| -> Vec<Value> {
        let mut list = list.to_vec();
        list.iter_mut().for_each(|n| n["url"] = Value::Null);
        list
    };
    assert_eq!(without_urls(&after), without_urls(&before));
    assert_eq!(the_name(&server, "web").unwrap()["lease_id"], web["id"]);
    release(&server, &web);
    let again = lease(&server, r#"{"name":"api"}"#);
    assert_eq!(first_port(&again), first_port(&api), "its sticky port");
}

#[test]
fn an_alias_names_any_port_and_is_retained_when_removed() {
    let server = start(&[]);
    let (status, alias) = call(&server, "PUT", "/api/v1/names/DB", r#"{"port":5432}"#);
    assert_eq!(status, 200, "{alias}");
    assert_eq!(
        alias,
        json!({"name": "db", "port": 5432, "uid": alias["uid"].clone(), "lease_id": null,
               "alias": true, "live": true,
               "url": format!("http://db.localhost:{}/", server.port), "retained_until": null})
    );
    // Moved to a port of the range its own lease holds.
    let own = lease(&server, "{}");
    let body = format!(r#"{{"port":{}}}"#, first_port(&own));
    let (_, moved) = call(&server, "PUT", "/api/v1/names/db", &body);
    assert_eq!(moved["port"], first_port(&own));
    let (status, removed) = call(&server, "DELETE", "/api/v1/names/db", "");
    assert_eq!(status, 200);
    assert_eq!(
        (removed["live"].clone(), removed["alias"].clone()),
        (json!(false), json!(true))
    );
    crate::fixture::assert_rfc3339_utc(&removed["retained_until"]);
    assert_eq!(the_name(&server, "db").unwrap()["live"], false);
    let (status, _) = call(&server, "DELETE", "/api/v1/names/db", "");
    assert_eq!(status, 200, "a retained name is forgotten");
    assert_eq!(the_name(&server, "db"), None);
    assert_eq!(server.state()["names"], json!({}));
}

/// Where Debian's faketime package puts the library.
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// `launch` with its wall clock `offset` ahead (libfaketime), when it can.
fn days_later(launch: Launch, offset: &str) -> Option<Launch> {
    require_tool("faketime")?;
    let Some(lib) = LIBFAKETIME.iter().find(|p| Path::new(p).exists()) else {
        require(
            false,
            format_args!("libfaketime is not in {LIBFAKETIME:?} (Debian package faketime)"),
        );
        return None;
    };
    Some(
        launch
            .env("LD_PRELOAD", lib)
            .env("FAKETIME", offset)
            .env("DONT_FAKE_MONOTONIC", "1"),
    )
}

#[test]
fn a_retained_name_is_kept_its_days_then_forgotten() {
    let mut server = start(&["--name-retention-days", "3", "--refresh-secs", "1"]);
    let web = lease(&server, r#"{"name":"web"}"#);
    release(&server, &web);
    // Live at shutdown; its lease ends while no server runs.
    let api = lease(&server, r#"{"name":"api","ttl_secs":600}"#);
    assert!(server.term().success());
    let Some(two_days) = days_later(server.relaunch(), "+2d") else {
        return;
    };
    let mut later = two_days.start();
    assert_eq!(the_name(&later, "web").unwrap()["port"], first_port(&web));
    let kept = the_name(&later, "api").unwrap();
    assert_eq!(
        (kept["live"].clone(), kept["port"].as_u64()),
        (json!(false), Some(first_port(&api)))
    );
    assert_eq!(
        call(&later, "GET", "/api/v1/ports/leases", "").1["leases"],
        json!([])
    );
    assert!(later.term().success());
    let Some(four_days) = days_later(server.relaunch(), "+4d") else {
        return;
    };
    let later = four_days.start();
    assert_eq!(the_name(&later, "web"), None);
    // The refresh thread drops it from the state, through the journal.
    eventually(Duration::from_secs(10), "web gone from the state", || {
        later.state()["names"].get("web").is_none()
    });
}

#[test]
fn names_belong_to_their_principal_and_count_against_its_quota() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    if !has_curl() {
        return;
    }
    let server = start(&["--max-names-per-uid", "2"]);
    let via = || Via::Tcp(&server);
    let (status, web) = curl_as(Some(&alice), via(), "POST", LEASE, r#"{"name":"web"}"#);
    assert_eq!(status, 201, "{web}");
    let belongs = format!("name web belongs to uid {}", alice.uid);
    let (status, answer) = curl_as(Some(&bob), via(), "POST", LEASE, r#"{"name":"web"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(belongs.as_str()))
    );
    let (status, answer) = curl_as(Some(&bob), via(), "DELETE", "/api/v1/names/web", "");
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(belongs.as_str()))
    );
    // An operator ends a live one first.
    let (status, answer) = call(&server, "POST", LEASE, r#"{"name":"web"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(belongs.as_str()))
    );
    // Alice's leased port is not Bob's to alias.
    let port = web["lease"]["ports"][0].as_u64().unwrap();
    let body = format!(r#"{{"port":{port}}}"#);
    let (status, answer) = curl_as(Some(&bob), via(), "PUT", "/api/v1/names/x", &body);
    let message = format!(
        "port {port} is leased to uid {}; a port leased to another principal cannot be aliased",
        alice.uid
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(message.as_str()))
    );
    // Alice's quota: web and one alias; a third is refused.
    let (status, _) = curl_as(
        Some(&alice),
        via(),
        "PUT",
        "/api/v1/names/db",
        r#"{"port":5432}"#,
    );
    assert_eq!(status, 200);
    let (status, answer) = curl_as(Some(&alice), via(), "POST", LEASE, r#"{"name":"api"}"#);
    let quota = format!(
        "quota: uid {} may hold at most 2 names, live and retained (--max-names-per-uid), and holds 2",
        alice.uid
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(quota.as_str()))
    );
    // Released, web stays Alice's: Bob is refused, an operator takes it.
    let id = web["lease"]["id"].as_str().unwrap();
    let path = format!("/api/v1/ports/leases/{id}");
    let (status, _) = curl_as(Some(&alice), via(), "DELETE", &path, "");
    assert_eq!(status, 200);
    let (status, answer) = curl_as(Some(&bob), via(), "POST", LEASE, r#"{"name":"web"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(belongs.as_str()))
    );
    let (status, answer) = curl_as(Some(&alice), via(), "POST", LEASE, r#"{"name":"api"}"#);
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some(quota.as_str())),
        "retained counts"
    );
    let taken = lease(&server, r#"{"name":"web"}"#);
    assert_eq!(first_port(&taken), port, "with its sticky port");
    let owner = the_name(&server, "web").unwrap()["uid"].clone();
    assert_eq!(owner, taken["uid"]);
    // Bob's own names are his alone.
    let (status, _) = curl_as(Some(&bob), via(), "POST", LEASE, r#"{"name":"bobs"}"#);
    assert_eq!(status, 201);
}

#[test]
fn a_state_file_from_before_names_still_loads() {
    let launch = launch(&[]);
    let port = launch.range.1;
    let now = std::time::SystemTime::now();
    let stamp = |t| humantime::format_rfc3339_seconds(t).to_string();
    let old = json!({
        "version": 1, "updated_at": stamp(now),
        "port_range": {"start": launch.range.0, "end": launch.range.1},
        "server_port": null, "last_server_port": null, "server": null,
        "ports": {}, "last_scan": null,
        "leases": {"00000000000000aa": {
            "id": "00000000000000aa", "ports": [port], "pool": "default", "owner": "old",
            "uid": null, "pid": null, "created_at": stamp(now),
            "expires_at": stamp(now + Duration::from_secs(600)), "ttl_secs": 600}},
        "cursors": {}
    });
    std::fs::write(launch.dir.state_file(), old.to_string()).unwrap();
    let server = launch.start();
    let leases = call(&server, "GET", "/api/v1/ports/leases", "").1;
    assert_eq!(leases["leases"][0]["id"], "00000000000000aa", "{leases}");
    assert_eq!(leases["leases"][0]["name"], Value::Null);
    assert_eq!(names(&server), Vec::<Value>::new());
    lease(&server, r#"{"name":"web"}"#);
    assert_eq!(server.state()["names"]["web"]["alias"], false);
}
