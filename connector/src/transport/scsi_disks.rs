//! What every SCSI transport (iSCSI, Fibre Channel, zFCP) does with a volume's
//! disks once it has found them: build or join the dm-multipath map over them,
//! and detach them (identity refreshed, maps and disks flushed, paths removed from
//! multipathd, disks deleted, their removal awaited, stale links removed, maps
//! verified gone). Transports find the disks and handle their own sessions or
//! ports; everything here goes through moord with the volume's WWID as the guard.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use moor_privhelper::ops::{
    BlockFlush, BlockRemoveStaleLink, MultipathAddPath, MultipathAddWwid, MultipathCheck,
    MultipathDelPath, MultipathFlush, MultipathForgetWwid, MultipathResize, MultipathdPaths,
    ScsiDelete, ScsiRescan, ScsiScan,
};

use crate::attachments::Registry;
use crate::exec::{PrivError, Privileged, run, run_exec};
use crate::host::scsi::{self, Hctl, ScsiDevice};
use crate::host::udev::{
    DeviceEvents, WaitError, removal_leftovers, wait_for, wait_for_dm_holder, wait_for_removal,
};
use crate::host::{HostError, HostPaths};
use crate::progress::Phase;
use crate::transport::{Extended, Leftover};

/// How long a detach waits for udev to drop a removed disk's links before moor
/// removes the stale ones itself.
const UDEV_GRACE: Duration = Duration::from_secs(15);

/// How long a new map may take to list every path before it is used without one.
const PATHS_JOIN: Duration = Duration::from_secs(10);

/// The host as the disk steps see it.
#[derive(Clone, Copy)]
pub(crate) struct ScsiHost<'a> {
    pub paths: &'a HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub registry: &'a Registry,
}

/// What a disk step could not do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Privileged(#[from] PrivError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Without `force`, a failed flush detaches nothing.
    #[error(
        "flushing {what} failed: {message}; nothing was removed (retry, or detach with --force and lose unwritten data)"
    )]
    FlushFailed { what: String, message: String },
    /// The map over the volume's disks changed identity between finding and flushing.
    #[error("{dm} is no longer this volume's map: {message}")]
    MapChanged { dm: String, message: String },
    /// A disk at the volume's LUN carries another volume (CVE-2023-2088).
    #[error(
        "a stale device /dev/{name} of another volume sits at LUN {lun} ({why}); refusing to hand it out — detach or clean it up first"
    )]
    Stale { name: String, lun: u64, why: String },
    /// The target does not present the LUN to this host.
    #[error("the target presents no LUN {} to this host (scanned {hctl})", .hctl.lun)]
    NoLun { hctl: Hctl },
    #[error("{0}")]
    Multipath(String),
    /// A dry run cannot go past a step whose effect later steps need.
    #[error("{0}")]
    DryRun(String),
}

/// What a disk detach did.
#[derive(Debug, Default)]
pub(crate) struct DiskDetach {
    /// Disks removed from the kernel (`sdb`).
    pub removed: Vec<String>,
    /// Disks or maps removed although their flush failed (`force`).
    pub data_loss_risk: Vec<String>,
    pub leftovers: Vec<Leftover>,
}

