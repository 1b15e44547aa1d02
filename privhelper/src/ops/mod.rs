//! Typed operations. Each operation is a struct of validated arguments and a function
//! that plans what root must do for it: run an argv, read a file, write a value to
//! a kernel attribute, create a file that must not exist yet, or set a secret in an
//! open-iscsi record. The daemon checks every plan against the filters before it
//! runs it, and checks the plan's identity [`Guard`] right before acting. Adding an
//! operation is one struct + one `plan` + one line in [`OPS`].

use std::net::IpAddr;

use moor_types::{CcwBusId, DasdUid, Nqn, NvmeController, NvmeTransport};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub mod block;
pub mod dasd;
pub mod iscsi;
pub mod luks;
pub mod md;
pub mod multipath;
pub mod nvme;
pub mod scsi;
pub mod zfcp;

pub use block::*;
pub use dasd::*;
pub use iscsi::*;
pub use luks::*;
pub use md::*;
pub use multipath::*;
pub use nvme::*;
pub use scsi::*;
pub use zfcp::*;

/// A typed operation's argument struct: its wire name, for clients.
pub trait TypedOp: Serialize + std::fmt::Debug {
    const NAME: &'static str;
}

/// A check moord makes immediately before it acts: the device must still be the
/// one the caller captured at attach (invariant 1), and, for the LUKS operations
/// that could destroy data, the target must be in the state the operation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// `device` (a name such as `sdb` or `dm-3`) must carry WWID `expected`
    /// (udev form, see `moor_types::normalize_wwid`): for `sdX` the normalised
    /// `/sys/block/sdX/device/wwid`; for `dm-N` a `/sys/block/dm-N/dm/uuid` of
    /// `mpath-<expected>`; for an NVMe namespace `nvmeXnY` its
    /// `/sys/block/nvmeXnY/wwid` as printed (`uuid.…`, `eui.…`, `nvme.…`).
    Wwid { device: String, expected: String },
    /// `device` (`dm-N`) must be the multipath map `name` carrying WWID `expected`:
    /// `/sys/block/dm-N/dm/name` is `name` and `/sys/block/dm-N/dm/uuid` is
    /// `mpath-<expected>`.
    DmMap {
        device: String,
        name: String,
        expected: String,
    },
    /// `link` (under `/dev/disk/by-*`) is a symlink to `device` or one of its
    /// partitions, and `device` is gone (`/sys/block/<device>` does not exist): the
    /// link is stale, not another device's.
    StaleLink { link: String, device: String },
    /// Precondition: no block device carries WWID `wwid` (no `/sys/block/sdX`
    /// whose normalised `device/wwid` is it, no `dm-N` with `dm/uuid`
    /// `mpath-<wwid>`, no `nvmeXnY` whose `wwid` is it).
    WwidUnused { wwid: String },
    /// Every guard holds, checked in order (the first failure is reported).
    All(Vec<Guard>),
    /// `path` (lstat) is a regular file: not a symlink, not a device.
    RegularFile { path: String },
    /// `path` (a file, or `/dev/NAME`) carries no recognisable header (LUKS, GPT,
    /// MBR partitions, a file system, swap, LVM, an MD RAID 1.1/1.2 superblock): it
    /// is safe to format.
    Blank { path: String },
    /// The LUKS header of `path` has key slot `slot` active and at least one other
    /// active slot: killing `slot` leaves the volume openable.
    LuksOtherSlot { path: String, slot: u8 },
    /// `/dev/mapper/NAME` is a dm-crypt mapping whose only backing device is
    /// `backing`, and `backing` carries WWID `expected_wwid`.
    CryptMapping {
        name: String,
        backing: String,
        expected_wwid: String,
    },
    /// `controller` is still the NVMe-oF controller the caller captured (controller
    /// names are reused): under `/sys/class/nvme/nvmeN/`, `subsysnqn` is `subsysnqn`
    /// byte for byte, `transport` is `transport`, the `traddr=` of `address` is
    /// `traddr` (compared as an IP address) and its `trsvcid=` is `trsvcid`, and
    /// `hostnqn` is `hostnqn` (not compared on kernels without that attribute).
    NvmeController {
        controller: NvmeController,
        subsysnqn: Nqn,
        transport: NvmeTransport,
        traddr: IpAddr,
        trsvcid: u16,
        hostnqn: Nqn,
    },
    /// `device` (`mdN`) is still the MD array the caller assembled (md minors are
    /// reused): `/sys/block/mdN/md` exists; `/dev/md/NAME` is a symlink whose
    /// target's file name is `mdN`; and every entry of `/sys/block/mdN/slaves/`
    /// (at least one) is one of `members` (device name, expected WWID) and carries
    /// that member's WWID (as [`Guard::Wwid`]). A degraded array has fewer slaves
    /// than members: slaves ⊆ members is the rule.
    MdArray {
        device: String,
        name: String,
        members: Vec<(String, String)>,
    },
    /// The DASD `busid` still carries uid `expected`:
    /// `/sys/bus/ccw/devices/<busid>/uid`, as the kernel prints it (empty while the
    /// device is offline, which is a mismatch too); and when `device` is given,
    /// `device` (`dasdX`) is that DASD's disk (`/sys/bus/ccw/devices/<busid>/block/
    /// <device>` exists). DASD names follow the order devices were first set online,
    /// the uid is the volume's identity.
    DasdUid {
        busid: CcwBusId,
        expected: DasdUid,
        device: Option<String>,
    },
    /// Precondition: `/sys/bus/ccw/devices/<busid>/status` is `status`
    /// (`unformatted` before `dasd.format`, `online` before `dasd.partition`).
    DasdStatus {
        busid: CcwBusId,
        status: &'static str,
    },
    /// Precondition: block device `device` has no partition (no `<device>N` entry
    /// in `/sys/block/<device>/`).
    Unpartitioned { device: String },
    /// Precondition: the CCW device `busid` exists and is driven by `driver`
    /// (`/sys/bus/ccw/devices/<busid>/driver` links to `…/drivers/<driver>`).
    CcwDriver {
        busid: CcwBusId,
        driver: &'static str,
    },
    /// Precondition: no SCSI device of zFCP unit (`busid`, `wwpn`, `fcp_lun`)
    /// exists (no `/sys/bus/scsi/devices/*` with those `hba_id`, `wwpn` and
    /// `fcp_lun`): `unit_remove` never pulls a disk from under its users.
    ZfcpUnitUnused {
        busid: CcwBusId,
        wwpn: moor_types::Wwpn,
        fcp_lun: moor_types::FcpLun,
    },
}

