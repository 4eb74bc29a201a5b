//! The kernel's reserved list through the router: a lease's port is in it
//! before the 201, out of it before the release's 200, and the overview and
//! `/metrics` count dynport's entries. Files stand in for `/proc`.
use super::tests::{OPERATOR, answer, call_as, fixture, from_uid};
use crate::app::kernel_ports::{Kernel, KernelPorts, Reserver};
use crate::http::Request;
use serde_json::{Value, json};
use std::fs;
use std::path::PathBuf;

/// Files standing in for the kernel's, removed on drop.
struct FakeKernel {
    dir: PathBuf,
    kernel: Kernel,
}

impl FakeKernel {
    fn new(name: &str) -> FakeKernel {
        let dir =
            std::env::temp_dir().join(format!("dynport-api-kernel-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let kernel = Kernel {
            port_range: dir.join("ip_local_port_range"),
            reserved: dir.join("ip_local_reserved_ports"),
            boot_id: dir.join("boot_id"),
        };
        fs::write(&kernel.reserved, "1\n").unwrap();
        fs::write(&kernel.boot_id, "boot\n").unwrap();
        FakeKernel { dir, kernel }
    }

    fn list(&self) -> String {
        fs::read_to_string(&self.kernel.reserved).unwrap()
    }
}

impl Drop for FakeKernel {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn call(app: &crate::api::Api, method: &str, target: &str, body: &str) -> (u16, Value) {
    call_as(app, from_uid(Some(OPERATOR)), method, target, &[], body)
}

fn overview(app: &crate::api::Api) -> Value {
    let (status, body) = call(app, "GET", "/api/v1/system/overview", "");
    assert_eq!(status, 200);
    body["port_manager"].clone()
}

#[test]
fn without_the_flag_the_overview_shows_null() {
    let f = fixture("kernel-off", None);
    let manager = overview(&f.app);
    assert_eq!(manager["kernel_ephemeral_range"], Value::Null);
    assert_eq!(manager["kernel_reserved_ports"], Value::Null);
}

#[test]
fn leased_ports_are_reserved_before_the_answer_and_freed_before_the_release() {
    let f = fixture("kernel-on", None);
    let fake = FakeKernel::new("router");
    let (server, free) = (f.range.start, f.range.start + 2);
    let dir = crate::state::files::Dir::open(&fake.dir).unwrap();
    let reserver = Reserver::open(fake.kernel.clone(), f.range, &dir).unwrap();
    f.app.set_kernel_ports(KernelPorts {
        ephemeral: Some(f.range),
        reserver: Some(reserver),
    });
    let body = format!(r#"{{"port": {free}}}"#);
    let (status, lease) = call(&f.app, "POST", "/api/v1/ports/lease", &body);
    assert_eq!(status, 201, "{lease}");
    assert_eq!(fake.list(), format!("1,{server},{free}\n"));
    let manager = overview(&f.app);
    assert_eq!(manager["kernel_reserved_ports"], 2);
    let range = json!({"start": f.range.start, "end": f.range.end});
    assert_eq!(manager["kernel_ephemeral_range"], range);
    let metrics = answer(&f.app, &Request::fake("GET", "/metrics", &[], b""));
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("\ndynport_kernel_reserved_ports 2\n"),
        "{text}"
    );

    let id = lease["lease"]["id"].as_str().unwrap();
    let (status, _) = call(&f.app, "DELETE", &format!("/api/v1/ports/leases/{id}"), "");
    assert_eq!(status, 200);
    assert_eq!(fake.list(), format!("1,{server}\n"));
    assert_eq!(overview(&f.app)["kernel_reserved_ports"], 1);
    f.app.release_kernel_ports();
    assert_eq!(fake.list(), "1\n");
}
