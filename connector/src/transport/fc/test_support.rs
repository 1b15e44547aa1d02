//! Kernel-shaped Fibre Channel sysfs for tests, built on [`Tree`] the way
//! `scsi_transport_fc` creates it (see [`super::sysfs`]): an HBA under its PCI
//! function (or CCW device), remote ports under the host, SCSI targets under their
//! remote port, disks under their target.

use std::fs;
use std::path::PathBuf;

use crate::host::fixture::{Tree, by_id_links, symlink, write};
use crate::host::scsi::Hctl;

/// The HBA parent of two-port test hosts: two functions of one PCI card.
pub(crate) const PCI_A: &str = "pci0000:00/0000:00:03.0/0000:05:00.2";
pub(crate) const PCI_B: &str = "pci0000:00/0000:00:03.0/0000:05:00.3";

/// Initiator port names of the test HBAs.
pub(crate) const HBA1: &str = "100010604b019419";
pub(crate) const HBA2: &str = "100010604b01941a";
/// Target port names (two ports of one array).
pub(crate) const TGT1: &str = "20210002ac00383d";
pub(crate) const TGT2: &str = "20220002ac00383d";
/// The volume's WWID as the kernel prints it, and in udev form.
pub(crate) const RAW_WWID: &str = "naa.60002ac0000000000000000000013a1b";
pub(crate) const WWID: &str = "360002ac0000000000000000000013a1b";

fn host_dir(t: &Tree, parent: &str, host: u32) -> PathBuf {
    t.path(&format!("sys/devices/{parent}/host{host}"))
}

fn resolved(t: &Tree, rel: &str) -> PathBuf {
    fs::canonicalize(t.path(rel)).expect("no such object in the fixture")
}

/// The kernel registers FC host `hostN` of the HBA at `parent` (under
/// `sys/devices/`) with port name `wwpn` in `state`.
pub(crate) fn add_fc_host(t: &Tree, parent: &str, host: u32, wwpn: &str, state: &str) {
    let dir = host_dir(t, parent, host);
    let scsi_host = dir.join(format!("scsi_host/host{host}"));
    write(&scsi_host.join("proc_name"), "qla2xxx\n");
    write(&scsi_host.join("scan"), "");
    symlink(&scsi_host.join("device"), &dir);
    symlink(
        &t.path(&format!("sys/class/scsi_host/host{host}")),
        &scsi_host,
    );
    let fc = dir.join(format!("fc_host/host{host}"));
    write(&fc.join("port_name"), &format!("0x{wwpn}\n"));
    write(&fc.join("node_name"), &format!("0x2{}\n", &wwpn[1..]));
    write(&fc.join("port_state"), &format!("{state}\n"));
    write(&fc.join("port_id"), "0x010200\n");
    symlink(&t.path(&format!("sys/class/fc_host/host{host}")), &fc);
}

/// `hostN`'s port state changes (`Online`, `Linkdown`).
pub(crate) fn set_port_state(t: &Tree, host: u32, state: &str) {
    let dir = resolved(t, &format!("sys/class/fc_host/host{host}"));
    write(&dir.join("port_state"), &format!("{state}\n"));
}

/// Remote port `rport-H:B-R` with port name `wwpn`; a SCSI target (`target_id`)
/// has its `targetH:B:T` with the fc_transport class.
pub(crate) fn add_rport(
    t: &Tree,
    host: u32,
    (bus, number): (u32, u32),
    wwpn: &str,
    target_id: Option<u32>,
) {
    let hdir = resolved(t, &format!("sys/class/scsi_host/host{host}/device"));
    let name = format!("rport-{host}:{bus}-{number}");
    let dir = hdir.join(&name);
    let class = dir.join(format!("fc_remote_ports/{name}"));
    write(&class.join("port_name"), &format!("0x{wwpn}\n"));
    write(&class.join("node_name"), &format!("0x2ff{}\n", &wwpn[3..]));
    write(&class.join("port_state"), "Online\n");
    write(
        &class.join("roles"),
        if target_id.is_some() {
            "FCP Target\n"
        } else {
            "unknown\n"
        },
    );
    write(
        &class.join("scsi_target_id"),
        &format!("{}\n", target_id.map_or(-1, i64::from)),
    );
    write(&class.join("dev_loss_tmo"), "60\n");
    symlink(
        &t.path(&format!("sys/class/fc_remote_ports/{name}")),
        &class,
    );
    if let Some(tid) = target_id {
        let tdir = dir.join(format!("target{host}:{bus}:{tid}"));
        let tc = tdir.join(format!("fc_transport/target{host}:{bus}:{tid}"));
        write(&tc.join("port_name"), &format!("0x{wwpn}\n"));
        write(&tc.join("port_id"), "0x010300\n");
        symlink(
            &t.path(&format!("sys/class/fc_transport/target{host}:{bus}:{tid}")),
            &tc,
        );
    }
}

