//! NVMe-oF controllers and namespaces as the kernel shows them in sysfs (no
//! nvme-cli, no privilege). The layout (`drivers/nvme/host/{core,sysfs,
//! multipath}.c`, libnvme's `tree.c`):
//!
//! ```text
//! sys/class/nvme-fabrics/ctl -> ../../devices/virtual/nvme-fabrics/ctl
//! sys/devices/virtual/nvme-fabrics/ctl/nvmeC/          <- sys/class/nvme/nvmeC
//!     subsysnqn transport address hostnqn hostid state cntlid
//!     reconnect_delay ctrl_loss_tmo fast_io_fail_tmo rescan_controller delete_controller
//!     nvmeScCnH/  (native multipath: the hidden per-path disk of namespace head H)
//!     nvmeCnH/    (no native multipath: the namespace's block device)
//! sys/devices/virtual/nvme-subsystem/nvme-subsysS/      <- sys/class/nvme-subsystem/nvme-subsysS
//!     subsysnqn  nvmeC -> (each controller)  nvmeSnH/ (the multipath head disk)
//! sys/block/nvmeSnH, sys/block/nvmeScCnH (hidden), sys/block/nvmeCnH -> …
//! ```
//!
//! `address` is a comma-separated `key=value` list: `traddr`, `trsvcid`, then
//! optionally `host_traddr`, `host_iface`, and on newer kernels `src_addr` for TCP
//! (os-brick #2035811). Each namespace disk (head or path) carries `uuid`, `nguid`,
//! `nsid`, `wwid`, `size`; a path also `ana_state`. `uuid` and `nguid` print as
//! `%pU`; when a namespace has no UUID the kernel prints its NGUID as `uuid`
//! (backward compatibility), which [`NamespaceIds`] undoes.

use std::fmt;
use std::net::IpAddr;

use super::props::{NamespaceId, NvmePortal};
use crate::host::{HostError, HostPaths, component};
use crate::types::{Nguid, Nqn, Nsid, NvmeController, NvmeUuid};

/// A controller's `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlState {
    New,
    Live,
    Resetting,
    /// Reconnecting after a lost connection (or the first connect).
    Connecting,
    Deleting,
    /// `deleting (no IO)`.
    DeletingNoIo,
    Dead,
    Other(String),
}

impl CtrlState {
    fn parse(s: &str) -> CtrlState {
        match s {
            "new" => CtrlState::New,
            "live" => CtrlState::Live,
            "resetting" => CtrlState::Resetting,
            "connecting" => CtrlState::Connecting,
            "deleting" => CtrlState::Deleting,
            "deleting (no IO)" => CtrlState::DeletingNoIo,
            "dead" => CtrlState::Dead,
            other => CtrlState::Other(other.to_owned()),
        }
    }

    /// The controller may come back by itself (worth waiting for).
    pub fn is_reconnecting(&self) -> bool {
        matches!(
            self,
            CtrlState::New | CtrlState::Resetting | CtrlState::Connecting
        )
    }

    /// The controller is going away: never reuse it.
    pub fn is_going(&self) -> bool {
        matches!(
            self,
            CtrlState::Deleting | CtrlState::DeletingNoIo | CtrlState::Dead
        )
    }
}

/// A timeout attribute: seconds, or `off` (the kernel prints `off` for -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tmo {
    Off,
    Seconds(u32),
}

fn parse_tmo(s: &str) -> Option<Tmo> {
    if s == "off" {
        Some(Tmo::Off)
    } else {
        s.parse().ok().map(Tmo::Seconds)
    }
}

/// The parsed `address` attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtrlAddress {
    pub traddr: Option<String>,
    pub trsvcid: Option<String>,
    pub host_traddr: Option<String>,
    pub host_iface: Option<String>,
    pub src_addr: Option<String>,
}

impl CtrlAddress {
    /// Parses `traddr=…,trsvcid=…[,host_traddr=…][,src_addr=…]`; unknown keys are
    /// ignored, a later duplicate wins.
    pub fn parse(s: &str) -> CtrlAddress {
        let mut a = CtrlAddress::default();
        for (k, v) in s
            .trim()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().to_owned()))
        {
            match k {
                "traddr" => a.traddr = Some(v),
                "trsvcid" => a.trsvcid = Some(v),
                "host_traddr" => a.host_traddr = Some(v),
                "host_iface" => a.host_iface = Some(v),
                "src_addr" => a.src_addr = Some(v),
                _ => {}
            }
        }
        a
    }
}

