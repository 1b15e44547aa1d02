//! ECKD/DASD attach: make the device visible (take it off the `cio_ignore` list),
//! set it online, refuse what is not this volume (a PAV alias, another uid, an
//! FBA or non-DASD device), format it only when the caller asked and moord allows
//! it, and hand out its udev by-path link — every wait on udev events up to one
//! deadline.
//!
//! A DASD's uid and alias flag exist only while it is online (the DASD driver reads
//! them from the device), so for a device that is offline the checks come right
//! after `dasd.online`; a refused device that this attach set online is set offline
//! again. A device that is already online is checked before anything changes.

use std::time::{Duration, Instant};

use moor_privhelper::ops::{DasdFormat, DasdFree, DasdOnline, DasdPartition, DasdSafeOffline};
use serde::{Deserialize, Serialize};

use super::props::{DasdProps, PropsError};
use super::sysfs::{self, CcwDevice, ECKD_DRIVER};
use crate::attachments::{Attachment, Registry, device_ino, now_secs};
use crate::exec::{ExecOutput, PrivError, Privileged, run_exec};
use crate::host::udev::{
    DeviceEvents, WaitError, Watch, udev_initialized, wait_for, wait_for_removal,
};
use crate::host::{HostError, HostPaths};
use crate::lock::{LockDir, LockError, Mode};
use crate::types::{CcwBusId, DasdUid};

/// How long undoing a failed attach may take, even past the attach's deadline.
const CLEANUP_TIME: Duration = Duration::from_secs(30);

/// The attachment records' protocol name.
pub const PROTOCOL: &str = "fibre_channel_eckd";

/// What `connect` returns: os-brick's `device_info` (`type`, `path`) plus the
/// identity detach re-verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub kind: String,
    /// udev's by-path link of the whole disk, `/dev/disk/by-path/ccw-<busid>`: it
    /// names the device number, so it is stable across reboots and re-attaches
    /// (the `dasdX` name follows the order devices were first set online).
    pub path: String,
    /// The device bus id (`0.0.b100`).
    pub busid: String,
    /// The DASD's uid at attach (what detach re-verifies).
    pub uid: String,
    /// The kernel's disk (`dasdb`).
    pub device: String,
    /// The disk's size in bytes.
    pub size: u64,
    /// The by-path links of the disk's partitions (`…-part1`), if it has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// This attach formatted the DASD (`format_if_unformatted`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub formatted: bool,
}

/// Everything a DASD attach, detach or extend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DasdError {
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
    #[error(
        "no CCW device {busid}: not in /sys/bus/ccw/devices and {why} (is the device number in this system's I/O configuration, or attached to this z/VM guest?)"
    )]
    NotFound { busid: CcwBusId, why: &'static str },
    #[error("{busid} is not an ECKD DASD: {found}")]
    NotEckd { busid: CcwBusId, found: String },
    #[error("{busid} is a PAV alias device (uid {uid}), not a volume: attach its base device")]
    Alias { busid: CcwBusId, uid: String },
    #[error("{busid} carries uid {found}, not {expected}: it is not this volume")]
    UidMismatch {
        busid: CcwBusId,
        expected: String,
        found: String,
    },
    #[error(
        "{busid} carries uid {uid}, whose {key} is {found}, not {expected}: it is not this volume"
    )]
    AddressMismatch {
        busid: CcwBusId,
        key: &'static str,
        expected: String,
        found: String,
        uid: String,
    },
    #[error(
        "no online DASD shows {wanted}: only a DASD that is online shows its unit address (in its uid), and moor does not set devices online to look; give device_id, the device's bus id in the I/O configuration"
    )]
    NoOnlineMatch { wanted: String },
    #[error(
        "several online DASDs show {wanted}: {candidates}; give device_id, or the full uid to tell them apart"
    )]
    SeveralMatch { wanted: String, candidates: String },
    #[error(
        "{busid} (/dev/{device}) is unformatted: set format_if_unformatted to have moor format it (moord must grant dasd.format)"
    )]
    Unformatted { busid: CcwBusId, device: String },
    #[error(
        "moord does not grant {op} to this caller: an administrator adds it to the caller's policy (docs/dasd.md); {message}"
    )]
    NotGranted { op: &'static str, message: String },
    #[error("{op} {busid} failed: {message}")]
    CommandFailed {
        op: &'static str,
        busid: CcwBusId,
        message: String,
    },
    #[error("device_info carries no DASD uid to verify the device by")]
    NoIdentity,
    #[error("device_info: {0}")]
    BadDeviceInfo(String),
    #[error("not attached: {0}")]
    NotAttached(String),
    #[error(
        "setting {busid} offline failed: {message}; nothing was detached ({busid} stays online; retry, or detach with --force and lose unwritten data)"
    )]
    OfflineFailed { busid: CcwBusId, message: String },
    /// A detach left something (the outcome says what).
    #[error("detach incomplete: {}", .0.summary())]
    Incomplete(Box<super::detach::DetachOutcome>),
    /// An attach failed after it had set the device online; `note` says whether
    /// it was set offline again.
    #[error("{error}; {note}")]
    Undone { error: Box<DasdError>, note: String },
    /// A dry run cannot go past a step whose effect later steps need.
    #[error("dry run stops here: {0}")]
    DryRun(String),
}

