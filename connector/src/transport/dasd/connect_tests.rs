//! Attach on fixture trees: the scripted moord changes the tree as the kernel would
//! (`dasd.free` registers the device, `dasd.online` brings the DASD driver up,
//! `dasd.format` makes it formatted), [`ScriptedEvents`] steps finish what happens
//! asynchronously (a driver binding, udev's rules).

use serde_json::{Value, json};

use super::*;
use crate::exec::{DryRun, Scripted, exec_reply};
use crate::host::fixture::Tree;
use crate::host::udev::ScriptedEvents;
use crate::transport::dasd::test_support::*;

type Handler = Box<dyn FnMut(&Value) -> Result<Value, PrivError> + Send>;

fn props(v: Value) -> DasdProps {
    DasdProps::from_connection_info(&v).unwrap()
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

fn ok(stdout: &str) -> Result<Value, PrivError> {
    Ok(exec_reply(0, stdout, ""))
}

/// `cio_ignore -r`: the device number leaves the list and the common I/O layer
/// registers the device (dasd-eckd binds to it at once, or later with `bound`
/// false).
fn free_registers(t: &Tree, d: DasdSpec<'static>, bound: bool) -> Handler {
    let t = t.clone();
    Box::new(move |args: &Value| {
        assert_eq!(args, &json!({"busid": d.busid}));
        unignore(&t, d.busid);
        add_dasd(&t, &d);
        if !bound {
            unbind(&t, &d);
        }
        ok("")
    })
}

/// `chccwdev -e`: the device comes online; udev follows at once, or in an event
/// step with `udev` false.
fn online_brings_up(t: &Tree, d: DasdSpec<'static>, udev: bool) -> Handler {
    let t = t.clone();
    Box::new(move |args: &Value| {
        assert_eq!(args, &json!({"busid": d.busid}));
        kernel_online(&t, &d);
        if udev {
            udev_online(&t, &d);
        }
        ok(&format!("Setting device {} online\nDone\n", d.busid))
    })
}

/// `chccwdev -s`: the device goes offline, udev removes its nodes and links.
pub(crate) fn safe_offline_removes(t: &Tree, d: DasdSpec<'static>) -> Handler {
    let t = t.clone();
    Box::new(move |args: &Value| {
        assert_eq!(args["busid"], d.busid);
        kernel_offline(&t, &d);
        udev_offline(&t, &d);
        ok(&format!("Setting device {} offline\nDone\n", d.busid))
    })
}

fn format_formats(t: &Tree, d: DasdSpec<'static>) -> Handler {
    let t = t.clone();
    Box::new(move |args: &Value| {
        assert_eq!(
            args,
            &json!({"busid": d.busid, "device": d.disk, "expected_uid": d.uid})
        );
        formatted(&t, &d);
        ok("Finished formatting the device.\n")
    })
}

/// The volume 0.0.b100 as the host shows it after an earlier attach.
fn online(env: &Env, d: &DasdSpec<'_>) {
    add_dasd(&env.t, d);
    kernel_online(&env.t, d);
    udev_online(&env.t, d);
}

const VOLUME: &str = r#"{"device_id": "0.0.b100", "volume_id": "vol-1"}"#;

fn volume_props() -> DasdProps {
    props(serde_json::from_str(VOLUME).unwrap())
}

#[test]
fn formatted_online_dasd_attaches_without_a_privileged_step() {
    let env = setup();
    online(&env, &volume());
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events)
        .connect(&props(json!({"device_id": "b100", "uid": UID})))
        .unwrap();
    assert!(moord.calls().is_empty());
    assert_eq!(
        info,
        DeviceInfo {
            kind: "block".into(),
            path: "/dev/disk/by-path/ccw-0.0.b100".into(),
            busid: BUSID.into(),
            uid: UID.into(),
            device: "dasdb".into(),
            size: MOD9_SECTORS * 512,
            partitions: vec!["/dev/disk/by-path/ccw-0.0.b100-part1".into()],
            formatted: false,
        }
    );
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v["type"], "block");
    assert!(v.get("formatted").is_none(), "{v}");
    let rec = env
        .registry()
        .current(&env.t.paths(), "dasdb")
        .expect("attachment recorded");
    assert_eq!(
        (
            rec.protocol.as_str(),
            rec.target.as_str(),
            rec.wwid.as_str()
        ),
        (PROTOCOL, BUSID, UID)
    );
}

