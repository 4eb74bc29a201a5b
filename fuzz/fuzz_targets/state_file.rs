//! The state-file loader: any bytes give a clear error or a valid state,
//! never a panic; a state that parses is stored unchanged: written out and
//! read back, it is equal to what was read; and a starting server's reader,
//! which reads the form dynport writes straight from the text, gives
//! exactly what serde alone gives, state or error.
#![no_main]

use dynport::state::StateFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        StateFile::parse_for_start(data),
        StateFile::parse_for_start_by_serde(data),
        "the start's reader and serde differ on {}",
        String::from_utf8_lossy(data)
    );
    let Ok(state) = StateFile::parse(data) else {
        return;
    };
    let written = serde_json::to_vec_pretty(&state).expect("a parsed state serialises");
    match StateFile::parse(&written) {
        Ok(again) => assert_eq!(state, again, "changed by a round trip"),
        Err(e) => panic!(
            "a parsed state does not parse once written: {e}\n{}",
            String::from_utf8_lossy(&written)
        ),
    }
    assert_eq!(
        StateFile::parse_for_start(&written),
        StateFile::parse_for_start_by_serde(&written),
        "the start's reader and serde differ on a written state"
    );
});
