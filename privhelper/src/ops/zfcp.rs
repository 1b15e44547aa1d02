//! s390x zFCP operations: the writes to the zfcp driver's sysfs attributes that
//! open a remote port (`port_rescan`) and add or remove a LUN (`unit_add`,
//! `unit_remove`), built from validated values ([`CcwBusId`], [`Wwpn`],
//! [`FcpLun`]). What chzdev/zfcp_disk_configure write, without those tools.

use moor_types::{CcwBusId, FcpLun, Wwpn};
use serde::{Deserialize, Serialize};

use super::{Guard, OpError, Plan, TypedOp};

fn adapter(busid: CcwBusId) -> String {
    format!("/sys/bus/ccw/drivers/zfcp/{busid}")
}

/// Ask adapter `busid` to scan the fabric for remote ports (`1` into
/// `port_rescan`): a target port zfcp does not know yet gets its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZfcpPortRescan {
    pub busid: CcwBusId,
}

impl TypedOp for ZfcpPortRescan {
    const NAME: &'static str = "zfcp.port_rescan";
}

impl ZfcpPortRescan {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::WriteFile {
            path: format!("{}/port_rescan", adapter(self.busid)),
            value: "1".into(),
            guard: None,
        })
    }
}

/// Add LUN `fcp_lun` behind port `wwpn` of adapter `busid` (the FCP LUN into
/// `<port>/unit_add`); zfcp opens it and the SCSI disk appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZfcpUnitAdd {
    pub busid: CcwBusId,
    pub wwpn: Wwpn,
    pub fcp_lun: FcpLun,
}

impl TypedOp for ZfcpUnitAdd {
    const NAME: &'static str = "zfcp.unit_add";
}

impl ZfcpUnitAdd {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::WriteFile {
            path: format!(
                "{}/{}/unit_add",
                adapter(self.busid),
                self.wwpn.sysfs_form()
            ),
            value: self.fcp_lun.to_string(),
            guard: None,
        })
    }
}

/// Remove LUN `fcp_lun` behind port `wwpn` of adapter `busid`
/// (`<port>/unit_remove`). Guarded: moord refuses while any SCSI disk of that unit
/// still exists (`hba_id`, `wwpn`, `fcp_lun` of `/sys/bus/scsi/devices/*`): the
/// disks go first (flushed and deleted by detach), never from under a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZfcpUnitRemove {
    pub busid: CcwBusId,
    pub wwpn: Wwpn,
    pub fcp_lun: FcpLun,
}

impl TypedOp for ZfcpUnitRemove {
    const NAME: &'static str = "zfcp.unit_remove";
}

impl ZfcpUnitRemove {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::WriteFile {
            path: format!(
                "{}/{}/unit_remove",
                adapter(self.busid),
                self.wwpn.sysfs_form()
            ),
            value: self.fcp_lun.to_string(),
            guard: Some(Guard::ZfcpUnitUnused {
                busid: self.busid,
                wwpn: self.wwpn,
                fcp_lun: self.fcp_lun,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan;
    use super::*;

    fn write(op: &str, args: &str) -> (String, String, Option<Guard>) {
        match plan(op, args) {
            Ok(Plan::WriteFile { path, value, guard }) => (path, value, guard),
            other => panic!("{op}: {other:?}"),
        }
    }

    #[test]
    fn zfcp_writes() {
        assert_eq!(
            write("zfcp.port_rescan", r#"{"busid":"0.0.1900"}"#),
            (
                "/sys/bus/ccw/drivers/zfcp/0.0.1900/port_rescan".into(),
                "1".into(),
                None
            )
        );
        let unit =
            r#"{"busid":"0.0.B100","wwpn":"0x500507630B1B41C3","fcp_lun":"0x4020400A00000000"}"#;
        assert_eq!(
            write("zfcp.unit_add", unit),
            (
                "/sys/bus/ccw/drivers/zfcp/0.0.b100/0x500507630b1b41c3/unit_add".into(),
                "0x4020400a00000000".into(),
                None
            )
        );
        let (path, value, guard) = write("zfcp.unit_remove", unit);
        assert_eq!(
            (path.as_str(), value.as_str()),
            (
                "/sys/bus/ccw/drivers/zfcp/0.0.b100/0x500507630b1b41c3/unit_remove",
                "0x4020400a00000000"
            )
        );
        assert_eq!(
            guard,
            Some(Guard::ZfcpUnitUnused {
                busid: "0.0.b100".parse().unwrap(),
                wwpn: "500507630b1b41c3".parse().unwrap(),
                fcp_lun: "0x4020400a00000000".parse().unwrap(),
            })
        );
        for bad in [
            r#"{"busid":"0.0.1900/../x"}"#,
            r#"{"busid":"0.4.1900"}"#,
            r#"{"busid":"0.0.1900","extra":1}"#,
            r#"{}"#,
        ] {
            assert!(plan("zfcp.port_rescan", bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"busid":"0.0.1900","wwpn":"0x5005","fcp_lun":"0x4020400a00000000"}"#,
            r#"{"busid":"0.0.1900","wwpn":"0x500507630b1b41c3","fcp_lun":"1"}"#,
            r#"{"busid":"0.0.1900","wwpn":"0x500507630b1b41c3","fcp_lun":"0x4020400a00000000\n"}"#,
            r#"{"busid":"0.0.1900","wwpn":"0x500507630b1b41c3"}"#,
        ] {
            assert!(plan("zfcp.unit_add", bad).is_err(), "{bad}");
            assert!(plan("zfcp.unit_remove", bad).is_err(), "{bad}");
        }
    }
}
