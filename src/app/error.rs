//! What the app's changes end in when they fail: reasons in the app's own
//! words. Only the edges that speak a protocol (the HTTP API, the
//! portserver) turn them into answers and count them as denials.

use crate::app::metrics::Denial;
use crate::ports::lease::LeaseError;
use crate::ports::principal::Refusal;

/// Why a change was refused or could not be made; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppError {
    /// A lease rule refused it: a pool, a lease, a port, a principal.
    Lease(LeaseError),
    /// A port change asked for a port outside the range.
    PortOutsideRange(String),
    /// A port change asked for a port that cannot be had.
    PortUnavailable(String),
    /// The change could not be stored, so it was undone.
    Storage(String),
    /// The server could not serve on its new port, so it stayed.
    Serving(String),
}

impl AppError {
    pub(super) fn storage(e: &std::io::Error) -> AppError {
        AppError::Storage(format!(
            "the state file could not be written, nothing was changed: {e}"
        ))
    }

    /// How a refused lease request is counted in `/metrics`.
    pub fn denial(&self) -> Denial {
        match self {
            AppError::Lease(LeaseError::UnknownPool(_)) => Denial::UnknownPool,
            AppError::Lease(LeaseError::Invalid(_)) => Denial::BadRequest,
            AppError::Lease(LeaseError::Refused(Refusal::Quota(_))) => Denial::Quota,
            AppError::Lease(LeaseError::Refused(Refusal::Forbidden(_))) => Denial::Forbidden,
            AppError::Lease(LeaseError::Refused(Refusal::Invalid(_))) => Denial::BadRequest,
            AppError::Storage(_) => Denial::Storage,
            _ => Denial::Unavailable,
        }
    }
}

impl From<LeaseError> for AppError {
    fn from(e: LeaseError) -> AppError {
        AppError::Lease(e)
    }
}
