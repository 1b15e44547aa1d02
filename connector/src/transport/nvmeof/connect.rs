//! NVMe-oF attach of a single-target volume (legacy or single-target shape): reuse
//! live controllers (with a namespace rescan), connect only the missing portals,
//! tolerate "already connected", wait for reconnecting controllers, and find the
//! namespace by its identity, all within one deadline.
//!
//! Differences from os-brick, on purpose (reference/os-brick.md §2.5, §7):
//! * the namespace is found by UUID, NGUID or nsid and never as "the device that
//!   appeared" (#1964388); a namespace whose identifiers conflict refuses the
//!   attach instead of being handed out;
//! * the controller loss policy is the volume's (see [`ReconnectPolicy`]), not
//!   always `-l -1`;
//! * waits follow udev events up to one deadline, without sleep loops;
//! * a failed attach disconnects exactly the controllers it created.

use std::time::{Duration, Instant};

use moor_privhelper::ops::{NvmeConnect, NvmeDisconnect, NvmeFastIoFail, NvmeNsRescan};
use serde::{Deserialize, Serialize};

use super::hostid::{self, HostIdentity, HostIdentityError};
use super::props::{NvmePortal, NvmeTarget, NvmeofProps, PropsError, ReconnectPolicy, Shape};
use super::sysfs::{self, Controller, CtrlState, Lookup, NamespacePath};
use crate::attachments::{Attachment, Registry, device_ino, now_secs};
use crate::exec::{PrivError, Privileged, run, run_exec};
use crate::host::udev::{DeviceEvents, WaitError, Watch, udev_initialized, wait_for};
use crate::host::{HostError, HostPaths};
use crate::lock::{LockDir, LockError, Mode};
use crate::types::{Nqn, NvmeController, NvmeUuid};

/// How long undoing a failed attach may take, even past the attach's deadline.
const CLEANUP_TIME: Duration = Duration::from_secs(30);

/// How long to wait for a reconnecting controller beyond its `reconnect_delay`
/// (os-brick waits 10 s + the largest delay).
const RECONNECT_GRACE: Duration = Duration::from_secs(10);

/// How long a multipath attach waits for the other controllers' paths of the
/// head once the first is there.
const PATH_GRACE: Duration = Duration::from_secs(5);

/// nvme-cli's exit codes for a controller that exists already (EALREADY, and 70
/// from older versions; os-brick accepts the same).
const EXIT_ALREADY: [i32; 2] = [114, 70];

/// What `connect` returns (os-brick's `device_info` plus the identity detach
/// re-verifies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub kind: String,
    /// `/dev/nvmeSnH` (a native multipath head) or `/dev/nvmeCnH`.
    pub path: String,
    /// moor: the subsystem (empty for a replicated volume: see `raid`).
    #[serde(default)]
    pub subsysnqn: String,
    /// moor: the namespace's identifiers as the kernel reported them at attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nguid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwid: Option<String>,
    /// moor: the controllers that carry the namespace (`nvme0`).
    #[serde(default)]
    pub controllers: Vec<String>,
    /// moor: `path` is a native multipath head.
    #[serde(default)]
    pub multipath: bool,
    /// moor: a replicated volume's MD RAID1 array and its legs (`path` is then
    /// `/dev/md/<alias>`, and the namespace fields above are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid: Option<super::replica::RaidInfo>,
}

