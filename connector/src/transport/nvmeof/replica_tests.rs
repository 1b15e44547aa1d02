//! Replicated volumes on fixture trees: the scripted moord creates controllers,
//! namespaces and MD arrays as the kernel and mdadm would.

use serde_json::{Value, json};

use super::*;
use crate::exec::{DryRun, PrivError, Scripted, exec_reply};
use crate::host::fixture::{Tree, write};
use crate::host::udev::ScriptedEvents;
use crate::transport::nvmeof::test_support::*;

const A1: &str = "10.0.0.1";
const A2: &str = "10.0.1.1";
const VOL: &str = "6f1c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";

fn props(count: usize) -> NvmeofProps {
    let legs = [
        json!({"target_nqn": SUBSYS, "vol_uuid": UUID1, "portals": [[A1, 4420, "tcp"]]}),
        json!({"target_nqn": SUBSYS2, "vol_uuid": UUID2, "portals": [[A2, 4420, "tcp"]]}),
    ];
    NvmeofProps::from_connection_info(&json!({
        "vol_uuid": VOL, "alias": "vol1", "replica_count": count,
        "volume_replicas": legs[..count]}))
    .unwrap()
}

/// `nvme.connect`: the kernel creates controller `c` (subsystem `c`) with the
/// replica's namespace as `nvme<c>n1`.
fn connect_leg(
    t: &Tree,
    c: u32,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |args: &Value| {
        let (nqn, addr, uuid) = if c == 0 {
            (SUBSYS, A1, UUID1)
        } else {
            (SUBSYS2, A2, UUID2)
        };
        assert_eq!(args["nqn"], nqn);
        add_controller(&t, c, c, &tcp(nqn, addr));
        add_namespace(
            &t,
            c,
            c,
            &NsSpec {
                head: 1,
                nsid: 1,
                uuid: Some(uuid),
                nguid: None,
                size_sectors: 2_097_152,
            },
            false,
        );
        Ok(exec_reply(0, &format!("device: nvme{c}\n"), ""))
    }
}

/// [`connect_leg`] 0, whose namespace carries MD metadata (a leg of the array).
fn connect_member_leg(t: &Tree) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |a: &Value| {
        let r = connect_leg(&t, 0)(a);
        mark_raid_member(&t, "nvme0n1");
        r
    }
}

fn fails(_: &Value) -> Result<Value, PrivError> {
    Ok(exec_reply(1, "", "could not connect: Connection refused\n"))
}

fn ok(_: &Value) -> Result<Value, PrivError> {
    Ok(exec_reply(0, "", ""))
}

fn legs_json() -> Value {
    json!([
        {"device": "nvme0n1", "expected_wwid": format!("uuid.{UUID1}")},
        {"device": "nvme1n1", "expected_wwid": format!("uuid.{UUID2}")},
    ])
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

/// mdadm creates or assembles md127 over the given legs.
fn makes_md(
    t: &Tree,
    legs: &'static [&'static str],
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_: &Value| {
        add_md(&t, 127, "vol1", legs, "clean", 2_097_152 - 4096);
        Ok(exec_reply(0, "", "mdadm: array /dev/md/vol1 started.\n"))
    }
}

#[test]
fn new_legs_make_a_new_array() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect("nvme.connect", connect_leg(&env.t, 0))
        .expect("nvme.connect", connect_leg(&env.t, 1))
        .expect_args(
            "md.create",
            json!({"name": "vol1", "legs": legs_json()}),
            makes_md(&env.t, &["nvme0n1", "nvme1n1"]),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap();
    assert_eq!(info.path, "/dev/md/vol1");
    let raid = info.raid.as_ref().unwrap();
    assert_eq!(raid.how, "created");
    assert_eq!(raid.device, "md127");
    let paths: Vec<&str> = raid.legs.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["/dev/nvme0n1", "/dev/nvme1n1"]);
    assert!(raid.missing.is_empty());
    assert!(moord.unused().is_empty());
    // device_info round-trips through JSON for detach.
    let back: DeviceInfo = serde_json::from_value(serde_json::to_value(&info).unwrap()).unwrap();
    assert_eq!(back, info);
}

#[test]
fn legs_with_md_metadata_are_assembled_even_degraded() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect("nvme.connect", connect_member_leg(&env.t))
        .expect("nvme.connect", fails)
        .expect_args(
            "md.assemble",
            json!({"name": "vol1", "legs": [legs_json()[0].clone()]}),
            makes_md(&env.t, &["nvme0n1"]),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap();
    let raid = info.raid.unwrap();
    assert_eq!(raid.how, "assembled");
    assert_eq!(raid.legs.len(), 1);
    assert_eq!(raid.missing.len(), 1);
    assert!(
        raid.missing[0].starts_with("volume_replicas[1]"),
        "{:?}",
        raid.missing
    );
}

