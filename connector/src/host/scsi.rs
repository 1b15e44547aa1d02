//! SCSI/iSCSI sysfs readers used by attach and detach (os-brick `linuxscsi` and the
//! iSCSI connector's sysfs globs), all through [`HostPaths`].
//!
//! Kernel layout for software iSCSI (`iscsi_tcp`), which the fixtures under
//! `connector/testdata/sysfs-iscsi-*` reproduce:
//!
//! ```text
//! /sys/class/iscsi_session/sessionN -> ../../devices/platform/hostH/sessionN/iscsi_session/sessionN
//!     device -> ../../../sessionN                  (= /sys/devices/platform/hostH/sessionN)
//! /sys/devices/platform/hostH/sessionN/targetH:C:T/H:C:T:L/block/sdX
//! /sys/block/sdX -> ../devices/platform/hostH/sessionN/targetH:C:T/H:C:T:L/block/sdX
//!     device -> ../../../H:C:T:L  (holds `wwid`), size (512-byte sectors), holders/dm-N
//! /sys/block/dm-N/dm/{name,uuid}
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::{HostError, HostPaths, component};

/// Bytes per sysfs `size` unit (always 512, whatever the logical block size).
pub const SECTOR_BYTES: u64 = 512;

/// Why an `H:C:T:L` or `targetH:C:T` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SCSI address {value:?}: {reason}")]
pub struct HctlError {
    value: String,
    reason: &'static str,
}

fn fields<const N: usize>(value: &str) -> Result<[u64; N], HctlError> {
    let err = |reason| HctlError {
        value: value.to_owned(),
        reason,
    };
    let mut out = [0u64; N];
    let mut parts = value.split(':');
    for slot in &mut out {
        let part = parts.next().ok_or_else(|| err("too few fields"))?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("fields must be decimal numbers"));
        }
        *slot = part.parse().map_err(|_| err("number out of range"))?;
    }
    if parts.next().is_some() {
        return Err(err("too many fields"));
    }
    Ok(out)
}

fn narrow(value: &str, n: u64) -> Result<u32, HctlError> {
    u32::try_from(n).map_err(|_| HctlError {
        value: value.to_owned(),
        reason: "host/channel/target out of range",
    })
}

/// A SCSI target address `H:C:T` (the `targetH:C:T` sysfs directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScsiTarget {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
}

impl ScsiTarget {
    /// The device address of `lun` on this target.
    pub fn with_lun(self, lun: u64) -> Hctl {
        Hctl {
            host: self.host,
            channel: self.channel,
            target: self.target,
            lun,
        }
    }

    /// Parses a sysfs directory name `targetH:C:T`.
    pub fn from_dir_name(name: &str) -> Result<Self, HctlError> {
        name.strip_prefix("target")
            .ok_or_else(|| HctlError {
                value: name.to_owned(),
                reason: "missing \"target\" prefix",
            })?
            .parse()
    }
}

impl FromStr for ScsiTarget {
    type Err = HctlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [h, c, t] = fields::<3>(s)?;
        Ok(Self {
            host: narrow(s, h)?,
            channel: narrow(s, c)?,
            target: narrow(s, t)?,
        })
    }
}

impl fmt::Display for ScsiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.channel, self.target)
    }
}

/// A SCSI device address `host:channel:target:lun` as sysfs names it. The LUN is
/// the kernel's (u64, `scsilun_to_int` form), so LUNs ≥ 256 appear as plain decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hctl {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u64,
}

impl Hctl {
    /// The target part `H:C:T`.
    pub fn target(self) -> ScsiTarget {
        ScsiTarget {
            host: self.host,
            channel: self.channel,
            target: self.target,
        }
    }
}

impl FromStr for Hctl {
    type Err = HctlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [h, c, t, l] = fields::<4>(s)?;
        Ok(Self {
            host: narrow(s, h)?,
            channel: narrow(s, c)?,
            target: narrow(s, t)?,
            lun: l,
        })
    }
}