#[test]
fn offline_dasd_is_set_online_and_udev_awaited() {
    let env = setup();
    add_dasd(&env.t, &volume());
    let moord = Scripted::new().expect_args(
        "dasd.online",
        json!({"busid": BUSID}),
        online_brings_up(&env.t, volume(), false),
    );
    // udev runs its rules after the kernel's events.
    let t = env.t.clone();
    let events = ScriptedEvents::new().then(move || udev_online(&t, &volume()));
    let info = connector(&env, &moord, &events)
        .connect(&volume_props())
        .unwrap();
    assert_eq!(ops(&moord), ["dasd.online"]);
    assert_eq!(events.steps_run(), 1);
    assert_eq!(info.device, "dasdb");
    assert_eq!(info.uid, UID);
    assert_eq!(info.path, "/dev/disk/by-path/ccw-0.0.b100");
}

#[test]
fn ignored_dasd_is_freed_then_set_online() {
    let env = setup();
    set_ignored(&env.t, &[(0, 0x0000, 0x014f), (0, 0x0151, 0xf4ff)]);
    let moord = Scripted::new()
        .expect("dasd.free", free_registers(&env.t, volume(), false))
        .expect("dasd.online", online_brings_up(&env.t, volume(), true));
    // dasd-eckd binds to the new device a moment after its registration.
    let t = env.t.clone();
    let events = ScriptedEvents::new().then(move || bind(&t, &volume()));
    let info = connector(&env, &moord, &events)
        .connect(&volume_props())
        .unwrap();
    assert_eq!(ops(&moord), ["dasd.free", "dasd.online"]);
    assert_eq!(info.device, "dasdb");
    assert_eq!(
        sysfs::cio_ignored(&env.t.paths(), BUSID.parse().unwrap()).unwrap(),
        Some(false)
    );
}

#[test]
fn a_device_that_is_neither_visible_nor_ignored_is_not_found() {
    let env = setup();
    set_ignored(&env.t, &[(0, 0xc000, 0xc0ff)]);
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "no CCW device 0.0.b100: not in /sys/bus/ccw/devices and not on the cio_ignore list"
        ),
        "{err}"
    );
    assert_eq!(env.t.snapshot(), before);
    env.t.remove("proc/cio_ignore");
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    assert!(err.to_string().contains("no /proc/cio_ignore"), "{err}");
    assert!(moord.calls().is_empty());
}

#[test]
fn a_device_that_is_not_an_eckd_dasd_is_refused() {
    let env = setup();
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"device_id": "0.0.f500"})))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("0.0.f500 is not an ECKD DASD: its driver is qeth (cutype 1731/01"),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn unformatted_dasd_is_refused_unless_formatting_was_asked_for() {
    let env = setup();
    online(&env, &unformatted());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    assert!(
        matches!(err, DasdError::Unformatted { ref device, .. } if device == "dasdb"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("is unformatted: set format_if_unformatted"),
        "{err}"
    );
    // Online before: nothing changed.
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn unformatted_dasd_set_online_by_the_attach_is_set_offline_again() {
    let env = setup();
    add_dasd(&env.t, &unformatted());
    let before = env.t.snapshot();
    let moord = Scripted::new()
        .expect("dasd.online", online_brings_up(&env.t, unformatted(), true))
        .expect_args(
            "dasd.safe_offline",
            json!({"busid": BUSID, "expected_uid": UID}),
            safe_offline_removes(&env.t, unformatted()),
        );
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("is unformatted") && msg.ends_with("0.0.b100 was set offline again"),
        "{msg}"
    );
    assert!(moord.unused().is_empty());
    assert_eq!(env.t.snapshot(), before, "the host is as it was");
}

#[test]
fn unformatted_dasd_is_formatted_when_asked() {
    let env = setup();
    online(&env, &unformatted());
    let moord = Scripted::new().expect("dasd.format", format_formats(&env.t, unformatted()));
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "uid": UID, "format_if_unformatted": true}),
        ))
        .unwrap();
    assert_eq!(ops(&moord), ["dasd.format"]);
    assert!(info.formatted);
    assert_eq!(info.size, MOD9_SECTORS * 512);
    assert!(info.partitions.is_empty());
    // udev's change event made the by-id links of the formatted volume.
    assert!(env.t.exists(&format!("dev/disk/by-id/ccw-{UID}")));
}

