//! SCSI and block-device operations: targeted scans, identity-checked delete,
//! rescan and flush.

use serde::{Deserialize, Serialize};

use super::{DevKind, Guard, OpError, Plan, TypedOp, check_device, check_wwid, guarded_exec};

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

/// Scan LUN `lun` of every target of host `host`: `"- - L"` into
/// `/sys/class/scsi_host/hostH/scan`. Only for Fibre Channel volumes whose
/// connection info allows it (`enable_wildcard_scan`) when no HBA shows any of
/// the volume's target ports: it adds LUN L of every target the HBA reaches
/// (os-brick #1849504), so a separate operation an administrator can leave out of
/// a policy. The channel and target stay wildcards, the LUN never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiScanAllTargets {
    pub host: u32,
    pub lun: u64,
}

impl TypedOp for ScsiScanAllTargets {
    const NAME: &'static str = "scsi.scan_all_targets";
}

impl ScsiScanAllTargets {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::WriteFile {
            path: format!("/sys/class/scsi_host/host{}/scan", self.host),
            value: format!("- - {}", self.lun),
            guard: None,
        })
    }
}

/// A SCSI disk attribute moord writes `1` to after checking the disk still carries
/// `expected_wwid`.
macro_rules! disk_write_op {
    ($(#[$m:meta])* $t:ident, $name:literal, $attr:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $t {
            pub device: String,
            pub expected_wwid: String,
        }

        impl TypedOp for $t {
            const NAME: &'static str = $name;
        }

        impl $t {
            pub fn plan(self) -> Result<Plan, OpError> {
                check_device(Self::NAME, &self.device, DevKind::Disk)?;
                check_wwid(Self::NAME, &self.expected_wwid)?;
                Ok(Plan::WriteFile {
                    path: format!("/sys/block/{}/device/{}", self.device, $attr),
                    value: "1".into(),
                    guard: Some(Guard::Wwid {
                        device: self.device,
                        expected: self.expected_wwid,
                    }),
                })
            }
        }
    };
}

disk_write_op!(
    /// Remove a SCSI disk from the kernel (`/sys/block/sdX/device/delete`).
    ScsiDelete, "scsi.delete", "delete"
);
disk_write_op!(
    /// Re-read a SCSI disk's capacity and VPD pages (`/sys/block/sdX/device/rescan`).
    ScsiRescan, "scsi.rescan", "rescan"
);

/// `blockdev --flushbufs /dev/DEVICE` after checking the device still carries
/// `expected_wwid` (SCSI disks, multipath maps and NVMe namespaces).
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
        check_device(Self::NAME, &self.device, DevKind::AnyDisk)?;
        check_wwid(Self::NAME, &self.expected_wwid)?;
        let argv = vec![
            "blockdev".into(),
            "--flushbufs".into(),
            format!("/dev/{}", self.device),
        ];
        Ok(guarded_exec(argv, &self.device, &self.expected_wwid))
    }
}