impl fmt::Display for Hctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}

/// A SCSI disk seen through an iSCSI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiDevice {
    pub hctl: Hctl,
    /// Kernel block device name (`sdX`).
    pub name: String,
    /// udev-style WWID ([`normalize_wwid`]), if the device exposes one.
    pub wwid: Option<String>,
}

pub use moor_types::normalize_wwid;

fn session_name(session: u32) -> String {
    format!("session{session}")
}

/// The sysfs directory of iSCSI session `session`
/// (`/sys/devices/.../hostH/sessionN`, found via `/sys/class/iscsi_session`),
/// fully resolved; `None` if there is no such session.
pub fn session_dir(paths: &HostPaths, session: u32) -> Result<Option<PathBuf>, HostError> {
    let link = paths.sys(&format!(
        "class/iscsi_session/{}/device",
        session_name(session)
    ));
    paths.resolve(&link)
}

/// The SCSI host number of iSCSI session `session` (the `hostH` directory holding
/// `sessionN`); `None` if there is no such session.
pub fn session_host(paths: &HostPaths, session: u32) -> Result<Option<u32>, HostError> {
    let Some(dir) = session_dir(paths, session)? else {
        return Ok(None);
    };
    let host = dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("host"))
        .and_then(|n| n.parse::<u32>().ok());
    match host {
        Some(h) => Ok(Some(h)),
        None => Err(HostError::Invalid {
            path: dir,
            reason: "iSCSI session is not inside a hostH directory".to_owned(),
        }),
    }
}

/// The SCSI targets (`targetH:C:T`) of session `session`, sorted. Empty while the
/// session exists but no target has been scanned yet; `None` if no such session.
pub fn session_targets(
    paths: &HostPaths,
    session: u32,
) -> Result<Option<Vec<ScsiTarget>>, HostError> {
    let Some(dir) = session_dir(paths, session)? else {
        return Ok(None);
    };
    let mut targets: Vec<ScsiTarget> = paths
        .list_prefixed(&dir, "target")?
        .iter()
        .filter_map(|name| ScsiTarget::from_dir_name(name).ok())
        .collect();
    targets.sort();
    Ok(Some(targets))
}

/// Where to scan for `lun` on session `session`, like os-brick's `get_hctl`:
/// `(host, Some(target))` using the first target when one exists, `(host, None)`
/// when the session has no target yet (scan with `- - L`); `None` if no session.
pub fn session_hctl(
    paths: &HostPaths,
    session: u32,
    lun: u64,
) -> Result<Option<(u32, Option<Hctl>)>, HostError> {
    let Some(host) = session_host(paths, session)? else {
        return Ok(None);
    };
    let targets = session_targets(paths, session)?.unwrap_or_default();
    Ok(Some((host, targets.first().map(|t| t.with_lun(lun)))))
}

/// The whole-disk block device name in a SCSI device directory's `block/`
/// (partitions live below the disk, so the sorted first entry is the disk).
fn block_name(paths: &HostPaths, scsi_dir: &std::path::Path) -> Result<Option<String>, HostError> {
    Ok(paths
        .list_dir(&scsi_dir.join("block"))?
        .and_then(|names| names.into_iter().next()))
}

/// The block device name of `hctl` on session `session` (os-brick
/// `device_name_by_hctl`), `None` until the kernel has created it.
pub fn device_name_by_hctl(
    paths: &HostPaths,
    session: u32,
    hctl: Hctl,
) -> Result<Option<String>, HostError> {
    let Some(dir) = session_dir(paths, session)? else {
        return Ok(None);
    };
    let scsi_dir = dir
        .join(format!("target{}", hctl.target()))
        .join(hctl.to_string());
    block_name(paths, &scsi_dir)
}