/// One NVMe-oF controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub name: NvmeController,
    pub subsysnqn: Option<String>,
    pub transport: Option<String>,
    pub address: CtrlAddress,
    /// `None` on kernels without the attribute: then any host NQN matches (as
    /// os-brick), since nothing tells them apart.
    pub hostnqn: Option<String>,
    pub state: CtrlState,
    pub reconnect_delay: Option<u32>,
    pub ctrl_loss_tmo: Option<Tmo>,
    pub fast_io_fail_tmo: Option<Tmo>,
}

impl Controller {
    /// A controller of subsystem `nqn` for host `hostnqn` (any host NQN when the
    /// host's is unknown, or the kernel shows none), on any portal.
    pub fn is_of(&self, nqn: &Nqn, hostnqn: Option<&Nqn>) -> bool {
        self.subsysnqn.as_deref() == Some(nqn.as_str())
            && match (hostnqn, self.hostnqn.as_deref()) {
                (Some(want), Some(have)) => want.as_str() == have,
                _ => true,
            }
    }

    /// A controller connected to `portal` (transport, `traddr` compared as an IP
    /// address, `trsvcid`), of any subsystem.
    pub fn serves(&self, portal: &NvmePortal) -> bool {
        self.transport.as_deref() == Some(portal.transport.as_str())
            && self
                .address
                .traddr
                .as_deref()
                .and_then(|a| a.parse::<IpAddr>().ok())
                == Some(portal.traddr)
            && self
                .address
                .trsvcid
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok())
                == Some(portal.trsvcid)
    }

    /// This controller connects `hostnqn` to subsystem `nqn` through `portal`:
    /// (traddr, trsvcid, transport, hostnqn) and the subsystem all equal. Addresses
    /// compare as IP addresses (`fd00:0::1` is `fd00::1`).
    pub fn is_for(&self, nqn: &Nqn, portal: &NvmePortal, hostnqn: &Nqn) -> bool {
        self.is_of(nqn, Some(hostnqn)) && self.serves(portal)
    }
}

/// Every NVMe-oF controller (`/sys/class/nvme-fabrics/ctl/nvme*`), by instance.
/// A controller deleted while it is read is skipped.
pub fn controllers(paths: &HostPaths) -> Result<Vec<Controller>, HostError> {
    let ctl = paths.sys("class/nvme-fabrics/ctl");
    let mut out = Vec::new();
    for entry in paths.list_prefixed(&ctl, "nvme")? {
        let Ok(name) = entry.parse::<NvmeController>() else {
            continue;
        };
        if let Some(c) = controller(paths, name)? {
            out.push(c);
        }
    }
    out.sort_by_key(|c| c.name);
    Ok(out)
}

/// Controller `name`, or `None` if it does not exist (any more).
pub fn controller(
    paths: &HostPaths,
    name: NvmeController,
) -> Result<Option<Controller>, HostError> {
    let dir = paths.sys(&format!("class/nvme-fabrics/ctl/{name}"));
    // An attribute of a controller being deleted can fail with ENODEV or vanish:
    // read leniently, and decide on `state`, which exists as long as it does.
    let attr = |a: &str| {
        paths
            .read_attr(&dir.join(a))
            .ok()
            .flatten()
            .map(|v| v.trim().to_owned())
    };
    let Some(state) = attr("state") else {
        return Ok(None);
    };
    Ok(Some(Controller {
        name,
        subsysnqn: attr("subsysnqn"),
        transport: attr("transport"),
        address: attr("address")
            .map(|a| CtrlAddress::parse(&a))
            .unwrap_or_default(),
        hostnqn: attr("hostnqn"),
        state: CtrlState::parse(&state),
        reconnect_delay: attr("reconnect_delay").and_then(|v| v.parse().ok()),
        ctrl_loss_tmo: attr("ctrl_loss_tmo").and_then(|v| parse_tmo(&v)),
        fast_io_fail_tmo: attr("fast_io_fail_tmo").and_then(|v| parse_tmo(&v)),
    }))
}

