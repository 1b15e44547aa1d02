//! Detach, extend and volume paths on fixture trees: the scripted moord changes the
//! tree as the kernel would (deleting a controller removes its namespaces).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::attachments::Registry;
use crate::exec::{DryRun, PrivError, Scripted, exec_reply};
use crate::host::fixture::{Tree, write};
use crate::host::udev::ScriptedEvents;
use crate::transport::nvmeof::test_support::*;

const A1: &str = "10.0.0.1";
const A2: &str = "10.0.1.1";

fn props(portals: &[&str]) -> NvmeofProps {
    let portals: Vec<Value> = portals.iter().map(|a| json!([a, 4420, "tcp"])).collect();
    NvmeofProps::from_connection_info(
        &json!({"target_nqn": SUBSYS, "vol_uuid": UUID1, "ns_id": 1, "portals": portals}),
    )
    .unwrap()
}

/// What attach returned for namespace UUID1 at nsid 1 on `path`.
fn info(path: &str, ctrls: &[&str], multipath: bool) -> DeviceInfo {
    DeviceInfo {
        kind: "block".into(),
        path: path.into(),
        subsysnqn: SUBSYS.into(),
        uuid: Some(UUID1.into()),
        nguid: None,
        nsid: Some(1),
        wwid: Some(format!("uuid.{UUID1}")),
        controllers: ctrls.iter().map(|c| c.to_string()).collect(),
        multipath,
        raid: None,
    }
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

fn flushed(_: &Value) -> Result<Value, PrivError> {
    Ok(exec_reply(0, "", ""))
}

/// moord's `nvme.disconnect` of controller `c`: the kernel deletes it.
fn deletes(
    t: &Tree,
    c: u32,
    s: u32,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_: &Value| {
        remove_controller(&t, c, s);
        Ok(json!({}))
    }
}

fn disconnect_args(c: &str, traddr: &str) -> Value {
    json!({"controller": c, "expected_subsysnqn": SUBSYS, "expected_transport": "tcp",
           "expected_traddr": traddr, "expected_trsvcid": 4420, "expected_hostnqn": HOSTNQN})
}

#[test]
fn single_path_detach_flushes_disconnects_and_waits_for_removal() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    record_attached(&env, "nvme0n1");
    let moord = Scripted::new()
        .expect_args(
            "block.flush",
            json!({"device": "nvme0n1", "expected_wwid": format!("uuid.{UUID1}")}),
            flushed,
        )
        .expect_args(
            "nvme.disconnect",
            disconnect_args("nvme0", A1),
            deletes(&env.t, 0, 0),
        );
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.removed, ["/dev/nvme0n1"]);
    assert_eq!(out.disconnected, ["nvme0 tcp:10.0.0.1:4420"]);
    assert!(out.kept_controllers.is_empty() && out.leftovers.is_empty());
    assert!(moord.unused().is_empty());
    assert!(!env.t.exists("sys/class/nvme/nvme0"));
    assert!(!env.t.exists("dev/nvme0n1"));
    assert!(!env.t.exists("run/moor/attachments/nvme0n1.json"));
}

#[test]
fn multipath_detach_disconnects_every_path() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_controller(&env.t, 1, 0, &tcp(SUBSYS, A2));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&env.t, 1, 0, &ns(1, UUID1), true);
    let moord = Scripted::new()
        .expect_args("block.flush", json!({"device": "nvme0n1"}), flushed)
        .expect_args(
            "nvme.disconnect",
            disconnect_args("nvme0", A1),
            deletes(&env.t, 0, 0),
        )
        .expect_args(
            "nvme.disconnect",
            disconnect_args("nvme1", A2),
            deletes(&env.t, 1, 0),
        );
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1, A2]),
            &info("/dev/nvme0n1", &["nvme0", "nvme1"], true),
            false,
            false,
        )
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.removed, ["/dev/nvme0n1"]);
    assert_eq!(out.disconnected.len(), 2);
    assert!(!env.t.exists("sys/block/nvme0n1"));
}

/// Another volume of the subsystem attached through moor (its record).
fn record_attached(env: &Env, device: &str) {
    let registry = Registry::new(env.t.path("run/moor/attachments"));
    registry
        .record(&crate::attachments::Attachment {
            device: device.into(),
            wwid: format!("uuid.{UUID2}"),
            sysfs_ino: crate::attachments::device_ino(&env.t.paths(), device)
                .unwrap()
                .unwrap(),
            protocol: "nvmeof".into(),
            target: format!("{SUBSYS} nsid 2"),
            volume_id: None,
            attached_at: 0,
        })
        .unwrap();
}

