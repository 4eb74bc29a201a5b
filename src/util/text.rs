//! What counts as printable text: the rule for names people read in logs,
//! tables and terminals (a lease's `owner`), where a control, bidirectional
//! or zero-width character could hide or reorder what is shown.
#![forbid(unsafe_code)]

/// Why `s` is not printable text, naming the first offending code point
/// (`"a control character (U+000A)"`), or `None` when it is.
pub fn printable_problem(s: &str) -> Option<String> {
    s.chars().find_map(|c| {
        let kind = kind_of(c)?;
        Some(format!("{kind} (U+{:04X})", u32::from(c)))
    })
}

/// `s` as HTML text or attribute value: `&`, `<`, `>`, `"` and `'`
/// written as references, so that nothing in it becomes markup.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `c` may appear in printable text.
pub fn is_printable(s: &str) -> bool {
    s.chars().all(printable)
}

/// Whether `c` may appear in text people read later.
pub fn printable(c: char) -> bool {
    kind_of(c).is_none()
}

/// The class of a character that may not appear, if `c` is one.
fn kind_of(c: char) -> Option<&'static str> {
    match c {
        // C0, DEL and C1: exactly what `char::is_control` covers.
        c if c.is_control() => Some("a control character"),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => Some("a bidirectional control"),
        '\u{200B}'..='\u{200F}' | '\u{FEFF}' => Some("a zero-width character"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_leaves_no_markup() {
        assert_eq!(
            escape_html(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape_html("web.localhost"), "web.localhost");
    }

    #[test]
    fn control_characters_are_named_by_code_point() {
        let cases = [
            ("a\u{0}b", "a control character (U+0000)"),
            ("line\nbreak", "a control character (U+000A)"),
            ("\u{1F}", "a control character (U+001F)"),
            ("del\u{7F}", "a control character (U+007F)"),
            ("\u{80}", "a control character (U+0080)"),
            ("next\u{85}line", "a control character (U+0085)"),
            ("\u{9F}", "a control character (U+009F)"),
        ];
        for (text, problem) in cases {
            assert_eq!(
                printable_problem(text).as_deref(),
                Some(problem),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bidirectional_controls_are_refused_at_both_ends_of_each_range() {
        for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            let expected = format!("a bidirectional control (U+{:04X})", u32::from(c));
            assert_eq!(printable_problem(&format!("x{c}y")), Some(expected));
        }
    }

    #[test]
    fn zero_width_characters_are_refused() {
        for c in ['\u{200B}', '\u{200F}', '\u{FEFF}'] {
            let expected = format!("a zero-width character (U+{:04X})", u32::from(c));
            assert_eq!(printable_problem(&format!("{c}")), Some(expected));
        }
    }

    #[test]
    fn neighbours_of_the_ranges_and_ordinary_text_pass() {
        for text in [
            "ci job 17",
            "café déjà vu",
            "构建 任务",
            "deploy 🚀",
            "tab-free ~ punctuation!",
            // The neighbours of each refused range.
            "\u{A0}\u{200A}\u{2010}\u{2029}\u{202F}\u{2065}\u{206A}\u{FEFE}",
            "",
        ] {
            assert_eq!(printable_problem(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_first_offender_is_the_one_named() {
        assert_eq!(
            printable_problem("a\u{202E}b\nc").as_deref(),
            Some("a bidirectional control (U+202E)")
        );
    }
}
