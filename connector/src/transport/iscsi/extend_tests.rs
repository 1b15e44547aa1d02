//! Unit tests of [`IscsiConnector::extend`], [`IscsiConnector::volume_paths`] and
//! [`IscsiConnector::check_valid_device`] on kernel-shaped fixture trees:
//! [`Scripted`] handlers grow the disks as a rescan would, [`ScriptedEvents`] steps
//! grow the multipath map as multipathd's reload does.

use std::time::Duration;

use super::*;
use crate::exec::{DryRun, PrivError, Privileged, Scripted, exec_reply};
use crate::host::fixture::Tree;
use crate::host::udev::{DeviceEvents, ScriptedEvents};
use crate::transport::iscsi::test_support::*;
use serde_json::{Value, json};

/// The fixture's size of every disk and map (sectors; 1 GiB).
fn connector<'a>(
    env: &Env,
    privileged: &'a dyn Privileged,
    events: &'a dyn DeviceEvents,
) -> IscsiConnector<'a> {
    connector_with(env, privileged, events, LONG)
}

const OLD_SECTORS: u64 = 2_097_152;
const OLD_BYTES: u64 = OLD_SECTORS * 512;
/// The volume's size after the array grew it (2 GiB).
const NEW_SECTORS: u64 = 4_194_304;
const NEW_BYTES: u64 = NEW_SECTORS * 512;

