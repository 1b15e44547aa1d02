//! ECKD/DASD detach, extend and volume paths.
//!
//! Detach re-reads the device's uid and compares it with the one recorded at
//! attach (moord checks it again right before it acts), then sets the device
//! offline *safely* (`chccwdev -s`: the kernel syncs the disk's dirty pages and
//! waits for every queued request before the device goes offline, and refuses a
//! disk that is open) — that is the flush. With `force`, a failed safe offline is
//! followed by a plain offline (`chccwdev -d`), which fails outstanding requests;
//! the outcome names the disk as detached without a successful flush. Then it waits
//! until the kernel and udev have removed the disk and reports exactly what is
//! left. The CCW device itself stays registered (offline): moor does not put it
//! back on the `cio_ignore` list.
//!
//! DASDs do not change size while online: extend reports the current size.

use moor_privhelper::ops::{DasdOffline, DasdSafeOffline};
use serde::{Deserialize, Serialize};

use super::connect::{DasdConnector, DasdError, DeviceInfo, check_identity, volume_lock};
use super::props::DasdProps;
use super::sysfs;
use crate::exec::PrivError;
use crate::host::scsi::block_size_bytes;
use crate::host::udev::{removal_leftovers, wait_for_removal};
use crate::lock::Mode;
use crate::transport::{Extended, Leftover, detach_status, detach_summary};
use crate::types::{CcwBusId, DasdUid};

/// The result of a detach (architecture invariant 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachOutcome {
    /// `clean`, `clean-with-data-loss` or `leftovers`.
    pub status: String,
    /// The device bus id.
    pub busid: String,
    /// This detach set the device offline (false: it was offline already).
    pub set_offline: bool,
    /// Devices the kernel and udev removed (`/dev/dasdb`).
    pub removed: Vec<String>,
    /// Disks set offline without a successful safe offline (`force`).
    pub data_loss_risk: Vec<String>,
    pub leftovers: Vec<Leftover>,
}

impl DetachOutcome {
    fn finish(&mut self) {
        self.status = detach_status(&self.leftovers, &self.data_loss_risk).into();
    }

    pub fn summary(&self) -> String {
        detach_summary(&self.leftovers, &self.data_loss_risk)
    }
}

/// The identity recorded in `info` (bus id, uid), checked against the connection
/// info. Without `device_id` in it, the bus id is the one `info` records.
fn recorded(props: &DasdProps, info: &DeviceInfo) -> Result<(CcwBusId, DasdUid), DasdError> {
    let busid: CcwBusId = info
        .busid
        .parse()
        .map_err(|e| DasdError::BadDeviceInfo(format!("busid {:?} is invalid: {e}", info.busid)))?;
    if let Some(asked) = props.busid
        && busid != asked
    {
        return Err(DasdError::BadDeviceInfo(format!(
            "device_info is for {busid}, the connection info for {asked}"
        )));
    }
    if info.uid.is_empty() {
        return Err(DasdError::NoIdentity);
    }
    let uid: DasdUid = info
        .uid
        .parse()
        .map_err(|e| DasdError::BadDeviceInfo(format!("{e}")))?;
    if let Some(expected) = &props.uid
        && *expected != uid
    {
        return Err(DasdError::BadDeviceInfo(format!(
            "device_info records uid {uid}, the connection info names {expected}"
        )));
    }
    if let Some((key, expected, found)) = props.address_mismatch(&uid) {
        return Err(DasdError::BadDeviceInfo(format!(
            "device_info records uid {uid}, whose {key} is {found}, the connection info names {expected}"
        )));
    }
    let disk_ok = |d: &str| d.starts_with("dasd") && crate::types::is_block_device_name(d);
    if !info.device.is_empty() && !disk_ok(&info.device) {
        return Err(DasdError::BadDeviceInfo(format!(
            "device {:?} is not a DASD disk (dasdX)",
            info.device
        )));
    }
    Ok((busid, uid))
}

