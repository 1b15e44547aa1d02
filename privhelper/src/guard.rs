//! Identity guards (architecture invariant 1): right before moord writes or runs
//! what a plan asks for, it re-reads the device's identity from sysfs and refuses
//! the operation when it is not the one the caller captured at attach.
//!
//! * `sdX`: `/sys/block/sdX/device/wwid`, normalised like udev
//!   ([`moor_types::normalize_wwid`]), must equal the expected WWID;
//! * `dm-N`: `/sys/block/dm-N/dm/uuid` must be exactly `mpath-<expected>`;
//! * an NVMe namespace `nvmeXnY`: `/sys/block/nvmeXnY/wwid`, as printed;
//! * an MD array `mdN` ([`Guard::MdArray`]): `/dev/md/NAME` links to it and its
//!   slaves are among the caller's legs, each carrying its WWID;
//! * an NVMe-oF controller `nvmeN` ([`Guard::NvmeController`]):
//!   `/sys/class/nvme/nvmeN/{subsysnqn,transport,address,hostnqn}` must show the
//!   subsystem, transport, target address and port, and host NQN the caller
//!   captured (controller names are reused as readily as `sdX`);
//! * an s390x DASD ([`Guard::DasdUid`]): `/sys/bus/ccw/devices/<busid>/uid` must be
//!   the uid the caller captured (and `dasdX` that device's disk).
//!
//! Paths are resolved under the configured host root. A missing device or
//! attribute is a mismatch too: there is no "empty means don't care".
//!
//! The LUKS operations add preconditions that keep data safe, checked the same way
//! (a failure is an [`Unmet`] precondition, not an identity mismatch): a target to
//! format carries no recognisable header ([`Guard::Blank`]), a key slot to kill is
//! not the last one ([`Guard::LuksOtherSlot`], from moord's own reading of the
//! header), an image is a regular file ([`Guard::RegularFile`]). A mapping to close
//! or resize must be a dm-crypt mapping of the captured device
//! ([`Guard::CryptMapping`], an identity check). The DASD operations add theirs: a
//! DASD to format is `unformatted` and one to partition is `online`
//! ([`Guard::DasdStatus`]) without partitions ([`Guard::Unpartitioned`]); a device
//! to set online is driven by `dasd-eckd` ([`Guard::CcwDriver`]).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use std::net::IpAddr;

use moor_types::{
    CcwBusId, DasdUid, Nqn, NvmeController, NvmeTransport, is_block_device_name,
    is_disk_or_partition, normalize_wwid,
};

use crate::config::host_path;
use crate::ops::Guard;

/// What was found instead of the expected identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The attribute's value (normalised for `sdX`, raw for `dm-N`).
    Value(String),
    /// Attribute `attribute` (a host path) holds `value` (without its final newline).
    Attribute { attribute: String, value: String },
    /// The device or its attribute could not be read.
    Missing { attribute: String, error: String },
    /// The guard names something that is not a device (or name) moord checks.
    Unsupported,
}

/// The device does not carry the expected identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity mismatch on {device}: expected {what} {expected:?}, {}", describe(.found))]
pub struct Mismatch {
    pub device: String,
    /// What `expected` is: `WWID`, `controller`, `MD array`.
    pub what: &'static str,
    pub expected: String,
    pub found: Found,
}

fn describe(f: &Found) -> String {
    match f {
        Found::Value(v) => format!("found {v:?}"),
        Found::Attribute { attribute, value } => format!("found {attribute} {value:?}"),
        Found::Missing { attribute, error } => format!("found nothing: {attribute}: {error}"),
        Found::Unsupported => "found nothing: not a device (or name) moord can check".into(),
    }
}

/// Longest attribute moord reads (a WWID or dm uuid is far shorter).
const MAX_ATTR: u64 = 4096;

/// Read a sysfs attribute: no final symlink, at most [`MAX_ATTR`] bytes, UTF-8.
fn read_attr(path: &Path) -> std::io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_ATTR).read_to_end(&mut buf)?;
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// `link` points at `device` (or a partition of it) and `device` is gone.
fn check_stale_link(root: &Path, link: &str, device: &str) -> Result<(), Mismatch> {
    let mismatch = |found| Mismatch {
        device: device.to_string(),
        what: "a stale link",
        expected: link.to_string(),
        found,
    };
    if !is_block_device_name(device) {
        return Err(mismatch(Found::Unsupported));
    }
    let target = std::fs::read_link(host_path(root, link)).map_err(|e| {
        mismatch(Found::Missing {
            attribute: link.to_string(),
            error: e.to_string(),
        })
    })?;
    let points_at = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if !moor_types::is_disk_or_partition(device, &points_at) {
        return Err(mismatch(Found::Value(format!("a link to {points_at:?}"))));
    }
    let sys = format!("/sys/block/{device}");
    if std::fs::symlink_metadata(host_path(root, &sys)).is_ok() {
        return Err(mismatch(Found::Value(format!(
            "{sys} exists: the link is not stale"
        ))));
    }
    Ok(())
}

/// Why a guard refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The device (or mapping) is not the one the caller captured.
    #[error(transparent)]
    Identity(#[from] Mismatch),
    /// The target is not in the state the operation requires.
    #[error(transparent)]
    Precondition(#[from] Unmet),
}

/// The target is not in the state the operation requires; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} {problem}")]
pub struct Unmet {
    pub path: String,
    /// What is wrong, as a predicate: "carries a LUKS2 header".
    pub problem: String,
}

fn unmet(path: &str, problem: impl Into<String>) -> Unmet {
    Unmet {
        path: path.to_string(),
        problem: problem.into(),
    }
}

fn unsupported(g: &Guard) -> Mismatch {
    Mismatch {
        device: format!("{g:?}"),
        what: "WWID",
        expected: String::new(),
        found: Found::Unsupported,
    }
}

/// lstat: `path` is a regular file (a symlink could point anywhere, a device is
/// never an image).
fn check_regular_file(root: &Path, path: &str) -> Result<(), Unmet> {
    let meta = std::fs::symlink_metadata(host_path(root, path))
        .map_err(|e| unmet(path, format!("cannot be examined: {e}")))?;
    let t = meta.file_type();
    if t.is_file() {
        Ok(())
    } else if t.is_symlink() {
        Err(unmet(path, "is a symlink, not a regular file"))
    } else {
        Err(unmet(path, "is not a regular file"))
    }
}

/// Open for reading: never through a final symlink.
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Read up to `len` bytes from the start of `path` (less if it is shorter).
fn read_head(root: &Path, path: &str, len: u64) -> Result<Vec<u8>, Unmet> {
    let f = open_nofollow(&host_path(root, path))
        .map_err(|e| unmet(path, format!("cannot be read: {e}")))?;
    // Another host may have written a shared LUN since moord last read it: drop
    // cached pages so the read sees the disk (advice only; dirty pages stay).
    // SAFETY: posix_fadvise only advises the kernel about an fd this function owns.
    unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            libc::off_t::try_from(len).unwrap_or(0),
            libc::POSIX_FADV_DONTNEED,
        );
    }
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| unmet(path, format!("cannot be read: {e}")))?;
    Ok(buf)
}

/// How much of a target [`check_blank`] reads: past the last LUKS2 secondary
/// header offset (1 MiB) and the btrfs superblock (64 KiB).
const BLANK_SCAN: u64 = 1024 * 1024 + 4096;

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
/// An MD RAID v1.x superblock starts with `0xa92b4efc`, little-endian.
const MD_MAGIC: [u8; 4] = 0xa92b_4efc_u32.to_le_bytes();
/// Where an MD superblock sits that the first-MiB scan can see: metadata 1.1 at the
/// start of the device, 1.2 4 KiB in. Metadata 1.0 and 0.90 keep theirs near the
/// *end* of the device, out of the scan's reach: they are not detected here (moord
/// itself only ever creates 1.2 arrays).
const MD_SUPERBLOCKS: [(usize, &str); 2] = [(0, "1.1"), (4096, "1.2")];
const LUKS2_SECONDARY_MAGIC: &[u8] = b"SKUL\xba\xbe";
/// Where LUKS2 may keep its secondary header (the primary's size).
const LUKS2_SECONDARY_OFFSETS: [usize; 7] =
    [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000];

fn has_at(buf: &[u8], off: usize, magic: &[u8]) -> bool {
    buf.get(off..off + magic.len()) == Some(magic)
}

/// The first recognisable header in `buf` (the start of a device or image), as
/// "a LUKS2 header" etc.
pub(crate) fn recognise_header(buf: &[u8]) -> Option<String> {
    if has_at(buf, 0, LUKS_MAGIC) {
        let version = buf.get(6..8).map(|v| u16::from_be_bytes([v[0], v[1]]));
        return Some(match version {
            Some(v @ (1 | 2)) => format!("a LUKS{v} header"),
            _ => "a LUKS header".into(),
        });
    }
    // A damaged primary with an intact secondary is still recoverable.
    if let Some(off) = LUKS2_SECONDARY_OFFSETS
        .iter()
        .find(|&&o| has_at(buf, o, LUKS2_SECONDARY_MAGIC))
    {
        return Some(format!("a LUKS2 secondary header at {off:#x}"));
    }
    if let Some((_, version)) = MD_SUPERBLOCKS
        .iter()
        .find(|(off, _)| has_at(buf, *off, &MD_MAGIC))
    {
        return Some(format!("an MD RAID member (metadata {version})"));
    }
    // LBA 1 for 512-byte and for 4096-byte sectors.
    if has_at(buf, 512, b"EFI PART") || has_at(buf, 4096, b"EFI PART") {
        return Some("a GPT partition table".into());
    }
    if has_at(buf, 510, &[0x55, 0xaa]) && buf[446..510].iter().any(|&b| b != 0) {
        return Some("an MBR partition table".into());
    }
    if has_at(buf, 1080, &[0x53, 0xef]) {
        return Some("an ext2/3/4 file system".into());
    }
    if has_at(buf, 0, b"XFSB") {
        return Some("an XFS file system".into());
    }
    if has_at(buf, 4086, b"SWAPSPACE2") || has_at(buf, 4086, b"SWAP-SPACE") {
        return Some("a swap signature".into());
    }
    if has_at(buf, 0x10040, b"_BHRfS_M") {
        return Some("a btrfs file system".into());
    }
    if (0..4).any(|s| has_at(buf, s * 512, b"LABELONE")) {
        return Some("an LVM2 physical volume label".into());
    }
    None
}

