//! Extend, volume paths and the device check (os-brick `extend_volume`,
//! `get_volume_paths`, `check_valid_device`).
//!
//! Extend rescans every path of the volume (found by its WWID, identity-checked by
//! moord), requires them to agree on the new size (a path that is down or lagging
//! would otherwise give the map a wrong size, os-brick #2032177), then resizes the
//! multipath map by its exact name — never a host-wide `multipathd reconfigure`.

use std::time::Instant;

use moor_privhelper::ops::BlockReadCheck;

use super::connect::{DetachOutcome, DeviceInfo, IscsiConnector, IscsiError, target_name};
use super::props::IscsiProps;
use crate::exec::run_exec;
pub use crate::transport::Extended;

impl IscsiConnector<'_> {
    /// Make the host see a volume's new size. Returns the new size.
    pub fn extend(&self, props: &IscsiProps, info: &DeviceInfo) -> Result<Extended, IscsiError> {
        let (expected, deadline, primary, _volume) = self.begin(props, info)?;
        let mut scratch = DetachOutcome::default();
        let (disks, _) = self.find_volume(props, &expected, &mut scratch)?;
        if disks.is_empty() {
            return Err(IscsiError::Target {
                target: target_name(primary),
                message: format!("no disk with WWID {expected} is attached on this host"),
            });
        }
        self.scsi_host()
            .extend_disks(&disks, &expected, deadline)
            .map_err(|e| super::connect::disk_error(primary, e))
    }

    /// The `/dev/disk/by-path` links of the volume's paths that exist now (any
    /// prefix, so offload ifaces' `pci-…-ip-…` names are found too).
    pub fn volume_paths(&self, props: &IscsiProps) -> Result<Vec<String>, IscsiError> {
        let dir = self.paths.dev("disk/by-path");
        let names = self.paths.list_dir(&dir)?.unwrap_or_default();
        let mut out = Vec::new();
        for t in props.targets() {
            let suffix = format!(
                "ip-{}-iscsi-{}-lun-{}",
                t.portal.by_path_form(),
                t.iqn,
                t.lun.by_path_id()
            );
            for n in names.iter().filter(|n| n.ends_with(&suffix)) {
                // Only links to a device that exists (udev may leave stale ones).
                if std::fs::metadata(dir.join(n)).is_err() {
                    continue;
                }
                let p = format!("/dev/disk/by-path/{n}");
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Read the first 4 KiB of the volume's device through moord (identity-checked).
    pub fn check_valid_device(&self, info: &DeviceInfo) -> Result<bool, IscsiError> {
        let expected = info.scsi_wwn.trim();
        if expected.is_empty() {
            return Err(IscsiError::NoIdentity);
        }
        let Some(device) = info.path.strip_prefix("/dev/") else {
            return Ok(false);
        };
        let out = run_exec(
            self.privileged,
            &BlockReadCheck {
                device: device.to_string(),
                expected_wwid: expected.to_string(),
            },
            Instant::now() + std::time::Duration::from_secs(30).min(self.options.timeout),
        )?;
        Ok(out.success())
    }
}
#[cfg(test)]
#[path = "extend_tests.rs"]
mod tests;