/// What root must do for one operation.
#[derive(Debug)]
pub enum Plan {
    /// Answer without doing anything.
    Ping,
    /// Answer with moord's metrics (read-only, moord's own counters: nothing is
    /// run, read or written for it, so no filter is involved).
    Metrics,
    /// Run `argv` (argv[0] as the filters expect it; moord resolves the executable).
    Exec(ExecPlan),
    /// Read a file (allowed by a ReadFileFilter for `cat PATH`).
    ReadFile { path: String },
    /// Write `value` to the existing file `path` (allowed by a WriteFileFilter).
    WriteFile {
        path: String,
        value: String,
        guard: Option<Guard>,
    },
    /// Create the file `path` holding exactly `value` (allowed by a WriteFileFilter,
    /// as [`Plan::WriteFile`]): only if nothing exists at `path` (`O_CREAT|O_EXCL|
    /// O_NOFOLLOW`, mode 0644), never replacing an existing file; the parent
    /// directory is created (0755) if it is missing, never through a symlink.
    CreateFile { path: String, value: String },
    /// Set one secret key in an open-iscsi node or discovery record (the only way to
    /// give iscsiadm a CHAP password without putting it in argv). The filters see the
    /// record path and the key name, never the secret.
    IscsiSecret(IscsiSecretPlan),
}

#[derive(Debug)]
pub struct ExecPlan {
    pub argv: Vec<String>,
    /// Bytes for the child's stdin (not secret).
    pub stdin: Option<Vec<u8>>,
    /// Secret bytes for the child's stdin; never logged, zeroized after use.
    pub secret_stdin: Option<Secret>,
    /// Stream stdin/stdout/stderr as data frames instead of buffering.
    pub stream: bool,
    pub timeout_ms: Option<u64>,
    /// Identity check before the command runs.
    pub guard: Option<Guard>,
}

