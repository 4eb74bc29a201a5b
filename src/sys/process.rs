//! What `/proc` says about processes: whether a lease's owner still runs,
//! and how much memory this server holds.

/// The start time of `pid` in clock ticks since boot, `None` when no such
/// process runs (a zombie counts as exited).
pub fn start_time(pid: u32) -> Option<u64> {
    parse_stat(&read_stat(pid)?)
}

/// `/proc/PID/stat`. A process may name itself with any bytes, so the
/// name is read leniently: it must not make the process look gone.
fn read_stat(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The start time of `pid` (as [`start_time`]) and its command name,
/// from one read of `/proc/PID/stat`.
pub fn start_and_command(pid: u32) -> Option<(u64, String)> {
    let stat = read_stat(pid)?;
    let start = parse_stat(&stat)?;
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    Some((start, name.to_string()))
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line, unless the state is
/// zombie or dead. The command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether `pid` runs and, when `start` is known, is the same process that
/// started then (not a later one that reused the pid).
pub fn is_alive(pid: u32, start: Option<u64>) -> bool {
    match start_time(pid) {
        None => false,
        Some(now) => start.is_none_or(|then| then == now),
    }
}

/// Whether process `pid`, started at `start` when known, has exited, for
/// the poll of processes no pidfd watches: `None` when `/proc` could not
/// say (this process out of descriptors, say), so that a failed read never
/// ends a lease.
pub fn has_exited(pid: u32, start: Option<u64>) -> Option<bool> {
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(bytes) => {
            let now = parse_stat(&String::from_utf8_lossy(&bytes));
            Some(now.is_none_or(|now| start.is_some_and(|then| then != now)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Some(true),
        Err(_) => None,
    }
}

/// [`is_alive`] for many leases at once, reading each pid's `/proc` entry
/// once (a portpicker client holds one lease per port under the same pid):
/// for the leases a starting server loads, and for processes no pidfd
/// watches.
pub fn alive_checker() -> impl Fn(u32, Option<u64>) -> bool {
    let starts = std::cell::RefCell::new(std::collections::HashMap::new());
    move |pid, start| {
        let mut starts = starts.borrow_mut();
        let now = *starts.entry(pid).or_insert_with(|| start_time(pid));
        now.is_some_and(|now| start.is_none_or(|then| then == now))
    }
}

/// The real uid of `pid`, `None` when no such process runs (or `/proc`
/// hides it from dynport).
pub fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_real_uid(&status)
}

/// The first of the four ids on the `Uid:` line of `/proc/PID/status`.
fn parse_real_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The effective uid dynport runs as.
pub fn own_uid() -> u32 {
    crate::sys::euid()
}

/// Resident memory of this process, from `/proc/self/status`.
pub fn memory_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_gives_the_start_time_and_the_command_name() {
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let (start, command) = start_and_command(me).unwrap();
        assert_eq!(
            (Some(start), command.as_str()),
            (start_time(me), comm.trim_end())
        );
        assert_eq!(start_and_command(u32::MAX), None);
    }

    #[test]
    fn stat_start_time_counts_fields_after_the_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(987654));
        let zombie = "4242 (gone) Z 1 4242 4242 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(zombie), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_is_not() {
        let me = std::process::id();
        let start = start_time(me).expect("this process has a start time");
        assert!(is_alive(me, Some(start)));
        assert!(is_alive(me, None));
        assert!(!is_alive(me, Some(start + 1)));
        assert!(!is_alive(u32::MAX, None));
    }

    #[test]
    fn the_checker_answers_as_is_alive_does() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        let alive = alive_checker();
        for _ in 0..2 {
            assert!(alive(me, Some(start)));
            assert!(alive(me, None));
            assert!(!alive(me, Some(start + 1)));
            assert!(!alive(u32::MAX, None));
        }
    }

    #[test]
    fn a_poll_says_exited_only_when_proc_says_so() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert_eq!(has_exited(me, Some(start)), Some(false));
        assert_eq!(has_exited(me, None), Some(false));
        assert_eq!(has_exited(me, Some(start + 1)), Some(true));
        assert_eq!(has_exited(u32::MAX, None), Some(true));
    }

    #[test]
    fn real_uid_is_the_first_id_of_the_uid_line() {
        let status = "Name:\tsleep\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tx\n"), None);
        assert_eq!(real_uid(std::process::id()), Some(own_uid()));
    }
}