#[test]
fn a_controller_with_another_namespace_in_use_is_kept() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&env.t, 0, 0, &ns(2, UUID2), true);
    record_attached(&env, "nvme0n2");
    let moord = Scripted::new().expect("block.flush", flushed);
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], true),
            false,
            false,
        )
        .unwrap();
    assert_eq!(ops(&moord), ["block.flush"]);
    assert_eq!(out.status, "clean");
    assert!(out.disconnected.is_empty() && out.removed.is_empty());
    assert_eq!(out.kept_controllers.len(), 1);
    let kept = &out.kept_controllers[0];
    assert_eq!(kept.what, "controller nvme0 tcp:10.0.0.1:4420");
    assert!(
        kept.reason.contains(
            "/dev/nvme0n2 (nsid 2), attached by moor (nqn.2016-06.io.spdk:cnode1 nsid 2)"
        ),
        "{kept:?}"
    );
    assert!(
        kept.reason.contains("until the target unmaps it"),
        "{kept:?}"
    );
    assert!(env.t.exists("sys/class/nvme/nvme0"));

    // Held by an MD array, or mounted: in use too.
    for how in ["holder", "mount"] {
        let env = setup(false);
        add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
        add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
        add_namespace(&env.t, 0, 0, &ns(2, UUID2), false);
        if how == "holder" {
            write(&env.t.path("sys/block/nvme0n2/holders/md0/dev"), "9:0\n");
        } else {
            write(
                &env.t.path("proc/self/mountinfo"),
                "22 1 259:2 / /srv rw,relatime - ext4 /dev/nvme0n2 rw\n",
            );
        }
        let moord = Scripted::new().expect("block.flush", flushed);
        let out = connector(&env, &moord, &events, true)
            .disconnect(
                &props(&[A1]),
                &info("/dev/nvme0n1", &["nvme0"], false),
                false,
                false,
            )
            .unwrap();
        let reason = &out.kept_controllers[0].reason;
        let want = if how == "holder" {
            "held by md0"
        } else {
            "mounted"
        };
        assert!(reason.contains(want), "{how}: {reason}");
    }
}

#[test]
fn unclaimed_namespaces_go_with_the_controller() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    // The target exports another namespace to this host that nothing attached.
    add_namespace(&env.t, 0, 0, &ns(2, UUID2), false);
    let moord = Scripted::new()
        .expect("block.flush", flushed)
        .expect("nvme.disconnect", deletes(&env.t, 0, 0));
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.unclaimed_removed, ["/dev/nvme0n2"]);
    assert_eq!(out.removed, ["/dev/nvme0n1"]);
    assert!(out.kept_controllers.is_empty());
}

#[test]
fn a_namespace_that_changed_identity_is_not_touched() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    // The array gave nsid 1 to another volume.
    change_identity(&env.t, 0, 0, &ns(1, UUID2));
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap_err();
    let NvmeofError::Incomplete(out) = err else {
        panic!("{err:?}")
    };
    assert!(moord.calls().is_empty(), "{:?}", moord.calls());
    assert_eq!(out.status, "leftovers");
    assert_eq!(out.leftovers[0].what, "/dev/nvme0n1");
    assert!(out.leftovers[0].reason.contains("identity changed"));
    assert_eq!(out.kept_controllers.len(), 1);
    // ignore_errors: the same outcome, returned.
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            true,
        )
        .unwrap();
    assert_eq!(out.status, "leftovers");
}

