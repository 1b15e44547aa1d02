//! [`Privileged`] that runs nothing and records the plan (`--dry-run`).

use std::fmt;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Privileged, exec_reply};

/// Records every operation (secrets redacted) and answers as if it succeeded:
/// commands exit 0 with no output, except record lookups (`iscsi.node_show`,
/// `iscsi.node_configure` before the plan created the record), which answer "no
/// such record" so the plan shows the full set-up.
#[derive(Debug, Default)]
pub struct DryRun {
    planned: Mutex<Vec<String>>,
    created: Mutex<Vec<(Option<Value>, Option<Value>)>>,
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
        args: Value,
        shown: &dyn fmt::Debug,
        _timeout: std::time::Duration,
    ) -> Result<Value, super::PrivError> {
        // Node records this plan creates, by (iqn, portal).
        let target = |a: &Value| (a.get("iqn").cloned(), a.get("portal").cloned());
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if op == "iscsi.node_new" {
            created.push(target(&args));
        }
        let created = created.contains(&target(&args));
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{op} {shown:?}"));
        Ok(match op {
            "iscsi.node_show" => exec_reply(21, "", "iscsiadm: No records found\n"),
            // No record until the plan creates one, so the plan shows the set-up.
            "iscsi.node_configure" if !created => {
                return Err(super::PrivError::Refused {
                    op,
                    code: "not_found".into(),
                    message: "dry run: no node record yet".into(),
                });
            }
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