#[test]
fn formatted_then_partitioned_when_asked() {
    let env = setup();
    add_dasd(&env.t, &unformatted());
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("dasd.online", online_brings_up(&env.t, unformatted(), true))
        .expect("dasd.format", format_formats(&env.t, unformatted()))
        .expect_args(
            "dasd.partition",
            json!({"busid": BUSID, "device": "dasdb", "expected_uid": UID}),
            move |_| {
                partitioned(&t, &unformatted());
                ok("auto-creating one partition for the whole disk...\n")
            },
        );
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "format_if_unformatted": true,
                               "partition_after_format": true}),
        ))
        .unwrap();
    assert_eq!(
        ops(&moord),
        ["dasd.online", "dasd.format", "dasd.partition"]
    );
    assert!(info.formatted);
    assert_eq!(info.partitions, ["/dev/disk/by-path/ccw-0.0.b100-part1"]);
}

#[test]
fn formatting_not_granted_by_moord_is_a_clear_error_and_undone() {
    let env = setup();
    add_dasd(&env.t, &unformatted());
    let before = env.t.snapshot();
    let moord = Scripted::new()
        .expect("dasd.online", online_brings_up(&env.t, unformatted(), true))
        .expect("dasd.format", |_| {
            Err(PrivError::Refused {
                op: "dasd.format",
                code: "forbidden".into(),
                message: "operation dasd.format is not allowed for this caller".into(),
            })
        })
        .expect(
            "dasd.safe_offline",
            safe_offline_removes(&env.t, unformatted()),
        );
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "format_if_unformatted": true}),
        ))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("moord does not grant dasd.format to this caller")
            && msg.contains("was set offline again"),
        "{msg}"
    );
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn an_alias_is_refused() {
    // Online already: refused before anything changes.
    let env = setup();
    online(&env, &alias());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"device_id": "0.0.b1fe"})))
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "0.0.b1fe is a PAV alias device (uid IBM.750000000DXP71.2300.xx), not a volume"
        ),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);

    // Offline: known to be an alias only once online, then set offline again.
    let env = setup();
    add_dasd(&env.t, &alias());
    let before = env.t.snapshot();
    let moord = Scripted::new()
        .expect("dasd.online", online_brings_up(&env.t, alias(), true))
        .expect_args(
            "dasd.safe_offline",
            json!({"busid": "0.0.b1fe", "expected_uid": "IBM.750000000DXP71.2300.xx"}),
            safe_offline_removes(&env.t, alias()),
        );
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"device_id": "0.0.b1fe"})))
        .unwrap_err();
    assert!(matches!(err, DasdError::Undone { .. }), "{err}");
    assert!(err.to_string().contains("PAV alias"), "{err}");
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn a_failing_online_is_reported_and_nothing_to_undo() {
    let env = setup();
    add_dasd(&env.t, &volume());
    let before = env.t.snapshot();
    let moord = Scripted::new().expect("dasd.online", |_| {
        Ok(exec_reply(
            1,
            "Setting device 0.0.b100 online\n",
            "Failed (Input/output error)\n",
        ))
    });
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dasd.online 0.0.b100 failed: exit 1: Failed (Input/output error)"
    );
    assert_eq!(ops(&moord), ["dasd.online"]);
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn a_device_that_never_settles_hits_the_deadline() {
    let env = setup();
    add_dasd(&env.t, &volume());
    let t = env.t.clone();
    // The device goes online but the DASD driver stays in `basic` (no uid yet).
    let moord = Scripted::new().expect("dasd.online", move |_| {
        crate::host::fixture::write(&t.path("sys/devices/css0/0.0.0023/0.0.b100/online"), "1\n");
        crate::host::fixture::write(
            &t.path("sys/devices/css0/0.0.0023/0.0.b100/status"),
            "basic\n",
        );
        ok("")
    });
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("waiting for DASD 0.0.b100 to come online")
            && msg.contains("0.0.b100 was left online: its uid cannot be read"),
        "{msg}"
    );
    // No offline without a uid to guard it.
    assert_eq!(ops(&moord), ["dasd.online"]);
}

#[test]
fn dry_runs_plan_what_they_can() {
    // Ignored: free and online, then stop.
    let env = setup();
    set_ignored(&env.t, &[(0, 0xb100, 0xb100)]);
    let before = env.t.snapshot();
    let dry = DryRun::new();
    let err = connector(&env, &dry, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap_err();
    assert!(matches!(err, DasdError::DryRun(_)), "{err}");
    let planned = dry.planned();
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned[0].starts_with("dasd.free"), "{planned:?}");
    assert!(planned[1].starts_with("dasd.online"), "{planned:?}");
    assert_eq!(env.t.snapshot(), before);

    // Online and unformatted, format asked: the format is planned.
    let env = setup();
    online(&env, &unformatted());
    let dry = DryRun::new();
    let err = connector(&env, &dry, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "format_if_unformatted": true}),
        ))
        .unwrap_err();
    assert!(matches!(err, DasdError::DryRun(_)), "{err}");
    assert_eq!(dry.planned().len(), 1);
    assert!(dry.planned()[0].contains("dasdb") && dry.planned()[0].contains(UID));

    // Online and formatted: nothing to plan, nothing recorded.
    let env = setup();
    online(&env, &volume());
    let dry = DryRun::new();
    let info = connector(&env, &dry, &ScriptedEvents::new())
        .connect(&volume_props())
        .unwrap();
    assert!(dry.planned().is_empty());
    assert_eq!(info.device, "dasdb");
    assert!(env.registry().get("dasdb").is_none());
}

