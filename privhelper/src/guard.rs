//! Identity guards (architecture invariant 1): right before moord writes or runs
//! what a plan asks for, it re-reads the device's identity from sysfs and refuses
//! the operation when it is not the one the caller captured at attach.
//!
//! * `sdX`: `/sys/block/sdX/device/wwid`, normalised like udev
//!   ([`moor_types::normalize_wwid`]), must equal the expected WWID;
//! * `dm-N`: `/sys/block/dm-N/dm/uuid` must be exactly `mpath-<expected>`.
//!
//! Paths are resolved under the configured host root. A missing device or
//! attribute is a mismatch too: there is no "empty means don't care".

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use moor_types::{is_block_device_name, normalize_wwid};

use crate::config::host_path;
use crate::ops::Guard;

/// What was found instead of the expected identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The attribute's value (normalised for `sdX`, raw for `dm-N`).
    Value(String),
    /// The device or its attribute could not be read.
    Missing { attribute: String, error: String },
    /// The guard names something that is not a SCSI disk or dm device.
    Unsupported,
}

/// The device does not carry the expected identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity mismatch on {device}: expected WWID {expected:?}, {}", describe(.found))]
pub struct Mismatch {
    pub device: String,
    pub expected: String,
    pub found: Found,
}

fn describe(f: &Found) -> String {
    match f {
        Found::Value(v) => format!("found {v:?}"),
        Found::Missing { attribute, error } => format!("found nothing: {attribute}: {error}"),
        Found::Unsupported => "found nothing: only sdX and dm-N devices can be checked".into(),
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
        expected: format!("a stale link {link}"),
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

/// Check `g` against the host under `root`.
pub fn check(root: &Path, g: &Guard) -> Result<(), Mismatch> {
    let (device, expected) = match g {
        Guard::Wwid { device, expected } => (device, expected),
        Guard::StaleLink { link, device } => return check_stale_link(root, link, device),
        Guard::DmMap {
            device,
            name,
            expected,
        } => {
            check(
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
                    expected: expected.clone(),
                    found: Found::Value(format!("map name {got:?}, not {name:?}")),
                });
            }
            return Ok(());
        }
    };
    let mismatch = |found| Mismatch {
        device: device.clone(),
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
            let got = raw.trim_end_matches('\n');
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
}
