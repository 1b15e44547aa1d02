//! `moor doctor` and `moor cleanup`: is this host set up the way moor needs it,
//! and what did earlier attaches (moor's, or anyone's) leave behind?
//!
//! Everything here reads (sysfs, /etc, /proc, /run/udev, moor's attachment
//! records); the one privileged question, "which processes have this device
//! open", goes to moord as `block.users` when moord is reachable. Removal is
//! [`cleanup`]'s job, and it goes through the transports' own detach paths, so a
//! cleanup re-verifies every identity exactly as a detach does.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attachments::Registry;
use crate::exec::Privileged;
use crate::host::HostPaths;

pub mod checks;
pub mod cleanup;
pub mod scan;

pub use checks::Probe;
pub use cleanup::{Action, ActionKind, Cleaner, Outcome, plan};
pub use scan::{Finding, Identity};

/// How one conformance check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but not the way moor recommends (the hint says what to change).
    Warn,
    /// moor's attaches of this kind fail or are unsafe until this is fixed.
    Fail,
    /// Not applicable on this host (the tool or module is not installed/loaded).
    Skip,
}

/// One conformance check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to change, when the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub leftovers: Vec<Finding>,
    /// Counts by check status and leftover kind.
    pub summary: BTreeMap<String, usize>,
}

impl Report {
    /// Nothing failed and nothing is left over (warnings are fine).
    pub fn healthy(&self) -> bool {
        self.leftovers.is_empty() && !self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

/// What the doctor reads and asks.
#[derive(Clone, Copy)]
pub struct Doctor<'a> {
    pub paths: &'a HostPaths,
    pub registry: &'a Registry,
    /// Versions of installed programs (unprivileged `--version` runs).
    pub probe: &'a dyn Probe,
    /// moord, when reachable: who has a device open (`block.users`).
    pub privileged: Option<&'a dyn Privileged>,
}

impl std::fmt::Debug for Doctor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doctor")
            .field("paths", self.paths)
            .field("registry", &self.registry.path())
            .field("privileged", &self.privileged.is_some())
            .finish_non_exhaustive()
    }
}

impl Doctor<'_> {
    /// Every check and every leftover.
    pub fn examine(&self) -> Report {
        let checks = checks::run(self.paths, self.probe, self.privileged);
        let leftovers = scan::leftovers(self.paths, self.registry, self.privileged);
        let mut summary = BTreeMap::new();
        for c in &checks {
            *summary
                .entry(format!("checks_{}", status_name(c.status)))
                .or_insert(0) += 1;
        }
        for l in &leftovers {
            *summary.entry(l.identity.kind().to_string()).or_insert(0) += 1;
        }
        Report {
            checks,
            leftovers,
            summary,
        }
    }
}

/// A root-only host file's text: read directly, or through moord's fixed-path
/// read operation `T` when this user may not read it. `Ok(None)` when absent.
pub(crate) fn read_host_file<T: moor_privhelper::ops::TypedOp + Default>(
    paths: &HostPaths,
    rel: &str,
    privileged: Option<&dyn Privileged>,
) -> Result<Option<String>, String> {
    match std::fs::read_to_string(paths.etc(rel)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let Some(p) = privileged else {
                return Err(format!(
                    "/etc/{rel} is not readable by this user ({e}) and moord does not answer"
                ));
            };
            let op = T::default();
            let reply = p
                .call(
                    T::NAME,
                    serde_json::json!({}),
                    &op,
                    std::time::Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
            let content = reply
                .get("content")
                .and_then(|c| c.as_str())
                .ok_or("moord's reply has no content")?;
            let bytes = moor_privhelper::ops::b64_decode(content).map_err(|e| e.to_string())?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(e) => Err(format!("/etc/{rel}: {e}")),
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "fail",
        Status::Skip => "skip",
    }
}

/// The report as text for a terminal: one line per check, then one block per
/// leftover.
pub fn render(report: &Report) -> String {
    let mut out = String::from("host checks:\n");
    for c in &report.checks {
        out.push_str(&format!(
            "  {:<5} {:<22} {}\n",
            status_name(c.status),
            c.name,
            c.detail
        ));
        if let Some(h) = &c.hint {
            out.push_str(&format!("        {:<22} hint: {h}\n", ""));
        }
    }
    if report.leftovers.is_empty() {
        out.push_str("leftovers: none\n");
    } else {
        out.push_str(&format!("leftovers: {}\n", report.leftovers.len()));
        for l in &report.leftovers {
            out.push_str(&format!("  {:<20} {}\n", l.identity.kind(), l.what));
            out.push_str(&format!("  {:<20} why: {}\n", "", l.reason));
            if !l.in_use.is_empty() {
                out.push_str(&format!("  {:<20} in use: {}\n", "", l.in_use.join("; ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
