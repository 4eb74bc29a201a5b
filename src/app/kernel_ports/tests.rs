//! The rules of the kernel's lists on texts, and the [`Reserver`] on
//! files that stand in for `/proc`.

use super::*;
use crate::state::{KERNEL_RECORD_FILE, StateFile};
use std::fs;

fn set(ports: &[u16]) -> BTreeSet<u16> {
    ports.iter().copied().collect()
}

fn range(start: u16, end: u16) -> PortRange {
    PortRange { start, end }
}

#[test]
fn ephemeral_range_is_read_as_the_kernel_writes_it() {
    assert_eq!(parse_range("32768\t60999\n"), Ok(range(32768, 60999)));
    assert_eq!(parse_range("  1024 65535 "), Ok(range(1024, 65535)));
    assert_eq!(
        parse_range("32768"),
        Err("\"32768\" is not two port numbers".to_string())
    );
    assert_eq!(
        parse_range("32768 70000"),
        Err("\"70000\" is not a port".to_string())
    );
    assert!(parse_range("60999 32768").is_err());
}

#[test]
fn overlap_is_the_shared_part_or_none() {
    let kernel = range(32768, 60999);
    assert_eq!(
        overlap(range(30000, 40000), kernel),
        Some(range(32768, 40000))
    );
    assert_eq!(
        overlap(range(40000, 65000), kernel),
        Some(range(40000, 60999))
    );
    assert_eq!(
        overlap(range(40000, 40010), kernel),
        Some(range(40000, 40010))
    );
    assert_eq!(overlap(range(3000, 9000), kernel), None);
    assert_eq!(overlap(range(3000, 32767), kernel), None);
    assert_eq!(
        overlap(range(3000, 32768), kernel),
        Some(range(32768, 32768))
    );
}

#[test]
fn overlap_warning_names_both_ranges_the_overlap_and_the_fix() {
    let kernel = range(32768, 60999);
    assert_eq!(
        overlap_warning(range(30000, 40000), kernel).unwrap(),
        "the managed range 30000-40000 overlaps the kernel's ephemeral range 32768-60999 \
         (ports 32768-40000): any outgoing connection can take a leased port there before \
         its holder binds it; narrow --range, or use --reserve-kernel"
    );
    let one = overlap_warning(range(60999, 61000), kernel).unwrap();
    assert!(one.contains("(port 60999)"), "{one}");
    assert_eq!(overlap_warning(range(3000, 9000), kernel), None);
}

#[test]
fn reserved_list_takes_ports_ranges_spaces_and_nothing() {
    assert_eq!(parse_list(""), Ok(set(&[])));
    assert_eq!(parse_list("\n"), Ok(set(&[])));
    assert_eq!(parse_list("8080\n"), Ok(set(&[8080])));
    assert_eq!(
        parse_list("8080,9000-9003\n"),
        Ok(set(&[8080, 9000, 9001, 9002, 9003]))
    );
    assert_eq!(
        parse_list(" 9001 , 8080, 9000 - 9001,"),
        Ok(set(&[8080, 9000, 9001]))
    );
    assert_eq!(
        parse_list("8080,x"),
        Err("\"x\" is not a port or a range of ports".to_string())
    );
    assert_eq!(
        parse_list("70000"),
        Err("\"70000\" is not a port or a range of ports".to_string())
    );
    assert_eq!(
        parse_list("9010-9000"),
        Err("\"9010-9000\" starts above its end".to_string())
    );
}

#[test]
fn reserved_list_is_written_as_the_kernel_normalizes_it() {
    assert_eq!(format_list(&set(&[])), "");
    assert_eq!(format_list(&set(&[8080])), "8080");
    assert_eq!(
        format_list(&set(&[9002, 8080, 9000, 9001, 9004, 65535, 65534])),
        "8080,9000-9002,9004,65534-65535"
    );
    let text = "1,3-5,40000-40004,65535";
    assert_eq!(format_list(&parse_list(text).unwrap()), text);
}

#[test]
fn merge_adds_wanted_ports_and_keeps_every_entry_of_others() {
    let merged = merge(&set(&[8080, 9000]), &set(&[]), &set(&[40001, 40002]));
    assert_eq!(merged.list, set(&[8080, 9000, 40001, 40002]));
    assert_eq!(merged.ours, set(&[40001, 40002]));
}

