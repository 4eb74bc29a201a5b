//! Links dynport's hot code first (`dist/hot-code.ld`, written by
//! `dist/hot-code`), so that an idle server keeps only the pages of code it
//! has run in memory, not the whole binary.

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
