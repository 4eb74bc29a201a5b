//! `dynport run`: lease ports, run a command on them, keep the lease alive
//! while it runs, release it when the command exits, exit with its status.
//!
//! The lease carries this process's pid, not the command's: the pid must be
//! in the lease request, and the command's environment needs the port before
//! the command exists. This process lives exactly as long as the command (it
//! waits for it, and the command gets SIGTERM should this process die), so
//! the server ends the lease when either is gone.
#![forbid(unsafe_code)]

use super::ClientError;
use super::api::{Api, Lease};
use super::args::RunOptions;
use super::child;
use crate::ports::lease::Protocol;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Makes `LISTEN_PID` the pid of CMD itself: `sh` learns its pid (`$$`)
/// after the fork, then execs CMD in its own place, keeping that pid.
const LISTEN_PID_SCRIPT: &str = r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#;

pub fn run(api: &Api, opts: &RunOptions) -> Result<ExitCode, ClientError> {
    let mut ask = opts.lease.clone();
    ask.pid = Some(std::process::id());
    ask.owner.get_or_insert_with(|| default_owner(opts));
    let (_, lease) = api.lease(&ask)?;
    let held = Held {
        api,
        id: lease.id.clone(),
    };
    if lease.ports.is_empty() {
        return Err(ClientError::Failed(
            "the server granted a lease without ports".into(),
        ));
    }
    let listeners = match opts.socket {
        true => bind_all(opts, &lease.ports)?,
        false => Vec::new(),
    };
    let mut command = command(opts, &lease.ports, listeners.len());
    child::forward_signals()
        .map_err(|e| ClientError::Failed(format!("cannot catch signals: {e}")))?;
    let child = match child::spawn(&mut command, listeners) {
        Ok(child) => child,
        Err(e) => return Ok(cannot_start(opts, &e)),
    };
    let keeper = Keeper::start(api.clone(), lease.id.clone(), lease_ttl(&lease, opts));
    let status = child::wait(child);
    keeper.stop();
    drop(held);
    let status =
        status.map_err(|e| ClientError::Failed(format!("waiting for the command: {e}")))?;
    Ok(ExitCode::from(exit_code(status)))
}

/// Who holds the lease, for `dynport leases`: CMD's program name, never
/// its arguments, which can carry secrets that every reader of the lease
/// list would see. Characters an owner may not hold become spaces.
fn default_owner(opts: &RunOptions) -> String {
    let program = std::path::Path::new(&opts.program);
    let name = program.file_name().unwrap_or(program.as_os_str());
    format!("dynport run {}", name.to_string_lossy())
        .chars()
        .map(|c| {
            if crate::util::text::printable(c) {
                c
            } else {
                ' '
            }
        })
        .take(crate::ports::wire::MAX_OWNER_CHARS)
        .collect()
}

/// Binds every leased port on `--bind`, before the command starts, so that
/// nothing else can take them in between.
/// A lease of `--protocol udp` gets bound datagram sockets, any other
/// listening TCP sockets.
fn bind_all(opts: &RunOptions, ports: &[u16]) -> Result<Vec<OwnedFd>, ClientError> {
    let udp = opts.lease.protocol == Some(Protocol::Udp);
    ports
        .iter()
        .map(|&port| {
            let addr = SocketAddr::new(opts.bind, port);
            let bound = match udp {
                true => UdpSocket::bind(addr).map(OwnedFd::from),
                false => TcpListener::bind(addr).map(OwnedFd::from),
            };
            bound.map_err(|e| ClientError::Failed(format!("--socket: cannot bind {addr}: {e}")))
        })
        .collect()
}

/// CMD with `PORT` (and `PORTS` for several), through `sh` when sockets are
/// passed, so that `LISTEN_PID` can name CMD's own pid.
fn command(opts: &RunOptions, ports: &[u16], sockets: usize) -> Command {
    let mut command = if opts.socket {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(LISTEN_PID_SCRIPT).arg(&opts.program);
        c.env("LISTEN_FDS", sockets.to_string());
        c
    } else {
        let mut c = Command::new(&opts.program);
        c.env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
        c
    };
    command.args(&opts.args).env_remove("LISTEN_FDNAMES");
    // The token is dynport's, not CMD's: a child that needs one is given
    // its own.
    command
        .env_remove("DYNPORT_TOKEN")
        .env_remove("DYNPORT_TOKEN_FILE");
    command.env("PORT", ports[0].to_string());
    if ports.len() > 1 {
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        command.env("PORTS", all.join(","));
    } else {
        command.env_remove("PORTS");
    }
    command
}

/// As shells do: 127 when CMD is not found, 126 when it cannot be run.
fn cannot_start(opts: &RunOptions, e: &std::io::Error) -> ExitCode {
    eprintln!(
        "dynport: cannot run '{}': {e}",
        opts.program.to_string_lossy()
    );
    match e.kind() {
        std::io::ErrorKind::NotFound => ExitCode::from(127),
        _ => ExitCode::from(126),
    }
}

/// CMD's exit code, or 128 + N when signal N ended it, as shells report it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        (None, None) => 1,
    }
}

