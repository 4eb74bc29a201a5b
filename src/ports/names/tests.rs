use super::*;
use crate::ports::PortRange;
use crate::ports::lease::{DEFAULT_POOL, LeaseRequest, Protocol};
use std::time::UNIX_EPOCH;

const DAY: u64 = 86_400;
const ALICE: Option<u32> = Some(1000);
const BOB: Option<u32> = Some(1001);

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

/// A table of 100-109 with a pool `web` of 104-106, names kept 7 days.
fn table() -> PortTable {
    let mut t = PortTable::new(PortRange::new(100, 109).unwrap(), &[], "t");
    t.add_pool("web", PortRange::new(104, 106).unwrap());
    t.set_name_retention(Duration::from_secs(7 * DAY));
    t
}

fn ask(uid: Option<u32>, name: &str) -> LeaseRequest {
    LeaseRequest {
        count: 1,
        port: None,
        pool: DEFAULT_POOL.to_string(),
        ttl: Duration::from_secs(60),
        owner: None,
        uid,
        protocol: Protocol::Both,
        pid: None,
        pid_start: None,
        name: Some(name.to_string()),
    }
}

fn user(max: usize) -> Allowance {
    Allowance {
        ports: None,
        names: Some(max),
        operator: false,
    }
}

const OPERATOR: Allowance = Allowance {
    ports: None,
    names: None,
    operator: true,
};

fn grant(t: &mut PortTable, req: &LeaseRequest, id: &str, now: u64) -> Result<Lease, LeaseError> {
    t.grant(req, id.to_string(), at(now), user(64), &mut |_| true)
}

fn conflict(message: &str) -> LeaseError {
    LeaseError::Unavailable(message.to_string())
}

#[test]
fn a_name_is_dns_labels_lowercased() {
    assert_eq!(parse_name("web"), Ok("web".to_string()));
    assert_eq!(parse_name("Fix-UI.Shop"), Ok("fix-ui.shop".to_string()));
    assert_eq!(parse_name("a1.b-2.c"), Ok("a1.b-2.c".to_string()));
    let label = "a".repeat(63);
    assert_eq!(parse_name(&label), Ok(label.clone()));
    let long = [label.as_str(); 3].join(".") + ".abcdefghij";
    assert_eq!(long.len(), 202);
    let cases = [
        ("", "name: must be 1 to 200 characters long, got 0"),
        (
            long.as_str(),
            "name: must be 1 to 200 characters long, got 202",
        ),
        (
            "my_app",
            "name: '_' is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
        ),
        (
            "café",
            "name: 'é' is not allowed: a name is DNS labels of a-z, 0-9 and - joined by dots",
        ),
        (
            "a..b",
            "name: has an empty label (two dots, or a dot at an end)",
        ),
        (
            "web.",
            "name: has an empty label (two dots, or a dot at an end)",
        ),
        ("-web", "name: label -web starts or ends with -"),
        ("shop.web-", "name: label web- starts or ends with -"),
    ];
    for (raw, message) in cases {
        assert_eq!(parse_name(raw), Err(message.to_string()), "{raw:?}");
    }
    let too_long = "b".repeat(64);
    assert_eq!(
        parse_name(&too_long),
        Err(format!(
            "name: label {too_long} is 64 characters long; a label has at most 63"
        ))
    );
}

#[test]
fn a_lease_names_its_first_port_and_its_name_is_live() {
    let mut t = table();
    let lease = grant(
        &mut t,
        &LeaseRequest {
            count: 2,
            ..ask(ALICE, "web")
        },
        "a",
        0,
    )
    .unwrap();
    assert_eq!(
        (lease.ports.clone(), lease.name.as_deref()),
        (vec![100, 101], Some("web"))
    );
    assert_eq!(t.live_name_port("web"), Some(100));
    assert_eq!(t.live_names(), [("web".to_string(), 100)]);
    let name = &t.name_at("web", at(0)).unwrap().clone();
    assert_eq!(
        name,
        &Name {
            uid: ALICE,
            port: 100,
            alias: false,
            lease_id: Some("a".to_string()),
            ended_at: None
        }
    );
    assert_eq!(t.retained_until(name), None);
    let changes = t.take_name_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].was.clone(), changes[0].now.as_ref()),
        (None, Some(name))
    );
}

#[test]
fn a_live_name_is_held_by_one_lease() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    let before = t.clone();
    assert_eq!(
        grant(&mut t, &ask(ALICE, "web"), "b", 1),
        Err(conflict("name web is held by lease a"))
    );
    assert_eq!(
        grant(&mut t, &ask(BOB, "web"), "b", 1),
        Err(conflict("name web belongs to uid 1000"))
    );
    assert_eq!(
        grant(&mut t, &ask(None, "web"), "b", 1),
        Err(conflict("name web belongs to uid 1000"))
    );
    let by_operator = t.grant(
        &ask(Some(0), "web"),
        "b".into(),
        at(1),
        OPERATOR,
        &mut |_| true,
    );
    assert_eq!(
        by_operator,
        Err(conflict("name web belongs to uid 1000")),
        "a live one they end first"
    );
    assert_eq!(t, before, "nothing changes on a refusal");
}