fn single(lun: Value) -> IscsiProps {
    props(json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": lun}))
}

fn both_portals() -> IscsiProps {
    props(json!({
        "target_portals": [PORTAL, PORTAL2],
        "target_iqns": [IQN, IQN],
        "target_luns": [1, 1],
    }))
}

fn info(wwn: &str, path: &str) -> DeviceInfo {
    DeviceInfo {
        kind: "block".into(),
        path: path.into(),
        scsi_wwn: wwn.into(),
        multipath_id: None,
        devices: vec![],
        encryption: None,
    }
}

fn by_wwid(device: &str) -> Value {
    json!({"device": device, "expected_wwid": WWN})
}

fn resize_args() -> Value {
    json!({"device": "dm-0", "map": "mpatha", "expected_wwid": WWN})
}

/// The volume attached on one path: session 1 on host 3, LUN 1 = sdb.
fn attached(t: &Tree) {
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    t.add_lun(1, hctl("3:0:0:1"), "sdb", "8:16", RAW);
}

/// Both paths of the volume (sdb on session 1, sdc on session 2) and the map
/// dm-0 `mpatha` over them.
fn two_paths_in_a_map(t: &Tree) {
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    t.add_session(2, 4, IQN, ADDR2, 3260, 0);
    t.add_lun(1, hctl("3:0:0:1"), "sdb", "8:16", RAW);
    t.add_lun(2, hctl("4:0:0:1"), "sdc", "8:32", RAW);
    t.add_multipath_map("dm-0", "253:0", "mpatha", WWN, &["sdb", "sdc"]);
}

/// The kernel's view of block device `name` changes size to `sectors`.
fn set_size(t: &Tree, name: &str, sectors: u64) {
    std::fs::write(
        t.path(&format!("sys/block/{name}/size")),
        format!("{sectors}\n"),
    )
    .unwrap();
}

fn size_of(t: &Tree, name: &str) -> u64 {
    std::fs::read_to_string(t.path(&format!("sys/block/{name}/size")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `scsi.rescan` as the kernel does it when the array grew the LUN: the disk's
/// size becomes `sectors`.
fn grow(
    t: &Tree,
    name: &'static str,
    sectors: u64,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    let t = t.clone();
    move |_| {
        set_size(&t, name, sectors);
        done()
    }
}

// ---------------------------------------------------------------------------
// extend

#[test]
fn extend_single_path_rescans_the_disk_and_reports_its_new_size() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new().expect_args(
        "scsi.rescan",
        by_wwid("sdb"),
        grow(&env.tree, "sdb", NEW_SECTORS),
    );
    let events = ScriptedEvents::new().then(|| {});
    let out = connector(&env, &p, &events)
        .extend(&single(json!(1)), &info(WWN, "/dev/sdb"))
        .unwrap();
    assert_eq!(
        out,
        Extended {
            new_size: NEW_BYTES,
            path: "/dev/sdb".into(),
            paths: vec![("/dev/sdb".into(), NEW_BYTES)],
        }
    );
    // One rescan with the identity check; no multipath operation at all.
    assert_eq!(p.calls(), [call("scsi.rescan", by_wwid("sdb"))]);
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(events.steps_run(), 0);
}

/// A dm holder of the disk that is not a multipath map of this WWID (another
/// volume's map, an LVM volume) is not resized: the extend is single-path.
#[test]
fn extend_ignores_a_holder_that_is_not_the_volumes_map() {
    let env = setup();
    attached(&env.tree);
    env.tree.add_dm("dm-3", "253:3", "vg-lv", None, &["sdb"]);
    let p = Scripted::new().expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS));
    let events = ScriptedEvents::new();
    let out = connector(&env, &p, &events)
        .extend(&single(json!(1)), &info(WWN, "/dev/sdb"))
        .unwrap();
    assert_eq!(out.path, "/dev/sdb");
    assert_eq!(out.new_size, NEW_BYTES);
    assert_eq!(p.calls(), [call("scsi.rescan", by_wwid("sdb"))]);
    assert_eq!(size_of(&env.tree, "dm-3"), OLD_SECTORS);
}

/// Both paths rescanned, sizes agree, the map resized by its exact name, then the
/// extend waits until device-mapper shows the new size. Whether the props list
/// both portals or only the primary one, every disk of the WWID is rescanned.
#[test]
fn extend_multipath_rescans_every_path_then_resizes_the_map() {
    for listing in ["both portals", "primary only"] {
        let env = setup();
        two_paths_in_a_map(&env.tree);
        let pr = if listing == "both portals" {
            both_portals()
        } else {
            single(json!(1))
        };
        let p = Scripted::new()
            .expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS))
            .expect("scsi.rescan", grow(&env.tree, "sdc", NEW_SECTORS))
            .expect("multipath.resize", |_| Ok(exec_reply(0, "ok\n", "")));
        // multipathd reloads the map asynchronously: its size changes on an event.
        let t = env.tree.clone();
        let events = ScriptedEvents::new()
            .then(move || set_size(&t, "dm-0", NEW_SECTORS))
            .then(|| {});
        let out = connector(&env, &p, &events)
            .extend(&pr, &info(WWN, "/dev/dm-0"))
            .unwrap();
        assert_eq!(
            out,
            Extended {
                new_size: NEW_BYTES,
                path: "/dev/dm-0".into(),
                paths: vec![
                    ("/dev/sdb".into(), NEW_BYTES),
                    ("/dev/sdc".into(), NEW_BYTES)
                ],
            },
            "{listing}"
        );
        assert_eq!(
            p.calls(),
            [
                call("scsi.rescan", by_wwid("sdb")),
                call("scsi.rescan", by_wwid("sdc")),
                call("multipath.resize", resize_args()),
            ],
            "{listing}"
        );
        assert!(p.unused().is_empty(), "{listing}: {:?}", p.unused());
        assert_eq!(events.steps_run(), 1, "{listing}");
        assert_eq!(events.remaining(), 1, "{listing}");
    }
}

/// The map never reaches the new size: the wait ends at the deadline and says
/// what it waited for.
#[test]
fn extend_multipath_map_that_never_grows_is_an_error() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    let p = Scripted::new()
        .expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS))
        .expect("scsi.rescan", grow(&env.tree, "sdc", NEW_SECTORS))
        .expect("multipath.resize", |_| exit(0));
    let events = ScriptedEvents::new().then(|| {});
    let err = connector(&env, &p, &events)
        .extend(&both_portals(), &info(WWN, "/dev/dm-0"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Wait(_)), "{err:?}");
    assert!(
        msg.contains("dm-0") && msg.contains(&NEW_BYTES.to_string()),
        "{msg}"
    );
}

