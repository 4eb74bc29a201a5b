//! The `dynport` binary: parse the command line, run, turn the outcome into
//! an exit status (0 clean, 1 failure, 2 usage or configuration). A client
//! command (`dynport lease`, …) has its own statuses, see [`dynport::client`].

use dynport::config::{self, Command};
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
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
        Command::Help => print!("{}", config::HELP),
        Command::Version => println!("dynport {}", env!("CARGO_PKG_VERSION")),
        Command::Serve(settings) => {
            init_logging(settings.log_level);
            for warning in &settings.warnings {
                log::warn!("{warning}");
            }
            let kernel = dynport::kernel_ports::Kernel::host();
            let reserve = settings.reserve_kernel;
            if let Err(e) = dynport::kernel_ports::preflight(&kernel, settings.range, reserve) {
                log::error!("{e}");
                return ExitCode::from(2);
            }
            // A state directory others could write to is a configuration
            // error: refused before anything is written there.
            if let Err(e) = dynport::state::dir::prepare(&settings.state_dir) {
                log::error!("{e}");
                return ExitCode::from(2);
            }
            if let Err(e) = dynport::server::run(&settings) {
                log::error!("{e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn init_logging(level: log::LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}
