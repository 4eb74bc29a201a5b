//! dynport's endpoints as typed calls, and the one place where a failed
//! call becomes the client's error (and so its exit status).
#![forbid(unsafe_code)]

use super::ClientError;
use super::args::LeaseOptions;
use super::http::{self, HttpError, Request};
use super::target::Target;
use crate::ports::wire::{LeaseAnswer, LeaseBody, LeasesAnswer, ReleasedAnswer, RenewBody};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A lease as the server shows it: the server's own type reads it.
pub use crate::ports::lease::Lease;

/// A socket holding a port, as the server shows it: the server's own type.
pub use crate::scan::Holder;

/// The part of a port's state that `dynport who` reads; `holders` is absent
/// when no socket holds the port.
#[derive(Deserialize)]
struct HoldersAnswer {
    #[serde(default)]
    holders: Vec<Holder>,
}

/// A successful answer: its body as sent (what `--json` prints) and parsed.
#[derive(Debug)]
pub struct Answer {
    pub raw: Vec<u8>,
    pub json: Value,
}

/// One server and the token to show it.
#[derive(Clone, Debug)]
pub struct Api {
    pub target: Target,
    token: Option<String>,
}

impl Api {
    pub fn new(target: Target, token: Option<String>) -> Api {
        Api { target, token }
    }

    /// `POST /api/v1/ports/lease` with the options given, `pid` included.
    pub fn lease(&self, opts: &LeaseOptions) -> Result<(Answer, Lease), ClientError> {
        let answer = self.post("/api/v1/ports/lease", &lease_body(opts))?;
        let read: LeaseAnswer<Lease> = self.read(&answer)?;
        Ok((answer, read.lease))
    }

    /// `GET /api/v1/ports/leases`.
    pub fn leases(&self) -> Result<(Answer, Vec<Lease>), ClientError> {
        let answer = self.call("GET", "/api/v1/ports/leases", None)?;
        let read: LeasesAnswer<Lease> = self.read(&answer)?;
        Ok((answer, read.leases))
    }

    /// `DELETE /api/v1/ports/leases/ID`; the ports it held.
    pub fn release(&self, id: &str) -> Result<(Answer, Vec<u16>), ClientError> {
        let path = format!("/api/v1/ports/leases/{}", escape(id));
        let answer = self.call("DELETE", &path, None)?;
        let read: ReleasedAnswer<Lease> = self.read(&answer)?;
        Ok((answer, read.released))
    }

    /// `POST /api/v1/ports/leases/ID/renew`.
    pub fn renew(&self, id: &str, ttl: Option<u64>) -> Result<(Answer, Lease), ClientError> {
        let path = format!("/api/v1/ports/leases/{}/renew", escape(id));
        let body = RenewBody { ttl_secs: ttl };
        let answer = self.post(&path, &body)?;
        let read: LeaseAnswer<Lease> = self.read(&answer)?;
        Ok((answer, read.lease))
    }

    /// `GET /api/v1/system/overview`.
    pub fn overview(&self) -> Result<Answer, ClientError> {
        self.call("GET", "/api/v1/system/overview", None)
    }

    /// `GET /api/v1/tools/port/state?port=N`, and the sockets holding it.
    pub fn holders(&self, port: u16) -> Result<(Answer, Vec<Holder>), ClientError> {
        let path = format!("/api/v1/tools/port/state?port={port}");
        let answer = self.call("GET", &path, None)?;
        let read: HoldersAnswer = self.read(&answer)?;
        Ok((answer, read.holders))
    }

    /// `GET /healthz`: whether the server answers at all.
    pub fn health(&self) -> Result<(), ClientError> {
        self.call("GET", "/healthz", None).map(drop)
    }

    /// Sends a POST with `body` as its JSON.
    fn post(&self, path: &str, body: &impl Serialize) -> Result<Answer, ClientError> {
        // The request bodies are plain structs: serialising them cannot fail.
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.call("POST", path, Some(body))
    }

