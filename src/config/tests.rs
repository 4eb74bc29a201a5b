use super::*;
use log::LevelFilter;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(args.iter().map(OsString::from), |k| env.get(k).cloned())
}

pub(super) fn serve(args: &[&str], vars: &[(&str, &str)]) -> Settings {
    match run(args, vars) {
        Ok(Command::Serve(settings)) => *settings,
        other => panic!("expected settings from {args:?} {vars:?}, got {other:?}"),
    }
}

pub(super) fn error(args: &[&str], vars: &[(&str, &str)]) -> String {
    match run(args, vars) {
        Err(ConfigError(message)) => message,
        other => panic!("expected an error from {args:?} {vars:?}, got {other:?}"),
    }
}

const TOKEN: (&str, &str) = ("DYNPORT_TOKEN", "0123456789abcdef");

#[test]
fn defaults_apply_when_nothing_is_given() {
    let expected = Settings {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        range: PortRange {
            start: 3000,
            end: 9000,
        },
        state_dir: PathBuf::from("state"),
        unix_socket: Some(PathBuf::from("state/dynport.sock")),
        max_ports_per_uid: Some(1024),
        max_connections_per_uid: 256,
        refresh: Duration::from_secs(60),
        workers: 4,
        fallback_port: 3000,
        token: None,
        allow_hosts: vec![],
        log_level: LevelFilter::Info,
        pools: vec![],
        exclude: vec![
            3659, 4045, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6697,
        ],
        lease_ttl: Duration::from_secs(300),
        reserve_kernel: false,
        names: NameSettings {
            retention_days: 7,
            max_per_uid: 64,
        },
        routes: RouteSettings {
            domains: vec!["localhost".to_string()],
            port: None,
        },
        portserver: None,
        warnings: vec![],
    };
    assert_eq!(serve(&[], &[]), expected);
    assert_eq!(serve(&["serve"], &[]), expected);
    assert_eq!(Settings::default(), expected);
}

