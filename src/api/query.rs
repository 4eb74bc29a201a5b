//! Query strings: `key=value` pairs split on `&`, percent-decoded (`+` is a
//! space), each key known to the endpoint and given at most once.

use crate::api::error::ApiError;

/// The parameters of `query`, each of `known` at most once; any other key
/// is refused, naming it and the keys the endpoint takes.
pub fn parse<'a>(
    query: Option<&str>,
    known: &[&'a str],
) -> Result<Vec<(&'a str, String)>, ApiError> {
    let mut found: Vec<(&'a str, String)> = Vec::new();
    let pairs = query.into_iter().flat_map(|q| q.split('&'));
    for pair in pairs.filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key).map_err(|e| bad("query", &e))?;
        let Some(known_key) = known.iter().find(|k| **k == key) else {
            let give = match known.is_empty() {
                true => "this endpoint takes none".to_string(),
                false => format!("give {}", known.join(", ")),
            };
            return Err(bad("query", &format!("unknown parameter {key:?}; {give}")));
        };
        if found.iter().any(|(k, _)| k == known_key) {
            return Err(bad(known_key, "given more than once"));
        }
        let value = decode(raw_value).map_err(|e| bad(known_key, &e))?;
        found.push((known_key, value));
    }
    Ok(found)
}

/// The value of `key` among `found`, if given.
pub fn get<'v>(found: &'v [(&str, String)], key: &str) -> Option<&'v str> {
    found
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

fn bad(field: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("{field}: {why}"))
}

/// Percent-decodes `text` (`+` is a space) into UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{text:?} has a % not followed by two hex digits"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(m) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn values_are_percent_decoded() {
        let found = parse(Some("owner=ci+job%2017&pool=web"), &["owner", "pool"]).unwrap();
        assert_eq!(get(&found, "owner"), Some("ci job 17"));
        assert_eq!(get(&found, "pool"), Some("web"));
        assert_eq!(get(&found, "uid"), None);
        let found = parse(Some("owner=%C3%A9t%C3%A9"), &["owner"]).unwrap();
        assert_eq!(get(&found, "owner"), Some("été"));
        assert_eq!(parse(None, &["owner"]).unwrap(), vec![]);
        assert_eq!(parse(Some(""), &["owner"]).unwrap(), vec![]);
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused() {
        let e = message(parse(Some("ownr=x"), &["owner", "pool"]).unwrap_err());
        assert_eq!(e, "query: unknown parameter \"ownr\"; give owner, pool");
        let e = message(parse(Some("pool=a&pool=b"), &["pool"]).unwrap_err());
        assert_eq!(e, "pool: given more than once");
        let e = message(parse(Some("pool=%zz"), &["pool"]).unwrap_err());
        assert_eq!(e, "pool: \"%zz\" has a % not followed by two hex digits");
        let e = message(parse(Some("pool=%ff"), &["pool"]).unwrap_err());
        assert_eq!(e, "pool: \"%ff\" is not UTF-8 once decoded");
    }
}