/// 0.0.c100 (dasdd): a volume of another storage server whose subsystem 2300 also
/// has a unit address 05.
fn twin() -> DasdSpec<'static> {
    DasdSpec {
        busid: "0.0.c100",
        schid: "0.0.0030",
        disk: "dasdd",
        minor: 12,
        uid: "IBM.75000000092461.2300.05",
        volser: "0X0C100",
        ..volume()
    }
}

#[test]
fn subsystem_id_and_unit_address_are_checked_with_a_bus_id() {
    // Online already: checked, nothing privileged.
    let env = setup();
    online(&env, &volume());
    let moord = Scripted::new();
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "subsystem_id": "2300", "ua": "05"}),
        ))
        .unwrap();
    assert_eq!((info.busid.as_str(), info.uid.as_str()), (BUSID, UID));
    assert!(moord.calls().is_empty());

    // Offline: checked once online, and it stays online.
    let env = setup();
    add_dasd(&env.t, &volume());
    let moord = Scripted::new().expect("dasd.online", online_brings_up(&env.t, volume(), true));
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"device_id": BUSID, "subsystem_id": "2300", "unit_address": "05"}),
        ))
        .unwrap();
    assert_eq!(ops(&moord), ["dasd.online"]);
    assert_eq!(info.device, "dasdb");
}

#[test]
fn another_volume_is_refused_before_anything_changes() {
    let env = setup();
    online(&env, &volume());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    for (v, needle) in [
        (
            json!({"device_id": BUSID, "uid": OTHER_UID}),
            format!("0.0.b100 carries uid {UID}, not {OTHER_UID}"),
        ),
        (
            json!({"device_id": BUSID, "unit_address": "06"}),
            format!(
                "0.0.b100 carries uid {UID}, whose unit_address is 05, not 06: it is not this volume"
            ),
        ),
        (
            json!({"device_id": BUSID, "subsystem_id": "2301", "ua": "05"}),
            format!("0.0.b100 carries uid {UID}, whose subsystem_id is 2300, not 2301"),
        ),
    ] {
        let err = connector(&env, &moord, &ScriptedEvents::new())
            .connect(&props(v.clone()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                DasdError::AddressMismatch { .. } | DasdError::UidMismatch { .. }
            ),
            "{v}: {err}"
        );
        assert!(err.to_string().contains(&needle), "{v}: {err}");
    }
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
    assert!(env.registry().get("dasdb").is_none());
}

#[test]
fn another_volume_behind_an_offline_device_is_set_offline_again() {
    for (v, needle) in [
        (
            json!({"device_id": BUSID, "uid": OTHER_UID}),
            format!("0.0.b100 carries uid {UID}, not {OTHER_UID}"),
        ),
        (
            json!({"device_id": BUSID, "subsystem_id": "2300", "ua": "06"}),
            "whose unit_address is 05, not 06".to_string(),
        ),
    ] {
        let env = setup();
        add_dasd(&env.t, &volume());
        // The IPL DASD stays online: only what this attach set online goes offline.
        let before = env.t.snapshot();
        let moord = Scripted::new()
            .expect("dasd.online", online_brings_up(&env.t, volume(), true))
            // Guarded by the uid the device shows, not the one asked for.
            .expect_args(
                "dasd.safe_offline",
                json!({"busid": BUSID, "expected_uid": UID}),
                safe_offline_removes(&env.t, volume()),
            );
        let err = connector(&env, &moord, &ScriptedEvents::new())
            .connect(&props(v.clone()))
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DasdError::Undone { .. }), "{v}: {msg}");
        assert!(
            msg.contains(&needle) && msg.ends_with("0.0.b100 was set offline again"),
            "{v}: {msg}"
        );
        assert_eq!(ops(&moord), ["dasd.online", "dasd.safe_offline"], "{v}");
        assert!(moord.unused().is_empty(), "{v}");
        assert_eq!(env.t.snapshot(), before, "{v}: the host is as it was");
        assert!(env.registry().get("dasdb").is_none(), "{v}");
    }
}

