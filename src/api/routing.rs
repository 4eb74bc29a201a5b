//! Routing by name: which requests on dynport's TCP listeners go to a dev
//! server instead of the API, and the pages dynport answers itself when
//! they cannot (404: no such name; 502: nothing listens yet; 508: a loop;
//! 421: a `Host` that is neither a route nor the API's).
//!
//! A request is routed when its `Host` is `NAME.D[:port]` for a routes
//! domain `D` (`--routes-domain`, `localhost` by default). Everything else
//! keeps the API's own `Host` rules (`guard.rs`), so a page whose name
//! was rebound to 127.0.0.1 reaches no dev server through dynport: its
//! `Host` is its own name, which is no route.

use super::Api;
use crate::http::{Forward, ListenerKind, Request, Response, Route, Router};
use crate::util::text::escape_html;
use std::fmt::Write as _;
use std::sync::Arc;

/// How dynport names itself in `Via`.
pub const VIA: &str = "dynport";
/// A request that already passed through dynport this many times is a
/// loop (508).
pub const MAX_HOPS: usize = 5;
/// How often the 502 page reloads itself while the dev server starts.
const RELOAD_SECS: u32 = 2;

/// The router the engine asks of every request on TCP.
pub struct Names {
    api: Arc<Api>,
    /// The routes domains, lowercased, without dots at either end.
    domains: Vec<String>,
}

impl Names {
    pub fn new(api: Arc<Api>, domains: Vec<String>) -> Names {
        Names { api, domains }
    }

    fn name_in(&self, host: &[u8]) -> Option<String> {
        name_in(host, &self.domains)
    }

    /// Where a request for `name` goes.
    fn named(&self, name: &str, head: &Request) -> Route {
        let browser = wants_html(head);
        if hops(head) >= MAX_HOPS {
            log::debug!("a request for {name} looped through dynport {MAX_HOPS} times: 508");
            return Route::Answer(loop_page(name, browser));
        }
        if crate::ports::names::parse_name(name).is_err() {
            return Route::Answer(not_found(&self.api, name, browser));
        }
        match self.api.name_port(name) {
            Some(port) => Route::Forward(Forward {
                name: name.to_string(),
                port,
                unreachable: starting_page(name, port, browser),
                via: VIA,
                max_hops: MAX_HOPS,
            }),
            None => Route::Answer(not_found(&self.api, name, browser)),
        }
    }
}

impl Router for Names {
    fn claims(&self, host: Option<&[u8]>) -> bool {
        // Cheap for the API's own requests: `127.0.0.1:PORT` and
        // `localhost:PORT` have no dot before a routes domain.
        host.is_some_and(|h| self.name_in(h).is_some())
    }

    fn route(&self, head: &Request, listener: ListenerKind) -> Route {
        let host = head.header("host");
        if let Some(name) = host.and_then(|h| self.name_in(h.as_bytes())) {
            if let Some(problem) = ambiguous(head) {
                return Route::Answer(super::error::error_response(400, &problem));
            }
            return self.named(&name, head);
        }
        match listener {
            ListenerKind::Main => Route::Serve,
            // The listener that only routes: the list of names for the
            // host's own addresses, nothing at all for a foreign `Host`
            // (a rebound page must not read the list).
            ListenerKind::Routes => {
                let allowed = &self.api.facts.allow_hosts;
                if host.is_none_or(|h| super::guard::host_allowed(h, allowed)) {
                    Route::Answer(not_found(&self.api, "", wants_html(head)))
                } else {
                    Route::Answer(Response {
                        status: 421,
                        headers: Vec::new(),
                        content_type: "",
                        body: Vec::new(),
                    })
                }
            }
        }
    }
}

/// The name a `Host` value routes to: `NAME` of `NAME.D[:port]` (a
/// trailing dot allowed) for one of `domains`, lowercased; `None` for any
/// other `Host`.
fn name_in(host: &[u8], domains: &[String]) -> Option<String> {
    let host = std::str::from_utf8(host).ok()?.trim();
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    domains.iter().find_map(|domain| {
        let cut = name.len().checked_sub(domain.len() + 1)?;
        let (label, rest) = name.split_at_checked(cut)?;
        let routed = !label.is_empty()
            && rest.as_bytes()[0] == b'.'
            && rest[1..].eq_ignore_ascii_case(domain);
        routed.then(|| label.to_ascii_lowercase())
    })
}