#[test]
fn a_blank_leg_next_to_the_arrays_leg_is_attached_but_not_assembled() {
    // The control plane replaced a failed replica with a new, blank namespace:
    // mdadm --assemble would abort on it, and moor does not rebuild by itself.
    let env = setup(false);
    let moord = Scripted::new()
        .expect("nvme.connect", connect_member_leg(&env.t))
        .expect("nvme.connect", connect_leg(&env.t, 1))
        .expect_args(
            "md.assemble",
            json!({"name": "vol1", "legs": [legs_json()[0].clone()]}),
            makes_md(&env.t, &["nvme0n1"]),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap();
    let raid = info.raid.unwrap();
    assert_eq!(raid.how, "assembled");
    assert_eq!(
        raid.legs.len(),
        2,
        "both legs are the volume's (detach disconnects both)"
    );
    assert_eq!(raid.not_in_array, ["/dev/nvme1n1"]);
    assert!(raid.missing.is_empty());
    assert!(moord.unused().is_empty());
}

#[test]
fn a_new_array_needs_every_leg_and_the_attached_ones_are_undone() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect("nvme.connect", connect_leg(&env.t, 0))
        .expect("nvme.connect", fails)
        .expect_args("block.flush", json!({"device": "nvme0n1"}), ok)
        .expect("nvme.disconnect", {
            let t = env.t.clone();
            move |_| {
                remove_controller(&t, 0, 0);
                Ok(json!({}))
            }
        });
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            NvmeofError::NotAllReplicas {
                attached: 1,
                count: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(!ops(&moord).iter().any(|o| o.starts_with("md.")));
    assert!(moord.unused().is_empty());
    assert!(!env.t.exists("sys/class/nvme/nvme0"));
}

#[test]
fn a_running_array_is_reused() {
    let env = setup(false);
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("nvme.connect", connect_leg(&env.t, 0))
        .expect("nvme.connect", move |a| {
            let r = connect_leg(&t, 1)(a);
            // udev assembled the array as soon as both legs showed.
            add_md(&t, 127, "vol1", &["nvme0n1", "nvme1n1"], "active", 1000);
            r
        });
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap();
    assert_eq!(info.raid.unwrap().how, "reused");
    assert_eq!(ops(&moord), ["nvme.connect", "nvme.connect"]);
}

#[test]
fn a_leg_of_another_array_is_refused() {
    let env = setup(false);
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect("nvme.connect", move |a| {
            let r = connect_leg(&t, 0)(a);
            add_md(&t, 5, "other", &["nvme0n1"], "clean", 1000);
            r
        })
        .expect("nvme.connect", connect_leg(&env.t, 1))
        // Only the leg no array holds is undone.
        .expect_args("block.flush", json!({"device": "nvme1n1"}), ok)
        .expect("nvme.disconnect", |_| Ok(json!({})));
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, false)
        .connect(&props(2))
        .unwrap_err();
    assert!(
        matches!(&err, NvmeofError::LegInUse { leg, array, .. } if leg == "/dev/nvme0n1" && array == "md5"),
        "{err}"
    );
}

#[test]
fn one_replica_without_metadata_is_the_namespace_itself() {
    let env = setup(false);
    let moord = Scripted::new().expect("nvme.connect", connect_leg(&env.t, 0));
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(1))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
    assert!(info.raid.is_none());
    assert_eq!(info.subsysnqn, SUBSYS);
}

#[test]
fn dry_run_plans_every_leg() {
    let env = setup(false);
    let dry = DryRun::new();
    let events = ScriptedEvents::new();
    let err = connector(&env, &dry, &events, false)
        .connect(&props(2))
        .unwrap_err();
    assert!(matches!(err, NvmeofError::DryRun(_)), "{err}");
    let planned = dry.planned();
    assert_eq!(
        planned
            .iter()
            .filter(|p| p.contains("nvme.connect"))
            .count(),
        2,
        "{planned:?}"
    );
}

/// An attached replicated volume: both legs and md127.
fn attached(env: &Env) -> DeviceInfo {
    let moord = Scripted::new()
        .expect("nvme.connect", connect_leg(&env.t, 0))
        .expect("nvme.connect", connect_leg(&env.t, 1))
        .expect("md.create", makes_md(&env.t, &["nvme0n1", "nvme1n1"]));
    let events = ScriptedEvents::new();
    connector(env, &moord, &events, false)
        .connect(&props(2))
        .unwrap()
}

