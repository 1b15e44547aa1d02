//! Typed operations. Each operation is a struct of validated arguments and a function
//! that plans what root must do for it: run an argv, read a file, or write a value to
//! a kernel attribute. The daemon checks every plan against the filters before it
//! runs it. Adding an operation is one struct + one `plan` + one line in [`OPS`].

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What root must do for one operation.
#[derive(Debug)]
pub enum Plan {
    /// Answer without doing anything.
    Ping,
    /// Run `argv` (argv[0] as the filters expect it; moord resolves the executable).
    Exec(ExecPlan),
    /// Read a file (allowed by a ReadFileFilter for `cat PATH`).
    ReadFile { path: String },
    /// Write `value` to the existing file `path` (allowed by a WriteFileFilter).
    WriteFile { path: String, value: String },
}

#[derive(Debug)]
pub struct ExecPlan {
    pub argv: Vec<String>,
    /// Bytes for the child's stdin (not secret).
    pub stdin: Option<Vec<u8>>,
    /// Secret bytes for the child's stdin; never logged, zeroized after use.
    pub secret_stdin: Option<Secret>,
    /// Stream stdin/stdout/stderr as data frames instead of buffering.
    pub stream: bool,
    pub timeout_ms: Option<u64>,
}

/// Secret bytes: zeroized on drop, redacted in Debug.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// Why an operation's arguments are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("unknown operation {0:?}")]
    Unknown(String),
    #[error("invalid arguments for {op}: {message}")]
    BadArgs { op: &'static str, message: String },
}

fn bad(op: &'static str, message: impl Into<String>) -> OpError {
    OpError::BadArgs {
        op,
        message: message.into(),
    }
}

/// `ping`: no arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingArgs {}

/// `exec`: rootwrap-daemon compatibility. Only for callers whose policy allows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    pub argv: Vec<String>,
    /// Standard input, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Secret standard input (UTF-8), written to the child's stdin and never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_stdin: Option<Zeroizing<String>>,
    /// Stream stdin/stdout/stderr through data frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Deadline in milliseconds (capped by the daemon's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `file.read`: read a file that a ReadFileFilter allows (`cat PATH`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReadArgs {
    pub path: String,
}

/// `sysfs.write`: write a value to a kernel attribute under /sys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysfsWriteArgs {
    pub path: String,
    pub value: String,
}

