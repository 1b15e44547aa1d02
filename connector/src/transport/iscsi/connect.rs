//! iSCSI attach and detach (single path here, dm-multipath in [`super::multipath`];
//! every privileged step a typed moord operation, every device found through udev
//! events, one deadline per call).
//!
//! Differences from os-brick, on purpose (reference/os-brick.md §7):
//! * sessions scan manually and only the one LUN asked for (`C T L`, never `- - L`);
//! * a device that already sits at the LUN before we scan is refreshed and checked
//!   by moord (it may be a stale device of another volume, CVE-2023-2088);
//! * detach needs the WWID captured at attach; moord re-reads and compares it before
//!   every flush and delete, and a device that no longer matches is left alone and
//!   reported, never removed;
//! * the result of a detach is a typed outcome that names whatever is left.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use moor_privhelper::ops::{
    IscsiIfaceShow, IscsiLogin, IscsiLogout, IscsiNodeConfigure, IscsiNodeDelete, IscsiNodeNew,
    SecretText,
};
use serde::{Deserialize, Serialize};

use super::props::{IscsiProps, IscsiTarget, PropsError};
use super::sessions::{Session, sessions, sessions_for};
use crate::attachments::{Attachment, Registry, device_ino, now_secs};
use crate::exec::{ExecOutput, PrivError, Privileged, run, run_exec};
use crate::host::scsi::{self, Hctl, ScsiDevice};
use crate::host::udev::{DeviceEvents, WaitError, wait_for_scsi_disk};
use crate::host::{HostError, HostPaths};
use crate::lock::{Held, LockDir, LockError, Mode};
use crate::transport::scsi_disks::{DiskDetach, DiskError, ScsiHost};
use crate::types::IfaceName;
use moor_privhelper::ops::TypedOp;

/// How long undoing a failed attach may take, even past the attach's deadline.
const CLEANUP_TIME: Duration = Duration::from_secs(30);

/// Login attempt bounds written into every node record moor creates: at most
/// (1 + retries) × timeout ≈ 30 s per portal.
const LOGIN_TIMEOUT_SECS: &str = "10";
const LOGIN_RETRIES: &str = "2";

/// iscsiadm exit codes moor interprets (open-iscsi `iscsi_err.h`).
const ISCSI_ERR_IDBM: i32 = 6;
const ISCSI_ERR_SESS_EXISTS: i32 = 15;
const ISCSI_ERR_NO_OBJS_FOUND: i32 = 21;
const ISCSI_ERR_LOGIN_AUTH_FAILED: i32 = 24;

/// What `moor connect iscsi` returns (os-brick's `device_info`, plus the SCSI disks
/// behind `path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub scsi_wwn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_id: Option<String>,
    /// moor: the SCSI disks (`sdX`) this attach found, with their HCTL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// moor: set when the volume was opened as an encrypted volume; `path` is then
    /// the decrypted mapping and this records the transport's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::encryption::EncryptedVolume>,
}

/// Everything an iSCSI attach or detach can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IscsiError {
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
    #[error("login to {target} failed: {detail}")]
    Login {
        target: String,
        detail: String,
        /// The target refused the CHAP credentials.
        auth: bool,
    },
    #[error("{target}: {message}")]
    Target { target: String, message: String },
    #[error("no path of the volume could be attached: {}", .0.join("; "))]
    AllPathsFailed(Vec<String>),
    #[error(
        "device_info has no scsi_wwn: moor will not remove devices it cannot identify (pass the device_info moor connect printed)"
    )]
    NoIdentity,
    #[error("detach incomplete: {}", .0.summary())]
    Incomplete(Box<DetachOutcome>),
    #[error("multipath: {0}")]
    Multipath(String),
    /// A dry run cannot go past a step whose effect later steps need.
    #[error("dry run stops here: {0}")]
    DryRun(String),
}

/// Options of one connector.
#[derive(Debug, Clone)]
pub struct Options {
    /// open-iscsi interface (`default`, `iser`, an offload iface).
    pub iface: IfaceName,
    /// Overall deadline of one attach or detach.
    pub timeout: Duration,
    /// Attach through dm-multipath over every path of the volume.
    pub multipath: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            iface: IfaceName::default_iface(),
            timeout: Duration::from_secs(120),
            multipath: false,
        }
    }
}

