use super::*;
use crate::host::fixture::{Tree, write};
use crate::transport::fc::sysfs::fc_hosts;
use crate::transport::fc::test_support::*;
use crate::types::Lun;

fn tree() -> (tempfile::TempDir, Tree) {
    let d = tempfile::tempdir().unwrap();
    let t = Tree::new(d.path().join("root"));
    (d, t)
}

#[test]
fn adapters_ports_and_units() {
    let (_d, t) = tree();
    add_zfcp_adapter(&t, ZFCP_A, 0, "c05076ffe5005611", true);
    add_zfcp_adapter(&t, ZFCP_B, 1, "c05076ffe5005612", false);
    let p = t.paths();
    let hbas = fc_hosts(&p).unwrap();
    assert_eq!(hbas[0].by_path_prefix().as_deref(), Some("ccw-0.0.1900"));
    let a = adapter(&p, &hbas[0]).unwrap().unwrap();
    assert_eq!(a.busid.to_string(), ZFCP_A);
    assert!(a.online && a.npiv);
    let b = adapter(&p, &hbas[1]).unwrap().unwrap();
    assert!(!b.npiv);
    // Automatic LUN scan: NPIV and allow_lun_scan (default Y when absent).
    assert!(auto_lun_scan(&p, &a).unwrap());
    assert!(!auto_lun_scan(&p, &b).unwrap());
    write(&t.path("sys/module/zfcp/parameters/allow_lun_scan"), "N\n");
    assert!(!auto_lun_scan(&p, &a).unwrap());

    let w: Wwpn = DS8K.parse().unwrap();
    assert!(!port_known(&p, a.busid, w).unwrap());
    add_zfcp_port(&t, ZFCP_A, DS8K);
    assert!(port_known(&p, a.busid, w).unwrap());
    let lun = FcpLun::from_linux(Lun(0x400a_4020));
    assert_eq!(unit(&p, a.busid, w, lun).unwrap(), None);
    add_zfcp_unit(&t, ZFCP_A, DS8K, "0x4020400a00000000", false);
    assert_eq!(unit(&p, a.busid, w, lun).unwrap(), Some(Unit::Ready));
    add_zfcp_unit(&t, ZFCP_A, DS8K, "0x4021400a00000000", true);
    let other = "0x4021400a00000000".parse().unwrap();
    assert_eq!(unit(&p, a.busid, w, other).unwrap(), Some(Unit::Failed));
}

#[test]
fn an_x86_hba_is_no_zfcp_adapter() {
    let (_d, t) = tree();
    dual_fabric(&t);
    let hbas = fc_hosts(&t.paths()).unwrap();
    assert_eq!(adapter(&t.paths(), &hbas[0]).unwrap(), None);
}

#[test]
fn the_three_by_path_forms() {
    let target = FcTarget {
        wwpn: DS8K.parse().unwrap(),
        lun: Lun(2),
    };
    // reference data fc_sysfs.json, s390x (devno 0.0.1900, lun 2).
    assert_eq!(
        by_path_names(ZFCP_A.parse().unwrap(), &target),
        [
            "/dev/disk/by-path/ccw-0.0.1900-fc-0x500507630b1b41c3-lun-2",
            "/dev/disk/by-path/ccw-0.0.1900-fc-0x500507630b1b41c3-lun-0x0002000000000000",
            "/dev/disk/by-path/ccw-0.0.1900-zfcp-0x500507630b1b41c3:0x0002000000000000",
        ]
    );
}

#[test]
fn a_disks_unit() {
    let (_d, t) = tree();
    add_zfcp_adapter(&t, ZFCP_A, 0, "c05076ffe5005611", false);
    add_rport(&t, 0, (0, 0), DS8K, Some(0));
    let h: Hctl = "0:0:0:1073758208".parse().unwrap();
    add_fc_lun(&t, h, "sda", "8:0", RAW_WWID, None);
    assert_eq!(device_unit(&t.paths(), h).unwrap(), None);
    set_zfcp_ids(&t, h, ZFCP_A, DS8K, "0x4000400000000000");
    let (b, w, l) = device_unit(&t.paths(), h).unwrap().unwrap();
    assert_eq!(
        (b.to_string(), w.to_string(), l.to_string()),
        (ZFCP_A.into(), DS8K.into(), "0x4000400000000000".into())
    );
    // The kernel's mapping: FCP LUN 0x4000400000000000 is Linux LUN 0x40004000.
    assert_eq!(l.to_linux(), Lun(1_073_758_208));
}

#[test]
fn failed_adapters_and_ports() {
    let (_d, t) = tree();
    add_zfcp_adapter(&t, ZFCP_A, 0, "c05076ffe5005611", false);
    add_zfcp_port(&t, ZFCP_A, DS8K);
    let p = t.paths();
    let hba = &fc_hosts(&p).unwrap()[0];
    let busid: CcwBusId = ZFCP_A.parse().unwrap();
    let w: Wwpn = DS8K.parse().unwrap();
    assert!(!adapter(&p, hba).unwrap().unwrap().failed);
    assert!(!port_failed(&p, busid, w).unwrap());
    // A port zfcp does not know is not a failed one.
    assert!(!port_failed(&p, busid, "5005076300000001".parse().unwrap()).unwrap());
    fail_zfcp_port(&t, ZFCP_A, DS8K);
    assert!(port_failed(&p, busid, w).unwrap());
    assert!(!adapter(&p, hba).unwrap().unwrap().failed);
    fail_zfcp_adapter(&t, ZFCP_A);
    assert!(adapter(&p, hba).unwrap().unwrap().failed);
}

#[test]
fn the_scsi_devices_of_a_unit() {
    let (_d, t) = tree();
    add_zfcp_adapter(&t, ZFCP_A, 0, "c05076ffe5005611", false);
    add_zfcp_port(&t, ZFCP_A, DS8K);
    add_rport(&t, 0, (0, 0), DS8K, Some(0));
    let p = t.paths();
    let id: UnitId = (
        ZFCP_A.parse().unwrap(),
        DS8K.parse().unwrap(),
        "0x4000400000000000".parse().unwrap(),
    );
    assert_eq!(
        unit_name(id),
        "0.0.1900 0x500507630b1b41c3 0x4000400000000000"
    );
    assert!(unit_devices(&p, id).unwrap().is_empty());
    // A device of another LUN of the port is not the unit's.
    let other: Hctl = "0:0:0:1073758209".parse().unwrap();
    add_fc_lun(&t, other, "sdb", "8:16", RAW_WWID, None);
    set_zfcp_ids(&t, other, ZFCP_A, DS8K, "0x4001400000000000");
    assert!(unit_devices(&p, id).unwrap().is_empty());
    // Its own, with or without a block device.
    let h: Hctl = "0:0:0:1073758208".parse().unwrap();
    add_fc_scsi_device(&t, h);
    set_zfcp_ids(&t, h, ZFCP_A, DS8K, "0x4000400000000000");
    assert_eq!(unit_devices(&p, id).unwrap(), [h]);
}
