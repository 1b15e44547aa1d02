//! [`Privileged`] that runs nothing and records the plan (`--dry-run`).

use std::fmt;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Privileged, exec_reply};

/// Records every operation (secrets redacted) and answers as if it succeeded:
/// commands exit 0 with no output, except record lookups (`iscsi.node_show`), which
/// answer "no such record" so the plan shows the full set-up.
#[derive(Debug, Default)]
pub struct DryRun {
    planned: Mutex<Vec<String>>,
}

impl DryRun {
    pub fn new() -> DryRun {
        DryRun::default()
    }

    /// The operations planned so far, in order, as `op args`.
    pub fn planned(&self) -> Vec<String> {
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Privileged for DryRun {
    fn call(
        &self,
        op: &'static str,
        _args: Value,
        shown: &dyn fmt::Debug,
        _timeout: std::time::Duration,
    ) -> Result<Value, super::PrivError> {
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{op} {shown:?}"));
        Ok(match op {
            "iscsi.node_show" => exec_reply(21, "", "iscsiadm: No records found\n"),
            "scsi.scan"
            | "scsi.delete"
            | "scsi.rescan"
            | "iscsi.node_secret"
            | "iscsi.discovery_secret"
            | "sysfs.write" => json!({}),
            _ => exec_reply(0, "", ""),
        })
    }

    fn dry_run(&self) -> bool {
        true
    }
}
