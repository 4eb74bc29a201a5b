//! Printable text: the one rule for strings that people read later (a
//! lease's `owner` and id, in answers, tables and the log), whether they
//! came from a request body or from the state file.

/// What makes `s` unfit to show, or `None` when it is printable text.
///
/// Refused: control characters (C0, DEL, C1), which could end a log line or
/// drive a terminal; bidirectional controls (U+202A-U+202E, U+2066-U+2069),
/// which make text read in another order than it is stored; and zero-width
/// characters (U+200B-U+200F, U+FEFF), which make two different strings look
/// the same.
pub fn printable_problem(s: &str) -> Option<&'static str> {
    s.chars().find_map(char_problem)
}

/// Whether `s` is printable text: [`printable_problem`] finds nothing.
pub fn is_printable(s: &str) -> bool {
    printable_problem(s).is_none()
}

fn char_problem(c: char) -> Option<&'static str> {
    match c {
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => Some("a control character"),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Some("a bidirectional control"),
        '\u{200b}'..='\u{200f}' | '\u{feff}' => Some("a zero-width character"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_printable() {
        for s in [
            "",
            "ci job 17",
            "naïve café",
            "東京",
            "a\u{a0}b",
            "emoji 🦀",
            "tab-free",
        ] {
            assert_eq!(printable_problem(s), None, "{s:?}");
            assert!(is_printable(s));
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for s in [
            "a\nb",
            "\r",
            "\t",
            "\0",
            "x\x1b[31m",
            "del\x7f",
            "c1\u{85}",
            "\u{9f}",
        ] {
            assert_eq!(printable_problem(s), Some("a control character"), "{s:?}");
            assert!(!is_printable(s));
        }
    }

    #[test]
    fn bidirectional_controls_are_refused() {
        for c in ['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}'] {
            let s = format!("evil{c}txt.exe");
            assert_eq!(printable_problem(&s), Some("a bidirectional control"));
        }
    }

    #[test]
    fn zero_width_characters_are_refused() {
        for c in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{feff}',
        ] {
            let s = format!("ad{c}min");
            assert_eq!(printable_problem(&s), Some("a zero-width character"));
        }
        assert_eq!(printable_problem("\u{2010}"), None, "a hyphen is printable");
    }

    #[test]
    fn the_first_problem_is_the_one_named() {
        assert_eq!(
            printable_problem("a\u{200b}b\nc"),
            Some("a zero-width character")
        );
    }
}