/// What makes a routed request name two hosts, if anything: two `Host`
/// headers, or a target in absolute form (`http://other/...`) whose host
/// is not the `Host`'s. The backend or a proxy in front of it might go by
/// the other one, so such a request is refused, never routed by one and
/// read by another.
fn ambiguous(head: &Request) -> Option<String> {
    let mut hosts = head.headers.iter().filter(|(k, _)| k == "host");
    let host = hosts.next().map(|(_, v)| v.trim())?;
    if hosts.next().is_some() {
        return Some("the request has more than one Host header".to_string());
    }
    let authority = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            let rest = head.path.get(..scheme.len())?;
            rest.eq_ignore_ascii_case(scheme)
                .then(|| &head.path[scheme.len()..])
        })
        .map(|rest| rest.split('/').next().unwrap_or_default());
    match authority {
        Some(authority) if !authority.eq_ignore_ascii_case(host) => Some(format!(
            "the request target names {} but Host names {}",
            authority.escape_debug(),
            host.escape_debug()
        )),
        _ => None,
    }
}

/// How many times the request passed through dynport already: the
/// entries of its `Via` headers received by `dynport`.
fn hops(head: &Request) -> usize {
    head.headers
        .iter()
        .filter(|(k, _)| k == "via")
        .flat_map(|(_, v)| v.split(','))
        .filter(|entry| {
            let mut words = entry.split_whitespace();
            words.next();
            words.next() == Some(VIA)
        })
        .count()
}

/// Whether the client is a browser that takes HTML; others get JSON.
fn wants_html(head: &Request) -> bool {
    head.header("accept")
        .is_some_and(|a| a.contains("text/html"))
}

/// 404: no live lease or alias has the name; lists those that do. `name`
/// is empty on the routes listener's own address.
fn not_found(api: &Api, name: &str, browser: bool) -> Response {
    let live = api.live_names();
    let message = if name.is_empty() {
        "dynport routes names here: ask for one of the names below".to_string()
    } else {
        format!("no live lease or alias is named {name}")
    };
    if !browser {
        #[derive(serde::Serialize)]
        struct Live<'a> {
            name: &'a str,
            port: u16,
            url: String,
        }
        #[derive(serde::Serialize)]
        struct NotFound<'a> {
            status: &'static str,
            error: &'a str,
            names: Vec<Live<'a>>,
            timestamp: String,
        }
        let names = live
            .iter()
            .map(|(n, port)| Live {
                name: n,
                port: *port,
                url: super::names::name_url(api, n),
            })
            .collect();
        let body = NotFound {
            status: "error",
            error: &message,
            names,
            timestamp: crate::util::time::now_rfc3339(),
        };
        return Response::json(404, serde_json::to_vec(&body).unwrap_or_default());
    }
    let mut list = String::new();
    for (n, port) in &live {
        let url = escape_html(&super::names::name_url(api, n));
        let _ = write!(
            list,
            "<li><a href=\"{url}\">{url}</a> &rarr; port {port}</li>",
        );
    }
    if live.is_empty() {
        list.push_str("<li>none yet: <code>dynport run --name web -- npm run dev</code></li>");
    }
    let body = page(
        "No such name",
        &format!(
            "<p>{}.</p><p>Live names:</p><ul>{list}</ul>",
            escape_html(&message)
        ),
        None,
    );
    html(404, body)
}

/// 502: the name is live, but nothing listens on its port yet (a dev
/// server starting); the page reloads itself until it does.
fn starting_page(name: &str, port: u16, browser: bool) -> Response {
    let message = format!("{name} is leased to port {port}, but nothing listens there yet");
    let response = if browser {
        let body = page(
            "Starting",
            &format!(
                "<p>{}.</p><p>This page reloads every {RELOAD_SECS} s until it does.</p>",
                escape_html(&message)
            ),
            Some(RELOAD_SECS),
        );
        html(502, body)
    } else {
        super::error::error_response(502, &message)
    };
    response.with_header("Retry-After", RELOAD_SECS.to_string())
}

