//! The second step of configuration: raw values into typed [`Settings`],
//! with every default and every bound in one place.

use super::raw::{self, Flag, Raw, Value, bounded, port, range};
use super::{ConfigError, Settings, access, hosts, names, pools, portserver, token};
use crate::ports::PortRange;
use log::LevelFilter;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const DEFAULT_RANGE: PortRange = PortRange {
    start: 3000,
    end: 9000,
};
pub const DEFAULT_STATE_DIR: &str = "state";
pub const DEFAULT_REFRESH_SECS: u64 = 60;
pub const DEFAULT_WORKERS: u64 = 4;
pub const DEFAULT_FALLBACK_PORT: u16 = 3000;
pub const DEFAULT_LOG_LEVEL: LevelFilter = LevelFilter::Info;
pub const DEFAULT_LEASE_TTL_SECS: u64 = 300;

/// A rescan at least once a day, so the state file never goes stale for long.
pub const REFRESH_SECS: RangeInclusive<u64> = 1..=86_400;
/// Each worker is a thread; more than this only costs memory on a small host.
pub const WORKERS: RangeInclusive<u64> = 1..=256;
/// A week, as for the `ttl_secs` of a lease request.
pub const LEASE_TTL_SECS: RangeInclusive<u64> = crate::ports::wire::TTL_SECS;

/// Validates the values of `dynport serve`.
pub fn settings<L: Fn(&str) -> Option<String>>(raw: &Raw<L>) -> Result<Settings, ConfigError> {
    let range = setting(raw, raw::RANGE, range)?.unwrap_or(DEFAULT_RANGE);
    let host = setting(raw, raw::HOST, host)?.unwrap_or(DEFAULT_HOST);
    let token = token::token(raw, host)?;
    if !host.is_loopback() && token.is_none() {
        return Err(exposed(raw));
    }
    let state_dir = state_dir(raw)?;
    let pools = pools::pools(raw, range)?;
    let fallback_port = setting(raw, raw::FALLBACK_PORT, port)?.unwrap_or(DEFAULT_FALLBACK_PORT);
    Ok(Settings {
        host,
        range,
        unix_socket: access::unix_socket(raw, &state_dir)?,
        max_ports_per_uid: access::max_ports_per_uid(raw)?,
        max_connections_per_uid: access::max_connections_per_uid(raw)?,
        state_dir,
        refresh: secs(raw, raw::REFRESH_SECS, REFRESH_SECS, DEFAULT_REFRESH_SECS)?,
        workers: number(raw, raw::WORKERS, WORKERS, DEFAULT_WORKERS)? as usize,
        fallback_port,
        token,
        allow_hosts: hosts::allow_hosts(raw)?,
        log_level: setting(raw, raw::LOG_LEVEL, log_level)?.unwrap_or(DEFAULT_LOG_LEVEL),
        portserver: portserver::portserver(raw, &pools)?,
        pools,
        exclude: pools::exclude(raw, range)?,
        lease_ttl: secs(
            raw,
            raw::LEASE_TTL_SECS,
            LEASE_TTL_SECS,
            DEFAULT_LEASE_TTL_SECS,
        )?,
        reserve_kernel: setting(raw, raw::RESERVE_KERNEL, switch)?.unwrap_or(false),
        names: names::names(raw)?,
        routes: names::routes(raw, range, fallback_port)?,
        warnings: warnings(raw, range),
    })
}

/// Parses `key`'s value, when one was given, naming its flag or variable on error.
fn setting<L, T>(
    raw: &Raw<L>,
    key: Flag,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let Some(value) = raw.get(key) else {
        return Ok(None);
    };
    parse(value.text()?).map(Some).map_err(|p| value.error(p))
}

/// `key`'s whole number inside `bounds`, else `default`.
fn number<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    key: Flag,
    bounds: RangeInclusive<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    Ok(setting(raw, key, |t| bounded(t, &bounds))?.unwrap_or(default))
}

/// `key`'s seconds inside `bounds`, else `default`.
fn secs<L: Fn(&str) -> Option<String>>(
    raw: &Raw<L>,
    key: Flag,
    bounds: RangeInclusive<u64>,
    default: u64,
) -> Result<Duration, ConfigError> {
    number(raw, key, bounds, default).map(Duration::from_secs)
}

/// An IPv4 or IPv6 literal; `[::1]` works as well as `::1`.
fn host(text: &str) -> Result<IpAddr, String> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    bare.unwrap_or(text).parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address; give an IPv4 or IPv6 address, \
             like 127.0.0.1 or ::1 (names such as localhost are not looked up)"
        )
    })
}

/// A switch's value: `1` or `true` for on, `0` or `false` for off.
fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a switch value; give 1, 0, true or false"
        )),
    }
}

fn log_level(text: &str) -> Result<LevelFilter, String> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(format!(
            "{text:?} is not a log level; give error, warn, info, debug or trace"
        )),
    }
}

/// A path may be any bytes, so it skips the UTF-8 check.
fn state_dir<L: Fn(&str) -> Option<String>>(raw: &Raw<L>) -> Result<PathBuf, ConfigError> {
    match raw.get(raw::STATE_DIR) {
        Some(value) => Ok(PathBuf::from(value.os()?)),
        None => Ok(PathBuf::from(DEFAULT_STATE_DIR)),
    }
}

/// Refuses to open the mutating endpoints to the network without a token.
fn exposed<L: Fn(&str) -> Option<String>>(raw: &Raw<L>) -> ConfigError {
    let given = raw.get(raw::HOST).map(|v: Value| {
        let text = v.text.to_string_lossy().into_owned();
        match v.origin {
            raw::Origin::Flag => format!("--host {text}"),
            raw::Origin::Env => format!("HOST={text}"),
        }
    });
    ConfigError(format!(
        "{} is not a loopback address: set --token or --token-file (or DYNPORT_TOKEN, \
         DYNPORT_TOKEN_FILE) so mutating endpoints require it, or listen on 127.0.0.1",
        given.unwrap_or_default()
    ))
}

fn warnings<L: Fn(&str) -> Option<String>>(raw: &Raw<L>, range: PortRange) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(port) = raw.env("PORT") {
        warnings.push(format!(
            "PORT={port} is ignored: dynport chooses its port dynamically from --range ({range})"
        ));
    }
    if raw.env("RELOAD").is_some() {
        warnings.push(
            "RELOAD has no effect: it is accepted only for compatibility with the seed".to_string(),
        );
    }
    warnings
}
