//! Leftovers: what storage state on this host no attachment accounts for.
//!
//! A device is *claimed* when one of moor's attachment records describes it (the
//! same kernel object, see [`crate::attachments`]) or another path of the same
//! volume (same WWID). Everything else on a remote transport (iSCSI sessions,
//! FC remote ports, NVMe-oF controllers) is a leftover, reported with the
//! identity a cleanup will re-verify and why it counts as one. Local disks
//! (SATA, virtio, local NVMe) are never looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::attachments::{Attachment, Registry, device_ino};
use crate::exec::{Privileged, run_exec};
use crate::host::scsi::{self, Hctl};
use crate::host::{HostPaths, component};
use crate::transport::iscsi::sessions::{Session, sessions};
use crate::transport::nvmeof::sysfs as nvme;
use moor_privhelper::ops::{BlockUsers, MultipathWwids};

/// One leftover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is, for people: `/dev/sdc`, `session 3 (iqn…)`.
    pub what: String,
    /// Why it counts as a leftover.
    pub reason: String,
    /// What still uses it (mounts, holders, swap, processes with it open). A
    /// cleanup leaves anything in use alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_use: Vec<String>,
    /// True when the open-file check could not be made (moord unreachable): a
    /// cleanup refuses to remove such a device.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub users_unknown: bool,
    #[serde(flatten)]
    pub identity: Identity,
}

/// A SCSI path of an unclaimed volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScsiPath {
    pub device: String,
    pub hctl: String,
    /// iSCSI: `iqn…`; FC: the target port's WWPN (`0x…`).
    pub target: String,
    /// iSCSI: `address:port` (IPv6 in brackets); FC: the remote port (`rport-…`).
    pub portal: String,
    pub lun: u64,
}

/// A controller that shows an unclaimed NVMe namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmePath {
    pub controller: String,
    pub transport: String,
    pub traddr: String,
    pub trsvcid: String,
}

/// What a leftover is, with everything a cleanup needs to find it again and
/// check it is still the same object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    /// An iSCSI session with no SCSI disk on it.
    IdleSession {
        session: u32,
        target: String,
        portal: Option<String>,
        state: Option<String>,
    },
    /// A SCSI volume (all its paths, one WWID) that no attachment claims.
    UnclaimedScsiVolume {
        /// `iscsi` or `fibre_channel`.
        protocol: String,
        wwid: String,
        paths: Vec<ScsiPath>,
        /// Its multipath map (`dm-N`, name), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        map: Option<(String, String)>,
    },
    /// An NVMe-oF namespace that no attachment claims.
    UnclaimedNamespace {
        device: String,
        subsysnqn: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        uuid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nguid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nsid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wwid: Option<String>,
        paths: Vec<NvmePath>,
    },
    /// A multipath map without a single path.
    PathlessMap {
        device: String,
        name: String,
        wwid: String,
    },
    /// A `/dev/disk/by-id` link whose target is gone (`dangling`) or is another
    /// device than the link's name says.
    StaleLink {
        link: String,
        target: String,
        dangling: bool,
    },
    /// A WWID in `/etc/multipath/wwids` that no device on the host carries.
    StaleWwid { wwid: String },
    /// An attachment record whose device is gone or is another kernel object now.
    StaleRecord { device: String, target: String },
}

impl Identity {
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::IdleSession { .. } => "idle_session",
            Identity::UnclaimedScsiVolume { .. } => "unclaimed_scsi_volume",
            Identity::UnclaimedNamespace { .. } => "unclaimed_namespace",
            Identity::PathlessMap { .. } => "pathless_map",
            Identity::StaleLink { .. } => "stale_link",
            Identity::StaleWwid { .. } => "stale_wwid",
            Identity::StaleRecord { .. } => "stale_record",
        }
    }
}

/// What the attachment records claim.
struct Claims {
    devices: BTreeSet<String>,
    wwids: BTreeSet<String>,
}

impl Claims {
    fn read(paths: &HostPaths, registry: &Registry) -> (Claims, Vec<Attachment>) {
        let mut c = Claims {
            devices: BTreeSet::new(),
            wwids: BTreeSet::new(),
        };
        let mut stale = Vec::new();
        for a in registry.all() {
            if registry.current(paths, &a.device).is_some() {
                c.devices.insert(a.device.clone());
                if !a.wwid.is_empty() {
                    c.wwids.insert(a.wwid.clone());
                }
            } else {
                stale.push(a);
            }
        }
        (c, stale)
    }

    fn claims(&self, device: &str, wwid: Option<&str>) -> bool {
        self.devices.contains(device) || wwid.is_some_and(|w| self.wwids.contains(w))
    }
}

