//! Block-device checks.

use moor_types::is_block_device_name;
use serde::{Deserialize, Serialize};

use super::{ExecPlan, Guard, OpError, Plan, TypedOp, bad};

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
        let ok = (self.device.starts_with("sd") || self.device.starts_with("dm-"))
            && is_block_device_name(&self.device);
        if !ok {
            return Err(bad(
                Self::NAME,
                format!("device {:?} is not sdX or dm-N", self.device),
            ));
        }
        let w = &self.expected_wwid;
        if w.is_empty() || w.len() > 256 || !w.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err(bad(
                Self::NAME,
                format!("expected_wwid {w:?} is not a WWID"),
            ));
        }
        Ok(Plan::Exec(ExecPlan {
            argv: vec![
                "dd".into(),
                format!("if=/dev/{}", self.device),
                "of=/dev/null".into(),
                "bs=4096".into(),
                "count=1".into(),
                "iflag=direct".into(),
                "status=none".into(),
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