#[test]
fn moord_identity_refusal_on_flush_leaves_the_device() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    let moord = Scripted::new().expect("block.flush", |_| {
        Err(PrivError::IdentityMismatch {
            op: "block.flush",
            message: "nvme0n1 changed".into(),
        })
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap_err();
    let NvmeofError::Incomplete(out) = err else {
        panic!("{err:?}")
    };
    // The controller shows the device moord refused: kept.
    assert_eq!(ops(&moord), ["block.flush"]);
    assert_eq!(out.kept_controllers.len(), 1);
    assert!(env.t.exists("sys/class/nvme/nvme0"));
}

#[test]
fn failed_flush_detaches_nothing_unless_forced() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    let moord = Scripted::new().expect("block.flush", |_| Ok(exec_reply(1, "", "I/O error\n")));
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events, true);
    let i = info("/dev/nvme0n1", &["nvme0"], false);
    let err = c.disconnect(&props(&[A1]), &i, false, false).unwrap_err();
    assert!(
        matches!(&err, NvmeofError::FlushFailed { device, .. } if device == "/dev/nvme0n1"),
        "{err:?}"
    );
    assert_eq!(ops(&moord), ["block.flush"]);
    assert!(env.t.exists("sys/class/nvme/nvme0"));

    let moord = Scripted::new()
        .expect("block.flush", |_| Ok(exec_reply(1, "", "I/O error\n")))
        .expect("nvme.disconnect", deletes(&env.t, 0, 0));
    let out = connector(&env, &moord, &events, true)
        .disconnect(&props(&[A1]), &i, true, false)
        .unwrap();
    assert_eq!(out.status, "clean-with-data-loss");
    assert_eq!(out.data_loss_risk, ["/dev/nvme0n1"]);
    assert_eq!(out.removed, ["/dev/nvme0n1"]);
}

#[test]
fn no_live_path_is_not_flushed() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    set_state(&env.t, 0, "connecting");
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let i = info("/dev/nvme0n1", &["nvme0"], true);
    let err = connector(&env, &moord, &events, true)
        .disconnect(&props(&[A1]), &i, false, false)
        .unwrap_err();
    assert!(
        err.to_string().contains("no live path (nvme0 Connecting)"),
        "{err}"
    );
    assert!(moord.calls().is_empty());
    // Forced: no flush (it would hang), the controller goes.
    let moord = Scripted::new().expect("nvme.disconnect", deletes(&env.t, 0, 0));
    let out = connector(&env, &moord, &events, true)
        .disconnect(&props(&[A1]), &i, true, false)
        .unwrap();
    assert_eq!(ops(&moord), ["nvme.disconnect"]);
    assert_eq!(out.status, "clean-with-data-loss");
}

#[test]
fn an_empty_controller_on_the_volumes_portal_is_disconnected() {
    let env = setup(false);
    // The target unmapped the namespace already; the controller shows nothing.
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    // Another subsystem's controller on the same portal is not ours.
    add_controller(&env.t, 1, 1, &tcp(SUBSYS2, A1));
    let moord = Scripted::new().expect_args(
        "nvme.disconnect",
        disconnect_args("nvme0", A1),
        deletes(&env.t, 0, 0),
    );
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(out.disconnected.len(), 1);
    assert!(out.removed.is_empty());
    assert!(env.t.exists("sys/class/nvme/nvme1"));
}

#[test]
fn a_device_that_does_not_go_is_a_leftover() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    // moord reports success but the kernel keeps everything.
    let moord = Scripted::new()
        .expect("block.flush", flushed)
        .expect("nvme.disconnect", |_| Ok(json!({})));
    let events = ScriptedEvents::new();
    let mut c = connector(&env, &moord, &events, true);
    c.options.timeout = Duration::from_millis(200);
    let err = c
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap_err();
    let NvmeofError::Incomplete(out) = err else {
        panic!("{err:?}")
    };
    let what: Vec<&str> = out.leftovers.iter().map(|l| l.what.as_str()).collect();
    assert_eq!(what, ["/dev/nvme0n1", "controller nvme0 tcp:10.0.0.1:4420"]);
}

#[test]
fn device_info_must_identify_the_same_volume() {
    let env = setup(false);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events, true);
    let mut i = info("/dev/nvme0n1", &["nvme0"], false);
    i.uuid = None;
    i.nsid = None;
    assert!(matches!(
        c.disconnect(&props(&[A1]), &i, false, false),
        Err(NvmeofError::NoIdentity)
    ));
    let mut i = info("/dev/nvme0n1", &["nvme0"], false);
    i.subsysnqn = SUBSYS2.into();
    assert!(matches!(
        c.disconnect(&props(&[A1]), &i, false, false),
        Err(NvmeofError::BadDeviceInfo(_))
    ));
    let mut i = info("/dev/nvme0n1", &["nvme0"], false);
    i.uuid = Some(UUID2.into());
    let err = c.extend(&props(&[A1]), &i).unwrap_err();
    assert!(err.to_string().contains("different namespaces"), "{err}");
    assert!(moord.calls().is_empty());
}

