//! Small pieces every layer uses: time on the clocks dynport counts with
//! and the RFC 3339 text it writes, escaping text for logs, and the hash
//! of lease ids.

pub(crate) mod hash;
pub(crate) mod text;
pub mod time;
