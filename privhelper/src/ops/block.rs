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
