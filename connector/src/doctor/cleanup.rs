//! `moor cleanup`: remove leftovers through the same identity-checked paths a
//! detach takes.
//!
//! Each [`Finding`] becomes one [`Action`]. Volumes are detached by the
//! transport's own `disconnect` with a connection_info and device_info rebuilt
//! from what the doctor found (so moord re-reads the WWID before every flush,
//! delete and map flush, and a session is logged out only when nothing else
//! uses it); idle sessions are logged out by the iSCSI connector under its target
//! locks; maps, links and wwids entries go through their guarded moord
//! operations. Anything in use, or whose users cannot be checked, is skipped.
//! `--plan` runs the same code against a dry-run seam and shows the typed
//! operations each action would run.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::scan::{Finding, Identity, block_users, users};
use crate::attachments::Registry;
use crate::exec::{DryRun, PrivError, Privileged, run_exec};
use crate::host::HostPaths;
use crate::host::udev::DeviceEvents;
use crate::lock::LockDir;
use crate::transport::fc::{self, FcConnector, FcProps};
use crate::transport::iscsi::{self, IscsiConnector, IscsiProps};
use crate::transport::nvmeof::{self, NvmeofConnector, NvmeofProps};
use moor_privhelper::ops::{BlockRemoveStaleLink, MultipathFlush, MultipathForgetWwid};

/// What one action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Detach a SCSI volume (iSCSI or FC) by its WWID.
    DetachScsiVolume,
    /// Detach an NVMe-oF namespace (and its controllers when nothing else uses them).
    DetachNamespace,
    /// Log out of an idle iSCSI session and delete its node record.
    LogoutSession,
    /// Flush a multipath map without paths.
    FlushMap,
    /// Remove a dangling by-id link.
    RemoveLink,
    /// Forget a WWID in /etc/multipath/wwids.
    ForgetWwid,
    /// Remove a stale attachment record.
    RemoveRecord,
    /// Reported only: a person has to decide.
    Manual,
}

/// One step of a cleanup plan.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub id: usize,
    pub action: ActionKind,
    pub what: String,
    /// Why the action will not run (in use, unverifiable, manual).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    pub finding: Finding,
}

/// What applying (or previewing) an action did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: usize,
    pub action: ActionKind,
    pub what: String,
    /// `done`, `planned`, `skipped`, `incomplete` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `--plan`: the typed operations the action would run, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// The transport's detach outcome (removed, logged out, leftovers).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// The actions for `findings`, volumes first (their detach also logs out their
/// sessions), then sessions, maps, links, wwids entries and records.
pub fn plan(findings: &[Finding]) -> Vec<Action> {
    let mut actions: Vec<Action> = findings
        .iter()
        .map(|f| {
            let (action, skip) = decide(f);
            Action {
                id: 0,
                action,
                what: f.what.clone(),
                skip,
                finding: f.clone(),
            }
        })
        .collect();
    actions.sort_by_key(|a| order(a.action));
    for (i, a) in actions.iter_mut().enumerate() {
        a.id = i + 1;
    }
    actions
}

fn order(k: ActionKind) -> u8 {
    match k {
        ActionKind::DetachScsiVolume => 0,
        ActionKind::DetachNamespace => 1,
        ActionKind::LogoutSession => 2,
        ActionKind::FlushMap => 3,
        ActionKind::RemoveLink => 4,
        ActionKind::ForgetWwid => 5,
        ActionKind::RemoveRecord => 6,
        ActionKind::Manual => 7,
    }
}

fn in_use_skip(f: &Finding) -> Option<String> {
    if !f.in_use.is_empty() {
        Some(format!("in use: {}", f.in_use.join("; ")))
    } else if f.users_unknown {
        Some("cannot check which processes have it open (moord did not answer block.users)".into())
    } else {
        None
    }
}