impl ScsiHost<'_> {
    /// Detach the volume's disks `ours` (WWID `expected`): refresh each disk's
    /// identity (a rescan re-reads VPD 0x83), flush disks outside a map, then the
    /// volume's maps, take the paths out of multipathd, delete the disks, wait for
    /// them (and their links) to go and check the maps went. `force` goes on past
    /// failed flushes and records the risk. Disks held by anything but this
    /// volume's map are left and reported.
    pub fn detach_disks(
        &self,
        ours: Vec<ScsiDevice>,
        expected: &str,
        force: bool,
        out: &mut DiskDetach,
        deadline: Instant,
    ) -> Result<(), DiskError> {
        let mut disks = Vec::new();
        for d in ours {
            let r = run(
                self.privileged,
                &ScsiRescan {
                    device: d.name.clone(),
                    expected_wwid: expected.to_string(),
                },
                deadline,
            );
            match r {
                Ok(()) => disks.push(d),
                Err(PrivError::IdentityMismatch { message, .. }) => out.leftovers.push(Leftover {
                    what: format!("/dev/{}", d.name),
                    reason: format!("identity changed since attach, not touched: {message}"),
                }),
                // A dead path cannot be rescanned; its flush below decides.
                Err(e) => {
                    tracing::warn!(device = %d.name, "rescan failed: {e}");
                    disks.push(d);
                }
            }
        }

        // Maps over our disks: only multipath maps of this WWID are ours to flush.
        let mut maps: Vec<(String, String)> = Vec::new();
        let mut under_map: BTreeSet<String> = BTreeSet::new();
        let mut held = BTreeSet::new();
        for d in &disks {
            for dm in scsi::holders(self.paths, &d.name)? {
                if scsi::dm_multipath_wwid(self.paths, &dm)?.as_deref() == Some(expected) {
                    under_map.insert(d.name.clone());
                    if !maps.iter().any(|(m, _)| *m == dm) {
                        let name = scsi::dm_name(self.paths, &dm)?.unwrap_or_default();
                        maps.push((dm, name));
                    }
                } else {
                    held.insert(d.name.clone());
                    out.leftovers.push(Leftover {
                        what: format!("/dev/{}", d.name),
                        reason: format!("in use by {dm}, which is not this volume's multipath map"),
                    });
                }
            }
        }
        disks.retain(|d| !held.contains(&d.name));

        // Flush before removing anything: without force a failed flush removes nothing.
        let flush_failed = |what: String, e: String, out: &mut DiskDetach| {
            if force {
                tracing::warn!(%what, "flush failed, removing anyway (--force): {e}");
                out.data_loss_risk.push(what);
                Ok(())
            } else {
                Err(DiskError::FlushFailed { what, message: e })
            }
        };
        // Disks outside a map first: a failure there must come before any map is
        // flushed (a map flush also removes the map).
        let mut removable = Vec::new();
        for d in disks {
            if under_map.contains(&d.name) {
                removable.push(d);
                continue;
            }
            let r = run_exec(
                self.privileged,
                &BlockFlush {
                    device: d.name.clone(),
                    expected_wwid: expected.to_string(),
                },
                deadline,
            );
            match r {
                Ok(o) if o.success() => removable.push(d),
                Err(PrivError::IdentityMismatch { message, .. }) => out.leftovers.push(Leftover {
                    what: format!("/dev/{}", d.name),
                    reason: format!("identity changed since attach, not touched: {message}"),
                }),
                Ok(o) => {
                    flush_failed(format!("/dev/{}", d.name), o.summary(), out)?;
                    removable.push(d);
                }
                Err(e) => {
                    flush_failed(format!("/dev/{}", d.name), e.to_string(), out)?;
                    removable.push(d);
                }
            }
        }

        let mut gone_maps = Vec::new();
        for (dm, name) in &maps {
            let r = run_exec(
                self.privileged,
                &MultipathFlush {
                    device: dm.clone(),
                    map: name.clone(),
                    expected_wwid: expected.to_string(),
                },
                deadline,
            );
            match r {
                Ok(o) if o.success() => gone_maps.push(dm.clone()),
                Ok(o) => flush_failed(format!("/dev/{dm} ({name})"), o.summary(), out)?,
                Err(PrivError::IdentityMismatch { message, .. }) => {
                    return Err(DiskError::MapChanged {
                        dm: dm.clone(),
                        message,
                    });
                }
                Err(e) => flush_failed(format!("/dev/{dm} ({name})"), e.to_string(), out)?,
            }
        }
        // multipathd stops monitoring the paths (while they still exist: moord
        // checks their identity), then the kernel drops them.
        let mut watch = self.events.watch()?;
        for d in removable.iter().filter(|d| under_map.contains(&d.name)) {
            let r = run_exec(
                self.privileged,
                &MultipathDelPath {
                    device: d.name.clone(),
                    expected_wwid: expected.to_string(),
                },
                deadline,
            );
            if let Err(e) = r {
                tracing::warn!(device = %d.name, "multipathd del path: {e}");
            }
        }
        let mut deleted = Vec::new();
        for d in &removable {
            let del = ScsiDelete {
                device: d.name.clone(),
                expected_wwid: expected.to_string(),
            };
            match run(self.privileged, &del, deadline) {
                Ok(()) => deleted.push(d.name.clone()),
                // The array re-mapped the LUN between the rescan and now.
                Err(PrivError::IdentityMismatch { message, .. }) => out.leftovers.push(Leftover {
                    what: format!("/dev/{}", d.name),
                    reason: format!("identity changed since attach, not removed: {message}"),
                }),
                Err(e) => out.leftovers.push(Leftover {
                    what: format!("/dev/{}", d.name),
                    reason: e.to_string(),
                }),
            }
        }
        for name in deleted {
            if self.privileged.dry_run() {
                out.removed.push(name);
                continue;
            }
            // udev normally drops the links within a second; when it has not after
            // 15 s, moor removes the ones that are provably stale itself.
            let udev_time = deadline.min(Instant::now() + UDEV_GRACE);
            let gone = wait_for_removal(self.paths, &mut *watch, &name, udev_time)
                .or_else(|e| self.remove_stale_links(&name, e, deadline));
            match gone {
                Ok(()) => {
                    if let Err(e) = self.registry.remove(&name) {
                        tracing::warn!(device = %name, "attachment record not removed: {e}");
                    }
                    out.removed.push(name);
                }
                Err(e) => out.leftovers.push(Leftover {
                    what: format!("/dev/{name}"),
                    reason: e.to_string(),
                }),
            }
        }
        if !self.privileged.dry_run() {
            let removed = out.removed.clone();
            self.verify_maps_gone(&maps, &gone_maps, &removed, out, deadline)?;
            self.forget_wwid(&maps, expected, deadline)?;
        }
        Ok(())
    }

    /// Once the volume's maps are gone, drop its WWID from multipath's wwids file
    /// (the attach whitelisted it with `multipath.add_wwid`; left there, the file
    /// only grows, and `moor doctor` reports each entry). moord refuses while any
    /// device still carries the WWID; a failure is only logged.
    fn forget_wwid(
        &self,
        maps: &[(String, String)],
        expected: &str,
        deadline: Instant,
    ) -> Result<(), DiskError> {
        if maps.is_empty() {
            return Ok(());
        }
        for (dm, _) in maps {
            if scsi::dm_uuid(self.paths, dm)?.is_some() {
                return Ok(());
            }
        }
        let op = MultipathForgetWwid {
            wwid: expected.to_string(),
        };
        match run_exec(self.privileged, &op, deadline) {
            Ok(o) if o.success() => {}
            Ok(o) => tracing::warn!(wwid = %expected, "multipath -w: {}", o.summary()),
            Err(e) => tracing::warn!(wwid = %expected, "multipath -w: {e}"),
        }
        Ok(())
    }

    /// The kernel removed `name` but udev left `/dev/disk/by-*` links to it: remove
    /// them through moord (which checks each is a link to `name` and that `name` is
    /// gone), then check again. Anything else left is reported with `waited`.
    fn remove_stale_links(
        &self,
        name: &str,
        waited: WaitError,
        deadline: Instant,
    ) -> Result<(), WaitError> {
        let left = removal_leftovers(self.paths, name)?;
        let root = self.paths.root();
        let links: Vec<String> = left
            .iter()
            .filter_map(|p| p.strip_prefix(root).ok())
            .map(|rel| format!("/{}", rel.display()))
            .filter(|p| p.starts_with("/dev/disk/by-"))
            .collect();
        if links.is_empty() || links.len() != left.len() {
            // The device itself is still there: not a udev leftover.
            return Err(waited);
        }
        for link in &links {
            tracing::warn!(%link, "udev left a link to the removed {name}: removing it");
            let op = BlockRemoveStaleLink {
                link: link.clone(),
                device: name.to_string(),
            };
            if let Err(e) = run_exec(self.privileged, &op, deadline) {
                tracing::warn!(%link, "not removed: {e}");
            }
        }
        if removal_leftovers(self.paths, name)?.is_empty() {
            Ok(())
        } else {
            Err(waited)
        }
    }

    /// After the paths are gone: flushed maps must be gone from sysfs, and
    /// multipathd must no longer monitor the removed paths.
    fn verify_maps_gone(
        &self,
        maps: &[(String, String)],
        flushed: &[String],
        removed: &[String],
        out: &mut DiskDetach,
        deadline: Instant,
    ) -> Result<(), DiskError> {
        for (dm, name) in maps {
            let still = scsi::dm_uuid(self.paths, dm)?.is_some();
            if still {
                out.leftovers.push(Leftover {
                    what: format!("multipath map {name} (/dev/{dm})"),
                    reason: if flushed.contains(dm) {
                        "still present after a successful flush".into()
                    } else {
                        "could not be flushed (in use?)".into()
                    },
                });
            }
        }
        if maps.is_empty() || removed.is_empty() {
            return Ok(());
        }
        match run_exec(self.privileged, &MultipathdPaths {}, deadline) {
            Ok(o) if o.success() => {
                for name in removed {
                    if o.stdout.lines().any(|l| l.trim() == name) {
                        out.leftovers.push(Leftover {
                            what: format!("multipathd path {name}"),
                            reason: "multipathd still monitors the removed path".into(),
                        });
                    }
                }
            }
            Ok(o) => tracing::warn!("multipathd show paths: {}", o.summary()),
            Err(e) => tracing::warn!("multipathd show paths: {e}"),
        }
        Ok(())
    }

    /// Find or create the multipath map over `disks` and wait until it has every
    /// path and is ready for I/O. Returns `dm-N`.
    pub fn assemble_map(
        &self,
        disks: &[ScsiDevice],
        wwid: &str,
        deadline: Instant,
    ) -> Result<String, DiskError> {
        let mine = |dm: &String| {
            scsi::dm_multipath_wwid(self.paths, dm)
                .ok()
                .flatten()
                .is_some_and(|w| w == wwid)
        };
        let existing = disks
            .iter()
            .flat_map(|d| scsi::holders(self.paths, &d.name).unwrap_or_default())
            .find(|dm| mine(dm));
        let mut watch = self.events.watch()?;
        let dm = match existing {
            Some(dm) => {
                // Paths the map does not have yet (e.g. a portal that came back).
                let slaves = self
                    .paths
                    .list_dir(&self.paths.sys(&format!("block/{dm}/slaves")))?
                    .unwrap_or_default();
                self.add_paths(
                    disks.iter().filter(|d| !slaves.contains(&d.name)),
                    wwid,
                    deadline,
                )?;
                dm
            }
            None => {
                // Whitelist the WWID (find_multipaths) and hand multipathd the paths.
                let first = &disks[0].name;
                let r = run_exec(
                    self.privileged,
                    &MultipathAddWwid {
                        device: first.clone(),
                        expected_wwid: wwid.into(),
                    },
                    deadline,
                )?;
                if !r.success() {
                    tracing::warn!("multipath -a: {}", r.summary());
                }
                self.add_paths(disks.iter(), wwid, deadline)?;
                if self.privileged.dry_run() {
                    return Err(DiskError::DryRun(
                        "then: wait for the multipath map and check it is ready".into(),
                    ));
                }
                wait_for_dm_holder(self.paths, &mut *watch, first, deadline)?
            }
        };
        if !mine(&dm) {
            return Err(DiskError::Multipath(format!(
                "{dm} holds the paths but is not the multipath map of WWID {wwid}"
            )));
        }
        // Every path in the map (multipathd adds them asynchronously); a path that
        // does not join within 10 s is reported, the map still works without it.
        let soon = deadline.min(Instant::now() + PATHS_JOIN);
        let all_in = wait_for(&mut *watch, soon, &format!("all paths in {dm}"), || {
            let slaves = self
                .paths
                .list_dir(&self.paths.sys(&format!("block/{dm}/slaves")))?
                .unwrap_or_default();
            Ok(disks.iter().all(|d| slaves.contains(&d.name)).then_some(()))
        });
        if let Err(e) = all_in {
            tracing::warn!("{e}");
        }
        self.wait_ready(&dm, wwid, deadline)?;
        Ok(dm)
    }

    /// Hand `disks` to multipathd (a refusal is logged: the map may still form).
    fn add_paths<'d>(
        &self,
        disks: impl Iterator<Item = &'d ScsiDevice>,
        wwid: &str,
        deadline: Instant,
    ) -> Result<(), DiskError> {
        for d in disks {
            let r = run_exec(
                self.privileged,
                &MultipathAddPath {
                    device: d.name.clone(),
                    expected_wwid: wwid.into(),
                },
                deadline,
            )?;
            if !r.success() {
                tracing::warn!(device = %d.name, "multipathd add path: {}", r.summary());
            }
        }
        Ok(())
    }

    /// `multipath -C dm-N` until the map has a usable path (after 0.1, 0.2, 0.4 …
    /// s: multipathd's path checkers run on their own clock, there is no event).
    fn wait_ready(&self, dm: &str, wwid: &str, deadline: Instant) -> Result<(), DiskError> {
        let mut pause = Duration::from_millis(100);
        let mut phase = Phase::new(format!("waiting for a usable path of {dm}"), deadline);
        let mut attempt = 0;
        loop {
            attempt += 1;
            phase.set_attempt(attempt);
            phase.tick();
            let r = run_exec(
                self.privileged,
                &MultipathCheck {
                    device: dm.into(),
                    expected_wwid: wwid.into(),
                },
                deadline,
            )?;
            if r.success() {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(DiskError::Multipath(format!(
                    "{dm} has no usable path before the deadline ({})",
                    r.summary()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Make the host see the new size of the volume's `disks` (WWID `expected`):
    /// rescan every path, require them to agree on the size (a path that is down
    /// or lagging would give the map a wrong size, os-brick #2032177), then resize
    /// the multipath map by its exact name, never a host-wide reconfigure.
    pub fn extend_disks(
        &self,
        disks: &[ScsiDevice],
        expected: &str,
        deadline: Instant,
    ) -> Result<Extended, DiskError> {
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
            for d in disks {
                run(
                    self.privileged,
                    &ScsiRescan {
                        device: d.name.clone(),
                        expected_wwid: expected.to_string(),
                    },
                    deadline,
                )?;
            }
            sizes.clear();
            for d in disks {
                let size = scsi::block_size_bytes(self.paths, &d.name)?.unwrap_or(0);
                sizes.push((format!("/dev/{}", d.name), size));
            }
            if sizes.iter().all(|(_, s)| *s == sizes[0].1) || self.privileged.dry_run() {
                break;
            }
        }
        let size = sizes[0].1;
        if sizes.iter().any(|(_, s)| *s != size) {
            return Err(DiskError::Multipath(format!(
                "the paths disagree on the volume's size after a rescan ({}); a path may be down: nothing resized",
                sizes
                    .iter()
                    .map(|(d, s)| format!("{d} {s} bytes"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let map = disks.iter().find_map(|d| {
            scsi::holders(self.paths, &d.name)
                .unwrap_or_default()
                .into_iter()
                .find(|dm| {
                    scsi::dm_multipath_wwid(self.paths, dm)
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
        let name = scsi::dm_name(self.paths, &dm)?.unwrap_or_default();
        let out = run_exec(
            self.privileged,
            &MultipathResize {
                device: dm.clone(),
                map: name.clone(),
                expected_wwid: expected.to_string(),
            },
            deadline,
        )?;
        if !out.success() || out.stdout.trim() == "fail" {
            return Err(DiskError::Multipath(format!(
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
                || Ok((scsi::block_size_bytes(self.paths, &dm)? == Some(size)).then_some(())),
            )?;
        }
        tracing::info!(map = %dm, size, "extended (multipath)");
        Ok(Extended {
            new_size: size,
            path: format!("/dev/{dm}"),
            paths: sizes,
        })
    }

    /// Scan exactly `hctl` (never a wildcard). The kernel scans synchronously:
    /// when the write returns and no SCSI device exists at `hctl`, the target did
    /// not present the LUN (yet): scan again after 1, 2, 4 … s (arrays can be slow
    /// to map a new LUN) until the deadline.
    pub fn scan_lun(&self, hctl: Hctl, deadline: Instant) -> Result<(), DiskError> {
        let dev = self.paths.sys(&format!("bus/scsi/devices/{hctl}"));
        let mut pause = Duration::from_secs(1);
        let mut phase = Phase::new(format!("scanning for LUN {hctl}"), deadline);
        let mut attempt = 0;
        loop {
            attempt += 1;
            phase.set_attempt(attempt);
            phase.tick();
            run(
                self.privileged,
                &ScsiScan {
                    host: hctl.host,
                    channel: hctl.channel,
                    target: hctl.target,
                    lun: hctl.lun,
                },
                deadline,
            )?;
            if dev.exists() || self.privileged.dry_run() {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(DiskError::NoLun { hctl });
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    /// A disk already sits at `hctl`: the same volume attached before, or a stale
    /// device of a volume the array has since replaced (CVE-2023-2088). moord
    /// refreshes its identity (rescan re-reads VPD page 0x83); if the WWID changed,
    /// or differs from what moor's attachment record says was handed out there,
    /// the device is not handed out.
    pub fn confirm_existing(
        &self,
        hctl: Hctl,
        name: String,
        deadline: Instant,
    ) -> Result<ScsiDevice, DiskError> {
        let stale = |why: String| DiskError::Stale {
            name: name.clone(),
            lun: hctl.lun,
            why,
        };
        let Some(before) = scsi::block_wwid(self.paths, &name)? else {
            return Err(stale(format!("/dev/{name} at {hctl} has no WWID")));
        };
        // What an earlier attach handed out at this LUN, if it was moor's.
        let recorded = self.registry.current(self.paths, &name);
        let refreshed = run(
            self.privileged,
            &ScsiRescan {
                device: name.clone(),
                expected_wwid: before.clone(),
            },
            deadline,
        );
        let after = scsi::block_wwid(self.paths, &name)?;
        let why = match refreshed {
            Err(PrivError::IdentityMismatch { message, .. }) => Some(message),
            Err(e) => return Err(e.into()),
            Ok(()) if after.as_deref() != Some(before.as_str()) => Some(format!(
                "WWID changed from {before} to {}",
                after.as_deref().unwrap_or("none")
            )),
            Ok(()) => match &recorded {
                Some(r) if after.as_deref() != Some(r.wwid.as_str()) => Some(format!(
                    "it was attached as {} with WWID {}, the array now presents WWID {} there",
                    r.volume_id.as_deref().unwrap_or(&r.target),
                    r.wwid,
                    after.as_deref().unwrap_or("none")
                )),
                _ => None,
            },
        };
        if let Some(why) = why {
            return Err(stale(why));
        }
        tracing::info!(device = %name, "LUN already attached; identity confirmed");
        Ok(ScsiDevice {
            hctl,
            name,
            wwid: Some(before),
        })
    }
}
