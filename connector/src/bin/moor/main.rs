//! `moor`: the command-line tool for callers and administrators.

mod call_cmd;
mod dasd_cmd;
mod doctor_cmd;
mod filters_cmd;
mod filters_import;
mod generate_cmd;
mod luks_cmd;
mod metrics_cmd;
mod transport_cmd;
mod volume_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "moor",
    version,
    about = "Attach block storage through moord; audit its filters"
)]
struct Cli {
    /// moord's socket.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "/run/moor/moord.sock",
        env = "MOOR_SOCKET"
    )]
    socket: PathBuf,
    /// HMAC key file shared with moord (needed when moord has one).
    #[arg(long, global = true, value_name = "FILE", env = "MOOR_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Log format on stderr: auto (human on a terminal, with the progress of long
    /// waits on one line; JSON lines otherwise), human or json.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "auto",
        env = "MOOR_LOG_FORMAT"
    )]
    log_format: volume_cmd::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Audit rootwrap-compatible filter sets: check a command, list filters, lint.
    #[command(subcommand)]
    Filters(filters_cmd::FiltersCommand),
    /// Call moord directly: `ping`, or `exec -- ARGV…`.
    #[command(subcommand)]
    Call(call_cmd::CallCommand),
    /// Attach a volume from its connection_info; prints device_info JSON.
    #[command(subcommand)]
    Connect(volume_cmd::ConnectCommand),
    /// Detach a volume attached by `moor connect`; prints what was removed and
    /// anything left behind.
    #[command(subcommand)]
    Disconnect(volume_cmd::DisconnectCommand),
    /// Make the host see an attached volume's new size; prints it.
    #[command(subcommand)]
    Extend(volume_cmd::ExtendCommand),
    /// The by-path links of a volume's paths that exist now.
    #[command(subcommand)]
    Paths(volume_cmd::PathsCommand),
    /// Check an attached volume can be read.
    #[command(subcommand)]
    Check(volume_cmd::CheckCommand),
    /// LUKS on a volume or image: format, rekey, status.
    #[command(subcommand)]
    Luks(luks_cmd::LuksCommand),
    /// The volumes moor attached on this host (its attachment records) as JSON.
    Volumes(volume_cmd::VolumesArgs),
    /// This host's connector properties (initiator name, multipath, …) as JSON.
    ConnectorProperties(volume_cmd::PropertiesArgs),
    /// Check the host (iscsid, multipathd, udev, NVMe settings, identities) and
    /// list what no attachment accounts for (sessions, disks, maps, links, wwids
    /// entries), each with its identity and why. Exit 4 when anything is wrong.
    Doctor(doctor_cmd::DoctorArgs),
    /// Remove what `moor doctor` lists: `--plan` shows each action with the typed
    /// operations it would run, `--apply` runs them through the detach paths
    /// (identity re-checked, anything in use skipped).
    Cleanup(doctor_cmd::CleanupCmd),
    /// The connector's metrics and moord's, in the Prometheus text format.
    Metrics(metrics_cmd::MetricsArgs),
    /// Print a shell completion script (bash, zsh, fish) on stdout.
    Completions(generate_cmd::CompletionsArgs),
    /// Write the man pages (moor.1, one per subcommand) into a directory.
    #[command(hide = true)]
    GenerateManpages(generate_cmd::ManpagesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    volume_cmd::set_log_format(cli.log_format);
    match cli.command {
        Command::Filters(cmd) => filters_cmd::run(cmd),
        Command::Call(cmd) => call_cmd::run(cmd, &cli.socket, cli.key_file.as_ref()),
        Command::Connect(cmd) => {
            volume_cmd::init_logging();
            report(volume_cmd::connect(cmd, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Disconnect(cmd) => {
            volume_cmd::init_logging();
            report(volume_cmd::disconnect(
                cmd,
                &cli.socket,
                cli.key_file.as_ref(),
            ))
        }
        Command::Extend(cmd) => {
            volume_cmd::init_logging();
            report(volume_cmd::extend(cmd, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Paths(cmd) => report(volume_cmd::paths(cmd)),
        Command::Check(cmd) => {
            volume_cmd::init_logging();
            report(volume_cmd::check(cmd, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Luks(cmd) => {
            volume_cmd::init_logging();
            report(luks_cmd::run(cmd, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Volumes(args) => report(volume_cmd::volumes(args)),
        Command::ConnectorProperties(args) => report(volume_cmd::properties(
            args,
            &cli.socket,
            cli.key_file.as_ref(),
        )),
        Command::Doctor(args) => {
            report(doctor_cmd::doctor(args, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Cleanup(args) => {
            volume_cmd::init_logging();
            report(doctor_cmd::cleanup(
                args,
                &cli.socket,
                cli.key_file.as_ref(),
            ))
        }
        Command::Metrics(args) => {
            report(metrics_cmd::run(args, &cli.socket, cli.key_file.as_ref()))
        }
        Command::Completions(args) => report(generate_cmd::completions(args)),
        Command::GenerateManpages(args) => report(generate_cmd::manpages(args)),
    }
}

/// Errors of the volume commands: one line (with causes) on stderr, exit 1.
fn report(r: anyhow::Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("moor: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the message
/// already ends with (library errors often print their cause themselves).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
