//! `moor call`: talk to moord directly (ping, exec) — for scripts, rootwrap-daemon
//! style callers and debugging.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use moor_privhelper::client::{Client, ClientError, read_key_file};
use moor_privhelper::protocol::ErrorCode;

/// Exit codes of `moor call` besides the child's own.
const EXIT_TIMEOUT: u8 = 124;
const EXIT_MOOR: u8 = 125;
const EXIT_DENIED: u8 = 126;

#[derive(Debug, Subcommand)]
pub enum CallCommand {
    /// Check that moord answers (prints the round-trip time).
    Ping,
    /// Run a command through moord's `exec` operation. The child's stdout and stderr
    /// stream to ours; the exit status is the child's (128+N when killed by signal
    /// N, 124 on timeout, 126 when moord refuses, 125 on other moor errors).
    Exec {
        /// Send our stdin to the command (streamed); otherwise it reads nothing.
        #[arg(long)]
        stdin: bool,
        /// Deadline in milliseconds.
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// The command, after `--`.
        #[arg(last = true, required = true, value_name = "ARGV")]
        argv: Vec<OsString>,
    },
}

fn connect(socket: &Path, key_file: Option<&PathBuf>) -> Result<Client, ClientError> {
    let key = match key_file {
        Some(p) => Some(read_key_file(p)?),
        None => None,
    };
    Client::connect(socket, key.as_ref().map(|k| k.as_slice()))
}

pub fn run(cmd: CallCommand, socket: &Path, key_file: Option<&PathBuf>) -> ExitCode {
    let mut client = match connect(socket, key_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("moor: {e}");
            let denied = match &e {
                ClientError::Refused(ErrorCode::Forbidden | ErrorCode::AuthFailed, _) => true,
                ClientError::Connect { source, .. } => {
                    source.kind() == std::io::ErrorKind::PermissionDenied
                }
                _ => false,
            };
            return ExitCode::from(if denied { EXIT_DENIED } else { EXIT_MOOR });
        }
    };
    match cmd {
        CallCommand::Ping => {
            let t = std::time::Instant::now();
            match client.ping() {
                Ok(()) => {
                    println!(
                        "pong from moord in {} µs (uid {}, ops: {})",
                        t.elapsed().as_micros(),
                        client.uid,
                        client.ops.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        CallCommand::Exec {
            stdin,
            timeout_ms,
            argv,
        } => {
            let mut args = Vec::with_capacity(argv.len());
            for a in argv {
                match a.into_string() {
                    Ok(s) => args.push(s),
                    Err(a) => {
                        eprintln!("moor: argument {a:?} is not UTF-8");
                        return ExitCode::from(EXIT_MOOR);
                    }
                }
            }
            let input: Option<Box<dyn std::io::Read + Send>> = if stdin {
                if std::io::stdin().is_terminal() {
                    eprintln!(
                        "moor: reading the command's stdin from the terminal (end with Ctrl-D)"
                    );
                }
                Some(Box::new(std::io::stdin()))
            } else {
                None
            };
            if let Some(ms) = timeout_ms
                && let Err(e) = client
                    .set_reply_timeout(std::time::Duration::from_millis(ms.saturating_add(30_000)))
            {
                eprintln!("moor: {e}");
                return ExitCode::from(EXIT_MOOR);
            }
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
            match client.exec_stream(&args, timeout_ms, input, &mut out, &mut err) {
                Ok(r) => match (r.exit_code, r.signal) {
                    (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
                    (None, Some(s)) => ExitCode::from((128 + s).clamp(0, 255) as u8),
                    _ => ExitCode::from(EXIT_MOOR),
                },
                Err(e) => fail(&e),
            }
        }
    }
}

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("moor: {e}");
    let code = match e {
        ClientError::Remote(b) => match b.code {
            ErrorCode::Denied | ErrorCode::Forbidden => EXIT_DENIED,
            ErrorCode::Timeout => EXIT_TIMEOUT,
            _ => EXIT_MOOR,
        },
        _ => EXIT_MOOR,
    };
    ExitCode::from(code)
}
