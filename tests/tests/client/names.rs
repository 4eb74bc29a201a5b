//! Names through the client: `--name NAME|auto` on `lease` and `run`,
//! `DYNPORT_NAME` and `DYNPORT_NAME_URL`, and `dynport names`, `port`,
//! `url NAME` and `alias`, against the real server.

use super::support::{ClientSide, Out, finish, start};
use crate::fixture::{BIN, Server, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The URL the server gives the name `name`: on localhost, at the API's port.
fn url_of(server: &Server, name: &str) -> String {
    format!("http://{name}.localhost:{}/", server.state_port())
}

/// The names, from `dynport names --json`.
fn names(server: &Server) -> Vec<Value> {
    let out = server.client(&["names", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    body["names"].as_array().unwrap().clone()
}

/// Runs the client against `server` in the directory `dir`.
fn client_in(server: &Server, dir: &Path, args: &[&str]) -> Out {
    let mut command = Command::new(BIN);
    command
        .arg(args[0])
        .args(["--state-dir", server.state_dir()])
        .args(&args[1..])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    finish(&mut command)
}

#[test]
fn a_leased_name_is_listed_looked_up_and_lowercased() {
    let server = start(&[]);
    let out = server.client(&["lease", "--name", "Web"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let port = server.in_range(&out.stdout);
    let id = server.leases()[0]["id"].as_str().unwrap().to_string();
    let listed = names(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let web = &listed[0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["port"], port);
    assert_eq!(web["lease_id"], id.as_str());
    assert_eq!(
        (&web["alias"], &web["live"]),
        (&Value::Bool(false), &Value::Bool(true))
    );
    assert_eq!(web["url"], url_of(&server, "web").as_str());
    let out = server.client(&["port", "web"]);
    assert_eq!((out.code, out.stdout), (0, format!("{port}\n")));
    let out = server.client(&["port", "WEB"]);
    assert_eq!((out.code, out.stdout), (0, format!("{port}\n")));
    let out = server.client(&["url", "web"]);
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{}\n", url_of(&server, "web")))
    );
}

#[test]
fn names_table_shows_each_name() {
    let server = start(&[]);
    let port = server.in_range(&server.client(&["lease", "--name", "web"]).stdout);
    let id = server.leases()[0]["id"].as_str().unwrap().to_string();
    let out = server.client(&["names"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0], ["NAME", "PORT", "UID", "LEASE", "LIVE", "URL"]);
    let uid = super::own_uid();
    let url = url_of(&server, "web");
    let port = port.to_string();
    assert_eq!(lines[1], ["web", &port, &uid, &id, "yes", &url]);
}

#[test]
fn lease_json_shows_the_name() {
    let server = start(&[]);
    let out = server.client(&["lease", "--json", "--name", "api"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["lease"]["name"], "api");
}

#[test]
fn run_gives_cmd_its_name_and_url_and_no_stale_ones() {
    let server = start(&[]);
    let script = r#"echo "$DYNPORT_NAME|$DYNPORT_NAME_URL|$PORT""#;
    let out = server.client(&["run", "--name", "Web", "--", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let said: Vec<&str> = out.stdout.trim_end().split('|').collect();
    let url = url_of(&server, "web");
    assert_eq!(said[..2], ["web", url.as_str()]);
    server.in_range(said[2]);
    assert!(server.leases().is_empty());
    // Without --name, what this process was given does not reach CMD.
    let mut command = Command::new(BIN);
    command
        .args([
            "run",
            "--state-dir",
            server.state_dir(),
            "--",
            "sh",
            "-c",
            script,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DYNPORT_NAME", "stale")
        .env("DYNPORT_NAME_URL", "http://stale.localhost/");
    let out = finish(&mut command);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("||"), "{}", out.stdout);
}

#[test]
fn a_name_whose_lease_ended_is_not_live_and_names_its_last_port() {
    let server = start(&[]);
    let port = server.in_range(&server.client(&["lease", "--name", "db"]).stdout);
    let out = server.client(&["release", &port.to_string()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = server.client(&["port", "db"]);
    let expected = format!(
        "dynport: db is not live: no lease or alias holds it now; its last port was {port}\n"
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr),
        (1, "", expected)
    );
    // Its URL stays the same.
    let out = server.client(&["url", "db"]);
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{}\n", url_of(&server, "db")))
    );
    let listed = names(&server);
    assert_eq!(
        (&listed[0]["live"], &listed[0]["lease_id"]),
        (&Value::Bool(false), &Value::Null)
    );
    // The same name again gets the same port: it was free.
    let again = server.client(&["lease", "--name", "db"]);
    assert_eq!((again.code, again.stdout), (0, format!("{port}\n")));
}

#[test]
fn port_and_url_of_no_such_name_say_so() {
    let server = start(&[]);
    for command in ["port", "url"] {
        let out = server.client(&[command, "nosuch"]);
        let expected = "dynport: no name \"nosuch\" (dynport names lists them)\n";
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (1, "", expected)
        );
    }
}

#[test]
fn alias_names_a_port_and_remove_removes_it() {
    let server = start(&[]);
    let out = server.client(&["alias", "DB", "5432"]);
    let url = url_of(&server, "db");
    assert_eq!(
        (out.code, out.stdout, out.stderr),
        (0, format!("{url}\n"), String::new())
    );
    let out = server.client(&["port", "db"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "5432\n"));
    let listed = names(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["alias"], &listed[0]["port"]),
        (&Value::Bool(true), &Value::from(5432))
    );
    let table = server.client(&["names"]).stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..5], ["db", "5432", &super::own_uid(), "alias", "yes"]);
    let out = server.client(&["alias", "--json", "db", "6543"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&body["name"], &body["port"]),
        (&Value::from("db"), &Value::from(6543))
    );
    let out = server.client(&["alias", "--remove", "db"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    let out = server.client(&["port", "db"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn bad_names_and_refusals_are_the_servers_words() {
    let server = start(&[]);
    let out = server.client(&["lease", "--name", "-web"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert!(out.stderr.starts_with("dynport: name: "), "{}", out.stderr);
    assert!(server.leases().is_empty());
    let out = server.client(&["alias", "a_b", "80"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert!(out.stderr.starts_with("dynport: name: "), "{}", out.stderr);
    // A leased name is not an alias: --remove leaves it.
    server.client(&["lease", "--name", "web"]);
    let out = server.client(&["alias", "--remove", "web"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(names(&server)[0]["live"], true);
    let out = server.client(&["alias", "--remove", "nosuch"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    // Asked again while live: the lease that holds it is named.
    let id = server.leases()[0]["id"].as_str().unwrap().to_string();
    let out = server.client(&["lease", "--name", "web"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!("dynport: name web is held by lease {id}\n")
    );
    assert_eq!(server.leases().len(), 1);
}

/// A main repository `shop` with a linked worktree `shop-fix` on branch
/// `Fix/UI`, laid out as `git worktree add` lays it out.
fn worktree(dir: &Path) -> std::path::PathBuf {
    let admin = dir.join("shop/.git/worktrees/shop-fix");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::write(admin.join("HEAD"), "ref: refs/heads/Fix/UI\n").unwrap();
    std::fs::write(admin.join("commondir"), "../..\n").unwrap();
    let wt = dir.join("shop-fix");
    std::fs::create_dir_all(wt.join("src")).unwrap();
    std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).unwrap();
    wt
}

#[test]
fn name_auto_takes_the_repository_and_the_worktrees_branch() {
    let server = start(&[]);
    let tmp = TempDir::new();
    let wt = worktree(tmp.path());
    let out = client_in(&server, &wt.join("src"), &["lease", "--name", "auto"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = client_in(
        &server,
        &tmp.path().join("shop"),
        &["lease", "--name", "auto"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let script = r#"echo "$DYNPORT_NAME""#;
    let plain = tmp.path().join("Plain Dir");
    std::fs::create_dir(&plain).unwrap();
    let out = client_in(
        &server,
        &plain,
        &["run", "--name", "auto", "--", "sh", "-c", script],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "plain-dir\n"),
        "{}",
        out.stderr
    );
    let listed: Vec<Value> = names(&server).iter().map(|n| n["name"].clone()).collect();
    assert_eq!(listed, ["fix-ui.shop", "plain-dir", "shop"]);
}

#[test]
fn name_auto_without_letters_says_to_give_a_name() {
    let server = start(&[]);
    let tmp = TempDir::new();
    let dir = tmp.path().join("___");
    std::fs::create_dir(&dir).unwrap();
    let out = client_in(&server, &dir, &["lease", "--name", "auto"]);
    assert_eq!((out.code, out.stdout.as_str()), (2, ""));
    let expected = format!(
        "dynport: --name auto: the directory name \"___\" ({dir:?}) has no letter or digit \
         to make a name of; give one with --name NAME\nTry 'dynport lease --help' for more \
         information.\n"
    );
    assert_eq!(out.stderr, expected);
    assert!(server.leases().is_empty());
}

#[test]
fn another_users_name_is_refused_naming_its_uid_but_may_be_looked_up() {
    use crate::trust::support::{assert_fails, client};
    let Some((alice, bob)) = crate::trust::users::alice_and_bob() else {
        return;
    };
    let server = crate::trust::support::start(&[]);
    crate::trust::users::assert_reachable_by_all(server.dir().path());
    let out = client(&server, Some(&alice), &["lease", "--name", "web"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let port = server.in_range(&out.stdout);
    let theirs = format!("name web belongs to uid {}", alice.uid);
    assert_fails(
        &client(&server, Some(&bob), &["lease", "--name", "web"]),
        1,
        &theirs,
    );
    assert_fails(
        &client(&server, Some(&bob), &["alias", "web", "5432"]),
        1,
        &theirs,
    );
    let out = client(&server, Some(&bob), &["port", "web"]);
    assert_eq!((out.code, out.stdout), (0, format!("{port}\n")));
    let out = client(&server, Some(&bob), &["url", "web"]);
    assert_eq!(
        (out.code, out.stdout),
        (0, format!("{}\n", url_of(&server, "web")))
    );
}
