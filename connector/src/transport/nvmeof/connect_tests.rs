//! Attach on fixture trees: the scripted moord changes the tree as the kernel would
//! (a connect creates the controller and its namespaces), [`ScriptedEvents`] steps
//! finish what happens asynchronously (a rescan's namespace, a reconnect).

use serde_json::{Value, json};

use super::*;
use crate::attachments::Registry;
use crate::exec::{DryRun, Scripted, exec_reply};
use crate::host::fixture::{Tree, write};
use crate::host::udev::ScriptedEvents;
use crate::transport::nvmeof::test_support::*;

const A1: &str = "10.0.0.1";
const A2: &str = "10.0.1.1";

fn props(v: Value) -> NvmeofProps {
    NvmeofProps::from_connection_info(&v).unwrap()
}

/// The volume: namespace UUID1 at nsid 1 of SUBSYS, behind `portals`.
fn volume(portals: &[&str]) -> Value {
    let portals: Vec<Value> = portals.iter().map(|a| json!([a, 4420, "tcp"])).collect();
    json!({"target_nqn": SUBSYS, "vol_uuid": UUID1, "ns_id": 1, "portals": portals})
}

/// moord's `nvme.connect` to `traddr`: the kernel creates controller `c` of
/// subsystem `s` and its namespaces `nss`; nvme-cli names the controller.
fn connect_creates(
    t: &Tree,
    traddr: &'static str,
    c: u32,
    s: u32,
    nss: Vec<NsSpec<'static>>,
    multipath: bool,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static {
    let t = t.clone();
    move |args: &Value| {
        assert_eq!(args["traddr"], traddr);
        add_controller(&t, c, s, &tcp(SUBSYS, traddr));
        for n in &nss {
            add_namespace(&t, c, s, n, multipath);
        }
        Ok(exec_reply(0, &format!("device: nvme{c}\n"), ""))
    }
}

fn done(_: &Value) -> Result<Value, PrivError> {
    Ok(json!({}))
}

fn ops(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

#[test]
fn fresh_single_path_attach() {
    let env = setup(false);
    let moord = Scripted::new().expect_args(
        "nvme.connect",
        json!({"transport": "tcp", "traddr": A1, "trsvcid": 4420, "nqn": SUBSYS,
               "hostnqn": HOSTNQN, "hostid": HOSTID, "ctrl_loss_tmo": -1,
               "reconnect_delay": 10}),
        connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], false),
    );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
    assert_eq!(info.kind, "block");
    assert_eq!(info.uuid.as_deref(), Some(UUID1));
    assert_eq!(info.nsid, Some(1));
    assert_eq!(info.wwid.as_deref(), Some(&*format!("uuid.{UUID1}")));
    assert_eq!(info.controllers, ["nvme0"]);
    assert!(!info.multipath);
    // One portal is enough without multipath.
    assert_eq!(ops(&moord), ["nvme.connect"]);
    assert!(moord.unused().is_empty());
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v["type"], "block");
    assert_eq!(v["subsysnqn"], SUBSYS);
    // Recorded as attached: another volume's detach keeps its controller.
    let rec = Registry::new(env.t.path("run/moor/attachments"))
        .current(&env.t.paths(), "nvme0n1")
        .unwrap();
    assert_eq!(
        (rec.protocol.as_str(), rec.target.as_str()),
        ("nvmeof", &*format!("{SUBSYS} nsid 1"))
    );
}

#[test]
fn live_controller_is_reused_and_rescanned() {
    let env = setup(true);
    // Another volume of the subsystem is attached already.
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(2, UUID2), true);
    let moord = Scripted::new().expect_args("nvme.ns_rescan", json!({"controller": "nvme0"}), done);
    // The rescan finds the new namespace a moment later.
    let t = env.t.clone();
    let events = ScriptedEvents::new().then(move || add_namespace(&t, 0, 0, &ns(1, UUID1), true));
    let info = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
    assert!(info.multipath);
    assert_eq!(ops(&moord), ["nvme.ns_rescan"]);
    assert_eq!(events.steps_run(), 1);
}

#[test]
fn native_multipath_connects_every_portal_and_returns_the_head() {
    let env = setup(true);
    let moord = Scripted::new()
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], true),
        )
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A2, 1, 0, vec![ns(1, UUID1)], true),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, true)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
    assert!(info.multipath);
    assert_eq!(info.controllers, ["nvme0", "nvme1"]);
    assert!(env.t.exists("sys/block/nvme0c1n1"));
}

#[test]
fn multipath_reuses_live_and_connects_only_missing_portals() {
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    let moord = Scripted::new()
        .expect_args("nvme.ns_rescan", json!({"controller": "nvme0"}), done)
        .expect_args(
            "nvme.connect",
            json!({"traddr": A2}),
            connect_creates(&env.t, A2, 1, 0, vec![ns(1, UUID1)], true),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, true)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.controllers, ["nvme0", "nvme1"]);
    assert!(moord.unused().is_empty());
}

