//! FC attach, detach and extend on kernel-shaped fixture trees: the scripted moord
//! changes the tree as the kernel would (a scan adds the LUN's disk, a delete
//! removes it).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::exec::{DryRun, Scripted, exec_reply};
use crate::host::fixture::Tree;
use crate::host::udev::ScriptedEvents;
use crate::transport::fc::test_support::*;

struct Env {
    _dir: tempfile::TempDir,
    t: Tree,
    locks: LockDir,
}

fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path().join("root"));
    dual_fabric(&t);
    let locks = LockDir::new(dir.path().join("locks"));
    Env {
        _dir: dir,
        t,
        locks,
    }
}

fn connector<'a>(
    env: &Env,
    p: &'a dyn Privileged,
    e: &'a dyn DeviceEvents,
    multipath: bool,
) -> FcConnector<'a> {
    FcConnector {
        paths: env.t.paths(),
        privileged: p,
        events: e,
        locks: env.locks.clone(),
        registry: Registry::new(env.t.path("run/moor/attachments")),
        options: Options {
            timeout: Duration::from_secs(5),
            multipath,
        },
    }
}

fn props(v: Value) -> FcProps {
    FcProps::from_connection_info(&v).unwrap()
}

/// The volume: LUN 1 behind both array ports.
fn volume() -> FcProps {
    props(json!({"target_wwns": [TGT1, TGT2], "target_lun": 1, "volume_id": "v1"}))
}

fn hctl(s: &str) -> Hctl {
    s.parse().unwrap()
}

fn scan_args(h: &str) -> Value {
    let h = hctl(h);
    json!({"host": h.host, "channel": h.channel, "target": h.target, "lun": h.lun})
}

/// `scsi.scan` of `at`: the LUN's disk `name` appears (kernel, sd and udev).
fn scan_adds(
    t: &Tree,
    at: &'static str,
    name: &'static str,
    devnum: &'static str,
    raw: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_| {
        add_fc_lun(&t, hctl(at), name, devnum, raw, None);
        Ok(json!({}))
    }
}

/// `scsi.delete` of a disk: the kernel and udev remove it.
fn deletes(
    t: &Tree,
    at: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_| {
        if let Some((name, devnum)) = t.remove_lun(hctl(at)) {
            t.udev_remove(&name, &devnum);
        }
        Ok(json!({}))
    }
}

fn ok(_: &Value) -> Result<Value, PrivError> {
    Ok(exec_reply(0, "", ""))
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

#[test]
fn single_path_scans_one_path() {
    let env = setup();
    let moord = Scripted::new().expect_args(
        "scsi.scan",
        scan_args("5:0:0:1"),
        scan_adds(&env.t, "5:0:0:1", "sdc", "8:32", RAW_WWID),
    );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&volume())
        .unwrap();
    assert_eq!(
        info,
        DeviceInfo {
            kind: "block".into(),
            path: "/dev/sdc".into(),
            scsi_wwn: WWID.into(),
            multipath_id: None,
            devices: vec!["sdc 5:0:0:1".into()],
        }
    );
    assert_eq!(ops(&moord), ["scsi.scan"]);
    let rec = Registry::new(env.t.path("run/moor/attachments"))
        .get("sdc")
        .unwrap();
    assert_eq!(
        (rec.protocol.as_str(), rec.wwid.as_str()),
        ("fibre_channel", WWID)
    );
}

#[test]
fn multipath_scans_every_path_and_builds_the_map() {
    let env = setup();
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("multipath.status", ok)
        .expect_args(
            "scsi.scan",
            scan_args("5:0:0:1"),
            scan_adds(&env.t, "5:0:0:1", "sdc", "8:32", RAW_WWID),
        )
        .expect_args(
            "scsi.scan",
            scan_args("5:0:1:1"),
            scan_adds(&env.t, "5:0:1:1", "sdd", "8:48", RAW_WWID),
        )
        .expect_args(
            "scsi.scan",
            scan_args("6:0:0:1"),
            scan_adds(&env.t, "6:0:0:1", "sde", "8:64", RAW_WWID),
        )
        .expect_args(
            "scsi.scan",
            scan_args("6:0:1:1"),
            scan_adds(&env.t, "6:0:1:1", "sdf", "8:80", RAW_WWID),
        )
        .expect("multipath.add_wwid", ok)
        .expect("multipath.add_path", ok)
        .expect("multipath.add_path", ok)
        .expect("multipath.add_path", ok)
        .expect("multipath.add_path", move |_| {
            t.add_multipath_map("dm-0", "253:0", WWID, WWID, &["sdc", "sdd", "sde", "sdf"]);
            Ok(exec_reply(0, "", ""))
        })
        .expect("multipath.check", ok);
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, true)
        .connect(&volume())
        .unwrap();
    assert_eq!(info.path, "/dev/dm-0");
    assert_eq!(info.multipath_id.as_deref(), Some(WWID));
    assert_eq!(info.devices.len(), 4);
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
}

