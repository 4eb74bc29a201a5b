//! Parsing of every client command's options and of the environment.

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn parse_with(vars: &[(&str, &str)], command: &str, args: &[&str]) -> Result<Invocation, String> {
    let lookup = env(vars);
    match parse(command, args.iter().map(OsString::from), &lookup)? {
        Parsed::Run(inv) => Ok(*inv),
        Parsed::Help(_) => Err("help".to_string()),
    }
}

fn ok(command: &str, args: &[&str]) -> Invocation {
    parse_with(&[], command, args).unwrap()
}

fn usage(command: &str, args: &[&str]) -> String {
    parse_with(&[], command, args).unwrap_err()
}

#[test]
fn lease_takes_every_lease_option() {
    let inv = ok(
        "lease",
        &[
            "--count",
            "3",
            "--pool",
            "web",
            "--ttl",
            "10m",
            "--owner",
            "ci job 17",
            "--pid",
            "31337",
            "--json",
        ],
    );
    let expected = LeaseOptions {
        count: Some(3),
        port: None,
        pool: Some("web".into()),
        ttl: Some(600),
        owner: Some("ci job 17".into()),
        pid: Some(31337),
        protocol: None,
        name: None,
    };
    assert_eq!(inv.command, Command::Lease(expected));
    assert!(inv.json);
    assert_eq!(inv.locate, Locate::StateDir(PathBuf::from("state")));
    assert_eq!(inv.token, None);
}

#[test]
fn lease_options_take_the_equals_form_too() {
    let inv = ok("lease", &["--port=4100", "--ttl=90"]);
    let Command::Lease(opts) = inv.command else {
        panic!("not a lease")
    };
    assert_eq!((opts.port, opts.ttl), (Some(4100), Some(90)));
}

#[test]
fn bad_numbers_are_usage_errors_naming_the_flag() {
    assert_eq!(
        usage("lease", &["--count", "two"]),
        "--count: expected a whole number, got 'two'"
    );
    assert_eq!(
        usage("lease", &["--port", "0"]),
        "--port: expected a port number (1-65535), got '0'"
    );
    assert_eq!(
        usage("lease", &["--port", "70000"]),
        "--port: expected a port number (1-65535), got '70000'"
    );
    assert_eq!(
        usage("renew", &["x", "--ttl", "0"]),
        "--ttl: must be at least 1 second"
    );
    assert!(usage("lease", &["--ttl", "soon"]).starts_with("--ttl: expected seconds"));
    assert_eq!(
        usage("lease", &["--count"]),
        "missing argument for option '--count'"
    );
}

#[test]
fn lease_limits_are_the_servers() {
    assert_eq!(
        usage("lease", &["--count", "0"]),
        "--count: must be an integer from 1 to 64, got 0"
    );
    assert_eq!(
        usage("run", &["--count", "65", "--", "true"]),
        "--count: must be an integer from 1 to 64, got 65"
    );
    assert_eq!(ok("lease", &["--count", "64"]).command, {
        Command::Lease(LeaseOptions {
            count: Some(64),
            ..LeaseOptions::default()
        })
    });
    assert_eq!(
        usage("renew", &["x", "--ttl", "604801"]),
        "--ttl: must be at most 604800 seconds (a week), got 604801"
    );
    assert_eq!(
        usage("lease", &["--ttl", "8d"]),
        "--ttl: must be at most 604800 seconds (a week), got 691200"
    );
    assert_eq!(ok("renew", &["x", "--ttl", "7d"]).command, {
        Command::Renew {
            id: "x".to_string(),
            ttl: Some(604_800),
        }
    });
}

#[test]
fn an_owner_must_be_printable_text() {
    assert_eq!(
        usage("lease", &["--owner", "two\nlines"]),
        "--owner: contains a control character (U+000A)"
    );
    assert_eq!(
        usage("run", &["--owner", "a\u{2066}b", "--", "true"]),
        "--owner: contains a bidirectional control (U+2066)"
    );
    assert_eq!(
        usage("lease", &["--owner", ""]),
        "--owner: must be 1 to 128 characters long, got 0"
    );
    let owner = "Zoë 构建 🚀";
    let Command::Lease(opts) = ok("lease", &["--owner", owner]).command else {
        panic!("not a lease")
    };
    assert_eq!(opts.owner.as_deref(), Some(owner));
}