fn decide(f: &Finding) -> (ActionKind, Option<String>) {
    match &f.identity {
        Identity::UnclaimedScsiVolume { wwid, .. } if wwid.is_empty() => (
            ActionKind::Manual,
            Some("the disk has no WWID: moor cannot re-verify it and never removes it".into()),
        ),
        Identity::UnclaimedScsiVolume { .. } => (ActionKind::DetachScsiVolume, in_use_skip(f)),
        Identity::UnclaimedNamespace {
            uuid, nguid, nsid, ..
        } => {
            if uuid.is_none() && nguid.is_none() && nsid.is_none() {
                (
                    ActionKind::Manual,
                    Some("the namespace reports no identifier moor can re-verify".into()),
                )
            } else {
                (ActionKind::DetachNamespace, in_use_skip(f))
            }
        }
        Identity::IdleSession { portal: None, .. } => (
            ActionKind::Manual,
            Some("the session's portal address is unknown (connection down)".into()),
        ),
        Identity::IdleSession { .. } => (ActionKind::LogoutSession, None),
        Identity::PathlessMap { .. } => (ActionKind::FlushMap, in_use_skip(f)),
        Identity::StaleLink { dangling: true, .. } => (ActionKind::RemoveLink, None),
        Identity::StaleLink { target, .. } => (
            ActionKind::Manual,
            Some(format!(
                "points to an existing device: `udevadm trigger --action=change /dev/{target}` lets udev rewrite it"
            )),
        ),
        Identity::StaleWwid { .. } => (ActionKind::ForgetWwid, None),
        Identity::StaleRecord { .. } => (ActionKind::RemoveRecord, None),
    }
}

/// Runs actions.
pub struct Cleaner<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub locks: LockDir,
    pub registry: Registry,
    /// Deadline of each action.
    pub timeout: Duration,
}

impl std::fmt::Debug for Cleaner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleaner")
            .field("paths", &self.paths)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a step of an action returned: the outcome's JSON and whether anything
/// is left.
type StepResult = Result<(Value, bool), String>;