#[test]
fn a_name_is_its_owners_for_the_retention_after_its_lease_ended() {
    let mut t = table();
    grant(&mut t, &ask(None, "api"), "a", 0).unwrap();
    t.release("a", at(10)).unwrap();
    assert_eq!(t.live_name_port("api"), None);
    let kept = t.name_at("api", at(10)).unwrap().clone();
    assert_eq!((kept.lease_id.clone(), kept.ended_at), (None, Some(at(10))));
    assert_eq!(t.retained_until(&kept), Some(at(10 + 7 * DAY)));
    assert_eq!(
        grant(&mut t, &ask(ALICE, "api"), "b", 20),
        Err(conflict("name api belongs to remote callers"))
    );
    // The last second of the retention, then free for anyone.
    let last = 10 + 7 * DAY - 1;
    assert!(grant(&mut t, &ask(ALICE, "api"), "b", last).is_err());
    assert_eq!(
        grant(&mut t, &ask(ALICE, "api"), "b", last + 1)
            .unwrap()
            .name
            .as_deref(),
        Some("api")
    );
    assert_eq!(t.name_at("api", at(last + 1)).unwrap().uid, ALICE);
}

#[test]
fn operators_take_a_retained_name() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    t.release("a", at(1)).unwrap();
    let lease = t
        .grant(
            &ask(Some(0), "web"),
            "b".into(),
            at(2),
            OPERATOR,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(lease.ports, [100], "and its sticky port");
    assert_eq!(t.name_at("web", at(2)).unwrap().uid, Some(0));
}

#[test]
fn a_lease_for_a_name_gets_its_last_port_when_free_in_its_pool() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "other"), "x", 0).unwrap();
    assert_eq!(
        grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap().ports,
        [101]
    );
    t.release("a", at(1)).unwrap();
    // Round robin would hand out 102; the name's port comes first.
    assert_eq!(
        grant(&mut t, &ask(ALICE, "web"), "b", 2).unwrap().ports,
        [101]
    );
    assert_eq!(
        grant(
            &mut t,
            &LeaseRequest {
                name: None,
                ..ask(ALICE, "x")
            },
            "c",
            2
        )
        .unwrap()
        .ports,
        [102],
        "the cursor did not move"
    );
    t.release("b", at(3)).unwrap();
    // Its last port taken: any port, as today.
    let exact = LeaseRequest {
        port: Some(101),
        name: None,
        ..ask(BOB, "x")
    };
    grant(&mut t, &exact, "d", 3).unwrap();
    assert_eq!(
        grant(&mut t, &ask(ALICE, "web"), "e", 4).unwrap().ports,
        [103]
    );
    t.release("e", at(5)).unwrap();
    // Outside the pool asked for: any port of the pool.
    let web = LeaseRequest {
        pool: "web".to_string(),
        ..ask(ALICE, "web")
    };
    assert_eq!(grant(&mut t, &web, "f", 6).unwrap().ports, [104]);
    t.release("f", at(7)).unwrap();
    // Several ports: the name's port first, the rest by round robin.
    let three = LeaseRequest {
        count: 3,
        ..ask(ALICE, "web")
    };
    assert_eq!(
        grant(&mut t, &three, "g", 8).unwrap().ports,
        [104, 105, 106]
    );
}

#[test]
fn a_sticky_port_that_fails_the_bind_check_is_not_taken() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    t.release("a", at(1)).unwrap();
    let lease = t
        .grant(&ask(ALICE, "web"), "b".into(), at(2), user(64), &mut |p| {
            p != 100
        })
        .unwrap();
    assert_eq!(lease.ports, [101]);
}