pub use crate::transport::Leftover;
use crate::transport::{detach_status, detach_summary};

/// The result of a detach (architecture invariant 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachOutcome {
    /// `clean`, `clean-with-data-loss` or `leftovers`.
    pub status: String,
    /// SCSI disks removed from the kernel.
    pub removed: Vec<String>,
    /// Targets logged out (`iqn@portal`).
    pub logged_out: Vec<String>,
    /// Sessions kept because other volumes' LUNs still use them.
    pub kept_sessions: Vec<Leftover>,
    /// Devices removed although their buffers could not be flushed (`force`).
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

pub(super) fn target_name(t: &IscsiTarget) -> String {
    format!("{}@{}", t.iqn, t.portal)
}

fn target_lock(t: &IscsiTarget) -> String {
    format!("iscsi-target-{}@{}", t.iqn, t.portal)
}

fn volume_lock(t: &IscsiTarget) -> String {
    format!("iscsi-volume-{}-lun-{}", t.iqn, t.lun.get())
}

/// The iSCSI connector.
pub struct IscsiConnector<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub locks: LockDir,
    /// What moor handed out on this host (see [`crate::attachments`]).
    pub registry: Registry,
    pub options: Options,
}

impl std::fmt::Debug for IscsiConnector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IscsiConnector")
            .field("paths", &self.paths)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl IscsiConnector<'_> {
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.options.timeout
    }

    /// Attach one volume: log in (or reuse the session), scan its LUN, wait for the
    /// disk, and return its device_info. Alternative portals are tried in order;
    /// whatever a failed path set up is undone before the next one.
    pub fn connect(&self, props: &IscsiProps) -> Result<DeviceInfo, IscsiError> {
        let deadline = self.deadline();
        let primary = props.primary().ok_or(PropsError::Missing {
            key: "target_portal",
        })?;
        let _volume = self
            .locks
            .lock(&volume_lock(primary), Mode::Exclusive, deadline)?;
        self.check_iface(deadline)?;
        if self.options.multipath {
            return self.connect_multipath(props, deadline);
        }
        self.connect_single(props, deadline)
    }

    /// A non-default iface must exist (`iscsiadm -m iface -I NAME`); its transport
    /// (`tcp`, `iser`, an offload driver) is logged.
    fn check_iface(&self, deadline: Instant) -> Result<(), IscsiError> {
        let iface = &self.options.iface;
        if iface.as_str() == "default" || self.privileged.dry_run() {
            return Ok(());
        }
        // Not retried: a missing iface is exit 6 too.
        let out = run_exec(
            self.privileged,
            &IscsiIfaceShow {
                iface: iface.clone(),
            },
            deadline,
        )?;
        if !out.success() {
            return Err(IscsiError::Target {
                target: format!("iface {iface}"),
                message: format!(
                    "no such open-iscsi interface ({}); create it with iscsiadm -m iface",
                    out.summary()
                ),
            });
        }
        let transport = out
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("iface.transport_name = "))
            .unwrap_or("?");
        tracing::info!(%iface, transport, "using iSCSI interface");
        Ok(())
    }

    /// Record what an attach handed out (a failure is logged: the attach itself
    /// succeeded, only the stale-device check of a later attach loses its memory).
    pub(super) fn remember(&self, props: &IscsiProps, t: &IscsiTarget, dev: &ScsiDevice) {
        let Some(wwid) = dev.wwid.clone() else { return };
        let Ok(Some(ino)) = device_ino(&self.paths, &dev.name) else {
            return;
        };
        let a = Attachment {
            device: dev.name.clone(),
            wwid,
            sysfs_ino: ino,
            protocol: "iscsi".into(),
            target: format!("{} lun {}", target_name(t), t.lun.get()),
            volume_id: props.volume_id.clone(),
            attached_at: now_secs(),
        };
        if let Err(e) = self.registry.record(&a) {
            tracing::warn!(registry = %self.registry.path().display(), "attachment not recorded: {e}");
        }
    }

    /// Single path: the paths are tried in order until one works.
    pub(super) fn connect_single(
        &self,
        props: &IscsiProps,
        deadline: Instant,
    ) -> Result<DeviceInfo, IscsiError> {
        let mut failures: Vec<(String, IscsiError)> = Vec::new();
        for t in props.targets() {
            match self.connect_path(props, t, deadline) {
                Ok(dev) => {
                    tracing::info!(target = %target_name(t), device = %dev.name, wwid = ?dev.wwid, "attached");
                    self.remember(props, t, &dev);
                    return Ok(DeviceInfo {
                        kind: "block".into(),
                        path: format!("/dev/{}", dev.name),
                        scsi_wwn: dev.wwid.clone().unwrap_or_default(),
                        multipath_id: None,
                        devices: vec![format!("{} {}", dev.name, dev.hctl)],
                        encryption: None,
                    });
                }
                Err(e) => {
                    if self.privileged.dry_run() {
                        return Err(e);
                    }
                    tracing::warn!(target = %target_name(t), error = %e, "path failed");
                    failures.push((target_name(t), e));
                }
            }
        }
        if failures.len() == 1 {
            // One path: its own typed error rather than a list.
            if let Some((_, e)) = failures.pop() {
                return Err(e);
            }
        }
        Err(IscsiError::AllPathsFailed(
            failures
                .into_iter()
                .map(|(t, e)| format!("{t}: {e}"))
                .collect(),
        ))
    }

    /// Run an iscsiadm operation; retried (up to 5 attempts, 50 ms doubling) while
    /// iscsiadm reports a database failure (exit 6): it walks every record of the
    /// node database and fails when another caller's record vanishes under it.
    pub(super) fn iscsiadm<T: TypedOp>(
        &self,
        op: &T,
        dl: Instant,
    ) -> Result<ExecOutput, PrivError> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            let out = run_exec(self.privileged, op, dl)?;
            if out.exit_code != Some(ISCSI_ERR_IDBM) || attempt == 5 || Instant::now() + pause > dl
            {
                return Ok(out);
            }
            tracing::debug!(
                op = T::NAME,
                attempt,
                "iscsiadm database failure, retrying: {}",
                out.summary()
            );
            std::thread::sleep(pause);
            pause *= 2;
            attempt += 1;
        }
    }

    /// A logged-in session to `t`, if there is one.
    fn live_session(&self, t: &IscsiTarget) -> Result<Option<Session>, IscsiError> {
        Ok(sessions_for(&self.paths, &t.iqn, &t.portal)?
            .into_iter()
            .find(Session::logged_in))
    }

    fn target_err(t: &IscsiTarget, message: impl Into<String>) -> IscsiError {
        IscsiError::Target {
            target: target_name(t),
            message: message.into(),
        }
    }

    /// `node.startup = manual` in the record of `t` (written by moord: no
    /// iscsiadm run), so a session moor is done with does not come back at boot.
    fn startup_manual(&self, t: &IscsiTarget, dl: Instant) -> Result<(), IscsiError> {
        let configure = IscsiNodeConfigure {
            iqn: t.iqn.clone(),
            portal: t.portal.clone(),
            iface: self.options.iface.clone(),
            settings: vec![
                ("node.startup".into(), "manual".into()),
                ("node.conn[0].startup".into(), "manual".into()),
            ],
            password: None,
            password_in: None,
        };
        match run(self.privileged, &configure, dl) {
            // No record under this iface: nothing to restore at boot.
            Err(PrivError::Refused { code, .. }) if code == "not_found" => Ok(()),
            r => r.map_err(|e| {
                Self::target_err(t, format!("setting node.startup = manual failed: {e}"))
            }),
        }
    }

    /// The node record settings of an attach: manual scan, bounded logins, the
    /// volume's CHAP, restored at boot. Written by moord in one step.
    fn node_configuration(&self, props: &IscsiProps, t: &IscsiTarget) -> IscsiNodeConfigure {
        let mut settings: Vec<(String, String)> = vec![
            // moor never lets a session scan every LUN (open-iscsi ≥ 2.0.875).
            ("node.session.scan".into(), "manual".into()),
            // Bound one login attempt (iscsid's default retries 8 × 15 s): an
            // unreachable portal must fail in time for the next one to be tried.
            (
                "node.conn[0].timeo.login_timeout".into(),
                LOGIN_TIMEOUT_SECS.into(),
            ),
            (
                "node.session.initial_login_retry_max".into(),
                LOGIN_RETRIES.into(),
            ),
            // Restore the session at boot, as os-brick does (detach sets it back;
            // a failed login deletes the record or sets it back).
            ("node.startup".into(), "automatic".into()),
            ("node.conn[0].startup".into(), "automatic".into()),
        ];
        if self.options.multipath {
            // Hand a dead path to dm-multipath after 5 s instead of holding I/O for
            // iscsid's default 120 s: the map queues and fails over.
            settings.push(("node.session.timeo.replacement_timeout".into(), "5".into()));
        }
        let (mut password, mut password_in) = (None, None);
        match &props.auth {
            // A record left from an earlier CHAP attach must not keep its credentials.
            None => settings.push(("node.session.auth.authmethod".into(), "None".into())),
            Some(chap) => {
                settings.push(("node.session.auth.authmethod".into(), "CHAP".into()));
                settings.push(("node.session.auth.username".into(), chap.username.clone()));
                password = Some(SecretText::new(chap.password.expose()));
                match &chap.mutual {
                    Some((user_in, pass_in)) => {
                        settings.push(("node.session.auth.username_in".into(), user_in.clone()));
                        password_in = Some(SecretText::new(pass_in.expose()));
                    }
                    // One-way CHAP: forget target credentials an earlier mutual
                    // attach left.
                    None => settings.push(("node.session.auth.username_in".into(), String::new())),
                }
            }
        }
        IscsiNodeConfigure {
            iqn: t.iqn.clone(),
            portal: t.portal.clone(),
            iface: self.options.iface.clone(),
            settings,
            password,
            password_in,
        }
    }

    /// Make sure a node record exists for `t` with the attach's settings. moord
    /// writes them into an existing record directly (answering `not_found` when
    /// there is none); only a missing record costs an iscsiadm run to create it.
    /// Returns whether this call created the record.
    fn ensure_node(
        &self,
        props: &IscsiProps,
        t: &IscsiTarget,
        dl: Instant,
    ) -> Result<bool, IscsiError> {
        let configure = self.node_configuration(props, t);
        match run(self.privileged, &configure, dl) {
            Ok(()) => return Ok(false),
            Err(PrivError::Refused { code, .. }) if code == "not_found" => {}
            Err(e) => return Err(e.into()),
        }
        let new = self.iscsiadm(
            &IscsiNodeNew {
                iqn: t.iqn.clone(),
                portal: t.portal.clone(),
                iface: self.options.iface.clone(),
            },
            dl,
        )?;
        if !new.success() {
            return Err(Self::target_err(
                t,
                format!("creating the node record failed: {}", new.summary()),
            ));
        }
        if let Err(e) = run(self.privileged, &configure, dl) {
            self.forget_node(t);
            return Err(Self::target_err(
                t,
                format!("configuring the node record failed: {e}"),
            ));
        }
        Ok(true)
    }

    /// Undo a login this attach made (best effort, with its own short deadline so
    /// it runs even when the attach ran out of time): log out (this also cancels a
    /// login iscsid is still retrying) unless another attach already has a disk on
    /// the session, then delete the node record if this attach created it.
    pub(super) fn undo_login(&self, t: &IscsiTarget, created_record: bool) {
        let dl = Instant::now() + CLEANUP_TIME;
        // Disks at this attach's own LUN are the half-attached result of this
        // attach (the session is new), not another volume's.
        let in_use = sessions_for(&self.paths, &t.iqn, &t.portal)
            .unwrap_or_default()
            .iter()
            .any(|s| {
                scsi::session_devices(&self.paths, s.id)
                    .unwrap_or_default()
                    .iter()
                    .any(|d| d.hctl.lun != t.lun.get())
            });
        if in_use {
            tracing::info!(target = %target_name(t), "session now used by another volume: kept");
            return;
        }
        let r = self.iscsiadm(
            &IscsiLogout {
                iqn: t.iqn.clone(),
                portal: t.portal.clone(),
            },
            dl,
        );
        match r {
            Ok(o) if o.success() || o.exit_code == Some(ISCSI_ERR_NO_OBJS_FOUND) => {}
            Ok(o) => tracing::warn!(target = %target_name(t), "logout failed: {}", o.summary()),
            Err(e) => tracing::warn!(target = %target_name(t), "logout failed: {e}"),
        }
        if created_record {
            self.forget_node(t);
        } else if let Err(e) = self.startup_manual(t, dl) {
            tracing::warn!(target = %target_name(t), "{e}");
        }
    }

    /// Delete the node record of `t` (best effort: used to undo a failed attach).
    fn forget_node(&self, t: &IscsiTarget) {
        let dl = Instant::now() + CLEANUP_TIME;
        let r = self.iscsiadm(
            &IscsiNodeDelete {
                iqn: t.iqn.clone(),
                portal: t.portal.clone(),
            },
            dl,
        );
        match r {
            Ok(o) if o.success() || o.exit_code == Some(ISCSI_ERR_NO_OBJS_FOUND) => {}
            Ok(o) => {
                tracing::warn!(target = %target_name(t), "node record not deleted: {}", o.summary())
            }
            Err(e) => tracing::warn!(target = %target_name(t), "node record not deleted: {e}"),
        }
    }

    /// Set up the node record and log in; returns the new session.
    fn login(
        &self,
        props: &IscsiProps,
        t: &IscsiTarget,
        dl: Instant,
    ) -> Result<(Session, bool), IscsiError> {
        let created = self.ensure_node(props, t, dl)?;
        let out = self.iscsiadm(
            &IscsiLogin {
                iqn: t.iqn.clone(),
                portal: t.portal.clone(),
            },
            dl,
        )?;
        let ok = out.success() || out.exit_code == Some(ISCSI_ERR_SESS_EXISTS);
        if !ok {
            self.undo_login(t, created);
            let auth = out.exit_code == Some(ISCSI_ERR_LOGIN_AUTH_FAILED);
            let detail = if auth {
                format!(
                    "the target refused the CHAP credentials ({})",
                    out.summary()
                )
            } else {
                out.summary()
            };
            return Err(IscsiError::Login {
                target: target_name(t),
                detail,
                auth,
            });
        }
        if self.privileged.dry_run() {
            return Err(IscsiError::DryRun(
                "then: find the new session in sysfs, scan the LUN on it, wait for the disk".into(),
            ));
        }
        match self.live_session(t)? {
            Some(s) => Ok((s, created)),
            None => {
                self.undo_login(t, created);
                Err(Self::target_err(
                    t,
                    "iscsiadm reported a login but no session is in sysfs",
                ))
            }
        }
    }

    /// Log in if needed, then find or scan the LUN and wait for its disk.
    pub(super) fn connect_path(
        &self,
        props: &IscsiProps,
        t: &IscsiTarget,
        deadline: Instant,
    ) -> Result<ScsiDevice, IscsiError> {
        // Exclusive: a failed attach may log out the session it opened, which must
        // not pull it from under another attach on the same target.
        let _target = self
            .locks
            .lock(&target_lock(t), Mode::Exclusive, deadline)?;
        let (session, logged_in) = match self.live_session(t)? {
            Some(s) => {
                tracing::info!(target = %target_name(t), session = s.id, "reusing session");
                (s, None)
            }
            None => {
                let (s, created) = self.login(props, t, deadline)?;
                (s, Some(created))
            }
        };
        let found = self.find_lun(t, &session, deadline);
        if found.is_err() {
            // Leave nothing of a failed path behind: the session this attach opened.
            if let Some(created) = logged_in {
                self.undo_login(t, created);
            }
        }
        found
    }

    /// Find or scan the LUN on `session` and wait for its disk.
    fn find_lun(
        &self,
        t: &IscsiTarget,
        session: &Session,
        deadline: Instant,
    ) -> Result<ScsiDevice, IscsiError> {
        let host = scsi::session_host(&self.paths, session.id)?.ok_or_else(|| {
            Self::target_err(t, format!("session {} has no SCSI host", session.id))
        })?;
        let existing = scsi::session_targets(&self.paths, session.id)?.unwrap_or_default();
        let (channel, target) = match (existing.first(), session.target_id) {
            (Some(st), _) => (st.channel, st.target),
            (None, Some(id)) => (0, id),
            (None, None) => {
                return Err(Self::target_err(
                    t,
                    format!("session {} exposes no target id to scan", session.id),
                ));
            }
        };
        let hctl = Hctl {
            host,
            channel,
            target,
            lun: t.lun.get(),
        };
        if let Some(name) = scsi::device_name_by_hctl(&self.paths, session.id, hctl)? {
            return self.check_existing(t, hctl, name, deadline);
        }
        let mut watch = self.events.watch()?;
        self.scan(t, hctl, deadline)?;
        Ok(wait_for_scsi_disk(
            &self.paths,
            &mut *watch,
            hctl,
            deadline,
        )?)
    }

    /// Scan exactly `hctl`, again while the target does not present it yet.
    fn scan(&self, t: &IscsiTarget, hctl: Hctl, deadline: Instant) -> Result<(), IscsiError> {
        self.scsi_host()
            .scan_lun(hctl, deadline)
            .map_err(|e| Self::target_err(t, format!("logged in, but {e}")))
    }

    /// A disk already sits at the LUN: confirmed (or refused as stale) by moord.
    fn check_existing(
        &self,
        t: &IscsiTarget,
        hctl: Hctl,
        name: String,
        dl: Instant,
    ) -> Result<ScsiDevice, IscsiError> {
        self.scsi_host()
            .confirm_existing(hctl, name, dl)
            .map_err(|e| disk_error(t, e))
    }

    /// Detach one volume. Its disks are the ones carrying the WWID captured at
    /// attach, on any iSCSI session (multipath paths may come from discovery);
    /// moord confirms that WWID again before each flush, delete and map flush. A
    /// disk at the volume's LUN with another WWID is reported, never touched. A
    /// session is logged out only when no other LUN uses it. `force` removes disks
    /// and maps whose flush failed (and reports the data-loss risk); `ignore_errors`
    /// returns the outcome instead of an error when something is left.
    pub fn disconnect(
        &self,
        props: &IscsiProps,
        info: &DeviceInfo,
        force: bool,
        ignore_errors: bool,
    ) -> Result<DetachOutcome, IscsiError> {
        let (expected, deadline, primary, _volume) = self.begin(props, info)?;
        let mut out = DetachOutcome::default();
        let (ours, touched) = self.find_volume(props, &expected, &mut out)?;
        // Lock every target involved (sorted: no lock-order deadlock), exclusive.
        let mut keys: BTreeSet<String> = props.targets().iter().map(target_lock).collect();
        keys.extend(
            touched
                .iter()
                .filter_map(|s| s.path.as_ref().map(target_lock)),
        );
        let _targets = keys
            .iter()
            .map(|k| self.locks.lock(k, Mode::Exclusive, deadline))
            .collect::<Result<Vec<_>, _>>()?;

        let mut dd = DiskDetach::default();
        let r = self
            .scsi_host()
            .detach_disks(ours, &expected, force, &mut dd, deadline);
        out.removed.extend(dd.removed);
        out.data_loss_risk.extend(dd.data_loss_risk);
        out.leftovers.extend(dd.leftovers);
        r.map_err(|e| disk_error(primary, e))?;
        self.logout_unused(props, &touched, &mut out, deadline)?;
        out.finish();
        tracing::info!(status = %out.status, removed = ?out.removed, logged_out = ?out.logged_out, "detached");
        if !out.leftovers.is_empty() && !ignore_errors {
            return Err(IscsiError::Incomplete(Box::new(out)));
        }
        Ok(out)
    }

    /// Log out of the sessions to `props`' targets that have no SCSI disk and
    /// delete their node records (`moor cleanup` of a leaked session). The target
    /// locks are held as in a detach, and each session's disks are listed again
    /// right before its logout: a session an attach is using by then is kept
    /// (`kept_sessions`).
    pub fn logout_idle(&self, props: &IscsiProps) -> Result<DetachOutcome, IscsiError> {
        let deadline = self.deadline();
        let keys: BTreeSet<String> = props.targets().iter().map(target_lock).collect();
        let _targets = keys
            .iter()
            .map(|k| self.locks.lock(k, Mode::Exclusive, deadline))
            .collect::<Result<Vec<_>, _>>()?;
        let touched: Vec<Touched> = sessions(&self.paths)?
            .into_iter()
            .filter(|s| props.targets().iter().any(|t| s.is_for(&t.iqn, &t.portal)))
            .map(|s| Touched {
                path: session_target(&s),
                session: s,
            })
            .collect();
        let mut out = DetachOutcome::default();
        self.logout_unused(props, &touched, &mut out, deadline)?;
        out.finish();
        tracing::info!(status = %out.status, logged_out = ?out.logged_out, "idle sessions logged out");
        Ok(out)
    }

    /// The disk steps shared with the other SCSI transports.
    pub(super) fn scsi_host(&self) -> ScsiHost<'_> {
        ScsiHost {
            paths: &self.paths,
            privileged: self.privileged,
            events: self.events,
            registry: &self.registry,
        }
    }

    /// The start of every operation on an attached volume: its WWID from the
    /// device_info (required: no "empty means don't care"), the deadline, the
    /// primary path and the volume's lock.
    pub(super) fn begin<'p>(
        &self,
        props: &'p IscsiProps,
        info: &DeviceInfo,
    ) -> Result<(String, Instant, &'p IscsiTarget, Held), IscsiError> {
        let expected = info.scsi_wwn.trim().to_string();
        if expected.is_empty() {
            return Err(IscsiError::NoIdentity);
        }
        let deadline = self.deadline();
        let primary = props.primary().ok_or(PropsError::Missing {
            key: "target_portal",
        })?;
        let held = self
            .locks
            .lock(&volume_lock(primary), Mode::Exclusive, deadline)?;
        Ok((expected, deadline, primary, held))
    }

    /// The volume's disks (WWID == `expected`) in every session, and the sessions
    /// involved: those holding our disks and those to the volume's listed targets.
    /// Another WWID at the volume's LUN of a listed target is a leftover.
    pub(super) fn find_volume(
        &self,
        props: &IscsiProps,
        expected: &str,
        out: &mut DetachOutcome,
    ) -> Result<(Vec<ScsiDevice>, Vec<Touched>), IscsiError> {
        let mut ours: Vec<ScsiDevice> = Vec::new();
        let mut touched = Vec::new();
        for s in sessions(&self.paths)? {
            let listed: Vec<&IscsiTarget> = props
                .targets()
                .iter()
                .filter(|t| s.is_for(&t.iqn, &t.portal))
                .collect();
            let mut mine = false;
            for d in scsi::session_devices(&self.paths, s.id)? {
                if d.wwid.as_deref() == Some(expected) {
                    mine = true;
                    if !ours.iter().any(|o| o.name == d.name) {
                        ours.push(d);
                    }
                } else if let Some(t) = listed.iter().find(|t| t.lun.get() == d.hctl.lun) {
                    out.leftovers.push(Leftover {
                        what: format!("/dev/{}", d.name),
                        reason: format!(
                            "sits at LUN {} of {} but carries WWID {}, not {expected}: another volume's device, not touched",
                            t.lun.get(),
                            target_name(t),
                            d.wwid.as_deref().unwrap_or("(none)")
                        ),
                    });
                }
            }
            if mine || !listed.is_empty() {
                touched.push(Touched {
                    path: session_target(&s),
                    session: s,
                });
            }
        }
        Ok((ours, touched))
    }

    /// Log out of every session involved that no other LUN uses, then delete its
    /// node record (also for listed targets without a session: a record a failed
    /// attach left); report sessions kept and anything that would not go.
    fn logout_unused(
        &self,
        props: &IscsiProps,
        touched: &[Touched],
        out: &mut DetachOutcome,
        dl: Instant,
    ) -> Result<(), IscsiError> {
        let mut targets: Vec<IscsiTarget> = Vec::new();
        for t in touched.iter().filter_map(|x| x.path.clone()) {
            if !targets.iter().any(|o| target_name(o) == target_name(&t)) {
                targets.push(t);
            }
        }
        for t in props.targets() {
            if !targets.iter().any(|o| target_name(o) == target_name(t)) {
                targets.push(t.clone());
            }
        }
        for x in touched.iter().filter(|x| x.path.is_none()) {
            out.leftovers.push(Leftover {
                what: format!("session {} ({})", x.session.id, x.session.target),
                reason: "its portal address is unknown; not logged out".into(),
            });
        }
        for t in &targets {
            let name = target_name(t);
            let sessions: Vec<&Session> = touched
                .iter()
                .filter(|x| x.path.as_ref().is_some_and(|p| target_name(p) == name))
                .map(|x| &x.session)
                .collect();
            let mut in_use = Vec::new();
            for s in &sessions {
                for d in scsi::session_devices(&self.paths, s.id)? {
                    if self.privileged.dry_run() && out.removed.contains(&d.name) {
                        continue;
                    }
                    in_use.push(format!("/dev/{} (LUN {})", d.name, d.hctl.lun));
                }
            }
            if !in_use.is_empty() {
                out.kept_sessions.push(Leftover {
                    what: format!("session to {name}"),
                    reason: format!("still used by {}", in_use.join(", ")),
                });
                continue;
            }
            if !sessions.is_empty() {
                if let Err(e) = self.startup_manual(t, dl) {
                    tracing::warn!(target = %name, "{e}");
                }
                let lo = self.iscsiadm(
                    &IscsiLogout {
                        iqn: t.iqn.clone(),
                        portal: t.portal.clone(),
                    },
                    dl,
                )?;
                if lo.success() || lo.exit_code == Some(ISCSI_ERR_NO_OBJS_FOUND) {
                    out.logged_out.push(name.clone());
                } else {
                    out.leftovers.push(Leftover {
                        what: format!("session to {name}"),
                        reason: format!("logout failed: {}", lo.summary()),
                    });
                    continue;
                }
            }
            let del = self.iscsiadm(
                &IscsiNodeDelete {
                    iqn: t.iqn.clone(),
                    portal: t.portal.clone(),
                },
                dl,
            )?;
            if !(del.success() || del.exit_code == Some(ISCSI_ERR_NO_OBJS_FOUND)) {
                out.leftovers.push(Leftover {
                    what: format!("node record {name}"),
                    reason: format!("delete failed: {}", del.summary()),
                });
            }
            if !self.privileged.dry_run()
                && !sessions_for(&self.paths, &t.iqn, &t.portal)?.is_empty()
            {
                out.leftovers.push(Leftover {
                    what: format!("session to {name}"),
                    reason: "still in sysfs after logout".into(),
                });
            }
        }
        Ok(())
    }
}

