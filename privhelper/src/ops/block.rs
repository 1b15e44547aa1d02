//! Block-device checks.

use serde::{Deserialize, Serialize};

use super::{DevKind, OpError, Plan, TypedOp, check_device, check_wwid, guarded_exec};

/// Read the first 4 KiB of a device, bypassing the page cache (`dd … iflag=direct`):
/// os-brick's `check_valid_device`. moord checks the WWID first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockReadCheck {
    pub device: String,
    pub expected_wwid: String,
}

impl TypedOp for BlockReadCheck {
    const NAME: &'static str = "block.read_check";
}

impl BlockReadCheck {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_device(Self::NAME, &self.device, DevKind::DiskOrMap)?;
        check_wwid(Self::NAME, &self.expected_wwid)?;
        let argv = [
            &format!("if=/dev/{}", self.device),
            "of=/dev/null",
            "bs=4096",
            "count=1",
            "iflag=direct",
            "status=none",
        ];
        let argv = std::iter::once("dd")
            .chain(argv.iter().map(|s| s.as_ref()))
            .map(String::from)
            .collect();
        Ok(guarded_exec(argv, &self.device, &self.expected_wwid))
    }
}

/// Which processes have a block device open: `fuser /dev/NAME` (exit 0 and pids on
/// stdout when some do, exit 1 when none). Read-only; `moor doctor` and `moor
/// cleanup` ask it before they plan to remove a device no attachment claims, since
/// another user's open file descriptors are visible only to root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockUsers {
    pub device: String,
}

impl TypedOp for BlockUsers {
    const NAME: &'static str = "block.users";
}

impl BlockUsers {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_device(Self::NAME, &self.device, DevKind::AnyDisk)?;
        Ok(super::exec_plan(
            vec!["fuser".into(), format!("/dev/{}", self.device)],
            None,
        ))
    }
}

/// Remove a `/dev/disk/by-*` link udev left behind for a device that is gone:
/// `rm -f -- LINK`, after moord checks that LINK is a symlink to DEVICE (or one of
/// its partitions) and that DEVICE no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRemoveStaleLink {
    pub link: String,
    pub device: String,
}

impl TypedOp for BlockRemoveStaleLink {
    const NAME: &'static str = "block.remove_stale_link";
}

impl BlockRemoveStaleLink {
    pub fn plan(self) -> Result<Plan, OpError> {
        if !moor_types::is_block_device_name(&self.device) {
            return Err(super::bad(
                Self::NAME,
                format!("device {:?} is not a block device name", self.device),
            ));
        }
        let ok = super::is_canonical_path(&self.link)
            && self
                .link
                .strip_prefix("/dev/disk/by-")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(kind, name)| {
                    !kind.is_empty()
                        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                        && !name.is_empty()
                        && !name.contains('/')
                });
        if !ok {
            return Err(super::bad(
                Self::NAME,
                format!("{:?} is not a /dev/disk/by-*/NAME link", self.link),
            ));
        }
        Ok(super::exec_plan(
            vec!["rm".into(), "-f".into(), "--".into(), self.link.clone()],
            Some(super::Guard::StaleLink {
                link: self.link,
                device: self.device,
            }),
        ))
    }
}