/// Options of one connector.
#[derive(Debug, Clone)]
pub struct Options {
    /// Overall deadline of one attach, detach or extend (formatting a large DASD
    /// takes many minutes: give `dasd.format` a deadline that fits).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(120),
        }
    }
}

/// The ECKD/DASD connector.
pub struct DasdConnector<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub locks: LockDir,
    /// What moor attached on this host.
    pub registry: Registry,
    pub options: Options,
}

impl std::fmt::Debug for DasdConnector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DasdConnector")
            .field("paths", &self.paths)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One lock per device number.
pub(super) fn volume_lock(busid: CcwBusId) -> String {
    format!("dasd-{busid}")
}

/// What a lookup searched for, for messages.
pub(super) fn wanted(props: &DasdProps) -> String {
    let ssid = props
        .subsystem_id
        .map_or_else(|| "?".into(), |s| s.to_string());
    let ua = props
        .unit_address
        .map_or_else(|| "?".into(), |u| u.to_string());
    match &props.uid {
        Some(uid) => format!("subsystem id {ssid} and unit address {ua} with uid {uid}"),
        None => format!("subsystem id {ssid} and unit address {ua}"),
    }
}

/// The device's uid against what the connection info asks for (`uid`,
/// `subsystem_id`, `unit_address`).
pub(super) fn check_identity(
    props: &DasdProps,
    busid: CcwBusId,
    uid: &DasdUid,
) -> Result<(), DasdError> {
    if let Some(expected) = &props.uid
        && expected != uid
    {
        return Err(DasdError::UidMismatch {
            busid,
            expected: expected.to_string(),
            found: uid.to_string(),
        });
    }
    if let Some((key, expected, found)) = props.address_mismatch(uid) {
        return Err(DasdError::AddressMismatch {
            busid,
            key,
            expected,
            found,
            uid: uid.to_string(),
        });
    }
    Ok(())
}

/// What a finished attach found.
struct Attached {
    device: CcwDevice,
    uid: DasdUid,
    disk: String,
    formatted: bool,
}