/// A path that did not see the new size (down, or lagging): nothing resized, and
/// the error names each path with its size.
#[test]
fn extend_paths_that_disagree_on_the_size_resize_nothing() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    // sdc's rescans change nothing; with a 1 s deadline there is time for one
    // more round (after 0.5 s) and no third.
    let p = Scripted::new()
        .expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS))
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done());
    let events = ScriptedEvents::new().then(|| panic!("no wait expected"));
    let mut c = connector(&env, &p, &events);
    c.options.timeout = Duration::from_secs(1);
    let err = c
        .extend(&both_portals(), &info(WWN, "/dev/dm-0"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Multipath(_)), "{err:?}");
    assert!(
        msg.contains(&format!("/dev/sdb {NEW_BYTES} bytes")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("/dev/sdc {OLD_BYTES} bytes")),
        "{msg}"
    );
    assert!(msg.contains("nothing resized"), "{msg}");
    assert_eq!(
        p.calls(),
        [
            call("scsi.rescan", by_wwid("sdb")),
            call("scsi.rescan", by_wwid("sdc")),
            call("scsi.rescan", by_wwid("sdb")),
            call("scsi.rescan", by_wwid("sdc")),
        ]
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(size_of(&env.tree, "dm-0"), OLD_SECTORS);
    assert_eq!(events.steps_run(), 0);
}

/// A path that lags (its first rescan still reports the old size) catches up on
/// the next round: the map is resized.
#[test]
fn extend_rescans_a_lagging_path_again() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    let t = env.tree.clone();
    let p = Scripted::new()
        .expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS))
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", grow(&env.tree, "sdc", NEW_SECTORS))
        .expect("multipath.resize", |_| exit(0));
    let events = ScriptedEvents::new().then(move || {
        set_size(&t, "dm-0", NEW_SECTORS);
    });
    let got = connector(&env, &p, &events)
        .extend(&both_portals(), &info(WWN, "/dev/dm-0"))
        .unwrap();
    assert_eq!(got.new_size, NEW_BYTES);
    assert!(p.unused().is_empty(), "{:?}", p.unused());
}

/// multipathd answers `fail` on stdout with exit 0 (its usual way of failing), or
/// the command itself fails: an error naming the map, no wait.
#[test]
fn extend_multipathd_resize_failure_is_an_error() {
    for (code, stdout) in [(0, "fail\n"), (1, "")] {
        let env = setup();
        two_paths_in_a_map(&env.tree);
        let p = Scripted::new()
            .expect("scsi.rescan", grow(&env.tree, "sdb", NEW_SECTORS))
            .expect("scsi.rescan", grow(&env.tree, "sdc", NEW_SECTORS))
            .expect_args("multipath.resize", resize_args(), move |_| {
                Ok(exec_reply(code, stdout, ""))
            });
        let events = ScriptedEvents::new().then(|| panic!("no wait expected"));
        let err = connector(&env, &p, &events)
            .extend(&both_portals(), &info(WWN, "/dev/dm-0"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, IscsiError::Multipath(_)), "{code}: {err:?}");
        assert!(msg.contains("resize map mpatha failed"), "{msg}");
        if code == 0 {
            assert!(msg.contains("fail"), "{msg}");
        }
        assert!(p.unused().is_empty(), "{:?}", p.unused());
        assert_eq!(p.calls().len(), 3);
        assert_eq!(events.steps_run(), 0);
    }
}

/// No disk carries the WWID (no session at all, or only another volume's disk at
/// the LUN): an error naming the WWID, before any operation.
#[test]
fn extend_without_a_disk_of_the_wwid_names_the_wwid() {
    for case in ["no session", "another volume at the LUN"] {
        let env = setup();
        if case != "no session" {
            env.tree.add_session(1, 3, IQN, ADDR, 3260, 0);
            env.tree
                .add_lun(1, hctl("3:0:0:1"), "sdb", "8:16", OTHER_RAW);
        }
        let before = env.tree.snapshot();
        let p = Scripted::new();
        let events = ScriptedEvents::new();
        let err = connector(&env, &p, &events)
            .extend(&single(json!(1)), &info(WWN, "/dev/sdb"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, IscsiError::Target { .. }), "{case}: {err:?}");
        assert!(msg.contains(WWN), "{case}: {msg}");
        assert!(msg.contains(IQN), "{case}: {msg}");
        assert!(p.calls().is_empty(), "{case}");
        assert_eq!(env.tree.snapshot(), before, "{case}");
    }
}

