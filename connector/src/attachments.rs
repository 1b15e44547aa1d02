//! The host's record of what moor attached: one small JSON file per block device
//! under `/run/moor/attachments` (group `moor`), written at attach and removed by a
//! complete detach.
//!
//! It answers the question sysfs cannot: "is this disk, found at the LUN we are about
//! to attach, the device some earlier attach handed out?" If the array has since
//! mapped another volume at that LUN (CVE-2023-2088), the disk's refreshed WWID no
//! longer matches the one recorded, and moor refuses to hand it out again. Records
//! name the kernel object by the inode of its sysfs directory, so a record left by
//! a device that was since deleted and re-created under the same name is ignored.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::host::{HostError, HostPaths, component};

/// What one attach handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Kernel name (`sdb`).
    pub device: String,
    /// WWID at attach (udev form).
    pub wwid: String,
    /// Inode of the device's sysfs directory at attach (identifies this instance
    /// of the kernel object).
    pub sysfs_ino: u64,
    pub protocol: String,
    /// `iqn@portal lun N` or the transport's equivalent.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// Seconds since the epoch.
    pub attached_at: u64,
}

/// The directory of attachment records.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// Inode of `/sys/block/<name>/device` resolved (the SCSI device's directory). For
/// an NVMe namespace (`nvmeXnY`), whose `device` is the controller or subsystem that
/// all its namespaces share, the inode of its own `/sys/block/<name>` directory.
pub fn device_ino(paths: &HostPaths, name: &str) -> Result<Option<u64>, HostError> {
    let name = component(name)?;
    let link = if name.starts_with("nvme") {
        paths.sys(&format!("block/{name}"))
    } else {
        paths.sys(&format!("block/{name}/device"))
    };
    match fs::metadata(&link) {
        Ok(m) => Ok(Some(m.ino())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HostError::Read { path: link, source }),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, device: &str) -> Option<PathBuf> {
        component(device)
            .ok()
            .map(|d| self.dir.join(format!("{d}.json")))
    }

    /// Record an attachment (atomically replaces an older record of the device).
    pub fn record(&self, a: &Attachment) -> io::Result<()> {
        let file = self
            .file(&a.device)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad device name"))?;
        fs::create_dir_all(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", a.device, std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string(a)?.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &file)
    }

    /// The record of `device`, if one exists and is readable.
    pub fn get(&self, device: &str) -> Option<Attachment> {
        let text = fs::read_to_string(self.file(device)?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The record of `device` if it describes the kernel object that exists now.
    pub fn current(&self, paths: &HostPaths, device: &str) -> Option<Attachment> {
        let rec = self.get(device)?;
        let ino = device_ino(paths, device).ok().flatten()?;
        (rec.sysfs_ino == ino).then_some(rec)
    }

    /// Forget `device` (a missing record is fine).
    pub fn remove(&self, device: &str) -> io::Result<()> {
        let Some(file) = self.file(device) else {
            return Ok(());
        };
        match fs::remove_file(file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record (unreadable ones skipped), sorted by device.
    pub fn all(&self) -> Vec<Attachment> {
        let mut out: Vec<Attachment> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let dev = name.strip_suffix(".json")?;
                self.get(dev)
            })
            .collect();
        out.sort_by(|a, b| a.device.cmp(&b.device));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_tie_to_the_kernel_object() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("sys/devices/x/2:0:0:1")).unwrap();
        fs::create_dir_all(root.join("sys/block/sdb")).unwrap();
        std::os::unix::fs::symlink(
            root.join("sys/devices/x/2:0:0:1"),
            root.join("sys/block/sdb/device"),
        )
        .unwrap();
        let paths = HostPaths::under(root);
        let reg = Registry::new(root.join("run/moor/attachments"));
        let ino = device_ino(&paths, "sdb").unwrap().unwrap();
        let a = Attachment {
            device: "sdb".into(),
            wwid: "36001405aa".into(),
            sysfs_ino: ino,
            protocol: "iscsi".into(),
            target: "iqn.x@1.2.3.4:3260 lun 1".into(),
            volume_id: Some("v1".into()),
            attached_at: now_secs(),
        };
        reg.record(&a).unwrap();
        assert_eq!(reg.get("sdb"), Some(a.clone()));
        assert_eq!(reg.current(&paths, "sdb"), Some(a.clone()));
        assert_eq!(reg.all(), vec![a.clone()]);
        // The device is deleted and another kernel object takes the name.
        fs::remove_file(root.join("sys/block/sdb/device")).unwrap();
        fs::create_dir_all(root.join("sys/devices/x/2:0:0:2")).unwrap();
        std::os::unix::fs::symlink(
            root.join("sys/devices/x/2:0:0:2"),
            root.join("sys/block/sdb/device"),
        )
        .unwrap();
        assert_eq!(reg.current(&paths, "sdb"), None);
        reg.remove("sdb").unwrap();
        reg.remove("sdb").unwrap();
        assert_eq!(reg.get("sdb"), None);
        assert!(
            reg.record(&Attachment {
                device: "../x".into(),
                ..a
            })
            .is_err()
        );
    }
}
