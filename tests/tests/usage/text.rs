//! A strict reader of the Prometheus text format (version 0.0.4), as its
//! specification writes it: every line a `# HELP`, a `# TYPE` or a sample
//! of a family typed before it; label values quoted and escaped; each
//! series once; a counter's name ending in `_total`; a histogram's buckets
//! cumulative, their `le` ascending up to `+Inf`, which is its `_count`.
//! Any departure fails the test, naming the line.

use std::collections::BTreeMap;

pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    /// Each series (name and labels as written) with its value.
    pub samples: Vec<(Series, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// Reads the whole `text`, panicking at the first line that breaks the
/// format; the families by name.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the text must end with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_name(name), "{at}: bad metric name");
            assert!(
                helps.insert(name.into(), help.into()).is_none(),
                "{at}: second HELP"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            assert!(is_name(name), "{at}: bad metric name");
            let kinds = ["counter", "gauge", "histogram", "summary", "untyped"];
            assert!(kinds.contains(&kind), "{at}: unknown type");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "{at}: a counter's name ends in _total"
                );
            }
            let family = Family {
                kind: kind.into(),
                help: helps.get(name).cloned(),
                samples: Vec::new(),
            };
            assert!(
                families.insert(name.into(), family).is_none(),
                "{at}: second TYPE"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "{at}: not a sample"
            );
            let (series, value) = sample(line, &at);
            let family = family_of(&mut families, &series.name, &at);
            let seen = family.samples.iter().any(|(s, _)| *s == series);
            assert!(!seen, "{at}: the series was given before");
            family.samples.push((series, value));
        }
    }
    for (name, family) in &families {
        assert!(family.help.is_some(), "{name} has no HELP before its TYPE");
        assert!(!family.samples.is_empty(), "{name} has no sample");
        if family.kind == "histogram" {
            check_histogram(name, family);
        }
    }
    families
}

/// The value of the series written exactly `series` (as `name{a="b"}`).
pub fn value(families: &BTreeMap<String, Family>, series: &str) -> Option<f64> {
    let (wanted, _) = sample(&format!("{series} 0"), series);
    (families.values())
        .flat_map(|f| &f.samples)
        .find(|(s, _)| *s == wanted)
        .map(|(_, v)| *v)
}

/// The family a sample named `name` belongs to: its own, or a
/// histogram's for `_bucket`, `_sum` and `_count`.
fn family_of<'a>(
    families: &'a mut BTreeMap<String, Family>,
    name: &str,
    at: &str,
) -> &'a mut Family {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|base| families.get(*base).is_some_and(|f| f.kind == "histogram"))
        .unwrap_or(name)
        .to_string();
    let family = families.get_mut(&base);
    let family = family.unwrap_or_else(|| panic!("{at}: a sample before its TYPE"));
    if family.kind == "histogram" {
        assert_ne!(
            base, name,
            "{at}: a histogram's sample is _bucket, _sum or _count"
        );
    }
    family
}

/// One sample line: its series and value.
fn sample(line: &str, at: &str) -> (Series, f64) {
    let name_end = line.find(['{', ' ']).expect(at);
    let name = &line[..name_end];
    assert!(is_name(name), "{at}: bad metric name");
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let eq = rest.find('=').expect(at);
            let label = &rest[..eq];
            assert!(is_label(label), "{at}: bad label name {label:?}");
            let (value, after) = quoted(&rest[eq + 1..], at);
            assert!(!labels.iter().any(|(l, _)| l == label), "{at}: label twice");
            labels.push((label.to_string(), value));
            rest = after.strip_prefix(',').unwrap_or(after);
            assert!(!rest.is_empty(), "{at}: unclosed labels");
        }
        rest = &rest[1..];
    }
    let text = rest.strip_prefix(' ').expect(at);
    assert!(!text.contains(' '), "{at}: dynport writes no timestamps");
    let value = match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text.parse().unwrap_or_else(|_| panic!("{at}: bad value")),
    };
    let name = name.to_string();
    (Series { name, labels }, value)
}

/// A quoted label value at the start of `text`, unescaped, and what
/// follows it.
fn quoted<'a>(text: &'a str, at: &str) -> (String, &'a str) {
    let mut chars = text.strip_prefix('"').expect(at).char_indices();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &text[i + 2..]),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('\\') => value.push('\\'),
                Some('"') => value.push('"'),
                Some('n') => value.push('\n'),
                other => panic!("{at}: bad escape {other:?}"),
            },
            '\n' => panic!("{at}: newline in a label value"),
            c => value.push(c),
        }
    }
    panic!("{at}: unterminated label value")
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label(name: &str) -> bool {
    is_name(name) && !name.contains(':') && !name.starts_with("__")
}

/// One label set of a histogram: its buckets (`le`, count), `_sum` and
/// `_count`.
type LabelSet = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

/// Each of the histogram's label sets: buckets ascending by `le` and
/// cumulative, the last `+Inf` and equal to `_count`, and a `_sum`.
fn check_histogram(name: &str, family: &Family) {
    let mut sets: BTreeMap<String, LabelSet> = BTreeMap::new();
    for (series, value) in &family.samples {
        let others: Vec<_> = (series.labels.iter())
            .filter(|(l, _)| l != "le")
            .map(|(l, v)| format!("{l}={v:?}"))
            .collect();
        let set = sets.entry(others.join(",")).or_default();
        match &series.name[name.len()..] {
            "_bucket" => {
                let le = series.labels.iter().find(|(l, _)| l == "le");
                let le = le.unwrap_or_else(|| panic!("{name}: a bucket without le"));
                let bound = match le.1.as_str() {
                    "+Inf" => f64::INFINITY,
                    text => text.parse().expect("le is a number"),
                };
                set.0.push((bound, *value));
            }
            "_sum" => set.1 = Some(*value),
            _ => set.2 = Some(*value),
        }
    }
    for (labels, (buckets, sum, count)) in sets {
        let at = format!("{name}{{{labels}}}");
        assert!(sum.is_some(), "{at}: no _sum");
        let windows = buckets.windows(2);
        for pair in windows {
            assert!(pair[0].0 < pair[1].0, "{at}: le not ascending");
            assert!(pair[0].1 <= pair[1].1, "{at}: buckets not cumulative");
        }
        let last = buckets.last().unwrap_or_else(|| panic!("{at}: no bucket"));
        assert_eq!(last.0, f64::INFINITY, "{at}: the last bucket is +Inf");
        assert_eq!(Some(last.1), count, "{at}: +Inf is the _count");
    }
}

#[test]
fn the_reader_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert_eq!(value(&parse(good), "a_total{x=\"1\\\"\"}"), Some(3.0));
    for bad in [
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "a 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n",
    ] {
        let refused = std::panic::catch_unwind(|| parse(bad)).is_err();
        assert!(refused, "read: {bad}");
    }
}
