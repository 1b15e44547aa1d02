//! Fibre Channel attach, detach, extend and volume paths. The SCSI disk steps are
//! the ones every SCSI transport shares ([`crate::transport::scsi_disks`]); what is
//! FC's own is finding the paths: online HBAs (narrowed by the
//! `initiator_target_map`), and for each the (channel, target id) under which it
//! sees a target port, from sysfs.
//!
//! Differences from os-brick, on purpose (reference/os-brick.md §2.2, §7):
//! * scans are targeted (`C T L`); a target port no HBA sees is an error naming
//!   the HBAs and ports, and a `- - L` scan of every target is made only when the
//!   connection info asks for it (`enable_wildcard_scan`, default off);
//! * a single-path attach scans one path, not every path (no stray disks);
//! * disks are found by their SCSI address and identity, not by a by-path name
//!   (FCoE has none), and every path must carry the same WWID;
//! * a disk already at the LUN is refreshed and checked first (CVE-2023-2088);
//! * detach finds the disks by the WWID captured at attach and removes them all,
//!   waits for them to go and reports what is left.

use std::time::{Duration, Instant};

use moor_privhelper::ops::{
    MultipathdStatus, ScsiDelete, ScsiScanAllTargets, ZfcpPortRescan, ZfcpUnitAdd, ZfcpUnitRemove,
};
use serde::{Deserialize, Serialize};

use super::props::{FcProps, FcTarget, PropsError};
use super::sysfs::{self, FcHost};
use super::zfcp;
use crate::attachments::{Attachment, Registry, device_ino, now_secs};
use crate::exec::{PrivError, Privileged, run, run_exec};
use crate::host::scsi::{self, Hctl, ScsiDevice};
use crate::host::udev::{DeviceEvents, WaitError, scsi_block_name, wait_for, wait_for_scsi_disk};
use crate::host::{HostError, HostPaths};
use crate::lock::{LockDir, LockError, Mode};
use crate::transport::scsi_disks::{DiskDetach, DiskError, ScsiHost};
use crate::transport::{Extended, Leftover, detach_status, detach_summary};
use crate::types::{CcwBusId, FcpLun};
use zfcp::UnitId;

/// How long undoing a failed attach may take, even past the attach's deadline.
const CLEANUP_TIME: Duration = Duration::from_secs(30);

/// With multipath, how long the other paths' disks may take once the first is
/// there before the map is built without them.
const PATH_GRACE: Duration = Duration::from_secs(10);

/// How long a zFCP adapter may take to open the ports a port scan found.
const PORT_SCAN: Duration = Duration::from_secs(30);

/// How long one path may take to present the LUN when other paths remain.
const PATH_TRY: Duration = Duration::from_secs(15);

/// What `moor connect fibre_channel` returns (os-brick's `device_info`, plus the
/// disks behind `path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    /// The volume's WWID (udev form), re-verified by detach and extend.
    #[serde(default)]
    pub scsi_wwn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_id: Option<String>,
    /// moor: the paths, `sdc 5:0:0:1`.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// Everything an FC attach, detach or extend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FcError {
    #[error(transparent)]
    Props(#[from] PropsError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Privileged(#[from] PrivError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("no online Fibre Channel HBA{0}")]
    NoHba(String),
    /// No HBA sees any of the volume's target ports: nothing to scan.
    #[error(
        "no online HBA sees target port(s) {targets} (HBAs: {hbas}); check zoning and the array's host mapping"
    )]
    NoTargetPort { targets: String, hbas: String },
    #[error("no path of the volume could be attached: {}", .0.join("; "))]
    AllPathsFailed(Vec<String>),
    #[error("{0}")]
    Volume(String),
    /// A disk at the LUN carries another volume (CVE-2023-2088).
    #[error("{0}")]
    Stale(String),
    #[error(
        "device_info has no scsi_wwn: moor will not remove devices it cannot identify (pass the device_info moor connect printed)"
    )]
    NoIdentity,
    #[error("detach incomplete: {}", .0.summary())]
    Incomplete(Box<DetachOutcome>),
    #[error("multipath: {0}")]
    Multipath(String),
    /// An attach failed and some of what it had done could not be undone.
    #[error("{error}; not undone: {}", .left.join("; "))]
    NotUndone {
        error: Box<FcError>,
        left: Vec<String>,
    },
    /// A dry run cannot go past a step whose effect later steps need.
    #[error("dry run stops here: {0}")]
    DryRun(String),
}