#[test]
fn merge_removes_only_ours_that_are_no_longer_wanted() {
    let current = set(&[8080, 40001, 40002]);
    let merged = merge(&current, &set(&[40001, 40002]), &set(&[40002]));
    assert_eq!(merged.list, set(&[8080, 40002]));
    assert_eq!(merged.ours, set(&[40002]));
    let merged = merge(&merged.list, &merged.ours, &set(&[]));
    assert_eq!(merged.list, set(&[8080]));
    assert_eq!(merged.ours, set(&[]));
}

#[test]
fn merge_never_claims_an_entry_that_was_there_before() {
    // 40001 is someone else's: wanted, it stays theirs; unwanted, it stays.
    let merged = merge(&set(&[40001]), &set(&[]), &set(&[40001, 40002]));
    assert_eq!(merged.list, set(&[40001, 40002]));
    assert_eq!(merged.ours, set(&[40002]));
    let merged = merge(&merged.list, &merged.ours, &set(&[]));
    assert_eq!(merged.list, set(&[40001]));
}

#[test]
fn merge_puts_back_an_entry_of_ours_someone_removed() {
    let merged = merge(&set(&[8080]), &set(&[40001]), &set(&[40001]));
    assert_eq!(merged.list, set(&[8080, 40001]));
    assert_eq!(merged.ours, set(&[40001]));
}

#[test]
fn wanted_is_leased_and_server_ports_inside_the_kernel_range() {
    let json = r#"{"version":1,"updated_at":"2026-01-01T00:00:00Z",
        "port_range":{"start":30000,"end":40000},"server_port":33000,
        "last_server_port":33000,"server":null,"ports":{},"last_scan":null,
        "leases":{"a":{"id":"a","ports":[30001,40000],"pool":"default","owner":null,
        "pid":null,"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:05:00Z"}}}"#;
    let state = StateFile::parse(json.as_bytes()).unwrap();
    let leased = || state.leases.values().flat_map(|l| l.ports.iter().copied());
    let wants = |kernel| wanted(leased(), state.server_port, kernel);
    assert_eq!(wants(range(32768, 60999)), set(&[33000, 40000]));
    assert_eq!(wants(range(50000, 60999)), set(&[]));
}

/// Files standing in for the kernel's, and a state directory, removed on drop.
struct FakeKernel {
    root: PathBuf,
    kernel: Kernel,
}

