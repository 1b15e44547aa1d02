//! Replicated NVMe-oF volumes (os-brick's `volume_replicas`): every replica is a
//! single-target attach (a leg), and the legs form an MD RAID1 array
//! `/dev/md/<alias>`.
//!
//! * A new array is created only when every leg is attached and none carries MD
//!   metadata (moord refuses `md.create` on a leg with any recognisable header).
//! * Legs that carry MD metadata (udev's blkid: `linux_raid_member`) are
//!   assembled, degraded when a leg is missing (`--run`).
//! * An array that is already running as `/dev/md/<alias>` over the legs is
//!   reused; a leg held by another array is refused.
//! * Detach stops the array (moord checks it is `/dev/md/<alias>` over the
//!   recorded legs), then detaches each leg without a flush of its own.
//! * Extend rescans every leg, then grows the array (`mdadm --grow --size=max`).

use std::time::{Duration, Instant};

use moor_privhelper::ops::{MdAssemble, MdCreate, MdGrow, MdLeg, MdStop};
use serde::{Deserialize, Serialize};

use super::connect::{DeviceInfo, NvmeofConnector, NvmeofError, subsystem_lock, volume_lock};
use super::detach::{DetachOutcome, Flush, check_recorded};
use super::hostid;
use super::props::{NvmeTarget, NvmeofProps, PropsError, Replication};
use crate::exec::{PrivError, run_exec};
use crate::host::scsi::block_size_bytes;
use crate::host::udev::{WaitError, udev_initialized, udev_property, wait_for};
use crate::host::{HostError, HostPaths, component};
use crate::lock::Mode;
use crate::transport::{Extended, Leftover};
use crate::types::MdName;

/// How long undoing a failed attach may take, even past the attach's deadline.
const CLEANUP_TIME: Duration = Duration::from_secs(30);

/// How long an extend waits for the array to take its new size.
const GROW_WAIT: Duration = Duration::from_secs(10);

/// A replicated volume's array, in its device_info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaidInfo {
    /// `alias`: the array is `/dev/md/<alias>`.
    pub alias: String,
    /// The array's kernel name at attach (`md127`).
    pub device: String,
    /// What the attach did: `created`, `assembled` or `reused`.
    pub how: String,
    /// Every replica that was attached (a leg), with its namespace identity.
    pub legs: Vec<DeviceInfo>,
    /// Replicas that could not be attached, and why (the array runs degraded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Legs attached (and detached with the volume) but not assembled into the
    /// array: blank namespaces next to legs with MD metadata, e.g. a replica the
    /// control plane replaced. moor does not rebuild onto them by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_in_array: Vec<String>,
}

/// `/dev/md/<alias>` → `mdN` (udev's link), if it exists.
fn md_of_alias(paths: &HostPaths, alias: &str) -> Result<Option<String>, HostError> {
    let link = paths.dev(&format!("md/{}", component(alias)?));
    match std::fs::read_link(&link) {
        Ok(target) => Ok(target
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_md(n))
            .map(String::from)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HostError::Resolve { path: link, source }),
    }
}

