//! How many descriptors dynport may spend on what. At start the soft limit
//! on open descriptors (`RLIMIT_NOFILE`) is raised to the hard limit, and
//! the caps on HTTP connections, waiting portserver clients and pidfds of
//! lease processes are sized to fit under it with room to spare, so that no
//! one of them can run the others (or the accept loop) out of descriptors.

/// Descriptors kept for everything else: standard streams, listeners,
/// epolls, netlink sockets, the state directory and its files, `/proc`
/// reads and the accept loop's reserved descriptor.
pub const RESERVE: usize = 64;
/// The descriptors one connection may hold: its own, and its backend's
/// when it is a tunnel.
pub const DESCRIPTORS_PER_CONNECTION: usize = 2;
/// The most HTTP connections served at once, however high the limit.
pub const MAX_CONNECTIONS: usize = 1024;
/// The most portserver clients waiting for their line at once.
pub const MAX_PORTSERVER_WAITING: usize = 1024;
/// The most processes of leases watched by a pidfd; more are polled.
pub const MAX_PID_WATCHES: usize = 65_536;

/// The caps sized under the descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// Open HTTP connections, TCP and Unix socket together.
    pub connections: usize,
    /// Portserver clients that have not sent their whole line yet.
    pub portserver_waiting: usize,
    /// Processes of pid-bound leases watched by a pidfd; the processes of
    /// further leases are polled.
    pub pid_watches: usize,
}

/// The caps for a limit of `limit` open descriptors: [`RESERVE`] kept
/// aside, half of the rest at most for connections (each may be a tunnel
/// to a named dev server, two descriptors), a quarter each for waiting
/// portserver clients and pid watches, each within its maximum and at
/// least 1.
pub fn size(limit: u64) -> FdBudget {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let rest = limit.saturating_sub(RESERVE);
    FdBudget {
        connections: (rest / 2 / DESCRIPTORS_PER_CONNECTION).clamp(1, MAX_CONNECTIONS),
        portserver_waiting: (rest / 4).clamp(1, MAX_PORTSERVER_WAITING),
        pid_watches: (rest / 4).clamp(1, MAX_PID_WATCHES),
    }
}

/// Raises the soft descriptor limit to the hard one and sizes the caps
/// under the limit then in force, logging both.
pub fn raise_and_size() -> FdBudget {
    let (limit, raised_from) = match raise() {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("cannot read the limit on open descriptors ({e}); assuming 1024");
            (1024, None)
        }
    };
    let budget = size(limit);
    log_budget(limit, raised_from, &budget);
    budget
}

/// The soft limit in force after raising it to the hard one, and what it
/// was when it had to be raised.
fn raise() -> std::io::Result<(u64, Option<u64>)> {
    let (soft, hard) = crate::sys::nofile_limits()?;
    if soft >= hard {
        return Ok((soft, None));
    }
    match crate::sys::set_nofile_soft(hard, hard) {
        Ok(()) => Ok((hard, Some(soft))),
        Err(e) => {
            log::warn!("cannot raise the limit on open descriptors from {soft} to {hard}: {e}");
            Ok((soft, None))
        }
    }
}

/// Debug when the limit leaves every cap at its maximum; info when it is
/// low enough to make a cap smaller, with what to do about it.
fn log_budget(limit: u64, raised_from: Option<u64>, budget: &FdBudget) {
    let raised = raised_from.map_or(String::new(), |from| format!(" (raised from {from})"));
    let caps = format!(
        "open descriptor limit {limit}{raised}: at most {} connections, {} waiting \
         portserver clients, {} pidfds of lease processes (further ones are polled)",
        budget.connections, budget.portserver_waiting, budget.pid_watches
    );
    if budget.connections < MAX_CONNECTIONS {
        log::info!("{caps}; a higher hard limit (LimitNOFILE=, ulimit -Hn) allows more");
    } else {
        log::debug!("{caps}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_1024_keeps_the_reserve_and_splits_the_rest() {
        let budget = size(1024);
        assert_eq!(
            budget,
            FdBudget {
                connections: 240,
                portserver_waiting: 240,
                pid_watches: 240,
            }
        );
        let spent = budget.connections * DESCRIPTORS_PER_CONNECTION
            + budget.portserver_waiting
            + budget.pid_watches;
        assert_eq!(spent + RESERVE, 1024);
    }

    #[test]
    fn a_high_limit_leaves_each_cap_at_its_maximum() {
        let budget = size(1_048_576);
        assert_eq!(
            budget,
            FdBudget {
                connections: MAX_CONNECTIONS,
                portserver_waiting: MAX_PORTSERVER_WAITING,
                pid_watches: MAX_PID_WATCHES,
            }
        );
        assert_eq!(size(u64::MAX), budget, "an unlimited limit is a high one");
        assert_eq!(size(4160).connections, MAX_CONNECTIONS);
        assert_eq!(size(4159).connections, MAX_CONNECTIONS - 1);
    }

    #[test]
    fn a_limit_below_the_reserve_still_leaves_one_of_each() {
        let one = FdBudget {
            connections: 1,
            portserver_waiting: 1,
            pid_watches: 1,
        };
        assert_eq!(size(0), one);
        assert_eq!(size(64), one);
        let eight_left = FdBudget {
            connections: 2,
            portserver_waiting: 2,
            pid_watches: 2,
        };
        assert_eq!(size(72), eight_left);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let budget = raise_and_size();
        let (soft, hard) = crate::sys::nofile_limits().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(budget, size(soft));
    }
}