/// Secret text in a request's arguments: sent as a JSON string, zeroized on drop,
/// redacted in Debug.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(s: impl Into<String>) -> SecretText {
        SecretText(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secret bytes: zeroized on drop, redacted in Debug.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// Why an operation's arguments are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("unknown operation {0:?}")]
    Unknown(String),
    #[error("invalid arguments for {op}: {message}")]
    BadArgs { op: &'static str, message: String },
}

pub(crate) fn bad(op: &'static str, message: impl Into<String>) -> OpError {
    OpError::BadArgs {
        op,
        message: message.into(),
    }
}

/// `ping`: no arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingArgs {}

/// `metrics`: no arguments; moord's metrics in the Prometheus text format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsArgs {}

/// `exec`: rootwrap-daemon compatibility. Only for callers whose policy allows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    pub argv: Vec<String>,
    /// Standard input, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Secret standard input (UTF-8), written to the child's stdin and never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_stdin: Option<Zeroizing<String>>,
    /// Stream stdin/stdout/stderr through data frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Deadline in milliseconds (capped by the daemon's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `file.read`: read a file that a ReadFileFilter allows (`cat PATH`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReadArgs {
    pub path: String,
}

/// `sysfs.write`: write a value to a kernel attribute under /sys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysfsWriteArgs {
    pub path: String,
    pub value: String,
}

/// A WWID in udev form (`3600140…`, `2…`, `1…`, `8…`): what the caller captured at
/// attach. Printable ASCII without spaces or slashes.
pub(crate) fn check_wwid(op: &'static str, w: &str) -> Result<(), OpError> {
    let ok =
        !w.is_empty() && w.len() <= 256 && w.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(bad(op, format!("expected_wwid {w:?} is not a WWID")))
    }
}

/// Kinds of block device an operation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    /// `sdX`
    Disk,
    /// `dm-N`
    Map,
    /// `sdX` or `dm-N`
    DiskOrMap,
    /// `sdX`, `dm-N` or an NVMe namespace `nvmeXnY` (a head or a plain namespace,
    /// never a hidden multipath path `nvmeXcYnZ`)
    AnyDisk,
    /// An NVMe namespace `nvmeXnY` only (as in [`DevKind::AnyDisk`])
    Namespace,
    /// An MD array `mdN`
    Md,
    /// A DASD `dasdX` (a whole disk, never a partition)
    Dasd,
}

/// `d` is a whole block device name of kind `kind`.
pub(crate) fn check_device(op: &'static str, d: &str, kind: DevKind) -> Result<(), OpError> {
    let disk = d.starts_with("sd");
    let map = d.starts_with("dm-");
    let nvme = d.starts_with("nvme");
    let md = d.starts_with("md");
    let dasd = d.starts_with("dasd");
    let (ok, what) = match kind {
        DevKind::Disk => (disk, "a SCSI disk name (sdX)"),
        DevKind::Map => (map, "a device-mapper node (dm-N)"),
        DevKind::DiskOrMap => (disk || map, "sdX or dm-N"),
        DevKind::AnyDisk => (disk || map || nvme, "sdX, dm-N or nvmeXnY"),
        DevKind::Namespace => (nvme, "an NVMe namespace (nvmeXnY)"),
        DevKind::Md => (md, "an MD array (mdN)"),
        DevKind::Dasd => (dasd, "a DASD (dasdX)"),
    };
    if ok && moor_types::is_block_device_name(d) {
        Ok(())
    } else {
        Err(bad(op, format!("device {d:?} is not {what}")))
    }
}

/// Run `argv` (a typed op's command: no stdin, the default deadline), after
/// checking `guard` if there is one.
pub(crate) fn exec_plan(argv: Vec<String>, guard: Option<Guard>) -> Plan {
    secret_exec_plan(argv, None, guard)
}

/// [`exec_plan`] with `secret` (if any) on the command's stdin: the only way a
/// typed op hands a command a secret.
pub(crate) fn secret_exec_plan(
    argv: Vec<String>,
    secret: Option<Secret>,
    guard: Option<Guard>,
) -> Plan {
    Plan::Exec(ExecPlan {
        argv,
        stdin: None,
        secret_stdin: secret,
        stream: false,
        timeout_ms: None,
        guard,
    })
}

