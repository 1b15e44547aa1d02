//! s390x zFCP: the FC HBAs of a mainframe are channel-subsystem (CCW) devices run
//! by the `zfcp` driver, which also decides which remote ports and LUNs the host
//! opens (`drivers/s390/scsi/zfcp_sysfs.c`, `zfcp_unit.c`):
//!
//! ```text
//! sys/bus/ccw/drivers/zfcp/0.0.1900 -> ../../../../devices/css0/0.0.0010/0.0.1900
//!     online (1) failed in_recovery status port_rescan port_remove (write-only)
//!     host0/  (the SCSI host: fc_host/host0, rport-0:0-N, …)
//!     0x500507630b1b41c3/                 a remote port zfcp knows
//!         unit_add unit_remove (write-only) failed in_recovery access_denied
//!         0x4020400a00000000/             a unit (LUN) added with unit_add
//!             failed in_recovery status access_denied
//! sys/bus/scsi/devices/H:C:T:L/{hba_id,wwpn,fcp_lun,zfcp_failed}   (each zfcp disk)
//! sys/module/zfcp/parameters/allow_lun_scan   (Y: automatic LUN scan with NPIV)
//! ```
//!
//! A port zfcp does not know yet appears after `port_rescan`. A LUN needs
//! `unit_add` with its 64-bit FCP LUN, except on an NPIV adapter with automatic
//! LUN scan, where the LUNs of an opened port appear by themselves (and a targeted
//! SCSI scan works as on any FC HBA). Detach removes the SCSI devices, then the
//! unit (`unit_remove`).
//!
//! `failed` (adapter, port, unit) is 1 once zfcp's error recovery gave up on the
//! object: nothing behind it will come back without an operator, so a path
//! through it is skipped rather than waited on.

use std::path::PathBuf;

use super::props::FcTarget;
use super::sysfs::FcHost;
use crate::host::scsi::Hctl;
use crate::host::{HostError, HostPaths};
use crate::types::{CcwBusId, FcpLun, Wwpn};

/// A zFCP unit: adapter, remote port and FCP LUN (what `unit_add` and
/// `unit_remove` take).
pub type UnitId = (CcwBusId, Wwpn, FcpLun);

/// `0.0.1900 0x500507630b1b41c3 0x4020400a00000000`, for messages.
pub fn unit_name((busid, wwpn, lun): UnitId) -> String {
    format!("{busid} {} {lun}", wwpn.sysfs_form())
}

/// A zFCP adapter (the CCW device behind an FC host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub busid: CcwBusId,
    /// `online` is 1.
    pub online: bool,
    /// The fc_host is an NPIV virtual port (`port_type` `NPIV VPORT`).
    pub npiv: bool,
    /// `failed` is not 0: zfcp's recovery of the adapter gave up.
    pub failed: bool,
}

/// The zFCP adapter of `hba`, when it is one (its device path runs through a CCW
/// device of the channel subsystem).
pub fn adapter(paths: &HostPaths, hba: &FcHost) -> Result<Option<Adapter>, HostError> {
    let Some(busid) = hba
        .by_path_prefix()
        .and_then(|p| p.strip_prefix("ccw-").map(String::from))
        .and_then(|b| b.parse::<CcwBusId>().ok())
    else {
        return Ok(None);
    };
    let dir = adapter_dir(paths, busid);
    let online = paths
        .read_attr(&dir.join("online"))?
        .as_deref()
        .map(str::trim)
        == Some("1");
    let npiv = paths
        .read_attr(&paths.sys(&format!("class/fc_host/host{}/port_type", hba.host)))?
        .is_some_and(|t| t.trim() == "NPIV VPORT");
    let failed = failed(paths, &dir)?;
    Ok(Some(Adapter {
        busid,
        online,
        npiv,
        failed,
    }))
}

/// `<dir>/failed` says 1 (absent: not failed; zfcp always has it, so absent means
/// no such object, which callers check on their own).
fn failed(paths: &HostPaths, dir: &std::path::Path) -> Result<bool, HostError> {
    Ok(paths
        .read_attr(&dir.join("failed"))?
        .is_some_and(|f| f.trim() != "0"))
}

fn adapter_dir(paths: &HostPaths, busid: CcwBusId) -> PathBuf {
    paths.sys(&format!("bus/ccw/drivers/zfcp/{busid}"))
}

/// `<adapter>/0x<wwpn>`.
pub fn port_dir(paths: &HostPaths, busid: CcwBusId, wwpn: Wwpn) -> PathBuf {
    adapter_dir(paths, busid).join(wwpn.sysfs_form())
}