/// A shared disk step's error as this connector's (naming the volume's target).
pub(super) fn disk_error(primary: &IscsiTarget, e: DiskError) -> IscsiError {
    match e {
        DiskError::Host(e) => IscsiError::Host(e),
        DiskError::Privileged(e) => IscsiError::Privileged(e),
        DiskError::Wait(e) => IscsiError::Wait(e),
        DiskError::Multipath(m) => IscsiError::Multipath(m),
        DiskError::DryRun(m) => IscsiError::DryRun(m),
        e @ (DiskError::FlushFailed { .. }
        | DiskError::MapChanged { .. }
        | DiskError::Stale { .. }
        | DiskError::NoLun { .. }) => IscsiError::Target {
            target: target_name(primary),
            message: e.to_string(),
        },
    }
}

/// A session a detach involves, with the (portal, IQN) to log out of.
#[derive(Debug, Clone)]
pub(super) struct Touched {
    session: Session,
    /// `None` when the session's address could not be read or parsed.
    path: Option<IscsiTarget>,
}

/// The (portal, IQN) of a session as an [`IscsiTarget`] (LUN 0: unused).
fn session_target(s: &Session) -> Option<IscsiTarget> {
    let iqn = s.target.parse().ok()?;
    let addr = s.address.as_deref()?;
    let port = s.port?;
    let text = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    };
    Some(IscsiTarget {
        portal: text.parse().ok()?,
        iqn,
        lun: crate::types::Lun(0),
    })
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