/// All SCSI disks of session `session` that have a block device, sorted by HCTL,
/// each with its WWID. Empty if the session does not exist.
pub fn session_devices(paths: &HostPaths, session: u32) -> Result<Vec<ScsiDevice>, HostError> {
    let Some(dir) = session_dir(paths, session)? else {
        return Ok(Vec::new());
    };
    let mut devices = Vec::new();
    for target in paths.list_prefixed(&dir, "target")? {
        if ScsiTarget::from_dir_name(&target).is_err() {
            continue;
        }
        let target_dir = dir.join(&target);
        for entry in paths.list_dir(&target_dir)?.unwrap_or_default() {
            let Ok(hctl) = entry.parse::<Hctl>() else {
                continue;
            };
            let Some(name) = block_name(paths, &target_dir.join(&entry))? else {
                continue;
            };
            let wwid = block_wwid(paths, &name)?;
            devices.push(ScsiDevice { hctl, name, wwid });
        }
    }
    devices.sort_by_key(|d| d.hctl);
    Ok(devices)
}

/// The SCSI address of disk `name`: the `H:C:T:L` its `/sys/block/<name>/device`
/// resolves to; `None` for a block device that is not a SCSI disk.
pub fn block_hctl(paths: &HostPaths, name: &str) -> Result<Option<Hctl>, HostError> {
    Ok(paths
        .resolve(&paths.sys(&format!("block/{}/device", component(name)?)))?
        .and_then(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
        }))
}

/// The normalised WWID of block device `name` (`/sys/block/<name>/device/wwid`,
/// see [`normalize_wwid`]); `None` if absent or empty.
pub fn block_wwid(paths: &HostPaths, name: &str) -> Result<Option<String>, HostError> {
    let path = paths.sys(&format!("block/{}/device/wwid", component(name)?));
    Ok(paths
        .read_attr(&path)?
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| normalize_wwid(&raw)))
}

/// The device-mapper devices (`dm-N`) holding block device `name`, sorted
/// (`/sys/block/<name>/holders/dm-*`).
pub fn holders(paths: &HostPaths, name: &str) -> Result<Vec<String>, HostError> {
    let dir = paths.sys(&format!("block/{}/holders", component(name)?));
    paths.list_prefixed(&dir, "dm-")
}

/// The multipath (or other dm) device on top of `name`, if any (os-brick
/// `find_sysfs_multipath_dm` for one device).
pub fn holder_dm(paths: &HostPaths, name: &str) -> Result<Option<String>, HostError> {
    Ok(holders(paths, name)?.into_iter().next())
}

/// `/sys/block/<dm>/dm/name` (the map name: WWID, or `mpathX` with user_friendly_names).
pub fn dm_name(paths: &HostPaths, dm: &str) -> Result<Option<String>, HostError> {
    paths.read_attr(&paths.sys(&format!("block/{}/dm/name", component(dm)?)))
}

/// `/sys/block/<dm>/dm/uuid` (`mpath-<wwid>` for multipath maps).
pub fn dm_uuid(paths: &HostPaths, dm: &str) -> Result<Option<String>, HostError> {
    paths.read_attr(&paths.sys(&format!("block/{}/dm/uuid", component(dm)?)))
}

/// The WWID of a multipath map from its uuid (`mpath-<wwid>` ⇒ `<wwid>`, os-brick
/// `get_sysfs_wwn` with an mpath); `None` if the map is not a multipath map.
pub fn dm_multipath_wwid(paths: &HostPaths, dm: &str) -> Result<Option<String>, HostError> {
    Ok(dm_uuid(paths, dm)?
        .and_then(|uuid| uuid.strip_prefix("mpath-").map(str::to_owned))
        .filter(|w| !w.is_empty()))
}