/// `path` carries no header moord recognises: formatting it destroys nothing.
fn check_blank(root: &Path, path: &str) -> Result<(), Unmet> {
    let buf = read_head(root, path, BLANK_SCAN)?;
    match recognise_header(&buf) {
        None => Ok(()),
        Some(what) => Err(unmet(path, format!("carries {what}"))),
    }
}

/// The LUKS1 key-slot state "active".
const LUKS1_KEY_ENABLED: u32 = 0x00AC_71F3;
/// The largest LUKS2 header (binary + JSON area) cryptsetup writes.
const LUKS2_MAX_HDR: u64 = 4 * 1024 * 1024;

/// The key slots of the LUKS header at the start of `buf` that can open the
/// volume. LUKS2: the keyslots bound to a digest that covers a segment (an unbound
/// key slot opens nothing).
fn luks_active_slots(root: &Path, path: &str) -> Result<Vec<u32>, Unmet> {
    let head = read_head(root, path, 4096)?;
    if !has_at(&head, 0, LUKS_MAGIC) || head.len() < 4096 {
        return Err(unmet(path, "carries no LUKS header"));
    }
    match u16::from_be_bytes([head[6], head[7]]) {
        1 => Ok((0..8u32)
            .filter(|i| {
                let off = 208 + *i as usize * 48;
                head.get(off..off + 4).is_some_and(|b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == LUKS1_KEY_ENABLED
                })
            })
            .collect()),
        2 => {
            let mut size = [0u8; 8];
            size.copy_from_slice(&head[8..16]);
            let hdr_size = u64::from_be_bytes(size);
            if !(4096 + 1..=LUKS2_MAX_HDR).contains(&hdr_size) {
                return Err(unmet(
                    path,
                    format!("carries a LUKS2 header with an invalid size {hdr_size}"),
                ));
            }
            let hdr = read_head(root, path, hdr_size)?;
            let area = hdr.get(4096..).unwrap_or_default();
            let json = &area[..area.iter().position(|&b| b == 0).unwrap_or(area.len())];
            let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
                unmet(
                    path,
                    format!("carries a LUKS2 header whose JSON does not parse: {e}"),
                )
            })?;
            luks2_bound_slots(&v)
                .ok_or_else(|| unmet(path, "carries a LUKS2 header without keyslots and digests"))
        }
        v => Err(unmet(path, format!("carries an unknown LUKS version {v}"))),
    }
}

/// LUKS2: the key slots a digest binds to a data segment.
fn luks2_bound_slots(v: &serde_json::Value) -> Option<Vec<u32>> {
    let slots = v.get("keyslots")?.as_object()?;
    let digests = v.get("digests")?.as_object()?;
    let mut bound: Vec<u32> = digests
        .values()
        .filter(|d| {
            d.get("segments")
                .and_then(|s| s.as_array())
                .is_some_and(|s| !s.is_empty())
        })
        .filter_map(|d| d.get("keyslots")?.as_array())
        .flatten()
        .filter_map(|k| k.as_str())
        .filter(|k| slots.contains_key(*k))
        .filter_map(|k| k.parse().ok())
        .collect();
    bound.sort_unstable();
    bound.dedup();
    Some(bound)
}

/// Key slot `slot` is active and another one is too: killing it leaves the volume
/// openable.
fn check_luks_other_slot(root: &Path, path: &str, slot: u8) -> Result<(), Unmet> {
    let active = luks_active_slots(root, path)?;
    let slot = u32::from(slot);
    if !active.contains(&slot) {
        return Err(unmet(
            path,
            format!("has no active key slot {slot} (active: {active:?})"),
        ));
    }
    if active.len() < 2 {
        return Err(unmet(
            path,
            format!(
                "has key slot {slot} as its last active key slot: removing it would make the volume unreadable"
            ),
        ));
    }
    Ok(())
}

/// The kernel's dm node (`dm-K`) of the device-mapper device called `name`.
fn dm_node_named(root: &Path, name: &str) -> Result<String, String> {
    let dir = host_path(root, "/sys/block");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("/sys/block: {e}"))?;
    let mut found = Vec::new();
    for e in entries.flatten() {
        let node = e.file_name().to_string_lossy().into_owned();
        if !node.starts_with("dm-") || !is_block_device_name(&node) {
            continue;
        }
        let attr = format!("/sys/block/{node}/dm/name");
        if read_attr(&host_path(root, &attr)).is_ok_and(|n| n.trim_end_matches('\n') == name) {
            found.push(node);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no device-mapper device named {name:?}")),
        many => Err(format!(
            "several device-mapper devices named {name:?}: {many:?}"
        )),
    }
}

/// `name` is a dm-crypt mapping whose one backing device is `backing`, and
/// `backing` carries `expected`.
fn check_crypt_mapping(
    root: &Path,
    name: &str,
    backing: &str,
    expected: &str,
) -> Result<(), Mismatch> {
    let mismatch = |found| Mismatch {
        device: format!("mapping {name}"),
        what: "WWID",
        expected: expected.to_string(),
        found,
    };
    // Validated again here: the names become path components.
    let name_ok = !name.is_empty()
        && name.len() <= 127
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    if !name_ok || !is_block_device_name(backing) {
        return Err(mismatch(Found::Unsupported));
    }
    let node = dm_node_named(root, name).map_err(|error| {
        mismatch(Found::Missing {
            attribute: "/sys/block/dm-*/dm/name".into(),
            error,
        })
    })?;
    let attr = format!("/sys/block/{node}/dm/uuid");
    let uuid = read_attr(&host_path(root, &attr)).map_err(|e| {
        mismatch(Found::Missing {
            attribute: attr.clone(),
            error: e.to_string(),
        })
    })?;
    let uuid = uuid.trim_end_matches('\n');
    if !uuid.starts_with("CRYPT-") {
        return Err(mismatch(Found::Value(format!(
            "{node} has dm uuid {uuid:?}: not a dm-crypt mapping"
        ))));
    }
    let slaves = format!("/sys/block/{node}/slaves");
    let under: Vec<String> = std::fs::read_dir(host_path(root, &slaves))
        .map_err(|e| {
            mismatch(Found::Missing {
                attribute: slaves.clone(),
                error: e.to_string(),
            })
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if under != [backing] {
        return Err(mismatch(Found::Value(format!(
            "{node} is backed by [{}], not [{backing}]",
            under.join(" ")
        ))));
    }
    check_identity(
        root,
        &Guard::Wwid {
            device: backing.to_string(),
            expected: expected.to_string(),
        },
    )
}

/// The `traddr=` and `trsvcid=` values of a controller's `address` attribute
/// (`traddr=10.0.0.1,trsvcid=4420[,host_traddr=…][,src_addr=…]`). `None` when either
/// is missing or given twice: such an address identifies nothing.
fn nvme_address(address: &str) -> Option<(&str, &str)> {
    let (mut traddr, mut trsvcid) = (None, None);
    for (k, v) in address.split(',').filter_map(|kv| kv.split_once('=')) {
        let slot = match k.trim() {
            "traddr" => &mut traddr,
            "trsvcid" => &mut trsvcid,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return None;
        }
    }
    Some((traddr?, trsvcid?))
}

/// `controller` is the NVMe-oF controller the caller captured: its `subsysnqn`,
/// `transport`, `address` (traddr as an IP address, trsvcid) and `hostnqn` (when the
/// kernel has that attribute) under `/sys/class/nvme/nvmeN` are the expected ones.
fn check_nvme_controller(
    root: &Path,
    controller: NvmeController,
    subsysnqn: &Nqn,
    transport: NvmeTransport,
    traddr: IpAddr,
    trsvcid: u16,
    hostnqn: &Nqn,
) -> Result<(), Mismatch> {
    let mismatch = |found| Mismatch {
        device: controller.to_string(),
        what: "controller",
        expected: format!(
            "subsysnqn={subsysnqn} transport={transport} traddr={traddr} trsvcid={trsvcid} hostnqn={hostnqn}"
        ),
        found,
    };
    // `nvmeN` is a validated name: digits only after the prefix.
    let dir = format!("/sys/class/nvme/{controller}");
    let read = |attr: &str| {
        let attribute = format!("{dir}/{attr}");
        read_attr(&host_path(root, &attribute)).map(|raw| {
            let value = raw.strip_suffix('\n').unwrap_or(&raw).to_string();
            (attribute, value)
        })
    };
    let missing = |attr: &str, e: std::io::Error| {
        mismatch(Found::Missing {
            attribute: format!("{dir}/{attr}"),
            error: e.to_string(),
        })
    };
    let differs =
        |(attribute, value): (String, String)| mismatch(Found::Attribute { attribute, value });

    let got = read("subsysnqn").map_err(|e| missing("subsysnqn", e))?;
    if got.1 != subsysnqn.as_str() {
        return Err(differs(got));
    }
    let got = read("transport").map_err(|e| missing("transport", e))?;
    if got.1 != transport.as_str() {
        return Err(differs(got));
    }
    let got = read("address").map_err(|e| missing("address", e))?;
    let same_address = nvme_address(&got.1).is_some_and(|(a, p)| {
        a.parse::<IpAddr>().is_ok_and(|a| a == traddr)
            && p.parse::<u16>().is_ok_and(|p| p == trsvcid)
    });
    if !same_address {
        return Err(differs(got));
    }
    match read("hostnqn") {
        Ok(got) if got.1 != hostnqn.as_str() => Err(differs(got)),
        Ok(_) => Ok(()),
        // Kernels before 5.x have no `hostnqn` attribute: nothing to compare (as
        // os-brick). The controller itself must still be there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::symlink_metadata(host_path(root, &format!("{dir}/subsysnqn"))) {
                Ok(_) => Ok(()),
                Err(e) => Err(missing("subsysnqn", e)),
            }
        }
        Err(e) => Err(missing("hostnqn", e)),
    }
}