/// The remote port's state (`Blocked` after a link loss, …).
pub(crate) fn set_rport_state(t: &Tree, rport: &str, state: &str) {
    let dir = resolved(t, &format!("sys/class/fc_remote_ports/{rport}"));
    write(&dir.join("port_state"), &format!("{state}\n"));
}

/// A scan finds LUN `hctl` behind its remote port: SCSI device, block device
/// `name` (`devnum`), WWID and udev's node and links (a by-path link only when
/// `by_path` is given: udev makes none for FCoE).
pub(crate) fn add_fc_lun(
    t: &Tree,
    hctl: Hctl,
    name: &str,
    devnum: &str,
    raw_wwid: &str,
    by_path: Option<&str>,
) {
    add_fc_scsi_device(t, hctl);
    t.add_block(hctl, name, devnum);
    t.set_wwid(hctl, raw_wwid);
    let mut links = by_id_links(raw_wwid);
    if let Some(p) = by_path {
        links.push(format!("by-path/{p}"));
    }
    t.udev_add(name, devnum, &links);
}

/// The SCSI device `hctl` under its remote port's target, without a block device
/// (sd has not bound it yet, or it went away).
pub(crate) fn add_fc_scsi_device(t: &Tree, hctl: Hctl) {
    let target = resolved(
        t,
        &format!(
            "sys/class/fc_transport/target{}:{}:{}",
            hctl.host, hctl.channel, hctl.target
        ),
    );
    let sd = target
        .parent()
        .and_then(|p| p.parent())
        .expect("fc_transport/targetH:C:T inside targetH:C:T")
        .join(hctl.to_string());
    write(&sd.join("state"), "running\n");
    symlink(&t.path(&format!("sys/bus/scsi/devices/{hctl}")), &sd);
}

/// A two-HBA host, both ports online, each seeing both array ports as SCSI
/// targets (channel 0, targets 0 and 1): the usual dual-fabric layout.
pub(crate) fn dual_fabric(t: &Tree) {
    add_fc_host(t, PCI_A, 5, HBA1, "Online");
    add_fc_host(t, PCI_B, 6, HBA2, "Online");
    for host in [5, 6] {
        add_rport(t, host, (0, 2), TGT1, Some(0));
        add_rport(t, host, (0, 3), TGT2, Some(1));
    }
}

/// The zFCP adapters of the s390x test hosts, and their channel paths.
pub(crate) const ZFCP_A: &str = "0.0.1900";
pub(crate) const ZFCP_B: &str = "0.0.1940";
/// A DS8000-style target port.
pub(crate) const DS8K: &str = "500507630b1b41c3";

fn ccw_parent(busid: &str) -> String {
    format!("css0/0.0.00{}/{busid}", &busid[4..6])
}

/// The zfcp driver runs CCW device `busid` as FC host `hostN` (online; an NPIV
/// virtual port or not), the way `zfcp_ccw.c`/`zfcp_scsi.c` lay it out.
pub(crate) fn add_zfcp_adapter(t: &Tree, busid: &str, host: u32, wwpn: &str, npiv: bool) {
    let parent = ccw_parent(busid);
    add_fc_host(t, &parent, host, wwpn, "Online");
    let fc = t.path(&format!(
        "sys/devices/{parent}/host{host}/fc_host/host{host}"
    ));
    write(
        &fc.join("port_type"),
        if npiv {
            "NPIV VPORT\n"
        } else {
            "NPort (fabric via point-to-point)\n"
        },
    );
    let dev = t.path(&format!("sys/devices/{parent}"));
    write(&dev.join("online"), "1\n");
    write(&dev.join("failed"), "0\n");
    write(&dev.join("in_recovery"), "0\n");
    write(&dev.join("port_rescan"), "");
    write(&dev.join("port_remove"), "");
    write(&dev.join("cutype"), "1731/03\n");
    symlink(&t.path(&format!("sys/bus/ccw/drivers/zfcp/{busid}")), &dev);
    symlink(&t.path(&format!("sys/bus/ccw/devices/{busid}")), &dev);
}

