//! `GET /`: the port map, one page built into the binary (its HTML, style
//! and script), served with a Content-Security-Policy that lets it load
//! nothing but these three and talk to nothing but dynport. The page only
//! reads: the router refuses its changes as it refuses any web page's.

use crate::http::Response;

const HTML: &str = include_str!("index.html");
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// No inline script or style, no other origin, no frame, no form, no base:
/// a string a lease's owner wrote that reached the page as markup could
/// still not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The files of the page, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asset {
    Html,
    Style,
    Script,
}

impl Asset {
    /// The asset served at `path`, if any.
    pub(super) fn at(path: &str) -> Option<Asset> {
        match path {
            "/" => Some(Asset::Html),
            "/page.css" => Some(Asset::Style),
            "/page.js" => Some(Asset::Script),
            _ => None,
        }
    }

    fn text_and_type(self) -> (&'static str, &'static str) {
        match self {
            Asset::Html => (HTML, "text/html; charset=utf-8"),
            Asset::Style => (STYLE, "text/css; charset=utf-8"),
            Asset::Script => (SCRIPT, "text/javascript; charset=utf-8"),
        }
    }

    /// The asset with the headers that keep the page to itself.
    pub(super) fn response(self) -> Response {
        let (text, content_type) = self.text_and_type();
        Response {
            status: 200,
            headers: Vec::new(),
            content_type,
            body: text.as_bytes().to_vec(),
        }
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-store")
        .with_header("Referrer-Policy", "no-referrer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_page_is_at_most_40000_bytes() {
        let total = HTML.len() + STYLE.len() + SCRIPT.len();
        assert!(total <= 40_000, "the page is {total} bytes");
    }

    #[test]
    fn the_page_loads_only_its_own_style_and_script() {
        assert!(HTML.contains(r#"<link rel="stylesheet" href="/page.css">"#));
        assert!(HTML.contains(r#"<script defer src="/page.js"></script>"#));
        for text in [HTML, STYLE, SCRIPT] {
            for outside in [
                "http:", "https:", "://", "'//", "\"//", "`", "url(", "@import",
            ] {
                let found = text.lines().find(|l| l.contains(outside));
                assert_eq!(found, None, "{outside} in the page");
            }
        }
        assert_eq!(HTML.matches("<script").count(), 1, "no inline script");
        assert!(!HTML.contains("style="), "no inline style");
    }

    #[test]
    fn the_script_never_writes_markup() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink} in page.js");
        }
    }

    #[test]
    fn the_script_sends_no_change() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "method"] {
            assert!(!SCRIPT.contains(method), "{method} in page.js");
        }
    }

    #[test]
    fn every_asset_carries_the_policy() {
        for path in ["/", "/page.css", "/page.js"] {
            let response = Asset::at(path).unwrap().response();
            let header = |name| {
                let found = response.headers.iter().find(|(n, _)| *n == name);
                found.map(|(_, v)| v.as_str())
            };
            assert_eq!(header("Content-Security-Policy"), Some(CSP));
            assert_eq!(header("X-Content-Type-Options"), Some("nosniff"));
            assert_eq!(header("Cache-Control"), Some("no-store"));
        }
        assert_eq!(Asset::at("/page.html"), None);
    }
}
