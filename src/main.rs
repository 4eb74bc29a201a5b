//! The `dynport` binary: parse the command line, run, turn the outcome into
//! an exit status (0 clean, 1 failure, 2 usage or configuration). A client
//! command (`dynport lease`, …) has its own statuses, see [`dynport::client`].

use dynport::config::{self, Command};
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    fewer_malloc_arenas();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| dynport::client::is_command(a)) {
        return dynport::client::main(args, |k| std::env::var(k).ok());
    }
    let command = match config::parse(args, |k| std::env::var(k).ok()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("dynport: {e}\nTry 'dynport --help' for more information.");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => print!("{}", config::help()),
        Command::Version => println!("dynport {}", env!("CARGO_PKG_VERSION")),
        Command::Serve(settings) => {
            dynport::service::logging::init(settings.log_level, |k| std::env::var(k).ok());
            let notifier =
                dynport::service::notify::Notifier::from_lookup(|k| std::env::var(k).ok());
            for warning in &settings.warnings {
                log::warn!("{warning}");
            }
            let kernel = dynport::app::kernel_ports::Kernel::host();
            let reserve = settings.reserve_kernel;
            if let Err(e) = dynport::app::kernel_ports::preflight(&kernel, settings.range, reserve)
            {
                log::error!("{e}");
                return ExitCode::from(2);
            }
            // A state directory (or a portserver socket's) that others
            // could write to or swap is a configuration error: refused
            // before anything is written there.
            let dirs = match dynport::server::Dirs::prepare(&settings) {
                Ok(dirs) => dirs,
                Err(e) => {
                    log::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = dynport::server::run(&settings, &dirs, notifier) {
                log::error!("{e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// glibc gives each thread that allocates its own arena, up to eight per
/// core, and each keeps pages of its own resident. dynport's threads
/// allocate little (the workers' buffers are reused, and most small
/// allocations are served by each thread's cache without taking a lock), so
/// two arenas (the main one and one the other threads share) serve them as
/// well and keep an idle server smaller.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fewer_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc parameter; called first thing in
    // main, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fewer_malloc_arenas() {}
