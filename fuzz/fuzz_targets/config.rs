//! Configuration parsing: any arguments and environment give settings or a
//! `ConfigError`, never a panic.
//!
//! The input is lines: each is one argument (any bytes), except lines that
//! start with `$`, which set a variable: `$NAME=value`. `--token-file` opens
//! the file it names, so inputs holding a `/` are skipped: only names in the
//! working directory can be opened, and no device, FIFO or /proc file that
//! could block or change something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    if data.contains(&b'/') {
        return;
    }
    let mut args = Vec::new();
    let mut env = HashMap::new();
    for line in data.split(|&b| b == b'\n') {
        match line.strip_prefix(b"$") {
            Some(var) => {
                let var = String::from_utf8_lossy(var);
                let (name, value) = var.split_once('=').unwrap_or((&var, ""));
                env.insert(name.to_string(), value.to_string());
            }
            None => args.push(OsString::from_vec(line.to_vec())),
        }
    }
    let parsed = dynport::config::parse(args, |name| env.get(name).cloned());
    if let Ok(dynport::config::Command::Serve(settings)) = parsed {
        assert!(settings.range.start >= 1 && settings.range.start <= settings.range.end);
        assert!(settings.exclude.iter().all(|p| settings.range.contains(*p)));
        assert!(settings.workers >= 1);
    }
});