impl From<DiskError> for FcError {
    fn from(e: DiskError) -> Self {
        match e {
            DiskError::Host(e) => FcError::Host(e),
            DiskError::Privileged(e) => FcError::Privileged(e),
            DiskError::Wait(e) => FcError::Wait(e),
            DiskError::Multipath(m) => FcError::Multipath(m),
            DiskError::DryRun(m) => FcError::DryRun(m),
            e @ DiskError::Stale { .. } => FcError::Stale(e.to_string()),
            e @ (DiskError::FlushFailed { .. }
            | DiskError::MapChanged { .. }
            | DiskError::NoLun { .. }) => FcError::Volume(e.to_string()),
        }
    }
}

/// The result of a detach (architecture invariant 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachOutcome {
    /// `clean`, `clean-with-data-loss` or `leftovers`.
    pub status: String,
    /// SCSI disks removed from the kernel.
    pub removed: Vec<String>,
    /// Devices removed although their buffers could not be flushed (`force`).
    pub data_loss_risk: Vec<String>,
    pub leftovers: Vec<Leftover>,
}

impl DetachOutcome {
    pub fn summary(&self) -> String {
        detach_summary(&self.leftovers, &self.data_loss_risk)
    }
}

pub use crate::transport::Options;

/// The Fibre Channel connector.
pub struct FcConnector<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub locks: LockDir,
    pub registry: Registry,
    pub options: Options,
}

impl std::fmt::Debug for FcConnector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcConnector")
            .field("paths", &self.paths)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One way to the volume: an HBA, a target port and the LUN's SCSI address.
#[derive(Debug, Clone)]
struct FcPath {
    hba: FcHost,
    target: FcTarget,
    hctl: Hctl,
}

impl FcPath {
    fn name(&self) -> String {
        format!(
            "host{} -> {} LUN {}",
            self.hba.host,
            self.target.wwpn.sysfs_form(),
            self.target.lun
        )
    }
}

/// What an attach did that a failure must undo: the disks it scanned in and the
/// zFCP units it added (never those that were there before).
#[derive(Debug, Default)]
struct Undo {
    disks: Vec<ScsiDevice>,
    units: Vec<UnitId>,
}

fn volume_lock(props: &FcProps) -> String {
    let t = props.targets[0];
    format!("fc-volume-{}-lun-{}", t.wwpn, t.lun)
}