impl Cleaner<'_> {
    /// Apply `a` (skipped ones are reported as such). Devices are asked about
    /// their users again right before removal.
    pub fn apply(&self, a: &Action) -> Outcome {
        self.run(a, self.privileged, false)
    }

    /// What `a` would run: the same code against a dry-run seam.
    pub fn preview(&self, a: &Action) -> Outcome {
        let dry = DryRun::new();
        let mut o = self.run(a, &dry, true);
        o.operations = dry.planned();
        o
    }

    fn run(&self, a: &Action, p: &dyn Privileged, dry: bool) -> Outcome {
        let mut o = Outcome {
            id: a.id,
            action: a.action,
            what: a.what.clone(),
            status: "skipped",
            reason: a.skip.clone(),
            operations: Vec::new(),
            detail: Value::Null,
        };
        if a.skip.is_some() || a.action == ActionKind::Manual {
            return o;
        }
        if !dry && let Some(busy) = self.busy_now(&a.finding) {
            o.reason = Some(busy);
            return o;
        }
        let r = match &a.finding.identity {
            Identity::UnclaimedScsiVolume {
                protocol,
                wwid,
                paths,
                map,
            } => self.detach_scsi(p, protocol, wwid, paths, map.as_ref()),
            Identity::UnclaimedNamespace { .. } => self.detach_namespace(p, &a.finding.identity),
            Identity::IdleSession {
                target,
                portal: Some(portal),
                ..
            } => self.logout(p, target, portal),
            Identity::PathlessMap { device, name, wwid } => self.exec_step(
                p,
                &MultipathFlush {
                    device: device.clone(),
                    map: name.clone(),
                    expected_wwid: wwid.clone(),
                },
            ),
            Identity::StaleLink { link, target, .. } => self.exec_step(
                p,
                &BlockRemoveStaleLink {
                    link: link.clone(),
                    device: target.clone(),
                },
            ),
            Identity::StaleWwid { wwid } => {
                self.exec_step(p, &MultipathForgetWwid { wwid: wwid.clone() })
            }
            Identity::StaleRecord { device, .. } => self.remove_record(device, dry),
            Identity::IdleSession { portal: None, .. } => Err("portal unknown".into()),
        };
        match r {
            Ok((detail, left)) => {
                o.status = match (dry, left) {
                    (true, _) => "planned",
                    (false, false) => "done",
                    (false, true) => "incomplete",
                };
                o.reason = None;
                o.detail = detail;
            }
            Err(e) => {
                o.status = "failed";
                o.reason = Some(e);
            }
        }
        o
    }

    /// In use now (mounted, held, open), checked again right before removal.
    fn busy_now(&self, f: &Finding) -> Option<String> {
        let devices: Vec<String> = match &f.identity {
            Identity::UnclaimedScsiVolume { paths, map, .. } => map
                .iter()
                .map(|(dm, _)| dm.clone())
                .chain(paths.iter().map(|p| p.device.clone()))
                .collect(),
            Identity::UnclaimedNamespace { device, .. } | Identity::PathlessMap { device, .. } => {
                vec![device.clone()]
            }
            _ => return None,
        };
        for d in devices {
            // A device already gone has no users (the detach reports it).
            if !self.paths.sys(&format!("block/{d}")).exists() {
                continue;
            }
            match block_users(self.privileged, &d).map(|p| users(&self.paths, &d, p)) {
                Ok(u) if u.is_empty() => {}
                Ok(u) => return Some(format!("/dev/{d} is open by {}", u.join(", "))),
                Err(e) => return Some(format!("cannot check who has /dev/{d} open: {e}")),
            }
        }
        None
    }

    /// The iSCSI connector on this host, through `p`.
    fn iscsi<'p>(&self, p: &'p dyn Privileged) -> IscsiConnector<'p>
    where
        Self: 'p,
    {
        IscsiConnector {
            paths: self.paths.clone(),
            privileged: p,
            events: self.events,
            locks: self.locks.clone(),
            registry: self.registry.clone(),
            options: iscsi::Options {
                timeout: self.timeout,
                ..iscsi::Options::default()
            },
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn exec_step<T: moor_privhelper::ops::TypedOp>(
        &self,
        p: &dyn Privileged,
        op: &T,
    ) -> StepResult {
        match run_exec(p, op, self.deadline()) {
            Ok(out) if out.success() || p.dry_run() => Ok((Value::Null, false)),
            Ok(out) => Err(format!("{}: {}", T::NAME, out.summary())),
            Err(e @ PrivError::IdentityMismatch { .. }) => Err(format!(
                "{e} (it changed since the doctor looked: left alone)"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn remove_record(&self, device: &str, dry: bool) -> StepResult {
        let Some(rec) = self.registry.get(device) else {
            return Ok((Value::Null, false));
        };
        if super::scan::record_is_current(&self.paths, &rec) {
            return Err(format!(
                "/dev/{device} is the recorded device again: the record is not stale"
            ));
        }
        if !dry {
            self.registry
                .remove(device)
                .map_err(|e| format!("removing the record: {e}"))?;
        }
        Ok((Value::Null, false))
    }

    fn detach_scsi(
        &self,
        p: &dyn Privileged,
        protocol: &str,
        wwid: &str,
        paths: &[super::scan::ScsiPath],
        map: Option<&(String, String)>,
    ) -> StepResult {
        let path = match (map, paths.first()) {
            (Some((dm, _)), _) => format!("/dev/{dm}"),
            (None, Some(first)) => format!("/dev/{}", first.device),
            (None, None) => return Err("no device".into()),
        };
        let devices: Vec<String> = paths
            .iter()
            .map(|p| format!("{} {}", p.device, p.hctl))
            .collect();
        let info = json!({
            "type": "block",
            "path": path,
            "scsi_wwn": wwid,
            "devices": devices,
        });
        let bad = |e: serde_json::Error| format!("rebuilding device_info: {e}");
        match protocol {
            "iscsi" => {
                let props = iscsi_props(paths).map_err(|e| e.to_string())?;
                let c = self.iscsi(p);
                let info: iscsi::DeviceInfo = serde_json::from_value(info).map_err(bad)?;
                let out = c
                    .disconnect(&props, &info, false, true)
                    .map_err(|e| e.to_string())?;
                Ok((json(&out), !out.leftovers.is_empty()))
            }
            "fibre_channel" => {
                let props = fc_props(paths).map_err(|e| e.to_string())?;
                let c = FcConnector {
                    paths: self.paths.clone(),
                    privileged: p,
                    events: self.events,
                    locks: self.locks.clone(),
                    registry: self.registry.clone(),
                    options: fc::Options {
                        timeout: self.timeout,
                        multipath: paths.len() > 1,
                    },
                };
                let info: fc::DeviceInfo = serde_json::from_value(info).map_err(bad)?;
                let out = c
                    .disconnect(&props, &info, false, true)
                    .map_err(|e| e.to_string())?;
                Ok((json(&out), !out.leftovers.is_empty()))
            }
            other => Err(format!("unknown protocol {other}")),
        }
    }

    fn detach_namespace(&self, p: &dyn Privileged, identity: &Identity) -> StepResult {
        let Identity::UnclaimedNamespace {
            device,
            subsysnqn,
            uuid,
            nguid,
            nsid,
            wwid,
            paths,
        } = identity
        else {
            return Err("not a namespace".into());
        };
        let portals: Vec<Value> = paths
            .iter()
            .map(|p| json!([p.traddr, p.trsvcid, p.transport]))
            .collect();
        let mut props = json!({"target_nqn": subsysnqn, "portals": portals});
        // The strongest identifier the namespace has; detach re-matches on it.
        if let Some(u) = uuid {
            props["vol_uuid"] = json!(u);
        } else if let Some(g) = nguid {
            props["volume_nguid"] = json!(g);
        } else if let Some(n) = nsid {
            props["ns_id"] = json!(n);
        }
        let props = NvmeofProps::from_connection_info(&props).map_err(|e| e.to_string())?;
        let info = json!({
            "type": "block",
            "path": format!("/dev/{device}"),
            "subsysnqn": subsysnqn,
            "uuid": uuid,
            "nguid": nguid,
            "nsid": nsid,
            "wwid": wwid,
            "controllers": paths.iter().map(|p| p.controller.clone()).collect::<Vec<_>>(),
            "multipath": paths.len() > 1,
        });
        let info: nvmeof::DeviceInfo =
            serde_json::from_value(info).map_err(|e| format!("rebuilding device_info: {e}"))?;
        let c = NvmeofConnector {
            paths: self.paths.clone(),
            privileged: p,
            events: self.events,
            locks: self.locks.clone(),
            registry: self.registry.clone(),
            options: nvmeof::Options {
                timeout: self.timeout,
                multipath: paths.len() > 1,
            },
        };
        let out = c
            .disconnect(&props, &info, false, true)
            .map_err(|e| e.to_string())?;
        Ok((json(&out), !out.leftovers.is_empty()))
    }

    fn logout(&self, p: &dyn Privileged, target: &str, portal: &str) -> StepResult {
        let props = IscsiProps::from_connection_info(&json!({
            "target_iqn": target,
            "target_portal": portal,
            "target_lun": 0,
        }))
        .map_err(|e| e.to_string())?;
        let c = self.iscsi(p);
        let out = c.logout_idle(&props).map_err(|e| e.to_string())?;
        let left = !out.leftovers.is_empty() || !out.kept_sessions.is_empty();
        Ok((json(&out), left))
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A connection_info listing every path of the volume (os-brick's multipath
/// keys), so the detach considers every session for logout.
fn iscsi_props(paths: &[super::scan::ScsiPath]) -> Result<IscsiProps, iscsi::PropsError> {
    let first = &paths[0];
    IscsiProps::from_connection_info(&json!({
        "target_iqn": first.target,
        "target_portal": first.portal,
        "target_lun": first.lun,
        "target_iqns": paths.iter().map(|p| p.target.clone()).collect::<Vec<_>>(),
        "target_portals": paths.iter().map(|p| p.portal.clone()).collect::<Vec<_>>(),
        "target_luns": paths.iter().map(|p| p.lun).collect::<Vec<_>>(),
    }))
}

fn fc_props(paths: &[super::scan::ScsiPath]) -> Result<FcProps, fc::PropsError> {
    let mut wwpns: Vec<String> = paths.iter().map(|p| p.target.clone()).collect();
    wwpns.sort();
    wwpns.dedup();
    FcProps::from_connection_info(&json!({
        "target_wwn": wwpns,
        "target_lun": paths[0].lun,
    }))
}