fn is_md(name: &str) -> bool {
    name.strip_prefix("md")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The MD array holding block device `leg` (`/sys/block/<leg>/holders/mdN`).
fn md_holder(paths: &HostPaths, leg: &str) -> Result<Option<String>, HostError> {
    let dir = paths.sys(&format!("block/{}/holders", component(leg)?));
    Ok(paths
        .list_prefixed(&dir, "md")?
        .into_iter()
        .find(|n| is_md(n)))
}

/// `array_state` of `mdN` (`clean`, `active`, `inactive`, …); `None` when gone.
fn md_state(paths: &HostPaths, md: &str) -> Result<Option<String>, HostError> {
    paths.read_attr(&paths.sys(&format!("block/{}/md/array_state", component(md)?)))
}

/// The array runs (is not being assembled or stopped).
fn md_running(state: Option<&str>) -> bool {
    matches!(
        state,
        Some("clean" | "active" | "active-idle" | "read-auto" | "write-pending" | "readonly")
    )
}

/// The block device name of a leg's device_info (`/dev/nvme0n1` → `nvme0n1`).
fn leg_block(info: &DeviceInfo) -> Result<String, NvmeofError> {
    info.path
        .strip_prefix("/dev/")
        .filter(|b| moor_types::is_block_device_name(b) && b.starts_with("nvme"))
        .map(String::from)
        .ok_or_else(|| NvmeofError::BadDeviceInfo(format!("leg path {:?}", info.path)))
}

fn md_legs(legs: &[DeviceInfo]) -> Result<Vec<MdLeg>, NvmeofError> {
    legs.iter()
        .map(|l| {
            Ok(MdLeg {
                device: leg_block(l)?,
                expected_wwid: l.wwid.clone().ok_or_else(|| {
                    NvmeofError::BadDeviceInfo(format!("leg {} has no wwid", l.path))
                })?,
            })
        })
        .collect()
}

/// The array of a replicated volume's device_info, and its validated alias.
fn raid_of(info: &DeviceInfo) -> Result<(&RaidInfo, MdName), NvmeofError> {
    let raid = info
        .raid
        .as_ref()
        .ok_or_else(|| NvmeofError::BadDeviceInfo("no `raid`".into()))?;
    let alias = raid
        .alias
        .parse()
        .map_err(|e| NvmeofError::BadDeviceInfo(format!("raid.alias: {e}")))?;
    Ok((raid, alias))
}

fn array_lock(alias: &str) -> String {
    format!("nvme-md-{alias}")
}

impl NvmeofConnector<'_> {
    /// Attach a replicated volume: every leg, then its array.
    pub(super) fn connect_replicated(
        &self,
        props: &NvmeofProps,
        deadline: Instant,
    ) -> Result<DeviceInfo, NvmeofError> {
        let rep = props.replication.as_ref().ok_or(PropsError::Missing {
            key: "volume_replicas".into(),
        })?;
        let _array = match &rep.alias {
            Some(a) => Some(
                self.locks
                    .lock(&array_lock(a.as_str()), Mode::Exclusive, deadline)?,
            ),
            None => None,
        };
        let identity = hostid::ensure_identity(&self.paths, self.privileged, deadline)?;
        let mut legs: Vec<(&NvmeTarget, DeviceInfo)> = Vec::new();
        let mut missing = Vec::new();
        let mut planned = 0;
        for (i, t) in props.targets.iter().enumerate() {
            let r = self
                .locks
                .lock(&volume_lock(t), Mode::Exclusive, deadline)
                .and_then(|v| {
                    let s = self
                        .locks
                        .lock(&subsystem_lock(&t.nqn), Mode::Exclusive, deadline)?;
                    Ok((v, s))
                })
                .map_err(NvmeofError::from)
                .and_then(|_held| self.connect_target(props, t, &identity, deadline));
            match r {
                Ok(info) => {
                    tracing::info!(replica = i, device = %info.path, "replica attached");
                    self.remember(props, t, &info);
                    legs.push((t, info));
                }
                Err(NvmeofError::DryRun(_)) => planned += 1,
                Err(e) => {
                    tracing::warn!(replica = i, subsystem = %t.nqn, "replica not attached: {e}");
                    missing.push(format!("volume_replicas[{i}] ({}): {e}", t.nqn));
                }
            }
        }
        if planned > 0 {
            return Err(NvmeofError::DryRun(
                "the MD array is made from the namespaces the connects create".into(),
            ));
        }
        let result = self.make_array(rep, &legs, &missing, deadline);
        if result.is_err() {
            self.undo_legs(&legs);
        }
        result
    }

    /// Creates, assembles or reuses the array over the attached `legs`.
    fn make_array(
        &self,
        rep: &Replication,
        legs: &[(&NvmeTarget, DeviceInfo)],
        missing: &[String],
        deadline: Instant,
    ) -> Result<DeviceInfo, NvmeofError> {
        if legs.is_empty() {
            return Err(NvmeofError::NoReplica {
                failures: missing.to_vec(),
            });
        }
        let mut blocks = Vec::new();
        let mut members = 0;
        let mut is_member = Vec::new();
        let mut held = Vec::new();
        for (_, info) in legs {
            let b = leg_block(info)?;
            let member = udev_property(&self.paths, &b, "ID_FS_TYPE")?.as_deref()
                == Some("linux_raid_member");
            members += usize::from(member);
            is_member.push(member);
            if let Some(md) = md_holder(&self.paths, &b)? {
                held.push((b.clone(), md));
            }
            blocks.push(b);
        }
        let infos: Vec<DeviceInfo> = legs.iter().map(|(_, i)| i.clone()).collect();
        let Some(alias) = &rep.alias else {
            // One replica without an alias (os-brick): the namespace itself,
            // unless it belongs to an array, which needs a name.
            if members > 0 || !held.is_empty() {
                return Err(NvmeofError::BadDeviceInfo(format!(
                    "/dev/{} carries MD metadata but the connection info has no `alias` to assemble it as",
                    blocks[0]
                )));
            }
            return Ok(infos[0].clone());
        };
        if rep.replica_count == 1 && members == 0 && held.is_empty() {
            tracing::info!(device = %infos[0].path, "one replica without MD metadata: used as it is");
            return Ok(infos[0].clone());
        }
        let ours = md_of_alias(&self.paths, alias.as_str())?;
        for (b, md) in &held {
            if ours.as_deref() != Some(md.as_str()) {
                return Err(NvmeofError::LegInUse {
                    leg: format!("/dev/{b}"),
                    array: md.clone(),
                    alias: alias.to_string(),
                });
            }
        }
        let legs_md = md_legs(&infos)?;
        // Assembling with a leg that has no superblock aborts mdadm: assemble the legs
        // that carry the array, leave a blank one out and say so.
        let (assemble_md, not_in_array): (Vec<MdLeg>, Vec<String>) = if members > 0 {
            let mut keep = Vec::new();
            let mut out = Vec::new();
            for ((leg, member), info) in legs_md.iter().zip(&is_member).zip(&infos) {
                if *member || held.iter().any(|(b, _)| *b == leg.device) {
                    keep.push(leg.clone());
                } else {
                    out.push(info.path.clone());
                }
            }
            (keep, out)
        } else {
            (legs_md.clone(), Vec::new())
        };
        if !not_in_array.is_empty() {
            tracing::warn!(
                legs = ?not_in_array,
                "replicas without MD metadata next to the array's legs: attached, not assembled \
                 (add them with mdadm --add once checked)"
            );
        }
        let how = match (&ours, held.is_empty()) {
            (Some(md), false) if md_running(md_state(&self.paths, md)?.as_deref()) => "reused",
            (Some(md), false) => {
                // Assembled incrementally by udev but not started (a leg missing):
                // stop it and assemble it with what is there.
                tracing::info!(array = %md, "stopping the array udev left unstarted");
                self.md_exec(
                    &MdStop {
                        device: md.clone(),
                        name: alias.clone(),
                        legs: legs_md.clone(),
                    },
                    deadline,
                )?;
                self.md_exec(
                    &MdAssemble {
                        name: alias.clone(),
                        legs: assemble_md.clone(),
                    },
                    deadline,
                )?;
                "assembled"
            }
            _ if members > 0 => {
                self.md_exec(
                    &MdAssemble {
                        name: alias.clone(),
                        legs: assemble_md.clone(),
                    },
                    deadline,
                )?;
                "assembled"
            }
            _ if legs.len() == rep.replica_count => {
                self.md_exec(
                    &MdCreate {
                        name: alias.clone(),
                        legs: legs_md.clone(),
                    },
                    deadline,
                )?;
                "created"
            }
            _ => {
                return Err(NvmeofError::NotAllReplicas {
                    attached: legs.len(),
                    count: rep.replica_count,
                    failures: missing.to_vec(),
                });
            }
        };
        let device = if self.privileged.dry_run() {
            String::new()
        } else {
            self.wait_array(alias, deadline)?
        };
        if !missing.is_empty() {
            tracing::warn!(array = %device, missing = ?missing, "the array runs degraded");
        }
        tracing::info!(array = %device, alias = %alias, how, "replicated volume attached");
        Ok(DeviceInfo {
            kind: "block".into(),
            path: format!("/dev/md/{alias}"),
            subsysnqn: String::new(),
            uuid: None,
            nguid: None,
            nsid: None,
            wwid: None,
            controllers: Vec::new(),
            multipath: false,
            raid: Some(RaidInfo {
                alias: alias.to_string(),
                device,
                how: how.into(),
                legs: infos,
                missing: missing.to_vec(),
                not_in_array,
            }),
        })
    }

    /// Runs an `md.*` operation; a non-zero exit is an error naming mdadm's output.
    fn md_exec<T: moor_privhelper::ops::TypedOp>(
        &self,
        op: &T,
        deadline: Instant,
    ) -> Result<(), NvmeofError> {
        let out = run_exec(self.privileged, op, deadline)?;
        if out.success() {
            Ok(())
        } else {
            Err(NvmeofError::Mdadm {
                op: T::NAME,
                message: out.summary(),
            })
        }
    }

    /// Waits until `/dev/md/<alias>` points at a running array udev is done with.
    fn wait_array(&self, alias: &MdName, deadline: Instant) -> Result<String, NvmeofError> {
        let mut watch = self.events.watch()?;
        let what = format!("/dev/md/{alias} to run");
        Ok(wait_for(&mut *watch, deadline, &what, || {
            let Some(md) = md_of_alias(&self.paths, alias.as_str())? else {
                return Ok(None);
            };
            let ready = md_running(md_state(&self.paths, &md)?.as_deref())
                && udev_initialized(&self.paths, &md)?;
            Ok(ready.then_some(md))
        })?)
    }

    /// Detaches the legs a failed replicated attach left (best effort, logged);
    /// a leg some array holds is left alone.
    fn undo_legs(&self, legs: &[(&NvmeTarget, DeviceInfo)]) {
        if self.privileged.dry_run() {
            return;
        }
        let deadline = Instant::now() + CLEANUP_TIME;
        for (t, info) in legs {
            let held = leg_block(info).ok().map(|b| md_holder(&self.paths, &b));
            if !matches!(held, Some(Ok(None))) {
                tracing::warn!(device = %info.path, "leg left attached: it is part of an array");
                continue;
            }
            let mut out = DetachOutcome::default();
            let r = check_recorded(t, info).and_then(|expected| {
                self.detach_target(
                    t,
                    &expected,
                    info.wwid.as_deref(),
                    Flush::Yes { force: false },
                    &mut out,
                    deadline,
                )
            });
            match r {
                Ok(()) => tracing::info!(device = %info.path, "leg detached (attach failed)"),
                Err(e) => tracing::warn!(device = %info.path, "leg not detached: {e}"),
            }
        }
    }

    /// The replica of `props` that `leg` was attached from.
    fn leg_target<'p>(props: &'p NvmeofProps, leg: &DeviceInfo) -> Option<&'p NvmeTarget> {
        props
            .targets
            .iter()
            .find(|t| t.nqn.as_str() == leg.subsysnqn)
    }

    /// Detach a replicated volume: stop its array, then detach every leg.
    pub(super) fn disconnect_replicated(
        &self,
        props: &NvmeofProps,
        info: &DeviceInfo,
        force: bool,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, NvmeofError> {
        let deadline = self.deadline();
        let (raid, alias) = raid_of(info)?;
        if let Some(a) = props.replication.as_ref().and_then(|r| r.alias.as_ref())
            && *a != alias
        {
            return Err(NvmeofError::BadDeviceInfo(format!(
                "device_info is for /dev/md/{alias}, the connection info for /dev/md/{a}"
            )));
        }
        // Every leg must be one of the connection info's replicas, checked before
        // anything changes.
        let mut legs = Vec::new();
        for leg in &raid.legs {
            let t = Self::leg_target(props, leg).ok_or_else(|| {
                NvmeofError::BadDeviceInfo(format!(
                    "leg {} ({}) is not one of the connection info's replicas",
                    leg.path, leg.subsysnqn
                ))
            })?;
            legs.push((t, leg, check_recorded(t, leg)?));
        }
        let _array = self
            .locks
            .lock(&array_lock(alias.as_str()), Mode::Exclusive, deadline)?;
        let mut out = DetachOutcome::default();
        let what = format!("/dev/md/{alias}");
        if let Some(md) = md_of_alias(&self.paths, alias.as_str())? {
            let stop = MdStop {
                device: md.clone(),
                name: alias.clone(),
                legs: md_legs(&raid.legs)?,
            };
            match run_exec(self.privileged, &stop, deadline) {
                Ok(o) if o.success() => {
                    if !self.privileged.dry_run() {
                        self.wait_array_gone(&alias, &md, &mut out, deadline)?;
                    }
                }
                Err(PrivError::IdentityMismatch { message, .. }) => {
                    out.leftovers.push(Leftover {
                        what,
                        reason: format!(
                            "not the recorded array over the recorded legs, not touched: {message}"
                        ),
                    });
                    out.finish();
                    return if ignore_errors {
                        Ok(out)
                    } else {
                        Err(NvmeofError::Incomplete(Box::new(out)))
                    };
                }
                r => {
                    let message = match r {
                        Ok(o) => o.summary(),
                        Err(e) => e.to_string(),
                    };
                    if !force {
                        return Err(NvmeofError::FlushFailed {
                            device: what,
                            message: format!("mdadm --stop: {message}"),
                        });
                    }
                    tracing::warn!(array = %md, "stopping the array failed, detaching its legs anyway (--force): {message}");
                    out.data_loss_risk.push(what.clone());
                }
            }
        } else {
            tracing::info!(alias = %alias, "the array is not running");
        }
        for (t, leg, expected) in legs {
            if let Err(e) = self.detach_target(
                t,
                &expected,
                leg.wwid.as_deref(),
                Flush::No,
                &mut out,
                deadline,
            ) {
                out.leftovers.push(Leftover {
                    what: leg.path.clone(),
                    reason: e.to_string(),
                });
            }
        }
        out.finish();
        tracing::info!(status = %out.status, removed = ?out.removed, disconnected = ?out.disconnected, "detached");
        if !out.leftovers.is_empty() && !ignore_errors {
            return Err(NvmeofError::Incomplete(Box::new(out)));
        }
        Ok(out)
    }

    /// Waits until the stopped array `md` and its `/dev/md/<alias>` link are gone.
    fn wait_array_gone(
        &self,
        alias: &MdName,
        md: &str,
        out: &mut DetachOutcome,
        deadline: Instant,
    ) -> Result<(), NvmeofError> {
        let mut watch = self.events.watch()?;
        let link = self.paths.dev(&format!("md/{alias}"));
        let r = wait_for(&mut *watch, deadline, &format!("{md} to go"), || {
            let running = md_running(md_state(&self.paths, md)?.as_deref());
            let linked = std::fs::symlink_metadata(&link).is_ok();
            Ok((!running && !linked).then_some(()))
        });
        match r {
            Ok(()) => {
                out.removed.push(format!("/dev/md/{alias}"));
                Ok(())
            }
            Err(e @ WaitError::Deadline { .. }) => {
                out.leftovers.push(Leftover {
                    what: format!("/dev/md/{alias} ({md})"),
                    reason: e.to_string(),
                });
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Extend a replicated volume: every leg, then the array.
    pub(super) fn extend_replicated(
        &self,
        props: &NvmeofProps,
        info: &DeviceInfo,
    ) -> Result<Extended, NvmeofError> {
        let deadline = self.deadline();
        let (raid, alias) = raid_of(info)?;
        let _array = self
            .locks
            .lock(&array_lock(alias.as_str()), Mode::Exclusive, deadline)?;
        let md = md_of_alias(&self.paths, alias.as_str())?
            .ok_or_else(|| NvmeofError::NotAttached(format!("/dev/md/{alias} does not exist")))?;
        let mut paths = Vec::new();
        for leg in &raid.legs {
            let Some(t) = Self::leg_target(props, leg) else {
                return Err(NvmeofError::BadDeviceInfo(format!(
                    "leg {} is not one of the connection info's replicas",
                    leg.path
                )));
            };
            let expected = check_recorded(t, leg)?;
            // A failed leg does not stop the array from growing over the others.
            match self.extend_target(t, &expected, deadline) {
                Ok(e) => paths.push((e.path, e.new_size)),
                Err(e) => tracing::warn!(leg = %leg.path, "leg not extended: {e}"),
            }
        }
        if paths.is_empty() {
            return Err(NvmeofError::NotAttached(format!(
                "no leg of /dev/md/{alias} could be rescanned"
            )));
        }
        let before = block_size_bytes(&self.paths, &md)?.unwrap_or(0);
        self.md_exec(
            &MdGrow {
                device: md.clone(),
                name: alias.clone(),
                legs: md_legs(&raid.legs)?,
            },
            deadline,
        )?;
        if !self.privileged.dry_run() {
            let mut watch = self.events.watch()?;
            let until = deadline.min(Instant::now() + GROW_WAIT);
            let r = wait_for(&mut *watch, until, &format!("{md} to grow"), || {
                Ok((block_size_bytes(&self.paths, &md)?.unwrap_or(0) != before).then_some(()))
            });
            match r {
                Ok(()) | Err(WaitError::Deadline { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let size = block_size_bytes(&self.paths, &md)?.unwrap_or(0);
        tracing::info!(array = %md, from = before, to = size, "replicated volume extended");
        Ok(Extended {
            new_size: size,
            path: format!("/dev/md/{alias}"),
            paths,
        })
    }

    /// A replicated volume's path: `/dev/md/<alias>` while the array exists.
    pub(super) fn replicated_paths(&self, props: &NvmeofProps) -> Result<Vec<String>, NvmeofError> {
        let Some(alias) = props.replication.as_ref().and_then(|r| r.alias.as_ref()) else {
            return Ok(Vec::new());
        };
        Ok(md_of_alias(&self.paths, alias.as_str())?
            .map(|_| vec![format!("/dev/md/{alias}")])
            .unwrap_or_default())
    }
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
