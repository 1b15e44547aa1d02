//! Fibre Channel as the kernel shows it in sysfs (`drivers/scsi/scsi_transport_fc.c`),
//! read without privilege:
//!
//! ```text
//! sys/class/fc_host/hostH -> ../../devices/<parent>/hostH/fc_host/hostH
//!     port_name node_name port_state (Online, Linkdown, …) port_id
//! sys/class/fc_remote_ports/rport-H:B-R -> …/hostH/rport-H:B-R/fc_remote_ports/rport-H:B-R
//!     port_name node_name port_id port_state (Online, Blocked, Not Present)
//!     roles ("FCP Target", …) scsi_target_id (-1: not a SCSI target)
//! sys/class/fc_transport/targetH:C:T -> …/hostH/rport-H:B-R/targetH:C:T/fc_transport/targetH:C:T
//!     port_name node_name port_id
//! …/rport-H:B-R/targetH:C:T/H:C:T:L/block/sdX      (an FC SCSI disk)
//! ```
//!
//! `<parent>` is the HBA: a PCI function (`pci0000:00/0000:00:03.0/0000:05:00.2`),
//! possibly under a platform device, a CCW device on s390x
//! (`css0/0.0.0010/0.0.1900`), or a network interface for FCoE
//! (`virtual/net/fcA0/ctlr_0`, no by-path name).

use std::path::Path;

use super::props::FcTarget;
use crate::host::scsi::Hctl;
use crate::host::{HostError, HostPaths, component};
use crate::types::{CcwBusId, Wwpn};

/// A local FC port (an HBA port, a zFCP adapter, an FCoE controller's lport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcHost {
    /// N of `hostN`.
    pub host: u32,
    pub port_name: Wwpn,
    pub node_name: Option<Wwpn>,
    /// `Online`, `Linkdown`, `Offline`, …
    pub port_state: String,
    /// The resolved `/sys/class/fc_host/hostN`, relative to the host root
    /// (`sys/devices/pci0000:00/…/host5/fc_host/host5`).
    pub device_path: String,
}

impl FcHost {
    pub fn online(&self) -> bool {
        self.port_state == "Online"
    }

    /// The by-path prefix of this HBA's disks (see [`by_path_prefix`]).
    pub fn by_path_prefix(&self) -> Option<String> {
        by_path_prefix(&self.device_path)
    }
}

fn wwpn_attr(paths: &HostPaths, dir: &Path, attr: &str) -> Result<Option<Wwpn>, HostError> {
    Ok(paths
        .read_attr(&dir.join(attr))?
        .and_then(|v| v.trim().parse().ok()))
}