/// Every leftover on the host. `privileged` (moord) answers who has a device
/// open; without it those findings say `users_unknown`.
pub fn leftovers(
    paths: &HostPaths,
    registry: &Registry,
    privileged: Option<&dyn Privileged>,
) -> Vec<Finding> {
    let (claims, stale_records) = Claims::read(paths, registry);
    let mut out = Vec::new();
    let all_sessions = sessions(paths).unwrap_or_default();
    idle_sessions(paths, &all_sessions, &mut out);
    scsi_volumes(paths, &claims, &all_sessions, &mut out);
    namespaces(paths, &claims, &mut out);
    pathless_maps(paths, &mut out);
    stale_links(paths, &mut out);
    stale_wwids(paths, privileged, &mut out);
    for a in stale_records {
        out.push(Finding {
            what: format!("attachment record {}.json", a.device),
            reason: format!(
                "records /dev/{} ({}), which is gone or is another device now",
                a.device, a.target
            ),
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::StaleRecord {
                device: a.device,
                target: a.target,
            },
        });
    }
    for f in &mut out {
        usage(paths, privileged, f);
    }
    out
}

fn session_portal(s: &Session) -> Option<String> {
    let addr = s.address.as_deref()?;
    let port = s.port?;
    Some(if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    })
}

fn idle_sessions(paths: &HostPaths, all: &[Session], out: &mut Vec<Finding>) {
    for s in all {
        let Ok(devices) = scsi::session_devices(paths, s.id) else {
            continue;
        };
        if !devices.is_empty() {
            continue;
        }
        let portal = session_portal(s);
        out.push(Finding {
            what: format!(
                "session {} ({} @ {})",
                s.id,
                s.target,
                portal.as_deref().unwrap_or("?")
            ),
            reason: format!(
                "{} with no SCSI disk on it: nothing on this host uses it",
                s.state.as_deref().unwrap_or("state unknown")
            ),
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::IdleSession {
                session: s.id,
                target: s.target.clone(),
                portal,
                state: s.state.clone(),
            },
        });
    }
}

/// The remote port (`rport-H:B-R`) a SCSI device sits under, and its WWPN.
fn fc_port(paths: &HostPaths, hctl: Hctl) -> Option<(String, String)> {
    let real = paths
        .resolve(&paths.sys(&format!("bus/scsi/devices/{hctl}")))
        .ok()??;
    let rport = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .find(|c| c.starts_with("rport-"))?;
    let wwpn = paths
        .read_attr(&paths.sys(&format!("class/fc_remote_ports/{rport}/port_name")))
        .ok()??;
    Some((rport, wwpn.trim().to_string()))
}

fn scsi_volumes(paths: &HostPaths, claims: &Claims, all: &[Session], out: &mut Vec<Finding>) {
    // WWID → (protocol, paths).
    let mut volumes: BTreeMap<String, (String, Vec<ScsiPath>)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for s in all {
        let portal = session_portal(s).unwrap_or_else(|| "?".into());
        for d in scsi::session_devices(paths, s.id).unwrap_or_default() {
            seen.insert(d.name.clone());
            if claims.claims(&d.name, d.wwid.as_deref()) {
                continue;
            }
            let wwid = d.wwid.clone().unwrap_or_default();
            volumes
                .entry(wwid)
                .or_insert_with(|| ("iscsi".into(), Vec::new()))
                .1
                .push(ScsiPath {
                    device: d.name.clone(),
                    hctl: d.hctl.to_string(),
                    target: s.target.clone(),
                    portal: portal.clone(),
                    lun: d.hctl.lun,
                });
        }
    }
    let blocks = paths
        .list_prefixed(&paths.sys("block"), "sd")
        .unwrap_or_default();
    for name in blocks {
        if seen.contains(&name) {
            continue;
        }
        let Ok(Some(hctl)) = scsi::block_hctl(paths, &name) else {
            continue;
        };
        let Some((rport, wwpn)) = fc_port(paths, hctl) else {
            continue;
        };
        let wwid = scsi::block_wwid(paths, &name).ok().flatten();
        if claims.claims(&name, wwid.as_deref()) {
            continue;
        }
        volumes
            .entry(wwid.unwrap_or_default())
            .or_insert_with(|| ("fibre_channel".into(), Vec::new()))
            .1
            .push(ScsiPath {
                device: name.clone(),
                hctl: hctl.to_string(),
                target: wwpn,
                portal: rport,
                lun: hctl.lun,
            });
    }
    for (wwid, (protocol, vpaths)) in volumes {
        let map = vpaths.iter().find_map(|p| {
            scsi::holders(paths, &p.device)
                .ok()?
                .into_iter()
                .find(|dm| {
                    !wwid.is_empty()
                        && scsi::dm_multipath_wwid(paths, dm).ok().flatten().as_deref()
                            == Some(wwid.as_str())
                })
                .map(|dm| {
                    let name = scsi::dm_name(paths, &dm).ok().flatten().unwrap_or_default();
                    (dm, name)
                })
        });
        let devs: Vec<String> = vpaths
            .iter()
            .map(|p| format!("/dev/{}", p.device))
            .collect();
        let what = match &map {
            Some((dm, name)) if *name == wwid => {
                format!("{wwid} (/dev/{dm} over {})", devs.join(", "))
            }
            Some((dm, name)) => format!("{wwid} ({name}, /dev/{dm} over {})", devs.join(", ")),
            None => format!(
                "{} ({})",
                if wwid.is_empty() { "no WWID" } else { &wwid },
                devs.join(", ")
            ),
        };
        let targets: BTreeSet<String> = vpaths
            .iter()
            .map(|p| format!("{} @ {} lun {}", p.target, p.portal, p.lun))
            .collect();
        out.push(Finding {
            what,
            reason: if wwid.is_empty() {
                "a disk without a WWID: moor cannot identify it and never removes it".into()
            } else {
                format!(
                    "no moor attachment record claims WWID {wwid} (paths: {})",
                    targets.into_iter().collect::<Vec<_>>().join("; ")
                )
            },
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::UnclaimedScsiVolume {
                protocol,
                wwid,
                paths: vpaths,
                map,
            },
        });
    }
}