#[test]
fn the_names_quota_counts_live_retained_and_aliases_not_operators() {
    let mut t = table();
    t.grant(&ask(ALICE, "a"), "1".into(), at(0), user(3), &mut |_| true)
        .unwrap();
    t.release("1", at(1)).unwrap();
    t.set_alias("db", 5432, Principal::User(1000), user(3), at(1))
        .unwrap();
    t.grant(&ask(ALICE, "c"), "2".into(), at(1), user(3), &mut |_| true)
        .unwrap();
    let over = t.grant(&ask(ALICE, "d"), "3".into(), at(2), user(3), &mut |_| true);
    let message = "quota: uid 1000 may hold at most 3 names, live and retained \
                   (--max-names-per-uid), and holds 3";
    assert_eq!(
        over,
        Err(LeaseError::Refused(Refusal::Quota(message.to_string())))
    );
    assert_eq!(
        t.set_alias("e", 5433, Principal::User(1000), user(3), at(2)),
        Err(LeaseError::Refused(Refusal::Quota(message.to_string())))
    );
    // Its own retained name is not one more.
    t.grant(&ask(ALICE, "a"), "4".into(), at(2), user(3), &mut |_| true)
        .unwrap();
    // Another principal has its own count; operators none.
    t.grant(&ask(BOB, "d"), "5".into(), at(2), user(3), &mut |_| true)
        .unwrap();
    for (i, name) in ["o1", "o2", "o3", "o4"].iter().enumerate() {
        let req = LeaseRequest {
            count: 1,
            ..ask(Some(0), name)
        };
        let id = format!("op{i}");
        t.grant(&req, id, at(2), OPERATOR, &mut |_| true).unwrap();
    }
    // A retained name past its time is not counted.
    t.release("2", at(3)).unwrap();
    let later = 3 + 7 * DAY;
    t.grant(
        &ask(ALICE, "f"),
        "6".into(),
        at(later),
        user(3),
        &mut |_| true,
    )
    .unwrap();
}

#[test]
fn an_alias_names_any_port_not_leased_to_another_principal() {
    let mut t = table();
    let alice = Principal::User(1000);
    let alias = t.set_alias("db", 5432, alice, user(64), at(0)).unwrap();
    assert_eq!(
        alias,
        Name {
            uid: ALICE,
            port: 5432,
            alias: true,
            lease_id: None,
            ended_at: None
        }
    );
    assert_eq!(t.live_name_port("db"), Some(5432));
    // In the range too, and moved by its owner.
    t.set_alias("db", 107, alice, user(64), at(1)).unwrap();
    assert_eq!(t.live_name_port("db"), Some(107));
    let bob_lease = grant(
        &mut t,
        &LeaseRequest {
            name: None,
            ..ask(BOB, "x")
        },
        "b",
        2,
    )
    .unwrap();
    let before = t.clone();
    assert_eq!(
        t.set_alias("web", bob_lease.ports[0], alice, user(64), at(2)),
        Err(conflict(
            "port 100 is leased to uid 1001; a port leased to another principal cannot be aliased"
        ))
    );
    assert_eq!(
        t.set_alias("db", 1, Principal::User(1001), user(64), at(2)),
        Err(conflict("name db belongs to uid 1000"))
    );
    assert_eq!(t, before);
    // Its own leased port, it may.
    let own = grant(
        &mut t,
        &LeaseRequest {
            name: None,
            ..ask(ALICE, "x")
        },
        "c",
        2,
    )
    .unwrap();
    assert!(
        t.set_alias("mine", own.ports[0], alice, user(64), at(2))
            .is_ok()
    );
    // A lease's name is not an alias to move.
    grant(&mut t, &ask(ALICE, "web"), "d", 2).unwrap();
    assert_eq!(
        t.set_alias("web", 5000, alice, user(64), at(3)),
        Err(conflict("name web is held by lease d"))
    );
}

#[test]
fn an_alias_ends_when_another_principal_leases_its_port() {
    let mut t = table();
    t.set_alias("db", 100, Principal::User(1000), user(64), at(0))
        .unwrap();
    t.set_alias("own", 101, Principal::User(1001), user(64), at(0))
        .unwrap();
    let lease = grant(
        &mut t,
        &LeaseRequest {
            count: 2,
            name: None,
            ..ask(BOB, "x")
        },
        "b",
        5,
    )
    .unwrap();
    assert_eq!(lease.ports, [100, 101]);
    assert_eq!(t.live_name_port("db"), None);
    let db = t.name_at("db", at(5)).unwrap();
    assert_eq!((db.alias, db.ended_at, db.uid), (true, Some(at(5)), ALICE));
    assert_eq!(
        t.live_name_port("own"),
        Some(101),
        "its owner's lease leaves it"
    );
}

