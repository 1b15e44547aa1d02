//! SCSI and block-device operations: targeted scans, identity-checked delete,
//! rescan and flush.

use moor_types::is_block_device_name;
use serde::{Deserialize, Serialize};

use super::{ExecPlan, Guard, OpError, Plan, TypedOp, bad};

/// A WWID in udev form (`3600140…`, `2…`, `1…`, `8…`): what the caller captured at
/// attach. Printable ASCII without spaces or slashes.
fn check_wwid(op: &'static str, w: &str) -> Result<(), OpError> {
    let ok =
        !w.is_empty() && w.len() <= 256 && w.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(bad(op, format!("expected_wwid {w:?} is not a WWID")))
    }
}

fn check_scsi_disk(op: &'static str, d: &str) -> Result<(), OpError> {
    if d.starts_with("sd") && is_block_device_name(d) {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("device {d:?} is not a SCSI disk name (sdX)"),
        ))
    }
}

/// Scan one LUN of one target: `"C T L"` into `/sys/class/scsi_host/hostH/scan`.
/// Never a wildcard (`-`): moord scans only what the caller names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiScan {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u64,
}

impl TypedOp for ScsiScan {
    const NAME: &'static str = "scsi.scan";
}

impl ScsiScan {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::WriteFile {
            path: format!("/sys/class/scsi_host/host{}/scan", self.host),
            value: format!("{} {} {}", self.channel, self.target, self.lun),
            guard: None,
        })
    }
}

/// Remove a SCSI disk from the kernel (`1` into `/sys/block/sdX/device/delete`)
/// after checking it still carries `expected_wwid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiDelete {
    pub device: String,
    pub expected_wwid: String,
}

impl TypedOp for ScsiDelete {
    const NAME: &'static str = "scsi.delete";
}

impl ScsiDelete {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_scsi_disk(Self::NAME, &self.device)?;
        check_wwid(Self::NAME, &self.expected_wwid)?;
        Ok(Plan::WriteFile {
            path: format!("/sys/block/{}/device/delete", self.device),
            value: "1".into(),
            guard: Some(Guard::Wwid {
                device: self.device,
                expected: self.expected_wwid,
            }),
        })
    }
}

/// Re-read a SCSI disk's capacity (`1` into `/sys/block/sdX/device/rescan`) after
/// checking it still carries `expected_wwid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiRescan {
    pub device: String,
    pub expected_wwid: String,
}

impl TypedOp for ScsiRescan {
    const NAME: &'static str = "scsi.rescan";
}

impl ScsiRescan {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_scsi_disk(Self::NAME, &self.device)?;
        check_wwid(Self::NAME, &self.expected_wwid)?;
        Ok(Plan::WriteFile {
            path: format!("/sys/block/{}/device/rescan", self.device),
            value: "1".into(),
            guard: Some(Guard::Wwid {
                device: self.device,
                expected: self.expected_wwid,
            }),
        })
    }
}

/// `blockdev --flushbufs /dev/DEVICE` after checking the device still carries
/// `expected_wwid` (SCSI disks and multipath maps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockFlush {
    pub device: String,
    pub expected_wwid: String,
}

impl TypedOp for BlockFlush {
    const NAME: &'static str = "block.flush";
}

impl BlockFlush {
    pub fn plan(self) -> Result<Plan, OpError> {
        let ok = (self.device.starts_with("sd") || self.device.starts_with("dm-"))
            && is_block_device_name(&self.device);
        if !ok {
            return Err(bad(
                Self::NAME,
                format!("device {:?} is not sdX or dm-N", self.device),
            ));
        }
        check_wwid(Self::NAME, &self.expected_wwid)?;
        Ok(Plan::Exec(ExecPlan {
            argv: vec![
                "blockdev".into(),
                "--flushbufs".into(),
                format!("/dev/{}", self.device),
            ],
            stdin: None,
            secret_stdin: None,
            stream: false,
            timeout_ms: None,
            guard: Some(Guard::Wwid {
                device: self.device,
                expected: self.expected_wwid,
            }),
        }))
    }
}