#[test]
fn the_initiator_target_map_picks_hbas_and_ports() {
    let env = setup();
    let p = props(json!({"target_wwns": [TGT1, TGT2], "target_luns": [1, 1],
        "initiator_target_map": {HBA2: [TGT2]}}));
    let moord = Scripted::new().expect_args(
        "scsi.scan",
        scan_args("6:0:1:1"),
        scan_adds(&env.t, "6:0:1:1", "sdc", "8:32", RAW_WWID),
    );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false).connect(&p).unwrap();
    assert_eq!(info.devices, ["sdc 6:0:1:1"]);
}

#[test]
fn no_usable_hba_or_port_scans_nothing() {
    let env = setup();
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events, false);
    // Ports the fabric does not show: no wildcard scan, an error naming them.
    let e = c
        .connect(&props(
            json!({"target_wwn": "5000000000000009", "target_lun": 1}),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, FcError::NoTargetPort { targets, .. } if targets == "5000000000000009"),
        "{e}"
    );
    // An initiator_target_map naming HBAs this host does not have.
    let e = c
        .connect(&props(
            json!({"target_wwn": TGT1, "initiator_target_map": {"1000000000000001": [TGT1]}}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("in the initiator_target_map"), "{e}");
    // Every HBA down.
    set_port_state(&env.t, 5, "Linkdown");
    set_port_state(&env.t, 6, "Linkdown");
    let e = c.connect(&volume()).unwrap_err();
    assert!(
        e.to_string().contains("host5 100010604b019419 Linkdown"),
        "{e}"
    );
    assert!(moord.calls().is_empty());
}

#[test]
fn wildcard_scan_only_when_asked_and_nothing_is_visible() {
    let env = setup();
    // Host 5 knows a remote port with another name; the array's port is not
    // visible as a SCSI target anywhere until a scan of every target finds it.
    let t = env.t.clone();
    let p = props(json!({"target_wwn": "5000000000000009", "target_lun": 4,
                         "enable_wildcard_scan": true}));
    let moord = Scripted::new()
        .expect_args(
            "scsi.scan_all_targets",
            json!({"host": 5, "lun": 4}),
            move |_| {
                add_rport(&t, 5, (0, 7), "5000000000000009", Some(2));
                add_fc_lun(&t, hctl("5:0:2:4"), "sdg", "8:96", RAW_WWID, None);
                // Another target's LUN 4 comes with it (why it is off by default).
                add_fc_lun(
                    &t,
                    hctl("5:0:0:4"),
                    "sdh",
                    "8:112",
                    "naa.6000000000000000000000000000beef",
                    None,
                );
                Ok(json!({}))
            },
        )
        .expect_args(
            "scsi.scan_all_targets",
            json!({"host": 6, "lun": 4}),
            |_| Ok(json!({})),
        )
        .expect("scsi.rescan", |_| Ok(json!({})));
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false).connect(&p).unwrap();
    assert_eq!(info.devices, ["sdg 5:0:2:4"]);
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
    // Without the flag: an error, no scan.
    let moord = Scripted::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&props(
            json!({"target_wwn": "5000000000000008", "target_lun": 4}),
        ))
        .unwrap_err();
    assert!(matches!(e, FcError::NoTargetPort { .. }), "{e}");
    assert!(moord.calls().is_empty());
}

#[test]
fn a_path_without_the_lun_falls_through_to_the_next() {
    let env = setup();
    // The first port does not present the LUN (the scan adds nothing); the
    // second does.
    let moord = Scripted::new()
        .unordered()
        .expect_args("scsi.scan", scan_args("5:0:0:1"), |_| Ok(json!({})))
        .expect_args("scsi.scan", scan_args("5:0:0:1"), |_| Ok(json!({})))
        .expect_args("scsi.scan", scan_args("5:0:0:1"), |_| Ok(json!({})))
        .expect_args(
            "scsi.scan",
            scan_args("5:0:1:1"),
            scan_adds(&env.t, "5:0:1:1", "sdd", "8:48", RAW_WWID),
        );
    let events = ScriptedEvents::new();
    let mut c = connector(&env, &moord, &events, false);
    c.options.timeout = Duration::from_millis(2500);
    let info = c.connect(&volume()).unwrap();
    assert_eq!(info.devices, ["sdd 5:0:1:1"]);
}