#[test]
fn options_of_other_commands_are_refused() {
    assert_eq!(
        usage("leases", &["--count", "2"]),
        "invalid option '--count'"
    );
    assert_eq!(usage("url", &["--json"]), "invalid option '--json'");
    assert_eq!(
        usage("run", &["--pid", "1", "--", "true"]),
        "invalid option '--pid'"
    );
    assert_eq!(usage("status", &["-x"]), "invalid option '-x'");
    assert_eq!(usage("lease", &["4100"]), "unexpected argument '4100'");
}

#[test]
fn release_decides_between_port_and_id() {
    assert_eq!(
        ok("release", &["4100"]).command,
        Command::Release(ReleaseTarget::Port(4100))
    );
    assert_eq!(
        ok("release", &["0123456789abcdef"]).command,
        Command::Release(ReleaseTarget::Id("0123456789abcdef".into()))
    );
    assert_eq!(ReleaseTarget::from_arg("65535"), ReleaseTarget::Port(65535));
    for id in ["0", "65536", "-1", "4100x", ""] {
        assert_eq!(
            ReleaseTarget::from_arg(id),
            ReleaseTarget::Id(id.into()),
            "{id}"
        );
    }
    assert_eq!(usage("release", &[]), "missing lease ID or PORT");
    assert_eq!(usage("release", &["1", "2"]), "unexpected argument '2'");
}

#[test]
fn renew_takes_an_id_and_a_ttl() {
    assert_eq!(
        ok("renew", &["abc", "--ttl", "60"]).command,
        Command::Renew {
            id: "abc".into(),
            ttl: Some(60)
        }
    );
    assert_eq!(usage("renew", &[]), "missing lease ID");
}

#[test]
fn leases_status_and_url_take_no_arguments() {
    assert_eq!(ok("leases", &["--json"]).command, Command::Leases);
    assert_eq!(ok("status", &[]).command, Command::Status);
    assert_eq!(ok("url", &[]).command, Command::Url(None));
    assert_eq!(usage("status", &["now"]), "unexpected argument 'now'");
}

#[test]
fn name_is_taken_by_lease_and_run_as_given() {
    let name = |inv: Invocation| match inv.command {
        Command::Lease(l) => l.name,
        Command::Run(r) => r.lease.name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name(ok("lease", &["--name", "Web"])), Some("Web".into()));
    assert_eq!(name(ok("lease", &["--name=auto"])), Some("auto".into()));
    assert_eq!(name(ok("lease", &[])), None);
    let run = ok(
        "run",
        &["--name", "fix-ui.shop", "--", "srv", "--name", "x"],
    );
    assert_eq!(name(run), Some("fix-ui.shop".into()));
    assert_eq!(
        usage("lease", &["--name", ""]),
        "--name: give a name, or auto"
    );
    assert_eq!(
        usage("lease", &["--name"]),
        "missing argument for option '--name'"
    );
    assert!(usage("names", &["--name", "x"]).contains("--name"));
}

#[test]
fn url_takes_an_optional_name() {
    assert_eq!(
        ok("url", &["web"]).command,
        Command::Url(Some("web".into()))
    );
    assert_eq!(usage("url", &["a", "b"]), "unexpected argument 'b'");
}

#[test]
fn names_and_port_take_what_they_list_or_look_up() {
    assert_eq!(ok("names", &["--json"]).command, Command::Names);
    assert!(ok("names", &["--json"]).json);
    assert_eq!(usage("names", &["web"]), "unexpected argument 'web'");
    assert_eq!(ok("port", &["db"]).command, Command::Port("db".into()));
    assert_eq!(usage("port", &[]), "missing NAME");
    assert_eq!(usage("port", &["db", "web"]), "unexpected argument 'web'");
    assert!(usage("port", &["--json", "db"]).contains("--json"));
}

#[test]
fn alias_takes_a_name_and_a_port_or_remove_and_a_name() {
    let set = Command::Alias {
        name: "db".into(),
        port: 5432,
    };
    assert_eq!(ok("alias", &["db", "5432"]).command, set);
    assert_eq!(
        ok("alias", &["--remove", "db"]).command,
        Command::Unalias("db".into())
    );
    assert_eq!(
        ok("alias", &["db", "--remove"]).command,
        Command::Unalias("db".into())
    );
    assert_eq!(usage("alias", &[]), "missing NAME");
    assert_eq!(
        usage("alias", &["db"]),
        "missing PORT (or give --remove to remove NAME)"
    );
    assert_eq!(
        usage("alias", &["db", "0"]),
        "PORT: expected a port number (1-65535), got '0'"
    );
    assert_eq!(
        usage("alias", &["db", "65536"]),
        "PORT: expected a port number (1-65535), got '65536'"
    );
    assert_eq!(
        usage("alias", &["--remove", "db", "5432"]),
        "--remove: takes NAME alone, not the port '5432'"
    );
    assert_eq!(usage("alias", &["db", "1", "2"]), "unexpected argument '2'");
}

