use super::*;
use crate::host::fixture::Tree;
use crate::transport::fc::test_support::*;
use crate::types::Lun;

fn tree() -> (tempfile::TempDir, Tree) {
    let d = tempfile::tempdir().unwrap();
    let t = Tree::new(d.path().join("root"));
    (d, t)
}

fn w(s: &str) -> Wwpn {
    s.parse().unwrap()
}

#[test]
fn hbas_with_state_and_by_path_prefix() {
    let (_d, t) = tree();
    dual_fabric(&t);
    add_fc_host(
        &t,
        "virtual/net/fcA0/ctlr_0",
        7,
        "2000020000000001",
        "Linkdown",
    );
    let hbas = fc_hosts(&t.paths()).unwrap();
    let names: Vec<(u32, String, bool)> = hbas
        .iter()
        .map(|h| (h.host, h.port_name.to_string(), h.online()))
        .collect();
    assert_eq!(
        names,
        [
            (5, HBA1.to_string(), true),
            (6, HBA2.to_string(), true),
            (7, "2000020000000001".to_string(), false)
        ]
    );
    assert_eq!(
        hbas[0].by_path_prefix().as_deref(),
        Some("pci-0000:05:00.2")
    );
    assert_eq!(
        hbas[1].by_path_prefix().as_deref(),
        Some("pci-0000:05:00.3")
    );
    // FCoE over a (virtual) interface: no by-path name.
    assert_eq!(hbas[2].by_path_prefix(), None);
}

#[test]
fn by_path_prefixes_match_os_brick() {
    // The vectors of os-brick's `_get_pci_num` (reference data fc_sysfs.json).
    for (path, want) in [
        (
            "/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.3/host2/fc_host/host2",
            Some("pci-0000:05:00.3"),
        ),
        (
            "/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.3/0000:06:00.6/host2/fc_host/host2",
            Some("pci-0000:06:00.6"),
        ),
        (
            "/sys/devices/pci0000:20/0000:20:03.0/0000:21:00.2/net/ens2f2/ctlr_2/host3/fc_host/host3",
            Some("pci-0000:21:00.2"),
        ),
        (
            "/sys/devices/platform/smb/smb:motherboard/80040000000.peu0-c0/pci0000:00/0000:00:03.0/0000:05:00.3/host2/fc_host/host2",
            Some("platform-80040000000.peu0-c0-pci-0000:05:00.3"),
        ),
        (
            "/sys/devices/css0/0.0.0010/0.0.1900/host0/fc_host/host0",
            Some("ccw-0.0.1900"),
        ),
        (
            "/sys/devices/virtual/net/fcA0/ctlr_0/host2/fc_host/host2",
            None,
        ),
        ("sys/devices/x/fc_host/host2", None),
    ] {
        assert_eq!(by_path_prefix(path).as_deref(), want, "{path}");
    }
}

#[test]
fn remote_ports_and_target_ids() {
    let (_d, t) = tree();
    dual_fabric(&t);
    // A remote port that is not a SCSI target (another initiator on the fabric).
    add_rport(&t, 5, (0, 4), "2100001b32000001", None);
    let p = t.paths();
    let rports = remote_ports(&p, 5).unwrap();
    assert_eq!(rports.len(), 3);
    let r = rports.iter().find(|r| r.name == "rport-5:0-2").unwrap();
    assert_eq!(
        (r.channel, r.port_name, r.scsi_target_id, r.roles.as_str()),
        (0, w(TGT1), Some(0), "FCP Target")
    );
    assert_eq!(
        rports
            .iter()
            .find(|r| r.name == "rport-5:0-4")
            .unwrap()
            .scsi_target_id,
        None
    );
    assert_eq!(target_ids(&p, 5, w(TGT2)).unwrap(), Some((0, 1)));
    assert_eq!(target_ids(&p, 6, w(TGT1)).unwrap(), Some((0, 0)));
    assert_eq!(target_ids(&p, 5, w("2100001b32000001")).unwrap(), None);
    assert_eq!(target_ids(&p, 5, w("5000000000000009")).unwrap(), None);
    // Without the fc_transport class (older kernels, or a target being set up) the
    // remote port's scsi_target_id answers.
    t.remove("sys/class/fc_transport/target5:0:1");
    assert_eq!(target_ids(&p, 5, w(TGT2)).unwrap(), Some((0, 1)));
}

#[test]
fn luns_by_path_names_and_transport() {
    let (_d, t) = tree();
    dual_fabric(&t);
    let hba = fc_hosts(&t.paths()).unwrap().remove(0);
    let tg = FcTarget {
        wwpn: w(TGT1),
        lun: Lun(1),
    };
    let hctl = hctl_of(&t.paths(), &hba, &tg).unwrap().unwrap();
    assert_eq!(hctl.to_string(), "5:0:0:1");
    assert_eq!(
        by_path_name(&hba, &tg).as_deref(),
        Some("/dev/disk/by-path/pci-0000:05:00.2-fc-0x20210002ac00383d-lun-1")
    );
    let big = FcTarget {
        wwpn: w(TGT1),
        lun: Lun(16384 + 300),
    };
    assert_eq!(
        by_path_name(&hba, &big).as_deref(),
        Some("/dev/disk/by-path/pci-0000:05:00.2-fc-0x20210002ac00383d-lun-0x412c000000000000")
    );
    assert!(!is_fc_device(&t.paths(), hctl).unwrap());
    add_fc_lun(&t, hctl, "sdc", "8:32", RAW_WWID, None);
    assert!(is_fc_device(&t.paths(), hctl).unwrap());
    assert!(t.exists("sys/block/sdc/device/wwid"));
}
