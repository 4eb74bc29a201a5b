//! Links dynport's hot code first (`dist/hot-code.ld`, written by
//! `dist/hot-code`), so that an idle server keeps only the pages of code it
//! has run in memory, not the whole binary; and packs its relocations
//! (`-z pack-relative-relocs`) where the linker can, 45 KB of a 1.5 MiB
//! binary.

use std::env;
use std::path::Path;

fn main() {
    let script = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("dist")
        .join("hot-code.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=DYNPORT_LINK_MAP");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if links_packed_relocations() {
        link_arg("-z");
        link_arg("pack-relative-relocs");
    }
    match env::var("DYNPORT_LINK_MAP") {
        // `dist/hot-code` profiles a build in the linker's own order, with
        // the linker's map to name its code: valgrind attributes to a
        // binary only the code in its `.text`.
        Ok(map) => link_arg(&format!("-Map={map}")),
        // An ELF linker script that only adds a section before `.text`:
        // GNU ld and LLD both take it.
        Err(_) => link_arg(&format!("--script={}", script.display())),
    }
}

/// Passes `arg` to the linker when it links the dynport binary.
fn link_arg(arg: &str) {
    println!("cargo:rustc-link-arg-bin=dynport=-Xlinker");
    println!("cargo:rustc-link-arg-bin=dynport={arg}");
}

/// Whether the C toolchain that links dynport takes `-z
/// pack-relative-relocs` (GNU ld 2.38 and later, LLD 15 and later): a
/// tiny program is linked with it. The linker itself leaves the packed
/// form out when the C library it links against cannot load it, so a
/// binary built here runs wherever its C library is this one's or newer.
fn links_packed_relocations() -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (Ok(out_dir), Ok(target), Ok(host)) =
        (env::var("OUT_DIR"), env::var("TARGET"), env::var("HOST"))
    else {
        return false;
    };
    if target != host {
        return false;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let probe = Path::new(&out_dir).join("packed-relocs-probe");
    let child = Command::new(cc)
        .args(["-x", "c", "-", "-o"])
        .arg(&probe)
        .arg("-Wl,-z,pack-relative-relocs")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"int main(void) { return 0; }\n");
    }
    child.wait().is_ok_and(|status| status.success())
}