fn number_after(name: &str, prefix: &str) -> Option<u32> {
    let n = name.strip_prefix(prefix)?;
    (!n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// Every FC host (`/sys/class/fc_host/host*`), by host number. Hosts whose
/// `port_name` cannot be read are skipped (being removed).
pub fn fc_hosts(paths: &HostPaths) -> Result<Vec<FcHost>, HostError> {
    let class = paths.sys("class/fc_host");
    let mut out = Vec::new();
    for name in paths.list_prefixed(&class, "host")? {
        let Some(host) = number_after(&name, "host") else {
            continue;
        };
        let dir = class.join(component(&name)?);
        let Some(port_name) = wwpn_attr(paths, &dir, "port_name")? else {
            continue;
        };
        let device_path = paths
            .resolve(&dir)?
            .and_then(|p| {
                p.strip_prefix(paths.root())
                    .ok()
                    .map(|r| r.display().to_string())
            })
            .unwrap_or_default();
        out.push(FcHost {
            host,
            port_name,
            node_name: wwpn_attr(paths, &dir, "node_name")?,
            port_state: paths
                .read_attr(&dir.join("port_state"))?
                .unwrap_or_default()
                .trim()
                .to_owned(),
            device_path,
        });
    }
    out.sort_by_key(|h| h.host);
    Ok(out)
}

/// The prefix udev's `path_id` gives an HBA's disks (os-brick `_get_pci_num`): the
/// component right before the first `net*` or `host*` component is the HBA; a PCI
/// function gives `pci-<function>` (after `platform-<device>-` when the PCI bus
/// sits under a platform device), a CCW device `ccw-<bus id>`. `None` for an HBA
/// that is neither (FCoE over a virtual interface: udev makes no by-path link).
pub fn by_path_prefix(device_path: &str) -> Option<String> {
    let parts: Vec<&str> = device_path
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let at = parts
        .iter()
        .position(|p| p.starts_with("net") || p.starts_with("host"))?;
    let hba = *parts.get(at.checked_sub(1)?)?;
    if is_pci_function(hba) {
        let platform = (parts.get(2) == Some(&"platform"))
            .then(|| {
                let pci = parts.iter().position(|p| p.starts_with("pci"))?;
                Some(format!("platform-{}-", parts.get(pci.checked_sub(1)?)?))
            })
            .flatten()
            .unwrap_or_default();
        return Some(format!("{platform}pci-{hba}"));
    }
    hba.parse::<CcwBusId>()
        .ok()
        .filter(|_| hba.split('.').count() == 3)
        .map(|b| format!("ccw-{b}"))
}

/// `dddd:bb:dd.f`.
fn is_pci_function(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && s.bytes()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// A remote FC port seen by one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePort {
    /// `rport-H:B-R`.
    pub name: String,
    pub host: u32,
    /// B: the SCSI channel of its target.
    pub channel: u32,
    pub port_name: Wwpn,
    /// `Online`, `Blocked`, `Not Present`, …
    pub port_state: String,
    pub roles: String,
    /// The SCSI target id (T of `H:C:T:L`); `None` for `-1` (not a SCSI target,
    /// or not (yet) scanned as one).
    pub scsi_target_id: Option<u32>,
}

/// `rport-H:B-R` → (H, B).
fn split_rport(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("rport-")?;
    let (hb, r) = rest.split_once('-')?;
    let (h, b) = hb.split_once(':')?;
    let num = |x: &str| {
        (!x.is_empty() && x.len() <= 10 && x.bytes().all(|c| c.is_ascii_digit()))
            .then(|| x.parse::<u32>().ok())
            .flatten()
    };
    num(r)?;
    Some((num(h)?, num(b)?))
}

/// The remote ports of host `host` (`/sys/class/fc_remote_ports/rport-H:*`).
pub fn remote_ports(paths: &HostPaths, host: u32) -> Result<Vec<RemotePort>, HostError> {
    let class = paths.sys("class/fc_remote_ports");
    let mut out = Vec::new();
    for name in paths.list_prefixed(&class, &format!("rport-{host}:"))? {
        let Some((h, channel)) = split_rport(&name) else {
            continue;
        };
        if h != host {
            continue;
        }
        let dir = class.join(component(&name)?);
        let Some(port_name) = wwpn_attr(paths, &dir, "port_name")? else {
            continue;
        };
        let attr = |a: &str| -> Result<String, HostError> {
            Ok(paths
                .read_attr(&dir.join(a))?
                .unwrap_or_default()
                .trim()
                .to_owned())
        };
        let scsi_target_id = attr("scsi_target_id")?
            .parse::<i64>()
            .ok()
            .and_then(|t| u32::try_from(t).ok());
        out.push(RemotePort {
            port_state: attr("port_state")?,
            roles: attr("roles")?,
            name,
            host,
            channel,
            port_name,
            scsi_target_id,
        });
    }
    Ok(out)
}

/// The SCSI (channel, target id) under which host `host` sees target port `wwpn`:
/// from `/sys/class/fc_transport/targetH:C:T/port_name`, else from the remote
/// port's `scsi_target_id` (os-brick's two lookups, without grep or a shell).
pub fn target_ids(
    paths: &HostPaths,
    host: u32,
    wwpn: Wwpn,
) -> Result<Option<(u32, u32)>, HostError> {
    let class = paths.sys("class/fc_transport");
    for name in paths.list_prefixed(&class, &format!("target{host}:"))? {
        let Some(rest) = name.strip_prefix("target") else {
            continue;
        };
        let ids: Vec<Option<u32>> = rest.split(':').map(|x| x.parse().ok()).collect();
        let [Some(h), Some(c), Some(t)] = ids.as_slice() else {
            continue;
        };
        if *h != host {
            continue;
        }
        if wwpn_attr(paths, &class.join(component(&name)?), "port_name")? == Some(wwpn) {
            return Ok(Some((*c, *t)));
        }
    }
    Ok(remote_ports(paths, host)?
        .into_iter()
        .find(|r| r.port_name == wwpn)
        .and_then(|r| r.scsi_target_id.map(|t| (r.channel, t))))
}

/// The HCTL at which `hba` would see `target`, if the target port is visible.
pub fn hctl_of(
    paths: &HostPaths,
    hba: &FcHost,
    target: &FcTarget,
) -> Result<Option<Hctl>, HostError> {
    Ok(
        target_ids(paths, hba.host, target.wwpn)?.map(|(channel, t)| Hctl {
            host: hba.host,
            channel,
            target: t,
            lun: target.lun.get(),
        }),
    )
}

/// The by-path name udev gives the disk of `target` on `hba`
/// (`/dev/disk/by-path/pci-0000:05:00.2-fc-0x…-lun-1`), when the HBA has one.
pub fn by_path_name(hba: &FcHost, target: &FcTarget) -> Option<String> {
    Some(format!(
        "/dev/disk/by-path/{}-fc-{}-lun-{}",
        hba.by_path_prefix()?,
        target.wwpn.sysfs_form(),
        target.lun.by_path_id()
    ))
}

/// Whether the SCSI device `hctl` sits under a remote FC port (its sysfs path goes
/// through `rport-*`): the transport of a disk, without its by-path name.
pub fn is_fc_device(paths: &HostPaths, hctl: Hctl) -> Result<bool, HostError> {
    Ok(paths
        .resolve(&paths.sys(&format!("bus/scsi/devices/{hctl}")))?
        .is_some_and(|p| {
            p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("rport-"))
        }))
}

#[cfg(test)]
#[path = "sysfs_tests.rs"]
mod tests;