#[test]
fn a_blocked_remote_port_is_not_scanned() {
    let env = setup();
    // Fabric A lost the link to the first array port.
    set_rport_state(&env.t, "rport-5:0-2", "Blocked");
    let moord = Scripted::new().expect_args(
        "scsi.scan",
        scan_args("5:0:1:1"),
        scan_adds(&env.t, "5:0:1:1", "sdd", "8:48", RAW_WWID),
    );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&volume())
        .unwrap();
    assert_eq!(info.devices, ["sdd 5:0:1:1"]);
    // Only that port, on both fabrics blocked: nothing to scan, and the error says why.
    set_rport_state(&env.t, "rport-6:0-2", "Blocked");
    let e = connector(&env, &Scripted::new(), &events, false)
        .connect(&props(json!({"target_wwn": TGT1, "target_lun": 2})))
        .unwrap_err();
    assert!(e.to_string().contains("rport-5:0-2 Blocked"), "{e}");
}

#[test]
fn paths_with_different_volumes_are_refused_and_removed() {
    let env = setup();
    let moord = Scripted::new()
        .expect("multipath.status", ok)
        .expect(
            "scsi.scan",
            scan_adds(&env.t, "5:0:0:1", "sdc", "8:32", RAW_WWID),
        )
        .expect(
            "scsi.scan",
            scan_adds(
                &env.t,
                "5:0:1:1",
                "sdd",
                "8:48",
                "naa.60002ac0000000000000000000099999",
            ),
        )
        .expect(
            "scsi.scan",
            scan_adds(&env.t, "6:0:0:1", "sde", "8:64", RAW_WWID),
        )
        .expect(
            "scsi.scan",
            scan_adds(&env.t, "6:0:1:1", "sdf", "8:80", RAW_WWID),
        )
        .unordered()
        .expect("scsi.delete", deletes(&env.t, "5:0:0:1"))
        .expect("scsi.delete", deletes(&env.t, "5:0:1:1"))
        .expect("scsi.delete", deletes(&env.t, "6:0:0:1"))
        .expect("scsi.delete", deletes(&env.t, "6:0:1:1"));
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, true)
        .connect(&volume())
        .unwrap_err();
    assert!(e.to_string().contains("do not agree"), "{e}");
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
    assert!(!env.t.exists("sys/block/sdc"));
}

#[test]
fn a_stale_disk_at_the_lun_is_not_handed_out() {
    let env = setup();
    // A disk left at the LUN; moor's record says it handed out another volume there.
    add_fc_lun(&env.t, hctl("5:0:0:1"), "sdc", "8:32", RAW_WWID, None);
    let reg = Registry::new(env.t.path("run/moor/attachments"));
    reg.record(&Attachment {
        device: "sdc".into(),
        wwid: "360002ac0000000000000000000000001".into(),
        sysfs_ino: device_ino(&env.t.paths(), "sdc").unwrap().unwrap(),
        protocol: "fibre_channel".into(),
        target: "old".into(),
        volume_id: Some("old-volume".into()),
        attached_at: 0,
    })
    .unwrap();
    let moord = Scripted::new().expect("scsi.rescan", |_| Ok(json!({})));
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&volume())
        .unwrap_err();
    assert!(
        matches!(&e, FcError::Stale(m) if m.contains("old-volume")),
        "{e}"
    );
}

#[test]
fn dry_run_plans_the_scan() {
    let env = setup();
    let dry = DryRun::new();
    let events = ScriptedEvents::new();
    let e = connector(&env, &dry, &events, false)
        .connect(&volume())
        .unwrap_err();
    assert!(matches!(e, FcError::DryRun(_)), "{e}");
    let planned = dry.planned();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert!(planned[0].contains("scsi.scan"), "{planned:?}");
    assert!(!env.t.exists("sys/block/sdc"));
}

fn attached(env: &Env) -> DeviceInfo {
    let moord = Scripted::new().expect(
        "scsi.scan",
        scan_adds(&env.t, "5:0:0:1", "sdc", "8:32", RAW_WWID),
    );
    let events = ScriptedEvents::new();
    connector(env, &moord, &events, false)
        .connect(&volume())
        .unwrap()
}

