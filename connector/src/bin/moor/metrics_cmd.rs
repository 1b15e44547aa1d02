//! `moor metrics`, and the recording of every `moor connect|disconnect|extend`
//! in the connector's shared metrics (docs/metrics.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Args;
use moor_connector::metrics::{InFlight, MetricsDir, MetricsError};
use moor_privhelper::client::{Client, read_key_file};
use serde_json::Value;

use crate::volume_cmd::Common;

/// The `status` of the detach outcome this process printed (`clean`,
/// `clean-with-data-loss`, `leftovers`): a detach's metrics outcome.
static DETACH_STATUS: Mutex<Option<String>> = Mutex::new(None);

/// Called with the detach outcome's `status` when it is printed.
pub(crate) fn note_detach_status(status: &str) {
    *DETACH_STATUS.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.to_string());
}

fn take_detach_status() -> Option<String> {
    DETACH_STATUS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// One volume operation being recorded (nothing for a dry run, or when the
/// metrics directory does not exist). Recording never fails the operation: a
/// failure to record is a warning.
pub(crate) struct Recording {
    inflight: Option<InFlight>,
    operation: &'static str,
}

impl Recording {
    pub(crate) fn start(protocol: &str, operation: &'static str, common: &Common) -> Recording {
        let inflight = if common.dry_run {
            None
        } else {
            match MetricsDir::new(common.metrics_dir()).start(protocol, operation) {
                Ok(r) => Some(r),
                Err(MetricsError::NoDirectory(dir)) => {
                    tracing::debug!(dir = %dir.display(), "no metrics directory: not recording");
                    None
                }
                Err(e) => {
                    tracing::warn!("metrics not recorded: {e}");
                    None
                }
            }
        };
        take_detach_status();
        Recording {
            inflight,
            operation,
        }
    }

    /// Record how the operation ended and hand its result on.
    pub(crate) fn finish(self, result: Result<ExitCode>) -> Result<ExitCode> {
        if let Some(inflight) = self.inflight {
            let outcome = match (&result, self.operation) {
                (Err(_), _) => "failed".to_string(),
                (Ok(_), "disconnect") => take_detach_status().unwrap_or_else(|| "clean".into()),
                (Ok(_), _) => "ok".to_string(),
            };
            if let Err(e) = inflight.finish(&outcome) {
                tracing::warn!("metrics not recorded: {e}");
            }
        }
        result
    }
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Directory of the connector's shared metrics (what node_exporter's textfile
    /// collector reads).
    #[arg(
        long,
        visible_alias = "textfile-dir",
        value_name = "DIR",
        default_value = moor_connector::metrics::DEFAULT_DIR,
        env = "MOOR_METRICS_DIR"
    )]
    metrics_dir: PathBuf,
    /// Only the connector's metrics (do not ask moord).
    #[arg(long)]
    no_moord: bool,
    /// Only moord's metrics (its `metrics` operation).
    #[arg(long, conflicts_with = "no_moord")]
    moord_only: bool,
}

/// moord's metrics text, through its `metrics` operation.
fn moord_metrics(socket: &Path, key_file: Option<&PathBuf>) -> Result<String> {
    let key = match key_file {
        Some(p) => {
            Some(read_key_file(p).with_context(|| format!("reading key file {}", p.display()))?)
        }
        None => None,
    };
    let mut c = Client::connect(socket, key.as_ref().map(|k| k.as_slice()))?;
    let r = c.call("metrics", Value::Object(Default::default()))?;
    match r.get("text").and_then(Value::as_str) {
        Some(t) => Ok(t.to_string()),
        None => bail!("moord's metrics reply has no text"),
    }
}

/// `moor metrics`: the connector's metrics (refreshed: operations abandoned by a
/// process that died are counted and no longer shown in flight), then moord's,
/// in the Prometheus text format. Exit 1 when a requested part could not be
/// printed (the other part still is; the reason is on stderr).
pub fn run(args: MetricsArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let mut out = String::new();
    let mut failed = false;
    if !args.moord_only {
        let dir = MetricsDir::new(&args.metrics_dir);
        match dir.refresh() {
            Ok(text) => out.push_str(&text),
            Err(e @ MetricsError::NoDirectory(_)) => {
                eprintln!("moor: no connector metrics: {e}");
                failed = true;
            }
            // Not ours to update (no write access): the file as last written.
            Err(e) => match std::fs::read_to_string(dir.prom_path()) {
                Ok(text) => {
                    eprintln!(
                        "moor: {e}; showing {} as last written",
                        dir.prom_path().display()
                    );
                    out.push_str(&text);
                }
                Err(_) => {
                    eprintln!("moor: connector metrics: {e}");
                    failed = true;
                }
            },
        }
    }
    if !args.no_moord {
        match moord_metrics(socket, key_file) {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                eprintln!("moor: moord metrics: {}", crate::chain(&e));
                failed = true;
            }
        }
    }
    print!("{out}");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