#[test]
fn without_a_bus_id_the_one_online_dasd_with_that_address_is_attached() {
    let env = setup();
    online(&env, &volume());
    // A base-PAV alias shows its base device's unit address: never a candidate.
    let base_pav = DasdSpec {
        uid: UID,
        ..alias()
    };
    online(&env, &base_pav);
    let moord = Scripted::new();
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"subsystem_id": "2300", "unit_address": "05"}),
        ))
        .unwrap();
    assert!(moord.calls().is_empty());
    assert_eq!(
        (info.busid.as_str(), info.uid.as_str(), info.device.as_str()),
        (BUSID, UID, "dasdb")
    );
    assert_eq!(info.path, "/dev/disk/by-path/ccw-0.0.b100");
    // The IPL DASD (subsystem 1500, unit address 20) is found the same way.
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"subsystem_id": "1500", "ua": "20"})))
        .unwrap();
    assert_eq!(info.busid, "0.0.0150");
}

#[test]
fn an_offline_dasd_is_never_found_and_never_set_online_to_look() {
    let env = setup();
    add_dasd(&env.t, &volume());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"subsystem_id": "2300", "unit_address": "05"}),
        ))
        .unwrap_err();
    assert!(matches!(err, DasdError::NoOnlineMatch { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "no online DASD shows subsystem id 2300 and unit address 05: only a DASD that is online shows its unit address"
        ) && err.to_string().contains("give device_id"),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
    // Once online (by someone else), the same lookup finds it.
    kernel_online(&env.t, &volume());
    udev_online(&env.t, &volume());
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"subsystem_id": "2300", "unit_address": "05"}),
        ))
        .unwrap();
    assert_eq!(info.busid, BUSID);
}

#[test]
fn no_online_dasd_with_that_address_is_refused() {
    let env = setup();
    online(&env, &volume());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    for v in [
        json!({"subsystem_id": "2300", "unit_address": "06"}),
        json!({"subsystem_id": "2301", "unit_address": "05"}),
        // Same address, another storage server's serial.
        json!({"subsystem_id": "2300", "unit_address": "05", "uid": "IBM.75000000092461.2300.05"}),
    ] {
        let err = connector(&env, &moord, &ScriptedEvents::new())
            .connect(&props(v.clone()))
            .unwrap_err();
        assert!(matches!(err, DasdError::NoOnlineMatch { .. }), "{v}: {err}");
    }
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
}

#[test]
fn two_storage_servers_with_the_same_address_are_ambiguous() {
    let env = setup();
    online(&env, &volume());
    unignore(&env.t, "0.0.c100");
    online(&env, &twin());
    let before = env.t.snapshot();
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(
            json!({"subsystem_id": "2300", "unit_address": "05"}),
        ))
        .unwrap_err();
    assert!(matches!(err, DasdError::SeveralMatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "several online DASDs show subsystem id 2300 and unit address 05: 0.0.b100 (uid {UID}), 0.0.c100 (uid IBM.75000000092461.2300.05); give device_id, or the full uid"
        )),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    assert_eq!(env.t.snapshot(), before);
    // The full uid tells them apart.
    let info = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"subsystem_id": "2300", "unit_address": "05",
                               "uid": "IBM.75000000092461.2300.05"})))
        .unwrap();
    assert_eq!(
        (info.busid.as_str(), info.device.as_str()),
        ("0.0.c100", "dasdd")
    );
}

#[test]
fn a_lookup_then_a_uid_that_differs_only_in_the_vduit_is_refused() {
    // The lookup matches vendor, serial, subsystem id and unit address; the full
    // uid check after it names both values.
    let env = setup();
    online(&env, &volume());
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&props(json!({"subsystem_id": "2300", "unit_address": "05",
                               "uid": format!("{UID}.00ff")})))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("0.0.b100 carries uid {UID}, not {UID}.00ff")),
        "{err}"
    );
    assert!(moord.calls().is_empty());
}

#[test]
fn a_lookup_without_an_address_is_refused() {
    // Fields are public: a DasdProps built by hand without bus id or address must
    // not match whatever DASD is online.
    let env = setup();
    online(&env, &volume());
    let mut p = props(json!({"subsystem_id": "2300", "unit_address": "05"}));
    p.unit_address = None;
    let moord = Scripted::new();
    let err = connector(&env, &moord, &ScriptedEvents::new())
        .connect(&p)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("missing connection property device_id"),
        "{err}"
    );
}
