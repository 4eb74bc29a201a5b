//! The system calls `dynport run` needs beyond std: forwarding signals to
//! the child, handing it listening sockets at descriptors 3, 4, … (the
//! systemd way), tying its life to this process, and waiting for it without
//! letting its pid be reused while a signal might still be forwarded.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

/// The first descriptor of passed sockets, as `sd_listen_fds` expects.
const FIRST_FD: i32 = 3;
/// The signals forwarded to the child.
const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The running child's pid; 0 before it starts and once it has exited.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that came before the child existed, to send it once it does.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Catches SIGINT, SIGTERM and SIGHUP from now on, to forward them to the
/// child started by [`spawn`]. Call it while this process has one thread,
/// so that the handler and [`spawn`] cannot interleave.
pub fn forward_signals() -> io::Result<()> {
    for sig in FORWARDED {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler has the three-argument form SA_SIGINFO asks for, and does
        // only async-signal-safe things (atomics, kill, getpgid, getpgrp).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        PENDING.store(sig, Ordering::SeqCst);
        return;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t.
    let from_terminal = unsafe { (*info).si_code } == libc::SI_KERNEL;
    // SAFETY: plain system calls without pointers, async-signal-safe.
    let same_group = unsafe { libc::getpgid(child) == libc::getpgrp() };
    // The terminal sends Ctrl-C (and a hangup) to the whole foreground
    // group, child included: sending it again would deliver it twice.
    if from_terminal && same_group {
        return;
    }
    // SAFETY: kill is async-signal-safe; `child` is not reaped yet (see
    // `wait`), so its pid cannot belong to another process.
    unsafe { libc::kill(child, sig) };
}

/// Starts `command` with `listeners` (TCP listeners or bound UDP sockets)
/// at descriptors 3, 4, … and SIGTERM due to it should this process die.
/// Closes this process's copies of the sockets once the child holds them.
pub fn spawn(command: &mut Command, listeners: Vec<OwnedFd>) -> io::Result<Child> {
    let passed = place(listeners)?;
    let count = passed.len() as i32;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs in the forked child before exec and calls only
    // async-signal-safe functions (fcntl, prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for fd in FIRST_FD..FIRST_FD + count {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // This process may have died before the prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    let child = command.spawn()?;
    drop(passed);
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    let early = PENDING.swap(0, Ordering::SeqCst);
    if early != 0 {
        // SAFETY: a plain system call on our own, unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, early) };
    }
    Ok(child)
}

/// Moves `listeners` to descriptors 3, 4, … of this process, still
/// close-on-exec (the child's hook clears that flag). Whatever sat there was
/// inherited from the process that started dynport, unused by it, and would
/// have reached the child in place of the sockets.
fn place(listeners: Vec<OwnedFd>) -> io::Result<Vec<OwnedFd>> {
    let above = FIRST_FD + listeners.len() as i32;
    // First above the targets, so that moving one cannot overwrite another.
    let high = listeners
        .iter()
        .map(|l| {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor the listener owns
            // returns a new descriptor that nothing else owns.
            let fd = unsafe { libc::fcntl(l.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) };
            owned(fd)
        })
        .collect::<io::Result<Vec<OwnedFd>>>()?;
    drop(listeners);
    high.iter()
        .zip(FIRST_FD..)
        .map(|(fd, target)| {
            // SAFETY: no object of this process owns a descriptor from 3 up
            // at this point (the lease's HTTP connection is closed, the
            // renewal thread not started, the listeners moved above), so
            // dup3 replaces nothing that anyone will use or close later.
            let rc = unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) };
            owned(if rc < 0 { rc } else { target })
        })
        .collect()
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fcntl or dup3 and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for the child to exit, stops forwarding signals to it, then reaps it.
pub fn wait(mut child: Child) -> io::Result<ExitStatus> {
    let pid = child.id() as libc::id_t;
    loop {
        // SAFETY: waitid writes only into the zeroed siginfo_t passed to it;
        // WNOWAIT leaves the child a zombie, so its pid stays ours.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    CHILD.store(0, Ordering::SeqCst);
    child.wait()
}