#[test]
fn dry_run_plans_the_detach() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    let dry = DryRun::new();
    let events = ScriptedEvents::new();
    let out = connector(&env, &dry, &events, true)
        .disconnect(
            &props(&[A1]),
            &info("/dev/nvme0n1", &["nvme0"], false),
            false,
            false,
        )
        .unwrap();
    let planned = dry.planned();
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned[0].contains("block.flush"), "{planned:?}");
    assert!(planned[1].contains("nvme.disconnect"), "{planned:?}");
    assert_eq!(out.removed, ["/dev/nvme0n1"]);
    assert!(env.t.exists("sys/class/nvme/nvme0"));
}

#[test]
fn extend_rescans_and_waits_for_the_new_size() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_controller(&env.t, 1, 0, &tcp(SUBSYS, A2));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&env.t, 1, 0, &ns(1, UUID1), true);
    let moord = Scripted::new()
        .expect_args("nvme.ns_rescan", json!({"controller": "nvme0"}), |_| {
            Ok(json!({}))
        })
        .expect_args("nvme.ns_rescan", json!({"controller": "nvme1"}), |_| {
            Ok(json!({}))
        });
    // The kernel's asynchronous scan: one path first, then the other and the head.
    let (t1, t2) = (env.t.clone(), env.t.clone());
    let events = ScriptedEvents::new()
        .then(move || set_size(&t1, 0, 0, 1, 4_194_304))
        .then(move || set_size(&t2, 1, 0, 1, 4_194_304));
    let got = connector(&env, &moord, &events, true)
        .extend(
            &props(&[A1, A2]),
            &info("/dev/nvme0n1", &["nvme0", "nvme1"], true),
        )
        .unwrap();
    assert_eq!(got.new_size, 4_194_304 * 512);
    assert_eq!(got.path, "/dev/nvme0n1");
    assert_eq!(
        got.paths,
        [
            ("nvme0c0n1".to_string(), 4_194_304 * 512),
            ("nvme0c1n1".to_string(), 4_194_304 * 512)
        ]
    );
    assert_eq!(events.steps_run(), 2);
}

#[test]
fn extend_refuses_paths_that_disagree() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_controller(&env.t, 1, 0, &tcp(SUBSYS, A2));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&env.t, 1, 0, &ns(1, UUID1), true);
    // One path is down and keeps the old size.
    set_state(&env.t, 1, "connecting");
    let moord = Scripted::new().expect("nvme.ns_rescan", |_| Ok(json!({})));
    let t = env.t.clone();
    let events = ScriptedEvents::new().then(move || {
        set_size(&t, 0, 0, 1, 4_194_304);
    });
    let err = connector(&env, &moord, &events, true)
        .extend(
            &props(&[A1, A2]),
            &info("/dev/nvme0n1", &["nvme0", "nvme1"], true),
        )
        .unwrap_err();
    assert!(
        matches!(&err, NvmeofError::Inconsistent(m) if m.contains("nvme0c1n1 1073741824 bytes")),
        "{err}"
    );
}

#[test]
fn extend_of_an_unchanged_volume_returns_its_size() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    let moord = Scripted::new().expect("nvme.ns_rescan", |_| Ok(json!({})));
    let events = ScriptedEvents::new();
    let mut c = connector(&env, &moord, &events, true);
    c.options.timeout = Duration::from_millis(300);
    let got = c
        .extend(&props(&[A1]), &info("/dev/nvme0n1", &["nvme0"], false))
        .unwrap();
    assert_eq!(got.new_size, 2_097_152 * 512);
}

#[test]
fn volume_paths_by_identity() {
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_controller(&env.t, 1, 0, &tcp(SUBSYS, A2));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), false);
    add_namespace(&env.t, 1, 0, &ns(1, UUID1), false);
    add_namespace(&env.t, 0, 0, &ns(2, UUID2), false);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &moord, &events, true);
    assert_eq!(
        c.volume_paths(&props(&[A1, A2])).unwrap(),
        ["/dev/nvme0n1", "/dev/nvme1n1"]
    );
    change_identity(&env.t, 1, 0, &ns(1, UUID2));
    assert!(matches!(
        c.volume_paths(&props(&[A1, A2])),
        Err(NvmeofError::IdentityMismatch { .. })
    ));
}