impl DasdConnector<'_> {
    /// Detach one DASD (see the module documentation). `force` sets the device
    /// offline even when the safe offline fails (unwritten data may be lost; the
    /// outcome says so); `ignore_errors` returns the outcome instead of an error
    /// when something is left.
    pub fn disconnect(
        &self,
        props: &DasdProps,
        info: &DeviceInfo,
        force: bool,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, DasdError> {
        let deadline = self.deadline();
        let (busid, uid) = recorded(props, info)?;
        let _volume = self
            .locks
            .lock(&volume_lock(busid), Mode::Exclusive, deadline)?;
        let mut out = DetachOutcome {
            busid: busid.to_string(),
            ..DetachOutcome::default()
        };
        let device = sysfs::ccw_device(&self.paths, busid)?;
        let Some(device) = device.filter(|d| d.online) else {
            // Offline (or gone) already: nothing to set offline; report what udev
            // may have left of the disk.
            tracing::info!(busid = %busid, "offline already");
            if !info.device.is_empty() {
                for p in removal_leftovers(&self.paths, &info.device)? {
                    out.leftovers.push(Leftover {
                        what: p.display().to_string(),
                        reason: format!("still present although {busid} is offline"),
                    });
                }
                self.forget(&info.device);
            }
            return self.finish(out, ignore_errors);
        };
        let found = device.uid.clone().unwrap_or_default();
        if found != uid.as_str() {
            return Err(DasdError::UidMismatch {
                busid,
                expected: uid.to_string(),
                found: if found.is_empty() {
                    "no uid".into()
                } else {
                    found
                },
            });
        }
        let disk = device.disk.clone().unwrap_or_else(|| info.device.clone());
        if !info.device.is_empty() && disk != info.device {
            // Same device number, same uid: the disk name is the kernel's
            // business (it follows the order devices were first set online).
            tracing::warn!(busid = %busid, recorded = %info.device, now = %disk, "the disk has another name than at attach");
        }
        let mut watch = self.events.watch()?;

        // Safe offline: sync, wait for queued I/O, offline (moord checks the uid).
        let safe = DasdSafeOffline {
            busid,
            expected_uid: uid.clone(),
        };
        let failure = match self.exec(busid, &safe, deadline) {
            Ok(_) => None,
            // moord found another uid right before acting: nothing was run.
            Err(e @ DasdError::Privileged(PrivError::IdentityMismatch { .. })) => return Err(e),
            Err(DasdError::CommandFailed { message, .. }) => Some(message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            if !force {
                return Err(DasdError::OfflineFailed { busid, message });
            }
            tracing::warn!(busid = %busid, "safe offline failed, setting offline anyway (--force): {message}");
            let plain = DasdOffline {
                busid,
                expected_uid: uid.clone(),
            };
            if let Err(e) = self.exec(busid, &plain, deadline) {
                return Err(DasdError::OfflineFailed {
                    busid,
                    message: format!("{message}; then {e}"),
                });
            }
            if !disk.is_empty() {
                out.data_loss_risk.push(format!("/dev/{disk}"));
            }
        }
        out.set_offline = true;

        // The disk goes with the device.
        if !disk.is_empty() {
            if self.privileged.dry_run() {
                out.removed.push(format!("/dev/{disk}"));
            } else {
                match wait_for_removal(&self.paths, &mut *watch, &disk, deadline) {
                    Ok(()) => out.removed.push(format!("/dev/{disk}")),
                    Err(e) => out.leftovers.push(Leftover {
                        what: format!("/dev/{disk}"),
                        reason: e.to_string(),
                    }),
                }
            }
        }
        if !self.privileged.dry_run() {
            if let Some(d) = sysfs::ccw_device(&self.paths, busid)?
                && d.online
            {
                out.leftovers.push(Leftover {
                    what: format!("CCW device {busid}"),
                    reason: "still online after the offline command".into(),
                });
            }
            self.forget(&disk);
        }
        tracing::info!(busid = %busid, removed = ?out.removed, "detached");
        self.finish(out, ignore_errors)
    }

    fn forget(&self, disk: &str) {
        if self.privileged.dry_run() || disk.is_empty() {
            return;
        }
        if let Err(e) = self.registry.remove(disk) {
            tracing::warn!(device = %disk, "attachment record not removed: {e}");
        }
    }

    fn finish(
        &self,
        mut out: DetachOutcome,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, DasdError> {
        out.finish();
        if !out.leftovers.is_empty() && !ignore_errors {
            return Err(DasdError::Incomplete(Box::new(out)));
        }
        Ok(out)
    }

    /// The online DASD of `props`/`info`, its uid checked; its disk.
    fn attached_disk(&self, props: &DasdProps, info: &DeviceInfo) -> Result<String, DasdError> {
        let (busid, uid) = recorded(props, info)?;
        let device = sysfs::ccw_device(&self.paths, busid)?
            .filter(|d| d.online)
            .ok_or_else(|| DasdError::NotAttached(format!("{busid} is not online")))?;
        let found = device.uid.clone().unwrap_or_default();
        if found != uid.as_str() {
            return Err(DasdError::UidMismatch {
                busid,
                expected: uid.to_string(),
                found,
            });
        }
        device
            .disk
            .ok_or_else(|| DasdError::NotAttached(format!("{busid} has no disk")))
    }

    /// The DASD's size. ECKD volumes do not grow while online (a volume the
    /// storage server expanded needs a detach, a re-attach and `dasdfmt
    /// --mode=expand`, which moor does not run), so this reports the current size
    /// and changes nothing.
    pub fn extend(&self, props: &DasdProps, info: &DeviceInfo) -> Result<Extended, DasdError> {
        let deadline = self.deadline();
        let (busid, _) = recorded(props, info)?;
        let _volume = self
            .locks
            .lock(&volume_lock(busid), Mode::Exclusive, deadline)?;
        let disk = self.attached_disk(props, info)?;
        let size = block_size_bytes(&self.paths, &disk)?.unwrap_or(0);
        tracing::warn!(busid = %busid, device = %disk, size, "DASDs do not change size while online: reporting the current size");
        Ok(Extended {
            new_size: size,
            path: sysfs::by_path(busid),
            paths: vec![(format!("/dev/{disk}"), size)],
        })
    }

    /// The volume's by-path link, if it exists now and points at the DASD's disk.
    /// With a `uid`, `subsystem_id` or `unit_address` in the connection info, a
    /// device carrying another uid is an error, never a path. Without `device_id`,
    /// the one online DASD they name (none: no path).
    pub fn volume_paths(&self, props: &DasdProps) -> Result<Vec<String>, DasdError> {
        let busid = match self.locate(props) {
            Ok(busid) => busid,
            Err(DasdError::NoOnlineMatch { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let Some(device) = sysfs::ccw_device(&self.paths, busid)?.filter(|d| d.online) else {
            return Ok(Vec::new());
        };
        if let Some(found) = &device.uid {
            match (found.parse::<DasdUid>(), &props.uid) {
                (Ok(uid), _) => check_identity(props, busid, &uid)?,
                (Err(_), Some(expected)) => {
                    return Err(DasdError::UidMismatch {
                        busid,
                        expected: expected.to_string(),
                        found: found.clone(),
                    });
                }
                (Err(e), None) if props.subsystem_id.is_some() || props.unit_address.is_some() => {
                    return Err(crate::host::HostError::Invalid {
                        path: self.paths.sys(&format!("{}/uid", sysfs::ccw_rel(busid))),
                        reason: e.to_string(),
                    }
                    .into());
                }
                (Err(_), None) => {}
            }
        }
        let Some(disk) = device.disk else {
            return Ok(Vec::new());
        };
        let link = sysfs::by_path(busid);
        Ok(
            if sysfs::link_target(&self.paths, &link)?.as_deref() == Some(disk.as_str()) {
                vec![link]
            } else {
                Vec::new()
            },
        )
    }
}

#[cfg(test)]
#[path = "detach_tests.rs"]
mod tests;