#[test]
fn already_connected_is_a_race_not_a_failure() {
    let env = setup(false);
    let t = env.t.clone();
    let moord = Scripted::new().expect("nvme.connect", move |_| {
        // Another process connected the same portal first.
        add_controller(&t, 0, 0, &tcp(SUBSYS, A1));
        add_namespace(&t, 0, 0, &ns(1, UUID1), false);
        Ok(exec_reply(114, "", "already connected\n"))
    });
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
}

#[test]
fn a_reconnecting_controller_is_waited_for() {
    let env = setup(true);
    let mut spec = tcp(SUBSYS, A1);
    spec.state = "connecting";
    add_controller(&env.t, 0, 0, &spec);
    add_namespace(&env.t, 0, 0, &ns(1, UUID1), true);
    let moord = Scripted::new();
    let t = env.t.clone();
    let events = ScriptedEvents::new().then(move || set_state(&t, 0, "live"));
    let info = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");
    // Not connected again: the kernel is reconnecting it.
    assert!(moord.calls().is_empty());

    // One that does not come back in time: named in the error.
    let env = setup(true);
    add_controller(&env.t, 0, 0, &spec);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap_err();
    assert!(
        matches!(&e, NvmeofError::NoController { failures, .. }
            if failures[0].contains("nvme0 is still reconnecting")),
        "{e}"
    );
}

#[test]
fn a_failed_portal_falls_through_to_the_next() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect_args("nvme.connect", json!({"traddr": A1}), |_| {
            Ok(exec_reply(
                1,
                "",
                "could not add new controller: failed to write to nvme-fabrics device\n",
            ))
        })
        .expect_args(
            "nvme.connect",
            json!({"traddr": A2}),
            connect_creates(&env.t, A2, 0, 0, vec![ns(1, UUID1)], false),
        );
    let events = ScriptedEvents::new();
    let info = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.path, "/dev/nvme0n1");

    // Every portal failing: each is named.
    let env = setup(false);
    let moord = Scripted::new()
        .expect("nvme.connect", |_| {
            Ok(exec_reply(1, "", "connection refused\n"))
        })
        .expect("nvme.connect", |_| {
            Ok(exec_reply(1, "", "no route to host\n"))
        });
    let e = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1, A2])))
        .unwrap_err();
    let NvmeofError::NoController { failures, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(failures.len(), 2);
    assert!(failures[0].contains("10.0.0.1") && failures[0].contains("connection refused"));
    assert!(failures[1].contains("no route to host"), "{e}");
}

#[test]
fn identity_mismatch_refuses_and_undoes_the_connect() {
    // The array presents another volume at the volume's nsid.
    let env = setup(true);
    let moord = Scripted::new()
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID2)], true),
        )
        .expect_args(
            "nvme.disconnect",
            json!({"controller": "nvme0", "expected_subsysnqn": SUBSYS,
                   "expected_transport": "tcp", "expected_traddr": A1,
                   "expected_trsvcid": 4420, "expected_hostnqn": HOSTNQN}),
            done,
        );
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap_err();
    let NvmeofError::IdentityMismatch {
        device, details, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(device, "nvme0n1");
    assert!(details.contains(UUID2), "{details}");
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());

    // On a reused controller nothing is disconnected.
    let env = setup(true);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    add_namespace(&env.t, 0, 0, &ns(1, UUID2), true);
    let moord = Scripted::new().expect("nvme.ns_rescan", done);
    let e = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap_err();
    assert!(matches!(e, NvmeofError::IdentityMismatch { .. }), "{e}");
    assert_eq!(ops(&moord), ["nvme.ns_rescan"]);
}

#[test]
fn a_namespace_that_never_shows_times_out_and_is_undone() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A1, 0, 0, vec![ns(2, UUID2)], false),
        )
        .expect("nvme.disconnect", done);
    let events = ScriptedEvents::new();
    let e = connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap_err();
    assert!(
        matches!(e, NvmeofError::Wait(WaitError::Deadline { .. })),
        "{e}"
    );
    assert!(moord.unused().is_empty());
}

#[test]
fn fail_fast_policy_reaches_the_kernel() {
    let env = setup(false);
    let moord = Scripted::new()
        .expect_args(
            "nvme.connect",
            json!({"ctrl_loss_tmo": 600, "reconnect_delay": 10}),
            connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], false),
        )
        .expect_args(
            "nvme.fast_io_fail",
            json!({"controller": "nvme0", "fast_io_fail_tmo": 5}),
            done,
        );
    let events = ScriptedEvents::new();
    let mut v = volume(&[A1]);
    v["reconnect_policy"] = json!("fail-fast");
    connector(&env, &moord, &events, false)
        .connect(&props(v))
        .unwrap();
    assert!(moord.unused().is_empty());
}

