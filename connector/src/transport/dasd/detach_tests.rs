//! Detach, extend and volume paths on fixture trees, with a scripted moord that
//! sets the device offline the way the kernel and udev do.

use serde_json::{Value, json};

use super::*;
use crate::exec::{DryRun, Scripted, exec_reply};
use crate::host::udev::ScriptedEvents;
use crate::transport::dasd::connect::tests::safe_offline_removes;
use crate::transport::dasd::test_support::*;

fn props(v: Value) -> DasdProps {
    DasdProps::from_connection_info(&v).unwrap()
}

fn volume_props() -> DasdProps {
    props(json!({"device_id": BUSID}))
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

/// The volume attached (by `moor connect`): online, its device_info and record.
fn attached(env: &Env) -> DeviceInfo {
    let d = volume();
    add_dasd(&env.t, &d);
    kernel_online(&env.t, &d);
    udev_online(&env.t, &d);
    let moord = Scripted::new();
    connector(env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap()
}

#[test]
fn detach_sets_the_dasd_offline_safely_and_waits_for_its_disk_to_go() {
    let env = setup();
    let info = attached(&env);
    assert!(env.registry().get("dasdb").is_some());
    let moord = Scripted::new().expect_args(
        "dasd.safe_offline",
        json!({"busid": BUSID, "expected_uid": UID}),
        safe_offline_removes(&env.t, volume()),
    );
    let out = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, false)
        .unwrap();
    assert_eq!(ops(&moord), ["dasd.safe_offline"]);
    assert_eq!(
        out,
        DetachOutcome {
            status: "clean".into(),
            busid: BUSID.into(),
            set_offline: true,
            removed: vec!["/dev/dasdb".into()],
            data_loss_risk: vec![],
            leftovers: vec![],
        }
    );
    assert!(env.registry().get("dasdb").is_none());
    assert!(
        crate::host::udev::removal_leftovers(&env.t.paths(), "dasdb")
            .unwrap()
            .is_empty()
    );
    // The IPL disk is untouched.
    assert!(env.t.exists("dev/disk/by-path/ccw-0.0.0150"));
    // Detaching again: offline already, nothing to do.
    let moord = Scripted::new();
    let out = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, false)
        .unwrap();
    assert!(moord.calls().is_empty());
    assert_eq!((out.status.as_str(), out.set_offline), ("clean", false));
}

#[test]
fn detach_with_a_changed_uid_is_refused_and_nothing_goes_offline() {
    let env = setup();
    let info = attached(&env);
    // The storage admin mapped another volume at the device number.
    change_uid(&env.t, &volume(), OTHER_UID);
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, true, true)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("0.0.b100 carries uid {OTHER_UID}, not {UID}")),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);

    // moord's own check right before acting (the uid changed in between).
    change_uid(&env.t, &volume(), UID);
    let moord = Scripted::new().expect("dasd.safe_offline", |_| {
        Err(PrivError::IdentityMismatch {
            op: "dasd.safe_offline",
            message: "identity mismatch on 0.0.b100: expected DASD uid …".into(),
        })
    });
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, true, false)
        .unwrap_err();
    assert!(err.to_string().contains("identity check failed"), "{err}");
    assert_eq!(ops(&moord), ["dasd.safe_offline"]);
    assert!(
        sysfs::ccw_device(&env.t.paths(), BUSID.parse().unwrap())
            .unwrap()
            .unwrap()
            .online
    );
}