impl FakeKernel {
    fn new(name: &str, reserved: &str) -> FakeKernel {
        let root =
            std::env::temp_dir().join(format!("dynport-kernel-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("state")).unwrap();
        let kernel = Kernel {
            port_range: root.join("ip_local_port_range"),
            reserved: root.join("ip_local_reserved_ports"),
            boot_id: root.join("boot_id"),
        };
        fs::write(&kernel.port_range, "32768\t60999\n").unwrap();
        fs::write(&kernel.reserved, reserved).unwrap();
        fs::write(&kernel.boot_id, "boot-1\n").unwrap();
        FakeKernel { root, kernel }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn reserver(&self) -> Reserver {
        let dir = crate::state::files::Dir::open(&self.state_dir()).unwrap();
        Reserver::open(self.kernel.clone(), range(32768, 60999), &dir).unwrap()
    }

    fn list(&self) -> String {
        fs::read_to_string(&self.kernel.reserved).unwrap()
    }

    fn record(&self) -> Option<String> {
        fs::read_to_string(self.state_dir().join(KERNEL_RECORD_FILE)).ok()
    }
}

impl Drop for FakeKernel {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[test]
fn reserver_keeps_its_entries_in_step_and_others_untouched() {
    let fake = FakeKernel::new("step", "8080,40001\n");
    let reserver = fake.reserver();
    reserver.sync(set(&[40001, 40002, 40003]), false);
    assert_eq!(fake.list(), "8080,40001-40003\n");
    assert_eq!(reserver.count(), 2);
    reserver.sync(set(&[40003]), false);
    assert_eq!(fake.list(), "8080,40001,40003\n");
    assert_eq!(reserver.count(), 1);
    reserver.release_all().unwrap();
    assert_eq!(fake.list(), "8080,40001\n");
    assert_eq!(reserver.count(), 0);
    assert_eq!(fake.record(), None);
}

#[test]
fn reserver_records_its_entries_with_the_boot() {
    let fake = FakeKernel::new("record", "");
    let reserver = fake.reserver();
    reserver.sync(set(&[40001, 40002]), false);
    assert_eq!(
        fake.record().unwrap(),
        r#"{"boot_id":"boot-1","ports":"40001-40002"}"#
    );
}

#[test]
fn recheck_puts_back_what_someone_else_removed() {
    let fake = FakeKernel::new("recheck", "");
    let reserver = fake.reserver();
    reserver.sync(set(&[40001]), false);
    fs::write(&fake.kernel.reserved, "8080\n").unwrap();
    reserver.sync(set(&[40001]), false);
    assert_eq!(fake.list(), "8080\n", "unchanged wants are not rewritten");
    reserver.sync(set(&[40001]), true);
    assert_eq!(fake.list(), "8080,40001\n");
}

#[test]
fn a_server_that_died_is_followed_by_one_that_takes_its_entries_back() {
    let fake = FakeKernel::new("adopt", "8080\n");
    let died = fake.reserver();
    died.sync(set(&[40001, 40002]), false);
    drop(died);
    // Someone else removed 40002 meanwhile: only 40001 is taken back.
    fs::write(&fake.kernel.reserved, "8080,40001\n").unwrap();
    let next = fake.reserver();
    assert_eq!(next.count(), 1);
    next.sync(set(&[]), false);
    assert_eq!(fake.list(), "8080\n");
}

#[test]
fn a_record_of_another_boot_claims_nothing() {
    let fake = FakeKernel::new("reboot", "");
    fake.reserver().sync(set(&[40001]), false);
    fs::write(&fake.kernel.boot_id, "boot-2\n").unwrap();
    // After the reboot, a boot script reserved 40001 itself.
    let next = fake.reserver();
    assert_eq!(next.count(), 0);
    next.sync(set(&[]), false);
    assert_eq!(fake.list(), "40001\n");
}

#[test]
fn a_failed_write_is_tried_again() {
    let fake = FakeKernel::new("retry", "");
    let reserver = fake.reserver();
    fs::remove_file(&fake.kernel.reserved).unwrap();
    reserver.sync(set(&[40001]), false);
    assert_eq!(reserver.count(), 0);
    fs::write(&fake.kernel.reserved, "").unwrap();
    reserver.sync(set(&[40001]), false);
    assert_eq!(fake.list(), "40001\n");
    assert_eq!(reserver.count(), 1);
}

#[test]
fn preflight_refuses_a_list_it_cannot_write_naming_the_fix() {
    let fake = FakeKernel::new("preflight", "");
    let managed = range(30000, 40000);
    assert_eq!(preflight(&fake.kernel, managed, false), Ok(()));
    assert_eq!(preflight(&fake.kernel, managed, true), Ok(()));
    fs::remove_file(&fake.kernel.reserved).unwrap();
    assert_eq!(preflight(&fake.kernel, managed, false), Ok(()));
    let shown = fake.kernel.reserved.display();
    assert_eq!(
        preflight(&fake.kernel, managed, true),
        Err(format!(
            "--reserve-kernel (DYNPORT_RESERVE_KERNEL): cannot write {shown}: No such file \
             or directory (os error 2); run dynport as root (or with CAP_NET_ADMIN) where \
             /proc/sys is writable, or without --reserve-kernel"
        ))
    );
}

#[test]
fn preflight_refuses_without_an_ephemeral_range() {
    let fake = FakeKernel::new("norange", "");
    fs::write(&fake.kernel.port_range, "garbage\n").unwrap();
    let e = preflight(&fake.kernel, range(30000, 40000), true).unwrap_err();
    let shown = fake.kernel.port_range.display();
    assert_eq!(
        e,
        format!(
            "--reserve-kernel (DYNPORT_RESERVE_KERNEL): cannot read {shown}: \"garbage\\n\" \
             is not two port numbers; without the kernel's ephemeral range there is nothing \
             to reserve: run without --reserve-kernel"
        )
    );
    let dir = crate::state::files::Dir::open(&fake.state_dir()).unwrap();
    let opened = KernelPorts::open(fake.kernel.clone(), &dir, false);
    assert_eq!(opened.unwrap().ephemeral, None);
}