/// A namespace's identifiers as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceIds {
    /// `None` when the namespace has no UUID (including the kernel's fallback of
    /// printing the NGUID as `uuid`).
    pub uuid: Option<NvmeUuid>,
    pub nguid: Option<Nguid>,
    pub nsid: Option<Nsid>,
    /// `wwid` as printed (`uuid.…`, `eui.…`, `nvme.…`).
    pub wwid: Option<String>,
}

impl NamespaceIds {
    /// Reads `uuid`, `nguid`, `nsid`, `wwid` of a namespace disk directory.
    fn read(paths: &HostPaths, dir: &std::path::Path) -> Result<NamespaceIds, HostError> {
        let attr = |a: &str| -> Result<Option<String>, HostError> {
            Ok(paths.read_attr(&dir.join(a))?.map(|v| v.trim().to_owned()))
        };
        let nguid = attr("nguid")?.and_then(|v| v.parse::<Nguid>().ok());
        let uuid = attr("uuid")?
            .and_then(|v| v.parse::<NvmeUuid>().ok())
            // The NGUID shown as `uuid` because the namespace has none.
            .filter(|u| nguid.is_none_or(|g| g.as_bytes() != u.as_bytes()));
        Ok(NamespaceIds {
            uuid,
            nguid,
            nsid: attr("nsid")?.and_then(|v| v.parse().ok()),
            wwid: attr("wwid")?,
        })
    }
}

/// Which identifier a match rests on, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum By {
    Uuid,
    Nguid,
    Nsid,
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            By::Uuid => "uuid",
            By::Nguid => "nguid",
            By::Nsid => "nsid",
        })
    }
}

/// An identifier both sides report with different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    pub what: By,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} (expected {})",
            self.what, self.found, self.expected
        )
    }
}

/// How a namespace compares with the expected identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsMatch {
    /// Every identifier both sides report agrees; `By` is the strongest of them.
    Match(By),
    /// No identifier agrees: another namespace.
    NoMatch,
    /// Some identifier agrees and another does not (the array reused an nsid for
    /// another volume, or the connection info is inconsistent): never this volume.
    Conflict(Vec<Disagreement>),
}

/// Compares `found` with `expected`: UUID, then NGUID, then nsid. Only identifiers
/// both sides report count; one that differs is never ignored.
pub fn match_namespace(expected: &NamespaceId, found: &NamespaceIds) -> NsMatch {
    fn cmp<T: PartialEq + fmt::Display>(
        what: By,
        e: Option<T>,
        f: Option<T>,
        agree: &mut Vec<By>,
        disagree: &mut Vec<Disagreement>,
    ) {
        if let (Some(e), Some(f)) = (e, f) {
            if e == f {
                agree.push(what);
            } else {
                disagree.push(Disagreement {
                    what,
                    expected: e.to_string(),
                    found: f.to_string(),
                });
            }
        }
    }
    let (mut agree, mut disagree) = (Vec::new(), Vec::new());
    cmp(
        By::Uuid,
        expected.uuid,
        found.uuid,
        &mut agree,
        &mut disagree,
    );
    cmp(
        By::Nguid,
        expected.nguid,
        found.nguid,
        &mut agree,
        &mut disagree,
    );
    cmp(
        By::Nsid,
        expected.nsid,
        found.nsid,
        &mut agree,
        &mut disagree,
    );
    // A namespace without a UUID shows its NGUID as `uuid`, and os-brick matches
    // `vol_uuid` against that: agreement, never a disagreement.
    if let (Some(e), None, Some(g)) = (expected.uuid, found.uuid, found.nguid)
        && e.as_bytes() == g.as_bytes()
    {
        agree.push(By::Nguid);
    }
    match (agree.iter().min(), disagree.is_empty()) {
        (None, _) => NsMatch::NoMatch,
        (Some(by), true) => NsMatch::Match(*by),
        (Some(_), false) => NsMatch::Conflict(disagree),
    }
}

/// One namespace as seen through one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePath {
    pub controller: NvmeController,
    /// The disk under the controller: `nvme0c1n1` (a native multipath path) or
    /// `nvme1n1` (no native multipath).
    pub name: String,
    /// The block device to use: the multipath head `nvme0n1`, or `name` itself.
    pub block: String,
    /// True for a path of a native multipath head.
    pub multipath: bool,
    pub ids: NamespaceIds,
    /// `ana_state` of a multipath path (`optimized`, `non-optimized`,
    /// `inaccessible`, …) when the controller uses ANA.
    pub ana_state: Option<String>,
    /// Size in 512-byte sectors.
    pub size_sectors: Option<u64>,
}

