//! The `Privileged` seam: every step that needs root goes through one of these as a
//! typed moord operation (architecture.md, "The connector decides; the daemon
//! executes"). Three implementations: [`Daemon`] (moord over its socket), [`DryRun`]
//! (records the plan, runs nothing) and, for tests, [`Scripted`].

use std::fmt;
use std::time::{Duration, Instant};

use moor_privhelper::ops::TypedOp;
use moor_privhelper::protocol::ExecResult;
use serde_json::Value;

mod daemon;
mod dryrun;
mod scripted;

pub use daemon::Daemon;
pub use dryrun::DryRun;
pub use scripted::Scripted;

/// Why a privileged step did not happen (or failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivError {
    #[error("cannot reach moord at {socket}: {message}")]
    Unavailable { socket: String, message: String },
    #[error("{op}: moord refused ({code}): {message}")]
    Refused {
        op: &'static str,
        code: String,
        message: String,
    },
    #[error("{op}: device identity check failed: {message}")]
    IdentityMismatch { op: &'static str, message: String },
    #[error("{op}: {message}")]
    Failed { op: &'static str, message: String },
}

/// Runs typed operations as root.
pub trait Privileged: Send + Sync {
    /// Run operation `op` with its JSON arguments within `timeout`; `shown` is the
    /// operation with secrets redacted, for logs and plans. Returns moord's result
    /// object.
    fn call(
        &self,
        op: &'static str,
        args: Value,
        shown: &dyn fmt::Debug,
        timeout: Duration,
    ) -> Result<Value, PrivError>;

    /// True when nothing is executed (plans only).
    fn dry_run(&self) -> bool {
        false
    }
}

/// The output of a command a typed operation ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when a signal ended the command.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// A one-line summary for errors: exit status and the first stderr line.
    pub fn summary(&self) -> String {
        let status = match self.exit_code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".into(),
        };
        match self.stderr.lines().find(|l| !l.trim().is_empty()) {
            Some(l) => format!("{status}: {}", l.trim()),
            None => status,
        }
    }
}

fn encode<T: TypedOp>(op: &T) -> Result<Value, PrivError> {
    serde_json::to_value(op).map_err(|e| PrivError::Failed {
        op: T::NAME,
        message: format!("cannot encode arguments: {e}"),
    })
}

/// The time left until `deadline`, or an error naming the op that cannot start.
fn remaining(op: &'static str, deadline: Instant) -> Result<Duration, PrivError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(PrivError::Failed {
            op,
            message: "the operation's deadline passed before this step".into(),
        });
    }
    Ok(left)
}

/// Operations whose command can run for long (minutes: a DASD format, a map
/// flush whose multipath retries, a login to an unreachable portal): while moord
/// runs one, its progress (elapsed time against the deadline) is reported
/// ([`crate::progress::during`]).
pub const LONG_OPS: &[&str] = &[
    "block.flush",
    "dasd.format",
    "dasd.offline",
    "dasd.online",
    "dasd.safe_offline",
    "iscsi.discover",
    "iscsi.discovery_run",
    "iscsi.login",
    "iscsi.logout",
    "luks.add_key",
    "luks.format",
    "luks.open",
    "md.assemble",
    "md.create",
    "md.grow",
    "md.stop",
    "multipath.flush",
    "nvme.connect",
];

/// `p.call`, with progress reports for a [`LONG_OPS`] operation that is run.
fn call<T: TypedOp>(p: &dyn Privileged, op: &T, deadline: Instant) -> Result<Value, PrivError> {
    let timeout = remaining(T::NAME, deadline)?;
    let args = encode(op)?;
    if p.dry_run() || !LONG_OPS.contains(&T::NAME) {
        return p.call(T::NAME, args, op, timeout);
    }
    crate::progress::during(format!("{} through moord", T::NAME), deadline, || {
        p.call(T::NAME, args, op, timeout)
    })
}

/// Run a typed operation that writes or checks (result object ignored), within
/// `deadline`.
pub fn run<T: TypedOp>(p: &dyn Privileged, op: &T, deadline: Instant) -> Result<(), PrivError> {
    tracing::debug!(op = T::NAME, args = ?op, "privileged");
    call(p, op, deadline).map(|_| ())
}

/// Run a typed operation that executes a command and return its output. A non-zero
/// exit is not an error here: callers decide which exit codes they accept.
pub fn run_exec<T: TypedOp>(
    p: &dyn Privileged,
    op: &T,
    deadline: Instant,
) -> Result<ExecOutput, PrivError> {
    tracing::debug!(op = T::NAME, args = ?op, "privileged");
    let v = call(p, op, deadline)?;
    let r: ExecResult = serde_json::from_value(v).map_err(|e| PrivError::Failed {
        op: T::NAME,
        message: format!("unexpected reply: {e}"),
    })?;
    let (out, err) = moor_privhelper::client::decoded_output(&r);
    Ok(ExecOutput {
        exit_code: r.exit_code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

/// An [`ExecResult`] as a JSON value (for fakes and dry runs).
pub fn exec_reply(exit_code: i32, stdout: &str, stderr: &str) -> Value {
    serde_json::to_value(ExecResult {
        exit_code: Some(exit_code),
        signal: None,
        stdout: moor_privhelper::ops::b64_encode(stdout.as_bytes()),
        stderr: moor_privhelper::ops::b64_encode(stderr.as_bytes()),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 0,
        filter: String::new(),
    })
    .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_ops_are_operations() {
        for op in super::LONG_OPS {
            assert!(
                moor_privhelper::ops::OPS.iter().any(|e| e.name == *op),
                "{op} is not a moord operation"
            );
        }
    }
}