/// `device` (`mdN`) is the MD array `/dev/md/NAME` (udev's link points at it), and
/// every one of its slaves (at least one) is among `members` and carries that
/// member's WWID. A degraded array has fewer slaves than members.
fn check_md_array(
    root: &Path,
    device: &str,
    name: &str,
    members: &[(String, String)],
) -> Result<(), Mismatch> {
    let mismatch = |found| Mismatch {
        device: device.to_string(),
        what: "MD array",
        expected: format!(
            "/dev/md/{name} with legs [{}]",
            members
                .iter()
                .map(|(d, w)| format!("{d}={w}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        found,
    };
    // Validated again here: the names become path components.
    let names_ok = device.starts_with("md")
        && is_block_device_name(device)
        && name.parse::<moor_types::MdName>().is_ok()
        && members
            .iter()
            .all(|(d, _)| d.starts_with("nvme") && is_block_device_name(d));
    if !names_ok {
        return Err(mismatch(Found::Unsupported));
    }
    let missing = |attribute: &str, error: String| {
        mismatch(Found::Missing {
            attribute: attribute.to_string(),
            error,
        })
    };
    // An md device: /sys/block/mdN is a link into /sys/devices, its `md` a directory.
    let md_dir = format!("/sys/block/{device}/md");
    match std::fs::metadata(host_path(root, &md_dir)) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(missing(&md_dir, "not a directory".into())),
        Err(e) => return Err(missing(&md_dir, e.to_string())),
    }
    // udev's link for the array name; read, never followed further.
    let link = format!("/dev/md/{name}");
    let target =
        std::fs::read_link(host_path(root, &link)).map_err(|e| missing(&link, e.to_string()))?;
    if target.file_name().and_then(|n| n.to_str()) != Some(device) {
        return Err(mismatch(Found::Value(format!(
            "{link} is a link to {}, not to {device}",
            target.display()
        ))));
    }
    let slaves_dir = format!("/sys/block/{device}/slaves");
    let mut slaves: Vec<String> = std::fs::read_dir(host_path(root, &slaves_dir))
        .map_err(|e| missing(&slaves_dir, e.to_string()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| missing(&slaves_dir, e.to_string()))?;
    slaves.sort_unstable();
    if slaves.is_empty() {
        return Err(mismatch(Found::Value(format!(
            "{device} has no member devices ({slaves_dir} is empty)"
        ))));
    }
    for slave in &slaves {
        let Some((_, wwid)) = members.iter().find(|(d, _)| d == slave) else {
            return Err(mismatch(Found::Value(format!(
                "{device} has member {slave}, which is not one of the legs (members: [{}])",
                slaves.join(" ")
            ))));
        };
        // The leg's own mismatch (it names the leg and its WWID).
        check_identity(
            root,
            &Guard::Wwid {
                device: slave.clone(),
                expected: wwid.clone(),
            },
        )?;
    }
    Ok(())
}

/// `/sys/bus/ccw/devices/<busid>` (the bus id is a validated, canonical name).
fn ccw_dir(busid: CcwBusId) -> String {
    format!("/sys/bus/ccw/devices/{busid}")
}

/// The DASD `busid` carries uid `expected` and, when `device` is given, `device` is
/// its disk.
fn check_dasd_uid(
    root: &Path,
    busid: CcwBusId,
    expected: &DasdUid,
    device: Option<&str>,
) -> Result<(), Mismatch> {
    let mismatch = |found| Mismatch {
        device: busid.to_string(),
        what: "DASD uid",
        expected: expected.to_string(),
        found,
    };
    let attribute = format!("{}/uid", ccw_dir(busid));
    let raw = read_attr(&host_path(root, &attribute)).map_err(|e| {
        mismatch(Found::Missing {
            attribute: attribute.clone(),
            error: e.to_string(),
        })
    })?;
    let got = raw.trim_end_matches('\n');
    if got != expected.as_str() {
        // The kernel prints an empty uid for an offline device.
        return Err(mismatch(Found::Attribute {
            attribute,
            value: got.to_string(),
        }));
    }
    if let Some(device) = device {
        if !device.starts_with("dasd") || !is_block_device_name(device) {
            return Err(mismatch(Found::Unsupported));
        }
        let disk = format!("{}/block/{device}", ccw_dir(busid));
        match std::fs::symlink_metadata(host_path(root, &disk)) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(mismatch(Found::Missing {
                    attribute: disk,
                    error: "not a directory".into(),
                }));
            }
            Err(e) => {
                return Err(mismatch(Found::Value(format!(
                    "{device} is not its disk ({disk}: {e})"
                ))));
            }
        }
    }
    Ok(())
}

/// The DASD `busid` shows `status` (`unformatted`, `online`, …).
fn check_dasd_status(root: &Path, busid: CcwBusId, status: &str) -> Result<(), Unmet> {
    let attribute = format!("{}/status", ccw_dir(busid));
    let raw = read_attr(&host_path(root, &attribute))
        .map_err(|e| unmet(&attribute, format!("cannot be read: {e}")))?;
    let got = raw.trim_end_matches('\n');
    if got == status {
        return Ok(());
    }
    let why = match status {
        "unformatted" => ": moord formats only an unformatted DASD",
        "online" => ": moord partitions only a formatted, online DASD",
        _ => "",
    };
    Err(unmet(
        &attribute,
        format!("is {got:?}, not {status:?}{why}"),
    ))
}

/// Block device `device` has no partition.
fn check_unpartitioned(root: &Path, device: &str) -> Result<(), Unmet> {
    let dir = format!("/sys/block/{device}");
    if !is_block_device_name(device) {
        return Err(unmet(&dir, "is not a block device moord checks"));
    }
    let entries = std::fs::read_dir(host_path(root, &dir))
        .map_err(|e| unmet(&dir, format!("cannot be listed: {e}")))?;
    let mut parts: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != device && is_disk_or_partition(device, n))
        .collect();
    parts.sort_unstable();
    if parts.is_empty() {
        Ok(())
    } else {
        Err(unmet(
            &format!("/dev/{device}"),
            format!(
                "has partitions ({}): moord never rewrites a partition table",
                parts.join(", ")
            ),
        ))
    }
}

/// The CCW device `busid` is driven by `driver`.
fn check_ccw_driver(root: &Path, busid: CcwBusId, driver: &str) -> Result<(), Unmet> {
    let link = format!("{}/driver", ccw_dir(busid));
    let target = std::fs::read_link(host_path(root, &link)).map_err(|e| {
        unmet(
            &ccw_dir(busid),
            format!("has no driver ({link}: {e}): not a device moord sets online"),
        )
    })?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == driver {
        Ok(())
    } else {
        Err(unmet(
            &ccw_dir(busid),
            format!("is driven by {name:?}, not {driver:?}: not a device moord sets online"),
        ))
    }
}

/// No SCSI device belongs to zFCP unit (`busid`, `wwpn`, `fcp_lun`).
fn check_zfcp_unit_unused(
    root: &Path,
    busid: CcwBusId,
    wwpn: moor_types::Wwpn,
    fcp_lun: moor_types::FcpLun,
) -> Result<(), Unmet> {
    let dir = "/sys/bus/scsi/devices";
    let entries = match std::fs::read_dir(host_path(root, dir)) {
        Ok(e) => e,
        // No SCSI bus at all: no device of the unit.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unmet(dir, format!("cannot be listed: {e}"))),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let attr = |a: &str| {
            read_attr(&host_path(root, &format!("{dir}/{name}/{a}")))
                .map(|v| v.trim().to_owned())
                .ok()
        };
        let same = attr("hba_id").and_then(|b| b.parse::<CcwBusId>().ok()) == Some(busid)
            && attr("wwpn").and_then(|w| w.parse::<moor_types::Wwpn>().ok()) == Some(wwpn)
            && attr("fcp_lun").and_then(|l| l.parse::<moor_types::FcpLun>().ok()) == Some(fcp_lun);
        if same {
            return Err(unmet(
                &format!("{dir}/{name}"),
                format!(
                    "is a SCSI device of zfcp unit {busid} {} {fcp_lun}: remove it first",
                    wwpn.sysfs_form()
                ),
            ));
        }
    }
    Ok(())
}

/// No block device under `/sys/block` carries `wwid` (a SCSI disk by its
/// normalised `device/wwid`, a multipath map by `dm/uuid`, an NVMe namespace by
/// `wwid`). A device that vanishes while it is read does not count.
fn check_wwid_unused(root: &Path, wwid: &str) -> Result<(), Unmet> {
    let block = host_path(root, "/sys/block");
    let entries = std::fs::read_dir(&block)
        .map_err(|e| unmet("/sys/block", format!("cannot be listed: {e}")))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let read = |rel: &str| {
            read_attr(&block.join(&name).join(rel))
                .ok()
                .map(|v| v.trim().to_string())
        };
        let carries = if name.starts_with("dm-") {
            read("dm/uuid").is_some_and(|u| u.strip_prefix("mpath-") == Some(wwid))
        } else if name.starts_with("nvme") {
            read("wwid").is_some_and(|w| w == wwid)
        } else {
            read("device/wwid").is_some_and(|w| normalize_wwid(&w) == wwid)
        };
        if carries {
            return Err(unmet(
                &format!("/sys/block/{name}"),
                format!("carries WWID {wwid}: the volume is still on this host"),
            ));
        }
    }
    Ok(())
}

/// Check `g` against the host under `root`.
pub fn check(root: &Path, g: &Guard) -> Result<(), GuardError> {
    match g {
        Guard::ZfcpUnitUnused {
            busid,
            wwpn,
            fcp_lun,
        } => Ok(check_zfcp_unit_unused(root, *busid, *wwpn, *fcp_lun)?),
        Guard::DasdUid {
            busid,
            expected,
            device,
        } => Ok(check_dasd_uid(root, *busid, expected, device.as_deref())?),
        Guard::DasdStatus { busid, status } => Ok(check_dasd_status(root, *busid, status)?),
        Guard::Unpartitioned { device } => Ok(check_unpartitioned(root, device)?),
        Guard::WwidUnused { wwid } => Ok(check_wwid_unused(root, wwid)?),
        Guard::CcwDriver { busid, driver } => Ok(check_ccw_driver(root, *busid, driver)?),
        Guard::MdArray {
            device,
            name,
            members,
        } => Ok(check_md_array(root, device, name, members)?),
        Guard::NvmeController {
            controller,
            subsysnqn,
            transport,
            traddr,
            trsvcid,
            hostnqn,
        } => Ok(check_nvme_controller(
            root,
            *controller,
            subsysnqn,
            *transport,
            *traddr,
            *trsvcid,
            hostnqn,
        )?),
        Guard::All(gs) => gs.iter().try_for_each(|g| check(root, g)),
        Guard::RegularFile { path } => Ok(check_regular_file(root, path)?),
        Guard::Blank { path } => Ok(check_blank(root, path)?),
        Guard::LuksOtherSlot { path, slot } => Ok(check_luks_other_slot(root, path, *slot)?),
        Guard::CryptMapping {
            name,
            backing,
            expected_wwid,
        } => Ok(check_crypt_mapping(root, name, backing, expected_wwid)?),
        Guard::Wwid { .. } | Guard::DmMap { .. } | Guard::StaleLink { .. } => {
            Ok(check_identity(root, g)?)
        }
    }
}