/// zfcp opens remote port `wwpn` on `busid` (after a port scan): its directory.
pub(crate) fn add_zfcp_port(t: &Tree, busid: &str, wwpn: &str) {
    let dir = t.path(&format!("sys/bus/ccw/drivers/zfcp/{busid}/0x{wwpn}"));
    write(&dir.join("failed"), "0\n");
    write(&dir.join("in_recovery"), "0\n");
    write(&dir.join("unit_add"), "");
    write(&dir.join("unit_remove"), "");
}

/// `unit_add` of FCP LUN `fcp_lun` on the port: the unit directory (`failed`).
pub(crate) fn add_zfcp_unit(t: &Tree, busid: &str, wwpn: &str, fcp_lun: &str, failed: bool) {
    let dir = t.path(&format!(
        "sys/bus/ccw/drivers/zfcp/{busid}/0x{wwpn}/{fcp_lun}"
    ));
    write(&dir.join("failed"), if failed { "1\n" } else { "0\n" });
    write(&dir.join("in_recovery"), "0\n");
    write(&dir.join("access_denied"), "0\n");
}

/// zfcp's error recovery gives up on adapter `busid` (`failed` 1, as after a
/// channel path loss it could not recover from).
pub(crate) fn fail_zfcp_adapter(t: &Tree, busid: &str) {
    write(
        &t.path(&format!("sys/bus/ccw/drivers/zfcp/{busid}/failed")),
        "1\n",
    );
}

/// zfcp's error recovery gives up on remote port `wwpn` of `busid` (`failed` 1:
/// the port could not be opened, e.g. not zoned or logged out for good).
pub(crate) fn fail_zfcp_port(t: &Tree, busid: &str, wwpn: &str) {
    write(
        &t.path(&format!("sys/bus/ccw/drivers/zfcp/{busid}/0x{wwpn}/failed")),
        "1\n",
    );
}

/// `unit_remove` as the zfcp driver and moord's guard (`ZfcpUnitUnused`) do it:
/// refused while a SCSI device of the unit is left, else the unit directory goes.
pub(crate) fn zfcp_unit_remove(t: &Tree, args: &serde_json::Value) -> Result<(), String> {
    let field = |k: &str| args[k].as_str().unwrap_or_default().to_owned();
    let (busid, wwpn, lun) = (field("busid"), field("wwpn"), field("fcp_lun"));
    let devices = t.path("sys/bus/scsi/devices");
    for e in fs::read_dir(&devices).into_iter().flatten().flatten() {
        let attr = |a: &str| {
            fs::read_to_string(e.path().join(a))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        if attr("hba_id") == busid && attr("wwpn") == format!("0x{wwpn}") && attr("fcp_lun") == lun
        {
            return Err(format!(
                "{}: is a SCSI device of the unit",
                e.file_name().to_string_lossy()
            ));
        }
    }
    let unit = format!("sys/bus/ccw/drivers/zfcp/{busid}/0x{wwpn}/{lun}");
    if !t.exists(&unit) {
        return Err(format!("{unit}: no such unit"));
    }
    t.remove(&unit);
    Ok(())
}

/// The zfcp identity attributes of SCSI device `hctl` (what zfcp adds to every
/// disk it creates).
pub(crate) fn set_zfcp_ids(t: &Tree, hctl: Hctl, busid: &str, wwpn: &str, fcp_lun: &str) {
    let dir = resolved(t, &format!("sys/bus/scsi/devices/{hctl}"));
    write(&dir.join("hba_id"), &format!("{busid}\n"));
    write(&dir.join("wwpn"), &format!("0x{wwpn}\n"));
    write(&dir.join("fcp_lun"), &format!("{fcp_lun}\n"));
    write(&dir.join("zfcp_failed"), "0\n");
}