#[test]
fn a_failed_safe_offline_detaches_nothing_unless_forced() {
    let env = setup();
    let info = attached(&env);
    let busy = |_: &Value| {
        Ok(exec_reply(
            1,
            "Setting device 0.0.b100 offline\n",
            "Failed (Device or resource busy)\n",
        ))
    };
    let before = env.t.snapshot();
    let moord = Scripted::new().expect("dasd.safe_offline", busy);
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("setting 0.0.b100 offline failed: exit 1: Failed (Device or resource busy); nothing was detached"),
        "{msg}"
    );
    assert_eq!(env.t.snapshot(), before);

    // --force: a plain offline after the failed safe one; the data-loss risk is
    // reported.
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("dasd.safe_offline", busy)
        .expect_args(
            "dasd.offline",
            json!({"busid": BUSID, "expected_uid": UID}),
            move |_| {
                kernel_offline(&t, &volume());
                udev_offline(&t, &volume());
                Ok(exec_reply(0, "Done\n", ""))
            },
        );
    let out = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, true, false)
        .unwrap();
    assert_eq!(out.status, "clean-with-data-loss");
    assert_eq!(out.data_loss_risk, ["/dev/dasdb"]);
    assert_eq!(out.removed, ["/dev/dasdb"]);
}

#[test]
fn detach_deadline_reports_exactly_what_is_left() {
    let env = setup();
    let info = attached(&env);
    // The device goes offline but udev never processes the removal.
    let t = env.t.clone();
    let moord = Scripted::new().expect("dasd.safe_offline", move |_| {
        kernel_offline(&t, &volume());
        Ok(exec_reply(0, "Done\n", ""))
    });
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, false)
        .unwrap_err();
    let DasdError::Incomplete(out) = err else {
        panic!("expected an incomplete detach, got {err}")
    };
    assert_eq!(out.status, "leftovers");
    assert!(out.set_offline);
    assert!(out.removed.is_empty());
    assert_eq!(out.leftovers.len(), 1, "{:?}", out.leftovers);
    let reason = &out.leftovers[0].reason;
    assert!(
        reason.contains("waiting for removal of dasdb")
            && reason.contains("dev/dasdb still present")
            && reason.contains("by-path/ccw-0.0.b100 still present")
            && reason.contains("by-id/ccw-0X0B100-part1 still present"),
        "{reason}"
    );
    // ignore_errors: the same outcome as a result; the record stays removed.
    let out2 = connector(&env, &Scripted::new(), &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, true)
        .unwrap();
    assert_eq!(out2.status, "leftovers");
    assert!(!out2.set_offline);
    assert!(
        out2.leftovers.iter().any(|l| l.what.ends_with("dev/dasdb")),
        "{:?}",
        out2.leftovers
    );
    assert!(env.registry().get("dasdb").is_none());
}

#[test]
fn device_info_must_match_the_connection_info() {
    let env = setup();
    let info = attached(&env);
    let c = Scripted::new();
    let events = ScriptedEvents::new();
    let conn = connector(&env, &c, &events);
    let mut other = info.clone();
    other.busid = "0.0.b101".into();
    let e = conn
        .disconnect(&volume_props(), &other, false, false)
        .unwrap_err();
    assert!(e.to_string().contains("device_info is for 0.0.b101"), "{e}");
    let mut anonymous = info.clone();
    anonymous.uid = String::new();
    let e = conn
        .disconnect(&volume_props(), &anonymous, false, false)
        .unwrap_err();
    assert!(matches!(e, DasdError::NoIdentity), "{e}");
    let e = conn
        .disconnect(
            &props(json!({"device_id": BUSID, "uid": OTHER_UID})),
            &info,
            false,
            false,
        )
        .unwrap_err();
    assert!(e.to_string().contains("the connection info names"), "{e}");
    let mut bad = info.clone();
    bad.device = "../sda".into();
    let e = conn
        .disconnect(&volume_props(), &bad, false, false)
        .unwrap_err();
    assert!(e.to_string().contains("not a DASD disk"), "{e}");
    assert!(c.calls().is_empty());
}