#[test]
fn removing_an_alias_retains_it_and_removing_a_retained_name_forgets_it() {
    let mut t = table();
    let (alice, bob) = (Principal::User(1000), Principal::User(1001));
    t.set_alias("db", 5432, alice, user(64), at(0)).unwrap();
    assert_eq!(
        t.remove_name("db", bob, false, at(1)),
        Err(conflict("name db belongs to uid 1000"))
    );
    assert_eq!(
        t.remove_name("nope", alice, false, at(1)),
        Err(LeaseError::UnknownName("nope".into()))
    );
    let was = t.remove_name("db", alice, false, at(1)).unwrap();
    assert!(was.is_live());
    let kept = t.name_at("db", at(1)).unwrap();
    assert_eq!(
        (kept.ended_at, kept.port, kept.alias),
        (Some(at(1)), 5432, true)
    );
    assert_eq!(t.live_name_port("db"), None);
    t.remove_name("db", alice, false, at(2)).unwrap();
    assert_eq!(t.name_at("db", at(2)), None);
    // A lease's name ends with its lease.
    grant(&mut t, &ask(ALICE, "web"), "a", 3).unwrap();
    assert_eq!(
        t.remove_name("web", alice, false, at(3)),
        Err(conflict(
            "name web is held by lease a; release the lease to end it"
        ))
    );
    // An operator removes anyone's alias.
    t.set_alias("bobs", 5000, bob, user(64), at(3)).unwrap();
    assert!(
        t.remove_name("bobs", Principal::User(0), true, at(4))
            .is_ok()
    );
}

#[test]
fn with_no_retention_a_name_is_forgotten_when_its_lease_ends() {
    let mut t = table();
    t.set_name_retention(Duration::ZERO);
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    t.release("a", at(1)).unwrap();
    assert_eq!(t.name_at("web", at(1)), None);
    assert_eq!(t.name_map().len(), 0);
    assert!(grant(&mut t, &ask(BOB, "web"), "b", 1).is_ok());
}

#[test]
fn expired_names_are_forgotten_and_journaled() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    let ended = t.end_due(at(60), &|_, _| true);
    assert_eq!(ended.len(), 1, "the lease's TTL passed");
    assert_eq!(t.name_at("web", at(60)).unwrap().ended_at, Some(at(60)));
    t.take_name_changes();
    assert_eq!(t.expire_names(at(60 + 7 * DAY - 1)), 0);
    assert_eq!(t.expire_names(at(60 + 7 * DAY)), 1);
    let changes = t.take_name_changes();
    assert_eq!(
        (changes[0].name.as_str(), changes[0].now.clone()),
        ("web", None)
    );
    assert!(t.name_map().is_empty());
}

#[test]
fn undone_name_changes_leave_the_names_as_they_were() {
    let mut t = table();
    t.set_alias("db", 100, Principal::User(1000), user(64), at(0))
        .unwrap();
    t.take_name_changes();
    let before = t.clone();
    let lease = grant(
        &mut t,
        &LeaseRequest {
            name: Some("web".into()),
            ..ask(BOB, "web")
        },
        "b",
        1,
    )
    .unwrap();
    let changes = t.take_name_changes();
    assert_eq!(changes.len(), 2, "the alias ended, the name given");
    t.ungrant(&lease.id);
    t.undo_name_changes(changes);
    assert_eq!(t.name_map(), before.name_map());
    assert_eq!(t.entries(), before.entries());
    assert_eq!(t.lease_count(), 0);
    assert!(t.take_name_changes().is_empty());
}

#[test]
fn loaded_names_follow_the_loaded_leases() {
    let mut t = table();
    grant(&mut t, &ask(ALICE, "web"), "a", 0).unwrap();
    grant(&mut t, &ask(ALICE, "api"), "b", 0).unwrap();
    let mut names = t.name_map().clone();
    names.insert("Bad_Name".into(), names["web"].clone());
    let leases: BTreeMap<String, Lease> = t
        .leases()
        .filter(|l| l.id == "a")
        .map(|l| (l.id.clone(), l.clone()))
        .collect();
    let mut fresh = table();
    fresh.insert_loaded(leases, "t");
    fresh.insert_loaded_names(names, at(9));
    assert_eq!(fresh.live_names(), [("web".to_string(), 100)]);
    let api = fresh.name_at("api", at(9)).unwrap();
    assert_eq!(
        (api.lease_id.clone(), api.ended_at),
        (None, Some(at(9))),
        "its lease is gone"
    );
    assert!(fresh.name_at("bad_name", at(9)).is_none());
    assert!(fresh.take_name_changes().is_empty());
}

#[test]
fn a_name_serialises_without_its_empty_fields() {
    let live = Name {
        uid: Some(1002),
        port: 3007,
        alias: false,
        lease_id: Some("ab".into()),
        ended_at: None,
    };
    let json = serde_json::to_string(&live).unwrap();
    assert_eq!(
        json,
        r#"{"uid":1002,"port":3007,"alias":false,"lease_id":"ab"}"#
    );
    let kept = Name {
        lease_id: None,
        ended_at: Some(UNIX_EPOCH + Duration::from_secs(1_795_633_200)),
        ..live
    };
    let json = serde_json::to_string(&kept).unwrap();
    assert_eq!(
        json,
        r#"{"uid":1002,"port":3007,"alias":false,"ended_at":"2026-11-25T19:00:00Z"}"#
    );
    assert_eq!(serde_json::from_str::<Name>(&json).unwrap(), kept);
}