fn namespaces(paths: &HostPaths, claims: &Claims, out: &mut Vec<Finding>) {
    let mut by_block: BTreeMap<String, (nvme::NamespacePath, String, Vec<NvmePath>)> =
        BTreeMap::new();
    for c in nvme::controllers(paths).unwrap_or_default() {
        for ns in nvme::namespaces(paths, c.name).unwrap_or_default() {
            let entry = by_block.entry(ns.block.clone()).or_insert_with(|| {
                (
                    ns.clone(),
                    c.subsysnqn.clone().unwrap_or_default(),
                    Vec::new(),
                )
            });
            entry.2.push(NvmePath {
                controller: c.name.to_string(),
                transport: c.transport.clone().unwrap_or_default(),
                traddr: c.address.traddr.clone().unwrap_or_default(),
                trsvcid: c.address.trsvcid.clone().unwrap_or_default(),
            });
        }
    }
    for (block, (ns, subsysnqn, npaths)) in by_block {
        if claims.claims(&block, ns.ids.wwid.as_deref()) {
            continue;
        }
        let ctrls: Vec<String> = npaths.iter().map(|p| p.controller.clone()).collect();
        out.push(Finding {
            what: format!(
                "/dev/{block} ({subsysnqn} nsid {})",
                ns.ids
                    .nsid
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            reason: format!(
                "no moor attachment record claims it (controllers {})",
                ctrls.join(", ")
            ),
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::UnclaimedNamespace {
                device: block,
                subsysnqn,
                uuid: ns.ids.uuid.map(|u| u.to_string()),
                nguid: ns.ids.nguid.map(|g| g.to_string()),
                nsid: ns.ids.nsid.map(|n| n.get()),
                wwid: ns.ids.wwid.clone(),
                paths: npaths,
            },
        });
    }
}

fn pathless_maps(paths: &HostPaths, out: &mut Vec<Finding>) {
    for dm in paths
        .list_prefixed(&paths.sys("block"), "dm-")
        .unwrap_or_default()
    {
        let Ok(Some(wwid)) = scsi::dm_multipath_wwid(paths, &dm) else {
            continue;
        };
        let slaves = paths
            .list_dir(&paths.sys(&format!("block/{dm}/slaves")))
            .ok()
            .flatten()
            .unwrap_or_default();
        if !slaves.is_empty() {
            continue;
        }
        let name = scsi::dm_name(paths, &dm).ok().flatten().unwrap_or_default();
        out.push(Finding {
            what: format!("multipath map {name} (/dev/{dm})"),
            reason: format!(
                "no path left under it (WWID {wwid}); I/O to it can only queue or fail"
            ),
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::PathlessMap {
                device: dm,
                name,
                wwid,
            },
        });
    }
}

/// The WWID a by-id link's name promises: `scsi-3…`/`dm-uuid-mpath-3…` carry it
/// as is, `wwn-0x6…` is an NAA WWID in udev form `3` + hex. Partition links and
/// other names promise nothing checkable.
fn promised_wwid(name: &str) -> Option<String> {
    if name.contains("-part") {
        return None;
    }
    if let Some(w) = name.strip_prefix("dm-uuid-mpath-") {
        return Some(w.to_string());
    }
    if let Some(w) = name.strip_prefix("scsi-") {
        return w.starts_with('3').then(|| w.to_string());
    }
    if let Some(hex) = name.strip_prefix("wwn-0x") {
        return Some(format!("3{hex}"));
    }
    None
}

fn stale_links(paths: &HostPaths, out: &mut Vec<Finding>) {
    let dir = paths.dev("disk/by-id");
    for name in paths.list_dir(&dir).ok().flatten().unwrap_or_default() {
        let link = dir.join(&name);
        let Ok(to) = std::fs::read_link(&link) else {
            continue;
        };
        let target = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = format!("/dev/disk/by-id/{name}");
        // Gone when the kernel no longer has it, whether or not udev has removed
        // the node yet (what moord's StaleLink guard checks too).
        let in_kernel = component(&target).is_ok()
            && (paths.sys(&format!("block/{target}")).exists()
                || paths.sys(&format!("class/block/{target}")).exists());
        if !link.exists() || !in_kernel {
            out.push(Finding {
                what: shown.clone(),
                reason: format!("points to /dev/{target}, which the kernel no longer has"),
                in_use: Vec::new(),
                users_unknown: false,
                identity: Identity::StaleLink {
                    link: shown,
                    target,
                    dangling: true,
                },
            });
            continue;
        }
        let Some(promised) = promised_wwid(&name) else {
            continue;
        };
        let carried = if target.starts_with("dm-") {
            scsi::dm_multipath_wwid(paths, &target).ok().flatten()
        } else {
            scsi::block_wwid(paths, &target).ok().flatten()
        };
        // Links udev makes for non-SCSI devices (ATA serials) promise nothing here.
        let Some(carried) = carried else { continue };
        if name.starts_with("wwn-0x") && !carried.starts_with('3') {
            continue;
        }
        if carried != promised {
            out.push(Finding {
                what: shown.clone(),
                reason: format!(
                    "names WWID {promised} but points to /dev/{target}, which carries {carried} (a stale link: anyone opening it gets another volume)"
                ),
                in_use: Vec::new(),
                users_unknown: false,
                identity: Identity::StaleLink {
                    link: shown,
                    target,
                    dangling: false,
                },
            });
        }
    }
}

/// Every WWID some block device carries now (disks, maps, namespaces).
fn present_wwids(paths: &HostPaths) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in paths
        .list_dir(&paths.sys("block"))
        .ok()
        .flatten()
        .unwrap_or_default()
    {
        let w = if name.starts_with("dm-") {
            scsi::dm_multipath_wwid(paths, &name).ok().flatten()
        } else if name.starts_with("nvme") {
            paths
                .read_attr(&paths.sys(&format!("block/{name}/wwid")))
                .ok()
                .flatten()
                .map(|w| w.trim().to_string())
        } else {
            scsi::block_wwid(paths, &name).ok().flatten()
        };
        out.extend(w);
    }
    out
}

