//! What the `moor` CLI tests share (`cli_connector.rs`, `cli_dasd.rs`): the binary,
//! a finished run, and the operation names of a dry-run plan.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{cargo_build, target_dir};

/// The `moor` binary (`MOOR_BIN`, else built once).
pub fn moor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MOOR_BIN") {
            return PathBuf::from(p);
        }
        cargo_build(&["-p", "moor-connector", "--bin", "moor"]);
        target_dir().join("debug/moor")
    })
}

/// A finished `moor` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The operation names of a dry-run plan (`{"operations": ["op args…", …]}`).
pub fn op_names(plan: &Value) -> Vec<String> {
    plan["operations"]
        .as_array()
        .unwrap_or_else(|| panic!("no operations in {plan}"))
        .iter()
        .map(|o| {
            o.as_str()
                .expect("operations are strings")
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