/// Everything an NVMe-oF attach can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NvmeofError {
    #[error(transparent)]
    Props(#[from] PropsError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Identity(#[from] HostIdentityError),
    #[error(transparent)]
    Privileged(#[from] PrivError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{subsystem}: no portal could be connected: {}", .failures.join("; "))]
    NoController {
        subsystem: String,
        failures: Vec<String>,
    },
    /// A namespace agrees with the volume on one identifier and not on another.
    #[error("{subsystem}: {device} is not this volume: {details}")]
    IdentityMismatch {
        subsystem: String,
        device: String,
        details: String,
    },
    #[error("multipath is enforced but native NVMe multipath is off (nvme_core multipath=N)")]
    MultipathUnavailable,
    /// The device_info has no namespace identifier to re-verify.
    #[error(
        "device_info carries no namespace identifier (uuid, nguid or nsid) to verify the device by"
    )]
    NoIdentity,
    #[error("device_info: {0}")]
    BadDeviceInfo(String),
    #[error("not attached: {0}")]
    NotAttached(String),
    #[error(
        "flushing {device} failed: {message}; nothing was detached (retry, or detach with --force and lose unwritten data)"
    )]
    FlushFailed { device: String, message: String },
    #[error("{0}")]
    Inconsistent(String),
    /// A detach left something (the outcome says what).
    #[error("detach incomplete: {}", .0.summary())]
    Incomplete(Box<super::detach::DetachOutcome>),
    #[error("no replica could be attached: {}", .failures.join("; "))]
    NoReplica { failures: Vec<String> },
    /// A new array needs every replica (it is created only over new legs).
    #[error("{attached} of {count} replicas attached, and none carries MD metadata: a new array needs all of them ({})", .failures.join("; "))]
    NotAllReplicas {
        attached: usize,
        count: usize,
        failures: Vec<String>,
    },
    #[error("{leg} is part of {array}, which is not /dev/md/{alias}")]
    LegInUse {
        leg: String,
        array: String,
        alias: String,
    },
    #[error("{op} failed: {message}")]
    Mdadm { op: &'static str, message: String },
    /// A dry run cannot go past a step whose effect later steps need.
    #[error("dry run stops here: {0}")]
    DryRun(String),
}

pub use crate::transport::Options;

/// The NVMe-oF connector.
pub struct NvmeofConnector<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub locks: LockDir,
    /// What moor attached on this host: a namespace recorded here is in use, so
    /// its controller stays when another namespace of it is detached.
    pub registry: Registry,
    pub options: Options,
}

impl std::fmt::Debug for NvmeofConnector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmeofConnector")
            .field("paths", &self.paths)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn portal_name(p: &NvmePortal) -> String {
    match p.traddr {
        std::net::IpAddr::V6(a) => format!("{}:[{a}]:{}", p.transport, p.trsvcid),
        std::net::IpAddr::V4(a) => format!("{}:{a}:{}", p.transport, p.trsvcid),
    }
}

pub(super) fn volume_lock(t: &NvmeTarget) -> String {
    let id = t
        .namespace
        .uuid
        .map(|u| u.to_string())
        .or_else(|| t.namespace.nguid.map(|g| g.to_string()))
        .or_else(|| t.namespace.nsid.map(|n| format!("nsid-{n}")))
        .unwrap_or_default();
    format!("nvme-volume-{}-{id}", t.nqn)
}

pub(super) fn subsystem_lock(nqn: &Nqn) -> String {
    format!("nvme-subsystem-{nqn}")
}

/// One attach of one target: who connects, how, and where.
#[derive(Debug)]
struct Attempt<'p> {
    t: &'p NvmeTarget,
    policy: ReconnectPolicy,
    /// The connection info's `host_nqn`, else the host's.
    hostnqn: Nqn,
    hostid: NvmeUuid,
    /// Connect every portal (native multipath), not only until one is live.
    all_portals: bool,
}

/// A portal's controller as found (or made) by this attach.
#[derive(Debug, Clone)]
struct PortalCtrl {
    portal: NvmePortal,
    ctrl: Controller,
}

/// The controller named in `nvme connect`'s output (`device: nvme3`).
fn connected_name(stdout: &str) -> Option<NvmeController> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("device:"))
        .and_then(|n| n.trim().parse().ok())
}

fn already_connected(out: &crate::exec::ExecOutput) -> bool {
    out.exit_code.is_some_and(|c| EXIT_ALREADY.contains(&c))
        || format!("{}{}", out.stdout, out.stderr).contains("already connected")
}

