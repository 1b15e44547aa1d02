//! NVMe-oF detach, extend and volume paths of a single-target volume.
//!
//! Differences from os-brick (reference/os-brick.md §2.5, §7):
//! * the namespace is found again by the identifiers recorded at attach and
//!   compared with what the kernel shows now; a namespace that changed is never
//!   flushed, and its controller is never disconnected;
//! * a flush that cannot succeed (no live path under the `queue` policy would make
//!   it wait for `ctrl_loss_tmo`, possibly forever) is refused up front unless the
//!   caller accepts the data loss (`force`);
//! * moord re-reads a controller's subsystem, transport, address and host NQN
//!   right before deleting it (controller names are reused);
//! * detach waits until the kernel and udev have removed the devices and reports
//!   exactly what is left ([`DetachOutcome`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use moor_privhelper::ops::{BlockFlush, NvmeNsRescan};
use serde::{Deserialize, Serialize};

use super::connect::{
    DeviceInfo, NvmeofConnector, NvmeofError, conflict_error, disconnect_op, subsystem_lock,
    volume_lock,
};
use super::hostid;
use super::props::{NamespaceId, NvmeTarget, NvmeofProps, PropsError, Shape};
use super::sysfs::{self, Controller, CtrlState, Lookup, NamespaceIds, NsMatch};
use crate::exec::{PrivError, run, run_exec};
use crate::host::scsi::block_size_bytes;
use crate::host::udev::{WaitError, block_devnum, wait_for, wait_for_removal};
use crate::lock::Mode;
use crate::transport::{Extended, Leftover, detach_status, detach_summary};
use crate::types::{Nguid, Nqn, Nsid, NvmeController, NvmeUuid};

/// How long an extend waits for the kernel to pick up a new size after a rescan
/// (the rescan runs asynchronously in the kernel; os-brick polls 5 s).
const RESIZE_WAIT: Duration = Duration::from_secs(5);

/// The result of a detach (architecture invariant 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachOutcome {
    /// `clean`, `clean-with-data-loss` or `leftovers`.
    pub status: String,
    /// Block devices the kernel and udev removed (`/dev/nvme0n1`).
    pub removed: Vec<String>,
    /// Controllers disconnected (`nvme0 tcp:10.0.0.1:4420`).
    pub disconnected: Vec<String>,
    /// Controllers kept because they carry other namespaces. The volume's
    /// namespace stays visible through them until the target unmaps it.
    pub kept_controllers: Vec<Leftover>,
    /// Other namespaces of a disconnected controller that no attachment claimed
    /// (not recorded by moor, no holder, not mounted): gone with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unclaimed_removed: Vec<String>,
    /// Namespaces detached without a successful flush (`force`).
    pub data_loss_risk: Vec<String>,
    pub leftovers: Vec<Leftover>,
}

impl DetachOutcome {
    pub(super) fn finish(&mut self) {
        self.status = detach_status(&self.leftovers, &self.data_loss_risk).into();
    }

    pub fn summary(&self) -> String {
        detach_summary(&self.leftovers, &self.data_loss_risk)
    }
}

/// Whether a detach flushes the namespace first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// Flush; `force` goes on when the flush fails or cannot run (no live path).
    Yes { force: bool },
    /// No flush: a leg of an MD array that was stopped (which flushed it).
    No,
}

/// The identity recorded in `info` for target `t`: same subsystem, identifiers
/// that do not contradict the connection info's.
pub(super) fn check_recorded(
    t: &NvmeTarget,
    info: &DeviceInfo,
) -> Result<NamespaceId, NvmeofError> {
    let expected = recorded(info)?;
    if info.subsysnqn != t.nqn.as_str() {
        return Err(NvmeofError::BadDeviceInfo(format!(
            "device_info is for subsystem {}, the connection info for {}",
            info.subsysnqn, t.nqn
        )));
    }
    let as_found = NamespaceIds {
        uuid: expected.uuid,
        nguid: expected.nguid,
        nsid: expected.nsid,
        wwid: None,
    };
    if let NsMatch::Conflict(d) = sysfs::match_namespace(&t.namespace, &as_found) {
        let d: Vec<String> = d.iter().map(ToString::to_string).collect();
        return Err(NvmeofError::BadDeviceInfo(format!(
            "device_info and connection info name different namespaces: {}",
            d.join(", ")
        )));
    }
    Ok(expected)
}