fn deletes(t: &Tree, c: u32) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |_| {
        remove_controller(&t, c, c);
        Ok(json!({}))
    }
}

#[test]
fn detach_stops_the_array_then_detaches_the_legs_without_a_flush() {
    let env = setup(false);
    let info = attached(&env);
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect_args(
            "md.stop",
            json!({"device": "md127", "name": "vol1", "legs": legs_json()}),
            move |_| {
                remove_md(&t, 127, "vol1");
                Ok(exec_reply(0, "", "mdadm: stopped /dev/md127\n"))
            },
        )
        .expect("nvme.disconnect", deletes(&env.t, 0))
        .expect("nvme.disconnect", deletes(&env.t, 1));
    let events = ScriptedEvents::new();
    let out = connector(&env, &moord, &events, false)
        .disconnect(&props(2), &info, false, false)
        .unwrap();
    assert_eq!(out.status, "clean");
    assert_eq!(
        out.removed,
        ["/dev/md/vol1", "/dev/nvme0n1", "/dev/nvme1n1"]
    );
    assert_eq!(out.disconnected.len(), 2);
    assert!(moord.unused().is_empty());
}

#[test]
fn an_array_that_will_not_stop_detaches_nothing() {
    let env = setup(false);
    let info = attached(&env);
    let moord = Scripted::new().expect("md.stop", |_| {
        Ok(exec_reply(
            1,
            "",
            "mdadm: Cannot get exclusive access to /dev/md127\n",
        ))
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, false)
        .disconnect(&props(2), &info, false, false)
        .unwrap_err();
    assert!(
        matches!(&err, NvmeofError::FlushFailed { device, .. } if device == "/dev/md/vol1"),
        "{err}"
    );
    assert_eq!(ops(&moord), ["md.stop"]);
    assert!(env.t.exists("sys/class/nvme/nvme0"));
}

#[test]
fn an_array_moord_does_not_recognise_is_left_alone() {
    let env = setup(false);
    let info = attached(&env);
    let moord = Scripted::new().expect("md.stop", |_| {
        Err(PrivError::IdentityMismatch {
            op: "md.stop",
            message: "md127 has slave sdb".into(),
        })
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, false)
        .disconnect(&props(2), &info, false, false)
        .unwrap_err();
    let NvmeofError::Incomplete(out) = err else {
        panic!("{err:?}")
    };
    assert_eq!(out.leftovers[0].what, "/dev/md/vol1");
    assert_eq!(ops(&moord), ["md.stop"]);
}

#[test]
fn a_leg_not_in_the_connection_info_is_refused_before_anything_runs() {
    let env = setup(false);
    let info = attached(&env);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let err = connector(&env, &moord, &events, false)
        .disconnect(&props(1), &info, false, false)
        .unwrap_err();
    assert!(matches!(err, NvmeofError::BadDeviceInfo(_)), "{err}");
    assert!(moord.calls().is_empty());
}

#[test]
fn extend_rescans_the_legs_then_grows_the_array() {
    let env = setup(false);
    let info = attached(&env);
    let (t1, t2, t3) = (env.t.clone(), env.t.clone(), env.t.clone());
    let moord = Scripted::new()
        .expect_args(
            "nvme.ns_rescan",
            json!({"controller": "nvme0"}),
            move |_| {
                set_size(&t1, 0, 0, 1, 4_194_304);
                Ok(json!({}))
            },
        )
        .expect_args(
            "nvme.ns_rescan",
            json!({"controller": "nvme1"}),
            move |_| {
                set_size(&t2, 1, 1, 1, 4_194_304);
                Ok(json!({}))
            },
        )
        .expect_args(
            "md.grow",
            json!({"device": "md127", "name": "vol1", "legs": legs_json()}),
            move |_| {
                write(
                    &t3.path("sys/devices/virtual/block/md127/size"),
                    "4190208\n",
                );
                Ok(exec_reply(0, "", ""))
            },
        );
    let events = ScriptedEvents::new();
    let got = connector(&env, &moord, &events, false)
        .extend(&props(2), &info)
        .unwrap();
    assert_eq!(got.new_size, 4_190_208 * 512);
    assert_eq!(got.path, "/dev/md/vol1");
    assert_eq!(got.paths.len(), 2);
    assert_eq!(
        connector(&env, &Scripted::new(), &events, false)
            .volume_paths(&props(2))
            .unwrap(),
        ["/dev/md/vol1"]
    );
}