#[test]
fn enforced_multipath_without_native_multipath_changes_nothing() {
    let env = setup(false);
    let moord = Scripted::new();
    let events = ScriptedEvents::new();
    let mut v = volume(&[A1, A2]);
    v["enforce_multipath"] = json!(true);
    let e = connector(&env, &moord, &events, true)
        .connect(&props(v))
        .unwrap_err();
    assert!(matches!(e, NvmeofError::MultipathUnavailable), "{e}");
    assert!(moord.calls().is_empty());
    // Not enforced: one portal, with a warning.
    let moord = Scripted::new().expect(
        "nvme.connect",
        connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], false),
    );
    let info = connector(&env, &moord, &events, true)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.controllers, ["nvme0"]);
}

#[test]
fn missing_host_identity_is_created_first() {
    let env = setup(false);
    std::fs::remove_file(env.t.path("etc/nvme/hostnqn")).unwrap();
    std::fs::remove_file(env.t.path("etc/nvme/hostid")).unwrap();
    write(
        &env.t.path("sys/class/dmi/id/product_uuid"),
        "9126E942-396D-11E7-B0B7-A81E84C186D1\n",
    );
    let root = env.t.clone();
    let moord = Scripted::new()
        .expect("nvme.host_identity", {
            let t = root.clone();
            move |a: &Value| {
                write(&t.path("etc/nvme/hostnqn"), a["hostnqn"].as_str().unwrap());
                Ok(json!({}))
            }
        })
        .expect("nvme.host_identity", move |a: &Value| {
            write(&root.path("etc/nvme/hostid"), a["hostid"].as_str().unwrap());
            Ok(json!({}))
        })
        .expect_args(
            "nvme.connect",
            json!({"hostnqn": HOSTNQN, "hostid": HOSTID}),
            connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], false),
        );
    let events = ScriptedEvents::new();
    connector(&env, &moord, &events, false)
        .connect(&props(volume(&[A1])))
        .unwrap();
    assert!(moord.unused().is_empty());
}

#[test]
fn host_nqn_of_the_connection_info_is_used() {
    let env = setup(false);
    let other = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-2222-3333-444444444444";
    let t = env.t.clone();
    let moord = Scripted::new().expect_args(
        "nvme.connect",
        json!({"hostnqn": other, "hostid": HOSTID}),
        move |_| {
            let mut spec = tcp(SUBSYS, A1);
            spec.hostnqn = other;
            add_controller(&t, 0, 0, &spec);
            add_namespace(&t, 0, 0, &ns(1, UUID1), false);
            Ok(exec_reply(0, "device: nvme0\n", ""))
        },
    );
    let events = ScriptedEvents::new();
    let mut v = volume(&[A1]);
    v["host_nqn"] = json!(other);
    connector(&env, &moord, &events, false)
        .connect(&props(v))
        .unwrap();
    // A live controller of the same portal under the host's own NQN is not this
    // volume's: it is not reused.
    let env = setup(false);
    add_controller(&env.t, 0, 0, &tcp(SUBSYS, A1));
    let moord = Scripted::new().expect("nvme.connect", |_| {
        Ok(exec_reply(1, "", "connection refused\n"))
    });
    let mut v = volume(&[A1]);
    v["host_nqn"] = json!(other);
    let e = connector(&env, &moord, &events, false)
        .connect(&props(v))
        .unwrap_err();
    assert!(matches!(e, NvmeofError::NoController { .. }), "{e}");
}

#[test]
fn dry_run_plans_the_connects() {
    let env = setup(true);
    let dry = DryRun::new();
    let events = ScriptedEvents::new();
    let e = connector(&env, &dry, &events, true)
        .connect(&props(volume(&[A1, A2])))
        .unwrap_err();
    assert!(matches!(e, NvmeofError::DryRun(_)), "{e}");
    let planned = dry.planned();
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned.iter().all(|p| p.starts_with("nvme.connect")));
    assert!(!env.t.exists("sys/class/nvme-fabrics"));
}

#[test]
fn multipath_attach_waits_for_every_controllers_path() {
    let env = setup(true);
    let t = env.t.clone();
    let moord = Scripted::new()
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A1, 0, 0, vec![ns(1, UUID1)], true),
        )
        // The second controller's scan finds the namespace a moment later.
        .expect(
            "nvme.connect",
            connect_creates(&env.t, A2, 1, 0, vec![], true),
        );
    let events = ScriptedEvents::new().then(move || add_namespace(&t, 1, 0, &ns(1, UUID1), true));
    let info = connector(&env, &moord, &events, true)
        .connect(&props(volume(&[A1, A2])))
        .unwrap();
    assert_eq!(info.controllers, ["nvme0", "nvme1"]);
    assert_eq!(events.steps_run(), 1);
}
