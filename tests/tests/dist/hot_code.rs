//! `dist/hot-code.ld` reaches the linker: the dynport binary holds a
//! `.text.hot` section, before the rest of its code, with the functions the
//! script names. (How much memory that saves is measured by `make bench`,
//! on the release build.)

use super::read;
use crate::fixture::BIN;

/// One section of an ELF file: its name, address and size.
#[derive(Debug)]
struct Section {
    name: String,
    addr: u64,
    size: u64,
}

/// The sections of a 64-bit little-endian ELF file, from its section
/// header table.
fn sections(elf: &[u8]) -> Vec<Section> {
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let table = u64_at(0x28) as usize;
    let (entry, count, names) = (u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| table + i * entry;
    let strings = u64_at(header(names) + 0x18) as usize;
    (0..count)
        .map(|i| {
            let name = strings + u32_at(header(i));
            let end = name + elf[name..].iter().position(|&b| b == 0).unwrap();
            Section {
                name: String::from_utf8_lossy(&elf[name..end]).into_owned(),
                addr: u64_at(header(i) + 0x10),
                size: u64_at(header(i) + 0x20),
            }
        })
        .collect()
}

#[test]
fn the_binary_puts_the_hot_code_first() {
    let elf = std::fs::read(BIN).expect("the dynport binary");
    let sections = sections(&elf);
    let find = |name: &str| {
        sections
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} section in {BIN}: {sections:?}"))
    };
    let (hot, text) = (find(".text.hot"), find(".text"));
    assert!(
        hot.addr + hot.size <= text.addr,
        "the hot code is not before the rest: {hot:?}, {text:?}"
    );
    // Tests run a debug build, whose functions have other hashes and are
    // inlined less; the patterns without hashes still match hundreds of
    // functions, far more than 64 KiB of code.
    assert!(hot.size >= 64 * 1024, "too little hot code: {hot:?}");
}

#[test]
fn the_linker_script_names_only_functions() {
    let script = read("dist/hot-code.ld");
    let patterns: Vec<&str> = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("*(.text."))
        .collect();
    assert!(patterns.len() >= 300, "{} patterns", patterns.len());
    for pattern in patterns {
        let (name, unlikely) = pattern.split_once(' ').expect("two sections a line");
        assert_eq!(unlikely, format!(".text.unlikely.{name})"));
        // Mangled Rust names, and C ones such as `main` or the compiler's
        // `__udivti3`: nothing the linker would read as syntax.
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_$.*".contains(&b)),
            "not a function's name: {name:?}"
        );
    }
    assert!(
        script.trim_end().ends_with("INSERT BEFORE .text;"),
        "{script}"
    );
}