/// Absolute, no `.`/`..`/empty components, no NUL.
pub fn is_canonical_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 4096
        && !p.contains('\0')
        && (p == "/"
            || p[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."))
}

fn plan_ping(_: PingArgs) -> Result<Plan, OpError> {
    Ok(Plan::Ping)
}

fn plan_exec(a: ExecArgs) -> Result<Plan, OpError> {
    const OP: &str = "exec";
    if a.argv.is_empty() {
        return Err(bad(OP, "argv is empty"));
    }
    if a.argv.iter().any(|s| s.contains('\0')) {
        return Err(bad(OP, "argv contains a NUL byte"));
    }
    if a.stream && (a.stdin.is_some() || a.secret_stdin.is_some()) {
        return Err(bad(
            OP,
            "a streamed request sends stdin as data frames, not in `stdin`",
        ));
    }
    let stdin = match &a.stdin {
        Some(b) => Some(b64_decode(b).map_err(|e| bad(OP, format!("stdin is not base64: {e}")))?),
        None => None,
    };
    let secret_stdin = a.secret_stdin.map(|s| Secret::new(s.as_bytes().to_vec()));
    Ok(Plan::Exec(ExecPlan {
        argv: a.argv,
        stdin,
        secret_stdin,
        stream: a.stream,
        timeout_ms: a.timeout_ms,
    }))
}

fn plan_file_read(a: FileReadArgs) -> Result<Plan, OpError> {
    if !is_canonical_path(&a.path) {
        return Err(bad(
            "file.read",
            format!("path {:?} is not absolute and canonical", a.path),
        ));
    }
    Ok(Plan::ReadFile { path: a.path })
}

fn plan_sysfs_write(a: SysfsWriteArgs) -> Result<Plan, OpError> {
    const OP: &str = "sysfs.write";
    if !a.path.starts_with("/sys/") || !is_canonical_path(&a.path) {
        return Err(bad(
            OP,
            format!("path {:?} is not a canonical path under /sys", a.path),
        ));
    }
    if a.value.len() > 4096 || a.value.contains('\0') {
        return Err(bad(OP, "value is longer than 4096 bytes or contains NUL"));
    }
    Ok(Plan::WriteFile {
        path: a.path,
        value: a.value,
    })
}

/// Deserialize `args` for an op and plan it.
fn typed<A: for<'de> Deserialize<'de>>(
    op: &'static str,
    args: &str,
    f: fn(A) -> Result<Plan, OpError>,
) -> Result<Plan, OpError> {
    let args = if args.trim() == "null" { "{}" } else { args };
    let a: A = serde_json::from_str(args).map_err(|e| bad(op, e.to_string()))?;
    f(a)
}

/// An entry of the operation table.
pub struct OpEntry {
    pub name: &'static str,
    /// Plan from the raw JSON text of `args`.
    pub plan: fn(&str) -> Result<Plan, OpError>,
}

impl std::fmt::Debug for OpEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every operation moord knows.
pub const OPS: &[OpEntry] = &[
    OpEntry {
        name: "ping",
        plan: |a| typed("ping", a, plan_ping),
    },
    OpEntry {
        name: "exec",
        plan: |a| typed("exec", a, plan_exec),
    },
    OpEntry {
        name: "file.read",
        plan: |a| typed("file.read", a, plan_file_read),
    },
    OpEntry {
        name: "sysfs.write",
        plan: |a| typed("sysfs.write", a, plan_sysfs_write),
    },
];

/// Plan operation `op` from its raw JSON arguments.
pub fn plan(op: &str, args: &str) -> Result<Plan, OpError> {
    match OPS.iter().find(|e| e.name == op) {
        Some(e) => (e.plan)(args),
        None => Err(OpError::Unknown(op.to_string())),
    }
}

pub fn b64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_validate_arguments() {
        assert!(matches!(plan("ping", "null"), Ok(Plan::Ping)));
        assert!(matches!(plan("nope", "{}"), Err(OpError::Unknown(_))));
        assert!(matches!(
            plan("exec", r#"{"argv":[]}"#),
            Err(OpError::BadArgs { .. })
        ));
        assert!(matches!(
            plan("exec", r#"{"argv":["a"],"shell":true}"#),
            Err(OpError::BadArgs { .. })
        ));
        let Ok(Plan::Exec(e)) = plan(
            "exec",
            r#"{"argv":["cat"],"stdin":"aGk=","secret_stdin":"pw"}"#,
        ) else {
            panic!("exec plan")
        };
        assert_eq!(e.stdin.as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            format!("{:?}", e.secret_stdin),
            "Some(Secret(<2 bytes redacted>))"
        );
        assert!(plan("sysfs.write", r#"{"path":"/sys/a/../b","value":"1"}"#).is_err());
        assert!(plan("sysfs.write", r#"{"path":"/etc/passwd","value":"1"}"#).is_err());
        assert!(matches!(
            plan(
                "sysfs.write",
                r#"{"path":"/sys/block/sda/device/delete","value":"1"}"#
            ),
            Ok(Plan::WriteFile { .. })
        ));
        assert!(plan("file.read", r#"{"path":"etc/x"}"#).is_err());
    }

    #[test]
    fn canonical_paths() {
        assert!(is_canonical_path("/sys/block/sda"));
        assert!(is_canonical_path("/"));
        for p in ["sys", "/sys//x", "/sys/./x", "/sys/../x", "/sys/x/"] {
            assert!(!is_canonical_path(p), "{p}");
        }
    }
}