impl FcConnector<'_> {
    fn deadline(&self) -> Instant {
        Instant::now() + self.options.timeout
    }

    fn scsi_host(&self) -> ScsiHost<'_> {
        ScsiHost {
            paths: &self.paths,
            privileged: self.privileged,
            events: self.events,
            registry: &self.registry,
        }
    }

    /// The online HBAs the volume may use (those in `initiator_target_map`, when
    /// it is given).
    fn hbas(&self, props: &FcProps) -> Result<Vec<FcHost>, FcError> {
        let all = sysfs::fc_hosts(&self.paths)?;
        let usable: Vec<FcHost> = all
            .iter()
            .filter(|h| h.online() && self.adapter_online(h))
            .filter(|h| {
                props
                    .initiator_target_map
                    .as_ref()
                    .is_none_or(|m| m.contains_key(&h.port_name))
            })
            .cloned()
            .collect();
        if usable.is_empty() {
            let seen: Vec<String> = all
                .iter()
                .map(|h| format!("host{} {} {}", h.host, h.port_name, h.port_state))
                .collect();
            let detail = if seen.is_empty() {
                " (no /sys/class/fc_host)".to_string()
            } else if props.initiator_target_map.is_some() {
                format!(" in the initiator_target_map (have: {})", seen.join(", "))
            } else {
                format!(" (have: {})", seen.join(", "))
            };
            return Err(FcError::NoHba(detail));
        }
        Ok(usable)
    }

    /// A zFCP adapter must be online too (an offline vHBA is ignored); other
    /// HBAs have no such state.
    fn adapter_online(&self, h: &FcHost) -> bool {
        match zfcp::adapter(&self.paths, h) {
            Ok(Some(a)) => a.online,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(host = h.host, "zfcp adapter state: {e}");
                false
            }
        }
    }

    /// Every visible path of the volume: for each usable HBA, each of its target
    /// ports it sees as a SCSI target.
    fn find_paths(&self, props: &FcProps) -> Result<Vec<FcPath>, FcError> {
        let hbas = self.hbas(props)?;
        let mut out = Vec::new();
        let mut blocked = Vec::new();
        for hba in &hbas {
            // zfcp gave up on the adapter or port: no LUN comes through it until
            // an operator acts, so waiting for one would only use up the deadline.
            let adapter = zfcp::adapter(&self.paths, hba)?;
            if let Some(a) = adapter.as_ref().filter(|a| a.failed) {
                tracing::warn!(host = hba.host, busid = %a.busid, "zfcp adapter failed: path not used");
                blocked.push(format!("zfcp adapter {} failed", a.busid));
                continue;
            }
            let rports = sysfs::remote_ports(&self.paths, hba.host)?;
            for t in props.targets_for(hba.port_name) {
                if let Some(a) = &adapter
                    && zfcp::port_failed(&self.paths, a.busid, t.wwpn)?
                {
                    let port = t.wwpn.sysfs_form();
                    tracing::warn!(busid = %a.busid, %port, "zfcp port failed: path not used");
                    blocked.push(format!("zfcp port {} {port} failed", a.busid));
                    continue;
                }
                // A remote port that lost its link (Blocked) or is gone (Not
                // Present) cannot carry a scan.
                if let Some(r) = rports.iter().find(|r| r.port_name == t.wwpn)
                    && r.port_state != "Online"
                {
                    tracing::warn!(rport = %r.name, state = %r.port_state, "path not used");
                    blocked.push(format!("{} {}", r.name, r.port_state));
                    continue;
                }
                if let Some(hctl) = sysfs::hctl_of(&self.paths, hba, &t)? {
                    out.push(FcPath {
                        hba: hba.clone(),
                        target: t,
                        hctl,
                    });
                }
            }
        }
        if out.is_empty() {
            let targets: Vec<String> = props.targets.iter().map(|t| t.wwpn.to_string()).collect();
            let hbas: Vec<String> = hbas
                .iter()
                .map(|h| format!("host{} {}", h.host, h.port_name))
                .collect();
            let mut hbas = hbas.join(", ");
            if !blocked.is_empty() {
                hbas.push_str(&format!("; not usable: {}", blocked.join(", ")));
            }
            return Err(FcError::NoTargetPort {
                targets: targets.join(", "),
                hbas,
            });
        }
        Ok(out)
    }

    /// For a path through a zFCP adapter without automatic LUN scan: the adapter
    /// and the FCP LUN to `unit_add` (the kernel's `int_to_scsilun` of the LUN).
    fn unit_needed(&self, p: &FcPath) -> Result<Option<(CcwBusId, FcpLun)>, FcError> {
        let Some(a) = zfcp::adapter(&self.paths, &p.hba)? else {
            return Ok(None);
        };
        if zfcp::auto_lun_scan(&self.paths, &a)? {
            return Ok(None);
        }
        Ok(Some((a.busid, FcpLun::from_linux(p.target.lun))))
    }

    /// `unit_add` (unless zfcp has the unit already), then the unit must not be
    /// `failed` (zfcp could not open the LUN: no such LUN, access denied). A unit
    /// this adds goes into `added`: only those may a failed attach remove.
    fn add_unit(
        &self,
        p: &FcPath,
        busid: CcwBusId,
        fcp_lun: FcpLun,
        added: &mut Vec<UnitId>,
        deadline: Instant,
    ) -> Result<(), FcError> {
        let wwpn = p.target.wwpn;
        if zfcp::unit(&self.paths, busid, wwpn, fcp_lun)?.is_none() {
            run(
                self.privileged,
                &ZfcpUnitAdd {
                    busid,
                    wwpn,
                    fcp_lun,
                },
                deadline,
            )?;
            added.push((busid, wwpn, fcp_lun));
        }
        if self.privileged.dry_run() {
            return Ok(());
        }
        match zfcp::unit(&self.paths, busid, wwpn, fcp_lun)? {
            Some(zfcp::Unit::Ready) => Ok(()),
            Some(zfcp::Unit::Failed) => Err(FcError::Volume(format!(
                "zfcp could not open LUN {fcp_lun} of {} on {busid} (unit failed: no such LUN, or access denied)",
                wwpn.sysfs_form()
            ))),
            None => Err(FcError::Volume(format!(
                "unit_add of {fcp_lun} on {busid} {} made no unit",
                wwpn.sysfs_form()
            ))),
        }
    }

    /// No HBA shows any of the volume's ports and the connection info allows
    /// wildcard scans: scan the volume's LUNs on every target of every usable HBA
    /// (`- - L`), as os-brick does. Disks of other targets this adds are logged;
    /// they are other volumes' LUNs, which is why the scan is off by default.
    fn wildcard_scan(&self, props: &FcProps, deadline: Instant) -> Result<(), FcError> {
        for hba in self.hbas(props)? {
            let mut luns: Vec<u64> = props
                .targets_for(hba.port_name)
                .iter()
                .map(|t| t.lun.get())
                .collect();
            luns.sort_unstable();
            luns.dedup();
            for lun in luns {
                let before = self.host_devices(hba.host, lun)?;
                tracing::warn!(
                    host = hba.host,
                    lun,
                    "no target port visible: wildcard scan (enable_wildcard_scan)"
                );
                run(
                    self.privileged,
                    &ScsiScanAllTargets {
                        host: hba.host,
                        lun,
                    },
                    deadline,
                )?;
                let added: Vec<String> = self
                    .host_devices(hba.host, lun)?
                    .into_iter()
                    .filter(|h| !before.contains(h))
                    .map(|h| h.to_string())
                    .collect();
                if !added.is_empty() {
                    tracing::warn!(
                        host = hba.host,
                        ?added,
                        "the wildcard scan added SCSI devices"
                    );
                }
            }
        }
        Ok(())
    }

    /// The SCSI devices of LUN `lun` on host `host`.
    fn host_devices(&self, host: u32, lun: u64) -> Result<Vec<Hctl>, FcError> {
        Ok(self
            .paths
            .list_prefixed(&self.paths.sys("bus/scsi/devices"), &format!("{host}:"))?
            .into_iter()
            .filter_map(|n| n.parse::<Hctl>().ok())
            .filter(|h| h.host == host && h.lun == lun)
            .collect())
    }

    /// zFCP adapters open remote ports they have not seen after a port scan:
    /// `port_rescan` on each online zFCP HBA that does not know one of its
    /// target ports yet, then wait (events, 30 s at most) for the ports.
    fn open_zfcp_ports(&self, props: &FcProps, deadline: Instant) -> Result<(), FcError> {
        for hba in self.hbas(props)? {
            let Some(a) = zfcp::adapter(&self.paths, &hba)? else {
                continue;
            };
            // A failed adapter opens no port (find_paths logs and skips it).
            if a.failed {
                continue;
            }
            let mut missing = Vec::new();
            for t in props.targets_for(hba.port_name) {
                if !zfcp::port_known(&self.paths, a.busid, t.wwpn)? {
                    missing.push(t.wwpn);
                }
            }
            if missing.is_empty() {
                continue;
            }
            let mut watch = self.events.watch()?;
            run(
                self.privileged,
                &ZfcpPortRescan { busid: a.busid },
                deadline,
            )?;
            if self.privileged.dry_run() {
                return Err(FcError::DryRun(format!(
                    "then: wait for zfcp {} to open port(s) {missing:?}",
                    a.busid
                )));
            }
            let until = deadline.min(Instant::now() + PORT_SCAN);
            let what = format!("zfcp {} to open port(s) {missing:?}", a.busid);
            let r = wait_for(&mut *watch, until, &what, || {
                for w in &missing {
                    if !zfcp::port_known(&self.paths, a.busid, *w)? {
                        return Ok(None);
                    }
                    // A port zfcp could not open gets no remote port: not waited
                    // for (find_paths says why the path is not used).
                    if zfcp::port_failed(&self.paths, a.busid, *w)? {
                        continue;
                    }
                    if sysfs::target_ids(&self.paths, hba.host, *w)?.is_none() {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            });
            if let Err(e) = r {
                // The paths through the other ports (or HBAs) may still do.
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    /// The disk of one path: an existing one is confirmed by moord (it may be a
    /// stale device of another volume), a missing one is scanned and awaited.
    fn attach_path(
        &self,
        p: &FcPath,
        undo: &mut Undo,
        deadline: Instant,
    ) -> Result<ScsiDevice, FcError> {
        if let Some(name) = scsi_block_name(&self.paths, p.hctl)? {
            return Ok(self.scsi_host().confirm_existing(p.hctl, name, deadline)?);
        }
        let mut watch = self.events.watch()?;
        match self.unit_needed(p)? {
            // zfcp opens the unit and scans its LUN itself.
            Some((busid, fcp_lun)) => {
                self.add_unit(p, busid, fcp_lun, &mut undo.units, deadline)?
            }
            None => self.scsi_host().scan_lun(p.hctl, deadline)?,
        }
        if self.privileged.dry_run() {
            return Err(FcError::DryRun(format!(
                "then: wait for the disk at {} and read its WWID",
                p.hctl
            )));
        }
        let d = wait_for_scsi_disk(&self.paths, &mut *watch, p.hctl, deadline)?;
        undo.disks.push(d.clone());
        Ok(d)
    }

    /// Attach one volume and return its device_info.
    pub fn connect(&self, props: &FcProps) -> Result<DeviceInfo, FcError> {
        let deadline = self.deadline();
        let _volume = self
            .locks
            .lock(&volume_lock(props), Mode::Exclusive, deadline)?;
        let mut multipath = self.options.multipath;
        if multipath {
            let running = matches!(
                run_exec(self.privileged, &MultipathdStatus {}, deadline),
                Ok(o) if o.success()
            );
            if !running {
                if props.enforce_multipath {
                    return Err(FcError::Multipath(
                        "multipathd is not running and the volume requires multipath (enforce_multipath); nothing was attached".into(),
                    ));
                }
                tracing::warn!("multipathd is not running: attaching a single path");
                multipath = false;
            }
        }
        self.open_zfcp_ports(props, deadline)?;
        let paths = match self.find_paths(props) {
            Err(FcError::NoTargetPort { .. }) if props.enable_wildcard_scan => {
                self.wildcard_scan(props, deadline)?;
                self.find_paths(props)?
            }
            other => other?,
        };
        let mut undo = Undo::default();
        match self.attach(props, &paths, multipath, &mut undo, deadline) {
            Err(error) if !self.privileged.dry_run() => {
                let left = self.abandon(&undo);
                if left.is_empty() {
                    Err(error)
                } else {
                    Err(FcError::NotUndone {
                        error: Box::new(error),
                        left,
                    })
                }
            }
            r => r,
        }
    }

    fn attach(
        &self,
        props: &FcProps,
        paths: &[FcPath],
        multipath: bool,
        undo: &mut Undo,
        deadline: Instant,
    ) -> Result<DeviceInfo, FcError> {
        let mut found: Vec<(&FcPath, ScsiDevice)> = Vec::new();
        let mut failures = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            // Single path: the first path that works is the volume's.
            if !multipath && !found.is_empty() {
                break;
            }
            // The other paths of a multipath volume get a short grace once one
            // is there: the map works without a slow path.
            // A path that does not present the LUN must leave time for the next.
            let last = i + 1 == paths.len();
            let dl = match (found.is_empty(), last) {
                (true, true) => deadline,
                (true, false) => deadline.min(Instant::now() + PATH_TRY),
                (false, _) => deadline.min(Instant::now() + PATH_GRACE),
            };
            match self.attach_path(p, undo, dl) {
                Ok(d) => found.push((p, d)),
                // A dry run's stop, or another volume's device at the LUN: not a
                // path failure.
                Err(e @ (FcError::DryRun(_) | FcError::Stale(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(path = %p.name(), "path failed: {e}");
                    failures.push(format!("{}: {e}", p.name()));
                }
            }
        }
        let Some((_, first)) = found.first() else {
            return Err(FcError::AllPathsFailed(failures));
        };
        let wwid = first.wwid.clone().unwrap_or_default();
        let disagree: Vec<String> = found
            .iter()
            .filter(|(_, d)| d.wwid.as_deref() != Some(wwid.as_str()))
            .map(|(p, d)| {
                format!(
                    "{} via {} has WWID {}",
                    d.name,
                    p.name(),
                    d.wwid.as_deref().unwrap_or("(none)")
                )
            })
            .collect();
        if !disagree.is_empty() {
            return Err(FcError::Volume(format!(
                "the paths do not agree on the volume's identity ({} has {wwid}; {}): refusing to hand out different volumes as one",
                first.name,
                disagree.join("; ")
            )));
        }
        let disks: Vec<ScsiDevice> = found.iter().map(|(_, d)| d.clone()).collect();
        let path = if multipath {
            format!(
                "/dev/{}",
                self.scsi_host().assemble_map(&disks, &wwid, deadline)?
            )
        } else {
            format!("/dev/{}", disks[0].name)
        };
        for (p, d) in &found {
            self.remember(props, p, d);
        }
        if !failures.is_empty() {
            tracing::warn!(failed = ?failures, "attached with fewer paths than visible");
        }
        tracing::info!(%path, wwid = %wwid, paths = disks.len(), "attached");
        Ok(DeviceInfo {
            kind: "block".into(),
            path,
            scsi_wwn: wwid.clone(),
            multipath_id: multipath.then_some(wwid),
            devices: disks
                .iter()
                .map(|d| format!("{} {}", d.name, d.hctl))
                .collect(),
        })
    }

    /// Records a disk this attach handed out (for the stale-device check).
    fn remember(&self, props: &FcProps, p: &FcPath, d: &ScsiDevice) {
        let (Some(wwid), Ok(Some(ino))) = (d.wwid.clone(), device_ino(&self.paths, &d.name)) else {
            return;
        };
        let a = Attachment {
            device: d.name.clone(),
            wwid,
            sysfs_ino: ino,
            protocol: "fibre_channel".into(),
            target: format!("{} lun {}", p.target.wwpn.sysfs_form(), p.target.lun),
            volume_id: props.volume_id.clone(),
            attached_at: now_secs(),
        };
        if let Err(e) = self.registry.record(&a) {
            tracing::warn!(registry = %self.registry.path().display(), "attachment not recorded: {e}");
        }
    }

    /// Undoes a failed attach: deletes the disks it scanned in (moord checks each
    /// WWID), then removes the zFCP units it added. Returns what is left.
    fn abandon(&self, undo: &Undo) -> Vec<String> {
        let dl = Instant::now() + CLEANUP_TIME;
        let mut left = Vec::new();
        for d in &undo.disks {
            let Some(w) = d.wwid.clone() else { continue };
            let del = ScsiDelete {
                device: d.name.clone(),
                expected_wwid: w,
            };
            match run(self.privileged, &del, dl) {
                Ok(()) => tracing::info!(device = %d.name, "removed (attach failed)"),
                Err(e) => {
                    tracing::warn!(device = %d.name, "not removed: {e}");
                    left.push(format!("/dev/{}: {e}", d.name));
                }
            }
        }
        for &id in &undo.units {
            let what = format!("zfcp unit {}", zfcp::unit_name(id));
            match self.remove_unit(id, dl) {
                Ok(()) => tracing::info!(unit = %what, "removed (attach failed)"),
                Err(e) => {
                    tracing::warn!(unit = %what, "not removed: {e}");
                    left.push(format!("{what}: {e}"));
                }
            }
        }
        left
    }

    /// `unit_remove` of a unit with no SCSI device left. A device that is still
    /// there (a disk that came after its wait, one not deleted) keeps the unit:
    /// moord's guard would refuse, and removing the unit would pull the device.
    fn remove_unit(&self, id: UnitId, deadline: Instant) -> Result<(), FcError> {
        let (busid, wwpn, fcp_lun) = id;
        if zfcp::unit(&self.paths, busid, wwpn, fcp_lun)?.is_none() {
            return Ok(());
        }
        let devs = zfcp::unit_devices(&self.paths, id)?;
        if !devs.is_empty() {
            let devs: Vec<String> = devs.iter().map(Hctl::to_string).collect();
            return Err(FcError::Volume(format!(
                "SCSI device {} of the unit is still there",
                devs.join(", ")
            )));
        }
        run(
            self.privileged,
            &ZfcpUnitRemove {
                busid,
                wwpn,
                fcp_lun,
            },
            deadline,
        )?;
        Ok(())
    }

    /// The zFCP units the connection info names: on each zFCP adapter it may use
    /// (`initiator_target_map`), each of its target ports and the FCP LUN there.
    /// Whatever state the adapter is in: a unit outlives its adapter's link.
    fn named_units(&self, props: &FcProps) -> Result<Vec<UnitId>, FcError> {
        let mut out = Vec::new();
        for hba in sysfs::fc_hosts(&self.paths)? {
            let Some(a) = zfcp::adapter(&self.paths, &hba)? else {
                continue;
            };
            for t in props.targets_for(hba.port_name) {
                let id = (a.busid, t.wwpn, FcpLun::from_linux(t.lun));
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// The WWID recorded at attach (required: no "empty means don't care") and the
    /// deadline.
    fn begin(&self, info: &DeviceInfo) -> Result<(String, Instant), FcError> {
        let expected = info.scsi_wwn.trim().to_string();
        if expected.is_empty() {
            return Err(FcError::NoIdentity);
        }
        let deadline = self.deadline();
        Ok((expected, deadline))
    }

    /// The volume's disks: every FC disk carrying `expected`. A disk at one of the
    /// volume's (port, LUN) addresses with another WWID is reported, not touched.
    fn find_volume(
        &self,
        props: &FcProps,
        expected: &str,
        leftovers: &mut Vec<Leftover>,
    ) -> Result<Vec<ScsiDevice>, FcError> {
        let mut ours = Vec::new();
        for name in self.paths.list_prefixed(&self.paths.sys("block"), "sd")? {
            let Some(hctl) = scsi::block_hctl(&self.paths, &name)? else {
                continue;
            };
            if !sysfs::is_fc_device(&self.paths, hctl)? {
                continue;
            }
            let wwid = scsi::block_wwid(&self.paths, &name)?;
            if wwid.as_deref() == Some(expected) {
                ours.push(ScsiDevice { hctl, name, wwid });
            }
        }
        // The volume's addresses now carrying something else.
        for p in self.find_paths(props).unwrap_or_default() {
            if let Some(name) = scsi_block_name(&self.paths, p.hctl)?
                && !ours.iter().any(|d| d.name == name)
            {
                let wwid = scsi::block_wwid(&self.paths, &name)?;
                leftovers.push(Leftover {
                    what: format!("/dev/{name}"),
                    reason: format!(
                        "sits at {} but carries WWID {}, not {expected}: another volume's device, not touched",
                        p.name(),
                        wwid.as_deref().unwrap_or("(none)")
                    ),
                });
            }
        }
        Ok(ours)
    }

    /// Detach one volume: every FC disk carrying the WWID captured at attach
    /// (whatever HBA or port it came through), with the shared disk steps. `force`
    /// removes disks and maps whose flush failed (and reports the risk);
    /// `ignore_errors` returns the outcome instead of an error when something is
    /// left.
    pub fn disconnect(
        &self,
        props: &FcProps,
        info: &DeviceInfo,
        force: bool,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, FcError> {
        let (expected, deadline) = self.begin(info)?;
        let _volume = self
            .locks
            .lock(&volume_lock(props), Mode::Exclusive, deadline)?;
        let mut dd = DiskDetach::default();
        let ours = self.find_volume(props, &expected, &mut dd.leftovers)?;
        if ours.is_empty() {
            tracing::info!(wwid = %expected, "no disk of the volume is attached");
        }
        // zFCP units of these disks (added by unit_add): removed once their disks
        // are gone.
        let mut units = Vec::new();
        for d in &ours {
            if let Some(id @ (busid, wwpn, lun)) = zfcp::device_unit(&self.paths, d.hctl)?
                && zfcp::unit(&self.paths, busid, wwpn, lun)?.is_some()
                && !units.contains(&id)
            {
                units.push(id);
            }
        }
        // Units the connection info names whose disk is gone already (deleted,
        // or never there: a failed unit) are found in zfcp's sysfs, not through
        // disks. One that still has a SCSI device that is not the volume's disk
        // is not touched.
        for id @ (busid, wwpn, lun) in self.named_units(props)? {
            if units.contains(&id) || zfcp::unit(&self.paths, busid, wwpn, lun)?.is_none() {
                continue;
            }
            let others: Vec<String> = zfcp::unit_devices(&self.paths, id)?
                .into_iter()
                .filter(|h| !ours.iter().any(|d| d.hctl == *h))
                .map(|h| h.to_string())
                .collect();
            if others.is_empty() {
                units.push(id);
            } else {
                dd.leftovers.push(Leftover {
                    what: format!("zfcp unit {}", zfcp::unit_name(id)),
                    reason: format!(
                        "has SCSI device {} that is not the volume's disk: not touched",
                        others.join(", ")
                    ),
                });
            }
        }
        self.scsi_host()
            .detach_disks(ours, &expected, force, &mut dd, deadline)?;
        for (busid, wwpn, fcp_lun) in units {
            let op = ZfcpUnitRemove {
                busid,
                wwpn,
                fcp_lun,
            };
            if let Err(e) = run(self.privileged, &op, deadline) {
                dd.leftovers.push(Leftover {
                    what: format!("zfcp unit {}", zfcp::unit_name((busid, wwpn, fcp_lun))),
                    reason: e.to_string(),
                });
            }
        }
        let out = DetachOutcome {
            status: detach_status(&dd.leftovers, &dd.data_loss_risk).into(),
            removed: dd.removed,
            data_loss_risk: dd.data_loss_risk,
            leftovers: dd.leftovers,
        };
        tracing::info!(status = %out.status, removed = ?out.removed, "detached");
        if !out.leftovers.is_empty() && !ignore_errors {
            return Err(FcError::Incomplete(Box::new(out)));
        }
        Ok(out)
    }

    /// Make the host see the volume's new size (every path rescanned and in
    /// agreement, the map resized by name).
    pub fn extend(&self, props: &FcProps, info: &DeviceInfo) -> Result<Extended, FcError> {
        let (expected, deadline) = self.begin(info)?;
        let _volume = self
            .locks
            .lock(&volume_lock(props), Mode::Exclusive, deadline)?;
        let disks = self.find_volume(props, &expected, &mut Vec::new())?;
        if disks.is_empty() {
            return Err(FcError::Volume(format!(
                "no FC disk with WWID {expected} is attached on this host"
            )));
        }
        Ok(self.scsi_host().extend_disks(&disks, &expected, deadline)?)
    }

    /// The devices of the volume's visible paths that exist now: the by-path name
    /// when udev made one, else `/dev/sdX` (FCoE).
    pub fn volume_paths(&self, props: &FcProps) -> Result<Vec<String>, FcError> {
        let mut out = Vec::new();
        for p in self.find_paths(props)? {
            let Some(name) = scsi_block_name(&self.paths, p.hctl)? else {
                continue;
            };
            let mut names: Vec<String> =
                sysfs::by_path_name(&p.hba, &p.target).into_iter().collect();
            if let Some(a) = zfcp::adapter(&self.paths, &p.hba)? {
                names = zfcp::by_path_names(a.busid, &p.target).to_vec();
            }
            let by_path = names
                .into_iter()
                .find(|l| std::fs::metadata(self.paths.root().join(&l[1..])).is_ok());
            out.push(by_path.unwrap_or_else(|| format!("/dev/{name}")));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