#[test]
fn run_takes_the_command_after_its_options() {
    let inv = ok(
        "run",
        &[
            "--count", "2", "--socket", "--bind", "::1", "--", "srv", "--count", "9",
        ],
    );
    let Command::Run(run) = inv.command else {
        panic!("not run")
    };
    assert_eq!(run.lease.count, Some(2));
    assert!(run.socket);
    assert_eq!(run.bind, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(run.program, "srv");
    assert_eq!(run.args, ["--count", "9"]);
}

#[test]
fn run_needs_a_command_and_binds_loopback_by_default() {
    let Command::Run(run) = ok("run", &["python3", "-m", "http.server"]).command else {
        panic!("not run")
    };
    assert_eq!(
        (run.socket, run.bind),
        (false, IpAddr::from([127, 0, 0, 1]))
    );
    assert_eq!(run.args, ["-m", "http.server"]);
    assert!(usage("run", &["--count", "1"]).starts_with("missing the command to run"));
    assert!(usage("run", &["--"]).starts_with("missing the command to run"));
    assert_eq!(
        usage("run", &["--bind", "0.0.0.0", "--", "x"]),
        "--bind: only makes sense with --socket"
    );
}

#[test]
fn help_is_asked_for_with_either_spelling() {
    let lookup = env(&[]);
    for flag in ["-h", "--help"] {
        let parsed = parse("lease", [OsString::from(flag)], &lookup).unwrap();
        let Parsed::Help(text) = parsed else {
            panic!("no help")
        };
        assert!(text.starts_with("Usage: dynport lease [OPTIONS]"), "{text}");
    }
}

#[test]
fn flags_beat_variables_and_a_url_beats_a_state_dir() {
    let vars = [
        ("DYNPORT_URL", "http://10.0.0.1:4000"),
        ("DYNPORT_STATE_DIR", "/var/lib/dynport"),
        ("DYNPORT_TOKEN", "from-env"),
    ];
    let inv = parse_with(&vars, "leases", &[]).unwrap();
    let url = BaseUrl::parse("http://10.0.0.1:4000").unwrap();
    assert_eq!(inv.locate, Locate::Url(url, Source::Env));
    assert_eq!(inv.token.as_deref(), Some("from-env"));
    let inv = parse_with(&vars, "leases", &["--state-dir", "here", "--token", "t"]).unwrap();
    assert_eq!(inv.locate, Locate::StateDir(PathBuf::from("here")));
    assert_eq!(inv.token.as_deref(), Some("t"));
    let inv = parse_with(&[("DYNPORT_STATE_DIR", "/srv")], "leases", &[]).unwrap();
    assert_eq!(inv.locate, Locate::StateDir(PathBuf::from("/srv")));
}

#[test]
fn bad_urls_and_tokens_name_their_source() {
    assert!(usage("leases", &["--url", "https://h:1"]).starts_with("--url: 'https://h:1'"));
    let err = parse_with(&[("DYNPORT_URL", "http://h:0")], "leases", &[]).unwrap_err();
    assert!(err.starts_with("DYNPORT_URL: "), "{err}");
    assert!(usage("lease", &["--token", "a\r\nX: y"]).starts_with("--token: "));
    assert_eq!(
        usage("lease", &["--token", "a", "--token-file", "f"]),
        "--token and --token-file: give one of them, not both"
    );
}

#[test]
fn token_file_is_read_without_its_newline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("dynport-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.to_str().unwrap();
    let inv = parse_with(&[("DYNPORT_TOKEN_FILE", file)], "lease", &[]).unwrap();
    assert_eq!(inv.token.as_deref(), Some("s3cret"));
    let missing = dir.join("nope");
    let err = usage("lease", &["--token-file", missing.to_str().unwrap()]);
    assert!(err.starts_with("--token-file: cannot open "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn token_file_follows_the_servers_rules() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("dynport-args-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let file = path.to_str().unwrap();
    let me = crate::sys::euid();
    let err = usage("lease", &["--token-file", file]);
    assert_eq!(
        err,
        format!(
            "--token-file: {file} is open to group or others (mode 640, owner uid {me}); \
             run chmod 600 {file} so only its owner can read it"
        )
    );
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo works");
    let fifo = fifo.to_str().unwrap();
    let vars = [("DYNPORT_TOKEN_FILE", fifo)];
    assert_eq!(
        parse_with(&vars, "lease", &[]).err(),
        Some(format!(
            "DYNPORT_TOKEN_FILE: {fifo} is a FIFO, not a regular file; give a regular \
             file holding the token"
        ))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn who_takes_one_port_and_json() {
    let inv = ok("who", &["4100", "--json"]);
    assert_eq!(inv.command, Command::Who(4100));
    assert!(inv.json);
    assert_eq!(usage("who", &[]), "missing PORT");
    assert_eq!(
        usage("who", &["http"]),
        "PORT: expected a port number (1-65535), got 'http'"
    );
    assert_eq!(usage("who", &["1", "2"]), "unexpected argument '2'");
    assert!(usage("who", &["--count", "2", "1"]).contains("--count"));
}

#[test]
fn server_uid_comes_from_its_flag_or_its_variable() {
    assert_eq!(ok("leases", &[]).server_uid, None);
    assert_eq!(
        ok("leases", &["--server-uid", "1001"]).server_uid,
        Some(1001)
    );
    let vars = [("DYNPORT_SERVER_UID", "1002")];
    assert_eq!(
        parse_with(&vars, "leases", &[]).unwrap().server_uid,
        Some(1002)
    );
    let inv = parse_with(&vars, "leases", &["--server-uid", "7"]).unwrap();
    assert_eq!(inv.server_uid, Some(7));
    assert_eq!(
        usage("leases", &["--server-uid", "bob"]),
        "--server-uid: expected a whole number, got 'bob'"
    );
}

#[test]
fn only_a_token_on_the_command_line_is_warned_about() {
    assert_eq!(
        ok("lease", &["--token", "t"]).warnings,
        [TOKEN_ON_COMMAND_LINE]
    );
    let env = parse_with(&[("DYNPORT_TOKEN", "t")], "lease", &[]).unwrap();
    assert_eq!(env.warnings, Vec::<String>::new());
}

#[test]
fn every_flag_of_the_table_is_taken_and_no_other() {
    use crate::config::client_flags::{FINDING, OPTIONS};
    let all: Vec<&str> = OPTIONS
        .iter()
        .flat_map(|(_, f)| *f)
        .map(|f| f.name)
        .collect();
    for (command, own) in OPTIONS {
        for flag in own.iter().chain(FINDING).filter(|f| f.name != "help") {
            // A value that fits every flag's kind well enough to be taken.
            let args = [format!("--{}=1", flag.name)];
            let args = match flag.value {
                crate::config::flags::Value::Switch => vec![format!("--{}", flag.name)],
                _ => args.to_vec(),
            };
            let refused = usage_or_ok(command, &args);
            assert!(
                !refused.contains("invalid option"),
                "{command} --{}: {refused}",
                flag.name
            );
        }
        for name in all.iter().filter(|n| !own.iter().any(|f| f.name == **n)) {
            let refused = usage_or_ok(command, &[format!("--{name}")]);
            assert_eq!(refused, format!("invalid option '--{name}'"), "{command}");
        }
    }
}

/// The usage error of `dynport COMMAND ARGS`, or `ok`.
fn usage_or_ok(command: &str, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match parse_with(&[], command, &args) {
        Ok(_) => "ok".to_string(),
        Err(e) => e,
    }
}

#[test]
fn every_protocol_the_table_offers_is_taken() {
    for (word, protocol) in crate::config::client_flags::PROTOCOLS.iter().zip([
        Protocol::Both,
        Protocol::Tcp,
        Protocol::Udp,
    ]) {
        let inv = ok("lease", &["--protocol", word]);
        let Command::Lease(opts) = inv.command else {
            panic!("not a lease")
        };
        assert_eq!(opts.protocol, Some(protocol));
        assert_eq!(protocol.as_str(), *word);
    }
}

#[test]
fn watch_takes_any_count_and_json() {
    let inv = ok("watch", &["--json", "--count", "1000"]);
    assert_eq!(inv.command, Command::Watch(Some(1000)));
    assert!(inv.json);
    assert_eq!(ok("watch", &[]).command, Command::Watch(None));
    assert_eq!(
        usage("watch", &["--count", "many"]),
        "--count: expected a whole number, got 'many'"
    );
    assert_eq!(usage("watch", &["web"]), "unexpected argument 'web'");
    assert_eq!(
        usage("watch", &["--pool", "web"]),
        "invalid option '--pool'"
    );
}