/// `<adapter>/0x<wwpn>/<fcp lun>`.
pub fn unit_dir(paths: &HostPaths, busid: CcwBusId, wwpn: Wwpn, lun: FcpLun) -> PathBuf {
    port_dir(paths, busid, wwpn).join(lun.to_string())
}

/// zFCP knows remote port `wwpn` on `busid`.
pub fn port_known(paths: &HostPaths, busid: CcwBusId, wwpn: Wwpn) -> Result<bool, HostError> {
    Ok(paths.list_dir(&port_dir(paths, busid, wwpn))?.is_some())
}

/// zfcp's recovery of remote port `wwpn` on `busid` gave up (`failed` is 1): the
/// port is known but cannot carry I/O (a port zfcp does not know is not failed).
pub fn port_failed(paths: &HostPaths, busid: CcwBusId, wwpn: Wwpn) -> Result<bool, HostError> {
    failed(paths, &port_dir(paths, busid, wwpn))
}

/// The state of a unit added with `unit_add`: `None` when there is no such unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ready,
    /// `failed` is not 0: zfcp could not open the LUN (access denied, no such LUN).
    Failed,
}

pub fn unit(
    paths: &HostPaths,
    busid: CcwBusId,
    wwpn: Wwpn,
    lun: FcpLun,
) -> Result<Option<Unit>, HostError> {
    let dir = unit_dir(paths, busid, wwpn, lun);
    Ok(match paths.read_attr(&dir.join("failed"))? {
        None => None,
        Some(f) if f.trim() == "0" => Some(Unit::Ready),
        Some(_) => Some(Unit::Failed),
    })
}

/// zfcp scans the LUNs of a port by itself: an NPIV adapter and
/// `zfcp.allow_lun_scan=1` (the default since kernel 3.8).
pub fn auto_lun_scan(paths: &HostPaths, adapter: &Adapter) -> Result<bool, HostError> {
    let allowed = paths
        .read_attr(&paths.sys("module/zfcp/parameters/allow_lun_scan"))?
        .is_none_or(|v| matches!(v.trim(), "Y" | "1"));
    Ok(adapter.npiv && allowed)
}

/// The FCP LUN a zfcp SCSI device carries (`fcp_lun`), and its adapter and port:
/// what `unit_remove` must not pull from under a disk.
pub fn device_unit(paths: &HostPaths, hctl: Hctl) -> Result<Option<UnitId>, HostError> {
    let dir = paths.sys(&format!("bus/scsi/devices/{hctl}"));
    let attr = |a: &str| -> Result<Option<String>, HostError> {
        Ok(paths.read_attr(&dir.join(a))?.map(|v| v.trim().to_owned()))
    };
    let (Some(hba), Some(wwpn), Some(lun)) = (attr("hba_id")?, attr("wwpn")?, attr("fcp_lun")?)
    else {
        return Ok(None);
    };
    Ok(match (hba.parse(), wwpn.parse(), lun.parse()) {
        (Ok(b), Ok(w), Ok(l)) => Some((b, w, l)),
        _ => None,
    })
}

/// The SCSI devices of unit `id` (any state, with or without a block device):
/// what moord's `unit_remove` guard refuses on.
pub fn unit_devices(paths: &HostPaths, id: UnitId) -> Result<Vec<Hctl>, HostError> {
    let mut out = Vec::new();
    for name in paths
        .list_dir(&paths.sys("bus/scsi/devices"))?
        .unwrap_or_default()
    {
        if let Ok(hctl) = name.parse::<Hctl>()
            && device_unit(paths, hctl)? == Some(id)
        {
            out.push(hctl);
        }
    }
    Ok(out)
}

/// The by-path names udev has used for a zfcp disk over the years: systemd's
/// `ccw-<bus id>-fc-0x<wwpn>-lun-<N>` (also with the LUN as an FCP LUN, Debian and
/// Ubuntu on DS8000) and the old `ccw-<bus id>-zfcp-0x<wwpn>:<fcp lun>` (RHEL 6).
pub fn by_path_names(busid: CcwBusId, target: &FcTarget) -> [String; 3] {
    let fcp = FcpLun::from_linux(target.lun);
    let w = target.wwpn.sysfs_form();
    [
        format!(
            "/dev/disk/by-path/ccw-{busid}-fc-{w}-lun-{}",
            target.lun.by_path_id()
        ),
        format!("/dev/disk/by-path/ccw-{busid}-fc-{w}-lun-{fcp}"),
        format!("/dev/disk/by-path/ccw-{busid}-zfcp-{w}:{fcp}"),
    ]
}

#[cfg(test)]
#[path = "zfcp_tests.rs"]
mod tests;