#[test]
fn detach_removes_every_disk_of_the_volume() {
    let env = setup();
    let info = attached(&env);
    // Another path of the volume appeared since (e.g. a rescan): it goes too.
    add_fc_lun(&env.t, hctl("6:0:1:1"), "sdd", "8:48", RAW_WWID, None);
    let moord = Scripted::new()
        .unordered()
        .expect("scsi.rescan", |_| Ok(json!({})))
        .expect("scsi.rescan", |_| Ok(json!({})))
        .expect_args("block.flush", json!({"device": "sdc"}), ok)
        .expect_args("block.flush", json!({"device": "sdd"}), ok)
        .expect_args(
            "scsi.delete",
            json!({"device": "sdc"}),
            deletes(&env.t, "5:0:0:1"),
        )
        .expect_args(
            "scsi.delete",
            json!({"device": "sdd"}),
            deletes(&env.t, "6:0:1:1"),
        );
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, false)
        .disconnect(&volume(), &info, false, false)
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.removed, ["sdc", "sdd"]);
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
    assert!(!env.t.exists("run/moor/attachments/sdc.json"));
}

#[test]
fn detach_leaves_another_volumes_disk_at_the_lun() {
    let env = setup();
    let info = attached(&env);
    // The array mapped another volume at the same LUN behind the other port.
    add_fc_lun(
        &env.t,
        hctl("5:0:1:1"),
        "sdd",
        "8:48",
        "naa.60002ac0000000000000000000099999",
        None,
    );
    let moord = Scripted::new()
        .expect("scsi.rescan", |_| Ok(json!({})))
        .expect_args("block.flush", json!({"device": "sdc"}), ok)
        .expect_args(
            "scsi.delete",
            json!({"device": "sdc"}),
            deletes(&env.t, "5:0:0:1"),
        );
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .disconnect(&volume(), &info, false, false)
        .unwrap_err();
    let FcError::Incomplete(out) = e else {
        panic!("{e}")
    };
    assert_eq!(out.removed, ["sdc"]);
    assert_eq!(out.leftovers[0].what, "/dev/sdd");
    assert!(out.leftovers[0].reason.contains("another volume's device"));
    assert!(env.t.exists("sys/block/sdd"));
    // Without a WWID nothing is detached.
    let mut bad = info.clone();
    bad.scsi_wwn.clear();
    assert!(matches!(
        connector(&env, &moord, &events, false).disconnect(&volume(), &bad, false, false),
        Err(FcError::NoIdentity)
    ));
}

#[test]
fn extend_rescans_and_reports_the_size() {
    let env = setup();
    let info = attached(&env);
    let t = env.t.clone();
    let moord = Scripted::new().expect_args(
        "scsi.rescan",
        json!({"device": "sdc", "expected_wwid": WWID}),
        move |_| {
            crate::host::fixture::write(&t.path("sys/block/sdc/size"), "4194304\n");
            Ok(json!({}))
        },
    );
    let events = ScriptedEvents::new();
    let got = connector(&env, &moord, &events, false)
        .extend(&volume(), &info)
        .unwrap();
    assert_eq!(got.new_size, 4_194_304 * 512);
    assert_eq!(got.path, "/dev/sdc");
    // Paths: no by-path link (an FCoE-like HBA would have none either): /dev/sdc.
    let moord = Scripted::new();
    assert_eq!(
        connector(&env, &moord, &events, false)
            .volume_paths(&volume())
            .unwrap(),
        ["/dev/sdc"]
    );
}

// ---------------------------------------------------------------------------
// s390x zFCP

/// An s390x host: zFCP adapter 0.0.1900 as host0 (NPIV or not), nothing opened.
fn zfcp_setup(npiv: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path().join("root"));
    add_zfcp_adapter(&t, ZFCP_A, 0, "c05076ffe5005611", npiv);
    let locks = LockDir::new(dir.path().join("locks"));
    Env {
        _dir: dir,
        t,
        locks,
    }
}

/// LUN 0x400a4020 (as Linux numbers it) of the DS8000 port.
fn ds8k_volume() -> FcProps {
    props(json!({"target_wwn": DS8K, "target_lun": 0x400a_4020_u64}))
}

const DS8K_HCTL: &str = "0:0:0:1074413600";
const DS8K_FCP: &str = "0x4020400a00000000";

/// The DS8000 volume's hctl on adapter 0.0.1940 (host1).
const DS8K_HCTL_B: &str = "1:0:0:1074413600";

