//! The command-line client: `dynport lease`, `release`, `renew`, `leases`,
//! `status`, `url` and `run` talk to a running server over its HTTP API.
//!
//! Exit status: 0 done, 1 the server refused (or another failure), 2 usage,
//! 3 no server could be reached.

use std::ffi::OsStr;

pub mod args;
mod help;
pub mod http;
pub mod target;

/// Why a client command failed; each variant is one exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A bad or missing option or argument. Exit 2.
    Usage(String),
    /// The server answered with an error; its message. Exit 1.
    Refused(String),
    /// No server could be reached; the message says where the client looked. Exit 3.
    Unreachable(String),
    /// Anything else: a garbled answer, a command that cannot start. Exit 1.
    Failed(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused(_) | ClientError::Failed(_) => 1,
            ClientError::Usage(_) => 2,
            ClientError::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Usage(m)
            | ClientError::Refused(m)
            | ClientError::Unreachable(m)
            | ClientError::Failed(m) => f.write_str(m),
        }
    }
}

/// Whether `first`, the first argument of `dynport`, names a client command.
pub fn is_command(first: &OsStr) -> bool {
    args::COMMANDS.iter().any(|c| OsStr::new(c) == first)
}
