//! What both floors of the benchmark share: their command line and the
//! fixed body they answer with.

/// `{"pad":"aaa…"}`, exactly `bytes` long (at least the 10 bytes of the frame).
pub fn padded_body(bytes: usize) -> Vec<u8> {
    let pad = bytes.saturating_sub(r#"{"pad":""}"#.len());
    format!(r#"{{"pad":"{}"}}"#, "a".repeat(pad)).into_bytes()
}

pub fn parse_args() -> Result<(usize, usize), String> {
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, name: &str, default: Option<usize>| match (arg, default) {
        (Some(text), _) => text
            .parse::<usize>()
            .map_err(|e| format!("{name} {text:?}: {e}")),
        (None, Some(value)) => Ok(value),
        (None, None) => Err(format!("{name} is missing")),
    };
    let bytes = number(args.next(), "BODY_BYTES", None)?;
    let workers = number(args.next(), "WORKERS", Some(4))?.max(1);
    Ok((bytes, workers))
}