#[test]
fn extend_without_scsi_wwn_is_refused_before_any_op() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    for wwn in ["", "  "] {
        let err = connector(&env, &p, &events)
            .extend(&single(json!(1)), &info(wwn, "/dev/sdb"))
            .unwrap_err();
        assert!(matches!(err, IscsiError::NoIdentity), "{err:?}");
    }
    assert!(p.calls().is_empty());
    assert_eq!(events.watches_opened(), 0);
    // Not even a lock file was created.
    assert!(!env.locks.path().exists());
}

/// A dry run plans the rescans and the resize and changes nothing (no wait: the
/// map cannot grow).
#[test]
fn extend_dry_run_plans_rescans_and_resize() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    let before = env.tree.snapshot();
    let dry = DryRun::new();
    let events = ScriptedEvents::new().then(|| panic!("no wait in a dry run"));
    let out = connector(&env, &dry, &events)
        .extend(&both_portals(), &info(WWN, "/dev/dm-0"))
        .unwrap();
    assert_eq!(out.path, "/dev/dm-0");
    assert_eq!(out.new_size, OLD_BYTES);
    let ops: Vec<String> = dry
        .planned()
        .iter()
        .map(|s| s.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ops, ["scsi.rescan", "scsi.rescan", "multipath.resize"]);
    assert_eq!(env.tree.snapshot(), before);
}

// ---------------------------------------------------------------------------
// volume_paths

/// udev's node `/dev/<name>` of a disk.
fn device_node(t: &Tree, name: &str) {
    crate::host::fixture::write(&t.path(&format!("dev/{name}")), "");
}

/// udev's by-path link `name` to `/dev/<device>`.
fn by_path(t: &Tree, name: &str, device: &str) {
    crate::host::fixture::symlink(
        &t.path(&format!("dev/disk/by-path/{name}")),
        &t.path(&format!("dev/{device}")),
    );
}

fn plain(portal: &str, lun: &str) -> String {
    format!("ip-{portal}-iscsi-{IQN}-lun-{lun}")
}

#[test]
fn volume_paths_small_and_large_luns() {
    let env = setup();
    let t = &env.tree;
    device_node(t, "sdb");
    device_node(t, "sdc");
    by_path(t, &plain(PORTAL, "1"), "sdb");
    by_path(t, &plain(PORTAL, "0x012c000000000000"), "sdc");
    // Other LUNs of the target, and another target on the portal.
    by_path(t, &plain(PORTAL, "10"), "sdb");
    by_path(t, &plain(PORTAL, "300"), "sdc");
    by_path(t, &format!("ip-{PORTAL}-iscsi-{IQN}-other-lun-1"), "sdb");
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &p, &events);
    assert_eq!(
        c.volume_paths(&single(json!(1))).unwrap(),
        [format!("/dev/disk/by-path/{}", plain(PORTAL, "1"))]
    );
    assert_eq!(
        c.volume_paths(&single(json!(300))).unwrap(),
        [format!(
            "/dev/disk/by-path/{}",
            plain(PORTAL, "0x012c000000000000")
        )]
    );
    // Nothing at LUN 2.
    assert!(c.volume_paths(&single(json!(2))).unwrap().is_empty());
    assert!(p.calls().is_empty());
}

#[test]
fn volume_paths_ipv6_portal_has_no_brackets() {
    let env = setup();
    let t = &env.tree;
    device_node(t, "sdb");
    by_path(t, &plain("2001:db8::10:3260", "1"), "sdb");
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let pr = props(json!({
        "target_portal": "[2001:db8::10]:3260", "target_iqn": IQN, "target_lun": 1,
    }));
    assert_eq!(
        connector(&env, &p, &events).volume_paths(&pr).unwrap(),
        [format!(
            "/dev/disk/by-path/{}",
            plain("2001:db8::10:3260", "1")
        )]
    );
}