#[test]
fn every_setting_is_read_from_its_flag() {
    let args = "--host 10.0.0.1 --range 4000-4999 --state-dir /var/lib/dynport \
                --refresh-secs 5 --workers 8 --fallback-port 8080 --token abcdefghijklmnop \
                --log-level debug --pool web=4000-4099 --exclude 4500 --lease-ttl-secs 60 \
                --allow-host dynport.internal";
    let args: Vec<&str> = args.split_whitespace().collect();
    let s = serve(&args, &[]);
    assert_eq!(s.host, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(
        s.range,
        PortRange {
            start: 4000,
            end: 4999
        }
    );
    assert_eq!(s.state_dir, PathBuf::from("/var/lib/dynport"));
    assert_eq!(s.refresh, Duration::from_secs(5));
    assert_eq!(s.workers, 8);
    assert_eq!(s.fallback_port, 8080);
    assert_eq!(s.token.as_deref(), Some("abcdefghijklmnop"));
    assert_eq!(s.allow_hosts, ["dynport.internal"]);
    assert_eq!(s.log_level, LevelFilter::Debug);
    let web = Pool {
        name: "web".to_string(),
        range: PortRange {
            start: 4000,
            end: 4099,
        },
    };
    assert_eq!(s.pools, [web]);
    assert_eq!(s.exclude, [4500]);
    assert_eq!(s.lease_ttl, Duration::from_secs(60));
}

#[test]
fn every_setting_is_read_from_its_variable() {
    let vars = [
        ("HOST", "::"),
        ("DYNPORT_RANGE", "5000-5100"),
        ("DYNPORT_STATE_DIR", "/tmp/st"),
        ("DYNPORT_REFRESH_SECS", "30"),
        ("DYNPORT_WORKERS", "2"),
        ("DYNPORT_FALLBACK_PORT", "9999"),
        ("DYNPORT_TOKEN", "xyzxyzxyzxyzxyzx"),
        ("DYNPORT_ALLOW_HOSTS", "a.example,b.example"),
        ("DYNPORT_LOG", "TRACE"),
        ("DYNPORT_POOLS", "a=5000-5009,b=5010-5019"),
        ("DYNPORT_EXCLUDE", "5050-5052"),
        ("DYNPORT_LEASE_TTL_SECS", "604800"),
    ];
    let s = serve(&[], &vars);
    assert_eq!(s.host, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(
        s.range,
        PortRange {
            start: 5000,
            end: 5100
        }
    );
    assert_eq!(s.state_dir, PathBuf::from("/tmp/st"));
    assert_eq!(s.refresh, Duration::from_secs(30));
    assert_eq!(s.workers, 2);
    assert_eq!(s.fallback_port, 9999);
    assert_eq!(s.token.as_deref(), Some("xyzxyzxyzxyzxyzx"));
    assert_eq!(s.allow_hosts, ["a.example", "b.example"]);
    assert_eq!(s.log_level, LevelFilter::Trace);
    let names: Vec<&str> = s.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(s.exclude, [5050, 5051, 5052]);
    assert_eq!(s.lease_ttl, Duration::from_secs(604_800));
}

#[test]
fn flag_beats_variable_beats_default() {
    let vars = [("DYNPORT_WORKERS", "6"), ("DYNPORT_RANGE", "4000-4100")];
    let s = serve(&["--workers", "8"], &vars);
    assert_eq!(s.workers, 8);
    assert_eq!(
        s.range,
        PortRange {
            start: 4000,
            end: 4100
        }
    );
    assert_eq!(s.refresh, Duration::from_secs(60));
}

#[test]
fn a_good_flag_hides_a_bad_variable() {
    let s = serve(&["--workers", "3"], &[("DYNPORT_WORKERS", "many")]);
    assert_eq!(s.workers, 3);
}

#[test]
fn equals_form_gives_the_same_value() {
    let s = serve(&["--range=4000-4100", "--host=::1", "--workers=2"], &[]);
    assert_eq!(
        s.range,
        PortRange {
            start: 4000,
            end: 4100
        }
    );
    assert_eq!(s.host, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(s.workers, 2);
}

#[test]
fn last_of_a_repeated_flag_wins() {
    assert_eq!(serve(&["--workers", "2", "--workers=5"], &[]).workers, 5);
}

#[test]
fn range_start_above_end_is_refused_naming_its_source() {
    assert_eq!(
        error(&["--range", "9000-3000"], &[]),
        "--range: start 9000 is above end 3000"
    );
    assert_eq!(
        error(&[], &[("DYNPORT_RANGE", "9000-3000")]),
        "DYNPORT_RANGE: start 9000 is above end 3000"
    );
}

#[test]
fn port_zero_is_refused() {
    assert_eq!(
        error(&["--range", "0-10"], &[]),
        "--range: port 0 is not a valid port"
    );
    assert_eq!(
        error(&[], &[("DYNPORT_FALLBACK_PORT", "0")]),
        "DYNPORT_FALLBACK_PORT: port 0 is not a valid port"
    );
}

#[test]
fn port_above_65535_is_refused() {
    assert_eq!(
        error(&["--range", "3000-65536"], &[]),
        "--range: port 65536 is above 65535"
    );
    assert_eq!(
        error(&["--fallback-port", "70000"], &[]),
        "--fallback-port: port 70000 is above 65535"
    );
    assert_eq!(
        error(&["--fallback-port", "99999999999999999999999"], &[]),
        "--fallback-port: port 99999999999999999999999 is above 65535"
    );
}

#[test]
fn non_numbers_are_refused_naming_the_setting() {
    assert_eq!(
        error(&["--workers", "four"], &[]),
        "--workers: \"four\" is not a whole number"
    );
    assert_eq!(
        error(&[], &[("DYNPORT_WORKERS", "-1")]),
        "DYNPORT_WORKERS: \"-1\" is not a whole number"
    );
    assert_eq!(
        error(&[], &[("DYNPORT_REFRESH_SECS", "1m")]),
        "DYNPORT_REFRESH_SECS: \"1m\" is not a whole number"
    );
    assert_eq!(
        error(&["--fallback-port", "http"], &[]),
        "--fallback-port: \"http\" is not a port number"
    );
    assert_eq!(
        error(&["--range", "a-9000"], &[]),
        "--range: \"a\" is not a port number"
    );
    assert_eq!(
        error(&["--range", "3000"], &[]),
        "--range: \"3000\" is not a range; give START-END, like 3000-9000"
    );
}

#[test]
fn workers_and_refresh_outside_their_bounds_are_refused() {
    assert_eq!(
        error(&["--workers", "0"], &[]),
        "--workers: 0 is out of bounds; give 1 to 256"
    );
    assert_eq!(
        error(&[], &[("DYNPORT_WORKERS", "257")]),
        "DYNPORT_WORKERS: 257 is out of bounds; give 1 to 256"
    );
    assert_eq!(
        error(&["--refresh-secs", "0"], &[]),
        "--refresh-secs: 0 is out of bounds; give 1 to 86400"
    );
    assert_eq!(
        error(&["--refresh-secs", "99999999999999999999999"], &[]),
        "--refresh-secs: 99999999999999999999999 is out of bounds; give 1 to 86400"
    );
    assert_eq!(
        serve(&["--refresh-secs", "86400"], &[]).refresh.as_secs(),
        86400
    );
}

#[test]
fn unparsable_address_is_refused() {
    let hint = "is not an IP address; give an IPv4 or IPv6 address, like 127.0.0.1 or ::1 \
                (names such as localhost are not looked up)";
    assert_eq!(
        error(&["--host", "localhost"], &[]),
        format!("--host: \"localhost\" {hint}")
    );
    assert_eq!(
        error(&[], &[("HOST", "300.1.1.1")]),
        format!("HOST: \"300.1.1.1\" {hint}")
    );
}

#[test]
fn ipv6_loopback_is_accepted_with_or_without_brackets() {
    let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(serve(&["--host", "::1"], &[]).host, loopback);
    assert_eq!(serve(&["--host", "[::1]"], &[]).host, loopback);
    assert_eq!(serve(&[], &[("HOST", "[::1]")]).host, loopback);
}

#[test]
fn any_address_in_127_slash_8_is_loopback() {
    let s = serve(&["--host", "127.0.0.2"], &[]);
    assert_eq!(s.host, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
}

#[test]
fn non_loopback_host_without_token_is_refused_with_the_fix() {
    assert_eq!(
        error(&["--host", "0.0.0.0"], &[]),
        "--host 0.0.0.0 is not a loopback address: set --token or --token-file \
         (or DYNPORT_TOKEN, DYNPORT_TOKEN_FILE) so mutating endpoints require it, or listen on 127.0.0.1"
    );
    assert_eq!(
        error(&[], &[("HOST", "[::]")]),
        "HOST=[::] is not a loopback address: set --token or --token-file \
         (or DYNPORT_TOKEN, DYNPORT_TOKEN_FILE) so mutating endpoints require it, or listen on 127.0.0.1"
    );
}

#[test]
fn non_loopback_host_with_a_long_token_is_accepted() {
    let s = serve(&["--host", "0.0.0.0"], &[TOKEN]);
    assert_eq!(s.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(s.token.as_deref(), Some("0123456789abcdef"));
    let s = serve(&["--host", "192.168.1.5", "--token=éééééééééééééééé"], &[]);
    assert_eq!(
        s.token.as_deref(),
        Some("éééééééééééééééé"),
        "characters, not bytes"
    );
}

#[test]
fn non_loopback_host_with_a_short_token_is_refused_naming_the_rule() {
    assert_eq!(
        error(&["--host", "0.0.0.0", "--token", "0123456789abcde"], &[]),
        "--token: the token has 15 characters; off loopback (listening on 0.0.0.0) it needs \
         at least 16: make one with tr -dc A-Za-z0-9 </dev/urandom | head -c 32"
    );
    assert_eq!(
        error(&[], &[("HOST", "::"), ("DYNPORT_TOKEN", "x")]),
        "DYNPORT_TOKEN: the token has 1 character; off loopback (listening on ::) it needs \
         at least 16: make one with tr -dc A-Za-z0-9 </dev/urandom | head -c 32"
    );
}

#[test]
fn loopback_hosts_keep_short_tokens() {
    for host in ["127.0.0.1", "127.0.0.2", "::1"] {
        let s = serve(&["--host", host, "--token", "t"], &[]);
        assert_eq!(s.token.as_deref(), Some("t"), "{host}");
    }
}

#[test]
fn empty_token_is_refused() {
    assert_eq!(
        error(&[], &[("DYNPORT_TOKEN", "")]),
        "DYNPORT_TOKEN: set but empty; unset it or give a value"
    );
    assert_eq!(error(&["--token="], &[]), "--token: the value is empty");
}

#[test]
fn token_with_whitespace_is_refused() {
    assert_eq!(
        error(&["--token", "two words"], &[]),
        "--token: the token holds whitespace or a control character, \
         which an Authorization header cannot carry"
    );
}

#[test]
fn empty_variables_and_values_are_refused() {
    assert_eq!(
        error(&[], &[("DYNPORT_STATE_DIR", "")]),
        "DYNPORT_STATE_DIR: set but empty; unset it or give a value"
    );
    assert_eq!(error(&["--range="], &[]), "--range: the value is empty");
}

#[test]
fn state_dir_may_be_any_bytes() {
    use std::os::unix::ffi::OsStringExt;
    let dir = OsString::from_vec(vec![b's', 0xff]);
    let args = [OsString::from("--state-dir"), dir.clone()];
    match parse(args, |_| None) {
        Ok(Command::Serve(s)) => assert_eq!(s.state_dir, PathBuf::from(dir)),
        other => panic!("expected settings, got {other:?}"),
    }
}

#[test]
fn log_level_is_one_of_five_in_any_case() {
    assert_eq!(
        serve(&["--log-level", "WARN"], &[]).log_level,
        LevelFilter::Warn
    );
    assert_eq!(
        serve(&[], &[("DYNPORT_LOG", "error")]).log_level,
        LevelFilter::Error
    );
    assert_eq!(
        error(&[], &[("DYNPORT_LOG", "verbose")]),
        "DYNPORT_LOG: \"verbose\" is not a log level; give error, warn, info, debug or trace"
    );
}

#[test]
fn unknown_flag_is_refused() {
    assert_eq!(
        error(&["--port", "80"], &[]),
        "unknown flag --port; see dynport --help"
    );
    assert_eq!(error(&["-p"], &[]), "unknown flag -p; see dynport --help");
}

#[test]
fn missing_value_is_refused() {
    assert_eq!(error(&["--host"], &[]), "--host needs a value: --host ADDR");
    assert_eq!(
        error(&["serve", "--workers"], &[]),
        "--workers needs a value: --workers N"
    );
}

#[test]
fn unexpected_argument_is_refused() {
    assert_eq!(
        error(&["serve", "now"], &[]),
        "unexpected argument \"now\": dynport serve takes only flags; see dynport --help"
    );
    assert_eq!(
        error(&["start"], &[]),
        "unknown command \"start\"; see dynport --help"
    );
    assert_eq!(
        error(&["--help=yes"], &[]),
        "--help takes no value; see dynport --help"
    );
}

#[test]
fn port_variable_is_ignored_with_a_warning() {
    let s = serve(&[], &[("PORT", "8080")]);
    assert_eq!(s.fallback_port, 3000);
    assert_eq!(
        s.warnings,
        ["PORT=8080 is ignored: dynport chooses its port dynamically from --range (3000-9000)"]
    );
}

#[test]
fn reload_variable_has_no_effect_but_a_warning() {
    let s = serve(&[], &[("RELOAD", "true")]);
    assert_eq!(
        s.warnings,
        ["RELOAD has no effect: it is accepted only for compatibility with the seed"]
    );
}

#[test]
fn help_and_version_are_recognised_in_every_spelling() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["serve", "--help"],
        &["--workers", "0", "-h"],
    ] {
        assert_eq!(run(args, &[]), Ok(Command::Help), "{args:?}");
    }
    for args in [&["--version"][..], &["-V"], &["serve", "-V"]] {
        assert_eq!(run(args, &[]), Ok(Command::Version), "{args:?}");
    }
    assert_eq!(VERSION, "0.1.0");
}

#[test]
fn help_names_every_flag_variable_and_exit_status() {
    let help = help();
    for flag in flags::serve() {
        assert!(help.contains(&format!("\n  {}  ", flag.term())), "{flag:?}");
        assert!(help.contains(flag.var.unwrap()), "{flag:?}");
    }
    for line in [
        "  0  clean shutdown",
        "  1  any other failure",
        "  2  usage or configuration",
    ] {
        assert!(help.contains(line), "{line}");
    }
}

#[test]
fn help_fits_in_80_columns() {
    let widest = help().lines().map(|l| l.chars().count()).max();
    assert!(widest <= Some(80), "{widest:?}");
}

#[test]
fn help_shows_each_flag_in_columns_and_its_help_under_it() {
    let help = help();
    assert!(
        help.starts_with(
            "dynport: the port manager of a host. It picks its own port from a range,\n"
        )
    );
    let expected = "
Flags:                        Variable                Default
  --host ADDR                 HOST                    127.0.0.1
      Address to listen on, IPv4 or IPv6 ([::1] works too). Any address but
      loopback (127.0.0.0/8, ::1) needs --token or --token-file, of at
      least 16 characters.
  --range A-B                 DYNPORT_RANGE           3000-9000
";
    assert!(help.contains(expected), "{help}");
    let expected = "
  --max-connections-per-uid N  DYNPORT_MAX_CONNECTIONS_PER_UID  256
";
    assert!(help.contains(expected), "{help}");
    assert!(help.contains("\n  dynport help | --help | -h  print this help\n"));
}

/// Each flag the table has is taken, and none the table lacks.
#[test]
fn the_parser_takes_the_flags_of_the_table_and_no_other() {
    for flag in flags::serve() {
        let given = match flag.value {
            flags::Value::Switch => vec![format!("--{}", flag.name)],
            _ => vec![format!("--{}", flag.name), "x".to_string()],
        };
        let given: Vec<&str> = given.iter().map(String::as_str).collect();
        let parsed = raw::collect(given.iter().map(OsString::from).collect(), flags::SERVE);
        let Ok(raw::Parsed::Flags(values)) = parsed else {
            panic!("--{}: {parsed:?}", flag.name)
        };
        assert_eq!(values[0].key, *flag);
    }
    for name in ["json", "count", "url"] {
        let e = error(&[&format!("--{name}")], &[]);
        assert_eq!(e, format!("unknown flag --{name}; see dynport --help"));
    }
    let e = error(&["--help=1"], &[]);
    assert_eq!(e, "--help takes no value; see dynport --help");
}

/// Giving a flag its default, as the table shows it, changes nothing.
#[test]
fn the_defaults_the_table_shows_are_the_ones_applied() {
    // Defaults that say what happens rather than give a value.
    let described = ["token", "token-file", "allow-host", "pool", "exclude"];
    let state_dir = flags::STATE_DIR.default.unwrap();
    for flag in flags::serve().filter(|f| !described.contains(&f.name)) {
        let default = flag.default.unwrap().replace("STATE_DIR", state_dir);
        let given = match (flag.value, default.as_str()) {
            (flags::Value::Switch, "off") => format!("--{}=0", flag.name),
            _ => format!("--{}={default}", flag.name),
        };
        assert_eq!(serve(&[&given], &[]), Settings::default(), "{given}");
    }
    let default = flags::EXCLUDE.default.unwrap();
    assert!(default.contains("browser-refused"), "{default}");
}

#[test]
fn unix_socket_follows_the_state_dir_and_none_turns_it_off() {
    let settings = serve(&["--state-dir", "/srv/dp"], &[]);
    assert_eq!(
        settings.unix_socket,
        Some(PathBuf::from("/srv/dp/dynport.sock"))
    );
    let settings = serve(&["--unix-socket", "none"], &[]);
    assert_eq!(settings.unix_socket, None);
    let settings = serve(&[], &[("DYNPORT_UNIX_SOCKET", "/run/dp.sock")]);
    assert_eq!(settings.unix_socket, Some(PathBuf::from("/run/dp.sock")));
}

#[test]
fn unix_socket_path_longer_than_the_kernel_takes_is_refused() {
    let long = format!("/{}", "d".repeat(120));
    let e = error(&["--unix-socket", &long], &[]);
    assert!(e.starts_with("--unix-socket: the socket path"), "{}", e);
    let e = error(&["--state-dir", &long], &[]);
    assert!(e.contains("(from --state-dir)"), "{}", e);
}

#[test]
fn max_ports_per_uid_takes_a_number_or_none() {
    let settings = serve(&["--max-ports-per-uid", "5"], &[]);
    assert_eq!(settings.max_ports_per_uid, Some(5));
    let settings = serve(&[], &[("DYNPORT_MAX_PORTS_PER_UID", "none")]);
    assert_eq!(settings.max_ports_per_uid, None);
    let e = error(&["--max-ports-per-uid", "0"], &[]);
    assert!(
        e.starts_with("--max-ports-per-uid: 0 is out of bounds"),
        "{}",
        e
    );
}

#[test]
fn max_connections_per_uid_takes_a_number_from_1_to_1024() {
    assert_eq!(serve(&[], &[]).max_connections_per_uid, 256);
    let settings = serve(&["--max-connections-per-uid", "8"], &[]);
    assert_eq!(settings.max_connections_per_uid, 8);
    let settings = serve(&[], &[("DYNPORT_MAX_CONNECTIONS_PER_UID", "1024")]);
    assert_eq!(settings.max_connections_per_uid, 1024);
    for bad in ["0", "1025", "none", "-1"] {
        let e = error(&["--max-connections-per-uid", bad], &[]);
        assert!(e.starts_with("--max-connections-per-uid: "), "{bad}: {e}");
    }
}

#[test]
fn reserve_kernel_is_a_switch_its_variable_takes_1_0_true_false() {
    assert!(serve(&["--reserve-kernel"], &[]).reserve_kernel);
    assert!(!serve(&["--reserve-kernel=0"], &[]).reserve_kernel);
    assert!(serve(&["--reserve-kernel=true"], &[]).reserve_kernel);
    let var = "DYNPORT_RESERVE_KERNEL";
    for (text, on) in [("1", true), ("0", false), ("true", true), ("FALSE", false)] {
        assert_eq!(serve(&[], &[(var, text)]).reserve_kernel, on, "{text}");
    }
    assert!(!serve(&["--reserve-kernel=false"], &[(var, "1")]).reserve_kernel);
    assert!(serve(&["--reserve-kernel"], &[(var, "0")]).reserve_kernel);
    assert_eq!(
        error(&[], &[(var, "yes")]),
        "DYNPORT_RESERVE_KERNEL: \"yes\" is not a switch value; give 1, 0, true or false"
    );
    assert_eq!(
        error(&["--reserve-kernel=2"], &[]),
        "--reserve-kernel: \"2\" is not a switch value; give 1, 0, true or false"
    );
    assert_eq!(
        error(&[], &[(var, "")]),
        "DYNPORT_RESERVE_KERNEL: set but empty; unset it or give a value"
    );
    // A switch takes no separate value: the next word is a flag of its own.
    let s = serve(&["--reserve-kernel", "--workers", "2"], &[]);
    assert!(s.reserve_kernel);
    assert_eq!(s.workers, 2);
}
