//! The command-line client: `dynport lease`, `release`, `renew`, `leases`,
//! `status`, `url`, `run`, `who`, `names`, `port`, `alias` and `watch`
//! talk to a running server over its HTTP API.
//!
//! Exit status: 0 done, 1 the server refused (or another failure), 2 usage,
//! 3 no server could be reached.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::process::ExitCode;

pub(crate) mod api;
pub(crate) mod args;
mod child;
pub(crate) mod help;
pub(crate) mod http;
pub(crate) mod naming;
pub(crate) mod output;
mod run;
pub(crate) mod target;
mod watch;
pub(crate) mod who;

use api::Api;
use args::{Command, Invocation, Parsed, ReleaseTarget};

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

/// Runs a client command. `args` starts with the command's name (`lease`, …);
/// the environment is read through `lookup`.
pub fn main<I>(args: I, lookup: impl Fn(&str) -> Option<String>) -> ExitCode
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let name = args.next().unwrap_or_default();
    let name = name.to_string_lossy();
    let outcome = match args::parse(&name, args, &lookup) {
        Ok(Parsed::Help(text)) => emit(&text).map(|()| ExitCode::SUCCESS),
        Ok(Parsed::Run(invocation)) => execute(*invocation),
        Err(message) => Err(ClientError::Usage(message)),
    };
    outcome.unwrap_or_else(|e| {
        match &e {
            ClientError::Usage(m) => {
                eprintln!("dynport: {m}\nTry 'dynport {name} --help' for more information.")
            }
            other => eprintln!("dynport: {other}"),
        }
        ExitCode::from(e.exit_code())
    })
}

fn execute(inv: Invocation) -> Result<ExitCode, ClientError> {
    for warning in &inv.warnings {
        eprintln!("dynport: {warning}");
    }
    let target = inv.locate.resolve(inv.server_uid)?;
    if let Command::Watch(count) = inv.command {
        let opts = watch::Options {
            json: inv.json,
            count,
        };
        return watch::run(target, &inv.locate, inv.server_uid, opts);
    }
    let api = Api::new(target, inv.token);
    let json = inv.json;
    match inv.command {
        Command::Lease(mut opts) => {
            auto_name(&mut opts)?;
            let (answer, lease) = api.lease(&opts)?;
            print_either(json, &answer, &lines(&lease.ports))
        }
        Command::Release(target) => {
            let id = lease_id(&api, target)?;
            let (answer, ports) = api.release(&id)?;
            print_either(json, &answer, &lines(&ports))
        }
        Command::Renew { id, ttl } => {
            let (answer, lease) = api.renew(&id, ttl)?;
            print_either(
                json,
                &answer,
                &format!("{}\n", crate::util::time::rfc3339(lease.expires_at)),
            )
        }
        Command::Leases => {
            let (answer, leases) = api.leases()?;
            let table = output::leases_table(&leases, std::time::SystemTime::now());
            print_either(json, &answer, &table)
        }
        Command::Status => {
            let answer = api.overview()?;
            let table = output::status_table(&api.target.url.to_string(), &answer.json);
            print_either(json, &answer, &table)
        }
        Command::Url(None) => {
            api.health()?;
            emit(&format!("{}\n", api.target.url))
        }
        Command::Url(Some(name)) => emit(&format!("{}\n", output::clean(&api.name(&name)?.url))),
        Command::Run(mut opts) => {
            auto_name(&mut opts.lease)?;
            return run::run(&api, &opts);
        }
        Command::Who(port) => {
            let (answer, holders) = api.holders(port)?;
            let text = who::table(port, &answer.json, &holders, &who::names(&api.target));
            print_either(json, &answer, &text)
        }
        Command::Names => {
            let (answer, names) = api.names()?;
            print_either(json, &answer, &output::names_table(&names))
        }
        Command::Port(name) => emit(&format!("{}\n", live_port(&api.name(&name)?)?)),
        Command::Alias { name, port } => {
            let (answer, named) = api.alias(&name, port)?;
            print_either(json, &answer, &format!("{}\n", output::clean(&named.url)))
        }
        Command::Unalias(name) => {
            let answer = api.unalias(&name)?;
            print_either(json, &answer, "")
        }
        Command::Watch(_) => unreachable!("dynport watch runs before"),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// `--name auto` made into a name from the current directory.
fn auto_name(opts: &mut args::LeaseOptions) -> Result<(), ClientError> {
    if opts.name.as_deref() != Some(naming::AUTO) {
        return Ok(());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        ClientError::Usage(format!(
            "--name auto: cannot tell the current directory: {e}; give a name with --name NAME"
        ))
    })?;
    opts.name = Some(naming::auto(&cwd).map_err(ClientError::Usage)?);
    Ok(())
}

/// The port of a live name; a refusal naming its last port otherwise.
fn live_port(name: &api::Name) -> Result<u16, ClientError> {
    match name.live {
        true => Ok(name.port),
        false => Err(ClientError::Refused(format!(
            "{} is not live: no lease or alias holds it now; its last port was {}",
            output::clean(&name.name),
            name.port
        ))),
    }
}

/// The id of the lease to release: the one given, or the live lease holding
/// the port given.
fn lease_id(api: &Api, target: ReleaseTarget) -> Result<String, ClientError> {
    match target {
        ReleaseTarget::Id(id) => Ok(id),
        ReleaseTarget::Port(port) => {
            let (_, leases) = api.leases()?;
            leases
                .into_iter()
                .find(|l| l.ports.contains(&port))
                .map(|l| l.id)
                .ok_or_else(|| ClientError::Refused(format!("no live lease holds port {port}")))
        }
    }
}

/// One port per line.
fn lines(ports: &[u16]) -> String {
    ports.iter().map(|p| format!("{p}\n")).collect()
}

/// The server's answer as sent with `--json`, else `text`.
fn print_either(json: bool, answer: &api::Answer, text: &str) -> Result<(), ClientError> {
    if json {
        let body = String::from_utf8_lossy(&answer.raw);
        emit(&format!("{}\n", body.trim_end()))
    } else {
        emit(text)
    }
}

/// Writes to stdout; a closed stdout is a failure, not a panic.
fn emit(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::Failed(format!("cannot write to stdout: {e}")))
}