#[test]
fn extend_reports_the_size_and_changes_nothing() {
    let env = setup();
    let info = attached(&env);
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events);
    let x = c.extend(&volume_props(), &info).unwrap();
    assert_eq!(x.new_size, MOD9_SECTORS * 512);
    assert_eq!(x.path, "/dev/disk/by-path/ccw-0.0.b100");
    assert_eq!(x.paths, [("/dev/dasdb".to_string(), MOD9_SECTORS * 512)]);
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
    change_uid(&env.t, &volume(), OTHER_UID);
    assert!(matches!(
        c.extend(&volume_props(), &info),
        Err(DasdError::UidMismatch { .. })
    ));
    kernel_offline(&env.t, &volume());
    assert!(matches!(
        c.extend(&volume_props(), &info),
        Err(DasdError::NotAttached(_))
    ));
}

#[test]
fn volume_paths_is_the_by_path_link_of_the_online_disk() {
    let env = setup();
    let moord = DryRun::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events);
    assert!(c.volume_paths(&volume_props()).unwrap().is_empty());
    attached(&env);
    assert_eq!(
        c.volume_paths(&volume_props()).unwrap(),
        ["/dev/disk/by-path/ccw-0.0.b100"]
    );
    let e = c
        .volume_paths(&props(json!({"device_id": BUSID, "uid": OTHER_UID})))
        .unwrap_err();
    assert!(matches!(e, DasdError::UidMismatch { .. }), "{e}");
    kernel_offline(&env.t, &volume());
    assert!(c.volume_paths(&volume_props()).unwrap().is_empty());
    assert!(moord.planned().is_empty());
}

#[test]
fn dry_run_detach_plans_the_safe_offline() {
    let env = setup();
    let info = attached(&env);
    let before = env.t.snapshot();
    let dry = DryRun::new();
    let out = connector(&env, &dry, &ScriptedEvents::new())
        .disconnect(&volume_props(), &info, false, false)
        .unwrap();
    let planned = dry.planned();
    assert_eq!(planned.len(), 1);
    assert!(
        planned[0].starts_with("dasd.safe_offline") && planned[0].contains(UID),
        "{planned:?}"
    );
    assert_eq!(out.removed, ["/dev/dasdb"]);
    assert_eq!(env.t.snapshot(), before);
    assert!(env.registry().get("dasdb").is_some());
}

#[test]
fn without_a_bus_id_detach_extend_and_paths_use_the_address() {
    let env = setup();
    let info = attached(&env);
    let by_address = props(json!({"subsystem_id": "2300", "unit_address": "05"}));
    let (none, events) = (Scripted::new(), ScriptedEvents::new());
    let c = connector(&env, &none, &events);
    assert_eq!(
        c.volume_paths(&by_address).unwrap(),
        ["/dev/disk/by-path/ccw-0.0.b100"]
    );
    assert_eq!(
        c.extend(&by_address, &info).unwrap().new_size,
        MOD9_SECTORS * 512
    );
    // device_info recording another unit address is not this volume.
    let other = props(json!({"subsystem_id": "2300", "unit_address": "06"}));
    let err = c.extend(&other, &info).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "device_info records uid {UID}, whose unit_address is 05, the connection info names 06"
        )),
        "{err}"
    );
    assert!(c.volume_paths(&other).unwrap().is_empty());
    // With a bus id, a device carrying another address is an error, never a path.
    let err = c
        .volume_paths(&props(json!({"device_id": BUSID, "ua": "06"})))
        .unwrap_err();
    assert!(matches!(err, DasdError::AddressMismatch { .. }), "{err}");
    let moord = Scripted::new().expect_args(
        "dasd.safe_offline",
        json!({"busid": BUSID, "expected_uid": UID}),
        safe_offline_removes(&env.t, volume()),
    );
    let out = connector(&env, &moord, &ScriptedEvents::new())
        .disconnect(&by_address, &info, false, false)
        .unwrap();
    assert_eq!((out.status.as_str(), out.busid.as_str()), ("clean", BUSID));
    // Offline now: the address names no device, so no path.
    let c = connector(&env, &none, &events);
    assert!(c.volume_paths(&by_address).unwrap().is_empty());
    assert!(none.calls().is_empty());
}