/// The identity recorded at attach, as the expected namespace.
fn recorded(info: &DeviceInfo) -> Result<NamespaceId, NvmeofError> {
    let bad = |what: &str, v: &str| NvmeofError::BadDeviceInfo(format!("{what} {v:?} is invalid"));
    let id = NamespaceId {
        uuid: info
            .uuid
            .as_deref()
            .map(|u| u.parse::<NvmeUuid>().map_err(|_| bad("uuid", u)))
            .transpose()?,
        nguid: info
            .nguid
            .as_deref()
            .map(|g| g.parse::<Nguid>().map_err(|_| bad("nguid", g)))
            .transpose()?,
        nsid: info
            .nsid
            .map(|n| Nsid::new(n.into()).map_err(|_| bad("nsid", &n.to_string())))
            .transpose()?,
    };
    if id.is_empty() {
        return Err(NvmeofError::NoIdentity);
    }
    Ok(id)
}

fn ctrl_name(c: &Controller) -> String {
    format!(
        "{} {}:{}:{}",
        c.name,
        c.transport.as_deref().unwrap_or("?"),
        c.address.traddr.as_deref().unwrap_or("?"),
        c.address.trsvcid.as_deref().unwrap_or("?")
    )
}

/// What one volume looks like on the host now.
struct Found {
    /// The subsystem's controllers for this host.
    ctrls: Vec<Controller>,
    lookup: Lookup,
}

impl Found {
    /// The controllers that show the volume's namespace.
    fn carrying(&self, block: &str) -> Vec<&Controller> {
        self.ctrls
            .iter()
            .filter(|c| {
                self.lookup
                    .matches
                    .iter()
                    .any(|(p, _)| p.block == block && p.controller == c.name)
            })
            .collect()
    }
}