impl NvmeofConnector<'_> {
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.options.timeout
    }

    /// Attach one volume and return its device_info.
    pub fn connect(&self, props: &NvmeofProps) -> Result<DeviceInfo, NvmeofError> {
        let deadline = self.deadline();
        let t = match props.shape {
            Shape::Replicated => return self.connect_replicated(props, deadline),
            Shape::Legacy | Shape::SingleTarget => props.single().ok_or(PropsError::Missing {
                key: "target_nqn".into(),
            })?,
        };
        let _volume = self
            .locks
            .lock(&volume_lock(t), Mode::Exclusive, deadline)?;
        // Exclusive: a failed attach may disconnect a controller it created, which
        // must not vanish under another attach to the same subsystem.
        let _subsystem = self
            .locks
            .lock(&subsystem_lock(&t.nqn), Mode::Exclusive, deadline)?;
        let identity = hostid::ensure_identity(&self.paths, self.privileged, deadline)?;
        let info = self.connect_target(props, t, &identity, deadline)?;
        self.remember(props, t, &info);
        Ok(info)
    }

    /// Records an attached namespace (best effort: a detach without the record
    /// still works; only another volume's detach could then take the controller).
    pub(super) fn remember(&self, props: &NvmeofProps, t: &NvmeTarget, info: &DeviceInfo) {
        if self.privileged.dry_run() {
            return;
        }
        let Some(device) = info.path.strip_prefix("/dev/") else {
            return;
        };
        let Ok(Some(ino)) = device_ino(&self.paths, device) else {
            return;
        };
        let nsid = info.nsid.map(|n| format!(" nsid {n}")).unwrap_or_default();
        let a = Attachment {
            device: device.to_string(),
            wwid: info.wwid.clone().unwrap_or_default(),
            sysfs_ino: ino,
            protocol: "nvmeof".into(),
            target: format!("{}{nsid}", t.nqn),
            volume_id: props.volume_id.clone(),
            attached_at: now_secs(),
        };
        if let Err(e) = self.registry.record(&a) {
            tracing::warn!(registry = %self.registry.path().display(), "attachment not recorded: {e}");
        }
    }

    pub(super) fn connect_target(
        &self,
        props: &NvmeofProps,
        t: &NvmeTarget,
        identity: &HostIdentity,
        deadline: Instant,
    ) -> Result<DeviceInfo, NvmeofError> {
        let hostnqn = t
            .host_nqn
            .clone()
            .unwrap_or_else(|| identity.hostnqn.clone());
        let native = hostid::native_multipath(&self.paths)?;
        let mut all_portals = self.options.multipath;
        if self.options.multipath && native == Some(false) {
            if props.enforce_multipath {
                return Err(NvmeofError::MultipathUnavailable);
            }
            tracing::warn!("native NVMe multipath is off: attaching through one portal");
            all_portals = false;
        }
        // Opened before anything is triggered, so no event is missed.
        let mut watch = self.events.watch()?;
        let mut created: Vec<NvmeController> = Vec::new();
        let attempt = Attempt {
            t,
            policy: props.policy,
            hostnqn,
            hostid: identity.hostid,
            all_portals,
        };
        let result = self.attach(&attempt, &mut *watch, &mut created, deadline);
        if result.is_err() && !created.is_empty() && !self.privileged.dry_run() {
            self.undo(t, &created);
        }
        result
    }

    fn attach(
        &self,
        a: &Attempt<'_>,
        watch: &mut dyn Watch,
        created: &mut Vec<NvmeController>,
        deadline: Instant,
    ) -> Result<DeviceInfo, NvmeofError> {
        let (t, hostnqn) = (a.t, &a.hostnqn);
        let subsystem = t.nqn.to_string();
        // 1. What exists: live controllers are reused (rescanned: the target may
        //    not send an AEN for a namespace it just added), reconnecting ones
        //    remembered, missing portals connected below.
        let existing = sysfs::controllers(&self.paths)?;
        let mut live: Vec<PortalCtrl> = Vec::new();
        let mut reconnecting: Vec<PortalCtrl> = Vec::new();
        let mut missing: Vec<NvmePortal> = Vec::new();
        for p in &t.portals {
            let mine: Vec<&Controller> = existing
                .iter()
                .filter(|c| c.is_for(&t.nqn, p, hostnqn) && !c.state.is_going())
                .collect();
            if let Some(c) = mine.iter().find(|c| c.state == CtrlState::Live) {
                live.push(PortalCtrl {
                    portal: *p,
                    ctrl: (*c).clone(),
                });
            } else if let Some(c) = mine.iter().find(|c| c.state.is_reconnecting()) {
                reconnecting.push(PortalCtrl {
                    portal: *p,
                    ctrl: (*c).clone(),
                });
            } else {
                missing.push(*p);
            }
        }
        for pc in &live {
            tracing::info!(controller = %pc.ctrl.name, portal = %portal_name(&pc.portal), "reusing live controller");
            run(
                self.privileged,
                &NvmeNsRescan {
                    controller: pc.ctrl.name,
                },
                deadline,
            )?;
        }

        // 2. Connect the missing portals: all of them for multipath, else until one
        //    controller is live.
        let mut failures: Vec<String> = Vec::new();
        let mut planned = 0;
        for p in &missing {
            if !a.all_portals && !live.is_empty() {
                break;
            }
            match self.connect_portal(a, p, deadline)? {
                Connected::Created(c) => {
                    created.push(c.name);
                    live.push(PortalCtrl {
                        portal: *p,
                        ctrl: c,
                    });
                }
                Connected::Existing(c) => live.push(PortalCtrl {
                    portal: *p,
                    ctrl: c,
                }),
                Connected::Planned => {
                    planned += 1;
                    // A dry run assumes the planned connect works.
                    if !a.all_portals {
                        break;
                    }
                }
                Connected::Failed(why) => {
                    tracing::warn!(portal = %portal_name(p), "connect failed: {why}");
                    failures.push(format!("{}: {why}", portal_name(p)));
                }
            }
        }
        if planned > 0 && live.is_empty() {
            return Err(NvmeofError::DryRun(format!(
                "the namespace of {subsystem} is looked up on the controllers the connect creates"
            )));
        }

        // 3. No live controller: wait for a reconnecting one.
        if live.is_empty() && !reconnecting.is_empty() {
            live = self.wait_reconnect(t, &reconnecting, watch, deadline)?;
        }
        if live.is_empty() {
            for pc in &reconnecting {
                failures.push(format!(
                    "{}: {} is still reconnecting",
                    portal_name(&pc.portal),
                    pc.ctrl.name
                ));
            }
            return Err(NvmeofError::NoController {
                subsystem,
                failures,
            });
        }
        // Reconnecting paths of a multipath volume join by themselves later.
        let ctrls: Vec<NvmeController> = live.iter().map(|pc| pc.ctrl.name).collect();

        // 4. The namespace, by identity, once udev is done with its device.
        let (chosen, mut lookup) = self.wait_namespace(t, &ctrls, watch, deadline)?;
        if chosen.multipath && ctrls.len() > 1 {
            lookup = self.wait_all_paths(t, &ctrls, &chosen.block, lookup, watch, deadline)?;
        }
        let carrying: Vec<String> = lookup
            .matches
            .iter()
            .filter(|(p, _)| p.block == chosen.block)
            .map(|(p, _)| p.controller.to_string())
            .collect();
        let by = lookup
            .matches
            .iter()
            .find(|(p, _)| p.block == chosen.block)
            .map(|(_, by)| *by);
        tracing::info!(device = %chosen.block, ?by, controllers = ?carrying, "attached");
        if !failures.is_empty() {
            tracing::warn!(failed = ?failures, "attached without every portal");
        }
        Ok(DeviceInfo {
            kind: "block".into(),
            path: format!("/dev/{}", chosen.block),
            subsysnqn: subsystem,
            uuid: chosen.ids.uuid.map(|u| u.to_string()),
            nguid: chosen.ids.nguid.map(|g| g.to_string()),
            nsid: chosen.ids.nsid.map(|n| n.get()),
            wwid: chosen.ids.wwid.clone(),
            controllers: carrying,
            multipath: chosen.multipath,
            raid: None,
        })
    }

    /// `nvme connect` to one portal, then its `fast_io_fail_tmo` when the policy
    /// sets one. "Already connected" is a race with another connect: the
    /// controller it made is used.
    fn connect_portal(
        &self,
        a: &Attempt<'_>,
        p: &NvmePortal,
        deadline: Instant,
    ) -> Result<Connected, NvmeofError> {
        let (t, hostnqn, policy) = (a.t, &a.hostnqn, &a.policy);
        let op = NvmeConnect {
            transport: p.transport,
            traddr: p.traddr,
            trsvcid: p.trsvcid,
            nqn: t.nqn.clone(),
            hostnqn: hostnqn.clone(),
            hostid: a.hostid,
            ctrl_loss_tmo: policy.ctrl_loss_tmo_arg(),
            reconnect_delay: policy.reconnect_delay,
            nr_io_queues: None,
        };
        let out = run_exec(self.privileged, &op, deadline)?;
        if self.privileged.dry_run() {
            return Ok(Connected::Planned);
        }
        let find = || -> Result<Option<Controller>, HostError> {
            Ok(sysfs::controllers(&self.paths)?
                .into_iter()
                .filter(|c| c.is_for(&t.nqn, p, hostnqn) && !c.state.is_going())
                .min_by_key(|c| (c.state != CtrlState::Live, c.name)))
        };
        if !out.success() {
            if already_connected(&out) {
                return Ok(match find()? {
                    Some(c) if c.state == CtrlState::Live => Connected::Existing(c),
                    Some(c) => Connected::Failed(format!(
                        "already connected, but {} is {:?}",
                        c.name, c.state
                    )),
                    None => Connected::Failed(format!(
                        "nvme connect says already connected, but no controller is: {}",
                        out.summary()
                    )),
                });
            }
            return Ok(Connected::Failed(out.summary()));
        }
        // The controller nvme-cli names, if it is the portal's; else the portal's.
        let named = connected_name(&out.stdout)
            .map(|n| sysfs::controller(&self.paths, n))
            .transpose()?
            .flatten()
            .filter(|c| c.is_for(&t.nqn, p, hostnqn));
        let Some(c) = named.or(find()?) else {
            return Ok(Connected::Failed(
                "nvme connect succeeded but no controller for the portal is in sysfs".into(),
            ));
        };
        if let Some(tmo) = policy.fast_io_fail_tmo {
            run(
                self.privileged,
                &NvmeFastIoFail {
                    controller: c.name,
                    fast_io_fail_tmo: i64::from(tmo),
                },
                deadline,
            )?;
        }
        tracing::info!(controller = %c.name, portal = %portal_name(p), "connected");
        Ok(Connected::Created(c))
    }

    /// Waits (events, bounded by `reconnect_delay` + 10 s and the deadline) until
    /// one of `reconnecting` is live again; returns the live ones.
    fn wait_reconnect(
        &self,
        t: &NvmeTarget,
        reconnecting: &[PortalCtrl],
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<Vec<PortalCtrl>, NvmeofError> {
        let delay = reconnecting
            .iter()
            .filter_map(|pc| pc.ctrl.reconnect_delay)
            .max()
            .unwrap_or(10);
        let until =
            deadline.min(Instant::now() + RECONNECT_GRACE + Duration::from_secs(delay.into()));
        let names: Vec<String> = reconnecting
            .iter()
            .map(|pc| pc.ctrl.name.to_string())
            .collect();
        tracing::info!(controllers = ?names, "waiting for a reconnecting controller");
        let what = format!(
            "a controller of {} to reconnect ({})",
            t.nqn,
            names.join(", ")
        );
        let r = wait_for(watch, until, &what, || {
            let mut back = Vec::new();
            for pc in reconnecting {
                if let Some(c) = sysfs::controller(&self.paths, pc.ctrl.name)?
                    && c.state == CtrlState::Live
                {
                    back.push(PortalCtrl {
                        portal: pc.portal,
                        ctrl: c,
                    });
                }
            }
            Ok((!back.is_empty()).then_some(back))
        });
        match r {
            Ok(back) => Ok(back),
            // Not back in time: the caller reports the portals.
            Err(WaitError::Deadline { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the volume's namespace shows on `ctrls` and udev has created its
    /// device. A conflicting namespace ends the wait with an error.
    fn wait_namespace(
        &self,
        t: &NvmeTarget,
        ctrls: &[NvmeController],
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<(NamespacePath, Lookup), NvmeofError> {
        let what = format!("the namespace of {} on {ctrls:?}", t.nqn);
        // A conflict ends the wait as its (error) value.
        wait_for(watch, deadline, &what, || {
            let lookup = sysfs::find_namespace(&self.paths, ctrls, &t.namespace)?;
            if let Some(e) = conflict_error(t, &lookup) {
                return Ok(Some(Err(e)));
            }
            // Controller order: the first portal's device when there are several.
            for c in ctrls {
                for (ns, _) in lookup.matches.iter().filter(|(ns, _)| ns.controller == *c) {
                    if sysfs::block_exists(&self.paths, &ns.block)?
                        && udev_initialized(&self.paths, &ns.block)?
                    {
                        return Ok(Some(Ok((ns.clone(), lookup.clone()))));
                    }
                }
            }
            Ok(None)
        })?
    }

    /// With native multipath, the other live controllers show their path of the
    /// head a moment after the first: waits (at most [`PATH_GRACE`]) until each
    /// does, so device_info names every controller. A path that does not show is
    /// logged; the head works without it.
    fn wait_all_paths(
        &self,
        t: &NvmeTarget,
        ctrls: &[NvmeController],
        block: &str,
        first: Lookup,
        watch: &mut dyn Watch,
        deadline: Instant,
    ) -> Result<Lookup, NvmeofError> {
        let until = deadline.min(Instant::now() + PATH_GRACE);
        let what = format!("/dev/{block} on every controller of {ctrls:?}");
        let complete = |l: &Lookup| {
            ctrls.iter().all(|c| {
                l.matches
                    .iter()
                    .any(|(p, _)| p.controller == *c && p.block == block)
            })
        };
        if complete(&first) {
            return Ok(first);
        }
        let r = wait_for(watch, until, &what, || {
            let l = sysfs::find_namespace(&self.paths, ctrls, &t.namespace)?;
            Ok(complete(&l).then_some(l))
        });
        match r {
            Ok(l) => Ok(l),
            Err(WaitError::Deadline { .. }) => {
                tracing::warn!(device = %block, "not every controller shows a path of the namespace yet");
                Ok(sysfs::find_namespace(&self.paths, ctrls, &t.namespace)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Disconnects the controllers a failed attach created (best effort, logged).
    fn undo(&self, t: &NvmeTarget, created: &[NvmeController]) {
        let deadline = Instant::now() + CLEANUP_TIME;
        for &name in created {
            let Ok(Some(c)) = sysfs::controller(&self.paths, name) else {
                continue;
            };
            let op = match disconnect_op(&c) {
                Some(op) => op,
                None => {
                    tracing::warn!(controller = %name, "not disconnected: its identity cannot be read back");
                    continue;
                }
            };
            if c.subsysnqn.as_deref() != Some(t.nqn.as_str()) {
                tracing::warn!(controller = %name, "not disconnected: it is now another subsystem's");
                continue;
            }
            match run(self.privileged, &op, deadline) {
                Ok(()) => tracing::info!(controller = %name, "disconnected (attach failed)"),
                Err(e) => {
                    tracing::warn!(controller = %name, "disconnect after a failed attach: {e}")
                }
            }
        }
    }
}

/// The error for the first namespace of `lookup` that conflicts with target `t`'s
/// identity, if any.
pub(super) fn conflict_error(t: &NvmeTarget, lookup: &Lookup) -> Option<NvmeofError> {
    let (ns, d) = lookup.conflicts.first()?;
    let details: Vec<String> = d.iter().map(ToString::to_string).collect();
    Some(NvmeofError::IdentityMismatch {
        subsystem: t.nqn.to_string(),
        device: ns.block.clone(),
        details: details.join(", "),
    })
}

/// `nvme.disconnect` for `c`, with the identity read from sysfs as the guard.
pub(crate) fn disconnect_op(c: &Controller) -> Option<NvmeDisconnect> {
    Some(NvmeDisconnect {
        controller: c.name,
        expected_subsysnqn: c.subsysnqn.as_deref()?.parse().ok()?,
        expected_transport: c.transport.as_deref()?.parse().ok()?,
        expected_traddr: c.address.traddr.as_deref()?.parse().ok()?,
        expected_trsvcid: c.address.trsvcid.as_deref()?.parse().ok()?,
        expected_hostnqn: c.hostnqn.as_deref()?.parse().ok()?,
    })
}

/// The outcome of connecting one portal.
#[derive(Debug)]
enum Connected {
    /// This attach created the controller.
    Created(Controller),
    /// Another connect was faster; its controller is used (and not undone).
    Existing(Controller),
    /// A dry run: the connect is planned, there is no controller.
    Planned,
    Failed(String),
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