/// The identity guards: WWID, multipath map, stale link.
fn check_identity(root: &Path, g: &Guard) -> Result<(), Mismatch> {
    let (device, expected) = match g {
        Guard::Wwid { device, expected } => (device, expected),
        Guard::StaleLink { link, device } => return check_stale_link(root, link, device),
        Guard::DmMap {
            device,
            name,
            expected,
        } => {
            check_identity(
                root,
                &Guard::Wwid {
                    device: device.clone(),
                    expected: expected.clone(),
                },
            )?;
            // The map name the command will act on must be this node's.
            let attribute = format!("/sys/block/{device}/dm/name");
            let raw = read_attr(&host_path(root, &attribute)).map_err(|e| Mismatch {
                device: device.clone(),
                what: "WWID",
                expected: expected.clone(),
                found: Found::Missing {
                    attribute: attribute.clone(),
                    error: e.to_string(),
                },
            })?;
            let got = raw.trim_end_matches('\n');
            if got != name {
                return Err(Mismatch {
                    device: device.clone(),
                    what: "WWID",
                    expected: expected.clone(),
                    found: Found::Value(format!("map name {got:?}, not {name:?}")),
                });
            }
            return Ok(());
        }
        _ => return Err(unsupported(g)),
    };
    let mismatch = |found| Mismatch {
        device: device.clone(),
        what: "WWID",
        expected: expected.clone(),
        found,
    };
    // Validated again here: the device name becomes a path component.
    if !is_block_device_name(device) {
        return Err(mismatch(Found::Unsupported));
    }
    let (attribute, want) = if device.starts_with("sd") {
        (format!("/sys/block/{device}/device/wwid"), None)
    } else if device.starts_with("dm-") {
        (
            format!("/sys/block/{device}/dm/uuid"),
            Some(format!("mpath-{expected}")),
        )
    } else if device.starts_with("nvme") {
        // The namespace's `wwid` (`uuid.…`, `eui.…`, `nvme.…`), as printed.
        (format!("/sys/block/{device}/wwid"), Some(expected.clone()))
    } else {
        return Err(mismatch(Found::Unsupported));
    };
    let raw = read_attr(&host_path(root, &attribute)).map_err(|e| {
        mismatch(Found::Missing {
            attribute: attribute.clone(),
            error: e.to_string(),
        })
    })?;
    match want {
        None => {
            let got = normalize_wwid(&raw);
            if raw.trim().is_empty() || got != *expected {
                return Err(mismatch(Found::Value(got)));
            }
        }
        Some(want) => {
            let got = if device.starts_with("nvme") {
                raw.trim()
            } else {
                raw.trim_end_matches('\n')
            };
            if got != want {
                return Err(mismatch(Found::Value(got.to_string())));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::check`] for identity guards: the mismatch itself.
    fn check(root: &Path, g: &Guard) -> Result<(), Mismatch> {
        match super::check(root, g) {
            Ok(()) => Ok(()),
            Err(GuardError::Identity(m)) => Err(m),
            Err(e) => panic!("not an identity failure: {e}"),
        }
    }

    /// [`super::check`] for precondition guards: the unmet precondition.
    fn pre(root: &Path, g: &Guard) -> Result<(), Unmet> {
        match super::check(root, g) {
            Ok(()) => Ok(()),
            Err(GuardError::Precondition(u)) => Err(u),
            Err(e) => panic!("not a precondition failure: {e}"),
        }
    }

    fn guard(device: &str, expected: &str) -> Guard {
        Guard::Wwid {
            device: device.into(),
            expected: expected.into(),
        }
    }

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    const NAA: &str = "naa.600140512345678901234567890abcde";
    const UDEV: &str = "3600140512345678901234567890abcde";

    #[test]
    fn scsi_disk_wwid_is_normalised_and_compared() {
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "sys/block/sdb/device/wwid", &format!("{NAA}\n"));
        assert_eq!(check(t.path(), &guard("sdb", UDEV)), Ok(()));
        let e = check(t.path(), &guard("sdb", "3600140500000000000000000000000ff")).unwrap_err();
        assert_eq!(e.found, Found::Value(UDEV.into()));
        let msg = e.to_string();
        assert!(
            msg.contains("sdb") && msg.contains(UDEV) && msg.contains("3600140500000"),
            "{msg}"
        );
        // The raw (unnormalised) form is not what the caller captured.
        assert!(check(t.path(), &guard("sdb", NAA)).is_err());
    }

    #[test]
    fn a_wwid_is_forgotten_only_when_no_device_carries_it() {
        let t = tempfile::tempdir().unwrap();
        let g = Guard::WwidUnused { wwid: UDEV.into() };
        // No /sys/block at all: cannot tell, refused.
        assert!(pre(t.path(), &g).is_err());
        put(
            t.path(),
            "sys/block/sda/device/wwid",
            "naa.6001405000000000000000000000ffff\n",
        );
        put(
            t.path(),
            "sys/block/nvme0n1/wwid",
            "uuid.0a0b0c0d-0000-0000-0000-000000000001\n",
        );
        put(
            t.path(),
            "sys/block/dm-0/dm/uuid",
            "CRYPT-LUKS2-abc-crypt\n",
        );
        assert_eq!(pre(t.path(), &g), Ok(()));
        // A path of the volume (raw form, normalised before comparing).
        put(t.path(), "sys/block/sdc/device/wwid", &format!("{NAA}\n"));
        let e = pre(t.path(), &g).unwrap_err();
        assert_eq!(e.path, "/sys/block/sdc");
        std::fs::remove_dir_all(t.path().join("sys/block/sdc")).unwrap();
        // Its multipath map.
        put(
            t.path(),
            "sys/block/dm-3/dm/uuid",
            &format!("mpath-{UDEV}\n"),
        );
        assert_eq!(pre(t.path(), &g).unwrap_err().path, "/sys/block/dm-3");
        std::fs::remove_dir_all(t.path().join("sys/block/dm-3")).unwrap();
        // An NVMe namespace whose wwid is it.
        let n = Guard::WwidUnused {
            wwid: "uuid.0a0b0c0d-0000-0000-0000-000000000001".into(),
        };
        assert_eq!(pre(t.path(), &n).unwrap_err().path, "/sys/block/nvme0n1");
        assert_eq!(pre(t.path(), &g), Ok(()));
    }

    #[test]
    fn zfcp_unit_is_removed_only_without_its_disks() {
        let t = tempfile::tempdir().unwrap();
        let g = Guard::ZfcpUnitUnused {
            busid: "0.0.1900".parse().unwrap(),
            wwpn: "500507630b1b41c3".parse().unwrap(),
            fcp_lun: "0x4020400a00000000".parse().unwrap(),
        };
        // No SCSI bus at all, then only other units' disks.
        assert_eq!(pre(t.path(), &g), Ok(()));
        let dev = |hctl: &str, busid: &str, lun: &str| {
            let d = format!("sys/bus/scsi/devices/{hctl}");
            put(t.path(), &format!("{d}/hba_id"), &format!("{busid}\n"));
            put(t.path(), &format!("{d}/wwpn"), "0x500507630b1b41c3\n");
            put(t.path(), &format!("{d}/fcp_lun"), &format!("{lun}\n"));
        };
        dev("0:0:0:1075855392", "0.0.1900", "0x4021400a00000000");
        dev("1:0:0:1075789856", "0.0.1940", "0x4020400a00000000");
        put(t.path(), "sys/bus/scsi/devices/2:0:0:0/vendor", "ATA\n");
        assert_eq!(pre(t.path(), &g), Ok(()));
        // A disk of the unit is still there.
        dev("0:0:0:1075789856", "0.0.1900", "0x4020400a00000000");
        let e = pre(t.path(), &g).unwrap_err().to_string();
        assert!(
            e.contains("0:0:0:1075789856") && e.contains("remove it first"),
            "{e}"
        );
    }

    #[test]
    fn nvme_namespace_wwid_is_compared_as_printed() {
        let t = tempfile::tempdir().unwrap();
        let w = "uuid.c20aba21-6ef6-446b-b374-45733b4883ba";
        put(t.path(), "sys/block/nvme0n1/wwid", &format!("{w}\n"));
        assert_eq!(check(t.path(), &guard("nvme0n1", w)), Ok(()));
        let e = check(
            t.path(),
            &guard("nvme0n1", "uuid.5b3e2d1c-0f9a-4e8b-8c7d-6a5b4c3d2e1f"),
        )
        .unwrap_err();
        assert_eq!(e.found, Found::Value(w.into()));
        // A hidden multipath path is not a device moord acts on.
        put(t.path(), "sys/block/nvme0c1n1/wwid", &format!("{w}\n"));
        assert!(check(t.path(), &guard("nvme0c1n1", w)).is_err());
        assert!(check(t.path(), &guard("nvme1n1", w)).is_err());
    }

    #[test]
    fn missing_device_or_attribute_is_a_mismatch() {
        let t = tempfile::tempdir().unwrap();
        let e = check(t.path(), &guard("sdc", UDEV)).unwrap_err();
        assert!(matches!(e.found, Found::Missing { .. }), "{e:?}");
        assert!(e.to_string().contains("/sys/block/sdc/device/wwid"), "{e}");
        put(t.path(), "sys/block/sdd/device/wwid", "\n");
        assert!(check(t.path(), &guard("sdd", "8")).is_err(), "empty wwid");
        assert!(matches!(
            check(t.path(), &guard("../etc", UDEV)).unwrap_err().found,
            Found::Unsupported
        ));
        assert!(matches!(
            check(t.path(), &guard("nvme0n1", UDEV)).unwrap_err().found,
            Found::Missing { .. }
        ));
        assert!(matches!(
            check(t.path(), &guard("md0", UDEV)).unwrap_err().found,
            Found::Unsupported
        ));
    }

    #[test]
    fn stale_link_guard() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("dev/disk/by-id")).unwrap();
        let link = |name: &str, to: &str| {
            std::os::unix::fs::symlink(to, r.join("dev/disk/by-id").join(name)).unwrap();
            format!("/dev/disk/by-id/{name}")
        };
        let g = |link: &str, device: &str| Guard::StaleLink {
            link: link.into(),
            device: device.into(),
        };
        let disk = link("wwn-0x6001", "../../sdb");
        let part = link("wwn-0x6001-part1", "../../sdb1");
        let other = link("wwn-0x6002", "../../sdba");
        assert_eq!(check(r, &g(&disk, "sdb")), Ok(()));
        assert_eq!(check(r, &g(&part, "sdb")), Ok(()));
        // A link to another disk is never stale for this one.
        assert!(check(r, &g(&other, "sdb")).is_err());
        // The device exists again (a new sdb): its links are valid.
        put(r, "sys/block/sdb/dev", "8:16\n");
        let e = check(r, &g(&disk, "sdb")).unwrap_err();
        assert!(e.to_string().contains("not stale"), "{e}");
        // Not a link at all.
        put(r, "dev/disk/by-id/plain", "x");
        assert!(check(r, &g("/dev/disk/by-id/plain", "sdc")).is_err());
    }

    #[test]
    fn dm_map_guard_checks_uuid_and_name() {
        let t = tempfile::tempdir().unwrap();
        put(
            t.path(),
            "sys/block/dm-2/dm/uuid",
            &format!("mpath-{UDEV}\n"),
        );
        put(t.path(), "sys/block/dm-2/dm/name", "mpatha\n");
        let g = |name: &str, expected: &str| Guard::DmMap {
            device: "dm-2".into(),
            name: name.into(),
            expected: expected.into(),
        };
        assert_eq!(check(t.path(), &g("mpatha", UDEV)), Ok(()));
        // Another map's name: the command would act on a different map.
        let e = check(t.path(), &g("mpathb", UDEV)).unwrap_err();
        assert!(e.to_string().contains("mpathb"), "{e}");
        // The right name but another volume.
        assert!(check(t.path(), &g("mpatha", "3600140500000000000000000000000ff")).is_err());
        // Not a dm node at all.
        let e = check(
            t.path(),
            &Guard::DmMap {
                device: "../x".into(),
                name: "mpatha".into(),
                expected: UDEV.into(),
            },
        )
        .unwrap_err();
        assert_eq!(e.found, Found::Unsupported);
    }

    #[test]
    fn dm_uuid_must_be_mpath_of_the_wwid() {
        let t = tempfile::tempdir().unwrap();
        put(
            t.path(),
            "sys/block/dm-3/dm/uuid",
            &format!("mpath-{UDEV}\n"),
        );
        assert_eq!(check(t.path(), &guard("dm-3", UDEV)), Ok(()));
        put(
            t.path(),
            "sys/block/dm-4/dm/uuid",
            &format!("CRYPT-LUKS2-{UDEV}\n"),
        );
        let e = check(t.path(), &guard("dm-4", UDEV)).unwrap_err();
        assert_eq!(e.found, Found::Value(format!("CRYPT-LUKS2-{UDEV}")));
        put(
            t.path(),
            "sys/block/dm-5/dm/uuid",
            &format!("part1-mpath-{UDEV}\n"),
        );
        assert!(check(t.path(), &guard("dm-5", UDEV)).is_err());
        assert!(check(t.path(), &guard("dm-6", UDEV)).is_err(), "missing");
    }

    #[test]
    fn final_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "elsewhere", &format!("{NAA}\n"));
        std::fs::create_dir_all(t.path().join("sys/block/sde/device")).unwrap();
        std::os::unix::fs::symlink(
            t.path().join("elsewhere"),
            t.path().join("sys/block/sde/device/wwid"),
        )
        .unwrap();
        assert!(check(t.path(), &guard("sde", UDEV)).is_err());
    }
    fn img(root: &Path, name: &str, bytes: &[u8]) -> String {
        std::fs::write(root.join(name), bytes).unwrap();
        format!("/{name}")
    }

    fn blank(root: &Path, path: &str) -> Result<(), Unmet> {
        pre(root, &Guard::Blank { path: path.into() })
    }

    fn other_slot(root: &Path, path: &str, slot: u8) -> Result<(), Unmet> {
        pre(
            root,
            &Guard::LuksOtherSlot {
                path: path.into(),
                slot,
            },
        )
    }

    #[test]
    fn regular_file_guard() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let f = img(r, "v.img", b"x");
        let g = |p: &str| Guard::RegularFile { path: p.into() };
        assert_eq!(pre(r, &g(&f)), Ok(()));
        std::os::unix::fs::symlink(r.join("v.img"), r.join("link.img")).unwrap();
        let e = pre(r, &g("/link.img")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        std::fs::create_dir(r.join("d.img")).unwrap();
        assert!(pre(r, &g("/d.img")).is_err());
        let e = pre(r, &g("/missing.img")).unwrap_err();
        assert!(
            e.to_string().starts_with("/missing.img cannot be examined"),
            "{e}"
        );
    }

    #[test]
    fn blank_guard_recognises_headers() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let size = BLANK_SCAN as usize + 8192;
        let zero = vec![0u8; size];
        assert_eq!(blank(r, &img(r, "zero.img", &zero)), Ok(()));
        assert_eq!(blank(r, &img(r, "short.img", &[0u8; 100])), Ok(()));
        assert_eq!(blank(r, &img(r, "empty.img", b"")), Ok(()));
        let with = |off: usize, magic: &[u8]| {
            let mut b = zero.clone();
            b[off..off + magic.len()].copy_from_slice(magic);
            b
        };
        let mut luks1 = with(0, b"LUKS\xba\xbe");
        luks1[7] = 1;
        let mut luks2 = with(0, b"LUKS\xba\xbe");
        luks2[7] = 2;
        let mut mbr = with(510, &[0x55, 0xaa]);
        mbr[446 + 4] = 0x83;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (luks1, "carries a LUKS1 header"),
            (luks2, "carries a LUKS2 header"),
            (
                with(0x4000, b"SKUL\xba\xbe"),
                "LUKS2 secondary header at 0x4000",
            ),
            (
                with(0x100000, b"SKUL\xba\xbe"),
                "LUKS2 secondary header at 0x100000",
            ),
            (with(512, b"EFI PART"), "GPT"),
            (with(4096, b"EFI PART"), "GPT"),
            (mbr, "MBR"),
            (with(1080, &[0x53, 0xef]), "ext2/3/4"),
            (with(0, b"XFSB"), "XFS"),
            (with(4086, b"SWAPSPACE2"), "swap"),
            (with(4086, b"SWAP-SPACE"), "swap"),
            (with(0x10040, b"_BHRfS_M"), "btrfs"),
            (with(0, b"LABELONE"), "LVM2"),
            (with(1536, b"LABELONE"), "LVM2"),
        ];
        for (i, (bytes, what)) in cases.into_iter().enumerate() {
            let p = img(r, &format!("h{i}.img"), &bytes);
            let e = blank(r, &p).unwrap_err();
            assert!(e.to_string().contains(what), "case {i}: {e}");
            assert!(e.to_string().starts_with(&p), "{e}");
        }
        // A boot signature without partitions (a blank MBR) is no header; magic
        // at other offsets is data.
        assert_eq!(
            blank(r, &img(r, "sig.img", &with(510, &[0x55, 0xaa]))),
            Ok(())
        );
        assert_eq!(
            blank(r, &img(r, "off.img", &with(2048, b"SKUL\xba\xbe"))),
            Ok(())
        );
        assert_eq!(
            blank(r, &img(r, "lvm4.img", &with(2048, b"LABELONE"))),
            Ok(())
        );
        // Never read through a symlink (it could point at a disk).
        std::os::unix::fs::symlink(r.join("h0.img"), r.join("ln.img")).unwrap();
        assert!(blank(r, "/ln.img").is_err());
        assert!(blank(r, "/missing.img").is_err());
    }

    /// An MD v1.x superblock as mdadm writes it (the fields the scan could care
    /// about): magic, major version 1, set uuid, set name `any:vol-1`.
    fn md_superblock() -> Vec<u8> {
        let mut sb = vec![0u8; 1024];
        sb[0..4].copy_from_slice(&0xa92b_4efc_u32.to_le_bytes());
        sb[4..8].copy_from_slice(&1u32.to_le_bytes());
        sb[16..32].copy_from_slice(&[0x5a; 16]);
        sb[32..41].copy_from_slice(b"any:vol-1");
        sb
    }

    #[test]
    fn blank_guard_recognises_md_superblocks() {
        let sb = md_superblock();
        assert_eq!(&sb[..4], &[0xfc, 0x4e, 0x2b, 0xa9], "little-endian on disk");
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let zero = vec![0u8; BLANK_SCAN as usize];
        let at = |off: usize, bytes: &[u8]| {
            let mut b = zero.clone();
            b[off..off + bytes.len()].copy_from_slice(bytes);
            b
        };
        for (off, version) in [(0, "1.1"), (4096, "1.2")] {
            let b = at(off, &sb);
            let want = format!("an MD RAID member (metadata {version})");
            assert_eq!(recognise_header(&b).as_deref(), Some(want.as_str()));
            let p = img(r, &format!("md{version}.img"), &b);
            let e = blank(r, &p).unwrap_err();
            assert_eq!(e.to_string(), format!("{p} carries {want}"));
            // The magic alone is enough (a damaged superblock is still a member).
            let b = at(off, &sb[..4]);
            assert_eq!(recognise_header(&b).as_deref(), Some(want.as_str()));
        }
        // Big-endian magic, or the magic where no v1.x superblock lives (v1.0 and
        // 0.90 sit at the end of the device, beyond the scan), is data.
        let swapped = 0xa92b_4efc_u32.to_be_bytes();
        for b in [
            at(4096, &swapped),
            at(0, &swapped),
            at(8192, &sb),
            at(512, &sb),
            at(BLANK_SCAN as usize - 1024, &sb),
        ] {
            assert_eq!(recognise_header(&b), None);
        }
        // A device shorter than 4 KiB + 4 cannot hold a 1.2 superblock.
        assert_eq!(recognise_header(&sb[..3]), None);
        assert_eq!(recognise_header(&at(4096, &sb)[..4098]), None);
    }

    /// An MD array `mdN` in a fixture tree as the kernel and udev lay it out:
    /// `/sys/block/mdN` links into `/sys/devices/virtual/block`, with an `md`
    /// directory and a `slaves/` link per member; `/dev/md/NAME` links to `../mdN`.
    fn md_array(root: &Path, n: u32, name: Option<&str>, slaves: &[&str]) {
        let dev = format!("sys/devices/virtual/block/md{n}");
        put(root, &format!("{dev}/md/array_state"), "clean\n");
        let sl = root.join(format!("{dev}/slaves"));
        std::fs::create_dir_all(&sl).unwrap();
        for s in slaves {
            std::os::unix::fs::symlink(format!("../../../../nvme-subsystem/{s}"), sl.join(s))
                .unwrap();
        }
        std::fs::create_dir_all(root.join("sys/block")).unwrap();
        std::os::unix::fs::symlink(
            format!("../devices/virtual/block/md{n}"),
            root.join(format!("sys/block/md{n}")),
        )
        .unwrap();
        if let Some(name) = name {
            std::fs::create_dir_all(root.join("dev/md")).unwrap();
            std::os::unix::fs::symlink(format!("../md{n}"), root.join("dev/md").join(name))
                .unwrap();
        }
    }

    const NS: [(&str, &str); 3] = [
        ("nvme0n1", "uuid.c20aba21-6ef6-446b-b374-45733b4883ba"),
        ("nvme1n1", "uuid.5b3e2d1c-0f9a-4e8b-8c7d-6a5b4c3d2e1f"),
        ("nvme2n1", "eui.0123456789abcdef"),
    ];

    fn md_guard(device: &str, name: &str, members: &[(&str, &str)]) -> Guard {
        Guard::MdArray {
            device: device.into(),
            name: name.into(),
            members: members
                .iter()
                .map(|(d, w)| (d.to_string(), w.to_string()))
                .collect(),
        }
    }

    #[test]
    fn md_array_guard_matches_the_array_of_the_legs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (d, w) in NS {
            put(r, &format!("sys/block/{d}/wwid"), &format!("{w}\n"));
        }
        md_array(r, 127, Some("vol-1"), &["nvme0n1", "nvme1n1"]);
        assert_eq!(check(r, &md_guard("md127", "vol-1", &NS[..2])), Ok(()));
        // Legs in another order, or a leg that is not (or no longer) a member.
        assert_eq!(
            check(r, &md_guard("md127", "vol-1", &[NS[1], NS[0]])),
            Ok(())
        );
        assert_eq!(check(r, &md_guard("md127", "vol-1", &NS)), Ok(()));
        // A degraded array: one slave left of two legs.
        md_array(r, 126, Some("vol-2"), &["nvme2n1"]);
        assert_eq!(check(r, &md_guard("md126", "vol-2", &NS[1..])), Ok(()));
        // udev may write an absolute link.
        std::fs::remove_file(r.join("dev/md/vol-2")).unwrap();
        std::os::unix::fs::symlink("/dev/md126", r.join("dev/md/vol-2")).unwrap();
        assert_eq!(check(r, &md_guard("md126", "vol-2", &NS[2..])), Ok(()));
    }

    #[test]
    fn md_array_guard_refuses_another_array() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (d, w) in NS {
            put(r, &format!("sys/block/{d}/wwid"), &format!("{w}\n"));
        }
        md_array(r, 127, Some("vol-1"), &["nvme0n1", "nvme1n1"]);
        md_array(r, 126, Some("vol-2"), &["nvme2n1"]);
        md_array(r, 125, None, &[]);
        let other = "uuid.00000000-0000-4000-8000-0000000000ff";
        for (g, what) in [
            // A slave that is not one of the legs: another volume's replica.
            (
                md_guard("md127", "vol-1", &NS[..1]),
                "md127 has member nvme1n1, which is not one of the legs",
            ),
            (
                md_guard("md127", "vol-1", &[NS[0], NS[2]]),
                "has member nvme1n1",
            ),
            // A member that no longer carries its WWID (a reused nvme name).
            (
                md_guard("md127", "vol-1", &[NS[0], ("nvme1n1", other)]),
                "identity mismatch on nvme1n1: expected WWID",
            ),
            // /dev/md/NAME is another array: mdN was reused.
            (
                md_guard("md126", "vol-1", &NS),
                "/dev/md/vol-1 is a link to ../md127, not to md126",
            ),
            (
                md_guard("md127", "vol-2", &NS),
                "/dev/md/vol-2 is a link to ../md126, not to md127",
            ),
            // No such name, no such array, no members.
            (md_guard("md127", "vol-3", &NS), "/dev/md/vol-3"),
            (md_guard("md124", "vol-1", &NS), "/sys/block/md124/md"),
            (
                md_guard("md125", "vol-1", &NS),
                "/dev/md/vol-1 is a link to",
            ),
        ] {
            let e = check(r, &g).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(what), "{g:?}: {msg}");
        }
        // An array without slaves (its link right) is refused too.
        std::os::unix::fs::symlink("../md125", r.join("dev/md/vol-5")).unwrap();
        let e = check(r, &md_guard("md125", "vol-5", &NS)).unwrap_err();
        assert!(e.to_string().contains("no member devices"), "{e}");
        // The missing-WWID case names the member's attribute.
        std::fs::remove_file(r.join("sys/block/nvme2n1/wwid")).unwrap();
        let e = check(r, &md_guard("md126", "vol-2", &NS)).unwrap_err();
        assert!(
            matches!(&e.found, Found::Missing { attribute, .. } if attribute == "/sys/block/nvme2n1/wwid"),
            "{e:?}"
        );
        // /dev/md/NAME that is not a link, a block device dir that is not md.
        put(r, "dev/md/plain", "");
        let e = check(r, &md_guard("md127", "plain", &NS)).unwrap_err();
        assert!(matches!(e.found, Found::Missing { .. }), "{e:?}");
        put(r, "sys/block/md9/size", "0\n");
        std::os::unix::fs::symlink("../md9", r.join("dev/md/nine")).unwrap();
        let e = check(r, &md_guard("md9", "nine", &NS)).unwrap_err();
        assert!(e.to_string().contains("/sys/block/md9/md"), "{e}");
        // Names that are not what the op validated never become paths.
        for g in [
            md_guard("sda", "vol-1", &NS),
            md_guard("md127/../md126", "vol-1", &NS),
            md_guard("md127", "../vol-1", &NS),
            md_guard("md127", "", &NS),
            md_guard("md127", "vol-1", &[("sdb", NS[0].1)]),
            md_guard("md127", "vol-1", &[("../nvme0n1", NS[0].1)]),
        ] {
            assert_eq!(check(r, &g).unwrap_err().found, Found::Unsupported, "{g:?}");
        }
    }

    /// A LUKS1 header with key slots `active` enabled (the rest disabled).
    fn luks1_header(active: &[usize]) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[..6].copy_from_slice(b"LUKS\xba\xbe");
        b[7] = 1;
        for i in 0..8 {
            let state: u32 = if active.contains(&i) {
                0x00AC_71F3
            } else {
                0x0000_DEAD
            };
            b[208 + i * 48..212 + i * 48].copy_from_slice(&state.to_be_bytes());
        }
        b
    }

    /// A LUKS2 header (16 KiB) with this JSON area.
    fn luks2_header(json: &serde_json::Value) -> Vec<u8> {
        let mut b = vec![0u8; 32768];
        b[..6].copy_from_slice(b"LUKS\xba\xbe");
        b[7] = 2;
        b[8..16].copy_from_slice(&16384u64.to_be_bytes());
        let j = json.to_string();
        b[4096..4096 + j.len()].copy_from_slice(j.as_bytes());
        b
    }

    fn luks2_json(slots: &[&str], bound: &[&str]) -> serde_json::Value {
        let keyslots: serde_json::Map<String, serde_json::Value> = slots
            .iter()
            .map(|s| (s.to_string(), serde_json::json!({"type": "luks2"})))
            .collect();
        serde_json::json!({
            "keyslots": keyslots,
            "segments": {"0": {"type": "crypt"}},
            "digests": {"0": {"type": "pbkdf2", "keyslots": bound, "segments": ["0"]}},
        })
    }

    #[test]
    fn luks_other_slot_guard_on_crafted_headers() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let two = img(r, "l1.img", &luks1_header(&[0, 3]));
        assert_eq!(other_slot(r, &two, 0), Ok(()));
        assert_eq!(other_slot(r, &two, 3), Ok(()));
        let e = other_slot(r, &two, 1).unwrap_err();
        assert!(e.to_string().contains("no active key slot 1"), "{e}");
        assert!(other_slot(r, &two, 8).is_err());
        let one = img(r, "l1one.img", &luks1_header(&[5]));
        let e = other_slot(r, &one, 5).unwrap_err();
        assert!(e.to_string().contains("last active key slot"), "{e}");

        let two = img(
            r,
            "l2.img",
            &luks2_header(&luks2_json(&["0", "7"], &["0", "7"])),
        );
        assert_eq!(other_slot(r, &two, 7), Ok(()));
        assert!(other_slot(r, &two, 1).is_err());
        let one = img(r, "l2one.img", &luks2_header(&luks2_json(&["0"], &["0"])));
        assert!(
            other_slot(r, &one, 0)
                .unwrap_err()
                .to_string()
                .contains("last")
        );
        // An unbound key slot opens nothing: slot 0 is still the last one.
        let unbound = img(
            r,
            "l2ub.img",
            &luks2_header(&luks2_json(&["0", "1"], &["0"])),
        );
        assert!(other_slot(r, &unbound, 0).is_err());
        assert!(other_slot(r, &unbound, 1).is_err());

        let mut v3 = luks1_header(&[0, 1]);
        v3[7] = 3;
        let e = other_slot(r, &img(r, "v3.img", &v3), 0).unwrap_err();
        assert!(e.to_string().contains("unknown LUKS version 3"), "{e}");
        let e = other_slot(r, &img(r, "plain.img", &[0u8; 8192]), 0).unwrap_err();
        assert!(e.to_string().contains("no LUKS header"), "{e}");
        let mut bad = luks2_header(&serde_json::json!({}));
        bad[4096..4100].copy_from_slice(b"{{{{");
        assert!(other_slot(r, &img(r, "badjson.img", &bad), 0).is_err());
        let mut huge = luks2_header(&luks2_json(&["0", "1"], &["0", "1"]));
        huge[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(other_slot(r, &img(r, "huge.img", &huge), 0).is_err());
    }

    fn cryptsetup(args: &[&str], stdin: &[u8]) -> Option<std::process::ExitStatus> {
        use std::io::Write;
        // Looked up first: where spawning cannot report a missing program (qemu-user
        // runs glibc's posix_spawn so that the child just exits 127), the test
        // would otherwise fail instead of skipping.
        let path = std::env::var_os("PATH")?;
        let exe = std::env::split_paths(&path)
            .map(|d| d.join("cryptsetup"))
            .find(|p| p.is_file())?;
        let mut c = std::process::Command::new(exe)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        c.stdin.take()?.write_all(stdin).ok()?;
        c.wait().ok()
    }

    #[test]
    fn guards_on_images_made_by_cryptsetup() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for version in ["luks1", "luks2"] {
            let name = format!("{version}.img");
            let file = r.join(&name);
            std::fs::write(&file, vec![0u8; 20 << 20]).unwrap();
            let f = file.to_str().unwrap();
            let pbkdf = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];
            let mut args = vec!["luksFormat", "--batch-mode", "--type", version];
            args.extend(pbkdf);
            args.extend(["--key-file=-", f]);
            let Some(st) = cryptsetup(&args, b"old") else {
                eprintln!("cryptsetup is not installed: skipping");
                return;
            };
            assert!(st.success(), "{version}: luksFormat {st}");
            let p = format!("/{name}");
            let e = blank(r, &p).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("carries a {}", version.to_uppercase())),
                "{e}"
            );
            assert!(
                other_slot(r, &p, 0)
                    .unwrap_err()
                    .to_string()
                    .contains("last")
            );
            let mut args = vec!["luksAddKey"];
            args.extend(pbkdf);
            args.extend([
                "--key-file=-",
                "--keyfile-size=3",
                "--new-keyfile=-",
                "--new-keyfile-size=4",
                f,
            ]);
            assert!(
                cryptsetup(&args, b"oldnew!").unwrap().success(),
                "{version}: luksAddKey"
            );
            assert_eq!(other_slot(r, &p, 0), Ok(()));
            assert_eq!(other_slot(r, &p, 1), Ok(()));
            assert!(other_slot(r, &p, 2).is_err());
        }
        // A wiped LUKS2 primary with its secondary intact is still a header.
        let mut b = std::fs::read(r.join("luks2.img")).unwrap();
        b[..4096].fill(0);
        let p = img(r, "wiped.img", &b);
        let e = blank(r, &p).unwrap_err();
        assert!(
            e.to_string().contains("LUKS2 secondary header at 0x4000"),
            "{e}"
        );
    }

    #[test]
    fn all_guards_must_hold_first_failure_reported() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let p = img(r, "v.img", &[0u8; 4096]);
        let all = |gs: Vec<Guard>| Guard::All(gs);
        let file = Guard::RegularFile { path: p.clone() };
        let b = Guard::Blank { path: p.clone() };
        assert_eq!(super::check(r, &all(vec![file.clone(), b.clone()])), Ok(()));
        assert_eq!(super::check(r, &all(vec![])), Ok(()));
        let missing = Guard::RegularFile {
            path: "/nope.img".into(),
        };
        let e = pre(r, &all(vec![missing, b.clone()])).unwrap_err();
        assert_eq!(e.path, "/nope.img");
        // An identity failure first is reported as one.
        let e = check(r, &all(vec![guard("sdz", UDEV), b])).unwrap_err();
        assert_eq!(e.device, "sdz");
    }

    const SUBSYS: &str = "nqn.2016-06.io.spdk:cnode1";
    const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";

    /// A fabrics controller as the kernel lays it out: the class entry is a symlink
    /// to the device directory.
    fn nvme_ctrl(root: &Path, n: u32, transport: &str, address: &str, hostnqn: Option<&str>) {
        let dev = format!("sys/devices/virtual/nvme-fabrics/ctl/nvme{n}");
        put(root, &format!("{dev}/subsysnqn"), &format!("{SUBSYS}\n"));
        put(root, &format!("{dev}/transport"), &format!("{transport}\n"));
        put(root, &format!("{dev}/address"), &format!("{address}\n"));
        put(root, &format!("{dev}/delete_controller"), "");
        if let Some(h) = hostnqn {
            put(root, &format!("{dev}/hostnqn"), &format!("{h}\n"));
        }
        std::fs::create_dir_all(root.join("sys/class/nvme")).unwrap();
        let link = root.join(format!("sys/class/nvme/nvme{n}"));
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(
                format!("../../devices/virtual/nvme-fabrics/ctl/nvme{n}"),
                link,
            )
            .unwrap();
        }
    }

    fn nvme_guard(n: u32, transport: &str, traddr: &str, trsvcid: u16) -> Guard {
        Guard::NvmeController {
            controller: format!("nvme{n}").parse().unwrap(),
            subsysnqn: SUBSYS.parse().unwrap(),
            transport: transport.parse().unwrap(),
            traddr: traddr.parse().unwrap(),
            trsvcid,
            hostnqn: HOSTNQN.parse().unwrap(),
        }
    }

    #[test]
    fn nvme_controller_guard_matches_every_attribute() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        nvme_ctrl(r, 0, "tcp", "traddr=10.0.0.1,trsvcid=4420", Some(HOSTNQN));
        assert_eq!(check(r, &nvme_guard(0, "tcp", "10.0.0.1", 4420)), Ok(()));
        // Newer kernels add host-side fields; IPv6 compares as an address.
        nvme_ctrl(
            r,
            1,
            "rdma",
            "traddr=fd00:0::1,trsvcid=4421,host_traddr=fd00::9,src_addr=fd00::9",
            Some(HOSTNQN),
        );
        assert_eq!(check(r, &nvme_guard(1, "rdma", "fd00::1", 4421)), Ok(()));
        assert_eq!(
            check(r, &nvme_guard(1, "rdma", "fd00:0:0:0:0:0:0:1", 4421)),
            Ok(())
        );
        // host_traddr is not the target address.
        assert!(check(r, &nvme_guard(1, "rdma", "fd00::9", 4421)).is_err());
        // A kernel without the hostnqn attribute: not compared (as os-brick).
        nvme_ctrl(r, 2, "tcp", "traddr=10.0.0.2,trsvcid=4420", None);
        assert_eq!(check(r, &nvme_guard(2, "tcp", "10.0.0.2", 4420)), Ok(()));
    }

    #[test]
    fn nvme_controller_guard_refuses_any_difference() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        nvme_ctrl(r, 3, "tcp", "traddr=10.0.0.1,trsvcid=4420", Some(HOSTNQN));
        let other_nqn = |field: &str| {
            let Guard::NvmeController {
                controller,
                mut subsysnqn,
                transport,
                traddr,
                trsvcid,
                mut hostnqn,
            } = nvme_guard(3, "tcp", "10.0.0.1", 4420)
            else {
                unreachable!()
            };
            let other: Nqn = "nqn.2016-06.io.spdk:cnode2".parse().unwrap();
            match field {
                "subsysnqn" => subsysnqn = other,
                _ => hostnqn = other,
            }
            Guard::NvmeController {
                controller,
                subsysnqn,
                transport,
                traddr,
                trsvcid,
                hostnqn,
            }
        };
        let attr = |a: &str| format!("/sys/class/nvme/nvme3/{a}");
        for (g, attribute, value) in [
            (
                other_nqn("subsysnqn"),
                attr("subsysnqn"),
                SUBSYS.to_string(),
            ),
            (other_nqn("hostnqn"), attr("hostnqn"), HOSTNQN.to_string()),
            (
                nvme_guard(3, "rdma", "10.0.0.1", 4420),
                attr("transport"),
                "tcp".into(),
            ),
            (
                nvme_guard(3, "tcp", "10.0.0.2", 4420),
                attr("address"),
                "traddr=10.0.0.1,trsvcid=4420".into(),
            ),
            (
                nvme_guard(3, "tcp", "10.0.0.1", 4421),
                attr("address"),
                "traddr=10.0.0.1,trsvcid=4420".into(),
            ),
        ] {
            let e = check(r, &g).unwrap_err();
            assert_eq!(
                e.found,
                Found::Attribute {
                    attribute: attribute.clone(),
                    value: value.clone()
                },
                "{g:?}"
            );
            assert_eq!(e.device, "nvme3");
            let msg = e.to_string();
            assert!(
                msg.starts_with("identity mismatch on nvme3: expected controller")
                    && msg.contains(&attribute),
                "{msg}"
            );
        }
        // The subsystem NQN is compared byte for byte (NQNs are case-sensitive).
        put(
            r,
            "sys/devices/virtual/nvme-fabrics/ctl/nvme3/subsysnqn",
            &format!("{}\n", SUBSYS.to_uppercase()),
        );
        assert!(check(r, &nvme_guard(3, "tcp", "10.0.0.1", 4420)).is_err());
        put(
            r,
            "sys/devices/virtual/nvme-fabrics/ctl/nvme3/subsysnqn",
            &format!("{SUBSYS} \n"),
        );
        assert!(check(r, &nvme_guard(3, "tcp", "10.0.0.1", 4420)).is_err());
        put(
            r,
            "sys/devices/virtual/nvme-fabrics/ctl/nvme3/subsysnqn",
            &format!("{SUBSYS}\n"),
        );
        assert_eq!(check(r, &nvme_guard(3, "tcp", "10.0.0.1", 4420)), Ok(()));
        // Addresses that identify nothing: no port, a port twice, a host name.
        for address in [
            "traddr=10.0.0.1",
            "trsvcid=4420",
            "traddr=10.0.0.1,trsvcid=4420,traddr=10.0.0.2",
            "traddr=10.0.0.1,trsvcid=4420,trsvcid=4420",
            "traddr=array.example.com,trsvcid=4420",
            "",
        ] {
            put(
                r,
                "sys/devices/virtual/nvme-fabrics/ctl/nvme3/address",
                &format!("{address}\n"),
            );
            let e = check(r, &nvme_guard(3, "tcp", "10.0.0.1", 4420)).unwrap_err();
            assert!(
                matches!(&e.found, Found::Attribute { value, .. } if value == address),
                "{address}: {e}"
            );
        }
    }

    #[test]
    fn nvme_controller_guard_needs_the_controller() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let e = check(r, &nvme_guard(4, "tcp", "10.0.0.1", 4420)).unwrap_err();
        assert!(
            matches!(&e.found, Found::Missing { attribute, .. } if attribute == "/sys/class/nvme/nvme4/subsysnqn"),
            "{e:?}"
        );
        // Another controller's attributes are not this one's.
        nvme_ctrl(r, 5, "tcp", "traddr=10.0.0.1,trsvcid=4420", Some(HOSTNQN));
        assert!(check(r, &nvme_guard(4, "tcp", "10.0.0.1", 4420)).is_err());
        // Attributes that are missing or symlinks (never followed) are mismatches.
        let dev = r.join("sys/devices/virtual/nvme-fabrics/ctl/nvme5");
        std::fs::remove_file(dev.join("transport")).unwrap();
        let e = check(r, &nvme_guard(5, "tcp", "10.0.0.1", 4420)).unwrap_err();
        assert!(matches!(e.found, Found::Missing { .. }), "{e:?}");
        put(r, "elsewhere", "tcp\n");
        std::os::unix::fs::symlink(r.join("elsewhere"), dev.join("transport")).unwrap();
        let e = check(r, &nvme_guard(5, "tcp", "10.0.0.1", 4420)).unwrap_err();
        assert!(matches!(e.found, Found::Missing { .. }), "{e:?}");
        // An unreadable hostnqn (here: a directory) is not a missing one.
        std::fs::remove_file(dev.join("transport")).unwrap();
        put(
            r,
            "sys/devices/virtual/nvme-fabrics/ctl/nvme5/transport",
            "tcp\n",
        );
        assert_eq!(check(r, &nvme_guard(5, "tcp", "10.0.0.1", 4420)), Ok(()));
        std::fs::remove_file(dev.join("hostnqn")).unwrap();
        std::fs::create_dir(dev.join("hostnqn")).unwrap();
        assert!(check(r, &nvme_guard(5, "tcp", "10.0.0.1", 4420)).is_err());
    }

    #[test]
    fn crypt_mapping_guard() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(r, "sys/block/sdb/device/wwid", &format!("{NAA}\n"));
        put(r, "sys/block/sdc/device/wwid", &format!("{NAA}\n"));
        let map = |node: &str, name: &str, uuid: &str, slaves: &[&str]| {
            put(
                r,
                &format!("sys/block/{node}/dm/name"),
                &format!("{name}\n"),
            );
            put(
                r,
                &format!("sys/block/{node}/dm/uuid"),
                &format!("{uuid}\n"),
            );
            let d = r.join(format!("sys/block/{node}/slaves"));
            std::fs::create_dir_all(&d).unwrap();
            for s in slaves {
                std::os::unix::fs::symlink(format!("../../{s}"), d.join(s)).unwrap();
            }
        };
        map("dm-0", "mpatha", &format!("mpath-{UDEV}"), &["sdc"]);
        map("dm-1", "crypt-vol", "CRYPT-LUKS2-0123-crypt-vol", &["sdb"]);
        map("dm-2", "crypt-lin", "LVM-abc", &["sdb"]);
        map(
            "dm-3",
            "crypt-two",
            "CRYPT-PLAIN-crypt-two",
            &["sdb", "sdc"],
        );
        map("dm-4", "crypt-mp", "CRYPT-LUKS1-x-crypt-mp", &["dm-0"]);
        let g = |name: &str, backing: &str, wwid: &str| Guard::CryptMapping {
            name: name.into(),
            backing: backing.into(),
            expected_wwid: wwid.into(),
        };
        assert_eq!(check(r, &g("crypt-vol", "sdb", UDEV)), Ok(()));
        assert_eq!(check(r, &g("crypt-mp", "dm-0", UDEV)), Ok(()));
        let other = "3600140500000000000000000000000ff";
        for (guard, what) in [
            (g("crypt-vol", "sdb", other), UDEV),
            (g("crypt-vol", "sdc", UDEV), "backed by [sdb], not [sdc]"),
            (
                g("crypt-none", "sdb", UDEV),
                "no device-mapper device named",
            ),
            (g("crypt-lin", "sdb", UDEV), "not a dm-crypt mapping"),
            (g("crypt-two", "sdb", UDEV), "backed by"),
            (g("crypt-mp", "dm-0", other), "mpath-"),
        ] {
            let e = check(r, &guard).unwrap_err();
            assert!(e.to_string().contains(what), "{guard:?}: {e}");
        }
        for bad in [g("../x", "sdb", UDEV), g("crypt-vol", "../sdb", UDEV)] {
            assert_eq!(check(r, &bad).unwrap_err().found, Found::Unsupported);
        }
    }
    const DASD_UID: &str = "IBM.750000000DXP71.2300.05";

    /// A DASD as the kernel shows it: `/sys/bus/ccw/devices/<busid>` links to its
    /// directory under the subchannel, which holds `uid`, `status`, the `driver`
    /// link and (online) `block/<disk>` with its partitions.
    fn dasd(root: &Path, busid: &str, uid: &str, status: &str, disk: Option<(&str, &[&str])>) {
        let dir = root.join(format!("sys/devices/css0/0.0.0023/{busid}"));
        put(
            root,
            &format!("sys/devices/css0/0.0.0023/{busid}/uid"),
            &format!("{uid}\n"),
        );
        put(
            root,
            &format!("sys/devices/css0/0.0.0023/{busid}/status"),
            &format!("{status}\n"),
        );
        std::fs::create_dir_all(root.join("sys/bus/ccw/drivers/dasd-eckd")).unwrap();
        std::fs::create_dir_all(root.join("sys/bus/ccw/devices")).unwrap();
        std::os::unix::fs::symlink("../../../bus/ccw/drivers/dasd-eckd", dir.join("driver"))
            .unwrap();
        std::os::unix::fs::symlink(
            format!("../../../devices/css0/0.0.0023/{busid}"),
            root.join(format!("sys/bus/ccw/devices/{busid}")),
        )
        .unwrap();
        if let Some((name, parts)) = disk {
            put(&dir, &format!("block/{name}/dev"), "94:4\n");
            for p in parts {
                put(&dir, &format!("block/{name}/{p}/partition"), "1\n");
            }
            std::fs::create_dir_all(root.join("sys/block")).unwrap();
            std::os::unix::fs::symlink(
                format!("../devices/css0/0.0.0023/{busid}/block/{name}"),
                root.join(format!("sys/block/{name}")),
            )
            .unwrap();
        }
    }

    fn dasd_uid(device: Option<&str>, uid: &str) -> Guard {
        Guard::DasdUid {
            busid: "0.0.b100".parse().unwrap(),
            expected: uid.parse().unwrap(),
            device: device.map(String::from),
        }
    }

    #[test]
    fn dasd_uid_guard() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        dasd(r, "0.0.b100", DASD_UID, "online", Some(("dasdb", &[])));
        assert_eq!(check(r, &dasd_uid(None, DASD_UID)), Ok(()));
        assert_eq!(check(r, &dasd_uid(Some("dasdb"), DASD_UID)), Ok(()));
        // Another volume behind the same device number.
        let e = check(r, &dasd_uid(None, "IBM.750000000DXP71.2300.06")).unwrap_err();
        assert_eq!(
            e.found,
            Found::Attribute {
                attribute: "/sys/bus/ccw/devices/0.0.b100/uid".into(),
                value: DASD_UID.into()
            }
        );
        assert!(e.to_string().contains("DASD uid"), "{e}");
        // Another DASD's disk.
        let e = check(r, &dasd_uid(Some("dasda"), DASD_UID)).unwrap_err();
        assert!(e.to_string().contains("dasda is not its disk"), "{e}");
        for bad in ["sdb", "dasdb1", "../dasdb"] {
            let e = check(r, &dasd_uid(Some(bad), DASD_UID)).unwrap_err();
            assert_eq!(e.found, Found::Unsupported, "{bad}");
        }
        // Offline: the kernel prints an empty uid.
        let t = tempfile::tempdir().unwrap();
        dasd(t.path(), "0.0.b100", "", "unknown", None);
        let e = check(t.path(), &dasd_uid(None, DASD_UID)).unwrap_err();
        assert!(matches!(&e.found, Found::Attribute { value, .. } if value.is_empty()));
        // No such device.
        let t = tempfile::tempdir().unwrap();
        let e = check(t.path(), &dasd_uid(None, DASD_UID)).unwrap_err();
        assert!(matches!(e.found, Found::Missing { .. }), "{e:?}");
    }

    #[test]
    fn dasd_preconditions() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let busid = "0.0.b100".parse().unwrap();
        dasd(r, "0.0.b100", DASD_UID, "unformatted", Some(("dasdb", &[])));
        let status = |status| Guard::DasdStatus { busid, status };
        assert_eq!(pre(r, &status("unformatted")), Ok(()));
        let e = pre(r, &status("online")).unwrap_err();
        assert_eq!(e.path, "/sys/bus/ccw/devices/0.0.b100/status");
        assert!(e.problem.contains("\"unformatted\", not \"online\""), "{e}");
        let part = |d: &str| Guard::Unpartitioned { device: d.into() };
        assert_eq!(pre(r, &part("dasdb")), Ok(()));
        // A formatted DASD is never formatted again, and a partitioned one never
        // partitioned again.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        dasd(
            r,
            "0.0.b100",
            DASD_UID,
            "online",
            Some(("dasdb", &["dasdb1"])),
        );
        let e = pre(r, &status("unformatted")).unwrap_err();
        assert!(
            e.to_string()
                .contains("moord formats only an unformatted DASD"),
            "{e}"
        );
        let e = pre(r, &part("dasdb")).unwrap_err();
        assert_eq!(e.path, "/dev/dasdb");
        assert!(e.problem.contains("has partitions (dasdb1)"), "{e}");
        assert!(pre(r, &part("dasdz")).is_err());
        // The driver of a device to set online.
        let drv = |driver| Guard::CcwDriver { busid, driver };
        assert_eq!(pre(r, &drv("dasd-eckd")), Ok(()));
        let e = pre(r, &drv("dasd-fba")).unwrap_err();
        assert!(
            e.problem
                .contains("driven by \"dasd-eckd\", not \"dasd-fba\""),
            "{e}"
        );
        let other = Guard::CcwDriver {
            busid: "0.0.f500".parse().unwrap(),
            driver: "dasd-eckd",
        };
        let e = pre(r, &other).unwrap_err();
        assert!(e.problem.contains("has no driver"), "{e}");
        // All of dasd.format's guards: the identity failure comes first.
        let g = Guard::All(vec![
            dasd_uid(Some("dasdb"), "IBM.750000000DXP71.2300.06"),
            status("unformatted"),
        ]);
        assert!(matches!(super::check(r, &g), Err(GuardError::Identity(_))));
    }
}