/// `nvmeScCnH` → (S, C, H); `nvmeCnH` → `None`.
fn split_path_name(name: &str) -> Option<(u32, u32, u32)> {
    let rest = name.strip_prefix("nvme")?;
    let (s, rest) = rest.split_once('c')?;
    let (c, h) = rest.split_once('n')?;
    let num = |x: &str| {
        (!x.is_empty() && x.len() <= 10 && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    Some((num(s)?, num(c)?, num(h)?))
}

/// `nvmeXnY` (a block device name, not a path of a head).
fn is_plain_ns_name(name: &str) -> bool {
    name.strip_prefix("nvme")
        .and_then(|r| r.split_once('n'))
        .is_some_and(|(x, y)| {
            [x, y]
                .iter()
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The namespaces of controller `name` (its `nvme*` disk directories; the `ng*`
/// character devices are skipped).
pub fn namespaces(
    paths: &HostPaths,
    name: NvmeController,
) -> Result<Vec<NamespacePath>, HostError> {
    let dir = paths.sys(&format!("class/nvme-fabrics/ctl/{name}"));
    let mut out = Vec::new();
    for entry in paths.list_prefixed(&dir, "nvme")? {
        let ns_dir = dir.join(component(&entry)?);
        let (block, multipath) = if let Some((s, c, h)) = split_path_name(&entry) {
            if c != name.instance() {
                continue;
            }
            (format!("nvme{s}n{h}"), true)
        } else if is_plain_ns_name(&entry) {
            (entry.clone(), false)
        } else {
            continue;
        };
        // A namespace being removed while listed is skipped.
        if paths.read_attr(&ns_dir.join("nsid"))?.is_none() {
            continue;
        }
        let attr = |a: &str| -> Result<Option<String>, HostError> {
            Ok(paths
                .read_attr(&ns_dir.join(a))?
                .map(|v| v.trim().to_owned()))
        };
        out.push(NamespacePath {
            controller: name,
            ids: NamespaceIds::read(paths, &ns_dir)?,
            ana_state: if multipath { attr("ana_state")? } else { None },
            size_sectors: attr("size")?.and_then(|v| v.parse().ok()),
            name: entry,
            block,
            multipath,
        });
    }
    Ok(out)
}

/// Whether block device `block` (a namespace head or plain namespace) exists in
/// `/sys/block`.
pub fn block_exists(paths: &HostPaths, block: &str) -> Result<bool, HostError> {
    Ok(paths
        .read_attr(&paths.sys(&format!("block/{}/nsid", component(block)?)))?
        .is_some())
}

/// The result of looking for a volume's namespace on some controllers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Matching paths (one per controller that shows the namespace), with the
    /// identifier each match rests on.
    pub matches: Vec<(NamespacePath, By)>,
    /// Namespaces that agree on one identifier and disagree on another.
    pub conflicts: Vec<(NamespacePath, Vec<Disagreement>)>,
}

impl Lookup {
    /// The block devices of the matches, deduplicated, in controller order (one
    /// head for a multipath namespace, one disk per controller otherwise).
    pub fn blocks(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (p, _) in &self.matches {
            if !out.contains(&p.block.as_str()) {
                out.push(&p.block);
            }
        }
        out
    }
}

/// Looks for the namespace `expected` on `controllers`.
pub fn find_namespace(
    paths: &HostPaths,
    controllers: &[NvmeController],
    expected: &NamespaceId,
) -> Result<Lookup, HostError> {
    let mut lookup = Lookup::default();
    for &c in controllers {
        for ns in namespaces(paths, c)? {
            match match_namespace(expected, &ns.ids) {
                NsMatch::Match(by) => lookup.matches.push((ns, by)),
                NsMatch::Conflict(d) => lookup.conflicts.push((ns, d)),
                NsMatch::NoMatch => {}
            }
        }
    }
    Ok(lookup)
}

#[cfg(test)]
#[path = "sysfs_tests.rs"]
mod tests;