/// 508: the request came back through dynport again and again.
fn loop_page(name: &str, browser: bool) -> Response {
    let message = format!(
        "a request for {name} passed through dynport {MAX_HOPS} times: the dev server \
         behind {name} proxies back through dynport without changing Host; point its \
         proxy at the backend's port, or set the Host it sends"
    );
    if !browser {
        return super::error::error_response(508, &message);
    }
    html(
        508,
        page("Loop", &format!("<p>{}.</p>", escape_html(&message)), None),
    )
}

fn html(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![
            ("Cache-Control", "no-store".to_string()),
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'".to_string(),
            ),
        ],
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
    }
}

/// A small page of dynport's, reloading itself every `reload` seconds.
fn page(title: &str, content: &str, reload: Option<u32>) -> String {
    let refresh = reload.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{title} - dynport</title><style>body{{font:16px/1.5 system-ui,sans-serif;\
         max-width:40em;margin:3em auto;padding:0 1em}}code{{background:#eee;padding:0 .2em}}\
         </style></head><body><h1>{title}</h1>{content}</body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_host_under_a_routes_domain_names_a_route_in_any_case() {
        let local = domains(&["localhost"]);
        let name = |host: &str| name_in(host.as_bytes(), &local);
        assert_eq!(name("web.localhost"), Some("web".into()));
        assert_eq!(name("WEB.LocalHost:3000"), Some("web".into()));
        assert_eq!(name("fix-ui.shop.localhost."), Some("fix-ui.shop".into()));
        assert_eq!(name("localhost:3000"), None);
        assert_eq!(name(".localhost"), None);
        assert_eq!(name("127.0.0.1:3000"), None);
        assert_eq!(name("[::1]:3000"), None);
        assert_eq!(name("evil.example"), None);
        assert_eq!(name("weblocalhost"), None);
        assert_eq!(name("web.localhost:"), None);
        assert_eq!(name("web.localhost:x"), None);
        assert_eq!(
            name("wéb.localhost"),
            Some("wéb".into()),
            "checked as a name later"
        );
        let two = domains(&["dev.test", "box"]);
        assert_eq!(name_in(b"web.dev.test", &two), Some("web".into()));
        assert_eq!(name_in(b"api.box:80", &two), Some("api".into()));
        assert_eq!(name_in(b"web.localhost", &two), None);
    }

    fn with(headers: &[(&str, &str)]) -> Request {
        Request::fake("GET", "/", headers, b"")
    }

    #[test]
    fn a_request_naming_two_hosts_is_refused() {
        let two = with(&[("Host", "web.localhost"), ("Host", "evil.example")]);
        assert_eq!(
            ambiguous(&two).as_deref(),
            Some("the request has more than one Host header")
        );
        let absolute = Request::fake(
            "GET",
            "http://api.localhost/x",
            &[("Host", "web.localhost")],
            b"",
        );
        assert_eq!(
            ambiguous(&absolute).as_deref(),
            Some("the request target names api.localhost but Host names web.localhost")
        );
        let same = Request::fake(
            "GET",
            "HTTP://WEB.localhost:80/x",
            &[("Host", "web.localhost:80")],
            b"",
        );
        assert_eq!(ambiguous(&same), None);
        assert_eq!(ambiguous(&with(&[("Host", "web.localhost")])), None);
    }

    #[test]
    fn hops_count_the_via_entries_dynport_received() {
        assert_eq!(hops(&with(&[])), 0);
        let four = with(&[
            ("Via", "1.1 dynport, 1.0 dynport"),
            ("Via", "1.1 nginx, 1.1 dynport,1.1 dynport (x)"),
        ]);
        assert_eq!(hops(&four), 4);
        assert_eq!(hops(&with(&[("Via", "1.1 dynportx, dynport")])), 0);
    }

    #[test]
    fn the_pages_escape_what_they_show_and_reload_while_starting() {
        let starting = starting_page("web", 3007, true);
        let body = String::from_utf8(starting.body).unwrap();
        assert_eq!(starting.status, 502);
        assert!(body.contains("web is leased to port 3007, but nothing listens there yet"));
        assert!(body.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
        let json = starting_page("web", 3007, false);
        assert_eq!(json.content_type, "application/json");
        let looped = loop_page("<b>", true);
        assert_eq!(looped.status, 508);
        assert!(!String::from_utf8(looped.body).unwrap().contains("<b>"));
    }
}