/// An s390x host with both zFCP adapters (host0 and host1, not NPIV), each with
/// the DS8000 port opened.
fn zfcp_two_adapters() -> Env {
    let env = zfcp_setup(false);
    add_zfcp_adapter(&env.t, ZFCP_B, 1, "c05076ffe5005612", false);
    for (busid, host) in [(ZFCP_A, 0), (ZFCP_B, 1)] {
        add_zfcp_port(&env.t, busid, DS8K);
        add_rport(&env.t, host, (0, 0), DS8K, Some(0));
    }
    env
}

/// `<adapter>/0x<wwpn>/<fcp lun>` of the DS8000 port, relative to the tree.
fn unit_rel(busid: &str, fcp_lun: &str) -> String {
    format!("sys/bus/ccw/drivers/zfcp/{busid}/0x{DS8K}/{fcp_lun}")
}

/// The arguments of `zfcp.unit_add`/`unit_remove` for the volume's LUN on `busid`.
fn unit_args(busid: &str) -> Value {
    json!({"busid": busid, "wwpn": DS8K, "fcp_lun": DS8K_FCP})
}

/// `zfcp.unit_add`: zfcp opens the unit and scans the LUN: disk `name` at `at`
/// with the zfcp identity attributes, carrying `raw`.
fn unit_add_scans(
    t: &Tree,
    busid: &'static str,
    at: &'static str,
    name: &'static str,
    raw: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_| {
        add_zfcp_unit(&t, busid, DS8K, DS8K_FCP, false);
        add_fc_lun(&t, hctl(at), name, "8:0", raw, None);
        set_zfcp_ids(&t, hctl(at), busid, DS8K, DS8K_FCP);
        Ok(json!({}))
    }
}

/// `zfcp.unit_add` that opens the unit but the LUN's disk never comes.
fn unit_add_only(
    t: &Tree,
    busid: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_| {
        add_zfcp_unit(&t, busid, DS8K, DS8K_FCP, false);
        Ok(json!({}))
    }
}

/// `zfcp.unit_remove` as moord's guard and the driver do it.
fn unit_remove(t: &Tree) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |args| {
        zfcp_unit_remove(&t, args).map_err(|message| PrivError::Refused {
            op: "zfcp.unit_remove",
            code: "guard".into(),
            message,
        })?;
        Ok(json!({}))
    }
}

/// `zfcp.port_rescan`: zfcp opens the DS8000 port (its directory, the remote port).
fn port_scan_opens(t: &Tree) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |args| {
        assert_eq!(args["busid"], ZFCP_A);
        add_zfcp_port(&t, ZFCP_A, DS8K);
        add_rport(&t, 0, (0, 0), DS8K, Some(0));
        Ok(json!({}))
    }
}

#[test]
fn zfcp_without_lun_scan_opens_the_port_and_adds_the_unit() {
    let env = zfcp_setup(false);
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("zfcp.port_rescan", port_scan_opens(&env.t))
        .expect_args(
            "zfcp.unit_add",
            json!({"busid": ZFCP_A, "wwpn": DS8K, "fcp_lun": DS8K_FCP}),
            move |_| {
                // zfcp opens the unit and scans its LUN itself.
                add_zfcp_unit(&t, ZFCP_A, DS8K, DS8K_FCP, false);
                add_fc_lun(&t, hctl(DS8K_HCTL), "sda", "8:0", RAW_WWID, None);
                set_zfcp_ids(&t, hctl(DS8K_HCTL), ZFCP_A, DS8K, DS8K_FCP);
                Ok(json!({}))
            },
        );
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events, false);
    let info = c.connect(&ds8k_volume()).unwrap();
    assert_eq!(info.devices, [format!("sda {DS8K_HCTL}")]);
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());

    // Detach: the disk goes first, then the unit (moord checks no disk is left).
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("scsi.rescan", |_| Ok(json!({})))
        .expect("block.flush", ok)
        .expect("scsi.delete", deletes(&env.t, DS8K_HCTL))
        .expect_args(
            "zfcp.unit_remove",
            json!({"busid": ZFCP_A, "wwpn": DS8K, "fcp_lun": DS8K_FCP}),
            move |_| {
                assert!(!t.exists("sys/block/sda"), "unit removed before its disk");
                t.remove(&format!(
                    "sys/bus/ccw/drivers/zfcp/{ZFCP_A}/0x{DS8K}/{DS8K_FCP}"
                ));
                Ok(json!({}))
            },
        );
    let out = connector(&env, &moord, &events, false)
        .disconnect(&ds8k_volume(), &info, false, false)
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.removed, ["sda"]);
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
}

