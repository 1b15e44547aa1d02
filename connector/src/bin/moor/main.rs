//! `moor`: the command-line tool for callers and administrators.

mod filters_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "moor", version, about = "Attach block storage through moord; audit its filters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Audit rootwrap-compatible filter sets: check a command, list filters, lint.
    #[command(subcommand)]
    Filters(filters_cmd::FiltersCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Filters(cmd) => filters_cmd::run(cmd),
    }
}