/// Offload ifaces' links carry the PCI address in front (`pci-…-ip-…`); both
/// forms are found, each once.
#[test]
fn volume_paths_finds_offload_prefixed_links() {
    let env = setup();
    let t = &env.tree;
    device_node(t, "sdb");
    device_node(t, "sdc");
    let offload = format!("pci-0000:00:1f.0-{}", plain(PORTAL, "1"));
    by_path(t, &offload, "sdb");
    by_path(t, &plain(PORTAL, "1"), "sdc");
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let mut got = connector(&env, &p, &events)
        .volume_paths(&single(json!(1)))
        .unwrap();
    got.sort();
    let mut want = vec![
        format!("/dev/disk/by-path/{offload}"),
        format!("/dev/disk/by-path/{}", plain(PORTAL, "1")),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// Only the links that exist are listed: one of two portals here, none without a
/// by-path directory.
#[test]
fn volume_paths_lists_only_existing_links() {
    let env = setup();
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &p, &events);
    assert!(c.volume_paths(&both_portals()).unwrap().is_empty());
    device_node(&env.tree, "sdc");
    by_path(&env.tree, &plain(PORTAL2, "1"), "sdc");
    assert_eq!(
        c.volume_paths(&both_portals()).unwrap(),
        [format!("/dev/disk/by-path/{}", plain(PORTAL2, "1"))]
    );
}

/// A by-path link udev left behind after the disk went (dangling) is not a path
/// of the volume that exists now (os-brick `get_volume_paths` checks
/// `os.path.exists`, which follows the link).
#[test]
fn volume_paths_skips_dangling_links() {
    let env = setup();
    by_path(&env.tree, &plain(PORTAL, "1"), "sdb");
    assert!(!env.tree.path("dev/sdb").exists());
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let got = connector(&env, &p, &events)
        .volume_paths(&single(json!(1)))
        .unwrap();
    assert!(got.is_empty(), "{got:?}");
}

// ---------------------------------------------------------------------------
// check_valid_device

#[test]
fn check_valid_device_reads_through_moord_with_the_wwid() {
    for (path, device) in [("/dev/sdb", "sdb"), ("/dev/dm-0", "dm-0")] {
        for (code, valid) in [(0, true), (1, false)] {
            let env = setup();
            let p = Scripted::new().expect_args(
                "block.read_check",
                json!({"device": device, "expected_wwid": WWN}),
                move |_| exit(code),
            );
            let events = ScriptedEvents::new();
            let got = connector(&env, &p, &events)
                .check_valid_device(&info(WWN, path))
                .unwrap();
            assert_eq!(got, valid, "{path} exit {code}");
            assert_eq!(
                p.calls(),
                [call(
                    "block.read_check",
                    json!({"device": device, "expected_wwid": WWN})
                )]
            );
        }
    }
}

#[test]
fn check_valid_device_without_scsi_wwn_is_refused() {
    let env = setup();
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    for wwn in ["", " "] {
        let err = connector(&env, &p, &events)
            .check_valid_device(&info(wwn, "/dev/sdb"))
            .unwrap_err();
        assert!(matches!(err, IscsiError::NoIdentity), "{err:?}");
    }
    assert!(p.calls().is_empty());
}

/// A path outside /dev is not a device moor handed out: not valid, nothing run.
#[test]
fn check_valid_device_path_outside_dev_is_not_valid() {
    let env = setup();
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let got = connector(&env, &p, &events)
        .check_valid_device(&info(WWN, "/tmp/sdb"))
        .unwrap();
    assert!(!got);
    assert!(p.calls().is_empty());
}

/// moord refusing the read (identity mismatch) is an error, not "invalid".
#[test]
fn check_valid_device_refusal_is_an_error() {
    let env = setup();
    let p = Scripted::new().expect("block.read_check", |_| {
        Err(PrivError::Refused {
            op: "block.read_check",
            code: "identity".into(),
            message: "WWID mismatch".into(),
        })
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events)
        .check_valid_device(&info(WWN, "/dev/sdb"))
        .unwrap_err();
    assert!(matches!(err, IscsiError::Privileged(_)), "{err:?}");
}