#[test]
fn zfcp_npiv_with_lun_scan_needs_no_unit() {
    let env = zfcp_setup(true);
    let moord = Scripted::new()
        .expect("zfcp.port_rescan", port_scan_opens(&env.t))
        .expect_args(
            "scsi.scan",
            scan_args(DS8K_HCTL),
            scan_adds(&env.t, DS8K_HCTL, "sda", "8:0", RAW_WWID),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap();
    assert_eq!(info.path, "/dev/sda");
    assert!(!ops(&moord).contains(&"zfcp.unit_add".to_string()));
    // Detach removes no unit: there is none.
    let moord = Scripted::new()
        .expect("scsi.rescan", |_| Ok(json!({})))
        .expect("block.flush", ok)
        .expect("scsi.delete", deletes(&env.t, DS8K_HCTL));
    connector(&env, &moord, &events, false)
        .disconnect(&ds8k_volume(), &info, false, false)
        .unwrap();
    assert!(moord.unused().is_empty());
}

#[test]
fn zfcp_failed_unit_and_offline_adapter() {
    let env = zfcp_setup(false);
    add_zfcp_port(&env.t, ZFCP_A, DS8K);
    add_rport(&env.t, 0, (0, 0), DS8K, Some(0));
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("zfcp.unit_add", move |_| {
            add_zfcp_unit(&t, ZFCP_A, DS8K, DS8K_FCP, true);
            Ok(json!({}))
        })
        // The failed unit this attach added goes again.
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_A), unit_remove(&env.t));
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(matches!(e, FcError::AllPathsFailed(_)), "{e}");
    assert!(e.to_string().contains("unit failed"), "{e}");
    assert_eq!(ops(&moord), ["zfcp.unit_add", "zfcp.unit_remove"]);
    assert!(!env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
    // An adapter set offline is not used.
    crate::host::fixture::write(
        &env.t
            .path(&format!("sys/bus/ccw/drivers/zfcp/{ZFCP_A}/online")),
        "0\n",
    );
    let e = connector(&env, &Scripted::new(), &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(matches!(e, FcError::NoHba(_)), "{e}");
}

#[test]
fn zfcp_failed_attach_removes_only_the_units_it_added() {
    let env = zfcp_two_adapters();
    // Adapter B has the unit already (configured by someone else); A has none.
    add_zfcp_unit(&env.t, ZFCP_B, DS8K, DS8K_FCP, false);
    // The array does not present the LUN: neither path gets its disk.
    let moord = Scripted::new()
        .expect("multipath.status", ok)
        .expect_args(
            "zfcp.unit_add",
            unit_args(ZFCP_A),
            unit_add_only(&env.t, ZFCP_A),
        )
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_A), unit_remove(&env.t));
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, true)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(matches!(e, FcError::AllPathsFailed(_)), "{e}");
    assert_eq!(
        ops(&moord),
        ["multipath.status", "zfcp.unit_add", "zfcp.unit_remove"]
    );
    assert!(!env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
    assert!(env.t.exists(&unit_rel(ZFCP_B, DS8K_FCP)));
}

#[test]
fn zfcp_paths_disagreeing_undo_disks_then_units() {
    let env = zfcp_two_adapters();
    let moord = Scripted::new()
        .expect("multipath.status", ok)
        .expect_args(
            "zfcp.unit_add",
            unit_args(ZFCP_A),
            unit_add_scans(&env.t, ZFCP_A, DS8K_HCTL, "sda", RAW_WWID),
        )
        .expect_args(
            "zfcp.unit_add",
            unit_args(ZFCP_B),
            unit_add_scans(
                &env.t,
                ZFCP_B,
                DS8K_HCTL_B,
                "sdb",
                "naa.60002ac0000000000000000000099999",
            ),
        )
        .expect_args(
            "scsi.delete",
            json!({"device": "sda"}),
            deletes(&env.t, DS8K_HCTL),
        )
        .expect_args(
            "scsi.delete",
            json!({"device": "sdb"}),
            deletes(&env.t, DS8K_HCTL_B),
        )
        // Only once no SCSI device of the unit is left (the handler checks).
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_A), unit_remove(&env.t))
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_B), unit_remove(&env.t));
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, true)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(
        matches!(&e, FcError::Volume(m) if m.contains("do not agree")),
        "{e}"
    );
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
    for busid in [ZFCP_A, ZFCP_B] {
        assert!(!env.t.exists(&unit_rel(busid, DS8K_FCP)), "{busid}");
    }
    assert!(!env.t.exists("sys/block/sda") && !env.t.exists("sys/block/sdb"));
}

