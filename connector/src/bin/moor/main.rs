//! `moor`: the command-line tool for callers and administrators.

mod call_cmd;
mod filters_cmd;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Filters(cmd) => filters_cmd::run(cmd),
        Command::Call(cmd) => call_cmd::run(cmd, &cli.socket, cli.key_file.as_ref()),
    }
}