impl DasdConnector<'_> {
    /// The online DASDs a connection info without `device_id` names (see
    /// [`DasdProps::names`]): PAV aliases are left out, as a base-PAV alias shows
    /// its base device's unit address.
    pub(super) fn lookup(&self, props: &DasdProps) -> Result<Vec<(CcwBusId, DasdUid)>, DasdError> {
        if props.subsystem_id.is_none() || props.unit_address.is_none() {
            // Otherwise any online DASD would match.
            return Err(PropsError::MissingBusId.into());
        }
        Ok(sysfs::online_dasds(&self.paths)?
            .into_iter()
            .filter(|d| !d.alias)
            .filter_map(|d| Some((d.busid, d.uid?.parse::<DasdUid>().ok()?)))
            .filter(|(_, uid)| props.names(uid))
            .collect())
    }

    /// The bus id of the device `props` names: `device_id`, or the one online
    /// DASD the lookup finds.
    pub(super) fn locate(&self, props: &DasdProps) -> Result<CcwBusId, DasdError> {
        if let Some(busid) = props.busid {
            return Ok(busid);
        }
        let found = self.lookup(props)?;
        let wanted = wanted(props);
        match found.as_slice() {
            [] => Err(DasdError::NoOnlineMatch { wanted }),
            [(busid, uid)] => {
                tracing::info!(busid = %busid, uid = %uid, "found by subsystem id and unit address");
                Ok(*busid)
            }
            several => Err(DasdError::SeveralMatch {
                wanted,
                candidates: several
                    .iter()
                    .map(|(b, u)| format!("{b} (uid {u})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.options.timeout
    }

    /// Run a command-running operation; a non-zero exit is
    /// [`DasdError::CommandFailed`].
    pub(super) fn exec<T: moor_privhelper::ops::TypedOp>(
        &self,
        busid: CcwBusId,
        op: &T,
        deadline: Instant,
    ) -> Result<ExecOutput, DasdError> {
        let out = match run_exec(self.privileged, op, deadline) {
            Ok(out) => out,
            Err(PrivError::Refused { code, message, .. }) if code == "forbidden" => {
                return Err(DasdError::NotGranted {
                    op: T::NAME,
                    message,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if !out.success() {
            return Err(DasdError::CommandFailed {
                op: T::NAME,
                busid,
                message: out.summary(),
            });
        }
        Ok(out)
    }

    /// Attach one DASD and return its device_info.
    pub fn connect(&self, props: &DasdProps) -> Result<DeviceInfo, DasdError> {
        let deadline = self.deadline();
        // A read-only lookup without device_id; the uid is checked again under the lock.
        let busid = self.locate(props)?;
        let _volume = self
            .locks
            .lock(&volume_lock(busid), Mode::Exclusive, deadline)?;
        // Opened before anything is triggered, so no event is missed.
        let mut watch = self.events.watch()?;
        let mut onlined = false;
        let result = self.attach(busid, props, &mut *watch, &mut onlined, deadline);
        let a = match result {
            Ok(a) => a,
            Err(e) if onlined && !self.privileged.dry_run() => {
                return Err(self.undo_online(busid, &mut *watch, e));
            }
            Err(e) => return Err(e),
        };
        let size = crate::host::scsi::block_size_bytes(&self.paths, &a.disk)?.unwrap_or(0);
        let partitions = sysfs::partitions(&self.paths, &a.disk)?
            .iter()
            .filter_map(|p| p.strip_prefix(&a.disk)?.parse::<u32>().ok())
            .map(|n| sysfs::by_path_part(busid, n))
            .collect();
        let info = DeviceInfo {
            kind: "block".into(),
            path: sysfs::by_path(busid),
            busid: busid.to_string(),
            uid: a.uid.to_string(),
            device: a.disk.clone(),
            size,
            partitions,
            formatted: a.formatted,
        };
        tracing::info!(busid = %busid, device = %a.disk, uid = %a.uid, status = ?a.device.status, "attached");
        self.remember(props, &info);
        Ok(info)
    }

    /// Records the attachment (best effort: detach works without it).
    fn remember(&self, props: &DasdProps, info: &DeviceInfo) {
        if self.privileged.dry_run() {
            return;
        }
        let Ok(Some(ino)) = device_ino(&self.paths, &info.device) else {
            return;
        };
        let a = Attachment {
            device: info.device.clone(),
            wwid: info.uid.clone(),
            sysfs_ino: ino,
            protocol: PROTOCOL.into(),
            target: info.busid.clone(),
            volume_id: props.volume_id.clone(),
            attached_at: now_secs(),
        };
        if let Err(e) = self.registry.record(&a) {
            tracing::warn!(registry = %self.registry.path().display(), "attachment not recorded: {e}");
        }
    }

    fn attach(
        &self,
        busid: CcwBusId,
        props: &DasdProps,
        watch: &mut dyn Watch,
        onlined: &mut bool,
        deadline: Instant,
    ) -> Result<Attached, DasdError> {
        let dry = self.privileged.dry_run();

        // 1. Visible: registered by the common I/O layer, a driver bound.
        let device = match sysfs::ccw_device(&self.paths, busid)? {
            Some(d) if d.driver.is_some() => d,
            Some(_) => self.wait_visible(busid, watch, deadline)?,
            None => match sysfs::cio_ignored(&self.paths, busid)? {
                Some(true) => {
                    tracing::info!(busid = %busid, "on the cio_ignore list: freeing it");
                    self.exec(busid, &DasdFree { busid }, deadline)?;
                    if dry {
                        self.exec(busid, &DasdOnline { busid }, deadline)?;
                        return Err(DasdError::DryRun(format!(
                            "{busid} is registered once cio_ignore has freed it; its driver, uid and format are read then"
                        )));
                    }
                    self.wait_visible(busid, watch, deadline)?
                }
                Some(false) => {
                    return Err(DasdError::NotFound {
                        busid,
                        why: "not on the cio_ignore list",
                    });
                }
                None => {
                    return Err(DasdError::NotFound {
                        busid,
                        why: "there is no /proc/cio_ignore (not an s390x host?)",
                    });
                }
            },
        };
        match device.driver.as_deref() {
            Some(ECKD_DRIVER) => {}
            Some("dasd-fba") => {
                return Err(DasdError::NotEckd {
                    busid,
                    found:
                        "an FBA DASD (driver dasd-fba): fibre_channel_eckd attaches ECKD DASDs only"
                            .into(),
                });
            }
            other => {
                return Err(DasdError::NotEckd {
                    busid,
                    found: format!(
                        "its driver is {} (cutype {}, devtype {})",
                        other.unwrap_or("none"),
                        device.cutype.as_deref().unwrap_or("?"),
                        device.devtype.as_deref().unwrap_or("?")
                    ),
                });
            }
        }

        // 2. Online. A device that is online already is checked before anything
        //    changes; an offline one only once online (its uid is unknown before).
        let device = if device.online {
            if !device.settled() {
                self.wait_settled(busid, watch, deadline)?
            } else {
                device
            }
        } else {
            tracing::info!(busid = %busid, "setting online");
            self.exec(busid, &DasdOnline { busid }, deadline)?;
            if dry {
                return Err(DasdError::DryRun(format!(
                    "the uid, alias flag and format of {busid} are read once it is online"
                )));
            }
            *onlined = true;
            self.wait_settled(busid, watch, deadline)?
        };
        let found = device.uid.clone().unwrap_or_default();
        if device.alias || found.ends_with(".xx") {
            return Err(DasdError::Alias { busid, uid: found });
        }
        let uid: DasdUid = found.parse().map_err(|e| HostError::Invalid {
            path: self.paths.sys(&format!("{}/uid", sysfs::ccw_rel(busid))),
            reason: format!("{e}"),
        })?;
        // A refusal here is undone like any other (connect sets it offline again).
        check_identity(props, busid, &uid)?;

        // 3. The disk, once udev is done with it.
        let disk = self.wait_disk(busid, watch, deadline)?;

        // 4. Format, only when asked (and allowed by moord).
        let mut formatted = false;
        let device = if device.unformatted() {
            if !props.format_if_unformatted {
                return Err(DasdError::Unformatted {
                    busid,
                    device: disk,
                });
            }
            tracing::info!(busid = %busid, device = %disk, "formatting (format_if_unformatted)");
            self.exec(
                busid,
                &DasdFormat {
                    busid,
                    device: disk.clone(),
                    expected_uid: uid.clone(),
                },
                deadline,
            )?;
            if dry {
                if props.partition_after_format {
                    self.exec(
                        busid,
                        &DasdPartition {
                            busid,
                            device: disk.clone(),
                            expected_uid: uid.clone(),
                        },
                        deadline,
                    )?;
                }
                return Err(DasdError::DryRun(format!(
                    "the new format of /dev/{disk} is read once dasdfmt has run"
                )));
            }
            formatted = true;
            let d = self.wait_formatted(busid, &disk, watch, deadline)?;
            if props.partition_after_format {
                self.exec(
                    busid,
                    &DasdPartition {
                        busid,
                        device: disk.clone(),
                        expected_uid: uid.clone(),
                    },
                    deadline,
                )?;
                self.wait_partition(busid, &disk, watch, deadline)?;
            }
            d
        } else {
            device
        };
        Ok(Attached {
            device,
            uid,
            disk,
            formatted,
        })
    }

    /// Waits until `busid` is registered and a driver is bound to it.
    fn wait_visible(
        &self,
        busid: CcwBusId,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<CcwDevice, DasdError> {
        let what = format!("CCW device {busid} to be registered with a driver");
        Ok(wait_for(watch, deadline, &what, || {
            Ok(sysfs::ccw_device(&self.paths, busid)?.filter(|d| d.driver.is_some()))
        })?)
    }

    /// Waits until the DASD driver has set `busid` up (`online` or `unformatted`)
    /// and shows its uid.
    fn wait_settled(
        &self,
        busid: CcwBusId,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<CcwDevice, DasdError> {
        let what = format!("DASD {busid} to come online");
        Ok(wait_for(watch, deadline, &what, || {
            Ok(sysfs::ccw_device(&self.paths, busid)?
                .filter(|d| d.online && d.settled() && d.uid.is_some()))
        })?)
    }

    /// Waits until `busid`'s disk exists, udev has processed it and its by-path
    /// link points at it; returns the disk's name.
    fn wait_disk(
        &self,
        busid: CcwBusId,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<String, DasdError> {
        let link = sysfs::by_path(busid);
        let what = format!("the disk of {busid} and {link}");
        Ok(wait_for(watch, deadline, &what, || {
            let Some(disk) = sysfs::ccw_device(&self.paths, busid)?.and_then(|d| d.disk) else {
                return Ok(None);
            };
            let ready = udev_initialized(&self.paths, &disk)?
                && sysfs::link_target(&self.paths, &link)?.as_deref() == Some(disk.as_str());
            Ok(ready.then_some(disk))
        })?)
    }

    /// After dasdfmt: waits until the DASD driver shows the new format (status
    /// `online`, a size) and udev has processed the disk's change.
    fn wait_formatted(
        &self,
        busid: CcwBusId,
        disk: &str,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<CcwDevice, DasdError> {
        let what = format!("/dev/{disk} ({busid}) to come online formatted");
        Ok(wait_for(watch, deadline, &what, || {
            let Some(d) = sysfs::ccw_device(&self.paths, busid)? else {
                return Ok(None);
            };
            let size = crate::host::scsi::block_size_bytes(&self.paths, disk)?.unwrap_or(0);
            let ready = d.status.as_deref() == Some("online")
                && size > 0
                && udev_initialized(&self.paths, disk)?
                && sysfs::link_target(&self.paths, &sysfs::by_path(busid))?.as_deref()
                    == Some(disk);
            Ok(ready.then_some(d))
        })?)
    }

    /// After fdasd: waits until the first partition and its by-path link exist.
    fn wait_partition(
        &self,
        busid: CcwBusId,
        disk: &str,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<(), DasdError> {
        let part = format!("{disk}1");
        let link = sysfs::by_path_part(busid, 1);
        let what = format!("/dev/{part} and {link}");
        Ok(wait_for(watch, deadline, &what, || {
            let ready = sysfs::partitions(&self.paths, disk)?.contains(&part)
                && sysfs::link_target(&self.paths, &link)?.as_deref() == Some(part.as_str());
            Ok(ready.then_some(()))
        })?)
    }

    /// Sets `busid` offline again after an attach that had set it online failed
    /// (guarded by the uid it shows now); the error says whether that worked.
    fn undo_online(&self, busid: CcwBusId, watch: &mut dyn Watch, error: DasdError) -> DasdError {
        let deadline = Instant::now() + CLEANUP_TIME;
        let device = sysfs::ccw_device(&self.paths, busid).ok().flatten();
        let uid = device
            .as_ref()
            .and_then(|d| d.uid.as_deref())
            .and_then(|u| u.parse::<DasdUid>().ok());
        let note = match uid {
            None => format!(
                "{busid} was left online: its uid cannot be read to guard setting it offline"
            ),
            Some(uid) => {
                let op = DasdSafeOffline {
                    busid,
                    expected_uid: uid,
                };
                match self.exec(busid, &op, deadline) {
                    Ok(_) => {
                        if let Some(disk) = device.and_then(|d| d.disk)
                            && let Err(e) = wait_for_removal(&self.paths, watch, &disk, deadline)
                        {
                            tracing::warn!(device = %disk, "after setting {busid} offline again: {e}");
                        }
                        tracing::info!(busid = %busid, "set offline again (attach failed)");
                        format!("{busid} was set offline again")
                    }
                    Err(e) => format!("{busid} was left online: {e}"),
                }
            }
        };
        DasdError::Undone {
            error: Box::new(error),
            note,
        }
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
pub(super) mod tests;