/// Run `argv` after checking that `device` carries `expected` (the shape of every
/// identity-checked command).
pub(crate) fn guarded_exec(argv: Vec<String>, device: &str, expected: &str) -> Plan {
    exec_plan(
        argv,
        Some(Guard::Wwid {
            device: device.to_string(),
            expected: expected.to_string(),
        }),
    )
}

/// Absolute, no `.`/`..`/empty components, no NUL.
pub fn is_canonical_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 4096
        && !p.contains('\0')
        && (p == "/"
            || p[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."))
}

fn plan_ping(_: PingArgs) -> Result<Plan, OpError> {
    Ok(Plan::Ping)
}

fn plan_metrics(_: MetricsArgs) -> Result<Plan, OpError> {
    Ok(Plan::Metrics)
}

fn plan_exec(a: ExecArgs) -> Result<Plan, OpError> {
    const OP: &str = "exec";
    if a.argv.is_empty() {
        return Err(bad(OP, "argv is empty"));
    }
    if a.argv.iter().any(|s| s.contains('\0')) {
        return Err(bad(OP, "argv contains a NUL byte"));
    }
    if a.stream && (a.stdin.is_some() || a.secret_stdin.is_some()) {
        return Err(bad(
            OP,
            "a streamed request sends stdin as data frames, not in `stdin`",
        ));
    }
    let stdin = match &a.stdin {
        Some(b) => Some(b64_decode(b).map_err(|e| bad(OP, format!("stdin is not base64: {e}")))?),
        None => None,
    };
    let secret_stdin = a.secret_stdin.map(|s| Secret::new(s.as_bytes().to_vec()));
    Ok(Plan::Exec(ExecPlan {
        argv: a.argv,
        stdin,
        secret_stdin,
        stream: a.stream,
        timeout_ms: a.timeout_ms,
        guard: None,
    }))
}

fn plan_file_read(a: FileReadArgs) -> Result<Plan, OpError> {
    if !is_canonical_path(&a.path) {
        return Err(bad(
            "file.read",
            format!("path {:?} is not absolute and canonical", a.path),
        ));
    }
    Ok(Plan::ReadFile { path: a.path })
}

fn plan_sysfs_write(a: SysfsWriteArgs) -> Result<Plan, OpError> {
    const OP: &str = "sysfs.write";
    if !a.path.starts_with("/sys/") || !is_canonical_path(&a.path) {
        return Err(bad(
            OP,
            format!("path {:?} is not a canonical path under /sys", a.path),
        ));
    }
    if a.value.len() > 4096 || a.value.contains('\0') {
        return Err(bad(OP, "value is longer than 4096 bytes or contains NUL"));
    }
    Ok(Plan::WriteFile {
        path: a.path,
        value: a.value,
        guard: None,
    })
}

/// Deserialize `args` for an op and plan it.
pub(crate) fn typed<A: for<'de> Deserialize<'de>>(
    op: &'static str,
    args: &str,
    f: fn(A) -> Result<Plan, OpError>,
) -> Result<Plan, OpError> {
    let args = if args.trim() == "null" { "{}" } else { args };
    let a: A = serde_json::from_str(args).map_err(|e| bad(op, e.to_string()))?;
    f(a)
}

/// An entry of the operation table.
pub struct OpEntry {
    pub name: &'static str,
    /// Plan from the raw JSON text of `args`.
    pub plan: fn(&str) -> Result<Plan, OpError>,
}

impl std::fmt::Debug for OpEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every operation moord knows.
pub const OPS: &[OpEntry] = &[
    OpEntry {
        name: "ping",
        plan: |a| typed("ping", a, plan_ping),
    },
    OpEntry {
        name: "metrics",
        plan: |a| typed("metrics", a, plan_metrics),
    },
    OpEntry {
        name: "exec",
        plan: |a| typed("exec", a, plan_exec),
    },
    OpEntry {
        name: "file.read",
        plan: |a| typed("file.read", a, plan_file_read),
    },
    OpEntry {
        name: "sysfs.write",
        plan: |a| typed("sysfs.write", a, plan_sysfs_write),
    },
    OpEntry {
        name: IscsiNodeNew::NAME,
        plan: |a| typed(IscsiNodeNew::NAME, a, IscsiNodeNew::plan),
    },
    OpEntry {
        name: IscsiNodeShow::NAME,
        plan: |a| typed(IscsiNodeShow::NAME, a, IscsiNodeShow::plan),
    },
    OpEntry {
        name: IscsiNodeUpdate::NAME,
        plan: |a| typed(IscsiNodeUpdate::NAME, a, IscsiNodeUpdate::plan),
    },
    OpEntry {
        name: IscsiNodeSecret::NAME,
        plan: |a| typed(IscsiNodeSecret::NAME, a, IscsiNodeSecret::plan),
    },
    OpEntry {
        name: IscsiLogin::NAME,
        plan: |a| typed(IscsiLogin::NAME, a, IscsiLogin::plan),
    },
    OpEntry {
        name: IscsiLogout::NAME,
        plan: |a| typed(IscsiLogout::NAME, a, IscsiLogout::plan),
    },
    OpEntry {
        name: IscsiNodeDelete::NAME,
        plan: |a| typed(IscsiNodeDelete::NAME, a, IscsiNodeDelete::plan),
    },
    OpEntry {
        name: IscsiNodeConfigure::NAME,
        plan: |a| typed(IscsiNodeConfigure::NAME, a, IscsiNodeConfigure::plan),
    },
    OpEntry {
        name: IscsiIfaceShow::NAME,
        plan: |a| typed(IscsiIfaceShow::NAME, a, IscsiIfaceShow::plan),
    },
    OpEntry {
        name: IscsiPortalNodes::NAME,
        plan: |a| typed(IscsiPortalNodes::NAME, a, IscsiPortalNodes::plan),
    },
    OpEntry {
        name: IscsiDiscover::NAME,
        plan: |a| typed(IscsiDiscover::NAME, a, IscsiDiscover::plan),
    },
    OpEntry {
        name: IscsiDiscoveryNew::NAME,
        plan: |a| typed(IscsiDiscoveryNew::NAME, a, IscsiDiscoveryNew::plan),
    },
    OpEntry {
        name: IscsiDiscoveryUpdate::NAME,
        plan: |a| typed(IscsiDiscoveryUpdate::NAME, a, IscsiDiscoveryUpdate::plan),
    },
    OpEntry {
        name: IscsiDiscoverySecret::NAME,
        plan: |a| typed(IscsiDiscoverySecret::NAME, a, IscsiDiscoverySecret::plan),
    },
    OpEntry {
        name: IscsiDiscoveryRun::NAME,
        plan: |a| typed(IscsiDiscoveryRun::NAME, a, IscsiDiscoveryRun::plan),
    },
    OpEntry {
        name: ScsiScan::NAME,
        plan: |a| typed(ScsiScan::NAME, a, ScsiScan::plan),
    },
    OpEntry {
        name: ScsiScanAllTargets::NAME,
        plan: |a| typed(ScsiScanAllTargets::NAME, a, ScsiScanAllTargets::plan),
    },
    OpEntry {
        name: ScsiDelete::NAME,
        plan: |a| typed(ScsiDelete::NAME, a, ScsiDelete::plan),
    },
    OpEntry {
        name: ScsiRescan::NAME,
        plan: |a| typed(ScsiRescan::NAME, a, ScsiRescan::plan),
    },
    OpEntry {
        name: BlockFlush::NAME,
        plan: |a| typed(BlockFlush::NAME, a, BlockFlush::plan),
    },
    OpEntry {
        name: BlockReadCheck::NAME,
        plan: |a| typed(BlockReadCheck::NAME, a, BlockReadCheck::plan),
    },
    OpEntry {
        name: IscsiInitiatorName::NAME,
        plan: |a| typed(IscsiInitiatorName::NAME, a, IscsiInitiatorName::plan),
    },
    OpEntry {
        name: BlockUsers::NAME,
        plan: |a| typed(BlockUsers::NAME, a, BlockUsers::plan),
    },
    OpEntry {
        name: BlockRemoveStaleLink::NAME,
        plan: |a| typed(BlockRemoveStaleLink::NAME, a, BlockRemoveStaleLink::plan),
    },
    OpEntry {
        name: MultipathAddWwid::NAME,
        plan: |a| typed(MultipathAddWwid::NAME, a, MultipathAddWwid::plan),
    },
    OpEntry {
        name: MultipathAddPath::NAME,
        plan: |a| typed(MultipathAddPath::NAME, a, MultipathAddPath::plan),
    },
    OpEntry {
        name: MultipathDelPath::NAME,
        plan: |a| typed(MultipathDelPath::NAME, a, MultipathDelPath::plan),
    },
    OpEntry {
        name: MultipathFlush::NAME,
        plan: |a| typed(MultipathFlush::NAME, a, MultipathFlush::plan),
    },
    OpEntry {
        name: MultipathWwids::NAME,
        plan: |a| typed(MultipathWwids::NAME, a, MultipathWwids::plan),
    },
    OpEntry {
        name: MultipathForgetWwid::NAME,
        plan: |a| typed(MultipathForgetWwid::NAME, a, MultipathForgetWwid::plan),
    },
    OpEntry {
        name: MultipathResize::NAME,
        plan: |a| typed(MultipathResize::NAME, a, MultipathResize::plan),
    },
    OpEntry {
        name: MultipathCheck::NAME,
        plan: |a| typed(MultipathCheck::NAME, a, MultipathCheck::plan),
    },
    OpEntry {
        name: MultipathdStatus::NAME,
        plan: |a| typed(MultipathdStatus::NAME, a, MultipathdStatus::plan),
    },
    OpEntry {
        name: MultipathdPaths::NAME,
        plan: |a| typed(MultipathdPaths::NAME, a, MultipathdPaths::plan),
    },
    OpEntry {
        name: LuksIsLuks::NAME,
        plan: |a| typed(LuksIsLuks::NAME, a, LuksIsLuks::plan),
    },
    OpEntry {
        name: LuksFormat::NAME,
        plan: |a| typed(LuksFormat::NAME, a, LuksFormat::plan),
    },
    OpEntry {
        name: LuksOpen::NAME,
        plan: |a| typed(LuksOpen::NAME, a, LuksOpen::plan),
    },
    OpEntry {
        name: LuksClose::NAME,
        plan: |a| typed(LuksClose::NAME, a, LuksClose::plan),
    },
    OpEntry {
        name: LuksResize::NAME,
        plan: |a| typed(LuksResize::NAME, a, LuksResize::plan),
    },
    OpEntry {
        name: LuksAddKey::NAME,
        plan: |a| typed(LuksAddKey::NAME, a, LuksAddKey::plan),
    },
    OpEntry {
        name: LuksRemoveKey::NAME,
        plan: |a| typed(LuksRemoveKey::NAME, a, LuksRemoveKey::plan),
    },
    OpEntry {
        name: LuksTestKey::NAME,
        plan: |a| typed(LuksTestKey::NAME, a, LuksTestKey::plan),
    },
    OpEntry {
        name: LuksDump::NAME,
        plan: |a| typed(LuksDump::NAME, a, LuksDump::plan),
    },
    OpEntry {
        name: NvmeConnect::NAME,
        plan: |a| typed(NvmeConnect::NAME, a, NvmeConnect::plan),
    },
    OpEntry {
        name: NvmeDisconnect::NAME,
        plan: |a| typed(NvmeDisconnect::NAME, a, NvmeDisconnect::plan),
    },
    OpEntry {
        name: NvmeNsRescan::NAME,
        plan: |a| typed(NvmeNsRescan::NAME, a, NvmeNsRescan::plan),
    },
    OpEntry {
        name: NvmeFastIoFail::NAME,
        plan: |a| typed(NvmeFastIoFail::NAME, a, NvmeFastIoFail::plan),
    },
    OpEntry {
        name: NvmeHostIdentity::NAME,
        plan: |a| typed(NvmeHostIdentity::NAME, a, NvmeHostIdentity::plan),
    },
    OpEntry {
        name: NvmeSystemUuid::NAME,
        plan: |a| typed(NvmeSystemUuid::NAME, a, NvmeSystemUuid::plan),
    },
    OpEntry {
        name: MdCreate::NAME,
        plan: |a| typed(MdCreate::NAME, a, MdCreate::plan),
    },
    OpEntry {
        name: MdAssemble::NAME,
        plan: |a| typed(MdAssemble::NAME, a, MdAssemble::plan),
    },
    OpEntry {
        name: MdStop::NAME,
        plan: |a| typed(MdStop::NAME, a, MdStop::plan),
    },
    OpEntry {
        name: MdGrow::NAME,
        plan: |a| typed(MdGrow::NAME, a, MdGrow::plan),
    },
    OpEntry {
        name: DasdFree::NAME,
        plan: |a| typed(DasdFree::NAME, a, DasdFree::plan),
    },
    OpEntry {
        name: DasdOnline::NAME,
        plan: |a| typed(DasdOnline::NAME, a, DasdOnline::plan),
    },
    OpEntry {
        name: DasdSafeOffline::NAME,
        plan: |a| typed(DasdSafeOffline::NAME, a, DasdSafeOffline::plan),
    },
    OpEntry {
        name: DasdOffline::NAME,
        plan: |a| typed(DasdOffline::NAME, a, DasdOffline::plan),
    },
    OpEntry {
        name: DasdFormat::NAME,
        plan: |a| typed(DasdFormat::NAME, a, DasdFormat::plan),
    },
    OpEntry {
        name: DasdPartition::NAME,
        plan: |a| typed(DasdPartition::NAME, a, DasdPartition::plan),
    },
    OpEntry {
        name: ZfcpPortRescan::NAME,
        plan: |a| typed(ZfcpPortRescan::NAME, a, ZfcpPortRescan::plan),
    },
    OpEntry {
        name: ZfcpUnitAdd::NAME,
        plan: |a| typed(ZfcpUnitAdd::NAME, a, ZfcpUnitAdd::plan),
    },
    OpEntry {
        name: ZfcpUnitRemove::NAME,
        plan: |a| typed(ZfcpUnitRemove::NAME, a, ZfcpUnitRemove::plan),
    },
];

/// Plan operation `op` from its raw JSON arguments.
pub fn plan(op: &str, args: &str) -> Result<Plan, OpError> {
    match OPS.iter().find(|e| e.name == op) {
        Some(e) => (e.plan)(args),
        None => Err(OpError::Unknown(op.to_string())),
    }
}

pub fn b64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_validate_arguments() {
        assert!(matches!(plan("ping", "null"), Ok(Plan::Ping)));
        assert!(matches!(plan("metrics", "{}"), Ok(Plan::Metrics)));
        assert!(plan("metrics", r#"{"format":"json"}"#).is_err());
        assert!(matches!(plan("nope", "{}"), Err(OpError::Unknown(_))));
        assert!(matches!(
            plan("exec", r#"{"argv":[]}"#),
            Err(OpError::BadArgs { .. })
        ));
        assert!(matches!(
            plan("exec", r#"{"argv":["a"],"shell":true}"#),
            Err(OpError::BadArgs { .. })
        ));
        let Ok(Plan::Exec(e)) = plan(
            "exec",
            r#"{"argv":["cat"],"stdin":"aGk=","secret_stdin":"pw"}"#,
        ) else {
            panic!("exec plan")
        };
        assert_eq!(e.stdin.as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            format!("{:?}", e.secret_stdin),
            "Some(Secret(<2 bytes redacted>))"
        );
        assert!(plan("sysfs.write", r#"{"path":"/sys/a/../b","value":"1"}"#).is_err());
        assert!(plan("sysfs.write", r#"{"path":"/etc/passwd","value":"1"}"#).is_err());
        assert!(matches!(
            plan(
                "sysfs.write",
                r#"{"path":"/sys/block/sda/device/delete","value":"1"}"#
            ),
            Ok(Plan::WriteFile { .. })
        ));
        assert!(plan("file.read", r#"{"path":"etc/x"}"#).is_err());
    }

    #[test]
    fn canonical_paths() {
        assert!(is_canonical_path("/sys/block/sda"));
        assert!(is_canonical_path("/"));
        for p in ["sys", "/sys//x", "/sys/./x", "/sys/../x", "/sys/x/"] {
            assert!(!is_canonical_path(p), "{p}");
        }
    }

    #[test]
    fn op_names_are_unique_and_typed_ones_belong_to_a_family() {
        let mut names: Vec<&str> = OPS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate operation names");
        for name in names {
            let untyped = ["ping", "metrics", "exec", "file.read", "sysfs.write"].contains(&name);
            assert!(
                untyped
                    || [
                        "iscsi.",
                        "scsi.",
                        "block.",
                        "multipath.",
                        "luks.",
                        "nvme.",
                        "md.",
                        "dasd.",
                        "zfcp."
                    ]
                    .iter()
                    .any(|f| name.starts_with(f)),
                "{name}: policy families (`iscsi.*`, …) would not cover it"
            );
            assert!(!name.contains('*') && !name.contains(','), "{name}");
        }
    }

    #[test]
    fn typed_plans_carry_guards_and_fixed_argv() {
        let wwid = "36001405abcdef0123456789abcdef012";
        let Ok(Plan::WriteFile { path, value, guard }) = plan(
            "scsi.delete",
            &format!(r#"{{"device":"sdb","expected_wwid":"{wwid}"}}"#),
        ) else {
            panic!("scsi.delete plan")
        };
        assert_eq!(
            (path.as_str(), value.as_str()),
            ("/sys/block/sdb/device/delete", "1")
        );
        assert_eq!(
            guard,
            Some(Guard::Wwid {
                device: "sdb".into(),
                expected: wwid.into()
            })
        );
        let Ok(Plan::Exec(e)) = plan(
            "block.flush",
            &format!(r#"{{"device":"dm-3","expected_wwid":"{wwid}"}}"#),
        ) else {
            panic!("block.flush plan")
        };
        assert_eq!(e.argv, ["blockdev", "--flushbufs", "/dev/dm-3"]);
        assert!(e.guard.is_some() && !e.stream && e.stdin.is_none());
        let Ok(Plan::Exec(e)) = plan(
            "block.flush",
            r#"{"device":"nvme1n2","expected_wwid":"eui.0123456789abcdef"}"#,
        ) else {
            panic!("block.flush plan for an NVMe namespace")
        };
        assert_eq!(e.argv, ["blockdev", "--flushbufs", "/dev/nvme1n2"]);
        assert_eq!(
            e.guard,
            Some(Guard::Wwid {
                device: "nvme1n2".into(),
                expected: "eui.0123456789abcdef".into()
            })
        );
        for bad in ["nvme1c2n2", "nvme1", "nvme1n2p1"] {
            let args = format!(r#"{{"device":"{bad}","expected_wwid":"eui.01"}}"#);
            assert!(plan("block.flush", &args).is_err(), "{bad}");
        }
        let Ok(Plan::WriteFile { path, value, guard }) = plan(
            "scsi.scan",
            r#"{"host":4,"channel":0,"target":2,"lun":1099511627776}"#,
        ) else {
            panic!("scsi.scan plan")
        };
        assert_eq!(path, "/sys/class/scsi_host/host4/scan");
        assert_eq!(value, "0 2 1099511627776");
        assert_eq!(guard, None);
        let Ok(Plan::Exec(e)) = plan(
            "iscsi.login",
            r#"{"iqn":"iqn.2004-10.com.example:a","portal":"fd00::1"}"#,
        ) else {
            panic!("iscsi.login plan")
        };
        assert_eq!(
            e.argv,
            [
                "iscsiadm",
                "-m",
                "node",
                "-T",
                "iqn.2004-10.com.example:a",
                "-p",
                "[fd00::1]:3260",
                "--login"
            ]
        );
        // A device name that is not a whole disk, or a missing WWID, is refused.
        for bad in [
            r#"{"device":"sdb1","expected_wwid":"3"}"#,
            r#"{"device":"../sdb","expected_wwid":"3"}"#,
            r#"{"device":"sdb","expected_wwid":""}"#,
            r#"{"device":"sdb","expected_wwid":"3 6"}"#,
            r#"{"device":"sdb"}"#,
        ] {
            assert!(plan("scsi.delete", bad).is_err(), "{bad}");
        }
    }
}