impl NvmeofConnector<'_> {
    /// The single target of `props`, checked against the device_info of the same
    /// volume: the subsystem must be the same and the recorded identifiers must
    /// not contradict the connection info's.
    fn attached_target<'p>(
        &self,
        props: &'p NvmeofProps,
        info: &DeviceInfo,
    ) -> Result<(&'p NvmeTarget, NamespaceId), NvmeofError> {
        let t = match props.shape {
            Shape::Replicated => props.targets.first().ok_or(PropsError::Missing {
                key: "volume_replicas".into(),
            })?,
            Shape::Legacy | Shape::SingleTarget => props.single().ok_or(PropsError::Missing {
                key: "target_nqn".into(),
            })?,
        };
        Ok((t, check_recorded(t, info)?))
    }

    /// Why namespace `block` is in use, if it is: an attachment moor recorded (and
    /// has not detached), a holder (an MD array, a dm map), or a mount.
    fn in_use(&self, block: &str) -> Result<Option<String>, NvmeofError> {
        if let Some(a) = self.registry.current(&self.paths, block) {
            return Ok(Some(format!("attached by moor ({})", a.target)));
        }
        let holders = self
            .paths
            .list_dir(&self.paths.sys(&format!("block/{block}/holders")))?
            .unwrap_or_default();
        if let Some(h) = holders.first() {
            return Ok(Some(format!("held by {h}")));
        }
        if let Some((major, minor)) = block_devnum(&self.paths, block)? {
            let mounts = self
                .paths
                .read_attr(&self.paths.proc("self/mountinfo"))?
                .unwrap_or_default();
            let devnum = format!("{major}:{minor}");
            if mounts
                .lines()
                .any(|l| l.split(' ').nth(2) == Some(devnum.as_str()))
            {
                return Ok(Some("mounted".into()));
            }
        }
        Ok(None)
    }

    /// The subsystem's controllers for this host and the volume's namespace on
    /// them.
    fn find(&self, t: &NvmeTarget, expected: &NamespaceId) -> Result<Found, NvmeofError> {
        let hostnqn: Option<Nqn> = match &t.host_nqn {
            Some(n) => Some(n.clone()),
            None => hostid::read_identity(&self.paths)?.0,
        };
        let ctrls: Vec<Controller> = sysfs::controllers(&self.paths)?
            .into_iter()
            .filter(|c| c.is_of(&t.nqn, hostnqn.as_ref()) && !c.state.is_going())
            .collect();
        let names: Vec<NvmeController> = ctrls.iter().map(|c| c.name).collect();
        let lookup = sysfs::find_namespace(&self.paths, &names, expected)?;
        Ok(Found { ctrls, lookup })
    }

    /// Detach one volume: find its namespace by the identity recorded at attach,
    /// flush it (identity-checked by moord), disconnect every controller that
    /// carries nothing else (moord re-checks the controller's identity), and wait
    /// until its devices are gone. A controller that also shows other namespaces
    /// is kept (os-brick #1961102). `force` detaches a namespace whose flush failed
    /// or that has no live path, and reports the data-loss risk; `ignore_errors`
    /// returns the outcome instead of an error when something is left.
    pub fn disconnect(
        &self,
        props: &NvmeofProps,
        info: &DeviceInfo,
        force: bool,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, NvmeofError> {
        if info.raid.is_some() {
            return self.disconnect_replicated(props, info, force, ignore_errors);
        }
        let deadline = self.deadline();
        let (t, expected) = self.attached_target(props, info)?;
        if props.shape == Shape::Replicated && props.targets.len() > 1 {
            return Err(NvmeofError::BadDeviceInfo(
                "a replicated volume's device_info must carry its `raid` (as `moor connect` printed it)".into(),
            ));
        }
        let mut out = DetachOutcome::default();
        self.detach_target(
            t,
            &expected,
            info.wwid.as_deref(),
            Flush::Yes { force },
            &mut out,
            deadline,
        )?;
        out.finish();
        tracing::info!(status = %out.status, removed = ?out.removed, disconnected = ?out.disconnected, "detached");
        if !out.leftovers.is_empty() && !ignore_errors {
            return Err(NvmeofError::Incomplete(Box::new(out)));
        }
        Ok(out)
    }

    /// Detach the namespace `expected` of target `t` (see [`Self::disconnect`]),
    /// adding to `out`. `wwid` is the one recorded at attach, for moord's check
    /// before the flush.
    pub(super) fn detach_target(
        &self,
        t: &NvmeTarget,
        expected: &NamespaceId,
        wwid: Option<&str>,
        flush: Flush,
        out: &mut DetachOutcome,
        deadline: Instant,
    ) -> Result<(), NvmeofError> {
        let _volume = self
            .locks
            .lock(&volume_lock(t), Mode::Exclusive, deadline)?;
        let _subsystem = self
            .locks
            .lock(&subsystem_lock(&t.nqn), Mode::Exclusive, deadline)?;
        let found = self.find(t, expected)?;

        // A namespace that changed identity is not ours any more: untouched, and so
        // is every controller showing it.
        for (ns, d) in &found.lookup.conflicts {
            let d: Vec<String> = d.iter().map(ToString::to_string).collect();
            out.leftovers.push(Leftover {
                what: format!("/dev/{}", ns.block),
                reason: format!(
                    "identity changed since attach ({}), not touched",
                    d.join(", ")
                ),
            });
        }
        let blocks: Vec<String> = found
            .lookup
            .blocks()
            .into_iter()
            .map(String::from)
            .collect();
        if blocks.is_empty() {
            tracing::info!(subsystem = %t.nqn, "the namespace is not visible on this host");
        }

        // Flush first: without force a failed flush detaches nothing.
        let mut untouchable: BTreeSet<String> = BTreeSet::new();
        // A leg of a stopped MD array is not flushed: the array flushed it.
        let (do_flush, force) = match flush {
            Flush::Yes { force } => (true, force),
            Flush::No => (false, false),
        };
        for block in blocks.iter().filter(|_| do_flush) {
            let carrying = found.carrying(block);
            let live = carrying.iter().any(|c| c.state == CtrlState::Live);
            let what = format!("/dev/{block}");
            let failed = |e: String, out: &mut DetachOutcome| {
                if force {
                    tracing::warn!(device = %what, "flush failed, detaching anyway (--force): {e}");
                    out.data_loss_risk.push(what.clone());
                    Ok(())
                } else {
                    Err(NvmeofError::FlushFailed {
                        device: what.clone(),
                        message: e,
                    })
                }
            };
            if !live {
                // Under the `queue` policy a flush would wait for a path that may
                // never come back.
                failed(
                    format!(
                        "no live path ({}): a flush would wait for a reconnect",
                        carrying
                            .iter()
                            .map(|c| format!("{} {:?}", c.name, c.state))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    out,
                )?;
                continue;
            }
            let wwid = wwid.map(String::from).or_else(|| {
                found
                    .lookup
                    .matches
                    .iter()
                    .find(|(p, _)| p.block == *block)
                    .and_then(|(p, _)| p.ids.wwid.clone())
            });
            let Some(expected_wwid) = wwid else {
                failed("the namespace shows no wwid to check".into(), out)?;
                continue;
            };
            let r = run_exec(
                self.privileged,
                &BlockFlush {
                    device: block.clone(),
                    expected_wwid,
                },
                deadline,
            );
            match r {
                Ok(o) if o.success() => {}
                Ok(o) => failed(o.summary(), out)?,
                Err(PrivError::IdentityMismatch { message, .. }) => {
                    untouchable.insert(block.clone());
                    out.leftovers.push(Leftover {
                        what,
                        reason: format!("identity changed since attach, not touched: {message}"),
                    });
                }
                Err(e) => failed(e.to_string(), out)?,
            }
        }
        let ours: Vec<&String> = blocks
            .iter()
            .filter(|b| !untouchable.contains(*b))
            .collect();

        // Disconnect the controllers that carry only this namespace, or nothing
        // at all on one of the volume's portals.
        let mut watch = self.events.watch()?;
        let mut gone: Vec<NvmeController> = Vec::new();
        for c in &found.ctrls {
            let carries_ours = ours.iter().any(|b| found.carrying(b).contains(&c));
            let on_portal = t.portals.iter().any(|p| c.serves(p));
            let nss = sysfs::namespaces(&self.paths, c.name)?;
            // The controller's other namespaces: in use (another attachment moor
            // recorded, a holder such as an MD array, a mount) or unclaimed.
            let mut in_use = Vec::new();
            let mut unclaimed = Vec::new();
            for ns in nss.iter().filter(|ns| !ours.contains(&&ns.block)) {
                let name = match ns.ids.nsid {
                    Some(n) => format!("/dev/{} (nsid {n})", ns.block),
                    None => format!("/dev/{}", ns.block),
                };
                match self.in_use(&ns.block)? {
                    Some(why) => in_use.push(format!("{name}, {why}")),
                    None => unclaimed.push(format!("/dev/{}", ns.block)),
                }
            }
            // Showing a namespace that was ours at attach and changed since makes
            // the controller the volume's business too: reported, kept.
            let carries_changed = nss.iter().any(|ns| {
                untouchable.contains(&ns.block)
                    || found
                        .lookup
                        .conflicts
                        .iter()
                        .any(|(c, _)| c.block == ns.block)
            });
            if !(carries_ours || carries_changed || on_portal) {
                continue;
            }
            if carries_changed || !in_use.is_empty() {
                let mut reason = if in_use.is_empty() {
                    "shows a namespace whose identity changed".to_string()
                } else {
                    format!("also carries {}", in_use.join("; "))
                };
                if carries_ours {
                    reason.push_str(
                        "; this volume's namespace stays visible until the target unmaps it",
                    );
                }
                out.kept_controllers.push(Leftover {
                    what: format!("controller {}", ctrl_name(c)),
                    reason,
                });
                continue;
            }
            if !carries_ours && !unclaimed.is_empty() {
                // Another volume's namespaces on the volume's portal that nothing
                // claims: not this detach's business.
                continue;
            }
            let Some(op) = disconnect_op(c) else {
                out.leftovers.push(Leftover {
                    what: format!("controller {}", ctrl_name(c)),
                    reason: "its identity cannot be read from sysfs, not disconnected".into(),
                });
                continue;
            };
            match run(self.privileged, &op, deadline) {
                Ok(()) => {
                    if !unclaimed.is_empty() {
                        tracing::warn!(controller = %c.name, namespaces = ?unclaimed, "disconnected with namespaces no attachment claims");
                    }
                    out.unclaimed_removed.extend(unclaimed);
                    out.disconnected.push(ctrl_name(c));
                    gone.push(c.name);
                }
                Err(e) => out.leftovers.push(Leftover {
                    what: format!("controller {}", ctrl_name(c)),
                    reason: e.to_string(),
                }),
            }
        }

        // The namespace's devices go with its last controller.
        for block in &ours {
            let carrying = found.carrying(block);
            if carrying.is_empty() || !carrying.iter().all(|c| gone.contains(&c.name)) {
                continue;
            }
            if self.privileged.dry_run() {
                out.removed.push(format!("/dev/{block}"));
                continue;
            }
            match wait_for_removal(&self.paths, &mut *watch, block, deadline) {
                Ok(()) => out.removed.push(format!("/dev/{block}")),
                Err(e) => out.leftovers.push(Leftover {
                    what: format!("/dev/{block}"),
                    reason: e.to_string(),
                }),
            }
        }
        if !self.privileged.dry_run() {
            for block in &ours {
                if let Err(e) = self.registry.remove(block) {
                    tracing::warn!(device = %block, "attachment record not removed: {e}");
                }
            }
            for name in &gone {
                if let Some(c) = sysfs::controller(&self.paths, *name)?
                    && c.subsysnqn.as_deref() == Some(t.nqn.as_str())
                    && !c.state.is_going()
                {
                    out.leftovers.push(Leftover {
                        what: format!("controller {}", ctrl_name(&c)),
                        reason: format!("still {:?} after delete_controller", c.state),
                    });
                }
            }
        }
        Ok(())
    }

    /// Make the host see a volume's new size: rescan every live controller that
    /// carries the namespace, wait until the kernel shows a new size (at most 5 s:
    /// the rescan is asynchronous), and require every path to agree. Returns the
    /// size, also when it did not change.
    pub fn extend(&self, props: &NvmeofProps, info: &DeviceInfo) -> Result<Extended, NvmeofError> {
        if info.raid.is_some() {
            return self.extend_replicated(props, info);
        }
        let deadline = self.deadline();
        let (t, expected) = self.attached_target(props, info)?;
        self.extend_target(t, &expected, deadline)
    }

    /// Extend of the namespace `expected` of target `t` (see [`Self::extend`]).
    pub(super) fn extend_target(
        &self,
        t: &NvmeTarget,
        expected: &NamespaceId,
        deadline: Instant,
    ) -> Result<Extended, NvmeofError> {
        let expected = *expected;
        let _volume = self
            .locks
            .lock(&volume_lock(t), Mode::Exclusive, deadline)?;
        let found = self.find(t, &expected)?;
        if let Some(e) = conflict_error(t, &found.lookup) {
            return Err(e);
        }
        let Some(block) = found.lookup.blocks().first().map(|b| b.to_string()) else {
            return Err(NvmeofError::NotAttached(format!(
                "the namespace of {} is not visible on this host",
                t.nqn
            )));
        };
        let before = block_size_bytes(&self.paths, &block)?.unwrap_or(0);
        let mut watch = self.events.watch()?;
        for c in found.carrying(&block) {
            if c.state == CtrlState::Live {
                run(
                    self.privileged,
                    &NvmeNsRescan { controller: c.name },
                    deadline,
                )?;
            }
        }
        let sizes = || -> Result<(u64, Vec<(String, u64)>), NvmeofError> {
            let now = self.find(t, &expected)?;
            let head = block_size_bytes(&self.paths, &block)?.unwrap_or(0);
            let paths = now
                .lookup
                .matches
                .iter()
                .filter(|(p, _)| p.block == block)
                .map(|(p, _)| (p.name.clone(), p.size_sectors.unwrap_or(0) * 512))
                .collect();
            Ok((head, paths))
        };
        let consistent =
            |head: u64, paths: &[(String, u64)]| head > 0 && paths.iter().all(|(_, s)| *s == head);
        if !self.privileged.dry_run() {
            // A size change emits a change uevent on the disk.
            let until = deadline.min(Instant::now() + RESIZE_WAIT);
            let what = format!("/dev/{block} to change size from {before} bytes");
            let r = wait_for(&mut *watch, until, &what, || {
                let (head, paths) = sizes().map_err(|e| match e {
                    NvmeofError::Host(h) => h,
                    other => crate::host::HostError::Invalid {
                        path: self.paths.sys(&format!("block/{block}")),
                        reason: other.to_string(),
                    },
                })?;
                Ok((head != before && consistent(head, &paths)).then_some(()))
            });
            match r {
                Ok(()) | Err(WaitError::Deadline { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (head, paths) = sizes()?;
        if !consistent(head, &paths) && !self.privileged.dry_run() {
            return Err(NvmeofError::Inconsistent(format!(
                "the paths of /dev/{block} disagree on its size after a rescan (head {head} bytes; {}); a path may be down",
                paths
                    .iter()
                    .map(|(p, s)| format!("{p} {s} bytes"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if head == before {
            tracing::warn!(device = %block, size = head, "the size did not change");
        } else {
            tracing::info!(device = %block, from = before, to = head, "extended");
        }
        Ok(Extended {
            new_size: head,
            path: format!("/dev/{block}"),
            paths,
        })
    }

    /// The block devices that carry the volume's namespace now (the head with
    /// native multipath, else one disk per controller). A conflicting namespace is
    /// an error, never a path.
    pub fn volume_paths(&self, props: &NvmeofProps) -> Result<Vec<String>, NvmeofError> {
        let t = match props.shape {
            Shape::Replicated => return self.replicated_paths(props),
            Shape::Legacy | Shape::SingleTarget => props.single().ok_or(PropsError::Missing {
                key: "target_nqn".into(),
            })?,
        };
        let found = self.find(t, &t.namespace)?;
        if let Some(e) = conflict_error(t, &found.lookup) {
            return Err(e);
        }
        Ok(found
            .lookup
            .blocks()
            .into_iter()
            .map(|b| format!("/dev/{b}"))
            .collect())
    }
}

#[cfg(test)]
#[path = "detach_tests.rs"]
mod tests;