/// The WWIDs listed in a multipath wwids file (`/WWID/` lines).
pub fn wwids_file_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix('/')?.strip_suffix('/'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn stale_wwids(paths: &HostPaths, privileged: Option<&dyn Privileged>, out: &mut Vec<Finding>) {
    let text = match super::read_host_file::<MultipathWwids>(paths, "multipath/wwids", privileged) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("wwids entries not checked: {e}");
            return;
        }
    };
    let present = present_wwids(paths);
    for wwid in wwids_file_entries(&text) {
        if present.contains(&wwid) {
            continue;
        }
        out.push(Finding {
            what: format!("/etc/multipath/wwids entry {wwid}"),
            reason: "no device on this host carries it (the volume was detached or is gone); multipath keeps whitelisting it forever".into(),
            in_use: Vec::new(),
            users_unknown: false,
            identity: Identity::StaleWwid { wwid },
        });
    }
}

/// `major:minor` of block device `name`.
fn devnum(paths: &HostPaths, name: &str) -> Option<String> {
    paths
        .read_attr(&paths.sys(&format!("block/{name}/dev")))
        .ok()
        .flatten()
        .map(|d| d.trim().to_string())
}

/// The block devices a finding would remove (paths, map, namespace).
fn devices_of(identity: &Identity) -> Vec<String> {
    match identity {
        Identity::UnclaimedScsiVolume { paths, map, .. } => {
            let mut v: Vec<String> = map.iter().map(|(dm, _)| dm.clone()).collect();
            v.extend(paths.iter().map(|p| p.device.clone()));
            v
        }
        Identity::UnclaimedNamespace { device, .. } | Identity::PathlessMap { device, .. } => {
            vec![device.clone()]
        }
        _ => Vec::new(),
    }
}