    /// Sends one request; the token goes with every request that changes something.
    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Answer, ClientError> {
        let req = Request {
            method,
            path,
            token: self.token.as_deref().filter(|_| method != "GET"),
            body: body.as_deref(),
        };
        let url = &self.target.url;
        let response = http::send(&self.target, &req).map_err(|e| match e {
            HttpError::Connect(e) => ClientError::Unreachable(format!(
                "cannot reach the dynport server at {url} ({}): {e}",
                self.target.source
            )),
            HttpError::Exchange(m) => ClientError::Failed(format!("bad answer from {url}: {m}")),
            HttpError::Impostor(m) => ClientError::Unreachable(m),
        })?;
        let json: Option<Value> = serde_json::from_slice(&response.body).ok();
        if response.status >= 400 {
            return Err(ClientError::Refused(refusal(
                response.status,
                json.as_ref(),
            )));
        }
        match json {
            Some(json) => Ok(Answer {
                raw: response.body,
                json,
            }),
            None => Err(ClientError::Failed(format!(
                "bad answer from {url}: HTTP {} without a JSON body",
                response.status
            ))),
        }
    }

    /// Reads an answer into the type the server wrote it from.
    fn read<T: DeserializeOwned>(&self, answer: &Answer) -> Result<T, ClientError> {
        serde_json::from_slice(&answer.raw)
            .map_err(|e| ClientError::Failed(format!("bad answer from {}: {e}", self.target.url)))
    }
}

/// The body of a lease request, the type the server parses it into.
pub fn lease_body(opts: &LeaseOptions) -> LeaseBody {
    LeaseBody {
        count: opts.count,
        port: opts.port,
        pool: opts.pool.clone(),
        ttl_secs: opts.ttl,
        owner: opts.owner.clone(),
        pid: opts.pid,
        protocol: opts.protocol,
        name: None,
    }
}

/// The server's own words for a refusal, with a hint where one helps.
fn refusal(status: u16, body: Option<&Value>) -> String {
    let said = body
        .and_then(|b| b.get("error"))
        .and_then(Value::as_str)
        .map_or_else(
            || format!("the server answered HTTP {status}"),
            str::to_string,
        );
    match status {
        401 => format!("{said} (give it with --token, --token-file or DYNPORT_TOKEN)"),
        _ => said,
    }
}

/// Percent-encodes a lease id for use as one path segment.
fn escape(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn lease_body_holds_only_the_fields_given() {
        let opts = LeaseOptions {
            count: Some(3),
            pool: Some("web".to_string()),
            pid: Some(42),
            ..LeaseOptions::default()
        };
        let text = |o| serde_json::to_string(&lease_body(o)).unwrap();
        assert_eq!(text(&opts), r#"{"count":3,"pool":"web","pid":42}"#);
        assert_eq!(text(&LeaseOptions::default()), "{}");
    }

    #[test]
    fn the_server_parses_the_lease_body_the_client_sends() {
        let opts = LeaseOptions {
            count: Some(1),
            port: Some(4100),
            pool: Some("web".to_string()),
            ttl: Some(600),
            owner: Some("ci job 17".to_string()),
            pid: Some(31337),
            protocol: None,
        };
        let sent = serde_json::to_vec(&lease_body(&opts)).unwrap();
        assert_eq!(crate::ports::wire::parse(&sent), Ok(lease_body(&opts)));
        let renew = serde_json::to_vec(&RenewBody { ttl_secs: Some(60) }).unwrap();
        assert_eq!(
            crate::ports::wire::parse(&renew),
            Ok(RenewBody { ttl_secs: Some(60) })
        );
    }

    #[test]
    fn refusal_quotes_the_server_and_adds_a_token_hint() {
        let body = json!({"status": "error", "error": "pool: no pool named x"});
        assert_eq!(refusal(404, Some(&body)), "pool: no pool named x");
        let body = json!({"status": "error", "error": "missing or wrong token"});
        assert_eq!(
            refusal(401, Some(&body)),
            "missing or wrong token (give it with --token, --token-file or DYNPORT_TOKEN)"
        );
        assert_eq!(refusal(502, None), "the server answered HTTP 502");
    }

    #[test]
    fn escape_keeps_ids_and_encodes_the_rest() {
        assert_eq!(escape("0123abcdef456789"), "0123abcdef456789");
        assert_eq!(escape("a/b c"), "a%2Fb%20c");
    }
}