/// The size of block device `name` in bytes (`/sys/block/<name>/size` × 512).
pub fn block_size_bytes(paths: &HostPaths, name: &str) -> Result<Option<u64>, HostError> {
    let path = paths.sys(&format!("block/{}/size", component(name)?));
    let Some(text) = paths.read_attr(&path)? else {
        return Ok(None);
    };
    let invalid = |reason: &str| HostError::Invalid {
        path: path.clone(),
        reason: format!("{reason}: {text:?}"),
    };
    let sectors: u64 = text
        .trim()
        .parse()
        .map_err(|_| invalid("size is not a sector count"))?;
    sectors
        .checked_mul(SECTOR_BYTES)
        .map(Some)
        .ok_or_else(|| invalid("size overflows u64 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fixture;
    use std::collections::BTreeMap;

    const TWO: &str = "sysfs-iscsi-two-sessions";
    const HCTL: &str = "sysfs-iscsi-hctl";
    const MPATH_WWID: &str = "3600a09803830447a4f244c4657616f6f";

    fn hctl(h: u32, c: u32, t: u32, l: u64) -> Hctl {
        Hctl {
            host: h,
            channel: c,
            target: t,
            lun: l,
        }
    }

    #[test]
    fn hctl_parse_display_roundtrip() {
        let h: Hctl = "1:2:6:4".parse().unwrap();
        assert_eq!(h, hctl(1, 2, 6, 4));
        assert_eq!(h.to_string(), "1:2:6:4");
        let big: Hctl = "2:2:7:16640".parse().unwrap();
        assert_eq!(big.lun, 16640);
        assert_eq!(big.target().to_string(), "2:2:7");
        assert_eq!(
            "0:0:0:18446744073709551615".parse::<Hctl>().unwrap().lun,
            u64::MAX
        );
    }

    #[test]
    fn hctl_rejects_malformed() {
        for bad in [
            "",
            "1:2:3",
            "1:2:3:4:5",
            "a:2:3:4",
            "1::3:4",
            "-1:0:0:0",
            "+1:0:0:0",
            "1:2:3: 4",
            "4294967296:0:0:0",
            "0:0:0:18446744073709551616",
        ] {
            let err = bad.parse::<Hctl>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn target_dir_names() {
        assert_eq!(
            ScsiTarget::from_dir_name("target3:4:5").unwrap(),
            ScsiTarget {
                host: 3,
                channel: 4,
                target: 5
            }
        );
        assert!(ScsiTarget::from_dir_name("3:4:5").is_err());
        assert!(ScsiTarget::from_dir_name("target3:4").is_err());
        assert_eq!(
            ScsiTarget::from_dir_name("target3:4:5")
                .unwrap()
                .with_lun(2),
            hctl(3, 4, 5, 2)
        );
    }

    // sysfs_wwid_and_dm.json: get_sysfs_wwid examples.
    #[test]
    fn wwid_normalisation_matches_os_brick() {
        assert_eq!(
            normalize_wwid("naa.600a09803830447a4f244c4657616f6f"),
            "3600a09803830447a4f244c4657616f6f"
        );
        assert_eq!(normalize_wwid("t10.wwid1"), "1wwid1");
        assert_eq!(normalize_wwid("eui.wwid1"), "2wwid1");
        assert_eq!(normalize_wwid("xyz.wwid9"), "8wwid9");
        assert_eq!(normalize_wwid("naa.6001\n"), "36001");
        assert_eq!(normalize_wwid("ab"), "8");
        // Multi-byte characters never split mid-character.
        assert_eq!(normalize_wwid("ééééx"), "8x");
    }

    // iscsi_hctl.json: get_hctl(session='1', lun='2') => (3, 4, 5, 2).
    #[test]
    fn get_hctl_uses_first_target() {
        let p = fixture(HCTL);
        assert_eq!(session_host(&p, 1).unwrap(), Some(3));
        assert_eq!(
            session_targets(&p, 1).unwrap().unwrap(),
            [
                ScsiTarget {
                    host: 3,
                    channel: 4,
                    target: 5
                },
                ScsiTarget {
                    host: 3,
                    channel: 4,
                    target: 6
                }
            ]
        );
        assert_eq!(
            session_hctl(&p, 1, 2).unwrap(),
            Some((3, Some(hctl(3, 4, 5, 2))))
        );
    }

    // iscsi_hctl.json: no target dir but session exists => (host, '-', '-', lun).
    #[test]
    fn get_hctl_without_target_gives_wildcard() {
        let p = fixture(HCTL);
        assert_eq!(session_targets(&p, 3).unwrap(), Some(vec![]));
        assert_eq!(session_hctl(&p, 3, 2).unwrap(), Some((4, None)));
    }

    // iscsi_hctl.json: neither exists => None.
    #[test]
    fn get_hctl_without_session_is_none() {
        let p = fixture(HCTL);
        assert_eq!(session_hctl(&p, 9, 2).unwrap(), None);
        assert_eq!(session_host(&p, 9).unwrap(), None);
        assert_eq!(session_targets(&p, 9).unwrap(), None);
        assert!(session_devices(&p, 9).unwrap().is_empty());
    }

    // iscsi_hctl.json: device_name_by_hctl('1', (3,4,5,2)) => 'sda' (whole disk, not sda2).
    #[test]
    fn device_name_by_hctl_is_whole_disk() {
        let p = fixture(HCTL);
        assert_eq!(
            device_name_by_hctl(&p, 1, hctl(3, 4, 5, 2))
                .unwrap()
                .as_deref(),
            Some("sda")
        );
        assert_eq!(device_name_by_hctl(&p, 1, hctl(3, 4, 5, 3)).unwrap(), None);
        assert_eq!(device_name_by_hctl(&p, 1, hctl(3, 4, 6, 2)).unwrap(), None);
        assert_eq!(device_name_by_hctl(&p, 7, hctl(3, 4, 5, 2)).unwrap(), None);
        assert_eq!(block_wwid(&p, "sda").unwrap().as_deref(), Some("8wwid9"));
    }

    #[test]
    fn session_devices_two_sessions() {
        let p = fixture(TWO);
        assert_eq!(session_host(&p, 1).unwrap(), Some(1));
        assert_eq!(session_host(&p, 2).unwrap(), Some(2));
        assert_eq!(
            session_devices(&p, 1).unwrap(),
            [ScsiDevice {
                hctl: hctl(1, 2, 6, 4),
                name: "sda".into(),
                wwid: Some(MPATH_WWID.into()),
            }]
        );
        assert_eq!(
            session_devices(&p, 2).unwrap(),
            [
                ScsiDevice {
                    hctl: hctl(2, 2, 7, 4),
                    name: "sdc".into(),
                    wwid: Some(MPATH_WWID.into()),
                },
                ScsiDevice {
                    hctl: hctl(2, 2, 7, 5),
                    name: "sdb".into(),
                    wwid: Some("1wwid1".into()),
                },
                ScsiDevice {
                    hctl: hctl(2, 2, 7, 256),
                    name: "sdd".into(),
                    wwid: Some("2wwid1".into()),
                },
            ]
        );
    }

    /// os-brick `_get_connection_devices` split for one (session, wanted LUN):
    /// devices whose LUN equals the wanted one "belong", the rest are "others".
    fn split(p: &HostPaths, session: u32, lun: u64) -> (Vec<String>, Vec<String>) {
        let (belong, others): (Vec<_>, Vec<_>) = session_devices(p, session)
            .unwrap()
            .into_iter()
            .partition(|d| d.hctl.lun == lun);
        (
            belong.into_iter().map(|d| d.name).collect(),
            others.into_iter().map(|d| d.name).collect(),
        )
    }

    // iscsi_sysfs_session_devices.json: expected device map.
    #[test]
    fn connection_devices_match_os_brick_map() {
        let p = fixture(TWO);
        let mut map = BTreeMap::new();
        // ip1:port1|tgt1 has session 1, LUN 4; ip2:port2|tgt2 has session 2, LUN 5.
        map.insert("ip1:port1|tgt1", split(&p, 1, 4));
        map.insert("ip2:port2|tgt2", split(&p, 2, 5));
        assert_eq!(map["ip1:port1|tgt1"], (vec!["sda".to_owned()], vec![]));
        // The vector has sdc (LUN 4) as the only other; the fixture adds sdd (LUN 256).
        assert_eq!(
            map["ip2:port2|tgt2"],
            (
                vec!["sdb".to_owned()],
                vec!["sdc".to_owned(), "sdd".to_owned()]
            )
        );
        // A LUN ≥ 256 is matched by its kernel number.
        assert_eq!(split(&p, 2, 256).0, ["sdd"]);
    }

    // sysfs_wwid_and_dm.json: find_sysfs_multipath_dm(['sda']) => 'dm-0', get_dm_name, get_sysfs_wwn.
    #[test]
    fn multipath_holder_name_uuid() {
        let p = fixture(TWO);
        assert_eq!(holders(&p, "sda").unwrap(), ["dm-0"]);
        assert_eq!(holder_dm(&p, "sdc").unwrap().as_deref(), Some("dm-0"));
        assert_eq!(holder_dm(&p, "sdb").unwrap(), None);
        assert!(holders(&p, "sdz").unwrap().is_empty());
        assert_eq!(dm_name(&p, "dm-0").unwrap().as_deref(), Some(MPATH_WWID));
        assert_eq!(
            dm_uuid(&p, "dm-0").unwrap(),
            Some(format!("mpath-{MPATH_WWID}"))
        );
        assert_eq!(
            dm_multipath_wwid(&p, "dm-0").unwrap().as_deref(),
            Some(MPATH_WWID)
        );
        // The map's WWID is the udev form of its paths' sysfs wwid.
        assert_eq!(block_wwid(&p, "sda").unwrap().as_deref(), Some(MPATH_WWID));
        assert_eq!(dm_name(&p, "dm-9").unwrap(), None);
        assert_eq!(dm_multipath_wwid(&p, "dm-9").unwrap(), None);
    }

    #[test]
    fn sizes_in_bytes() {
        let p = fixture(TWO);
        assert_eq!(block_size_bytes(&p, "sda").unwrap(), Some(1 << 30));
        assert_eq!(block_size_bytes(&p, "sdb").unwrap(), Some(2 << 30));
        assert_eq!(block_size_bytes(&p, "sdd").unwrap(), Some(4 << 30));
        assert_eq!(block_size_bytes(&p, "dm-0").unwrap(), Some(1 << 30));
        assert_eq!(block_size_bytes(&p, "sdz").unwrap(), None);
    }

    #[test]
    fn bad_size_is_an_error_naming_the_path() {
        let dir = std::env::temp_dir().join(format!("moor-host-size-{}", std::process::id()));
        let block = dir.join("sys/block/sdq");
        std::fs::create_dir_all(&block).unwrap();
        std::fs::write(block.join("size"), "lots\n").unwrap();
        std::fs::create_dir_all(dir.join("sys/block/sdr")).unwrap();
        std::fs::write(dir.join("sys/block/sdr/size"), "18446744073709551615\n").unwrap();
        let p = HostPaths::under(&dir);
        let err = block_size_bytes(&p, "sdq").unwrap_err();
        assert!(err.to_string().contains("sys/block/sdq/size"), "{err}");
        assert!(block_size_bytes(&p, "sdr").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_cannot_escape_sysfs() {
        let p = fixture(TWO);
        assert!(block_wwid(&p, "../sda").is_err());
        assert!(holders(&p, "..").is_err());
        assert!(dm_name(&p, "dm-0/../../sda").is_err());
        assert!(block_size_bytes(&p, "").is_err());
    }
}