/// Fills `in_use` (mounts, swap, holders other than the volume's own map,
/// processes with the device open) for the findings that remove devices.
fn usage(paths: &HostPaths, privileged: Option<&dyn Privileged>, f: &mut Finding) {
    let devices = devices_of(&f.identity);
    if devices.is_empty() {
        return;
    }
    let own_map = match &f.identity {
        Identity::UnclaimedScsiVolume { map, .. } => map.as_ref().map(|(dm, _)| dm.clone()),
        _ => None,
    };
    let mountinfo = paths
        .read_attr(&paths.proc("self/mountinfo"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let swaps = paths
        .read_attr(&paths.proc("swaps"))
        .ok()
        .flatten()
        .unwrap_or_default();
    for dev in &devices {
        // The device and its partitions.
        let mut nodes = vec![dev.clone()];
        nodes.extend(
            paths
                .list_prefixed(&paths.sys(&format!("block/{dev}")), dev)
                .unwrap_or_default(),
        );
        for node in &nodes {
            if let Some(num) = devnum(paths, node) {
                for l in mountinfo.lines() {
                    let fields: Vec<&str> = l.split(' ').collect();
                    if fields.get(2) == Some(&num.as_str()) {
                        f.in_use.push(format!(
                            "/dev/{node} mounted on {}",
                            fields.get(4).unwrap_or(&"?")
                        ));
                    }
                }
            }
            if swaps
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&format!("/dev/{node}")))
            {
                f.in_use.push(format!("/dev/{node} is swap"));
            }
            for h in scsi::holders(paths, node).unwrap_or_default() {
                if Some(&h) != own_map.as_ref() {
                    f.in_use.push(format!("/dev/{node} held by {h}"));
                }
            }
        }
        match privileged {
            Some(p) => match block_users(p, dev).map(|pids| users(paths, dev, pids)) {
                Ok(u) if u.is_empty() => {}
                Ok(u) => f
                    .in_use
                    .push(format!("/dev/{dev} open by {}", u.join(", "))),
                Err(e) => {
                    tracing::warn!(device = %dev, "block.users: {e}");
                    f.users_unknown = true;
                }
            },
            None => f.users_unknown = true,
        }
    }
}

/// The processes behind `pids` that count as users of `device`, as `pid N
/// (comm)`. multipathd keeps every path it monitors open for its path checkers:
/// that is not a use of a SCSI disk (the detach takes the path out of multipathd
/// first); anything else is.
pub fn users(paths: &HostPaths, device: &str, pids: Vec<String>) -> Vec<String> {
    pids.into_iter()
        .filter_map(|pid| {
            let comm = paths
                .read_attr(&paths.proc(&format!("{pid}/comm")))
                .ok()
                .flatten()
                .map(|c| c.trim().to_string());
            if device.starts_with("sd") && comm.as_deref() == Some("multipathd") {
                return None;
            }
            Some(match comm {
                Some(c) => format!("pid {pid} ({c})"),
                None => format!("pid {pid}"),
            })
        })
        .collect()
}

/// The pids that have `/dev/<device>` open (moord's `block.users`).
pub fn block_users(p: &dyn Privileged, device: &str) -> Result<Vec<String>, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = run_exec(
        p,
        &BlockUsers {
            device: device.to_string(),
        },
        deadline,
    )
    .map_err(|e| e.to_string())?;
    // fuser skips the processes it may not inspect and still answers "none":
    // that is not an answer.
    if let Some(l) = out.stderr.lines().find(|l| l.contains("Permission denied")) {
        return Err(format!(
            "fuser could not inspect every process: {}",
            l.trim()
        ));
    }
    match out.exit_code {
        // fuser: 0 = some process uses it (pids on stdout), 1 = none.
        Some(0) => Ok(out
            .stdout
            .split_whitespace()
            .map(|w| {
                w.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .to_string()
            })
            .filter(|w| !w.is_empty())
            .collect()),
        Some(1) if out.stdout.trim().is_empty() => Ok(Vec::new()),
        _ => Err(format!("fuser: {}", out.summary())),
    }
}

/// Whether `device` (a recorded attachment's) still is the recorded kernel object.
pub fn record_is_current(paths: &HostPaths, a: &Attachment) -> bool {
    device_ino(paths, &a.device).ok().flatten() == Some(a.sysfs_ino)
}