/// The life of the lease, to renew it by: `--ttl`, else what the server gave.
fn lease_ttl(lease: &Lease, opts: &RunOptions) -> Duration {
    let granted = || lease.expires_at.duration_since(lease.created_at).ok();
    opts.lease
        .ttl
        .map(Duration::from_secs)
        .or_else(granted)
        .unwrap_or(Duration::from_secs(300))
        .max(Duration::from_secs(1))
}

/// Releases the lease when dropped, on every way out of `run`.
struct Held<'a> {
    api: &'a Api,
    id: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.api.release(&self.id) {
            eprintln!(
                "dynport: warning: cannot release lease {}: {e} \
                 (the server ends it on its own, as this process exits)",
                self.id
            );
        }
    }
}

/// Renews the lease at half its life, so that it lasts as long as CMD.
struct Keeper {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Keeper {
    fn start(api: Api, id: String, ttl: Duration) -> Keeper {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let every = (ttl / 2).max(Duration::from_millis(500));
        let thread = thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                match api.renew(&id, Some(ttl.as_secs())) {
                    Ok(_) => {}
                    // Unreachable: the server may be restarting; try again.
                    Err(e @ ClientError::Unreachable(_)) => {
                        eprintln!("dynport: warning: cannot renew lease {id}: {e}");
                    }
                    Err(e) => {
                        eprintln!("dynport: warning: cannot renew lease {id}, giving up: {e}");
                        break;
                    }
                }
            }
        });
        Keeper { stop, thread }
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::net::IpAddr;

    fn opts(program: &str, args: &[&str]) -> RunOptions {
        RunOptions {
            lease: Default::default(),
            socket: false,
            bind: IpAddr::from([127, 0, 0, 1]),
            program: OsString::from(program),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    fn env_of(c: &Command, name: &str) -> Option<Option<String>> {
        c.get_envs()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn command_sets_port_and_ports() {
        let c = command(&opts("srv", &["-v"]), &[4100, 4101], 0);
        assert_eq!(c.get_program(), "srv");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["-v"]);
        assert_eq!(env_of(&c, "PORT"), Some(Some("4100".into())));
        assert_eq!(env_of(&c, "PORTS"), Some(Some("4100,4101".into())));
        assert_eq!(env_of(&c, "LISTEN_FDS"), Some(None));
        let c = command(&opts("srv", &[]), &[4100], 0);
        assert_eq!(env_of(&c, "PORTS"), Some(None));
    }

    #[test]
    fn socket_command_goes_through_sh_to_learn_its_pid() {
        let mut o = opts("python3", &["-c", "pass"]);
        o.socket = true;
        let c = command(&o, &[4100], 1);
        assert_eq!(c.get_program(), "/bin/sh");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["-c", LISTEN_PID_SCRIPT, "python3", "-c", "pass"]);
        assert_eq!(env_of(&c, "LISTEN_FDS"), Some(Some("1".into())));
    }

    #[test]
    fn exit_code_follows_the_shell_convention() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }

    #[test]
    fn run_never_hands_the_token_to_cmd() {
        for socket in [false, true] {
            let mut o = opts("server", &[]);
            o.socket = socket;
            let c = command(&o, &[4100], 1);
            assert_eq!(env_of(&c, "DYNPORT_TOKEN"), Some(None));
            assert_eq!(env_of(&c, "DYNPORT_TOKEN_FILE"), Some(None));
        }
    }

    #[test]
    fn default_owner_is_the_program_name_without_arguments() {
        assert_eq!(
            default_owner(&opts("/usr/bin/psql", &["postgres://u:hunter2@db"])),
            "dynport run psql"
        );
        assert_eq!(default_owner(&opts("/opt/a\nb", &[])), "dynport run a b");
        let long = "x".repeat(300);
        assert_eq!(default_owner(&opts(&long, &[])).chars().count(), 128);
    }

    #[test]
    fn default_owner_is_printable_whatever_the_arguments() {
        let owner = default_owner(&opts("./a\necho\u{202E}b\u{FEFF}", &["-c", "x"]));
        assert_eq!(owner, "dynport run a echo b ");
        assert_eq!(crate::ports::wire::owner("owner", &owner), Ok(()));
    }

    #[test]
    fn lease_ttl_prefers_the_flag_then_the_granted_life() {
        let lease = Lease {
            id: "a".into(),
            ports: vec![1],
            pool: "default".into(),
            owner: None,
            uid: None,
            protocol: crate::ports::lease::Protocol::Both,
            pid: None,
            pid_start: None,
            created_at: humantime::parse_rfc3339("2026-11-25T19:00:00Z").unwrap(),
            expires_at: humantime::parse_rfc3339("2026-11-25T19:10:00Z").unwrap(),
            ttl_secs: 600,
            name: None,
        };
        let mut o = opts("x", &[]);
        assert_eq!(lease_ttl(&lease, &o), Duration::from_secs(600));
        o.lease.ttl = Some(30);
        assert_eq!(lease_ttl(&lease, &o), Duration::from_secs(30));
    }
}
