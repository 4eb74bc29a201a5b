//! The benchmark's child processes and temporary directories: every one is
//! recorded, so that an error, a panic, Ctrl-C or SIGTERM leaves no server,
//! no `wrk` and no directory behind.

use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Pids of the children still running.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Temporary directories not yet removed.
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// On SIGINT, SIGTERM or SIGHUP: kill every child, remove every temporary
/// directory, exit 130.
pub fn install_cleanup() -> Result<(), String> {
    ctrlc::set_handler(|| {
        eprintln!("bench: interrupted; stopping every child process");
        clean_up();
        std::process::exit(130);
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))
}

/// Kills what is left; also called at the end of a run that failed.
pub fn clean_up() {
    for pid in std::mem::take(&mut *lock(&CHILDREN)) {
        signal(pid, libc::SIGKILL);
    }
    for dir in std::mem::take(&mut *lock(&TEMP_DIRS)) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers; a pid that has gone is ESRCH.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A child process, killed when dropped.
pub struct Child {
    inner: std::process::Child,
}

impl Child {
    /// Spawns `cmd`. With `die_with_parent` the kernel also kills it should the
    /// benchmark itself be killed with SIGKILL; that costs a fork instead of
    /// a vfork, so the startup timing goes without it.
    pub fn spawn(cmd: &mut Command, die_with_parent: bool) -> io::Result<Child> {
        if die_with_parent {
            // SAFETY: prctl(2) is async-signal-safe and touches no memory of
            // the parent; it runs in the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut children = lock(&CHILDREN);
        let inner = cmd.spawn()?;
        children.push(inner.id());
        Ok(Child { inner })
    }

    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Whether the child has already exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.inner.try_wait(), Ok(None))
    }

    /// Reads the child's stdout (piped) up to a line starting with `prefix`
    /// and returns the rest of that line.
    pub fn read_line_after(&mut self, prefix: &str) -> io::Result<String> {
        let stdout = self.inner.stdout.take().ok_or(io::ErrorKind::BrokenPipe)?;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next().transpose()? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_string());
            }
        }
        Err(io::Error::other(format!(
            "exited before printing {prefix:?}"
        )))
    }

    /// Waits for the child and returns its stdout (which must be piped).
    pub fn output(mut self) -> io::Result<String> {
        let mut out = String::new();
        if let Some(mut stdout) = self.inner.stdout.take() {
            io::Read::read_to_string(&mut stdout, &mut out)?;
        }
        let status = self.inner.wait()?;
        forget_pid(self.inner.id());
        if !status.success() {
            return Err(io::Error::other(format!("exited with {status}: {out}")));
        }
        Ok(out)
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it exited on
    /// SIGTERM.
    pub fn terminate(mut self, grace: Duration) -> bool {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.inner.try_wait() {
                forget_pid(self.pid());
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false // Drop kills it.
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.inner.try_wait() {
            let _ = self.inner.kill();
            let _ = self.inner.wait();
        }
        forget_pid(self.inner.id());
    }
}

fn forget_pid(pid: u32) {
    lock(&CHILDREN).retain(|&p| p != pid);
}

/// A process that a child started and that outlives it when the child is
/// killed (nginx's worker): killed with SIGKILL when dropped or when the
/// benchmark ends, as a child is.
pub struct Adopted(u32);

impl Adopted {
    pub fn new(pid: u32) -> Adopted {
        lock(&CHILDREN).push(pid);
        Adopted(pid)
    }

    pub fn pid(&self) -> u32 {
        self.0
    }
}

impl Adopted {
    /// Forgets the process, which has been seen to end, without a signal.
    pub fn disown(self) {
        forget_pid(self.0);
        std::mem::forget(self);
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        signal(self.0, libc::SIGKILL);
        forget_pid(self.0);
    }
}

/// The children of process `pid` (`/proc/PID/task/PID/children`).
pub fn children_of(pid: u32) -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    Ok(text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Kills every process that holds a file under `dir` open: what a killed
/// run's children started and left behind (nginx's worker keeps its error
/// log open).
fn kill_holders(dir: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(dir)));
        if holds {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// Removes the temporary directories of earlier runs that were killed
/// before they could (SIGKILL): those whose process is gone, and first
/// kills what still holds a file in one of them.
pub fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("dynport-bench-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            kill_holders(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> io::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("dynport-bench-{}-{label}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        lock(&TEMP_DIRS).push(path.clone());
        // Mode 0755 whatever the umask: dynport refuses a directory others may write to.
        std::fs::DirBuilder::new().mode(0o755).create(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        lock(&TEMP_DIRS).retain(|p| p != &self.path);
    }
}

/// Threads and resident memory (KiB) of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub threads: u64,
    pub rss_kib: u64,
}

pub fn status(pid: u32) -> io::Result<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("no {name} in /proc/{pid}/status")))
    };
    Ok(Status {
        threads: field("Threads:")?,
        rss_kib: field("VmRSS:")?,
    })
}

/// Raises the soft limit on open files to the hard one, for the 1,000 idle
/// connections and 1,000 listeners (the children inherit it).
pub fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read or write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Whether `program` is on the PATH.
pub fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