#[test]
fn zfcp_failed_attach_reports_the_units_it_could_not_remove() {
    let env = zfcp_setup(false);
    add_zfcp_port(&env.t, ZFCP_A, DS8K);
    add_rport(&env.t, 0, (0, 0), DS8K, Some(0));
    // The unit's SCSI device comes, but sd never gives it a disk: removing the
    // unit would pull the device, so it is left and reported, and moord is not asked.
    let t = env.t.clone();
    let moord = Scripted::new().expect_args("zfcp.unit_add", unit_args(ZFCP_A), move |_| {
        add_zfcp_unit(&t, ZFCP_A, DS8K, DS8K_FCP, false);
        add_fc_scsi_device(&t, hctl(DS8K_HCTL));
        set_zfcp_ids(&t, hctl(DS8K_HCTL), ZFCP_A, DS8K, DS8K_FCP);
        Ok(json!({}))
    });
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    let FcError::NotUndone { error, left } = &e else {
        panic!("{e}")
    };
    assert!(matches!(**error, FcError::AllPathsFailed(_)), "{error}");
    assert_eq!(
        left,
        &[format!(
            "zfcp unit {ZFCP_A} 0x{DS8K} {DS8K_FCP}: SCSI device {DS8K_HCTL} of the unit is still there"
        )]
    );
    assert_eq!(ops(&moord), ["zfcp.unit_add"]);
    assert!(env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));

    // moord refuses the unit_remove: reported too, the unit left.
    env.t.remove_lun(hctl(DS8K_HCTL));
    env.t.remove(&unit_rel(ZFCP_A, DS8K_FCP));
    let moord = Scripted::new()
        .expect("zfcp.unit_add", unit_add_only(&env.t, ZFCP_A))
        .expect("zfcp.unit_remove", |_| {
            Err(PrivError::Refused {
                op: "zfcp.unit_remove",
                code: "policy".into(),
                message: "not allowed".into(),
            })
        });
    let e = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "; not undone: zfcp unit {ZFCP_A} 0x{DS8K} {DS8K_FCP}: zfcp.unit_remove: moord refused (policy): not allowed"
        )),
        "{e}"
    );
    assert_eq!(ops(&moord), ["zfcp.unit_add", "zfcp.unit_remove"]);
    assert!(env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
}

/// What `moor connect` printed for the DS8000 volume on adapter A.
fn ds8k_info() -> DeviceInfo {
    DeviceInfo {
        kind: "block".into(),
        path: "/dev/sda".into(),
        scsi_wwn: WWID.into(),
        multipath_id: None,
        devices: vec![format!("sda {DS8K_HCTL}")],
    }
}

