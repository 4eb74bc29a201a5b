//! HTTP request framing: any bytes, cut into reads at fuzzer-chosen points,
//! must give well-formed answers or a close, never a panic. The input format
//! is described at `dynport::http::fuzzing::http_framing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dynport::http::fuzzing::http_framing(data));
