//! The errors a request can end in, and the one place that maps them to
//! HTTP status codes.

use crate::http::Response;

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// A malformed body or a bad value; the message names the field. 400.
    BadRequest(String),
    /// A mutating endpoint was called without the configured token. 401.
    Unauthorized,
    /// The caller may not do this, whatever its token: a web page, another
    /// principal's lease, another user's process, a port change by a user
    /// who is not an operator. The message says why. 403.
    Forbidden(String),
    /// No such endpoint, lease or pool; the message says which. 404.
    NotFound(String),
    /// The path exists but not for this method; `allow` lists the methods. 405.
    MethodNotAllowed { allow: &'static str },
    /// The port asked for cannot be had. 409.
    Conflict(String),
    /// The `Host` header names a host dynport does not answer to (DNS
    /// rebinding); the message names it. 421.
    MisdirectedHost(String),
    /// Too many failed token checks from this peer; `retry_after` seconds
    /// until it may try again. 429.
    TooManyRequests { retry_after: u64 },
    /// Over a share of something costly, such as holder lookups; the
    /// message says which, `retry_after` seconds until it may try again. 429.
    Throttled { retry_after: u64, message: String },
    /// dynport cannot do it now, e.g. the state file cannot be written. 503.
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict(_) => 409,
            ApiError::MisdirectedHost(_) => 421,
            ApiError::TooManyRequests { .. } | ApiError::Throttled { .. } => 429,
            ApiError::Unavailable(_) => 503,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m)
            | ApiError::Throttled { message: m, .. } => m.clone(),
            ApiError::Unauthorized => {
                "missing or wrong token: send Authorization: Bearer <token>".to_string()
            }
            ApiError::MethodNotAllowed { allow } => {
                format!("method not allowed here; allowed: {allow}")
            }
            ApiError::MisdirectedHost(host) => format!(
                "Host {host:?} is not a name dynport answers to: use an IP address or \
                 localhost, or start dynport with --allow-host NAME"
            ),
            ApiError::TooManyRequests { retry_after } => format!(
                "too many failed token checks from this address: try again in {retry_after} s"
            ),
        }
    }

    /// The error as dynport's JSON error response, with the headers its status needs.
    pub fn into_response(self) -> Response {
        let response = error_response(self.status(), &self.message());
        match self {
            ApiError::Unauthorized => response.with_header("WWW-Authenticate", "Bearer"),
            ApiError::MethodNotAllowed { allow } => response.with_header("Allow", allow),
            ApiError::TooManyRequests { retry_after } | ApiError::Throttled { retry_after, .. } => {
                response.with_header("Retry-After", retry_after.to_string())
            }
            _ => response,
        }
    }
}

impl From<crate::ports::principal::Refusal> for ApiError {
    fn from(refusal: crate::ports::principal::Refusal) -> ApiError {
        use crate::ports::principal::Refusal;
        match refusal {
            Refusal::Forbidden(m) => ApiError::Forbidden(m),
            Refusal::Invalid(m) => ApiError::BadRequest(m),
            Refusal::Quota(m) => ApiError::Conflict(m),
        }
    }
}

impl From<crate::app::AppError> for ApiError {
    /// The status each of the app's reasons is answered with.
    fn from(e: crate::app::AppError) -> ApiError {
        use crate::app::AppError;
        use crate::ports::lease::LeaseError;
        match e {
            AppError::Lease(LeaseError::UnknownPool(name)) => {
                ApiError::NotFound(format!("pool: no pool named {name}"))
            }
            AppError::Lease(LeaseError::UnknownLease(id)) => {
                ApiError::NotFound(format!("no live lease {id}"))
            }
            AppError::Lease(LeaseError::UnknownName(name)) => {
                ApiError::NotFound(format!("no name {name}"))
            }
            AppError::Lease(LeaseError::Invalid(m)) | AppError::PortOutsideRange(m) => {
                ApiError::BadRequest(m)
            }
            AppError::Lease(LeaseError::Unavailable(m)) | AppError::PortUnavailable(m) => {
                ApiError::Conflict(m)
            }
            AppError::Lease(LeaseError::Refused(refusal)) => refusal.into(),
            AppError::Storage(m) | AppError::Serving(m) => ApiError::Unavailable(m),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// dynport's error shape, `{"status":"error","error":"…","timestamp":"…"}`:
/// for every error the API answers, and for those the engine answers
/// itself.
pub fn error_response(status: u16, message: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Error<'a> {
        status: &'static str,
        error: &'a str,
        timestamp: String,
    }
    let body = Error {
        status: "error",
        error: message,
        timestamp: crate::util::time::now_rfc3339(),
    };
    Response::json(status, serde_json::to_vec(&body).unwrap_or_default())
}
