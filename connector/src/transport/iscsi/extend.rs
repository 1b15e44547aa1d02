//! Extend, volume paths and the device check (os-brick `extend_volume`,
//! `get_volume_paths`, `check_valid_device`).
//!
//! Extend rescans every path of the volume (found by its WWID, identity-checked by
//! moord), requires them to agree on the new size (a path that is down or lagging
//! would otherwise give the map a wrong size, os-brick #2032177), then resizes the
//! multipath map by its exact name — never a host-wide `multipathd reconfigure`.

use std::time::{Duration, Instant};

use moor_privhelper::ops::{BlockReadCheck, MultipathResize, ScsiRescan};

use super::connect::{DetachOutcome, DeviceInfo, IscsiConnector, IscsiError, target_name};
use super::props::IscsiProps;
use crate::exec::{run, run_exec};
use crate::host::scsi;
use crate::host::udev::wait_for;
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
        let mut watch = self.events.watch()?;
        // A path can answer its first READ CAPACITY after the change with a unit
        // attention and keep the old size: sizes that disagree are rescanned again
        // (after 0.5, 1, 2 s) before the paths are declared inconsistent.
        let mut pause = Duration::from_millis(500);
        let mut sizes = Vec::new();
        for round in 0..4 {
            if round > 0 {
                if Instant::now() + pause > deadline {
                    break;
                }
                tracing::info!(?sizes, "paths disagree on the size; rescanning again");
                std::thread::sleep(pause);
                pause *= 2;
            }
            for d in &disks {
                run(
                    self.privileged,
                    &ScsiRescan {
                        device: d.name.clone(),
                        expected_wwid: expected.clone(),
                    },
                    deadline,
                )?;
            }
            sizes.clear();
            for d in &disks {
                let size = scsi::block_size_bytes(&self.paths, &d.name)?.unwrap_or(0);
                sizes.push((format!("/dev/{}", d.name), size));
            }
            if sizes.iter().all(|(_, s)| *s == sizes[0].1) || self.privileged.dry_run() {
                break;
            }
        }
        let size = sizes[0].1;
        if sizes.iter().any(|(_, s)| *s != size) {
            return Err(IscsiError::Multipath(format!(
                "the paths disagree on the volume's size after a rescan ({}); a path may be down: nothing resized",
                sizes
                    .iter()
                    .map(|(d, s)| format!("{d} {s} bytes"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let map = disks.iter().find_map(|d| {
            scsi::holders(&self.paths, &d.name)
                .unwrap_or_default()
                .into_iter()
                .find(|dm| {
                    scsi::dm_multipath_wwid(&self.paths, dm)
                        .ok()
                        .flatten()
                        .is_some_and(|w| w == expected)
                })
        });
        let Some(dm) = map else {
            tracing::info!(size, "extended (single path)");
            return Ok(Extended {
                new_size: size,
                path: sizes[0].0.clone(),
                paths: sizes,
            });
        };
        let name = scsi::dm_name(&self.paths, &dm)?.unwrap_or_default();
        let out = run_exec(
            self.privileged,
            &MultipathResize {
                device: dm.clone(),
                map: name.clone(),
                expected_wwid: expected.clone(),
            },
            deadline,
        )?;
        if !out.success() || out.stdout.trim() == "fail" {
            return Err(IscsiError::Multipath(format!(
                "multipathd resize map {name} failed: {} {}",
                out.summary(),
                out.stdout.trim()
            )));
        }
        if !self.privileged.dry_run() {
            wait_for(
                &mut *watch,
                deadline,
                &format!("{dm} to reach {size} bytes"),
                || Ok((scsi::block_size_bytes(&self.paths, &dm)? == Some(size)).then_some(())),
            )?;
        }
        tracing::info!(map = %dm, size, "extended (multipath)");
        Ok(Extended {
            new_size: size,
            path: format!("/dev/{dm}"),
            paths: sizes,
        })
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