#[test]
fn zfcp_detach_removes_named_units_whose_disk_is_gone() {
    let env = zfcp_two_adapters();
    // A's disk was deleted already; B's unit failed (zfcp could not open the LUN)
    // and never had one. Another LUN's unit on the same port is not the volume's.
    add_zfcp_unit(&env.t, ZFCP_A, DS8K, DS8K_FCP, false);
    add_zfcp_unit(&env.t, ZFCP_B, DS8K, DS8K_FCP, true);
    add_zfcp_unit(&env.t, ZFCP_A, DS8K, "0x4021400a00000000", false);
    let moord = Scripted::new()
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_A), unit_remove(&env.t))
        .expect_args("zfcp.unit_remove", unit_args(ZFCP_B), unit_remove(&env.t));
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, false)
        .disconnect(&ds8k_volume(), &ds8k_info(), false, false)
        .unwrap();
    assert_eq!(out.status, "clean");
    assert!(out.removed.is_empty());
    assert_eq!(ops(&moord), ["zfcp.unit_remove", "zfcp.unit_remove"]);
    assert!(!env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
    assert!(!env.t.exists(&unit_rel(ZFCP_B, DS8K_FCP)));
    assert!(env.t.exists(&unit_rel(ZFCP_A, "0x4021400a00000000")));

    // Only the adapters the initiator_target_map names.
    add_zfcp_unit(&env.t, ZFCP_A, DS8K, DS8K_FCP, false);
    add_zfcp_unit(&env.t, ZFCP_B, DS8K, DS8K_FCP, false);
    let p = props(json!({"target_wwn": DS8K, "target_lun": 0x400a_4020_u64,
        "initiator_target_map": {"c05076ffe5005612": [DS8K]}}));
    let moord =
        Scripted::new().expect_args("zfcp.unit_remove", unit_args(ZFCP_B), unit_remove(&env.t));
    connector(&env, &moord, &events, false)
        .disconnect(&p, &ds8k_info(), false, false)
        .unwrap();
    assert_eq!(ops(&moord), ["zfcp.unit_remove"]);
    assert!(env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
}

#[test]
fn zfcp_detach_leaves_a_named_unit_carrying_another_volume() {
    let env = zfcp_setup(false);
    add_zfcp_port(&env.t, ZFCP_A, DS8K);
    add_rport(&env.t, 0, (0, 0), DS8K, Some(0));
    // The array mapped another volume at the LUN since: its disk sits on the unit.
    add_zfcp_unit(&env.t, ZFCP_A, DS8K, DS8K_FCP, false);
    add_fc_lun(
        &env.t,
        hctl(DS8K_HCTL),
        "sda",
        "8:0",
        "naa.60002ac0000000000000000000099999",
        None,
    );
    set_zfcp_ids(&env.t, hctl(DS8K_HCTL), ZFCP_A, DS8K, DS8K_FCP);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .disconnect(&ds8k_volume(), &ds8k_info(), false, false)
        .unwrap_err();
    let FcError::Incomplete(out) = e else {
        panic!("{e}")
    };
    let what: Vec<&str> = out.leftovers.iter().map(|l| l.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "/dev/sda",
            &format!("zfcp unit {ZFCP_A} 0x{DS8K} {DS8K_FCP}")
        ]
    );
    assert!(
        out.leftovers[1].reason.contains(DS8K_HCTL),
        "{:?}",
        out.leftovers
    );
    assert!(moord.calls().is_empty(), "{:?}", moord.calls());
    assert!(env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
    assert!(env.t.exists("sys/block/sda"));
}

#[test]
fn zfcp_a_failed_port_is_skipped_for_the_next_path() {
    let env = zfcp_two_adapters();
    // zfcp gave up on the port behind adapter A: the path through B is used,
    // nothing is added through A.
    fail_zfcp_port(&env.t, ZFCP_A, DS8K);
    let moord = Scripted::new().expect_args(
        "zfcp.unit_add",
        unit_args(ZFCP_B),
        unit_add_scans(&env.t, ZFCP_B, DS8K_HCTL_B, "sdb", RAW_WWID),
    );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap();
    assert_eq!(info.devices, [format!("sdb {DS8K_HCTL_B}")]);
    assert_eq!(ops(&moord), ["zfcp.unit_add"]);
    assert!(!env.t.exists(&unit_rel(ZFCP_A, DS8K_FCP)));
}

#[test]
fn zfcp_failed_adapters_and_ports_are_not_waited_on() {
    let env = zfcp_setup(false);
    let adapter_failed = format!("sys/bus/ccw/drivers/zfcp/{ZFCP_A}/failed");
    // A failed adapter: no port scan, no unit, and the error says why.
    fail_zfcp_adapter(&env.t, ZFCP_A);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(
        matches!(&e, FcError::NoTargetPort { hbas, .. } if hbas.contains("not usable: zfcp adapter 0.0.1900 failed")),
        "{e}"
    );
    assert!(moord.calls().is_empty(), "{:?}", moord.calls());

    // The adapter recovered; the port scan finds the port, but zfcp cannot open
    // it (no remote port comes): the port is not waited for (the event stays
    // unused) and the path is not used.
    crate::host::fixture::write(&env.t.path(&adapter_failed), "0\n");
    let t = env.t.clone();
    let moord = Scripted::new().expect("zfcp.port_rescan", move |_| {
        add_zfcp_port(&t, ZFCP_A, DS8K);
        fail_zfcp_port(&t, ZFCP_A, DS8K);
        Ok(json!({}))
    });
    let events = ScriptedEvents::new().then(|| {});
    let e = connector(&env, &moord, &events, false)
        .connect(&ds8k_volume())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not usable: zfcp port 0.0.1900 0x500507630b1b41c3 failed"),
        "{e}"
    );
    assert_eq!(events.steps_run(), 0);
    assert_eq!(ops(&moord), ["zfcp.port_rescan"]);
}
